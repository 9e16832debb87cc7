package inetsum

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// refSum is the RFC 1071 §4.1 reference: 16-bit big-endian words added one
// at a time into 32 bits, carries folded back at the end.
func refSum(b []byte, acc uint32) uint16 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

func TestSumAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 9000+8)
	n := 2000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		l := rng.IntN(9001)
		if i < 64 {
			l = i // every short length, odd ones included
		}
		off := rng.IntN(8) // odd offsets: no alignment assumed
		b := buf[off : off+l]
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%7 == 0 {
			for j := range b {
				b[j] = 0xff // carries on every word
			}
		}
		if got, want := Fold(Sum(b, 0)), refSum(b, 0); got != want {
			t.Fatalf("len %d off %d: Fold(Sum) = %#04x, reference %#04x", l, off, got, want)
		}
		// A split at an even point gives the same sum as one pass.
		if l >= 2 {
			at := rng.IntN(l/2+1) * 2
			if got, want := Fold(Sum(b[at:], Sum(b[:at], 0))), refSum(b, 0); got != want {
				t.Fatalf("len %d split %d: %#04x, reference %#04x", l, at, got, want)
			}
		}
		if got, want := Checksum(b), ^refSum(b, 0); got != want {
			t.Fatalf("len %d: Checksum = %#04x, want %#04x", l, got, want)
		}
	}
}

func TestAddAndFoldEdges(t *testing.T) {
	for _, tc := range []struct {
		acc, v uint64
		want   uint16
	}{
		{0, 0, 0},
		{0, 0xffff, 0xffff},
		{^uint64(0), 1, 1},            // end-around carry
		{^uint64(0), 0, 0xffff},       // all ones: -0, a non-zero sum
		{0xffff_ffff_ffff, 1, 0x0001}, // 3*0xffff + 1
		{0x1234, 0x0001_0000, 0x1235},
	} {
		if got := Fold(Add(tc.acc, tc.v)); got != tc.want {
			t.Errorf("Fold(Add(%#x, %#x)) = %#04x, want %#04x", tc.acc, tc.v, got, tc.want)
		}
	}
}

// RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
func TestRFC1071Example(t *testing.T) {
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Fold(Sum(b, 0)); got != 0xddf2 {
		t.Fatalf("sum = %#04x, want 0xddf2", got)
	}
}

func BenchmarkSum(b *testing.B) {
	for _, n := range []int{20, 64, 1400, 9000} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var s uint16
			for b.Loop() {
				s += Fold(Sum(buf, 0))
			}
			_ = s
		})
	}
}
