// Package inetsum computes the Internet checksum (RFC 1071) for the crypto
// packages: IPv4 header checksums, the UDP/TCP/ICMPv6 checksums over the
// RFC 8200 §8.1 pseudo-header, and incremental updates (RFC 1624).
//
// A sum is kept in a 64-bit one's-complement accumulator: Sum adds bytes to
// it, Add adds one value, and Fold reduces it to the 16-bit one's-complement
// sum. The checksum field to write is ^Fold(acc); a packet whose checksum
// field is included verifies when Fold(acc) == 0xffff.
//
// The accumulator may come close to 2^64, so a value must be added with Add
// (end-around carry), never with a plain +.
package inetsum

import (
	"encoding/binary"
	"math/bits"
)

var be = binary.BigEndian

// Sum adds b, as big-endian 16-bit words (an odd last byte padded with a zero
// byte, RFC 1071 §4.1), to the one's-complement accumulator acc and returns
// the new accumulator.
//
// It adds eight bytes a step with end-around carries (RFC 1071 §2(B): the
// one's-complement sum is independent of the word size, so 64-bit words fold
// to the same 16-bit sum), four words a loop round: the fastest of the three
// variants the crypto packages once had.
func Sum(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, be.Uint64(b[0:]), c)
		acc, c = bits.Add64(acc, be.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, be.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, be.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, be.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(be.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(be.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0])<<8, c)
	}
	return Add(acc, c)
}

// Add adds v to the one's-complement accumulator acc with end-around carry.
func Add(acc, v uint64) uint64 {
	s, c := bits.Add64(acc, v, 0)
	return s + c // no overflow: after a carry s <= 2^64-2
}

// Fold reduces the accumulator to its 16-bit one's-complement sum. It is 0
// only for an all-zero sum (as Linux's csum_fold before its final
// complement), so a non-zero sum that is a multiple of 0xffff folds to 0xffff.
func Fold(acc uint64) uint16 {
	hi, lo := acc>>32, acc&0xffffffff
	s := lo + hi
	s = s&0xffffffff + s>>32
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return uint16(s)
}

// Checksum returns the Internet checksum of b: the complement of its folded
// sum, the value to write into a zeroed checksum field.
func Checksum(b []byte) uint16 {
	return ^Fold(Sum(b, 0))
}
