package sadb

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ProtoESP is IP protocol 50, the only SA protocol xdpsec offloads.
const ProtoESP = 50

// Dir is the direction of a policy (or, optionally, of an SA), as ip xfrm spells it.
type Dir uint8

const (
	DirUnspec Dir = iota
	DirIn
	DirOut
)

func (d Dir) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	}
	return ""
}

// ParseDir accepts "in" and "out". ip xfrm's "fwd" has no meaning on the card: forwarded traffic is
// what the card's inbound side handles, so it is refused rather than silently mapped.
func ParseDir(s string) (Dir, error) {
	switch strings.ToLower(s) {
	case "in":
		return DirIn, nil
	case "out":
		return DirOut, nil
	case "":
		return DirUnspec, nil
	}
	return DirUnspec, fmt.Errorf("parse dir %q: want in or out", s)
}

func (d Dir) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
func (d *Dir) UnmarshalText(b []byte) error {
	v, err := ParseDir(string(b))
	*d = v
	return err
}

// Action is what a policy does with matching traffic.
type Action uint8

const (
	ActionBypass Action = iota // ip xfrm "allow" without a template
	ActionProtect
	ActionDiscard // ip xfrm "block"
)

func (a Action) String() string {
	switch a {
	case ActionProtect:
		return "protect"
	case ActionDiscard:
		return "discard"
	}
	return "bypass"
}

// ParseAction accepts the config's words and ip xfrm's (allow = bypass, block = discard).
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(s) {
	case "bypass", "allow", "pass":
		return ActionBypass, nil
	case "protect", "ipsec":
		return ActionProtect, nil
	case "discard", "block", "drop":
		return ActionDiscard, nil
	}
	return ActionBypass, fmt.Errorf("parse action %q: want protect, bypass or discard", s)
}

func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	*a = v
	return err
}

// Mode is the ESP mode of an SA.
type Mode uint8

const (
	ModeTunnel Mode = iota
	ModeTransport
)

func (m Mode) String() string {
	if m == ModeTransport {
		return "transport"
	}
	return "tunnel"
}

func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "tunnel", "":
		return ModeTunnel, nil
	case "transport":
		return ModeTransport, nil
	}
	return ModeTunnel, fmt.Errorf("parse mode %q: want tunnel or transport", s)
}

func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	*m = v
	return err
}

// State is the lifetime state of an SA (RFC 4301 §4.4.2.1).
type State uint8

const (
	StateMature State = iota
	StateDying        // soft limit reached: still usable, a replacement should be negotiated
	StateDead         // hard limit reached or deleted: leaving the card, never used again
)

func (s State) String() string {
	switch s {
	case StateDying:
		return "dying"
	case StateDead:
		return "dead"
	}
	return "mature"
}

func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "mature", "":
		*s = StateMature
	case "dying":
		*s = StateDying
	case "dead":
		*s = StateDead
	default:
		return fmt.Errorf("parse state %q", b)
	}
	return nil
}

// Key is key material. It marshals as 0x-prefixed hex, the way ip xfrm prints and reads keys.
type Key []byte

func (k Key) MarshalText() ([]byte, error) {
	const hexdig = "0123456789abcdef"
	out := make([]byte, 2+2*len(k))
	out[0], out[1] = '0', 'x'
	for i, b := range k {
		out[2+2*i] = hexdig[b>>4]
		out[3+2*i] = hexdig[b&15]
	}
	return out, nil
}

func (k *Key) UnmarshalText(b []byte) error {
	v, err := ParseKey(string(b))
	*k = v
	return err
}

// ParseKey reads a key as ip xfrm accepts it: 0x-prefixed hex.
func ParseKey(s string) (Key, error) {
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok {
		return nil, fmt.Errorf("parse key: want 0x-prefixed hex")
	}
	if len(h)%2 != 0 {
		return nil, fmt.Errorf("parse key: odd number of hex digits")
	}
	out := make(Key, len(h)/2)
	for i := range out {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("parse key: bad hex digit near %q", h[2*i:2*i+2])
		}
		out[i] = byte(v)
	}
	return out, nil
}

// Algorithm names a transform and its key. Bits is the ICV length for an AEAD and the truncation length
// for an authentication algorithm (ip xfrm's ICV-LEN / TRUNC-LEN); 0 means the algorithm's default.
type Algorithm struct {
	Name string `json:"alg"`
	Key  Key    `json:"key,omitempty"`
	Bits int    `json:"bits,omitempty"`
}

func (a *Algorithm) clone(withKey bool) *Algorithm {
	if a == nil {
		return nil
	}
	c := *a
	c.Key = nil
	if withKey {
		c.Key = append(Key(nil), a.Key...)
	}
	return &c
}

// Encap is UDP encapsulation of ESP (RFC 3948).
type Encap struct {
	Type  string `json:"type"` // "espinudp"
	Sport uint16 `json:"sport"`
	Dport uint16 `json:"dport"`
}

