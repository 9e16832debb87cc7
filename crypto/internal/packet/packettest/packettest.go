// Package packettest builds the IP packets that the tests of package packet and of the crypto
// workers feed them: TCP and UDP with complete or CHECKSUM_PARTIAL checksums, SYNs with options, and
// a plain reference for the Internet checksum.
package packettest

import (
	"encoding/binary"
	"net/netip"
)

// The addresses of the packets L4Packet builds.
var (
	Src4 = netip.MustParseAddr("198.18.1.10")
	Dst4 = netip.MustParseAddr("198.18.2.20")
	Src6 = netip.MustParseAddr("2001:2:0:1::10")
	Dst6 = netip.MustParseAddr("2001:2:0:2::10")
)

// RefSum is the RFC 1071 sum written the plain way (16 bits a step), folded: the reference the fast
// sums are checked against.
func RefSum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return acc
}

// PseudoSum is the folded pseudo-header sum of an IPv4 or IPv6 packet (RFC 793 §3.1, RFC 768, RFC 8200
// §8.1) for its L4 length.
func PseudoSum(ip []byte, proto uint8, l4len int) uint32 {
	var acc uint32
	if ip[0]>>4 == 4 {
		acc = RefSum(ip[12:20], 0)
	} else {
		acc = RefSum(ip[8:40], 0)
	}
	acc += uint32(proto) + uint32(l4len)
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return acc
}

// L4Packet builds an IPv4 (DF set) or IPv6 TCP or UDP packet, Src → Dst, with payload bytes and a
// complete L4 checksum, and returns it with the checksum field's offset.
func L4Packet(v6 bool, proto uint8, payload int) ([]byte, int) {
	hl, l4hl, at := 20, 20, 16
	if v6 {
		hl = 40
	}
	if proto == 17 {
		l4hl, at = 8, 6
	}
	p := make([]byte, hl+l4hl+payload)
	if v6 {
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		p[6], p[7] = proto, 64
		s, d := Src6.As16(), Dst6.As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
	} else {
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[6:], 0x4000)
		p[8], p[9] = 64, proto
		s, d := Src4.As4(), Dst4.As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		binary.BigEndian.PutUint16(p[10:], ^uint16(RefSum(p[:20], 0)))
	}
	l4 := p[hl:]
	binary.BigEndian.PutUint16(l4[0:], 40000)
	binary.BigEndian.PutUint16(l4[2:], 5201)
	if proto == 6 {
		binary.BigEndian.PutUint32(l4[4:], 0x01020304)
		l4[12] = 5 << 4
		l4[13] = 0x18 // PSH, ACK
		binary.BigEndian.PutUint16(l4[14:], 64240)
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	for i := l4hl; i < len(l4); i++ {
		l4[i] = byte(i*7 + 3)
	}
	c := ^uint16(RefSum(l4, PseudoSum(p, proto, len(l4))))
	if c == 0 && proto == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[at:], c)
	return p, hl + at
}

// Partial turns a complete packet into what a host with transmit checksum offload hands its veth:
// the checksum field (at offset at) holds the pseudo-header sum.
func Partial(p []byte, at int) []byte {
	q := append([]byte(nil), p...)
	hl, proto := 20, q[9]
	if q[0]>>4 == 6 {
		hl, proto = 40, q[6]
	}
	binary.BigEndian.PutUint16(q[at:], uint16(PseudoSum(q, proto, len(q)-hl)))
	return q
}

// L4Verifies reports whether the TCP or UDP checksum of p verifies.
func L4Verifies(p []byte) bool {
	hl, proto := int(p[0]&0xf)*4, p[9]
	if p[0]>>4 == 6 {
		hl, proto = 40, p[6]
	}
	return RefSum(p[hl:], PseudoSum(p, proto, len(p)-hl)) == 0xffff
}

// SYN is a TCP packet (IPv4 or IPv6) with the flags and options given (padded with end-of-options to
// a multiple of 4) and a complete checksum.
func SYN(v6 bool, flags byte, opts []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20
	if v6 {
		hl = 40
	}
	p, _ := L4Packet(v6, 6, len(opts))
	tcp := p[hl:]
	copy(tcp[20:], opts)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = flags
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(RefSum(tcp, PseudoSum(p, 6, len(tcp)))))
	return p
}

// MSS returns the 16-bit value at offset at of the TCP header of IP packet p (an MSS option's value).
func MSS(p []byte, at int) int {
	hl := 20
	if p[0]>>4 == 6 {
		hl = 40
	}
	return int(binary.BigEndian.Uint16(p[hl+at:]))
}
