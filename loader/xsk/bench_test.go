//go:build linux

package xsk_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/loader/xsk"
	"github.com/xdpsec/xdpsec/loader/xsk/xsktest"
)

// benchFrames is the UMEM size of the benchmarks: PERF-NOTES found 65,536
// frames lossless on this shared machine.
const benchFrames = 65536

// BenchmarkVethRX receives frames that a live-frames generator sends from
// the peer of a veth (copy mode, native XDP redirect into the socket) with a
// busy-polling loop that recycles each batch straight into the fill ring.
// ns/op is per received packet; pps is reported too.
func BenchmarkVethRX(b *testing.B) {
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			xsktest.RequireRoot(b)
			ns := xsktest.NewNS(b, "xskbrx")
			v := xsktest.AddVeth(b, ns, "xs-a", ns, "xs-b")
			redir := xsktest.AttachRedirect(b, ns, v.Index, nil)
			u, pool := newUMEM(b, benchFrames)
			s := openSocket(b, ns, u, xsk.SocketConfig{Ifindex: v.Index, FillSize: 8192, CompletionSize: 2048, RXSize: 8192, TXSize: 2048})
			if err := redir.Map.Put(uint32(0), uint32(s.FD())); err != nil {
				b.Fatal(err)
			}
			addrs := make([]uint64, 8192)
			n := pool.GetN(addrs)
			s.Fill.Produce(addrs[:n])

			stop := xsktest.StartGenerator(b, ns, v.PeerIdx, xsktest.UDPFrame(size, v.MAC, v.PeerMAC, 1, 0x5a))
			defer stop()
			descs := make([]xsk.Desc, 128)
			recycle := make([]uint64, 128)
			got := 0
			deadline := time.Now().Add(30 * time.Second)
			for got == 0 && time.Now().Before(deadline) {
				got = s.RX.Consume(descs)
				for i, d := range descs[:got] {
					recycle[i] = d.Addr
				}
				s.Fill.Produce(recycle[:got])
			}
			if got == 0 {
				b.Fatal("no packet arrived")
			}
			st0, _ := s.Statistics()
			b.ResetTimer()
			start := time.Now()
			for got = 0; got < b.N; {
				k := s.RX.Consume(descs)
				for i, d := range descs[:k] {
					recycle[i] = d.Addr
				}
				// The fill ring has room for every frame the RX ring gave back.
				s.Fill.Produce(recycle[:k])
				got += k
			}
			el := time.Since(start)
			b.StopTimer()
			sent := stop()
			st, _ := s.Statistics()
			b.ReportMetric(float64(got)/el.Seconds(), "pps")
			b.ReportMetric(float64(st.RXDropped+st.RXRingFull+st.RXFillRingEmpty-st0.RXDropped-st0.RXRingFull-st0.RXFillRingEmpty)/float64(got), "kdrops/pkt")
			_ = sent
		})
	}
}

// BenchmarkVethTX transmits frames from a socket on one end of a veth whose
// peer drops them in XDP, kicking with sendto as need-wakeup asks (always,
// in copy mode). ns/op is per completed packet.
func BenchmarkVethTX(b *testing.B) {
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			xsktest.RequireRoot(b)
			ns := xsktest.NewNS(b, "xskbtx")
			v := xsktest.AddVeth(b, ns, "xs-a", ns, "xs-b")
			xsktest.AttachVerdict(b, ns, v.PeerIdx, 1) // XDP_DROP on the receiver
			u, pool := newUMEM(b, 16384)
			s := openSocket(b, ns, u, xsk.SocketConfig{Ifindex: v.Index, FillSize: 2048, CompletionSize: 2048, RXSize: 2048, TXSize: 2048})
			frame := xsktest.UDPFrame(size, v.PeerMAC, v.MAC, 1, 0x5a)
			for _, a := range pool.Free() {
				copy(u.Frame(a)[u.RXOffset():], frame)
			}
			descs := make([]xsk.Desc, 128)
			comp := make([]uint64, 256)
			inFlight, done, kicks := 0, 0, 0
			b.ResetTimer()
			start := time.Now()
			for done < b.N {
				n := 0
				for n < len(descs) {
					a, ok := pool.Get()
					if !ok {
						break
					}
					descs[n] = xsk.Desc{Addr: a + uint64(u.RXOffset()), Len: uint32(size)}
					n++
				}
				p := s.TX.Produce(descs[:n])
				for _, d := range descs[p:n] {
					pool.Put(d.Addr)
				}
				inFlight += p
				if did, err := s.Kick(); err != nil {
					b.Fatal(err)
				} else if did {
					kicks++
				}
				c := s.Completion.Consume(comp)
				for _, a := range comp[:c] {
					pool.Put(a)
				}
				inFlight -= c
				done += c
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(done)/el.Seconds(), "pps")
			b.ReportMetric(float64(done)/float64(max(kicks, 1)), "pkts/kick")
			st, _ := s.Statistics()
			if st.TXInvalidDescs != 0 {
				b.Fatalf("kernel refused %d descriptors", st.TXInvalidDescs)
			}
		})
	}
}
