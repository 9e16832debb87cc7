package daemon

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/crypto/worker"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/loader"
)

// The daemon plugs these into the workers.
var (
	_ worker.NextHopResolver = (*neighCache)(nil)
	_ worker.PMTU            = (*pmtuResponder)(nil)
)

func needRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "starting a gateway builds namespaces and loads XDP and AF_XDP")
}

// startPair builds a testbed and starts both gateways in it, in-process.
func startPair(t *testing.T, tunnels []testbed.Tunnel) (*testbed.Testbed, *Daemon, *Daemon) {
	t.Helper()
	return startPairWith(t, tunnels, testbed.Options{Tag: "dmn"}, nil)
}

// startPairWith is startPair on a testbed built with o; edit, if not nil, rewrites the two
// configuration files first, and each of more adjusts each gateway's Options.
func startPairWith(t testing.TB, tunnels []testbed.Tunnel, o testbed.Options,
	edit func(y1, y2 string) (string, string), more ...func(testbed.Node, *Options)) (*testbed.Testbed, *Daemon, *Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tb, err := testbed.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	y1, y2, err := tb.GatewayConfigs(tunnels)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		y1, y2 = edit(y1, y2)
	}
	var ds [2]*Daemon
	for i, y := range []string{y1, y2} {
		gw := []testbed.Node{testbed.GW1, testbed.GW2}[i]
		cfg, err := config.Parse(string(gw)+".yaml", []byte(y))
		if err != nil {
			t.Fatalf("parse %s config: %v\n%s", gw, err, y)
		}
		ns, err := tb.NsHandle(gw)
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{NetNS: ns, NoAPI: true, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("gw", string(gw))}
		for _, f := range more {
			f(gw, &opts)
		}
		d, err := Start(ctx, cfg, opts)
		ns.Close()
		if err != nil {
			t.Fatalf("start %s: %v", gw, err)
		}
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Errorf("close %s: %v", gw, err)
			}
		})
		ds[i] = d
	}
	return tb, ds[0], ds[1]
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func TestGatewayPairPing(t *testing.T) {
	needRoot(t)
	tb, d1, d2 := startPair(t, testbed.DefaultTunnels)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The first packets may find the next hop unresolved (counted, dropped): warm up, counting
	// what is lost within testbed.MaxWarmUpLoss, then require every echo to come back.
	warmUp(ctx, t, tb, testbed.H1, testbed.H2Addr4, testbed.H2Addr6)
	warmUp(ctx, t, tb, testbed.H2, testbed.H1Addr4, testbed.H1Addr6)
	before := map[*Daemon]map[saKey]uint64{d1: espPackets(d1), d2: espPackets(d2)}
	const echoes = 3
	for _, dst := range []struct {
		from testbed.Node
		a    netip.Addr
	}{{testbed.H1, testbed.H2Addr4}, {testbed.H1, testbed.H2Addr6},
		{testbed.H2, testbed.H1Addr4}, {testbed.H2, testbed.H1Addr6}} {
		if err := tb.Ping(ctx, dst.from, dst.a, echoes); err != nil {
			t.Errorf("ping %s from %s: %v", dst.a, dst.from, err)
		}
	}
	// Through the tunnel, not around it: each SA, at both ends, carried every echo request and
	// reply of its direction — h1's requests and h2's replies, and the reverse — and nothing else.
	// The workers add to the counters after each batch: wait for them, then require the exact count.
	want := map[saKey]uint64{}
	for _, tun := range testbed.DefaultTunnels {
		for _, spi := range []uint32{tun.SPI, tun.SPI + 1} {
			want[saKey{spi, "out"}], want[saKey{spi, "in"}] = 2*echoes, 2*echoes
		}
	}
	for _, d := range []*Daemon{d1, d2} {
		delta := func() map[saKey]uint64 {
			now, out := espPackets(d), map[saKey]uint64{}
			for k, n := range now {
				if n != before[d][k] {
					out[k] = n - before[d][k]
				}
			}
			return out
		}
		testutil.Eventually(5*time.Second, func() bool { return maps.Equal(delta(), wantOn(d, want)) })
		if got := delta(); !maps.Equal(got, wantOn(d, want)) {
			t.Errorf("%s: ESP packets per SA during the pings %v, want %v", d.Info.Instance, got, wantOn(d, want))
		}
	}
	for _, d := range []*Daemon{d1, d2} {
		t.Logf("%s: SAs %+v", d.Info.Instance, d.SAs())
		t.Logf("%s: workers %v", d.Info.Instance, d.WorkerStats())
		if g, err := d.drv.GlobalCounters(); err == nil {
			t.Logf("%s: card %v", d.Info.Instance, nonzero(g))
		}
	}
}

