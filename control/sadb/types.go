package sadb

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

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
	InPlace          // only in what ip xfrm state update may change: limits, encap ports, offload list
	Replace          // in an immutable field: it is a new SA (a rekey), never an edit
)

// Compare tells how next differs from cur and, for Replace, names the first immutable field that
// changed. Names and run-time state (seq) are not compared.
func Compare(cur, next *SA) (Change, string) {
	what := ""
	switch {
	case cur.ID() != next.ID():
		what = "spi/dst/proto"
	case cur.Src != next.Src:
		what = "src"
	case cur.Mode != next.Mode:
		what = "mode"
	case cur.Reqid != next.Reqid:
		what = "reqid"
	case (cur.Dir == nil) != (next.Dir == nil) || cur.Dir != nil && *cur.Dir != *next.Dir:
		what = "dir"
	case cur.ESN != next.ESN:
		what = "esn"
	case cur.ReplayWindow != next.ReplayWindow:
		what = "replay-window"
	case cur.TTL != next.TTL || cur.DF != next.DF || cur.TFCPad != next.TFCPad:
		what = "ttl/df/tfc-pad"
	case !cur.AEAD.Equal(next.AEAD) || !cur.Enc.Equal(next.Enc) || !cur.Auth.Equal(next.Auth):
		what = "algorithms and keys"
	case (cur.Encap == nil) != (next.Encap == nil):
		what = "encap (on/off)"
	}
	if what != "" {
		return Replace, what
	}
	if (cur.Encap != nil && *cur.Encap != *next.Encap) || cur.Limits != next.Limits || !slices.Equal(cur.Offload, next.Offload) {
		return InPlace, ""
	}
	return Unchanged, ""
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
