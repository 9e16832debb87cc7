//go:build ike

// Package ike holds the tests that run strongSwan's charon with the kernel-xdpsec plugin against
// real xdpsec daemons in the four-namespace testbed (go test -tags ike ./hack/ike, as root;
// hack/test.sh runs them). The xdpsec daemons run in this process (internal/testbed's gateways);
// the charons are real processes in the gateways' namespaces (ikebed).
package ike

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/hack/ike/ikebed"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/ipsec"
)

// twoGateways is the testbed with xdpsec on both gateways and a charon on each.
type twoGateways struct {
	tb       *testbed.Testbed
	gw1, gw2 *ikebed.Gateway
	c1, c2   *ikebed.Charon
	conf1    ikebed.Options
	dir      string
}

func startTwoGateways(ctx context.Context, t testing.TB, child ikebed.Child, tune func(gw1, gw2 *ikebed.Conn)) *twoGateways {
	t.Helper()
	needRoot(t)
	log := testLog(t)
	if _, _, err := ikebed.Plugins(ctx, log); err != nil {
		t.Fatal(err)
	}
	tb, err := testbed.New(ctx, testbed.Options{Tag: "ike", WireTap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	if err := tb.HostChecksumOffloadOff(ctx); err != nil {
		t.Fatal(err)
	}
	g := &twoGateways{tb: tb, dir: t.TempDir()}
	for i, n := range []testbed.Node{testbed.GW1, testbed.GW2} {
		gw, err := ikebed.StartGateway(ctx, tb, n, filepath.Join(g.dir, string(n)+".sock"), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = gw.Close() })
		if i == 0 {
			g.gw1 = gw
		} else {
			g.gw2 = gw
		}
	}
	conn1, conn2 := ikebed.Pair(child)
	conn2.Unique = "replace"
	if tune != nil {
		tune(&conn1, &conn2)
	}
	g.conf1 = ikebed.Options{Socket: g.gw1.Socket, Swanctl: conn1.Swanctl()}
	g.c1 = g.startCharon(ctx, t, testbed.GW1, g.conf1)
	g.c2 = g.startCharon(ctx, t, testbed.GW2, ikebed.Options{Socket: g.gw2.Socket, Swanctl: conn2.Swanctl()})
	keepLogs(t, g.c1, g.c2)
	return g
}

func (g *twoGateways) startCharon(ctx context.Context, t testing.TB, n testbed.Node, o ikebed.Options) *ikebed.Charon {
	t.Helper()
	c, err := ikebed.StartCharon(ctx, g.tb, n, filepath.Join(g.dir, "charon-"+string(n)), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

// bypasses counts the IKE socket bypass policies of a daemon (priority 1, UDP).
func bypasses(t *testing.T, gw *ikebed.Gateway) int {
	n := 0
	for _, p := range ikePolicies(t, gw) {
		if p.Priority == 1 && p.Action.String() == "bypass" {
			n++
		}
	}
	return n
}

// crossing checks that each side's CHILD_SA in charon has the SPIs its daemon holds, crossing the
// peer's, and returns gw1's (in, out) SPIs.
func (g *twoGateways) crossing(ctx context.Context, t *testing.T) (uint32, uint32) {
	t.Helper()
	var in1, out1 uint32
	for i, side := range []struct {
		c  *ikebed.Charon
		gw *ikebed.Gateway
	}{{g.c1, g.gw1}, {g.c2, g.gw2}} {
		l, err := side.c.ListSAs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var installed []ikebed.ChildSA
		for _, ch := range l {
			if ch.State == "INSTALLED" {
				installed = append(installed, ch)
			}
		}
		if len(installed) != 1 {
			t.Fatalf("gw%d: charon's CHILD_SAs %+v, want one installed", i+1, l)
		}
		spis := spiSet(ikeSAs(t, side.gw))
		ch := installed[0]
		if spis[ch.In] != "in" || spis[ch.Out] != "out" {
			t.Fatalf("gw%d: charon's SPIs in %08x out %08x, xdpsec holds %v", i+1, ch.In, ch.Out, spis)
		}
		if i == 0 {
			in1, out1 = ch.In, ch.Out
		} else if ch.In != out1 || ch.Out != in1 {
			t.Fatalf("SPIs do not cross: gw1 in %08x out %08x, gw2 in %08x out %08x", in1, out1, ch.In, ch.Out)
		}
	}
	return in1, out1
}

// TestTwoGateways: charon with kernel-xdpsec and xdpsec on both gateways. A trap policy's ACQUIRE
// from the card brings the tunnel up; both charons and both daemons agree on the SPIs; ping and a
// TCP transfer go through with only ESP and IKE on the wire; CHILD_SAs rekey every few seconds under
// a 10/s ping with at most one echo lost and the old SAs go; a daemon that restarts empty gets
// charon's policies and a rekeyed CHILD_SA again; swanctl --terminate leaves only the IKE sockets'
// bypass and the trap policies, a charon that stops leaves nothing; a charon killed and started again
// brings the tunnel back.
func TestTwoGateways(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	child := ikebed.LAN("lan")
	child.StartAction = "trap"
	g := startTwoGateways(ctx, t, child, func(c1, c2 *ikebed.Conn) {
		c2.Children[0].StartAction = "" // gw2 only answers
	})

	// 1. At start: the IKE sockets' bypass policies (UDP 500 and 4500, v4 and v6, in and out) on
	// both sides, gw1's trap policies (in, fwd, out).
	for i, gw := range []*ikebed.Gateway{g.gw1, g.gw2} {
		waitFor(t, fmt.Sprintf("gw%d's bypass policies", i+1), 30*time.Second, func() (bool, string) {
			n := bypasses(t, gw)
			return n == 8, fmt.Sprintf("%d bypass policies", n)
		})
	}
	if n := len(ikePolicies(t, g.gw1)); n != 11 {
		t.Fatalf("gw1: %d ike policies, want 8 bypass and 3 trap", n)
	}

	// 2. The first packets meet the trap policy: the card drops them (never in clear) and raises
	// an ACQUIRE; charon negotiates; the ping gets through.
	waitFor(t, "a ping through the tunnel the ACQUIRE brought up", 60*time.Second, func() (bool, string) {
		lost, out, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 1, 200*time.Millisecond)
		return lost == 0, out
	})
	in1, out1 := g.crossing(ctx, t)
	t.Logf("tunnel up: gw1 in %08x out %08x", in1, out1)

	// 3. Traffic: a ping and a 32 MiB TCP transfer, the wire captured between the gateways.
	capFile := filepath.Join(g.dir, "wire.pcap")
	c := startCapture(ctx, t, g.tb, capFile)
	if lost, out, err := pingLoss(ctx, g.tb, testbed.H2Addr4, 20, 50*time.Millisecond); err != nil || lost != 0 {
		t.Fatalf("ping: %d lost, %v\n%s", lost, err, out)
	}
	sent, got, err := transfer(ctx, g.tb, testbed.H2Addr4, 32<<20)
	if err != nil || sent != got {
		t.Fatalf("transfer: %v; sent %x, received %x", err, sent[:8], got[:8])
	}
	if missed := c.Stop(); missed > 0 {
		t.Logf("tcpdump missed %d packets", missed)
	}
	w := readWire(t, capFile)
	if w.marker > 0 || len(w.plain) > 0 {
		t.Fatalf("plaintext on the wire: %d frames with the payload's marker, others: %v", w.marker, w.plain)
	}
	if w.esp < 20000 || w.perSPI[out1] == 0 || w.perSPI[in1] == 0 {
		t.Fatalf("ESP on the wire: %d packets, per SPI %v", w.esp, w.perSPI)
	}
	if len(w.repeats) > 0 {
		t.Fatalf("repeated sequence numbers or IVs on the wire: %v", w.repeats[:min(len(w.repeats), 10)])
	}
	t.Logf("wire: %d ESP packets (%v per SPI), %d IKE, nothing else but ARP/ND", w.esp, w.perSPI, w.ike)

	// 4. swanctl --list-sas shows xdpsec's counters for the SA (read when asked).
	out, err := g.c1.Swanctl(ctx, "--list-sas")
	if err != nil || !strings.Contains(out, fmt.Sprintf("out %08x", out1)) || strings.Contains(out, fmt.Sprintf("out %08x,      0 bytes", out1)) {
		t.Fatalf("swanctl --list-sas on gw1 (%v):\n%s", err, out)
	}

	// 5. Rekeys, every 6 s from gw1, under a 10/s ping: at most one echo lost, the old SAs go.
	g.rekeyUnderPing(ctx, t, in1, out1)

	// 6. gw1's daemon restarts, empty (a new epoch): the plugin installs charon's policies again and
	// charon rekeys its CHILD_SA into it; traffic resumes.
	epoch := g.gw1.Manager().Epoch()
	if err := g.gw1.Close(); err != nil {
		t.Fatal(err)
	}
	gw, err := ikebed.StartGateway(ctx, g.tb, testbed.GW1, g.gw1.Socket, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	g.gw1 = gw
	if gw.Manager().Epoch() == epoch {
		t.Fatal("the restarted daemon has the old epoch")
	}
	waitFor(t, "charon's policies in the restarted daemon", 60*time.Second, func() (bool, string) {
		n := len(ikePolicies(t, g.gw1))
		return n == 14, fmt.Sprintf("%d ike policies (want 8 bypass, 3 trap, 3 of the CHILD_SA)", n)
	})
	waitFor(t, "the tunnel through the restarted daemon", 60*time.Second, func() (bool, string) {
		lost, out, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 1, 200*time.Millisecond)
		return lost == 0, out
	})
	if !strings.Contains(g.c1.Log(), "xdpsec restarted") {
		t.Fatal("charon did not notice the daemon's restart")
	}
	waitFor(t, "one CHILD_SA's SAs on each side", 30*time.Second, func() (bool, string) {
		s1, s2 := spiSet(ikeSAs(t, g.gw1)), spiSet(ikeSAs(t, g.gw2))
		return len(s1) == 2 && len(s2) == 2, fmt.Sprintf("gw1 %v gw2 %v", s1, s2)
	})
	g.crossing(ctx, t)

	// 7. swanctl --terminate: the CHILD_SA's SAs and policies go; the bypass and trap policies stay.
	if out, err := g.c1.Swanctl(ctx, "--terminate", "--ike", "gw"); err != nil {
		t.Fatalf("terminate: %v\n%s", err, out)
	}
	for i, gw := range []*ikebed.Gateway{g.gw1, g.gw2} {
		want := 8 + 3*(1-i) // gw1 keeps its trap policies
		waitFor(t, fmt.Sprintf("gw%d without the CHILD_SA", i+1), 30*time.Second, func() (bool, string) {
			sas, pols := ikeSAs(t, gw), ikePolicies(t, gw)
			return len(sas) == 0 && len(pols) == want && bypasses(t, gw) == 8,
				fmt.Sprintf("%d ike SAs, %d ike policies", len(sas), len(pols))
		})
	}

	// 8. A charon killed (its SAs and policies stay in xdpsec) and started again: it removes what
	// the killed one left, and traffic brings the tunnel up again.
	if lost, _, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 3, 300*time.Millisecond); lost == 3 {
		waitFor(t, "the tunnel again after terminate", 60*time.Second, func() (bool, string) {
			lost, out, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 1, 200*time.Millisecond)
			return lost == 0, out
		})
	}
	left := len(ikeSAs(t, g.gw1))
	g.c1.Kill()
	if got := len(ikeSAs(t, g.gw1)); got != left || left == 0 {
		t.Fatalf("gw1: %d ike SAs after charon was killed, had %d", got, left)
	}
	g.c1 = g.startCharon(ctx, t, testbed.GW1, g.conf1)
	keepLogs(t, g.c1)
	waitFor(t, "the tunnel after charon's restart", 90*time.Second, func() (bool, string) {
		lost, out, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 1, 200*time.Millisecond)
		return lost == 0, out
	})
	if l, err := g.c1.ListSAs(ctx); err != nil || len(l) != 1 {
		t.Fatalf("charon after the restart: %+v %v", l, err)
	}
	if !strings.Contains(g.c1.Log(), "earlier charon left in xdpsec") {
		t.Fatal("the restarted charon did not remove what the killed one left")
	}
	waitFor(t, "gw1 holding only the new CHILD_SA's SAs", 30*time.Second, func() (bool, string) {
		sas := ikeSAs(t, g.gw1)
		return len(sas) == 2, fmt.Sprintf("%v", spiSet(sas))
	})

	// 9. Stopping charon removes everything it installed, the IKE bypass policies too.
	for i, side := range []struct {
		c  *ikebed.Charon
		gw *ikebed.Gateway
	}{{g.c1, g.gw1}, {g.c2, g.gw2}} {
		if err := side.c.Stop(); err != nil {
			t.Fatal(err)
		}
		if sas, pols := ikeSAs(t, side.gw), ikePolicies(t, side.gw); len(sas)+len(pols) != 0 {
			t.Fatalf("gw%d: charon stopped and left %d SAs, %d policies", i+1, len(sas), len(pols))
		}
	}
}

