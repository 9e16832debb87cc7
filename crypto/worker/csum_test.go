//go:build linux

package worker

import (
	"bytes"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet"
	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// TestChecksumCompletionThroughWorker: a host's partial-checksum TCP and
// UDP over IPv4 and IPv6 leave the tunnel (opened by the peer) with
// complete checksums; with NoChecksumCompletion they leave as they came.
func TestChecksumCompletionThroughWorker(t *testing.T) {
	for _, off := range []bool{false, true} {
		r := newRig(t, 128, nil)
		r.w.completeCsum = !off
		for _, v6 := range []bool{false, true} {
			for _, proto := range []uint8{6, 17} {
				full, at := packettest.L4Packet(v6, proto, 1000)
				ip := packettest.Partial(full, at)
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
				if got := packettest.L4Verifies(inner); got == off {
					t.Fatalf("v6=%v proto=%d completion off=%v: inner checksum verifies=%v", v6, proto, off, got)
				}
				want := full
				if off {
					want = ip
				}
				want = append([]byte(nil), want...)
				packet.DecTTL(want)
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
	full, at := packettest.L4Packet(false, 6, 1360)
	d, tmpl := loadPacket(t, r, packettest.Partial(full, at))
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
