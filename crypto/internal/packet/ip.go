package packet

import (
	"net/netip"

	"github.com/xdpsec/xdpsec/ipsec"
)

// IPLength returns the IP packet's own length (IPv4 total length, IPv6 payload length + 40), which
// excludes Ethernet padding, and whether it is consistent with the bytes at hand.
func IPLength(p []byte) (int, bool) {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		l := int(be.Uint16(p[2:]))
		return l, l >= int(p[0]&0xf)*4 && l >= 20 && l <= len(p)
	case len(p) >= 40 && p[0]>>4 == 6:
		l := int(be.Uint16(p[4:])) + 40
		return l, l <= len(p)
	}
	return 0, false
}

// TTLExpired reports whether forwarding p would take its TTL (IPv4) or hop limit (IPv6) to 0.
func TTLExpired(p []byte) bool {
	if p[0]>>4 == 4 {
		return p[8] <= 1
	}
	return p[7] <= 1
}

// DecTTL decrements the TTL (IPv4, with the checksum updated incrementally as Linux's ip_decrease_ttl
// does, RFC 1624) or the hop limit (IPv6).
func DecTTL(p []byte) {
	if p[0]>>4 == 6 {
		p[7]--
		return
	}
	c := uint32(be.Uint16(p[10:])) + 0x0100
	if c >= 0xffff {
		c++
	}
	be.PutUint16(p[10:], uint16(c))
	p[8]--
}

// maxExt bounds the IPv6 extension headers Tuple walks, as the card's parser does
// (XDPSEC_MAX_IPV6_EXT).
const maxExt = 8

// Tuple reads the selector fields of an IP packet into t: addresses, the next-layer protocol after
// IPv6 extension headers, ports (or ICMP type and code), and whether it is a non-first fragment. It
// reports false for a packet it cannot read that far.
func Tuple(p []byte, t *ipsec.Tuple) bool {
	*t = ipsec.Tuple{}
	var l4 []byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		ihl := int(p[0]&0xf) * 4
		if ihl < 20 || len(p) < ihl {
			return false
		}
		t.Src = netip.AddrFrom4([4]byte(p[12:16]))
		t.Dst = netip.AddrFrom4([4]byte(p[16:20]))
		t.Proto = ipsec.Proto(p[9])
		if be.Uint16(p[6:])&0x1fff != 0 {
			t.NonFirstFragment = true
			return true
		}
		l4 = p[ihl:]
	case len(p) >= 40 && p[0]>>4 == 6:
		t.Src = netip.AddrFrom16([16]byte(p[8:24]))
		t.Dst = netip.AddrFrom16([16]byte(p[24:40]))
		nh, rest := p[6], p[40:]
		for range maxExt {
			var hl int
			switch nh {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(rest) < 8 {
					return false
				}
				hl = (int(rest[1]) + 1) * 8
			case 51: // AH
				if len(rest) < 8 {
					return false
				}
				hl = (int(rest[1]) + 2) * 4
			case 44: // fragment
				if len(rest) < 8 {
					return false
				}
				if be.Uint16(rest[2:])&^7 != 0 {
					t.Proto = ipsec.Proto(rest[0])
					t.NonFirstFragment = true
					return true
				}
				hl = 8
			default:
				goto done
			}
			if len(rest) < hl {
				return false
			}
			nh, rest = rest[0], rest[hl:]
		}
		return false // deeper than the card accepts either
	done:
		t.Proto = ipsec.Proto(nh)
		l4 = rest
	default:
		return false
	}
	switch {
	case t.Proto.HasPorts():
		if len(l4) < 4 {
			return false
		}
		t.SrcPort, t.DstPort = be.Uint16(l4[0:]), be.Uint16(l4[2:])
	case t.Proto.IsICMP():
		if len(l4) < 2 {
			return false
		}
		t.SrcPort, t.DstPort = uint16(l4[0]), uint16(l4[1])
	}
	return true
}

// TCPEnd returns the end of the TCP header that starts at offset l4 of head, if head holds it whole.
func TCPEnd(head []byte, l4 int) (int, bool) {
	if l4+20 > len(head) {
		return 0, false
	}
	thl := int(head[l4+12]>>4) * 4
	return l4 + thl, thl >= 20 && l4+thl <= len(head)
}