// Lifetime holds the soft and hard limits of an SA (RFC 4301 §4.4.2.1). Zero means no limit.
type Lifetime struct {
	SoftBytes   uint64 `json:"soft_bytes,omitempty"`
	HardBytes   uint64 `json:"hard_bytes,omitempty"`
	SoftPackets uint64 `json:"soft_packets,omitempty"`
	HardPackets uint64 `json:"hard_packets,omitempty"`
	// Seconds since the SA was added.
	SoftAddSeconds uint64 `json:"soft_add_seconds,omitempty"`
	HardAddSeconds uint64 `json:"hard_add_seconds,omitempty"`
	// Seconds since the SA was first used.
	SoftUseSeconds uint64 `json:"soft_use_seconds,omitempty"`
	HardUseSeconds uint64 `json:"hard_use_seconds,omitempty"`
}

// SAID is what identifies an SA on the wire and in ip xfrm: (SPI, destination, protocol).
type SAID struct {
	SPI   uint32     `json:"spi"`
	Dst   netip.Addr `json:"dst"`
	Proto uint8      `json:"proto"`
}

func (id SAID) String() string {
	return fmt.Sprintf("spi 0x%08x dst %s proto %d", id.SPI, id.Dst, id.Proto)
}

// SA is the configuration of one Security Association: one direction of one ESP flow.
type SA struct {
	Name         string     `json:"name,omitempty"`
	SPI          uint32     `json:"spi"`
	Src          netip.Addr `json:"src"`
	Dst          netip.Addr `json:"dst"`
	Proto        uint8      `json:"proto"`
	Mode         Mode       `json:"mode"`
	Reqid        uint32     `json:"reqid,omitempty"`
	Dir          Dir        `json:"dir,omitempty"` // optional, as in ip xfrm state's "dir"
	AEAD         *Algorithm `json:"aead,omitempty"`
	Enc          *Algorithm `json:"enc,omitempty"`
	Auth         *Algorithm `json:"auth,omitempty"`
	ESN          bool       `json:"esn,omitempty"`
	ReplayWindow uint32     `json:"replay_window"`
	Encap        *Encap     `json:"encap,omitempty"`
	// Seq is, outbound, the last sequence number already used; inbound, the top of the replay window
	// (ip xfrm's replay-seq/replay-oseq), so state can be restored.
	Seq     uint64   `json:"seq,omitempty"`
	Limits  Lifetime `json:"lifetime"`
	Offload []string `json:"offload,omitempty"` // interfaces it may be offloaded to; none = all
	// Outer header settings of tunnel mode (the config's ttl, df, tfc_pad); zero values are defaults.
	TTL    uint8  `json:"ttl,omitempty"`
	DF     string `json:"df,omitempty"` // copy | set | clear
	TFCPad uint16 `json:"tfc_pad,omitempty"`
}

// ID returns the SA's identity triple.
func (s *SA) ID() SAID { return SAID{SPI: s.SPI, Dst: s.Dst, Proto: s.Proto} }

// Wipe overwrites the SA's key bytes, and so those of every copy that shares them.
func (s *SA) Wipe() {
	for _, a := range []*Algorithm{s.AEAD, s.Enc, s.Auth} {
		if a != nil {
			clear(a.Key)
		}
	}
}

func (s *SA) clone(withKeys bool) SA {
	c := *s
	c.AEAD = s.AEAD.clone(withKeys)
	c.Enc = s.Enc.clone(withKeys)
	c.Auth = s.Auth.clone(withKeys)
	if s.Encap != nil {
		e := *s.Encap
		c.Encap = &e
	}
	c.Offload = append([]string(nil), s.Offload...)
	return c
}

// Current is the lifetime an SA has used so far, summed from the card's and the workers' counters.
type Current struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	// Errors the workers counted on this SA (ip -s xfrm state's "replay" and "integrity" failures).
	ReplayErrors    uint64 `json:"replay_errors"`
	IntegrityErrors uint64 `json:"integrity_errors"`
	OtherErrors     uint64 `json:"other_errors"`
	// Seq is the highest sequence number used (outbound) or seen (inbound) so far.
	Seq uint64 `json:"seq"`
}

// SAEntry is an SA as the SAD holds it: its configuration plus what the SAD assigned and observed.
type SAEntry struct {
	SA
	Index   uint32    `json:"index"` // the card's SA index
	State   State     `json:"state"`
	AddTime time.Time `json:"add_time"`
	UseTime time.Time `json:"use_time,omitzero"` // first use; zero until the card saw a packet
	Cur     Current   `json:"current"`
	// Gen changes whenever something the card or the workers hold about the SA changes.
	Gen uint64 `json:"gen"`
	// Serial orders SAs by the time they were added: the newest SA of a policy has the largest one.
	Serial uint64 `json:"serial"`
	// SoftFired is set once the soft expiry event has been sent, so it fires only once.
	SoftFired bool `json:"soft_fired,omitempty"`
}

// PortRange is an inclusive range of ports. The zero value means any port. For ICMP/ICMPv6 selectors
// the source range holds the type and the destination range the code, as in the kernel's xfrm_selector.
type PortRange struct {
	Lo uint16 `json:"lo"`
	Hi uint16 `json:"hi"`
}

