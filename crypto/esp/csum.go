package esp

import (
	"encoding/binary"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
)

// ipv4Checksum returns the header checksum of h (whose checksum field must be
// zero). The option-less 20-byte header, the one built per packet, is summed
// in three loads.
func ipv4Checksum(h []byte) uint16 {
	if len(h) == 20 {
		a := binary.BigEndian.Uint64(h[0:])
		b := binary.BigEndian.Uint64(h[8:])
		c := uint64(binary.BigEndian.Uint32(h[16:]))
		acc := a>>32 + a&0xffffffff + b>>32 + b&0xffffffff + c
		return ^inetsum.Fold(acc)
	}
	return inetsum.Checksum(h)
}

// udp6Checksum returns the UDP checksum of u over IPv6 (RFC 8200 §8.1), u's
// checksum field being zero.
func udp6Checksum(src, dst, u []byte) uint16 {
	acc := inetsum.Sum(src, 0)
	acc = inetsum.Sum(dst, acc)
	acc = inetsum.Add(acc, uint64(len(u))+protoUDP)
	c := ^inetsum.Fold(inetsum.Sum(u, acc))
	if c == 0 {
		c = 0xffff
	}
	return c
}
