package cardtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testbed/pair"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// sasCapacity is gw1's SA table size: indices 1..sasCapacity-1 fit (0 is "no SA").
const sasCapacity = 6

func needRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "the real card loads XDP and AF_XDP in network namespaces")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// wireCapture counts, on one port of the wire tap's bridge, IPv4 packets by protocol and source.
type wireCapture struct {
	fd                   int
	plain, esp, received atomic.Int64
	marker               atomic.Int64 // ICMP from markerSrc: proof that the capture has read up to a point
	done                 chan struct{}
}

// capture opens an AF_PACKET socket on ifname inside ns and counts until Close: ESP, plaintext from
// plainSrc, ICMP from markerSrc.
func capture(t *testing.T, ns netns.NsHandle, ifname string, plainSrc, markerSrc netip.Addr) *wireCapture {
	t.Helper()
	c := &wireCapture{done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // this thread leaves the host namespace; it dies locked with the goroutine
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			errc <- err
			return
		}
		ifi, err := netlinkIndex(ifname)
		if err != nil {
			unix.Close(fd)
			errc <- err
			return
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi}); err != nil {
			unix.Close(fd)
			errc <- err
			return
		}
		tv := unix.Timeval{Usec: 100_000}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		c.fd = fd
		errc <- nil
		buf := make([]byte, 65536)
		src, msrc := plainSrc.As4(), markerSrc.As4()
		for {
			select {
			case <-c.done:
				unix.Close(fd)
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			c.received.Add(1)
			if n < 34 || binary.BigEndian.Uint16(buf[12:14]) != unix.ETH_P_IP {
				continue
			}
			switch proto := buf[23]; {
			case proto == unix.IPPROTO_ESP:
				c.esp.Add(1)
			case [4]byte(buf[26:30]) == src:
				c.plain.Add(1)
			case proto == unix.IPPROTO_ICMP && [4]byte(buf[26:30]) == msrc:
				c.marker.Add(1)
			}
		}
	}()
	if err := <-errc; err != nil {
		t.Fatalf("open capture on %s: %v", ifname, err)
	}
	t.Cleanup(func() { close(c.done) })
	return c
}