// Any reports whether the range matches every port.
func (r PortRange) Any() bool { return (r.Lo == 0 && r.Hi == 0) || (r.Lo == 0 && r.Hi == 0xffff) }

func (r PortRange) String() string {
	if r.Any() {
		return "any"
	}
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

func (r PortRange) norm() PortRange {
	if r.Any() {
		return PortRange{}
	}
	return r
}

// Selector is the traffic a policy matches (RFC 4301 §4.4.1.1).
type Selector struct {
	Src   netip.Prefix `json:"src"`
	Dst   netip.Prefix `json:"dst"`
	Proto uint8        `json:"proto"` // 0 = any
	Sport PortRange    `json:"sport,omitzero"`
	Dport PortRange    `json:"dport,omitzero"`
}

func (s Selector) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "src %s dst %s", s.Src, s.Dst)
	if s.Proto != 0 {
		fmt.Fprintf(&b, " proto %s", ProtoName(s.Proto))
	}
	if !s.Sport.Any() {
		fmt.Fprintf(&b, " sport %s", s.Sport)
	}
	if !s.Dport.Any() {
		fmt.Fprintf(&b, " dport %s", s.Dport)
	}
	return b.String()
}

// ProtoName returns the name ip xfrm prints for an IP protocol.
func ProtoName(p uint8) string {
	switch p {
	case 0:
		return "any"
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 50:
		return "esp"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// ParseProto accepts the names of ProtoName and decimal numbers.
func ParseProto(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "any", "", "0":
		return 0, nil
	case "icmp":
		return 1, nil
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "esp":
		return 50, nil
	case "ipv6-icmp", "icmpv6", "icmp6":
		return 58, nil
	case "sctp":
		return 132, nil
	}
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("parse proto %q: want a name (tcp, udp, icmp, ipv6-icmp, …) or a number 0-255", s)
	}
	return uint8(v), nil
}

// Tmpl is the template of a PROTECT policy: which SA protects its traffic. The SA is found by name (the
// config's "sa:") or by reqid, and must match the template's addresses and mode where those are given.
type Tmpl struct {
	SA    string     `json:"sa,omitempty"`
	Reqid uint32     `json:"reqid,omitempty"`
	Src   netip.Addr `json:"src,omitzero"`
	Dst   netip.Addr `json:"dst,omitzero"`
	Proto uint8      `json:"proto,omitempty"`
	Mode  *Mode      `json:"mode,omitempty"`
	SPI   uint32     `json:"spi,omitempty"`
}

// Policy is one entry of the SPD.
type Policy struct {
	Name     string   `json:"name,omitempty"`
	Dir      Dir      `json:"dir"`
	Sel      Selector `json:"sel"`
	Priority uint32   `json:"priority"`
	Action   Action   `json:"action"`
	Tmpl     *Tmpl    `json:"tmpl,omitempty"`
	Offload  []string `json:"offload,omitempty"`
}

func (p *Policy) clone() Policy {
	c := *p
	if p.Tmpl != nil {
		t := *p.Tmpl
		if p.Tmpl.Mode != nil {
			m := *p.Tmpl.Mode
			t.Mode = &m
		}
		c.Tmpl = &t
	}
	c.Offload = append([]string(nil), p.Offload...)
	return c
}

// PolicyEntry is a policy as the SPD holds it.
type PolicyEntry struct {
	Policy
	ID      uint32    `json:"id"` // the card's policy id
	AddTime time.Time `json:"add_time"`
	Gen     uint64    `json:"gen"`
}

// PolicyKey identifies a policy as ip xfrm does: direction and selector.
type PolicyKey struct {
	Dir Dir      `json:"dir"`
	Sel Selector `json:"sel"`
}

// Ref names an SA: by name, or by its (SPI, dst, proto), or by its card index.
type Ref struct {
	Name  string `json:"name,omitempty"`
	ID    *SAID  `json:"id,omitempty"`
	Index uint32 `json:"index,omitempty"`
}

func (r Ref) String() string {
	switch {
	case r.Name != "":
		return "sa " + strconv.Quote(r.Name)
	case r.ID != nil:
		return r.ID.String()
	case r.Index != 0:
		return fmt.Sprintf("sa index %d", r.Index)
	}
	return "empty sa reference"
}

// PolicyRef names a policy: by name, by (dir, selector), or by id.
type PolicyRef struct {
	Name string     `json:"name,omitempty"`
	Key  *PolicyKey `json:"key,omitempty"`
	ID   uint32     `json:"id,omitempty"`
}

func (r PolicyRef) String() string {
	switch {
	case r.Name != "":
		return "policy " + strconv.Quote(r.Name)
	case r.Key != nil:
		return fmt.Sprintf("policy dir %s %s", r.Key.Dir, r.Key.Sel)
	case r.ID != 0:
		return fmt.Sprintf("policy id %d", r.ID)
	}
	return "empty policy reference"
}
