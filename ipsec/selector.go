package ipsec

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Errors of Validate, for callers that report them.
var (
	ErrBadSelector = errors.New("invalid selector")
	ErrBadPolicy   = errors.New("invalid policy")
)

// Selector is a policy's traffic selector (RFC 4301 §4.4.1.1), with the fields of Linux's
// xfrm_selector. For ICMP and ICMPv6 the source range holds the type and the destination range the
// code.
type Selector struct {
	Src      netip.Prefix `json:"src"` // same family as Dst; masked
	Dst      netip.Prefix `json:"dst"`
	Proto    Proto        `json:"proto"` // ProtoAny or an IP protocol number
	SrcPorts PortRange    `json:"sport,omitzero"`
	DstPorts PortRange    `json:"dport,omitzero"`
}

// Validate checks that s is a selector the card can hold.
func (s Selector) Validate() error {
	if !s.Src.IsValid() || !s.Dst.IsValid() {
		return fmt.Errorf("%w: source and destination prefixes are required", ErrBadSelector)
	}
	if s.Src.Addr().Is4() != s.Dst.Addr().Is4() {
		return fmt.Errorf("%w: source %s and destination %s are of different address families", ErrBadSelector, s.Src, s.Dst)
	}
	if s.Src.Addr().Is4In6() || s.Dst.Addr().Is4In6() {
		return fmt.Errorf("%w: IPv4-mapped IPv6 prefixes are not supported", ErrBadSelector)
	}
	if s.Src != s.Src.Masked() || s.Dst != s.Dst.Masked() {
		return fmt.Errorf("%w: prefix %s or %s has host bits set", ErrBadSelector, s.Src, s.Dst)
	}
	for _, r := range []PortRange{s.SrcPorts, s.DstPorts} {
		if r.Lo() > r.Hi() {
			return fmt.Errorf("%w: empty port range %d-%d", ErrBadSelector, r.Lo(), r.Hi())
		}
	}
	if s.ConstrainsPorts() {
		switch {
		case s.Proto.HasPorts():
		case s.Proto.IsICMP():
			if !s.SrcPorts.IsAny() && s.SrcPorts.Hi() > 255 || !s.DstPorts.IsAny() && s.DstPorts.Hi() > 255 {
				return fmt.Errorf("%w: ICMP type and code range over 0-255", ErrBadSelector)
			}
		default:
			return fmt.Errorf("%w: protocol %s has no ports to select on: ports need proto tcp, udp, sctp, udplite or dccp (type and code: icmp or ipv6-icmp)",
				ErrBadSelector, s.Proto)
		}
	}
	return nil
}

// Is4 reports whether s selects IPv4 packets.
func (s Selector) Is4() bool { return s.Src.Addr().Is4() }

// ConstrainsPorts reports whether s restricts ports (or ICMP type/code), which non-first fragments
// cannot be checked against.
func (s Selector) ConstrainsPorts() bool { return !s.SrcPorts.IsAny() || !s.DstPorts.IsAny() }

// matchesAddrProto reports whether t matches s in everything but ports.
func (s *Selector) matchesAddrProto(t *Tuple) bool {
	if t.Src.Is4() != s.Is4() {
		return false
	}
	if s.Proto != ProtoAny && s.Proto != t.Proto {
		return false
	}
	return s.Src.Contains(t.Src) && s.Dst.Contains(t.Dst)
}

// Matches reports whether a packet with tuple t is selected by s. A non-first fragment matches only
// a selector that does not constrain ports. (Pointers: the workers call it per packet.)
func (s *Selector) Matches(t *Tuple) bool {
	if !s.matchesAddrProto(t) {
		return false
	}
	if t.NonFirstFragment {
		return !s.ConstrainsPorts()
	}
	return s.SrcPorts.Contains(t.SrcPort) && s.DstPorts.Contains(t.DstPort)
}

// String prints the selector in ip xfrm's words, leaving out what selects everything:
// "src 198.18.1.0/24 dst 198.18.2.0/24 proto tcp dport 80".
func (s Selector) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "src %s dst %s", s.Src, s.Dst)
	if s.Proto != ProtoAny {
		fmt.Fprintf(&b, " proto %s", s.Proto)
	}
	if !s.SrcPorts.IsAny() {
		fmt.Fprintf(&b, " sport %s", s.SrcPorts)
	}
	if !s.DstPorts.IsAny() {
		fmt.Fprintf(&b, " dport %s", s.DstPorts)
	}
	return b.String()
}

// Tuple is what a classifier sees of a packet.
type Tuple struct {
	Src, Dst netip.Addr // both IPv4 or both IPv6
	Proto    Proto      // next-layer protocol after IPv6 extension headers
	SrcPort  uint16     // or ICMP type; 0 for protocols without ports
	DstPort  uint16     // or ICMP code
	// NonFirstFragment marks a fragment with a non-zero offset: its ports are unknown (RFC 4301 §7)
	// and SrcPort and DstPort are ignored.
	NonFirstFragment bool
}
