package sadb

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/xdpsec/xdpsec/crypto/keymem"
	"github.com/xdpsec/xdpsec/ipsec"
)

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

// ParseKey reads a key as ip xfrm accepts it: 0x-prefixed hex. An error names the position of a bad
// character, never the key's characters. The key it returns is on the heap: a request's copy, which
// the store copies into key memory when it keeps the SA.
func ParseKey(s string) (Key, error) { return parseKey(s) }

// ParseKeyText is ParseKey for text in a buffer the caller wipes after (a key file's line).
func ParseKeyText(b []byte) (Key, error) { return parseKey(b) }

func parseKey[T string | []byte](text T) (Key, error) {
	b, err := keymem.ParseHex(text)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	defer b.Free()
	return append(Key{}, b.Bytes()...), nil
}

// Algorithm names a transform and its key. Bits is the ICV length for an AEAD and the truncation length
// for an authentication algorithm (ip xfrm's ICV-LEN / TRUNC-LEN); 0 means the algorithm's default.
type Algorithm struct {
	Name string `json:"alg"`
	Key  Key    `json:"key,omitempty"`
	Bits int    `json:"bits,omitempty"`
	// mem, when set, is the key memory behind Key (copies the store makes: package keymem); Wipe
	// frees it. A Key from elsewhere (a request, a configuration) is only zeroed.
	mem *keymem.Buf
}

func (a *Algorithm) clone(withKey bool) *Algorithm {
	if a == nil {
		return nil
	}
	c := *a
	c.Key, c.mem = nil, nil
	if withKey && len(a.Key) > 0 {
		c.mem = keymem.Copy(a.Key)
		c.Key = c.mem.Bytes()
	}
	return &c
}

// wipe zeroes the key; a copy in key memory is released and the Key set to nil, so a use after the
// wipe fails (a nil key has the wrong length) instead of finding the slot's next key.
func (a *Algorithm) wipe() {
	if a.mem != nil {
		a.mem.Free()
		a.Key = nil
		return
	}
	clear(a.Key)
}

// Equal reports whether a and b are the same algorithm with the same key and length (or both nil).
func (a *Algorithm) Equal(b *Algorithm) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.Bits == b.Bits && string(a.Key) == string(b.Key)
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
	SPI   uint32      `json:"spi"`
	Dst   netip.Addr  `json:"dst"`
	Proto ipsec.Proto `json:"proto"`
}

func (id SAID) String() string {
	return fmt.Sprintf("spi 0x%08x dst %s proto %s", id.SPI, id.Dst, id.Proto)
}

