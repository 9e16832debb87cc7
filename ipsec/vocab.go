package ipsec

import (
	"fmt"
	"strconv"
	"strings"
)

// Dir is the direction of a policy or an SA. Out and In are the card's values (XDPSEC_DIR_*); Fwd
// is ip xfrm's forward direction, which exists in the control plane only: the card has no forward
// tables (traffic it forwards is classified by its out and in tables), so the SPD refuses it.
type Dir uint8

const (
	DirOut Dir = 0 // packets from the protected side, to be protected, bypassed or discarded
	DirIn  Dir = 1 // plaintext packets and ESP arriving on the wire side
	DirFwd Dir = 2 // ip xfrm's "fwd"; never offloaded
)

func (d Dir) String() string {
	switch d {
	case DirOut:
		return "out"
	case DirIn:
		return "in"
	case DirFwd:
		return "fwd"
	}
	return "dir(" + strconv.Itoa(int(d)) + ")"
}

// OnCard reports whether the card has tables for d (out and in).
func (d Dir) OnCard() bool { return d == DirOut || d == DirIn }

// ParseDir reads "out", "in" or "fwd".
func ParseDir(s string) (Dir, error) {
	switch strings.ToLower(s) {
	case "out":
		return DirOut, nil
	case "in":
		return DirIn, nil
	case "fwd":
		return DirFwd, nil
	}
	return 0, fmt.Errorf("parse dir %q: want in, out or fwd", s)
}

// MarshalText writes the direction's name.
func (d Dir) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what ParseDir reads.
func (d *Dir) UnmarshalText(b []byte) error {
	v, err := ParseDir(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Action is what a policy does with matching packets. The values are the card's (XDPSEC_ACT_*).
type Action uint8

const (
	ActionBypass  Action = 0 // pass in plaintext (ip xfrm "allow" without a template)
	ActionProtect Action = 1 // through the policy's SA
	ActionDiscard Action = 2 // drop (ip xfrm "block")
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
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// ParseAction reads the config's words and ip xfrm's: bypass (allow, pass), protect (ipsec), discard
// (block, drop). ip xfrm's "allow" with a template means protect: its grammar (control/xfrmargs)
// decides that, not this function.
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(s) {
	case "bypass", "allow", "pass":
		return ActionBypass, nil
	case "protect", "ipsec":
		return ActionProtect, nil
	case "discard", "block", "drop":
		return ActionDiscard, nil
	}
	return 0, fmt.Errorf("parse action %q: want protect, bypass or discard", s)
}

// MarshalText writes the action's name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads what ParseAction reads.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Mode is an SA's ESP mode (RFC 4301 §4.1). The values are the card's (XDPSEC_MODE_*); the zero Mode
// is unspecified, so a forgotten field is never silently taken for one of them.
type Mode uint8

const (
	ModeTunnel    Mode = 1 // the whole inner IP packet behind a new outer IP header
	ModeTransport Mode = 2 // ESP between the IP header and its payload
)

// Valid reports whether m is tunnel or transport.
func (m Mode) Valid() bool { return m == ModeTunnel || m == ModeTransport }

func (m Mode) String() string {
	switch m {
	case 0:
		return "unspecified"
	case ModeTunnel:
		return "tunnel"
	case ModeTransport:
		return "transport"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode reads "tunnel" or "transport"; "" is the unspecified mode.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "":
		return 0, nil
	case "tunnel":
		return ModeTunnel, nil
	case "transport":
		return ModeTransport, nil
	}
	return 0, fmt.Errorf("parse mode %q: want tunnel or transport", s)
}

// MarshalText writes the mode's name, or nothing for the unspecified mode.
func (m Mode) MarshalText() ([]byte, error) {
	if m == 0 {
		return nil, nil
	}
	return []byte(m.String()), nil
}

// UnmarshalText reads what ParseMode reads.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Proto is an IP protocol number (IANA's "Assigned Internet Protocol Numbers"); in a selector 0
// means any. It has no text marshaler: the API carries it as a number, the config and the CLI parse
// names with ParseProto.
type Proto uint8

// The protocols xdpsec gives a meaning to.
const (
	ProtoAny     Proto = 0
	ProtoICMP    Proto = 1
	ProtoTCP     Proto = 6
	ProtoUDP     Proto = 17
	ProtoDCCP    Proto = 33
	ProtoGRE     Proto = 47
	ProtoESP     Proto = 50
	ProtoAH      Proto = 51
	ProtoICMPv6  Proto = 58
	ProtoSCTP    Proto = 132
	ProtoUDPLite Proto = 136
)

// protoNames are the names ip xfrm prints (/etc/protocols), then the aliases ParseProto also reads.
var protoNames = []struct {
	name string
	p    Proto
}{
	{"any", ProtoAny}, {"icmp", ProtoICMP}, {"tcp", ProtoTCP}, {"udp", ProtoUDP}, {"dccp", ProtoDCCP},
	{"gre", ProtoGRE}, {"esp", ProtoESP}, {"ah", ProtoAH}, {"ipv6-icmp", ProtoICMPv6}, {"sctp", ProtoSCTP},
	{"udplite", ProtoUDPLite},
	{"icmpv6", ProtoICMPv6}, {"icmp6", ProtoICMPv6}, {"udp-lite", ProtoUDPLite},
}

// HasPorts reports whether packets of protocol p carry source and destination ports that a selector
// can match: the card's rule (proto_has_ports in bpf/xdpsec.c), the one place this list lives.
func (p Proto) HasPorts() bool {
	switch p {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoUDPLite, ProtoDCCP:
		return true
	}
	return false
}

// IsICMP reports whether p carries an ICMP type and code, which a selector matches in its source and
// destination port ranges.
func (p Proto) IsICMP() bool { return p == ProtoICMP || p == ProtoICMPv6 }

// String is the name ip xfrm prints, or the number.
func (p Proto) String() string {
	for _, n := range protoNames {
		if n.p == p {
			return n.name
		}
	}
	return strconv.Itoa(int(p))
}

// ParseProto reads a protocol name (String's, or the aliases icmpv6, icmp6, udp-lite) or a number
// 0-255; "" is any.
func ParseProto(s string) (Proto, error) {
	if s == "" {
		return ProtoAny, nil
	}
	l := strings.ToLower(s)
	for _, n := range protoNames {
		if n.name == l {
			return n.p, nil
		}
	}
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("parse proto %q: want any, tcp, udp, icmp, ipv6-icmp, sctp, udplite, dccp or a number 0-255", s)
	}
	return Proto(v), nil
}
