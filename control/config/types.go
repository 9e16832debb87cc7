package config

import (
	"crypto/subtle"
	"encoding"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/crypto/keymem"
	"github.com/xdpsec/xdpsec/ipsec"
)

// The scalar types below parse their YAML text themselves, from the node's raw
// text, so that `spi: 0x00001001` and `key: 0x…` are read as written (YAML
// would otherwise turn an unquoted 0x… into an integer or lose leading zeros).
// Syntax errors come back as *yaml.TypeError so the decoder collects them all,
// each tagged with its line; Parse then names the SA or policy around it.

// typeErr is the form yaml.v3 collects instead of stopping at the first error.
func typeErr(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: ", n.Line, n.Column) + fmt.Sprintf(format, args...)}}
}

func scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", typeErr(n, "%s: want a single value, got a %s", what, kindName(n.Kind))
	}
	return strings.TrimSpace(n.Value), nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	return "scalar"
}

// parseUint reads a decimal or 0x-prefixed hexadecimal unsigned integer.
func parseUint(s string, bits int) (uint64, error) {
	s = strings.ReplaceAll(s, "_", "")
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		return strconv.ParseUint(h, 16, bits)
	}
	return strconv.ParseUint(s, 10, bits)
}

// Key is secret key material (for AEAD suites: key ‖ salt, as ip xfrm takes
// it). It never appears in fmt output, JSON or YAML: every formatting verb
// prints a placeholder with the length. The bytes sit behind a pointer to an
// unexported type because fmt ignores Format/String methods while it reports a
// bad verb on an enclosing value (%d on a struct) and then prints fields raw;
// a pointer below the top level prints as an address only. Copies of a Key
// share the bytes, so Wipe on any copy clears them for all.
//
// The bytes live in key memory (crypto/keymem: locked, kept out of core
// dumps); Wipe zeroes and returns it, after which the Key is empty.
type Key struct{ s *secret }

type secret struct{ mem *keymem.Buf }

// NewKey copies b into key memory; the caller wipes b if it must.
func NewKey(b []byte) Key { return Key{s: &secret{mem: keymem.Copy(b)}} }

// ParseKey reads a key written as 0x followed by an even number of hex digits
// ("" or "0x" is the empty key of NULL encryption), decoding straight into key
// memory. An error names the position of a bad character, never the key's
// characters.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, nil
	}
	b, err := keymem.ParseHex(s)
	if err != nil {
		return Key{}, fmt.Errorf("parse key: %w", err)
	}
	return Key{s: &secret{mem: b}}, nil
}

// Bytes returns the key bytes themselves (not a copy): for the ESP engine only.
// The slice must not be used after Wipe.
func (k Key) Bytes() []byte {
	if k.s == nil {
		return nil
	}
	return k.s.mem.Bytes()
}

// Len is the key length in bytes.
func (k Key) Len() int { return len(k.Bytes()) }

// Equal compares two keys in constant time for equal lengths.
func (k Key) Equal(o Key) bool {
	a, b := k.Bytes(), o.Bytes()
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}

// Wipe overwrites the key bytes with zeros and releases their memory (for every
// copy of this Key); the Key is empty afterwards.
func (k Key) Wipe() {
	if k.s != nil {
		k.s.mem.Free()
	}
}

// Reveal returns the key as 0x-hex, for the explicit --show-keys paths only.
func (k Key) Reveal() string {
	if k.Len() == 0 {
		return ""
	}
	return "0x" + hex.EncodeToString(k.Bytes())
}

func (k Key) redacted() string { return fmt.Sprintf("[%d-byte key redacted]", k.Len()) }

// String never shows the key.
func (k Key) String() string { return k.redacted() }

// GoString never shows the key (%#v).
func (k Key) GoString() string { return "config.Key" + k.redacted() }

// Format covers every verb (%x, %q, %s, %v …) so no verb can print the bytes.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.redacted())) }

// MarshalJSON writes a placeholder: keys are not exported through JSON.
func (k Key) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(k.redacted())), nil }

// MarshalYAML writes a placeholder: keys are not exported through YAML.
func (k Key) MarshalYAML() (any, error) { return k.redacted(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (k *Key) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "key")
	if err != nil {
		return err
	}
	kk, err := ParseKey(s)
	if err != nil {
		return typeErr(n, "key: %v", err)
	}
	*k = kk
	return nil
}

// SPI is a Security Parameters Index, decimal or 0x-hex in the file.
type SPI uint32

// String prints the SPI as ip xfrm does.
func (s SPI) String() string { return fmt.Sprintf("0x%08x", uint32(s)) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *SPI) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "spi")
	if err != nil {
		return err
	}
	u, err := parseUint(v, 32)
	if err != nil {
		return typeErr(n, "spi %q: want a 32-bit number, decimal or 0x-hex", v)
	}
	*s = SPI(u)
	return nil
}

// Addr is a single IPv4 or IPv6 address.
type Addr struct{ netip.Addr }

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Addr) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "address")
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || ip.Zone() != "" {
		return typeErr(n, "address %q: want an IPv4 or IPv6 address", v)
	}
	a.Addr = ip.Unmap()
	return nil
}

// MarshalText prints the address.
func (a Addr) MarshalText() ([]byte, error) { return a.Addr.MarshalText() }

// Prefix is an IPv4 or IPv6 prefix; a bare address means a host prefix.
type Prefix struct{ netip.Prefix }

// ParsePrefix reads "198.18.1.0/24", "2001:2::/48" or a bare address. Host bits
// must be zero: "198.18.1.5/24" is refused rather than silently widened.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("want an address or address/length")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an address or address/length")
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6 prefixes are not selectors; write the IPv4 prefix")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits set; did you mean %s?", m)
	}
	return p, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "prefix")
	if err != nil {
		return err
	}
	pp, err := ParsePrefix(v)
	if err != nil {
		return typeErr(n, "prefix %q: %v", v, err)
	}
	p.Prefix = pp
	return nil
}