// saKey names one end of an SA: its SPI and its direction at this gateway.
type saKey struct {
	spi uint32
	dir string
}

// espPackets reads the packets each SA of d sealed (out) or opened (in).
func espPackets(d *Daemon) map[saKey]uint64 {
	out := map[saKey]uint64{}
	for _, sa := range d.SAs() {
		out[saKey{sa.SPI, sa.Dir}] = sa.Packets
	}
	return out
}

// wantOn keeps of want the SA ends d holds: gw1 seals SPI n and opens n+1, gw2 the reverse.
func wantOn(d *Daemon, want map[saKey]uint64) map[saKey]uint64 {
	out := map[saKey]uint64{}
	for k := range espPackets(d) {
		if n, ok := want[k]; ok {
			out[k] = n
		}
	}
	return out
}

// warmUp sends first echoes from one host to each of dsts until one is answered (testbed.WarmUp):
// losses within testbed.MaxWarmUpLoss are inherent, more fail the test.
func warmUp(ctx context.Context, t *testing.T, tb *testbed.Testbed, from testbed.Node, dsts ...netip.Addr) {
	t.Helper()
	for _, dst := range dsts {
		lost, err := tb.WarmUp(ctx, from, dst)
		if err != nil {
			t.Fatal(err)
		}
		if lost > 0 {
			t.Logf("warm-up %s → %s: %d first echo(es) lost while the gateways resolved their next hops", from, dst, lost)
		}
	}
}

func nonzero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestAcquireWhenSAIsMissing deletes gw1's outbound IPv4 SA: the policy then has no usable SA, so
// h1's packets must be dropped (never sent in plaintext) and the control plane must report an
// ACQUIRE for the policy, read from the card's ring.
func TestAcquireWhenSAIsMissing(t *testing.T) {
	needRoot(t)
	tb, d1, _ := startPair(t, testbed.DefaultTunnels)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub := d1.Manager().Subscribe(64)
	defer sub.Close()
	if _, err := d1.Manager().DeleteSA(sadb.Ref{Name: "v4-gw1-to-gw2"}); err != nil {
		t.Fatal(err)
	}
	if err := d1.Manager().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := d1.Card().ReasonCounts()
	r, err := tb.PingCount(ctx, testbed.H1, testbed.H2Addr4, 2, testbed.PingOptions{Wait: time.Second})
	if err != nil || r.Sent != 2 {
		t.Fatalf("ping: %+v %v", r, err)
	}
	if r.Received != 0 {
		t.Fatalf("%d of %d echoes got through a PROTECT policy without an SA", r.Received, r.Sent)
	}
	for {
		select {
		case ev := <-sub.C():
			if ev.Type != events.Acquire {
				continue
			}
			if ev.Policy != "v4-out" && ev.PolicyID == 0 {
				t.Errorf("ACQUIRE for an unexpected policy: %+v", ev)
			}
			after, _ := d1.Card().ReasonCounts()
			t.Logf("ACQUIRE %+v; card OutNoStates %d→%d", ev, before["OutNoStates"], after["OutNoStates"])
			if d := after["OutNoStates"] - before["OutNoStates"]; d != uint64(r.Sent) {
				t.Errorf("the card counted %d packets under OutNoStates, want the %d echo requests", d, r.Sent)
			}
			stats, err := d1.Manager().GlobalCounters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := stats["WorkerSealed"]; !ok {
				t.Errorf("global counters lack the workers': %v", stats)
			}
			return
		case <-ctx.Done():
			t.Fatal("no ACQUIRE event")
		}
	}
}

