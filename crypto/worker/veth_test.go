//go:build linux

package worker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
	"github.com/xdpsec/xdpsec/loader/xsk/xsktest"
)

// vethResolver sends every inner destination to the LAN peer.
type vethResolver struct {
	ifindex int
	src     [6]byte
	dst     [6]byte
}

func (r *vethResolver) NextHop(netip.Addr) (int, [6]byte, [6]byte, bool) {
	return r.ifindex, r.src, r.dst, true
}

// vethGateway is a worker on real AF_XDP sockets in a gateway namespace,
// between two veth pairs that lead to a LAN and a WAN namespace — xs-lan
// (protected side) and xs-wan (wire side), sharing one UMEM — with a
// stand-in for the card: XDP programs that put fixed metadata in front of
// every packet (outbound: SA 1 and the wire next hop; inbound: SA 2) and
// redirect it to the worker.
type vethGateway struct {
	ns         *xsktest.NS // the gateway: xs-lan and xs-wan
	lanNS      *xsktest.NS // the protected network: xs-lanp
	wanNS      *xsktest.NS // the wire: xs-wanp
	lan, wan   xsktest.Veth
	rLan, rWan *xsktest.Redirect
	ps, ws     *xsk.Socket
	w          *Worker
	stats      *StatsTable
	stop       func()
}

