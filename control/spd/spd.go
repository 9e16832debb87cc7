// Package spd holds the Security Policy Database's selector and policy types (RFC 4301 §4.4.1) and the
// reference classifier: the plain-Go lookup whose answer the card (the XDP classifier in bpf/) must equal
// for every packet. The control plane builds its authoritative SPD on these types; the loader turns them
// into the card's rule tables.
//
// Semantics, shared by the reference and the card:
//   - A policy has a direction (out: applied to packets from the protected side; in: applied to plaintext
//     packets arriving on the wire side), a priority where the lower number wins (as in ip xfrm), and a
//     selector. Among the matching policies of the packet's direction the one with the lowest priority wins;
//     equal priorities resolve to the lower policy ID. The order is a total order, so the outcome never
//     depends on insertion order or map layout.
//   - A selector matches one address family: the family of its prefixes. An IPv4 packet never matches an
//     IPv6 selector and the other way round (no IPv4-mapped addresses).
//   - Proto 0 means any next-layer protocol. Port ranges may only constrain protocols that carry ports
//     (TCP, UDP, SCTP, UDP-Lite, DCCP); for ICMP and ICMPv6 the source range selects the ICMP type and the
//     destination range the code, as Linux's xfrm_selector does.
//   - Non-first fragments (RFC 4301 §7) carry no ports. They are matched as if their ports were OPAQUE:
//     a selector that constrains ports (or ICMP type/code) cannot be decided for them. The lookup walks the
//     policies in order; the first policy whose addresses and protocol match decides: if it does not
//     constrain ports, it wins as usual; if it does, the fragment is ambiguous — it may belong to that
//     policy's traffic — and is discarded (Decision.Ambiguous). This is the stateless handling of §7.1
//     made safe: a non-first fragment is never sent along a path its first fragment would not take.
//   - A packet that matches no policy gets the direction's default action: bypass unless configured to
//     discard (Linux's default).
package spd

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Dir is a policy's direction. The values are the card's (bpf/xdpsec.h XDPSEC_DIR_*).
type Dir uint8

const (
	DirOut Dir = 0 // packets from the protected side, to be protected, bypassed or discarded
	DirIn  Dir = 1 // plaintext packets arriving on the wire side
)

func (d Dir) String() string {
	switch d {
	case DirOut:
		return "out"
	case DirIn:
		return "in"
	}
	return fmt.Sprintf("dir(%d)", uint8(d))
}

// Action is what a policy does with matching packets. The values are the card's (XDPSEC_ACT_*).
type Action uint8

const (
	ActionBypass  Action = 0
	ActionProtect Action = 1
	ActionDiscard Action = 2
)