// TestTransportModeKeepsTTL runs an IPv4 transport-mode SA pair between h1 and h2 themselves
// beside an IPv6 tunnel: in tunnel mode each gateway is a router hop and decrements the inner
// hop limit (64 → 62 at h1 after two gateways), in transport mode the packet is the endpoint's
// own and arrives with the TTL it was sent with.
func TestTransportModeKeepsTTL(t *testing.T) {
	needRoot(t)
	tb, d1, d2 := startPair(t, []testbed.Tunnel{
		{Name: "tr4", Alg: testbed.AlgAESGCM, SPI: 0x3000, Transport: true},
		{Name: "v6", IPv6: true, Alg: testbed.AlgAESGCM, SPI: 0x2000},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	warmUp(ctx, t, tb, testbed.H1, testbed.H2Addr4, testbed.H2Addr6)
	for _, c := range []struct {
		dst netip.Addr
		ttl string
	}{{testbed.H2Addr4, "ttl=64"}, {testbed.H2Addr6, "ttl=62"}} {
		r, err := tb.PingCount(ctx, testbed.H1, c.dst, 3, testbed.PingOptions{Replies: true})
		if err != nil || r.Received != 3 {
			t.Errorf("ping %s: %d of 3 echoes answered (%v)\n%s", c.dst, r.Received, err, r.Output)
			continue
		}
		if n := strings.Count(r.Output, " "+c.ttl+" "); n != 3 {
			t.Errorf("ping %s: %d of 3 replies arrive with %s:\n%s", c.dst, n, c.ttl, r.Output)
		}
	}
	for _, d := range []*Daemon{d1, d2} {
		var out, in uint64
		for _, sa := range d.SAs() {
			if sa.SPI == 0x3000 || sa.SPI == 0x3001 {
				if sa.Dir == "out" {
					out += sa.Packets
				} else {
					in += sa.Packets
				}
			}
		}
		if out == 0 || in == 0 {
			t.Errorf("%s: the transport SAs sealed %d and opened %d packets; the pings went around them",
				d.Info.Instance, out, in)
		}
	}
}

// TestFirstPacketToAKnownHost: hosts that spoke to their gateway before (here: pinged its LAN
// address, which makes them ARP and solicit it) are known to its neighbour cache, so the very
// first packet through the tunnel to them, and its reply, get through — no no_next_hop_in drop.
func TestFirstPacketToAKnownHost(t *testing.T) {
	needRoot(t)
	tb, d1, d2 := startPair(t, testbed.DefaultTunnels)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		from testbed.Node
		gw   []string
	}{{testbed.H1, []string{testbed.GW1LANAddr4.String(), testbed.GW1LANAddr6.String()}},
		{testbed.H2, []string{testbed.GW2LANAddr4.String(), testbed.GW2LANAddr6.String()}}} {
		for _, a := range c.gw {
			if _, err := tb.Run(ctx, c.from, "ping", "-n", "-q", "-c", "1", "-W", "2", a); err != nil {
				t.Fatalf("ping the gateway: %v", err)
			}
		}
	}
	// The neighbour events reach the caches asynchronously.
	for _, d := range []*Daemon{d1, d2} {
		for end := time.Now().Add(5 * time.Second); d.Neighbours().Stats().Learned < 2; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s learnt %d hosts, want 2", d.Info.Instance, d.Neighbours().Stats().Learned)
			}
		}
	}
	for _, dst := range []string{testbed.H2Addr4.String(), testbed.H2Addr6.String()} {
		if out, err := tb.Run(ctx, testbed.H1, "ping", "-n", "-c", "1", "-W", "2", dst); err != nil {
			t.Errorf("the first echo to %s was lost: %v\n%s", dst, err, out)
		}
	}
	for _, d := range []*Daemon{d1, d2} {
		if n := d.WorkerStats()["no_next_hop_in"]; n != 0 {
			t.Errorf("%s dropped %d packets for want of a next hop", d.Info.Instance, n)
		}
	}
}

