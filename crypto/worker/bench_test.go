//go:build linux

package worker

import (
	"fmt"
	"testing"
)

// BenchmarkHandleOut measures the per-packet outbound work on an in-memory
// frame: metadata, SA lookup, TTL, Encap (AES-128-GCM), Ethernet header.
// Each iteration first restores the frame (a copy of its ~1.5 KB), which
// BenchmarkFrameRestore measures alone.
func BenchmarkHandleOut(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			r := newRig(b, 0, nil)
			d, tmpl := loadFrame(b, r, true, size)
			frame := r.w.umem.Frame(d.Addr)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(frame, tmpl)
				r.w.handleOut(d)
				r.w.tx[sideWire] = r.w.tx[sideWire][:0]
			}
			if r.w.stats.Sealed.Load() == 0 {
				b.Fatal("nothing sealed")
			}
		})
	}
}

// BenchmarkHandleIn measures the per-packet inbound work: Decap (replay
// window off, so one ciphertext can be reused), policy check, TTL, next hop,
// Ethernet header.
func BenchmarkHandleIn(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			r := newRig(b, 0, nil)
			d, tmpl := loadFrame(b, r, false, size)
			frame := r.w.umem.Frame(d.Addr)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(frame, tmpl)
				r.w.handleIn(d)
				r.w.tx[sideProtected] = r.w.tx[sideProtected][:0]
			}
			if r.w.stats.Opened.Load() == 0 {
				b.Fatalf("nothing opened: %v", statsOf(r.w))
			}
		})
	}
}

// BenchmarkEncapOnly is the engine's Encap on the same frame, the floor
// the worker's outbound overhead adds to.
func BenchmarkEncapOnly(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			r := newRig(b, 0, nil)
			d, tmpl := loadFrame(b, r, true, size)
			frame := r.w.umem.Frame(d.Addr)
			l3 := int(d.Addr-r.w.umem.FrameBase(d.Addr)) + 14
			sa := r.sas.Lookup(outIdx).SA
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(frame, tmpl)
				if _, _, err := sa.Encap(frame, l3, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFrameRestore is the frame copy the two benchmarks above include.
func BenchmarkFrameRestore(b *testing.B) {
	r := newRig(b, 0, nil)
	d, tmpl := loadFrame(b, r, true, 64)
	frame := r.w.umem.Frame(d.Addr)
	for b.Loop() {
		copy(frame, tmpl)
	}
}
