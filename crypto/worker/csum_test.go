//go:build linux

package worker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// refSum is the RFC 1071 sum written the plain way (16 bits a step), the
// reference inetsum.Sum (eight bytes a step) is checked against.
func refSum(b []byte, acc uint32) uint32 {
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

// pseudoSum is the folded pseudo-header sum of an IPv4 or IPv6 packet
// (RFC 793 §3.1, RFC 768, RFC 8200 §8.1) for its L4 length.
func pseudoSum(ip []byte, proto uint8, l4len int) uint32 {
	var acc uint32
	if ip[0]>>4 == 4 {
		acc = refSum(ip[12:20], 0)
	} else {
		acc = refSum(ip[8:40], 0)
	}
	acc += uint32(proto) + uint32(l4len)
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return acc
}

// l4Packet builds an IPv4 or IPv6 TCP or UDP packet with payload bytes and
// a complete L4 checksum, and returns it with the checksum field's offset.
func l4Packet(v6 bool, proto uint8, payload int) ([]byte, int) {
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
		s, d := netip.MustParseAddr("2001:2:0:1::10").As16(), netip.MustParseAddr("2001:2:0:2::10").As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
	} else {
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[6:], 0x4000)
		p[8], p[9] = 64, proto
		s, d := innerSrc.As4(), innerDst.As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		binary.BigEndian.PutUint16(p[10:], ^uint16(refSum(p[:20], 0)))
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
	c := ^uint16(refSum(l4, pseudoSum(p, proto, len(l4))))
	if c == 0 && proto == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[at:], c)
	return p, hl + at
}

// partial turns a complete packet into what a host with transmit checksum
// offload hands its veth: the checksum field holds the pseudo-header sum.
func partial(p []byte, at int) []byte {
	q := append([]byte(nil), p...)
	hl, proto := 20, q[9]
	if q[0]>>4 == 6 {
		hl, proto = 40, q[6]
	}
	binary.BigEndian.PutUint16(q[at:], uint16(pseudoSum(q, proto, len(q)-hl)))
	return q
}

func l4Verifies(p []byte) bool {
	hl, proto := int(p[0]&0xf)*4, p[9]
	if p[0]>>4 == 6 {
		hl, proto = 40, p[6]
	}
	return refSum(p[hl:], pseudoSum(p, proto, len(p)-hl)) == 0xffff
}

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
		if got, want := inetsum.Fold(inetsum.Sum(b, 0)), uint16(refSum(b, 0)); got != want {
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
				full, at := l4Packet(v6, proto, payload)
				if !l4Verifies(full) {
					t.Fatalf("%s: test packet does not verify", name)
				}
				p := partial(full, at)
				if bytes.Equal(p, full) {
					continue // the complete checksum is the pseudo-header sum: covered below
				}
				if !completeChecksum(p) {
					t.Fatalf("%s: partial checksum not completed", name)
				}
				if !bytes.Equal(p, full) {
					t.Fatalf("%s: completed to %x, host would send %x", name, p[at:at+2], full[at:at+2])
				}
				// Complete checksums are never touched.
				if completeChecksum(p) {
					t.Fatalf("%s: a verifying packet was rewritten", name)
				}
				// A wrong checksum that is not the pattern stays wrong.
				bad := append([]byte(nil), full...)
				bad[at] ^= 0x40
				keep := append([]byte(nil), bad...)
				if completeChecksum(bad) || !bytes.Equal(bad, keep) {
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
		if completeChecksum(p) || !bytes.Equal(p, keep) {
			t.Fatalf("%s: rewritten", name)
		}
	}
	// A complete checksum that happens to equal the pseudo-header sum: make
	// it so by choosing two payload bytes.
	p, at := l4Packet(false, 6, 100)
	p = partial(p, at)
	binary.BigEndian.PutUint16(p[60:], 0)
	binary.BigEndian.PutUint16(p[60:], ^uint16(refSum(p[20:], pseudoSum(p, 6, len(p)-20))))
	if !l4Verifies(p) {
		t.Fatal("crafted packet does not verify")
	}
	check("complete checksum equal to the pseudo-header sum", p)

	// UDP over IPv4 without a checksum (zero, RFC 768).
	u, at := l4Packet(false, 17, 50)
	binary.BigEndian.PutUint16(u[at:], 0)
	check("udp without checksum", u)

	// Fragments: first (MF) and later (offset) ones.
	f, at := l4Packet(false, 6, 100)
	f = partial(f, at)
	binary.BigEndian.PutUint16(f[6:], 0x2000)
	check("first fragment", f)
	binary.BigEndian.PutUint16(f[6:], 0x0010)
	check("later fragment", f)

	// UDP whose length field disagrees with the IP length.
	u, at = l4Packet(false, 17, 50)
	u = partial(u, at)
	binary.BigEndian.PutUint16(u[24:], 30)
	check("udp length mismatch", u)

	// Other protocols, IPv6 with an extension header, truncated headers.
	i, _ := l4Packet(false, 6, 40)
	i[9] = 1
	check("icmp", i)
	e, at := l4Packet(true, 6, 40)
	e = partial(e, at)
	e[6] = 60
	check("ipv6 destination options first", e)
	check("short tcp", partial(l4Packet(false, 6, 0))[:30])
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
		p, at := l4Packet(v6, proto, rng.IntN(300))
		if rng.IntN(2) == 0 {
			p = partial(p, at)
		}
		for range rng.IntN(3) {
			p[rng.IntN(len(p))] = byte(rng.Uint32())
		}
		if completeChecksum(p) && !l4Verifies(p) {
			t.Fatalf("completed checksum does not verify: %x", p)
		}
	}
}

