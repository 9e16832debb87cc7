//go:build ike

package ike

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/hack/ike/ikebed"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/ipsec"
)

// The IKE path's figures for BENCHMARKS.md (go test -tags ike -run XXX -bench . ./hack/ike, as root):
//
//	BenchmarkFirstPacket      IKE_AUTH (the initiator's outbound SA reaching xdpsec) → the first
//	                          packet through the new tunnel at h2, with h1 sending every 0.5 ms into
//	                          a trap policy (and the stream's first packet → that one)
//	BenchmarkChildSAs         -ike.children CHILD_SAs (default 1000) of one IKE_SA brought up by charon
//	                          at once (start_action = start) until both daemons hold all their SAs
//	BenchmarkAPIChildSA       the API requests of one CHILD_SA on one side (an SPI, two SAs, in/fwd/out
//	                          policies), one connection per request as the plugin makes them
//	                          (-benchtime 2000x: the gateways have room for 8,000 CHILD_SAs)
var (
	ikeChildren = flag.Int("ike.children", 1000, "CHILD_SAs for BenchmarkChildSAs")
	ikeParallel = flag.Int("ike.parallel", 8, "concurrent clients for BenchmarkAPIChildSA")
)

// udpStream sends a numbered UDP datagram from h1 to h2 every interval and reports when the first
// one arrived; stop ends it.
type udpStream struct {
	first chan time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startUDPStream(b *testing.B, tb *testbed.Testbed, interval time.Duration) *udpStream {
	b.Helper()
	s := &udpStream{first: make(chan time.Time, 1), stop: make(chan struct{})}
	var ln *net.UDPConn
	if err := tb.InNS(testbed.H2, func() (err error) {
		ln, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(testbed.H2Addr4, 0)))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	var out *net.UDPConn
	if err := tb.InNS(testbed.H1, func() (err error) {
		out, err = net.DialUDP("udp", nil, ln.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	s.wg.Go(func() {
		buf := make([]byte, 64)
		for {
			_ = ln.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := ln.Read(buf); err == nil {
				select {
				case s.first <- time.Now():
				default:
				}
			}
			select {
			case <-s.stop:
				ln.Close()
				return
			default:
			}
		}
	})
	s.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		var n uint64
		msg := make([]byte, 64)
		for {
			select {
			case <-s.stop:
				out.Close()
				return
			case <-t.C:
				n++
				binary.BigEndian.PutUint64(msg, n)
				_, _ = out.Write(msg)
			}
		}
	})
	return s
}

func (s *udpStream) close() {
	close(s.stop)
	s.wg.Wait()
}

// BenchmarkFirstPacket measures, per iteration, a fresh CHILD_SA brought up by traffic (gw1's trap
// policy: the card drops the first datagrams of a 2 kHz stream and raises an ACQUIRE, charon
// negotiates): from the moment the initiator's outbound SA is added to xdpsec (the last thing charon
// does for IKE_AUTH) to the first datagram that arrives at h2 through the tunnel, and from the
// stream's first datagram (the ACQUIRE) to that one.
func BenchmarkFirstPacket(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	child := ikebed.LAN("lan")
	child.StartAction = "trap"
	g := startTwoGateways(ctx, b, child, func(c1, c2 *ikebed.Conn) { c2.Children[0].StartAction = "" })
	waitFor(b, "gw1's trap policies", 30*time.Second, func() (bool, string) {
		n := len(ikePolicies(b, g.gw1))
		return n == 11, fmt.Sprint(n, " policies")
	})
	var fromAuth, fromInit []time.Duration
	for b.Loop() {
		b.StopTimer()
		evs := g.gw1.Manager().Events()
		since := evs.Position().Seq
		// ACQUIREs are rate-limited to one per policy per second: the last round's must be older.
		time.Sleep(1500 * time.Millisecond)
		b.StartTimer()
		t0 := time.Now()
		s := startUDPStream(b, g.tb, 500*time.Microsecond)
		var first time.Time
		select {
		case first = <-s.first:
		case <-time.After(30 * time.Second):
			b.Fatal("no packet through the tunnel")
		}
		b.StopTimer()
		s.close()
		var added time.Time
		for _, ev := range readEvents(evs, since) {
			if ev.Type == events.SAAdded && ev.Owner == "ike" && ev.Dst == testbed.GW2WANAddr4.String() {
				added = ev.Time
			}
		}
		if added.IsZero() {
			b.Fatal("no outbound SA added on gw1")
		}
		fromAuth = append(fromAuth, first.Sub(added))
		fromInit = append(fromInit, first.Sub(t0))
		if out, err := g.c1.Swanctl(ctx, "--terminate", "--ike", "gw"); err != nil {
			b.Fatalf("terminate: %v\n%s", err, out)
		}
		waitFor(b, "the tunnel to go", 30*time.Second, func() (bool, string) {
			n := len(ikeSAs(b, g.gw1)) + len(ikeSAs(b, g.gw2))
			return n == 0, fmt.Sprint(n, " SAs")
		})
		b.StartTimer()
	}
	b.ReportMetric(median(fromAuth).Seconds()*1e3, "ms-auth-to-first")
	b.ReportMetric(median(fromInit).Seconds()*1e3, "ms-acquire-to-first")
	b.Logf("IKE_AUTH → first packet: %v; first (trapped) packet → first through the tunnel: %v", fromAuth, fromInit)
}

func readEvents(bus *events.Bus, since uint64) []events.Event {
	var out []events.Event
	for {
		evs, pos, _ := bus.Read(since, make([]events.Event, 0, 256))
		out = append(out, evs...)
		if len(evs) == 0 || since >= pos.Seq {
			return out
		}
		since = evs[len(evs)-1].Seq
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkChildSAs brings up -ike.children CHILD_SAs of one IKE_SA (each its own pair of UDP ports
// between the LANs) and measures until both daemons hold all of their SAs.
func BenchmarkChildSAs(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	n := *ikeChildren
	var children []ikebed.Child
	for i := range n {
		children = append(children, ikebed.Child{Name: fmt.Sprintf("c%d", i),
			LocalTS:  fmt.Sprintf("%s[udp/%d]", testbed.LAN1Prefix4, 10000+i),
			RemoteTS: fmt.Sprintf("%s[udp/%d]", testbed.LAN2Prefix4, 10000+i), StartAction: "start"})
	}
	g := startTwoGateways(ctx, b, ikebed.LAN("lan"), nil)
	c1, c2 := ikebed.Pair(children...)
	c2.Unique = "replace"
	for i := range c2.Children {
		c2.Children[i].StartAction = ""
	}
	var rates []float64
	for b.Loop() {
		b.StopTimer()
		if err := g.c2.Reload(ctx, c2.Swanctl()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := g.c1.Reload(ctx, c1.Swanctl()); err != nil {
			b.Fatal(err)
		}
		waitFor(b, fmt.Sprintf("%d CHILD_SAs", n), 20*time.Minute, func() (bool, string) {
			a, c := len(ikeSAs(b, g.gw1)), len(ikeSAs(b, g.gw2))
			return a == 2*n && c == 2*n, fmt.Sprintf("gw1 %d SAs, gw2 %d SAs", a, c)
		})
		el := time.Since(t0)
		b.StopTimer()
		rates = append(rates, float64(n)/el.Seconds())
		b.Logf("%d CHILD_SAs in %s: %.0f/s; policies gw1 %d, gw2 %d", n, el.Round(time.Millisecond),
			float64(n)/el.Seconds(), len(ikePolicies(b, g.gw1)), len(ikePolicies(b, g.gw2)))
		// Back to nothing for the next round.
		if out, err := g.c1.Swanctl(ctx, "--terminate", "--ike", "gw"); err != nil {
			b.Fatalf("terminate: %v\n%s", err, out)
		}
		for _, c := range []*ikebed.Charon{g.c1, g.c2} {
			if err := c.Reload(ctx, "connections {}\n"); err != nil {
				b.Fatal(err)
			}
		}
		waitFor(b, "the CHILD_SAs to go", 5*time.Minute, func() (bool, string) {
			a, c := len(ikeSAs(b, g.gw1)), len(ikeSAs(b, g.gw2))
			return a+c == 0, fmt.Sprintf("gw1 %d SAs, gw2 %d SAs", a, c)
		})
		b.StartTimer()
	}
	slices.Sort(rates)
	b.ReportMetric(rates[len(rates)/2], "childsa/s")
}

// BenchmarkAPIChildSA measures the daemon's side alone: the requests one CHILD_SA costs one gateway
// (what kernel-xdpsec sends: an SPI, the inbound and the outbound SA, the in, fwd and out policies),
// from -ike.parallel clients at once, one connection per request; then their deletion.
func BenchmarkAPIChildSA(b *testing.B) {
	needRoot(b)
	ctx := context.Background()
	tb, err := testbed.New(ctx, testbed.Options{Tag: "ikeapi"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tb.Close() })
	gw, err := ikebed.StartGateway(ctx, tb, testbed.GW1, b.TempDir()+"/gw1.sock", testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = gw.Close() })
	var mu sync.Mutex
	next := uint32(0)
	key := make(sadb.Key, 20)
	b.SetParallelism(*ikeParallel)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := api.NewClient(gw.Socket)
		c.NoKeepAlive()
		defer c.Close()
		for pb.Next() {
			mu.Lock()
			next++
			i := next
			mu.Unlock()
			if err := oneChildSA(ctx, c, i, key); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "childsa/s")
	m := gw.Manager()
	b.Logf("daemon holds %d SAs, %d policies", len(m.Store().ListSAs(false)), len(m.Store().ListPolicies()))
}

// oneChildSA makes the requests of one CHILD_SA: reqid i, TS on UDP port 10000+i.
func oneChildSA(ctx context.Context, c *api.Client, i uint32, key sadb.Key) error {
	l, err := c.AllocSPI(ctx, api.SPIRequest{Dst: testbed.GW1WANAddr4, Proto: ipsec.ProtoESP, Min: 0xc0000000, Max: 0xcfffffff})
	if err != nil {
		return err
	}
	sa := func(spi uint32, src, dst netip.Addr, dir ipsec.Dir) sadb.SA {
		return sadb.SA{Owner: sadb.OwnerIKE, SPI: spi, Src: src, Dst: dst, Proto: ipsec.ProtoESP, Mode: ipsec.ModeTunnel,
			Reqid: i, Dir: &dir, AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: key, Bits: 128}, ESN: true,
			ReplayWindow: 32, Limits: sadb.Lifetime{SoftAddSeconds: 3000, HardAddSeconds: 3600}}
	}
	if _, err := c.AddSA(ctx, sa(l.SPI, testbed.GW2WANAddr4, testbed.GW1WANAddr4, ipsec.DirIn)); err != nil {
		return err
	}
	if _, err := c.AddSA(ctx, sa(0xd0000000+i, testbed.GW1WANAddr4, testbed.GW2WANAddr4, ipsec.DirOut)); err != nil {
		return err
	}
	port := ipsec.Port(uint16(10000 + i%50000))
	for _, p := range []struct {
		dir      ipsec.Dir
		src, dst netip.Prefix
		tsrc     netip.Addr
		tdst     netip.Addr
	}{
		{ipsec.DirIn, testbed.LAN2Prefix4, testbed.LAN1Prefix4, testbed.GW2WANAddr4, testbed.GW1WANAddr4},
		{ipsec.DirFwd, testbed.LAN2Prefix4, testbed.LAN1Prefix4, testbed.GW2WANAddr4, testbed.GW1WANAddr4},
		{ipsec.DirOut, testbed.LAN1Prefix4, testbed.LAN2Prefix4, testbed.GW1WANAddr4, testbed.GW2WANAddr4},
	} {
		if _, err := c.AddPolicy(ctx, sadb.Policy{Owner: sadb.OwnerIKE, Dir: p.dir, Priority: 366000, Action: ipsec.ActionProtect,
			Sel:  ipsec.Selector{Src: p.src, Dst: p.dst, Proto: ipsec.ProtoUDP, SrcPorts: port, DstPorts: port},
			Tmpl: &sadb.Tmpl{Reqid: i, Proto: ipsec.ProtoESP, Mode: ipsec.ModeTunnel, Src: p.tsrc, Dst: p.tdst}}); err != nil {
			return err
		}
	}
	return nil
}
