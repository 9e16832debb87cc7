//go:build linux

package xsk

import "testing"

// BenchmarkRing measures the user-space half of each ring kind in batches of
// 64, the kernel's half played by the MemKernel's views of the same rings.
func BenchmarkRing(b *testing.B) {
	const batch = 64
	u, err := NewUMEM(UMEMConfig{FrameCount: 4096, FrameSize: 2048})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	s, k, err := u.NewMemSocket(SocketConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	addrs, descs := make([]uint64, batch), make([]Desc, batch)
	b.Run("fill-produce", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := s.Fill.Produce(addrs)
			k.fill.peek(uint32(n))
			k.fill.release(uint32(n))
		}
	})
	b.Run("completion-consume", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, n := k.comp.reserve(batch)
			k.comp.submit()
			if s.Completion.Consume(addrs) != int(n) {
				b.Fatal("short consume")
			}
		}
	})
	b.Run("rx-consume", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, n := k.rx.reserve(batch)
			k.rx.submit()
			if s.RX.Consume(descs) != int(n) {
				b.Fatal("short consume")
			}
		}
	})
	b.Run("tx-produce", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := s.TX.Produce(descs)
			k.tx.peek(uint32(n))
			k.tx.release(uint32(n))
		}
	})
}