// TestHostOwnTrafficThroughVeth is the documented set-up for the gateway host's own traffic: h1
// plays the host, whose veth end (h1-eth0) keeps its default offloads, and whose far end
// (gw1-lan) is the card's protected side. TCP that the host's stack sends with the checksum left
// to "the hardware" must arrive intact: the worker completes the checksums before sealing.
func TestHostOwnTrafficThroughVeth(t *testing.T) {
	needRoot(t)
	tb, d1, _ := startPair(t, testbed.DefaultTunnels[:1])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := tb.Run(ctx, testbed.H1, "ethtool", "-k", testbed.H1Eth); err != nil || !strings.Contains(out, "tx-checksumming: on") {
		t.Fatalf("h1-eth0 must keep transmit checksum offload on for this test: %v\n%s", err, out)
	}
	warmUp(ctx, t, tb, testbed.H1, testbed.H2Addr4) // resolve the next hops
	transferTCP(t, tb, testbed.H2Addr4, 8<<20)
	if n := d1.WorkerStats()["checksums_completed"]; n == 0 {
		t.Error("gw1 completed no checksum: the host's packets did not carry CHECKSUM_PARTIAL, the test proves nothing")
	}
}

// TestWorkerPerQueue gives every veth two queues: each gateway must run two workers (one per
// queue, each with its socket pair), and sixteen TCP streams — spread over the queues by the
// senders' flow hash — must go through both, each worker sealing and opening some. All of them
// use one SA, so gw2's two workers open packets of one SA out of order; its replay window must
// take that (no replay drop at all).
func TestWorkerPerQueue(t *testing.T) {
	needRoot(t)
	tb, d1, d2 := startPairWith(t, testbed.DefaultTunnels[:1], testbed.Options{Tag: "dmq", Queues: 2}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, d := range []*Daemon{d1, d2} {
		if d.Info.Queues != 2 || len(d.workers) != 2 || len(d.socks) != 4 {
			t.Fatalf("%s: %d queues, %d workers, %d sockets; want 2, 2, 4", d.Info.Instance, d.Info.Queues,
				len(d.workers), len(d.socks))
		}
	}
	warmUp(ctx, t, tb, testbed.H1, testbed.H2Addr4)
	res, err := tb.Iperf3(ctx, testbed.IperfOptions{Dst: testbed.H2Addr4, Streams: 16, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("16 streams over two queues: %v", res)
	for _, c := range []struct {
		d    *Daemon
		what string
		n    func(w *worker.Stats) uint64
	}{
		{d1, "sealed", func(s *worker.Stats) uint64 { return s.Sealed.Load() }},
		{d2, "opened", func(s *worker.Stats) uint64 { return s.Opened.Load() }},
	} {
		for i, w := range c.d.workers {
			if n := c.n(w.Stats()); n == 0 {
				t.Errorf("%s: worker %d %s nothing", c.d.Info.Instance, i, c.what)
			} else {
				t.Logf("%s: worker %d %s %d packets", c.d.Info.Instance, i, c.what, n)
			}
		}
	}
	var in int
	for _, sa := range d2.SAs() {
		if sa.Dir != "in" {
			continue
		}
		in++
		if sa.Packets == 0 || sa.ReplayErrors != 0 {
			t.Errorf("gw2's inbound sa %s opened %d packets and dropped %d as replays; want some and none", sa.Name,
				sa.Packets, sa.ReplayErrors)
		}
	}
	if in != 1 {
		t.Errorf("gw2 holds %d inbound sas, want the tunnel's one", in)
	}
}

// TestLifetimeFromWorkerCounters gives gw1's outbound IPv4 SA a soft limit of 10 and a hard limit
// of 20 packets: the control plane reads the workers' counters (every 100 ms here), reports the
// soft then the hard expiry, and deletes the SA — after which gw1 seals nothing more with it, so
// gw2 opens at most the limit plus what one polling interval let through.
func TestLifetimeFromWorkerCounters(t *testing.T) {
	needRoot(t)
	tb, d1, d2 := startPairWith(t, testbed.DefaultTunnels[:1], testbed.Options{Tag: "dml"},
		func(y1, y2 string) (string, string) {
			y1 = strings.Replace(y1, "daemon: {", "daemon: {poll_interval: 100ms, ", 1)
			i := strings.Index(y1, "name: v4-gw1-to-gw2")
			j := i + strings.Index(y1[i:], "    mode: tunnel\n") + len("    mode: tunnel\n")
			y1 = y1[:j] + "    lifetime: {soft_packets: 10, hard_packets: 20}\n" + y1[j:]
			return y1, y2
		})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub := d1.Manager().Subscribe(256)
	defer sub.Close()
	ping := make(chan testbed.PingResult, 1)
	go func() {
		// Echoes past the hard limit are lost on purpose; what the ping counted is checked below.
		r, err := tb.PingCount(ctx, testbed.H1, testbed.H2Addr4, 60, testbed.PingOptions{Interval: 50 * time.Millisecond, Wait: time.Second})
		if err != nil {
			t.Error(err)
		}
		ping <- r
	}()
	var soft, hard bool
	for !hard {
		select {
		case ev := <-sub.C():
			if ev.SA != "v4-gw1-to-gw2" {
				continue
			}
			switch ev.Type {
			case events.SASoftExpire:
				soft = true
				if ev.Reason != "packets" {
					t.Errorf("soft expiry for %q, want packets", ev.Reason)
				}
			case events.SAHardExpire:
				hard = true
				if !soft {
					t.Error("hard expiry before the soft one")
				}
				if ev.Reason != "packets" {
					t.Errorf("hard expiry for %q, want packets", ev.Reason)
				}
			}
		case <-ctx.Done():
			t.Fatalf("no hard expiry (soft %v); gw1's SAs: %+v", soft, d1.SAs())
		}
	}
	pr := <-ping
	for _, sa := range d1.SAs() {
		if sa.Name == "v4-gw1-to-gw2" {
			t.Errorf("the hard-expired SA is still held by the card: %+v", sa)
		}
	}
	var opened uint64
	for _, sa := range d2.SAs() {
		if sa.SPI == testbed.DefaultTunnels[0].SPI && sa.Dir == "in" {
			opened = sa.Packets
		}
	}
	t.Logf("gw2 opened %d packets of the SA", opened)
	// 100 ms of polling at a ping every 50 ms, plus the time to delete: a few packets past 20 (and
	// the first echo may have been dropped at gw2 while it resolved h2).
	if opened < 10 || opened > 30 {
		t.Errorf("gw2 opened %d packets of the SA with a hard limit of 20", opened)
	}
	// Every reply h1 got answers a request gw2 opened; all 60 requests went out.
	if pr.Sent != 60 || uint64(pr.Received) > opened {
		t.Errorf("ping: %d sent, %d answered; want 60 sent and at most the %d gw2 opened", pr.Sent, pr.Received, opened)
	}
}

// TestInboundSABeforeItsPolicy starts gw2 with the transport SA h1 → h2 but without the inbound
// policy that expects it: with no direction in the SAD and a destination that is not gw2's own,
// nothing says the SA is inbound, and the driver takes it for outbound. When the policy arrives
// (a reload), the SA must become inbound and carry traffic.
func TestInboundSABeforeItsPolicy(t *testing.T) {
	needRoot(t)
	var full string
	tb, _, d2 := startPairWith(t, []testbed.Tunnel{{Name: "tr4", Alg: testbed.AlgAESGCM, SPI: 0x3000, Transport: true}},
		testbed.Options{Tag: "dmi"}, func(y1, y2 string) (string, string) {
			full = y2
			var kept []string
			for _, l := range strings.Split(y2, "\n") {
				if !strings.Contains(l, "name: tr4-in,") {
					kept = append(kept, l)
				}
			}
			return y1, strings.Join(kept, "\n")
		})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dirOf := func() string {
		for _, sa := range d2.SAs() {
			if sa.SPI == 0x3000 {
				return sa.Dir
			}
		}
		return ""
	}
	t.Logf("before the policy: gw2 holds SA 0x3000 as %q", dirOf())
	cfg, err := config.Parse("gw2.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Manager().ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := d2.Manager().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if d := dirOf(); d != "in" {
		t.Errorf("after the inbound policy arrived, gw2 holds SA 0x3000 as %q, want in", d)
	}
	warmUp(ctx, t, tb, testbed.H1, testbed.H2Addr4)
	if err := tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 3); err != nil {
		t.Errorf("ping through the transport SAs: %v", err)
	}
}

// transferTCP sends size random bytes over TCP from h1 to dst (an address of h2) and checks
// that h2 received exactly them.
func transferTCP(t *testing.T, tb *testbed.Testbed, dst netip.Addr, size int) {
	t.Helper()
	conn, res, err := tb.DialSink(dst, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(buf)
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.Err != nil || r.N != int64(size) || r.Sum != sha256.Sum256(buf) {
		t.Fatalf("h2 received %d of %d bytes (checksum match %v): %v", r.N, size, r.Sum == sha256.Sum256(buf), r.Err)
	}
}

// TestMultiBufferKeepsTSO runs the pair with dataplane.multi_buffer (and mss_clamp: auto) and the
// protected side in generic XDP mode: the hosts' veths keep TSO on (native XDP on a veth's peer turns it off,
// frags-aware or not), so h1 hands gw1 GSO super-packets, which arrive as descriptor chains
// and are cut into segments by the worker; TCP over both tunnels delivers every byte.
func TestMultiBufferKeepsTSO(t *testing.T) {
	needRoot(t)
	tb, d1, d2 := startPairWith(t, testbed.DefaultTunnels, testbed.Options{Tag: "dmb"}, func(y1, y2 string) (string, string) {
		mb := func(y string) string {
			return strings.Replace(y, "multi_buffer: false", "multi_buffer: true, protected_xdp_mode: generic, mss_clamp: auto", 1)
		}
		return mb(y1), mb(y2)
	})
	for _, d := range []*Daemon{d1, d2} {
		if !d.Info.MultiBuffer || d.Info.Protected.Mode != loader.AttachGeneric {
			t.Fatalf("multi_buffer %v, protected side attached %q", d.Info.MultiBuffer, d.Info.Protected.Mode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range []testbed.Node{testbed.H1, testbed.H2} {
		out, err := tb.Run(ctx, h, "ethtool", "-k", string(h)+"-eth0")
		if err != nil || !strings.Contains(out, "tcp-segmentation-offload: on") || !strings.Contains(out, "generic-segmentation-offload: on") {
			t.Fatalf("%s-eth0 lost TSO/GSO with the card attached in generic mode: %v\n%s", h, err, out)
		}
	}
	warmUp(ctx, t, tb, testbed.H1, testbed.H2Addr4, testbed.H2Addr6) // resolve the next hops
	defer func() {
		t.Logf("gw1 workers %v sockets %+v", nonzero(d1.WorkerStats()), d1.SocketStats())
		t.Logf("gw2 workers %v sockets %+v", nonzero(d2.WorkerStats()), d2.SocketStats())
	}()
	transferTCP(t, tb, testbed.H2Addr4, 16<<20)
	transferTCP(t, tb, testbed.H2Addr6, 16<<20)
	st := d1.WorkerStats()
	t.Logf("gw1: %d chains, %d segments, %d chain drops, %d sealed", st["chains"], st["segments"], st["chain_drops"], st["sealed"])
	if st["chains"] == 0 || st["segments"] <= st["chains"] {
		t.Fatalf("gw1 saw no super-packets to segment: %v", nonzero(st))
	}
	if st["chain_drops"] != 0 || st["crypto_errors"] != 0 {
		t.Errorf("gw1 dropped: %v", nonzero(st))
	}
	// mss_clamp: auto lowered the MSS of h1's SYNs (one per connection and family).
	if st["mss_clamped"] < 2 {
		t.Errorf("gw1 clamped %d SYNs, want at least 2", st["mss_clamped"])
	}
}
