package packet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
)

func TestOnesSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n%3 == 0 {
			for i := range b {
				b[i] = 0xff // carries everywhere
			}
		}
		if got, want := inetsum.Fold(inetsum.Sum(b, 0)), uint16(packettest.RefSum(b, 0)); got != want {
			t.Fatalf("%d bytes: onesSum folds to %#04x, reference %#04x", n, got, want)
		}
	}
}

// TestCompleteChecksum: partial checksums of TCP and UDP over IPv4 and IPv6
// are completed to exactly what the host would have computed; every packet
// without the pattern, or whose checksum verifies, is left byte for byte.
func TestCompleteChecksum(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []uint8{6, 17} {
			for _, payload := range []int{0, 1, 7, 100, 1379, 1400} {
				name := fmt.Sprintf("v6=%v/proto=%d/%d", v6, proto, payload)
				full, at := packettest.L4Packet(v6, proto, payload)
				if !packettest.L4Verifies(full) {
					t.Fatalf("%s: test packet does not verify", name)
				}
				p := packettest.Partial(full, at)
				if bytes.Equal(p, full) {
					continue // the complete checksum is the pseudo-header sum: covered below
				}
				if !CompleteChecksum(p) {
					t.Fatalf("%s: partial checksum not completed", name)
				}
				if !bytes.Equal(p, full) {
					t.Fatalf("%s: completed to %x, host would send %x", name, p[at:at+2], full[at:at+2])
				}
				// Complete checksums are never touched.
				if CompleteChecksum(p) {
					t.Fatalf("%s: a verifying packet was rewritten", name)
				}
				// A wrong checksum that is not the pattern stays wrong.
				bad := append([]byte(nil), full...)
				bad[at] ^= 0x40
				keep := append([]byte(nil), bad...)
				if CompleteChecksum(bad) || !bytes.Equal(bad, keep) {
					t.Fatalf("%s: a bad checksum without the pattern was rewritten", name)
				}
			}
		}
	}
}

// TestCompleteChecksumLeavesAlone covers the packets the cheap test must
// not select or the verification must protect.
func TestCompleteChecksumLeavesAlone(t *testing.T) {
	check := func(name string, p []byte) {
		t.Helper()
		keep := append([]byte(nil), p...)
		if CompleteChecksum(p) || !bytes.Equal(p, keep) {
			t.Fatalf("%s: rewritten", name)
		}
	}
	// A complete checksum that happens to equal the pseudo-header sum: make
	// it so by choosing two payload bytes.
	p, at := packettest.L4Packet(false, 6, 100)
	p = packettest.Partial(p, at)
	binary.BigEndian.PutUint16(p[60:], 0)
	binary.BigEndian.PutUint16(p[60:], ^uint16(packettest.RefSum(p[20:], packettest.PseudoSum(p, 6, len(p)-20))))
	if !packettest.L4Verifies(p) {
		t.Fatal("crafted packet does not verify")
	}
	check("complete checksum equal to the pseudo-header sum", p)

	// UDP over IPv4 without a checksum (zero, RFC 768).
	u, at := packettest.L4Packet(false, 17, 50)
	binary.BigEndian.PutUint16(u[at:], 0)
	check("udp without checksum", u)

	// Fragments: first (MF) and later (offset) ones.
	f, at := packettest.L4Packet(false, 6, 100)
	f = packettest.Partial(f, at)
	binary.BigEndian.PutUint16(f[6:], 0x2000)
	check("first fragment", f)
	binary.BigEndian.PutUint16(f[6:], 0x0010)
	check("later fragment", f)

	// UDP whose length field disagrees with the IP length.
	u, at = packettest.L4Packet(false, 17, 50)
	u = packettest.Partial(u, at)
	binary.BigEndian.PutUint16(u[24:], 30)
	check("udp length mismatch", u)

	// Other protocols, IPv6 with an extension header, truncated headers.
	i, _ := packettest.L4Packet(false, 6, 40)
	i[9] = 1
	check("icmp", i)
	e, at := packettest.L4Packet(true, 6, 40)
	e = packettest.Partial(e, at)
	e[6] = 60
	check("ipv6 destination options first", e)
	check("short tcp", packettest.Partial(packettest.L4Packet(false, 6, 0))[:30])
	check("not ip", []byte{0x10, 0, 0, 0})
}

// TestCompleteChecksumRandom: whatever the bytes, completeChecksum never
// panics, and when it writes, the result verifies.
func TestCompleteChecksumRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		v6, proto := rng.IntN(2) == 1, []uint8{6, 17}[rng.IntN(2)]
		p, at := packettest.L4Packet(v6, proto, rng.IntN(300))
		if rng.IntN(2) == 0 {
			p = packettest.Partial(p, at)
		}
		for range rng.IntN(3) {
			p[rng.IntN(len(p))] = byte(rng.Uint32())
		}
		if CompleteChecksum(p) && !packettest.L4Verifies(p) {
			t.Fatalf("completed checksum does not verify: %x", p)
		}
	}
}

// BenchmarkCompleteChecksum: the cost on a packet that needs completion
// (one pass over the L4 bytes) and on one that fails the cheap test.
func BenchmarkCompleteChecksum(b *testing.B) {
	for _, size := range []int{64, 1400} {
		full, at := packettest.L4Packet(false, 6, size-40)
		p := packettest.Partial(full, at)
		work := append([]byte(nil), p...)
		b.Run(fmt.Sprintf("partial/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(work[at:at+2], p[at:at+2])
				if !CompleteChecksum(work) {
					b.Fatal("not completed")
				}
			}
		})
		b.Run(fmt.Sprintf("complete/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if CompleteChecksum(full) {
					b.Fatal("rewritten")
				}
			}
		})
	}
}
