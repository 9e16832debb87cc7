package esp

import "encoding/binary"

// sum16 adds b as big-endian 16-bit words into a 64-bit accumulator (RFC 1071);
// eight bytes per step keeps it cheap for the IPv6 UDP checksum over a
// whole packet.
func sum16(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		acc += v >> 32
		acc += v & 0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

func fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// ipv4Checksum returns the header checksum of h (whose checksum field must be
// zero). The option-less 20-byte header, the one built per packet, is summed
// in three loads.
func ipv4Checksum(h []byte) uint16 {
	if len(h) == 20 {
		a := binary.BigEndian.Uint64(h[0:])
		b := binary.BigEndian.Uint64(h[8:])
		c := uint64(binary.BigEndian.Uint32(h[16:]))
		acc := a>>32 + a&0xffffffff + b>>32 + b&0xffffffff + c
		return ^fold(acc)
	}
	return ^fold(sum16(h, 0))
}

// udp6Checksum returns the UDP checksum of u over IPv6 (RFC 8200 §8.1), u's
// checksum field being zero.
func udp6Checksum(src, dst, u []byte) uint16 {
	acc := sum16(src, 0)
	acc = sum16(dst, acc)
	acc += uint64(len(u)) + protoUDP
	c := ^fold(sum16(u, acc))
	if c == 0 {
		c = 0xffff
	}
	return c
}