func netlinkIndex(name string) (int, error) {
	ifs, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(ifs)
	req, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(ifs, unix.SIOCGIFINDEX, req); err != nil {
		return 0, fmt.Errorf("index of %s: %w", name, err)
	}
	return int(req.Uint32()), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestRealCard drives the control plane against the real card: capacity nacks with their reason, the
// offload list honoured, counters making the soft expiry fire once and the hard expiry remove the SA,
// and no plaintext on the wire when a PROTECT policy has lost its SA.
func TestRealCard(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tb, err := testbed.New(ctx, testbed.Options{Tag: "ctl", WireTap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	// gw1 serves its API on a socket in a private directory, as `xdpsec run` does.
	sockDir := t.TempDir()
	var y1, y2 string
	gws, err := pair.Start(ctx, tb, pair.Options{
		Tunnels:      testbed.DefaultTunnels[:1],
		HostOffloads: true, // the hosts as the testbed leaves them
		API:          true,
		SocketDir:    sockDir,
		Log:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Edit: func(a, b string) (string, string) {
			y1 = strings.Replace(a, "sas: 64,", fmt.Sprintf("sas: %d,", sasCapacity), 1)
			y2 = b
			return y1, y2
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gws.Close(); err != nil {
			t.Errorf("close the gateways: %v", err)
		}
	})
	ds := [2]*daemon.Daemon{gws.GW1, gws.GW2}
	gw1 := ds[0]
	m := gw1.Manager()
	sub := m.Events().Subscribe(4096)
	swNS, err := tb.NsHandle(testbed.SW)
	if err != nil {
		t.Fatal(err)
	}
	defer swNS.Close()
	wire := capture(t, swNS, testbed.SWGW1, testbed.H1Addr4, testbed.GW1WANAddr4)

	sync := func() {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if err := m.Sync(sctx); err != nil {
			t.Fatal(err)
		}
	}
	stateOf := func(v api.SAView, iface string) offload.IfaceState {
		for _, s := range v.OffloadState {
			if s.Iface == iface {
				return s
			}
		}
		return offload.IfaceState{}
	}
	getSA := func(name string) api.SAView {
		t.Helper()
		v, err := m.GetSA(sadb.Ref{Name: name}, false)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// The tunnel works, and the wire shows ESP only: each echo request and reply once.
	if lost, err := tb.WarmUp(ctx, testbed.H1, testbed.H2Addr4); err != nil {
		t.Fatal(err)
	} else if lost > 0 {
		t.Logf("warm-up: %d first echo(es) lost while the gateways resolved their next hops", lost)
	}
	esp0 := wire.esp.Load()
	if err := tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 5); err != nil {
		t.Fatalf("baseline ping through the tunnel: %v", err)
	}
	testutil.Eventually(5*time.Second, func() bool { return wire.esp.Load()-esp0 >= 10 })
	if n := wire.esp.Load() - esp0; n != 10 || wire.plain.Load() != 0 {
		t.Fatalf("baseline wire: %d ESP packets for 5 echo requests and replies, %d plaintext packets from h1", n, wire.plain.Load())
	}
	// What `xdpsec sa list -s` reads over the socket: the real card's counters and offload states.
	if err := m.Poller().Poll(ctx); err != nil {
		t.Fatal(err)
	}
	client := api.NewClient(filepath.Join(sockDir, "gw1.sock"))
	views, err := client.ListSAs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		// The workers' counters may trail the echoes by a batch; that traffic was counted at all, and
		// its first use recorded, is what the API must show.
		if v.Cur.Packets == 0 || v.UseTime.IsZero() {
			t.Errorf("sa %s over the API: current %+v, use time %v; want traffic", v.Name, v.Cur, v.UseTime)
		}
		t.Logf("sa %s over the API: %+v", v.Name, v.Cur)
		for _, s := range v.OffloadState {
			if s.Status != offload.StatusOffloaded {
				t.Errorf("sa %s on %s: %+v", v.Name, s.Iface, s)
			}
		}
	}
	if rep, err := client.Check(ctx); err != nil || !rep.OK {
		t.Fatalf("check over the API: %+v %v", rep, err)
	}

	// The offload list is honoured on a card whose one SA table serves both interfaces: the wire
	// interface, where an SA's ESP travels, decides. Listed for the wire: in the card (for both);
	// listed for the protected side only: refused on both and absent from the card's table, so
	// nothing can be encrypted or decrypted with it.
	listed := sadb.SA{Name: "listed", SPI: 0x5001, Src: testbed.GW1WANAddr4, Dst: netip.MustParseAddr("198.18.0.99"),
		Mode: ipsec.ModeTunnel, AEAD: &sadb.Algorithm{Name: testbed.AlgAESGCM, Key: make(sadb.Key, 20), Bits: 128},
		ReplayWindow: 128, Offload: []string{testbed.GW1WAN}}
	lanOnly := listed
	lanOnly.Name, lanOnly.SPI, lanOnly.Offload = "lan-only", 0x5002, []string{testbed.GW1LAN}
	lanOnly.AEAD = &sadb.Algorithm{Name: testbed.AlgAESGCM, Key: bytes.Repeat(sadb.Key{0x52}, 20), Bits: 128} // a key of its own
	for _, sa := range []sadb.SA{listed, lanOnly} {
		if _, err := m.AddSA(sa); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	lv := getSA("listed")
	for _, ifc := range []string{testbed.GW1LAN, testbed.GW1WAN} {
		if s := stateOf(lv, ifc); s.Status != offload.StatusOffloaded {
			t.Fatalf("sa listed for the wire interface, on %s: %+v", ifc, s)
		}
	}
	if _, err := gw1.Card().GetSA(lv.Index); err != nil {
		t.Fatalf("listed SA not in the card's table: %v", err)
	}
	ov := getSA("lan-only")
	for _, ifc := range []string{testbed.GW1LAN, testbed.GW1WAN} {
		if s := stateOf(ov, ifc); s.Status != offload.StatusRefused || s.Reason != offload.ReasonNotInList {
			t.Fatalf("sa listed for the protected side only, on %s: %+v", ifc, s)
		}
	}
	if _, err := gw1.Card().GetSA(ov.Index); err == nil {
		t.Fatal("an SA whose list leaves out the wire interface is in the card's table")
	}
	if _, err := m.DeleteSA(sadb.Ref{Name: "lan-only"}); err != nil {
		t.Fatal(err)
	}
	sync() // its index is free again before the table is filled

	// Capacity: fill the card's SA table; the SA that does not fit is nacked with the reason, stays in
	// the SAD, and is offloaded once room is freed.
	var names []string
	for i := range sasCapacity {
		sa := listed
		sa.Name, sa.SPI, sa.Offload = fmt.Sprintf("fill%d", i), 0x6000+uint32(i), nil
		key := make(sadb.Key, 20) // each SA its own key
		binary.BigEndian.PutUint32(key, sa.SPI)
		sa.AEAD = &sadb.Algorithm{Name: testbed.AlgAESGCM, Key: key, Bits: 128}
		if _, err := m.AddSA(sa); err != nil {
			t.Fatal(err)
		}
		names = append(names, sa.Name)
	}
	sync()
	var refused []string
	for _, n := range names {
		v := getSA(n)
		s := stateOf(v, testbed.GW1LAN)
		switch {
		case s.Status == offload.StatusRefused && s.Reason == offload.ReasonTableFull:
			refused = append(refused, n)
		case s.Status != offload.StatusOffloaded:
			t.Fatalf("sa %s: %+v", n, s)
		}
	}
	if len(refused) == 0 {
		t.Fatal("no table_full nack although the SAD holds more SAs than the card's table")
	}
	if rep, err := m.Check(ctx); err != nil || !rep.OK {
		t.Fatalf("check with nacked SAs: %+v %v", rep, err)
	}
	if _, err := m.DeleteSA(sadb.Ref{Name: "listed"}); err != nil {
		t.Fatal(err)
	}
	// The engine moves the nacked SA to the freed (lower) index and offers it again: a pass or two.
	for deadline := time.Now().Add(10 * time.Second); ; {
		sync()
		if s := stateOf(getSA(refused[0]), testbed.GW1LAN); s.Status == offload.StatusOffloaded {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("a nacked SA was not offloaded once room was freed: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, n := range names {
		m.DeleteSA(sadb.Ref{Name: n})
	}
	sync()

	reloadUnderTraffic(ctx, t, tb, ds, [2]string{y1, y2})
	reloadDefaultVerdict(t, ds[0], y1)
	rekeyUnderTraffic(ctx, t, tb, ds[0], ds[1])

	// Lifetimes from the card's counters: soft at 4 packets fires once, hard at 12 removes the SA.
	const outName = "v4-gw1-to-gw2-new"
	cur, err := m.Store().GetSA(sadb.Ref{Name: outName}, true)
	if err != nil {
		t.Fatal(err)
	}
	upd := cur.SA
	upd.Limits = sadb.Lifetime{SoftPackets: cur.Cur.Packets + 4, HardPackets: cur.Cur.Packets + 12}
	if _, err := m.UpdateSA(upd); err != nil {
		t.Fatal(err)
	}
	poll := func() {
		t.Helper()
		if err := m.Poller().Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	expiries := func() (soft, hard int) {
		for {
			select {
			case ev := <-sub.C():
				if ev.SA == outName && ev.Type == events.SASoftExpire {
					soft++
				}
				if ev.SA == outName && ev.Type == events.SAHardExpire {
					hard++
				}
			default:
				return
			}
		}
	}
	if err := tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 5); err != nil {
		t.Fatalf("ping before the soft limit: %v", err)
	}
	poll()
	poll()
	if soft, hard := expiries(); soft != 1 || hard != 0 {
		t.Fatalf("after 5 packets: %d soft, %d hard expiries; want 1, 0", soft, hard)
	}
	if v := getSA(outName); v.State != sadb.StateDying {
		t.Fatalf("state %s, want dying", v.State)
	}
	// Crosses the hard limit; the poller removes the SA afterwards, so the echoes may all be answered.
	if r, err := tb.PingCount(ctx, testbed.H1, testbed.H2Addr4, 8, testbed.PingOptions{}); err != nil || r.Sent != 8 {
		t.Fatalf("ping across the hard limit: %+v %v", r, err)
	}
	poll()
	sync()
	if soft, hard := expiries(); soft != 0 || hard != 1 {
		t.Fatalf("after the hard limit: %d more soft, %d hard expiries; want 0, 1", soft, hard)
	}
	if _, err := m.GetSA(sadb.Ref{Name: outName}, false); !errors.Is(err, sadb.ErrNotFound) {
		t.Fatalf("hard-expired SA still in the SAD: %v", err)
	}
	if _, err := gw1.Card().GetSA(cur.Index); !errors.Is(err, loader.ErrNotFound) {
		t.Fatalf("hard-expired SA still in the card: %v", err)
	}

	// The PROTECT policy now has no SA: the card drops and counts, raises ACQUIREs, and nothing leaves
	// in plaintext.
	before, err := gw1.Card().ReasonCounts()
	if err != nil {
		t.Fatal(err)
	}
	plain0 := wire.plain.Load()
	r, err := tb.PingCount(ctx, testbed.H1, testbed.H2Addr4, 5, testbed.PingOptions{Wait: time.Second})
	if err != nil || r.Sent != 5 {
		t.Fatalf("ping without an outbound SA: %+v %v", r, err)
	}
	if r.Received != 0 {
		t.Fatalf("%d of 5 echoes answered without an outbound SA", r.Received)
	}
	after, _ := gw1.Card().ReasonCounts()
	if d := after["OutNoStates"] - before["OutNoStates"]; d != 5 {
		t.Fatalf("OutNoStates grew by %d, want the 5 echo requests (counters %v)", d, after)
	}
	// The ACQUIRE reaches the event stream (`xdpsec monitor`) through the daemon's driver.
	pol, err := m.Store().GetPolicy(sadb.PolicyRef{Name: "v4-out"})
	if err != nil {
		t.Fatal(err)
	}
	for timeout := time.After(5 * time.Second); ; {
		select {
		case ev := <-sub.C():
			if ev.Type != events.Acquire {
				continue
			}
			if ev.PolicyID != pol.ID || ev.Policy != "v4-out" || ev.Src != testbed.H1Addr4.String() ||
				ev.Dst != testbed.H2Addr4.String() || ev.Reqid != 77 {
				t.Fatalf("acquire %+v, want policy v4-out (%d, reqid 77) from h1 to h2", ev, pol.ID)
			}
		case <-timeout:
			t.Fatal("no ACQUIRE event for a PROTECT policy without SA")
		}
		break
	}
	// The marker: gw1's own echo requests to gw2 leave by the wire after h1's packets were handled;
	// once the capture has read them, it has read whatever h1's packets could have become.
	marker0 := wire.marker.Load()
	if err := tb.Ping(ctx, testbed.GW1, testbed.GW2WANAddr4, 2); err != nil {
		t.Fatalf("marker ping gw1 → gw2: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "the capture to read gw1's marker echoes", func() bool { return wire.marker.Load()-marker0 >= 2 })
	if n := wire.plain.Load() - plain0; n != 0 {
		t.Fatalf("%d plaintext packets from h1 on the wire without an SA", n)
	}
	if rep, err := m.Check(ctx); err != nil || !rep.OK {
		t.Fatalf("final check: %+v %v", rep, err)
	}
	t.Logf("wire capture: %d packets, %d ESP, %d plaintext from h1", wire.received.Load(), wire.esp.Load(), wire.plain.Load())
}

// reloadUnderTraffic re-applies both gateways' configuration files while h1 pings h2 every 20 ms: the
// SAs are unchanged, so the card and the workers keep them — their counters since install (which a
// reinstall would reset) only grow — and not one echo is lost.
func reloadUnderTraffic(ctx context.Context, t *testing.T, tb *testbed.Testbed, ds [2]*daemon.Daemon, yamls [2]string) {
	t.Helper()
	const name = "v4-gw1-to-gw2" // outbound on gw1, inbound on gw2
	packets := func(d *daemon.Daemon) uint64 { return saPackets(ctx, t, d, name) }
	before := [2]uint64{packets(ds[0]), packets(ds[1])}
	pingDone := make(chan string, 1)
	go func() {
		out, _ := tb.Run(ctx, testbed.H1, "ping", "-n", "-q", "-c", "50", "-i", "0.02", "-W", "2", testbed.H2Addr4.String())
		pingDone <- out
	}()
	// Reload under traffic: once gw2 has opened the first echoes.
	testutil.WaitFor(t, 10*time.Second, "the first echoes through the tunnel", func() bool { return packets(ds[1]) >= before[1]+3 })
	for i, d := range ds {
		cfg, err := config.Parse(fmt.Sprintf("gw%d.yaml", i+1), []byte(yamls[i]))
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Manager().ReloadConfig(cfg)
		if err != nil || len(res.SAsAdded)+len(res.SAsUpdated)+len(res.SAsReplaced)+len(res.SAsDeleted) != 0 || res.SAsUnchanged == 0 {
			t.Fatalf("gw%d: reload of the same configuration: %+v %v", i+1, res, err)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = d.Manager().Sync(sctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	out := <-pingDone
	if !strings.Contains(out, "50 packets transmitted, 50 received") {
		t.Fatalf("echoes lost during the reload:\n%s", out)
	}
	// The workers add to the counters after each batch: wait for the 50 echo requests, then require
	// exactly them on top of before (a reinstall would have reset the counters).
	for i, d := range ds {
		testutil.Eventually(5*time.Second, func() bool { return packets(d) >= before[i]+50 })
		if after := packets(d); after != before[i]+50 {
			t.Fatalf("gw%d: sa %s counted %d packets before the reload and %d after 50 echoes: reinstalled?",
				i+1, name, before[i], after)
		}
	}
	t.Logf("reload under traffic: %s", strings.TrimSpace(out[strings.Index(out, "50 packets"):]))
}

// saPackets reads the card's packet counter of the SA name on d.
func saPackets(ctx context.Context, t *testing.T, d *daemon.Daemon, name string) uint64 {
	t.Helper()
	m := d.Manager()
	sa, err := m.Store().GetSA(sadb.Ref{Name: name}, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Engine().Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c[sa.Index].Serial != sa.Serial {
		t.Fatalf("sa %s: no counters for it in the card", name)
	}
	return c[sa.Index].Packets
}

// reloadDefaultVerdict changes gw1's default_verdict by a reload and reads the card's card_config map:
// the card holds the new verdicts at once, and the old ones after a reload back.
func reloadDefaultVerdict(t *testing.T, d *daemon.Daemon, yaml string) {
	t.Helper()
	read := func() ipsec.Defaults {
		t.Helper()
		var c bpf.CardXdpsecConfig
		if err := d.Card().Objects().CardConfig.Lookup(uint32(0), &c); err != nil {
			t.Fatal(err)
		}
		return ipsec.Defaults{Out: ipsec.Action(c.DefaultAction[ipsec.DirOut]), In: ipsec.Action(c.DefaultAction[ipsec.DirIn])}
	}
	for _, tc := range []struct {
		file string
		want ipsec.Defaults
	}{
		{yaml + "default_verdict: {in: bypass, out: discard}\n", ipsec.Defaults{Out: ipsec.ActionDiscard, In: ipsec.ActionBypass}},
		{yaml, ipsec.Defaults{Out: ipsec.ActionBypass, In: ipsec.ActionBypass}},
	} {
		cfg, err := config.Parse("gw1.yaml", []byte(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Manager().ReloadConfig(cfg)
		if err != nil || !res.DefaultVerdict || len(res.Restart) != 0 {
			t.Fatalf("reload of default_verdict: %+v %v", res, err)
		}
		if got := read(); got != tc.want {
			t.Fatalf("the card's default verdicts after the reload: %+v, want %+v", got, tc.want)
		}
	}
}

// rekeyUnderTraffic replaces the gw1→gw2 SA make-before-break while h1 pings h2 every 20 ms: the new
// inbound SA goes into gw2 first, then the new outbound SA into gw1, whose policy moves to it at once;
// the old SAs are deleted last. Not one echo may be lost.
func rekeyUnderTraffic(ctx context.Context, t *testing.T, tb *testbed.Testbed, gw1, gw2 *daemon.Daemon) {
	t.Helper()
	m1, m2 := gw1.Manager(), gw2.Manager()
	old, err := m1.Store().GetSA(sadb.Ref{Name: "v4-gw1-to-gw2"}, false)
	if err != nil {
		t.Fatal(err)
	}
	const reqid = 77
	key := make(sadb.Key, 20)
	for i := range key {
		key[i] = byte(0xa0 + i)
	}
	next := sadb.SA{Name: "v4-gw1-to-gw2-new", SPI: 0x7001, Src: old.Src, Dst: old.Dst, Mode: ipsec.ModeTunnel,
		Reqid: reqid, AEAD: &sadb.Algorithm{Name: testbed.AlgAESGCM, Key: key, Bits: 128}, ReplayWindow: 128}
	pingDone := make(chan string, 1)
	go func() {
		out, _ := tb.Run(ctx, testbed.H1, "ping", "-n", "-q", "-c", "100", "-i", "0.02", "-W", "2", testbed.H2Addr4.String())
		pingDone <- out
	}()
	// Each step happens under traffic, and traffic passes in each intermediate state: wait until the
	// SA that must carry it there (read at gw2, which opens h1's echoes) has counted a few more.
	flows := func(d *daemon.Daemon, sa, state string) {
		t.Helper()
		n0 := saPackets(ctx, t, d, sa)
		testutil.WaitFor(t, 10*time.Second, "echoes through "+sa+" "+state, func() bool { return saPackets(ctx, t, d, sa) >= n0+3 })
	}
	flows(gw2, old.Name, "before the rekey")
	syncM := func(m interface{ Sync(context.Context) error }) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := m.Sync(sctx); err != nil {
			t.Error(err)
		}
	}
	movePolicy := func(m interface {
		ListPolicies() []api.PolicyView
		UpdatePolicy(sadb.Policy) (api.PolicyView, error)
	}, name string) {
		for _, p := range m.ListPolicies() {
			if p.Name == name {
				np := p.Policy
				np.Tmpl = &sadb.Tmpl{Reqid: reqid}
				if _, err := m.UpdatePolicy(np); err != nil {
					t.Error(err)
				}
				return
			}
		}
		t.Errorf("no policy %s", name)
	}
	// The old SA takes the rekey's reqid (an update in place: it keeps its numbers), so that on gw2
	// the inbound policy, once it names the reqid, serves both the old and the new SA: the
	// post-decryption check accepts the old SA's traffic only while a policy it serves says so.
	for _, m := range []interface {
		GetSA(sadb.Ref, bool) (api.SAView, error)
		UpdateSA(sadb.SA) (api.SAView, error)
	}{m1, m2} {
		v, err := m.GetSA(sadb.Ref{Name: "v4-gw1-to-gw2"}, true)
		if err != nil {
			t.Fatal(err)
		}
		up := v.SA
		up.Reqid = reqid
		if _, err := m.UpdateSA(up); err != nil {
			t.Fatal(err)
		}
	}
	// gw2 accepts the new SA before anyone sends on it (and still accepts the old one).
	if _, err := m2.AddSA(next); err != nil {
		t.Fatal(err)
	}
	movePolicy(m2, "v4-in")
	syncM(m2)
	flows(gw2, old.Name, "once gw2 also accepts the new SA")
	// gw1: the new SA is offloaded before the policy points at it.
	if _, err := m1.AddSA(next); err != nil {
		t.Fatal(err)
	}
	movePolicy(m1, "v4-out")
	syncM(m1)
	flows(gw2, next.Name, "once gw1 sends on it")
	if _, err := m1.DeleteSA(sadb.Ref{Name: "v4-gw1-to-gw2"}); err != nil {
		t.Fatal(err)
	}
	syncM(m1)
	flows(gw2, next.Name, "once gw1 deleted the old SA")
	if _, err := m2.DeleteSA(sadb.Ref{Name: "v4-gw1-to-gw2"}); err != nil {
		t.Fatal(err)
	}
	syncM(m2)
	out := <-pingDone
	if !strings.Contains(out, "100 packets transmitted, 100 received") {
		t.Fatalf("echoes lost during the rekey:\n%s", out)
	}
	nv, err := m1.GetSA(sadb.Ref{Name: next.Name}, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := m1.Check(ctx); err != nil || !rep.OK {
		t.Fatalf("check after rekey: %+v %v", rep, err)
	}
	if err := m1.Poller().Poll(ctx); err != nil {
		t.Fatal(err)
	}
	nv, _ = m1.GetSA(sadb.Ref{Name: next.Name}, false)
	if nv.Cur.Packets == 0 {
		t.Fatalf("the new SA carried no traffic: %+v", nv.Cur)
	}
	t.Logf("rekey under traffic: %s; new SA carried %d packets", strings.TrimSpace(out[strings.Index(out, "100 packets"):]), nv.Cur.Packets)
}
