package config

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The scalar types below parse their YAML text themselves, from the node's raw
// text, so that `spi: 0x00001001` and `key: 0x…` are read as written (YAML
// would otherwise turn an unquoted 0x… into an integer or lose leading zeros).
// Syntax errors come back as *yaml.TypeError so the decoder collects them all,
// each tagged with its line; Parse then names the SA or policy around it.

// typeErr is the form yaml.v3 collects instead of stopping at the first error.
func typeErr(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
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
type Key struct{ s *secret }

type secret struct{ b []byte }

// NewKey wraps b without copying it; the Key owns b from now on.
func NewKey(b []byte) Key { return Key{s: &secret{b: b}} }

// ParseKey reads a key written as 0x followed by an even number of hex digits
// ("" or "0x" is the empty key of NULL encryption).
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, nil
	}
	h, ok := strings.CutPrefix(s, "0x")
	if !ok {
		h, ok = strings.CutPrefix(s, "0X")
	}
	if !ok {
		return Key{}, fmt.Errorf("parse key: want 0x followed by hex digits")
	}
	if len(h)%2 != 0 {
		return Key{}, fmt.Errorf("parse key: odd number of hex digits (%d)", len(h))
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		// hex's own error quotes the offending byte, which would put a key digit in a log.
		return Key{}, fmt.Errorf("parse key: not a hex digit in the key")
	}
	return NewKey(b), nil
}

// Bytes returns the key bytes themselves (not a copy): for the ESP engine only.
func (k Key) Bytes() []byte {
	if k.s == nil {
		return nil
	}
	return k.s.b
}

// Len is the key length in bytes.
func (k Key) Len() int { return len(k.Bytes()) }

// Equal compares two keys in constant time for equal lengths.
func (k Key) Equal(o Key) bool {
	a, b := k.Bytes(), o.Bytes()
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}

// Wipe overwrites the key bytes with zeros (in every copy of this Key).
func (k Key) Wipe() { clear(k.Bytes()) }

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

// PortRange is a port or an inclusive range "1000-2000". The zero value
// (field omitted) matches any port.
type PortRange struct{ Lo, Hi uint16 }

// Any reports whether the range matches every port.
func (r PortRange) Any() bool { return r == PortRange{} || (r.Lo == 0 && r.Hi == 65535) }

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.Any() || (r.Lo <= p && p <= r.Hi) }

// String prints "any", "53" or "1000-2000".
func (r PortRange) String() string {
	switch {
	case r.Any():
		return "any"
	case r.Lo == r.Hi:
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// MarshalText prints the range as it is written in the file.
func (r PortRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ParsePortRange reads "53", "1000-2000" or "any".
func ParsePortRange(s string) (PortRange, error) {
	if s == "any" {
		return PortRange{}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil {
		return PortRange{}, fmt.Errorf("want a port 1-65535 or a range like 1000-2000")
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil {
			return PortRange{}, fmt.Errorf("want a port 1-65535 or a range like 1000-2000")
		}
		if l > h {
			return PortRange{}, fmt.Errorf("range runs backwards (%d > %d)", l, h)
		}
	} else if l == 0 {
		return PortRange{}, fmt.Errorf("port 0 is not a port; omit the field to match any port")
	}
	return PortRange{Lo: uint16(l), Hi: uint16(h)}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *PortRange) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "port")
	if err != nil {
		return err
	}
	pr, err := ParsePortRange(v)
	if err != nil {
		return typeErr(n, "port %q: %v", v, err)
	}
	*r = pr
	return nil
}

// Proto is an IP protocol number as a selector; 0 means any, as in xfrm.
type Proto uint8

// Protocol numbers the selectors name (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoAny    Proto = 0
	ProtoICMP   Proto = 1
	ProtoTCP    Proto = 6
	ProtoUDP    Proto = 17
	ProtoICMPv6 Proto = 58
	ProtoSCTP   Proto = 132
)

var protoNames = map[string]Proto{
	"any": ProtoAny, "icmp": ProtoICMP, "tcp": ProtoTCP, "udp": ProtoUDP,
	"ipv6-icmp": ProtoICMPv6, "icmpv6": ProtoICMPv6, "sctp": ProtoSCTP,
}

// HasPorts reports whether the protocol carries ports a selector can match.
func (p Proto) HasPorts() bool { return p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP }

// IsICMP reports whether the protocol carries an ICMP type and code.
func (p Proto) IsICMP() bool { return p == ProtoICMP || p == ProtoICMPv6 }

// String prints the name used in the file.
func (p Proto) String() string {
	switch p {
	case ProtoAny:
		return "any"
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMPv6:
		return "ipv6-icmp"
	case ProtoSCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// MarshalText prints the protocol as it is written in the file.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ParseProto reads a protocol name or number 0-255.
func ParseProto(s string) (Proto, error) {
	if p, ok := protoNames[strings.ToLower(s)]; ok {
		return p, nil
	}
	u, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("want any, tcp, udp, icmp, ipv6-icmp, sctp or a number 0-255")
	}
	return Proto(u), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Proto) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "proto")
	if err != nil {
		return err
	}
	pp, err := ParseProto(v)
	if err != nil {
		return typeErr(n, "proto %q: %v", v, err)
	}
	*p = pp
	return nil
}

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

// Dir is a policy's direction.
type Dir string

// Directions of policies, as ip xfrm spells them.
const (
	DirIn  Dir = "in"
	DirOut Dir = "out"
)

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Dir) UnmarshalYAML(n *yaml.Node) error {
	v, err := enum(n, "dir", "in", "out")
	*d = Dir(v)
	return err
}

// Action is what a policy does with matching traffic (RFC 4301 §4.4.1).
type Action string

// Policy actions.
const (
	ActionProtect Action = "protect"
	ActionBypass  Action = "bypass"
	ActionDiscard Action = "discard"
)

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Action) UnmarshalYAML(n *yaml.Node) error {
	v, err := enum(n, "action", "protect", "bypass", "discard")
	*a = Action(v)
	return err
}

// Verdict is what happens to traffic that no policy matches.
type Verdict string

// Default verdicts.
const (
	VerdictBypass  Verdict = "bypass"
	VerdictDiscard Verdict = "discard"
)

// UnmarshalYAML implements yaml.Unmarshaler.
func (v *Verdict) UnmarshalYAML(n *yaml.Node) error {
	s, err := enum(n, "verdict", "bypass", "discard")
	*v = Verdict(s)
	return err
}

// Mode is an SA's ESP mode.
type Mode string

// ESP modes.
const (
	ModeTunnel    Mode = "tunnel"
	ModeTransport Mode = "transport"
)

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error {
	v, err := enum(n, "mode", "tunnel", "transport")
	*m = Mode(v)
	return err
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