// MarshalText prints the prefix.
func (p Prefix) MarshalText() ([]byte, error) { return p.Prefix.MarshalText() }

// The vocabulary of package ipsec as the file writes it. Each adapter is the ipsec value itself
// (embedded) read from one YAML scalar by that value's own parser, so the file, the API and the CLI
// accept the same words, and a bad one is reported with its line like every other field — which
// yaml.v3 does not do for a plain encoding.TextUnmarshaler (it stops at the first such error and
// loses the line). The leaf package cannot know yaml.v3: these adapters are the bridge, with no
// values, names or rules of their own.

// word reads the scalar n into v with v's own parser.
func word(n *yaml.Node, what string, v encoding.TextUnmarshaler) error {
	s, err := scalar(n, what)
	if err != nil {
		return err
	}
	if err := v.UnmarshalText([]byte(s)); err != nil {
		// The parser's message ("parse dir \"x\": want …") names the value; the file names the field.
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, strconv.Quote(s)+": "); ok {
			msg = after
		}
		return typeErr(n, "%s %q: %s", what, s, msg)
	}
	return nil
}

// Dir is a policy's dir. Set tells a field written with a valid value from an absent one (or one
// that did not parse), whose zero value would read as out.
type Dir struct {
	ipsec.Dir
	Set bool `yaml:"-" json:"-"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Dir) UnmarshalYAML(n *yaml.Node) error {
	err := word(n, "dir", &d.Dir)
	d.Set = err == nil
	return err
}

// Action is a policy's action, or a default verdict. Set tells a field written with a valid value
// from an absent one (or one that did not parse), whose zero value would read as bypass.
type Action struct {
	ipsec.Action
	Set bool `yaml:"-" json:"-"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Action) UnmarshalYAML(n *yaml.Node) error {
	err := word(n, "action", &a.Action)
	a.Set = err == nil
	return err
}

// Mode is an SA's mode; absent, it is ipsec's unspecified mode.
type Mode struct{ ipsec.Mode }

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error { return word(n, "mode", &m.Mode) }

// Proto is a selector's protocol, by name or number; absent, any.
type Proto struct{ ipsec.Proto }

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Proto) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "proto")
	if err != nil {
		return err
	}
	if p.Proto, err = ipsec.ParseProto(s); err != nil {
		return typeErr(n, "proto %q: want a name (any, tcp, udp, icmp, ipv6-icmp, sctp, udplite, dccp, …) or a number 0-255", s)
	}
	return nil
}

// MarshalText prints the protocol's name, as the file writes it.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Ports is a selector's port range: "53", "1000-2000" or "any"; absent, any port.
type Ports struct{ ipsec.PortRange }

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Ports) UnmarshalYAML(n *yaml.Node) error { return word(n, "port", &r.PortRange) }

// enum reads one of a fixed set of words.
func enum(n *yaml.Node, what string, allowed ...string) (string, error) {
	v, err := scalar(n, what)
	if err != nil {
		return "", err
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", typeErr(n, "%s %q: want %s", what, v, strings.Join(allowed, ", "))
}

// DF is the outer IPv4 header's Don't-Fragment policy in tunnel mode
// (RFC 4301 §8.1: copy from the inner header, set, or clear).
type DF string

// DF policies.
const (
	DFCopy  DF = "copy"
	DFSet   DF = "set"
	DFClear DF = "clear"
)

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *DF) UnmarshalYAML(n *yaml.Node) error {
	v, err := enum(n, "df", "copy", "set", "clear")
	*d = DF(v)
	return err
}

// EncapType is the UDP encapsulation of ESP; only RFC 3948's espinudp exists.
type EncapType string

// EncapESPInUDP is RFC 3948 UDP encapsulation (ip xfrm's "encap espinudp").
const EncapESPInUDP EncapType = "espinudp"

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *EncapType) UnmarshalYAML(n *yaml.Node) error {
	v, err := enum(n, "encap type", "espinudp")
	*e = EncapType(v)
	return err
}

// XDPMode is how the card is attached.
type XDPMode string

// XDP attach modes.
const (
	XDPAuto    XDPMode = "auto"
	XDPNative  XDPMode = "native"
	XDPGeneric XDPMode = "generic"
)

// UnmarshalYAML implements yaml.Unmarshaler.
func (x *XDPMode) UnmarshalYAML(n *yaml.Node) error {
	v, err := enum(n, "xdp_mode", "auto", "native", "generic")
	*x = XDPMode(v)
	return err
}

// OnExit is what a stopping daemon leaves of the card (Config.OnExit).
type OnExit string

// What a stopping daemon leaves.
const (
	OnExitGuard  OnExit = "guard"  // the card attached and pinned, in guard state
	OnExitDetach OnExit = "detach" // nothing: programs detached, pins removed
)

// UnmarshalYAML implements yaml.Unmarshaler.
func (o *OnExit) UnmarshalYAML(n *yaml.Node) error {
	v, err := enum(n, "on_exit", string(OnExitGuard), string(OnExitDetach))
	*o = OnExit(v)
	return err
}

// Duration is a time.Duration written as "1s", "250ms".
type Duration struct{ time.Duration }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "duration")
	if err != nil {
		return err
	}
	dd, err := time.ParseDuration(v)
	if err != nil || dd <= 0 {
		return typeErr(n, "duration %q: want a positive duration like 1s or 500ms", v)
	}
	d.Duration = dd
	return nil
}

// MarshalText prints the duration as it is written in the file.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