func (a Action) String() string {
	switch a {
	case ActionBypass:
		return "bypass"
	case ActionProtect:
		return "protect"
	case ActionDiscard:
		return "discard"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// IP protocol numbers the selectors give a meaning to.
const (
	ProtoAny     uint8 = 0
	ProtoICMP    uint8 = 1
	ProtoTCP     uint8 = 6
	ProtoUDP     uint8 = 17
	ProtoDCCP    uint8 = 33
	ProtoESP     uint8 = 50
	ProtoAH      uint8 = 51
	ProtoICMPv6  uint8 = 58
	ProtoSCTP    uint8 = 132
	ProtoUDPLite uint8 = 136
)

// HasPorts reports whether packets of protocol p carry source and destination ports the selector matches.
func HasPorts(p uint8) bool {
	switch p {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoUDPLite, ProtoDCCP:
		return true
	}
	return false
}

// IsICMP reports whether protocol p carries an ICMP type and code the selector matches in place of ports.
func IsICMP(p uint8) bool { return p == ProtoICMP || p == ProtoICMPv6 }

// PortRange is an inclusive range of ports (or of ICMP types or codes). Its zero value is the single port
// 0, not "any": use AnyPort for that.
type PortRange struct {
	Lo, Hi uint16
}

// AnyPort matches every port.
var AnyPort = PortRange{0, 0xffff}

// IsAny reports whether r matches every port.
func (r PortRange) IsAny() bool { return r == AnyPort }

// Contains reports whether p is within r.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

func (r PortRange) String() string {
	switch {
	case r.IsAny():
		return "any"
	case r.Lo == r.Hi:
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Selector is a policy's traffic selector (RFC 4301 §4.4.1.1).
type Selector struct {
	Src, Dst netip.Prefix // same family; masked
	Proto    uint8        // ProtoAny or an IP protocol number
	SrcPorts PortRange    // source port; ICMP/ICMPv6: type
	DstPorts PortRange    // destination port; ICMP/ICMPv6: code
}

// Errors of Validate, for callers that report them.
var (
	ErrBadSelector = errors.New("invalid selector")
	ErrBadPolicy   = errors.New("invalid policy")
)

// Validate checks that s is a selector the card can hold.
func (s Selector) Validate() error {
	if !s.Src.IsValid() || !s.Dst.IsValid() {
		return fmt.Errorf("%w: source and destination prefixes are required", ErrBadSelector)
	}
	if s.Src.Addr().Is4() != s.Dst.Addr().Is4() {
		return fmt.Errorf("%w: source %s and destination %s are of different families", ErrBadSelector, s.Src, s.Dst)
	}
	if s.Src.Addr().Is4In6() || s.Dst.Addr().Is4In6() {
		return fmt.Errorf("%w: IPv4-mapped IPv6 prefixes are not supported", ErrBadSelector)
	}
	if s.Src != s.Src.Masked() || s.Dst != s.Dst.Masked() {
		return fmt.Errorf("%w: prefix %s or %s has host bits set", ErrBadSelector, s.Src, s.Dst)
	}
	for _, r := range []PortRange{s.SrcPorts, s.DstPorts} {
		if r.Lo > r.Hi {
			return fmt.Errorf("%w: empty port range %d-%d", ErrBadSelector, r.Lo, r.Hi)
		}
	}
	if s.ConstrainsPorts() {
		switch {
		case HasPorts(s.Proto):
		case IsICMP(s.Proto):
			if s.SrcPorts.Hi > 255 && !s.SrcPorts.IsAny() || s.DstPorts.Hi > 255 && !s.DstPorts.IsAny() {
				return fmt.Errorf("%w: ICMP type and code range over 0-255", ErrBadSelector)
			}
		default:
			return fmt.Errorf("%w: protocol %d has no ports to select on", ErrBadSelector, s.Proto)
		}
	}
	return nil
}

// Is4 reports whether s selects IPv4 packets.
func (s Selector) Is4() bool { return s.Src.Addr().Is4() }

// ConstrainsPorts reports whether s restricts ports (or ICMP type/code), which non-first fragments cannot
// be checked against.
func (s Selector) ConstrainsPorts() bool { return !s.SrcPorts.IsAny() || !s.DstPorts.IsAny() }

// matchesAddrProto reports whether t matches s in everything but ports.
func (s Selector) matchesAddrProto(t *Tuple) bool {
	if t.Src.Is4() != s.Is4() {
		return false
	}
	if s.Proto != ProtoAny && s.Proto != t.Proto {
		return false
	}
	return s.Src.Contains(t.Src) && s.Dst.Contains(t.Dst)
}

// Matches reports whether a packet with tuple t (not a non-first fragment) is selected by s.
func (s Selector) Matches(t Tuple) bool {
	return s.matchesAddrProto(&t) && s.SrcPorts.Contains(t.SrcPort) && s.DstPorts.Contains(t.DstPort)
}

func (s Selector) String() string {
	p := "any"
	if s.Proto != ProtoAny {
		p = fmt.Sprint(s.Proto)
	}
	return fmt.Sprintf("src %s dst %s proto %s sport %s dport %s", s.Src, s.Dst, p, s.SrcPorts, s.DstPorts)
}

// NoSA is the SA index of a policy that has none (every non-PROTECT policy, or a PROTECT policy whose SA is
// not installed yet: the card drops its traffic and raises an ACQUIRE).
const NoSA = ^uint32(0)

// Policy is one SPD entry as the card holds it.
type Policy struct {
	// ID is the policy's slot in the card's policy table, allocated by the control plane below the card's
	// policy capacity. It is also the tie-break between equal priorities: the lower ID wins.
	ID       uint32
	Dir      Dir
	Priority uint32 // the lower number wins, as in ip xfrm
	Selector Selector
	Action   Action
	// SA is the index of the SA in the card's SA table: for an outbound PROTECT policy the SA that
	// protects its traffic, for an inbound one the SA its traffic must arrive through. NoSA otherwise.
	SA uint32
}

// Validate checks that p is a policy the card can hold.
func (p *Policy) Validate() error {
	if err := p.Selector.Validate(); err != nil {
		return fmt.Errorf("policy %d: %w", p.ID, err)
	}
	if p.Dir != DirOut && p.Dir != DirIn {
		return fmt.Errorf("%w %d: direction %d", ErrBadPolicy, p.ID, p.Dir)
	}
	if p.Action > ActionDiscard {
		return fmt.Errorf("%w %d: action %d", ErrBadPolicy, p.ID, p.Action)
	}
	return nil
}

// Less is the SPD order: lower priority number first, then lower ID. The card's rule tables are sorted by
// it, and the first matching policy in this order is the one that applies.
func Less(a, b *Policy) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return a.ID < b.ID
}

// Compare is Less as a three-way comparison for slices.SortFunc.
func Compare(a, b *Policy) int {
	switch {
	case Less(a, b):
		return -1
	case Less(b, a):
		return 1
	}
	return 0
}

// Tuple is what the classifier sees of a packet.
type Tuple struct {
	Src, Dst netip.Addr // both IPv4 or both IPv6
	Proto    uint8      // next-layer protocol after IPv6 extension headers
	SrcPort  uint16     // or ICMP type; 0 for protocols without ports
	DstPort  uint16     // or ICMP code
	// NonFirstFragment marks a fragment with a non-zero offset: its ports are unknown (RFC 4301 §7) and
	// SrcPort and DstPort are ignored.
	NonFirstFragment bool
}

// Defaults are the actions for packets that match no policy, per direction. Only bypass and discard are
// meaningful (there is no SA to protect with).
type Defaults struct {
	Out, In Action
}

// Decision is the classifier's answer for one packet.
type Decision struct {
	Matched   bool   // a policy matched (PolicyID is valid)
	Ambiguous bool   // a non-first fragment that a port-constraining policy may claim: discard
	PolicyID  uint32 // the winning policy, when Matched
	Action    Action // the action to apply: the policy's, the default's, or discard when Ambiguous
	SA        uint32 // the policy's SA for PROTECT, else NoSA
}

// Classifier is the reference SPD lookup: a sorted scan, obviously correct rather than fast.
type Classifier struct {
	pols     [2][]Policy // per direction, in SPD order
	defaults Defaults
}

// NewClassifier builds a classifier over policies (copied), which must be valid and have distinct IDs.
func NewClassifier(policies []Policy, d Defaults) (*Classifier, error) {
	c := &Classifier{defaults: d}
	seen := make(map[uint32]bool, len(policies))
	for i := range policies {
		p := policies[i]
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("%w: duplicate policy id %d", ErrBadPolicy, p.ID)
		}
		seen[p.ID] = true
		c.pols[p.Dir] = append(c.pols[p.Dir], p)
	}
	for d := range c.pols {
		slices.SortFunc(c.pols[d], func(a, b Policy) int { return Compare(&a, &b) })
	}
	return c, nil
}

// Lookup classifies t in direction dir.
func (c *Classifier) Lookup(dir Dir, t Tuple) Decision {
	for i := range c.pols[dir] {
		p := &c.pols[dir][i]
		if !p.Selector.matchesAddrProto(&t) {
			continue
		}
		if t.NonFirstFragment {
			if p.Selector.ConstrainsPorts() {
				return Decision{Ambiguous: true, Action: ActionDiscard, SA: NoSA}
			}
		} else if !p.Selector.SrcPorts.Contains(t.SrcPort) || !p.Selector.DstPorts.Contains(t.DstPort) {
			continue
		}
		d := Decision{Matched: true, PolicyID: p.ID, Action: p.Action, SA: NoSA}
		if p.Action == ActionProtect {
			d.SA = p.SA
		}
		return d
	}
	a := c.defaults.Out
	if dir == DirIn {
		a = c.defaults.In
	}
	return Decision{Action: a, SA: NoSA}
}