func newVethGateway(t testing.TB, frames uint32, ring uint32, opts ...func(*Config)) *vethGateway {
	t.Helper()
	g := &vethGateway{}
	g.ns = xsktest.NewNS(t, "wkgw")
	g.lanNS = xsktest.NewNS(t, "wklan")
	g.wanNS = xsktest.NewNS(t, "wkwan")
	g.lan = xsktest.AddVeth(t, g.ns, "xs-lan", g.lanNS, "xs-lanp")
	g.wan = xsktest.AddVeth(t, g.ns, "xs-wan", g.wanNS, "xs-wanp")

	outM := metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: uint32(g.wan.Index)})
	copy(outM[20:26], g.wan.MAC[:])
	copy(outM[26:32], g.wan.PeerMAC[:])
	g.rLan = xsktest.AttachRedirect(t, g.ns, g.lan.Index, outM)
	g.rWan = xsktest.AttachRedirect(t, g.ns, g.wan.Index, inMeta())

	u, err := xsk.NewUMEM(xsk.UMEMConfig{FrameCount: frames})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	pools, _ := u.Pools(1)
	sc := xsk.SocketConfig{FillSize: ring, CompletionSize: ring, RXSize: ring, TXSize: ring}
	if err := g.ns.Do(func() (err error) {
		sc.Ifindex = g.lan.Index
		if g.ps, err = u.Open(sc); err != nil {
			return err
		}
		sc.Ifindex = g.wan.Index
		g.ws, err = u.Open(sc)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.ps.Close(); g.ws.Close() })
	if err := g.rLan.Map.Put(uint32(0), uint32(g.ps.FD())); err != nil {
		t.Fatal(err)
	}
	if err := g.rWan.Map.Put(uint32(0), uint32(g.ws.FD())); err != nil {
		t.Fatal(err)
	}

	sas, _ := NewSATable(16, 1500)
	if err := sas.Install(outIdx, &Entry{SA: newSA(t, spiOut, outerSrc, outerDst, 0), Dir: ipsec.DirOut}); err != nil {
		t.Fatal(err)
	}
	if err := sas.Install(inIdx, &Entry{SA: newSA(t, spiOut, outerSrc, outerDst, 64), Dir: ipsec.DirIn, Check: lanCheck()}); err != nil {
		t.Fatal(err)
	}
	g.stats = NewStatsTable(16)
	cfg := Config{Protected: g.ps, Wire: g.ws, Pool: pools[0], SAs: sas, SAStats: g.stats,
		Resolver: &vethResolver{ifindex: g.lan.Index, src: g.lan.MAC, dst: g.lan.PeerMAC}, CPU: -1}
	for _, o := range opts {
		o(&cfg)
	}
	g.w, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.w.Close() })
	done := make(chan error, 1)
	go func() { done <- g.w.Run() }()
	stopped := false
	g.stop = func() {
		if !stopped {
			stopped = true
			// Take the sockets out of the card's maps, as the daemon does
			// before it stops the workers.
			_ = g.rLan.Map.Delete(uint32(0))
			_ = g.rWan.Map.Delete(uint32(0))
			g.w.Stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(g.stop)
	return g
}

// TestVethWorker: a plaintext frame sent into xs-lan leaves xs-wan as ESP;
// an ESP frame sent into xs-wan leaves xs-lan as the inner packet.
func TestVethWorker(t *testing.T) {
	xsktest.RequireRoot(t)
	g := newVethGateway(t, 1024, 128)
	lan, wan, w, stats := g.lan, g.wan, g.w, g.stats
	lanPort := xsktest.OpenPacketPort(t, g.lanNS, lan.PeerIdx)
	wanPort := xsktest.OpenPacketPort(t, g.wanNS, wan.PeerIdx)
	peer := newSA(t, spiOut, outerSrc, outerDst, 0) // the far gateway, same key

	// Outbound: plaintext in at the LAN, ESP out at the WAN.
	const count = 20
	for i := range count {
		ip := ipv4UDP(100+i*50, innerSrc, innerDst, 9, 9, true, 64)
		if err := lanPort.Send(ether(lan.MAC, lan.PeerMAC, 0x0800, ip)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	seen := 0
	for deadline := time.Now().Add(5 * time.Second); seen < count && time.Now().Before(deadline); {
		n, err := wanPort.Recv(buf, time.Until(deadline))
		if err != nil || n == 0 {
			break
		}
		f := buf[:n]
		if binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14+9] != 50 {
			continue // the LAN peer's own IPv6 chatter, sealed too, or not ours
		}
		if !bytes.Equal(f[0:6], wan.PeerMAC[:]) || !bytes.Equal(f[6:12], wan.MAC[:]) {
			t.Fatalf("outer ethernet %x", f[:14])
		}
		outer := f[14:]
		pb := make([]byte, esp.Headroom+len(outer))
		copy(pb[esp.Headroom:], outer)
		s, e, err := peer.Decap(pb, esp.Headroom, len(outer))
		if err != nil {
			t.Fatalf("peer cannot open the worker's ESP: %v", err)
		}
		if pb[s]>>4 != 4 || pb[s+9] != 17 {
			continue
		}
		want := ipv4UDP(100+seen*50, innerSrc, innerDst, 9, 9, true, 64)
		packet.DecTTL(want)
		if !bytes.Equal(pb[s:e], want) {
			t.Fatalf("inner packet %d differs", seen)
		}
		seen++
	}
	if seen != count {
		t.Fatalf("%d of %d packets came out ESP (stats %v)", seen, count, statsOf(w))
	}

	// Inbound: ESP in at the WAN, the inner packet out at the LAN.
	peerOut := newSA(t, spiOut, outerSrc, outerDst, 0)
	for i := range count {
		ip := ipv4UDP(100+i*50, innerSrc, innerDst, 9, 9, true, 64)
		pb := make([]byte, esp.Headroom+len(ip)+esp.Tailroom)
		copy(pb[esp.Headroom:], ip)
		s, e, err := peerOut.Encap(pb, esp.Headroom, len(ip))
		if err != nil {
			t.Fatal(err)
		}
		if err := wanPort.Send(ether(wan.MAC, wan.PeerMAC, 0x0800, pb[s:e])); err != nil {
			t.Fatal(err)
		}
	}
	seen = 0
	for deadline := time.Now().Add(5 * time.Second); seen < count && time.Now().Before(deadline); {
		n, err := lanPort.RecvUDP(buf, time.Until(deadline))
		if err != nil || n == 0 {
			break
		}
		f := buf[:n]
		if !bytes.Equal(f[0:6], lan.PeerMAC[:]) || !bytes.Equal(f[6:12], lan.MAC[:]) {
			t.Fatalf("inner ethernet %x", f[:14])
		}
		want := ipv4UDP(100+seen*50, innerSrc, innerDst, 9, 9, true, 64)
		packet.DecTTL(want)
		if !bytes.Equal(f[14:], want) {
			t.Fatalf("delivered packet %d differs", seen)
		}
		seen++
	}
	if seen != count {
		t.Fatalf("%d of %d ESP packets came out decrypted (stats %v)", seen, count, statsOf(w))
	}
	if st := stats.SA(inIdx); st.Packets.Load() != count {
		t.Fatalf("inbound SA counted %d packets", st.Packets.Load())
	}

	if p, wi, err := g.w.SocketStatistics(); err != nil || p.RXDropped+wi.RXDropped+p.TXInvalidDescs+wi.TXInvalidDescs != 0 {
		t.Fatalf("kernel socket statistics %+v / %+v (%v)", p, wi, err)
	}
	// Stop, and account for every frame.
	g.stop()
	if a := w.Frames(); !a.Balanced() {
		t.Fatalf("frames not accounted for after Run: %+v", a)
	}
	t.Logf("mode %v, stats %v", g.ps.Mode(), statsOf(w))
}

// BenchmarkVethWorker measures the outbound data path end to end on veth:
// a live-frames generator sends plaintext UDP into xs-lan, the stand-in card
// redirects it to the worker, which seals it (AES-128-GCM) and transmits it
// on xs-wan, whose peer drops it in XDP. ns/op is per sealed packet. The
// variants try the worker's options: a bigger batch, the goroutine locked to
// a thread, the thread pinned to CPU 1, busy polling.
func BenchmarkVethWorker(b *testing.B) {
	variants := []struct {
		name string
		ring uint32 // every ring's size (default 4096)
		opt  func(*Config)
	}{
		{"default", 0, func(*Config) {}},
		{"batch256", 0, func(c *Config) { c.BatchSize = 256 }},
		{"ring2048", 2048, func(*Config) {}},
		{"ring8192", 8192, func(*Config) {}},
		{"ring1024", 1024, func(*Config) {}},
		{"locked", 0, func(c *Config) { c.LockOSThread = true }},
		{"pinned1", 0, func(c *Config) { c.CPU = 1 }},
		{"busypoll", 0, func(c *Config) { c.BusyPoll = true }},
	}
	for _, v := range variants {
		for _, size := range []int{64, 1400} {
			ring := v.ring
			if ring == 0 {
				ring = 4096
			}
			b.Run(fmt.Sprintf("%s/%d", v.name, size), func(b *testing.B) {
				benchVethWorker(b, size, ring, v.opt)
			})
		}
	}
}

func benchVethWorker(b *testing.B, size int, ring uint32, opt func(*Config)) {
	{
		{
			xsktest.RequireRoot(b)
			g := newVethGateway(b, 65536, ring, opt)
			xsktest.AttachVerdict(b, g.wanNS, g.wan.PeerIdx, 1) // XDP_DROP
			ip := ipv4UDP(size-14, innerSrc, innerDst, 9, 9, true, 64)
			stopGen := xsktest.StartGenerator(b, g.lanNS, g.lan.PeerIdx, ether(g.lan.MAC, g.lan.PeerMAC, 0x0800, ip))
			defer stopGen()
			deadline := time.Now().Add(20 * time.Second)
			for g.w.stats.Sealed.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if g.w.stats.Sealed.Load() == 0 {
				b.Fatalf("nothing sealed: %v", statsOf(g.w))
			}
			start, s0 := time.Now(), g.w.stats.Sealed.Load()
			k0, p0 := g.w.stats.Kicks.Load(), g.w.stats.Polls.Load()
			st0, _, _ := g.w.SocketStatistics()
			b.ResetTimer()
			for g.w.stats.Sealed.Load()-s0 < uint64(b.N) {
				time.Sleep(200 * time.Microsecond)
			}
			el := time.Since(start)
			b.StopTimer()
			sent := stopGen()
			n := g.w.stats.Sealed.Load() - s0
			b.ReportMetric(float64(n)/el.Seconds(), "pps")
			b.ReportMetric(float64(n)*float64(size)*8/el.Seconds()/1e9, "Gbit/s")
			// How often the worker slept and kicked, and what the kernel lost
			// before it (RX ring full, fill ring empty), per sealed packet.
			st1, _, _ := g.w.SocketStatistics()
			b.ReportMetric(float64(g.w.stats.Kicks.Load()-k0)/float64(n), "kicks/pkt")
			b.ReportMetric(float64(g.w.stats.Polls.Load()-p0)/float64(n), "polls/pkt")
			b.ReportMetric(float64(st1.RXRingFull-st0.RXRingFull)/float64(n), "rxfull/pkt")
			b.ReportMetric(float64(st1.RXFillRingEmpty-st0.RXFillRingEmpty)/float64(n), "fillempty/pkt")
			_ = sent
		}
	}
}