// rekeyUnderPing sets gw1's CHILD_SA to rekey every 6 s (by reloading its config: charon applies the
// new times to the next CHILD_SA), pings at 10/s through four rekeys and checks the loss.
func (g *twoGateways) rekeyUnderPing(ctx context.Context, t *testing.T, in1, out1 uint32) {
	t.Helper()
	// A CHILD_SA takes its lifetimes when it is made: load the short ones, and make a new CHILD_SA
	// (terminate, then traffic through the trap).
	child := ikebed.LAN("lan")
	child.StartAction, child.RekeyTime, child.LifeTime = "trap", 6*time.Second, 60*time.Second
	c1, _ := ikebed.Pair(child)
	if err := g.c1.Reload(ctx, c1.Swanctl()); err != nil {
		t.Fatal(err)
	}
	if out, err := g.c1.Swanctl(ctx, "--terminate", "--ike", "gw"); err != nil {
		t.Fatalf("terminate: %v\n%s", err, out)
	}
	waitFor(t, "the tunnel with the short rekey time", 60*time.Second, func() (bool, string) {
		lost, out, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 1, 200*time.Millisecond)
		return lost == 0, out
	})
	in1, out1 = g.crossing(ctx, t)
	seen := map[uint32]bool{out1: true}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, sa := range ikeSAs(t, g.gw1) {
					if sa.Dir != nil && sa.Dir.String() == "out" {
						seen[sa.SPI] = true
					}
				}
			}
		}
	}()
	lost, out, err := pingLoss(ctx, g.tb, testbed.H2Addr4, 300, 100*time.Millisecond)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	rekeys := len(seen) - 1
	t.Logf("rekeys under a 10/s ping: %d outbound SAs seen after the first; %d of 300 echoes lost", rekeys, lost)
	if rekeys < 4 {
		t.Fatalf("only %d rekeys in 30 s with a 6 s rekey time", rekeys)
	}
	if lost > 1 {
		t.Fatalf("%d echoes lost across %d rekeys:\n%s", lost, rekeys, out)
	}
	// The old SAs go: the old inbound one about 5 s after its rekey.
	waitFor(t, "the rekeyed SAs to go", 15*time.Second, func() (bool, string) {
		s1, s2 := spiSet(ikeSAs(t, g.gw1)), spiSet(ikeSAs(t, g.gw2))
		return len(s1) == 2 && len(s2) == 2 && !slices.Contains(mapKeys(s1), in1), fmt.Sprintf("gw1 %v gw2 %v", s1, s2)
	})
	g.crossing(ctx, t)
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestLibipsecPeer: gw1 runs charon with kernel-xdpsec and xdpsec; gw2 is a plain strongSwan with its
// own ESP (kernel-libipsec: userspace ESP on a TUN device, this kernel has no XFRM), which sends ESP
// in UDP only, so the tunnel is ESP-in-UDP on port 4500 through xdpsec's card. The same checks as
// between two xdpsec gateways: SPIs, ping, a TCP transfer, only ESP and IKE on the wire.
func TestLibipsecPeer(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := testLog(t)
	if _, _, err := ikebed.Plugins(ctx, log); err != nil {
		t.Fatal(err)
	}
	tb, err := testbed.New(ctx, testbed.Options{Tag: "ikelib", WireTap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	if err := tb.HostChecksumOffloadOff(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gw1, err := ikebed.StartGateway(ctx, tb, testbed.GW1, filepath.Join(dir, "gw1.sock"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw1.Close() })
	conn1, conn2 := ikebed.Pair(ikebed.LAN("lan"))
	conn1.Encap, conn2.Encap = true, true
	c1, err := ikebed.StartCharon(ctx, tb, testbed.GW1, filepath.Join(dir, "charon-gw1"),
		ikebed.Options{Socket: gw1.Socket, Swanctl: conn1.Swanctl()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c1.Kill)
	c2, err := ikebed.StartCharon(ctx, tb, testbed.GW2, filepath.Join(dir, "charon-gw2"),
		ikebed.Options{Backend: ikebed.LibIPsec, Swanctl: conn2.Swanctl()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Kill)
	keepLogs(t, c1, c2)
	if !strings.Contains(c2.Log(), "kernel-libipsec") {
		t.Fatal("the peer's charon did not load kernel-libipsec")
	}

	if out, err := c1.Swanctl(ctx, "--initiate", "--child", "lan"); err != nil {
		t.Fatalf("initiate: %v\n%s", err, out)
	}
	l1, err := c1.ListSAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := c2.ListSAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l1) != 1 || len(l2) != 1 || !l1[0].Encap || l1[0].In != l2[0].Out || l1[0].Out != l2[0].In {
		t.Fatalf("CHILD_SAs: gw1 %+v, gw2 %+v: want one in UDP with crossing SPIs", l1, l2)
	}
	spis := spiSet(ikeSAs(t, gw1))
	if spis[l1[0].In] != "in" || spis[l1[0].Out] != "out" || len(spis) != 2 {
		t.Fatalf("xdpsec holds %v, charon %+v", spis, l1[0])
	}
	for _, sa := range ikeSAs(t, gw1) {
		if sa.Encap == nil || sa.Encap.Sport != 4500 || sa.Encap.Dport != 4500 {
			t.Fatalf("SA %08x without ESP-in-UDP on 4500: %+v", sa.SPI, sa.Encap)
		}
	}

	capFile := filepath.Join(dir, "wire.pcap")
	c := startCapture(ctx, t, tb, capFile)
	// The first echo may find h2's neighbour unresolved on gw2 (the peer forwards in its kernel).
	waitFor(t, "a ping through the tunnel", 30*time.Second, func() (bool, string) {
		lost, out, _ := pingLoss(ctx, tb, testbed.H2Addr4, 1, 200*time.Millisecond)
		return lost == 0, out
	})
	if lost, out, err := pingLoss(ctx, tb, testbed.H2Addr4, 20, 50*time.Millisecond); err != nil || lost != 0 {
		t.Fatalf("ping: %d lost, %v\n%s", lost, err, out)
	}
	sent, got, err := transfer(ctx, tb, testbed.H2Addr4, 8<<20)
	if err != nil || sent != got {
		t.Fatalf("transfer: %v; sent %x, received %x", err, sent[:8], got[:8])
	}
	if missed := c.Stop(); missed > 0 {
		t.Logf("tcpdump missed %d packets", missed)
	}
	w := readWire(t, capFile)
	if w.marker > 0 || len(w.plain) > 0 || w.esp > 0 {
		t.Fatalf("on the wire: %d frames with the payload's marker, %d plain ESP, others: %v", w.marker, w.esp, w.plain)
	}
	if w.espInUDP < 2000 || w.perSPI[l1[0].Out] == 0 || w.perSPI[l1[0].In] == 0 {
		t.Fatalf("ESP in UDP on the wire: %d packets, per SPI %v", w.espInUDP, w.perSPI)
	}
	if len(w.repeats) > 0 {
		t.Fatalf("repeated sequence numbers or IVs on the wire: %v", w.repeats[:min(len(w.repeats), 10)])
	}
	t.Logf("wire: %d ESP-in-UDP packets (%v per SPI), %d IKE", w.espInUDP, w.perSPI, w.ike)

	// charon's counters of the SA come from the card and the workers when asked: equal to what the
	// daemon answers for that SA now (the traffic has stopped), not to its last poll.
	cl := api.NewClient(gw1.Socket)
	defer cl.Close()
	now, err := cl.GetSA(ctx, sadb.Ref{ID: &sadb.SAID{SPI: l1[0].Out, Dst: testbed.GW2WANAddr4, Proto: ipsec.ProtoESP}}, false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c1.Swanctl(ctx, "--list-sas")
	m := regexp.MustCompile(fmt.Sprintf(`out %08x,\s+(\d+) bytes,\s+(\d+) packets`, l1[0].Out)).FindStringSubmatch(out)
	if err != nil || m == nil || m[1] != fmt.Sprint(now.Cur.Bytes) || m[2] != fmt.Sprint(now.Cur.Packets) || now.Cur.Bytes < 8<<20 {
		t.Fatalf("swanctl --list-sas (%v), xdpsec %d bytes %d packets:\n%s", err, now.Cur.Bytes, now.Cur.Packets, out)
	}
	if now.LastUse.IsZero() || time.Since(now.LastUse) > time.Minute {
		t.Fatalf("xdpsec's last use of the outbound SA: %s", now.LastUse)
	}
}

// TestMOBIKE: gw1 loses the address its IKE_SA and CHILD_SA use and has another one on the same
// interface; charon moves both with MOBIKE, which reaches xdpsec as /v1/sa/migrate on both sides: the
// SAs keep their SPIs, counters and replay windows (no new negotiation), the inbound SA of gw1 is
// found on the card under its new destination, and traffic goes on.
func TestMOBIKE(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	second := netip.MustParseAddr("198.18.0.11")
	g := startTwoGateways(ctx, t, ikebed.LAN("lan"), func(c1, c2 *ikebed.Conn) {
		// charon may use any of gw1's IPv4 wire addresses (IPv6 would be another family: a rekey)
		c1.LocalAddrs, c2.RemoteAddrs = testbed.WirePrefix4.String(), testbed.WirePrefix4.String()
	})
	// The second address stays when the first goes (a secondary address is promoted, not removed).
	if out, err := g.tb.Run(ctx, testbed.GW1, "sysctl", "-qw", "net.ipv4.conf."+testbed.GW1WAN+".promote_secondaries=1"); err != nil {
		t.Fatalf("promote_secondaries: %v: %s", err, out)
	}
	if out, err := g.tb.Run(ctx, testbed.GW1, "ip", "addr", "add", second.String()+"/24", "dev", testbed.GW1WAN); err != nil {
		t.Fatalf("second address: %v: %s", err, out)
	}
	// Without IPv6 on gw1's wire, MOBIKE cannot choose a path of the other family (which xdpsec
	// refuses to move in place: charon then rekeys the CHILD_SA instead).
	if out, err := g.tb.Run(ctx, testbed.GW1, "ip", "-6", "addr", "flush", "dev", testbed.GW1WAN, "scope", "global"); err != nil {
		t.Fatalf("flush gw1's IPv6: %v: %s", err, out)
	}
	if out, err := g.c1.Swanctl(ctx, "--initiate", "--child", "lan"); err != nil {
		t.Fatalf("initiate: %v\n%s", err, out)
	}
	waitFor(t, "a ping through the tunnel", 30*time.Second, func() (bool, string) {
		lost, out, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 1, 200*time.Millisecond)
		return lost == 0, out
	})
	in1, out1 := g.crossing(ctx, t)
	before := map[uint32]uint64{}
	for _, sa := range ikeSAs(t, g.gw1) {
		before[sa.SPI] = sa.Cur.Packets
	}
	// The address goes: charon's kernel-net sees it, MOBIKE moves the IKE_SA and the CHILD_SA.
	if out, err := g.tb.Run(ctx, testbed.GW1, "ip", "addr", "del", testbed.GW1WANAddr4.String()+"/24", "dev", testbed.GW1WAN); err != nil {
		t.Fatalf("remove the first address: %v: %s", err, out)
	}
	waitFor(t, "gw1's inbound SA at its new address", 60*time.Second, func() (bool, string) {
		sas := ikeSAs(t, g.gw1)
		for _, sa := range sas {
			if sa.SPI == in1 && sa.Dst == second {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", spiSet(sas))
	})
	waitFor(t, "gw2's outbound SA to the new address", 30*time.Second, func() (bool, string) {
		for _, sa := range ikeSAs(t, g.gw2) {
			if sa.SPI == in1 && sa.Dst == second {
				return true, ""
			}
		}
		return false, ""
	})
	if lost, out, err := pingLoss(ctx, g.tb, testbed.H2Addr4, 20, 50*time.Millisecond); err != nil || lost != 0 {
		t.Fatalf("ping after the move: %d lost, %v\n%s", lost, err, out)
	}
	// The same SAs, moved in place: same SPIs, counters going on, no rekey in between.
	sas := ikeSAs(t, g.gw1)
	if s := spiSet(sas); len(s) != 2 || s[in1] != "in" || s[out1] != "out" {
		t.Fatalf("gw1's SAs after the move: %v, want the same %08x/%08x", s, in1, out1)
	}
	for _, sa := range sas {
		if sa.Cur.Packets <= before[sa.SPI] {
			t.Errorf("SA %08x: %d packets after the move, %d before: counters did not go on", sa.SPI, sa.Cur.Packets, before[sa.SPI])
		}
		if sa.SPI == out1 && sa.Src != second {
			t.Errorf("gw1's outbound SA's source %s, want %s", sa.Src, second)
		}
	}
	if !strings.Contains(g.c1.Log(), "kernel-xdpsec") || strings.Contains(g.c1.Log(), "rekeys instead") {
		t.Fatal("the plugin did not move the SA in place")
	}
	// On the card: the inbound SA under its new (SPI, dst) only.
	h := g.gw1.Manager()
	if rep, err := h.Check(ctx); err != nil || !rep.OK {
		t.Fatalf("check after the move: %+v %v", rep, err)
	}
}
