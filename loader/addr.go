package loader

import (
	"encoding/binary"
	"net/netip"
)

// The card compares addresses as 32-bit words loaded straight from the packet, so the tables hold them
// in the same memory layout: network-order bytes read as native words.

func addrWords(a netip.Addr) (w [4]uint32) {
	if a.Is4() {
		b := a.As4()
		w[0] = binary.NativeEndian.Uint32(b[:])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[i*4:])
	}
	return w
}

func wordsAddr(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[i*4:], w[i])
	}
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// prefixWords returns the masked address and the mask of p.
func prefixWords(p netip.Prefix) (addr, mask [4]uint32) {
	p = p.Masked()
	addr = addrWords(p.Addr())
	n := 16
	if p.Addr().Is4() {
		n = 4
	}
	var m [16]byte
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	for i := 0; i < n/4; i++ {
		mask[i] = binary.NativeEndian.Uint32(m[i*4:])
	}
	return addr, mask
}

// wordsPrefix inverts prefixWords.
func wordsPrefix(addr, mask [4]uint32, family uint8) netip.Prefix {
	bits := 0
	var m [16]byte
	for i := range mask {
		binary.NativeEndian.PutUint32(m[i*4:], mask[i])
	}
	for _, b := range m {
		for j := 7; j >= 0; j-- {
			if b&(1<<j) != 0 {
				bits++
			}
		}
	}
	return netip.PrefixFrom(wordsAddr(addr, family), bits)
}

// wireU32 is a 32-bit value as the card reads it from the wire: big-endian bytes loaded as a native word.
func wireU32(v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return binary.NativeEndian.Uint32(b[:])
}

// hostU32 inverts wireU32.
func hostU32(v uint32) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return binary.BigEndian.Uint32(b[:])
}

func familyOf(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}