// TestChecksumCompletionThroughWorker: a host's partial-checksum TCP and
// UDP over IPv4 and IPv6 leave the tunnel (opened by the peer) with
// complete checksums; with NoChecksumCompletion they leave as they came.
func TestChecksumCompletionThroughWorker(t *testing.T) {
	for _, off := range []bool{false, true} {
		r := newRig(t, 128, nil)
		r.w.completeCsum = !off
		for _, v6 := range []bool{false, true} {
			for _, proto := range []uint8{6, 17} {
				full, at := l4Packet(v6, proto, 1000)
				ip := partial(full, at)
				etype := uint16(0x0800)
				if v6 {
					etype = 0x86dd
				}
				if !r.prot.Receive(outMeta(), ether(lanMAC, senderMAC, etype, ip)) {
					t.Fatal("kernel double could not deliver")
				}
				wire, _ := r.step(t)
				if len(wire) != 1 {
					t.Fatalf("v6=%v proto=%d: %d frames on the wire (stats %v)", v6, proto, len(wire), statsOf(r.w))
				}
				outer := wire[0][14:]
				buf := make([]byte, esp.Headroom+len(outer))
				copy(buf[esp.Headroom:], outer)
				s, e, err := r.peerIn.Decap(buf, esp.Headroom, len(outer))
				if err != nil {
					t.Fatal(err)
				}
				inner := buf[s:e]
				if got := l4Verifies(inner); got == off {
					t.Fatalf("v6=%v proto=%d completion off=%v: inner checksum verifies=%v", v6, proto, off, got)
				}
				want := full
				if off {
					want = ip
				}
				want = append([]byte(nil), want...)
				decTTL(want)
				if !bytes.Equal(inner, want) {
					t.Fatalf("v6=%v proto=%d: inner packet differs from what the host meant beyond the TTL", v6, proto)
				}
			}
		}
		want := uint64(4)
		if off {
			want = 0
		}
		if got := r.w.stats.ChecksumsCompleted.Load(); got != want {
			t.Fatalf("completion off=%v: ChecksumsCompleted %d, want %d", off, got, want)
		}
		r.checkFrames(t)
	}
}

// TestZeroAllocsChecksum: completing a checksum on the way allocates
// nothing either.
func TestZeroAllocsChecksum(t *testing.T) {
	r := newRig(t, 0, nil)
	full, at := l4Packet(false, 6, 1360)
	d, tmpl := loadPacket(t, r, partial(full, at))
	frame := r.w.umem.Frame(d.Addr)
	allocs := testing.AllocsPerRun(200, func() {
		copy(frame, tmpl)
		r.w.handleOut(d)
		r.w.tx[sideWire] = r.w.tx[sideWire][:0]
	})
	if allocs != 0 {
		t.Fatalf("handleOut with checksum completion allocates %.1f times per packet", allocs)
	}
	if r.w.stats.ChecksumsCompleted.Load() < 200 {
		t.Fatalf("completed %d checksums", r.w.stats.ChecksumsCompleted.Load())
	}
}

// loadPacket puts an outbound IPv4 packet in a frame from the pool, as the
// kernel would deliver it, and returns its descriptor and a copy of the
// frame to restore before each run.
func loadPacket(t testing.TB, r *rig, ip []byte) (xsk.Desc, []byte) {
	t.Helper()
	meta, pkt := outMeta(), outFrame(ip)
	addr, ok := r.w.pool.Get()
	if !ok {
		t.Fatal("no frame")
	}
	frame := r.w.umem.Frame(addr)
	off := int(r.w.umem.RXOffset())
	copy(frame[off-len(meta):], meta)
	copy(frame[off:], pkt)
	r.w.pool.Put(addr) // as loadFrame: the caller empties the TX batch
	return xsk.Desc{Addr: addr + uint64(off), Len: uint32(len(pkt))}, append([]byte(nil), frame...)
}

// BenchmarkCompleteChecksum: the cost on a packet that needs completion
// (one pass over the L4 bytes) and on one that fails the cheap test.
func BenchmarkCompleteChecksum(b *testing.B) {
	for _, size := range []int{64, 1400} {
		full, at := l4Packet(false, 6, size-40)
		p := partial(full, at)
		work := append([]byte(nil), p...)
		b.Run(fmt.Sprintf("partial/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(work[at:at+2], p[at:at+2])
				if !completeChecksum(work) {
					b.Fatal("not completed")
				}
			}
		})
		b.Run(fmt.Sprintf("complete/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if completeChecksum(full) {
					b.Fatal("rewritten")
				}
			}
		})
	}
}