// SA is the configuration of one Security Association: one direction of one ESP flow.
type SA struct {
	// Owner is who added the SA (config, cli or ike); the API's default is cli.
	Owner Owner       `json:"owner"`
	Name  string      `json:"name,omitempty"`
	SPI   uint32      `json:"spi"`
	Src   netip.Addr  `json:"src"`
	Dst   netip.Addr  `json:"dst"`
	Proto ipsec.Proto `json:"proto"` // ESP; 0 is taken for ESP
	Mode  ipsec.Mode  `json:"mode"`  // unspecified is taken for tunnel
	Reqid uint32      `json:"reqid,omitempty"`
	// Dir is optional, as ip xfrm state's "dir": nil leaves the direction to the policies the SA
	// serves (offload.Engine.Direction).
	Dir          *ipsec.Dir `json:"dir,omitempty"`
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

// Wipe overwrites the SA's key bytes, and so those of every copy that shares them; the store's own
// copies (in key memory) are released too.
func (s *SA) Wipe() {
	for _, a := range []*Algorithm{s.AEAD, s.Enc, s.Auth} {
		if a != nil {
			a.wipe()
		}
	}
}

func (s *SA) clone(withKeys bool) SA {
	c := *s
	if s.Dir != nil {
		d := *s.Dir
		c.Dir = &d
	}
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

// Change says how a new version of an SA differs from the one in force.
type Change uint8

const (
	Unchanged Change = iota
	// InPlace: the same SA — the same SPI, destination, direction, algorithms and keys — with
	// other settings: the lifetime limits and offload list, and what the ESP engine can change
	// on a running SA while it keeps its sequence numbers, IV mask and replay window
	// (esp.Continue): source address, mode, reqid, TTL, DF, TFC padding, ESN, the replay window
	// size and UDP encapsulation. Whether the running SA can take a particular change (ESN off
	// after 2^32 packets, a larger replay window than its ring holds, another address family)
	// only the card can tell: the control plane asks it first (offload.Engine.CheckUpdate).
	InPlace
	// Replace: a new SA (a rekey), never an edit. With the same key it would start the key's
	// sequence numbers over, which the control plane refuses (SameKey).
	Replace
)

// Compare tells how next differs from cur and, for Replace, names the first field that makes it
// another SA. Names and run-time state (seq) are not compared.
func Compare(cur, next *SA) (Change, string) {
	what := ""
	switch {
	case cur.ID() != next.ID():
		what = "spi/dst/proto"
	case (cur.Dir == nil) != (next.Dir == nil) || cur.Dir != nil && *cur.Dir != *next.Dir:
		what = "dir"
	case !cur.AEAD.Equal(next.AEAD) || !cur.Enc.Equal(next.Enc) || !cur.Auth.Equal(next.Auth):
		what = "algorithms and keys"
	}
	if what != "" {
		return Replace, what
	}
	if cur.Src != next.Src || cur.Mode != next.Mode || cur.Reqid != next.Reqid || cur.ESN != next.ESN ||
		cur.ReplayWindow != next.ReplayWindow || cur.TTL != next.TTL || cur.DF != next.DF || cur.TFCPad != next.TFCPad ||
		!encapEqual(cur.Encap, next.Encap) || cur.Limits != next.Limits || !slices.Equal(cur.Offload, next.Offload) {
		return InPlace, ""
	}
	return Unchanged, ""
}

func encapEqual(a, b *Encap) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// SameKey reports whether a and b share key material: the same AEAD or cipher key, or the same
// authentication key. Two SAs that do share the sequence number space of that key (and, for the
// AEAD suites, its nonces), so one must continue the other's numbers, never start them again.
func SameKey(a, b *SA) bool {
	same := func(x, y *Algorithm) bool {
		return x != nil && y != nil && len(x.Key) > 0 && string(x.Key) == string(y.Key)
	}
	for _, x := range []*Algorithm{a.AEAD, a.Enc} {
		for _, y := range []*Algorithm{b.AEAD, b.Enc} {
			if same(x, y) {
				return true
			}
		}
	}
	return same(a.Auth, b.Auth)
}

// Current is the lifetime an SA has used so far, summed from the card's and the workers' counters.
type Current struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	// Errors the workers counted on this SA (ip -s xfrm state's "replay" and "integrity" failures).
	ReplayErrors    uint64 `json:"replay_errors"`
	IntegrityErrors uint64 `json:"integrity_errors"`
	OtherErrors     uint64 `json:"other_errors"`
	// SeqUnreserved counts, within OtherErrors, outbound packets dropped because the SA had used
	// its whole durable sequence reservation (the state directory lagged or failed).
	SeqUnreserved uint64 `json:"seq_unreserved"`
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
	// LastUse is when the SA last carried a packet the workers completed (sealed, or opened and
	// checked): what an IKE daemon's dead peer detection and inactivity timeout read. Zero until then.
	LastUse time.Time `json:"last_use_time,omitzero"`
	Cur     Current   `json:"current"`
	// Gen changes whenever something the card or the workers hold about the SA changes.
	Gen uint64 `json:"gen"`
	// Serial orders SAs by the time they were added: the newest SA of a policy has the largest one.
	Serial uint64 `json:"serial"`
	// SoftFired is set once the soft expiry event has been sent, so it fires only once.
	SoftFired bool `json:"soft_fired,omitempty"`
}

// Tmpl is the template of a PROTECT policy: which SA protects its traffic. The SA is found by name (the
// config's "sa:") or by reqid, and must match the template's addresses and mode where those are given.
type Tmpl struct {
	SA    string      `json:"sa,omitempty"`
	Reqid uint32      `json:"reqid,omitempty"`
	Src   netip.Addr  `json:"src,omitzero"`
	Dst   netip.Addr  `json:"dst,omitzero"`
	Proto ipsec.Proto `json:"proto,omitempty"`
	Mode  ipsec.Mode  `json:"mode,omitempty"` // unspecified: any
	SPI   uint32      `json:"spi,omitempty"`
}

// Policy is one entry of the SPD.
type Policy struct {
	// Owner is who added the policy (config, cli or ike); the API's default is cli.
	Owner    Owner          `json:"owner"`
	Name     string         `json:"name,omitempty"`
	Dir      ipsec.Dir      `json:"dir"`
	Sel      ipsec.Selector `json:"sel"`
	Priority uint32         `json:"priority"`
	Action   ipsec.Action   `json:"action"`
	Tmpl     *Tmpl          `json:"tmpl,omitempty"`
	Offload  []string       `json:"offload,omitempty"`
}

// Label names the policy in messages and events: its name, else its direction and selector.
func (p *Policy) Label() string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprintf("dir %s %s", p.Dir, p.Sel)
}

func (p *Policy) clone() Policy {
	c := *p
	if p.Tmpl != nil {
		t := *p.Tmpl
		c.Tmpl = &t
	}
	c.Offload = append([]string(nil), p.Offload...)
	return c
}

// PolicyEntry is a policy as the SPD holds it.
type PolicyEntry struct {
	Policy
	ID      uint32    `json:"id"` // the card's policy id (fwd policies: an id above the card's range)
	AddTime time.Time `json:"add_time"`
	Gen     uint64    `json:"gen"`
	// Serial orders policies by the time they were added (the newest ike policy wins its group).
	Serial uint64 `json:"serial"`
	// ShadowedBy is the id of the policy with the same (dir, selector) that comes first in SPD order:
	// this one cannot match while that one exists (spd.go). Set in listings and snapshots.
	ShadowedBy uint32 `json:"shadowed_by,omitempty"`
}

// PolicyKey identifies a policy as ip xfrm does: direction and selector.
type PolicyKey struct {
	Dir ipsec.Dir      `json:"dir"`
	Sel ipsec.Selector `json:"sel"`
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
