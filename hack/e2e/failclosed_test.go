package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/loader"
)

// Issue 8's fail-closed proofs in the testbed: a gateway that stops (guard) or is killed leaves
// nothing protected to pass in either direction while IKE-like bypass traffic flows; its next
// start adopts the card without detaching it and reconciles what a killed run left; forged
// packets from the wire side never reach a protected host.

// Ports of the test's UDP flows; the SPD protects everything between the LANs but udp/500.
const (
	portOut    = 7001 // h1 → h2, protected
	portIn     = 7002 // h2 → h1, protected
	portBypass = 500  // h1 → h2, BYPASS on gw1 (IKE-like)
	udpBurst   = 20
)

// withIKEBypass adds to gw1's configuration an outbound BYPASS for udp/500 from LAN1 to LAN2 (gw2's
// inbound IKE bypass already covers it), and sets its on_exit.
func withIKEBypass(y, onExit string) string {
	y = strings.Replace(y, "on_exit: detach\n", "on_exit: "+onExit+"\n", 1)
	return strings.Replace(y, "policies:\n", "policies:\n  - {name: ike-fwd, dir: out, src: "+testbed.LAN1Prefix4.String()+
		", dst: "+testbed.LAN2Prefix4.String()+", proto: udp, dport: 500, priority: 10, action: bypass}\n", 1)
}

// udpCounter counts the datagrams that reach a UDP socket of a node.
type udpCounter struct {
	conn *net.UDPConn
	n    atomic.Int64
}

func listenUDP(t *testing.T, tb *testbed.Testbed, n testbed.Node, at netip.AddrPort) *udpCounter {
	t.Helper()
	u := &udpCounter{}
	if err := tb.InNS(n, func() (err error) {
		u.conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.conn.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := u.conn.Read(buf); err != nil {
				return
			}
			u.n.Add(1)
		}
	}()
	return u
}

// sendUDP sends n datagrams from node to dst, each carrying payload, 5 ms apart.
func sendUDP(t *testing.T, tb *testbed.Testbed, from testbed.Node, dst netip.AddrPort, n int, payload []byte) {
	t.Helper()
	if err := tb.InNS(from, func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.Write(payload); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// pinnedReasons reads the reason counters of an instance's pinned card, which no process may hold.
func pinnedReasons(t *testing.T, instance string) map[string]uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(loader.DefaultPinRoot, instance, bpf.CardMapReasons), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]uint64{}
	for i := range loader.NumReasons {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[loader.ReasonName(loader.Reason(i))] = sum
	}
	return out
}

// waitReasons waits until each named counter of the instance's pinned card has grown by want from base.
func waitReasons(t *testing.T, instance string, base map[string]uint64, want map[string]uint64) {
	t.Helper()
	var now map[string]uint64
	ok := testutil.Eventually(10*time.Second, func() bool {
		now = pinnedReasons(t, instance)
		for k, v := range want {
			if now[k]-base[k] < v {
				return false
			}
		}
		return true
	})
	for k, v := range want {
		if d := now[k] - base[k]; d != v || !ok {
			t.Errorf("%s counted %d times, want %d", k, d, v)
		}
	}
}

// flows are the test's UDP sinks: protected h1 → h2 (out) and h2 → h1 (in), bypassed h1 → h2.
type flows struct{ out, in, bypass *udpCounter }

func listenFlows(t *testing.T, tb *testbed.Testbed) *flows {
	return &flows{
		out:    listenUDP(t, tb, testbed.H2, netip.AddrPortFrom(testbed.H2Addr4, portOut)),
		in:     listenUDP(t, tb, testbed.H1, netip.AddrPortFrom(testbed.H1Addr4, portIn)),
		bypass: listenUDP(t, tb, testbed.H2, netip.AddrPortFrom(testbed.H2Addr4, portBypass)),
	}
}

// checkClosed runs the three flows through gw1, which no worker serves (stopped or killed), with
// a capture on its side of the wire: the protected datagrams of each direction are counted
// exactly once under outReason and inReason in its pinned card and reach no host; the bypassed
// ones all arrive; the wire holds no plaintext marker, no ESP of gw1, gw2's ESP of the inbound
// flow and the bypassed datagrams, nothing else.
func (f *flows) checkClosed(ctx context.Context, t *testing.T, tb *testbed.Testbed, instance, outReason, inReason string) {
	t.Helper()
	base := pinnedReasons(t, instance)
	pcapFile := filepath.Join(t.TempDir(), "closed.pcap")
	capture := startCapture(ctx, t, tb, pcapFile, "--immediate-mode")
	sendUDP(t, tb, testbed.H1, netip.AddrPortFrom(testbed.H2Addr4, portOut), udpBurst, marker)
	sendUDP(t, tb, testbed.H2, netip.AddrPortFrom(testbed.H1Addr4, portIn), udpBurst, marker)
	sendUDP(t, tb, testbed.H1, netip.AddrPortFrom(testbed.H2Addr4, portBypass), udpBurst, []byte("ike-like"))
	waitReasons(t, instance, base, map[string]uint64{outReason: udpBurst, inReason: udpBurst})
	if !testutil.Eventually(5*time.Second, func() bool { return f.bypass.n.Load() == udpBurst }) {
		t.Errorf("%d of %d bypassed udp/500 datagrams reached h2", f.bypass.n.Load(), udpBurst)
	}
	if drops := capture.stop(t); drops > 0 {
		t.Errorf("tcpdump missed %d packets", drops)
	}
	// Every protected datagram is counted as dropped by now: none can arrive later.
	if n1, n2 := f.in.n.Load(), f.out.n.Load(); n1 != 0 || n2 != 0 {
		t.Errorf("h2 received %d and h1 %d protected datagrams", n2, n1)
	}
	w := countWire(t, pcapFile)
	t.Logf("wire: ESP %v, udp/500 %d, other %v", w.espFrom, w.udp500, w.other)
	if w.marker != 0 || w.espFrom[testbed.GW1WANAddr4] != 0 || len(w.other) != 0 {
		t.Errorf("gw1 sent %d frames with the plaintext marker, %d ESP, other %v", w.marker, w.espFrom[testbed.GW1WANAddr4], w.other)
	}
	if w.espFrom[testbed.GW2WANAddr4] != udpBurst || w.udp500 != udpBurst {
		t.Errorf("the wire carried %d ESP from gw2 and %d udp/500, want %d each", w.espFrom[testbed.GW2WANAddr4], w.udp500, udpBurst)
	}
}

// countFrames counts the frames of a capture.
func countFrames(t *testing.T, file string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read capture: %v", err)
			}
			return n
		}
		n++
	}
}

// wireCount is what a capture on the gw1 side of the wire holds.
type wireCount struct {
	espFrom map[netip.Addr]int // ESP by outer source
	udp500  int                // udp/500 datagrams between the hosts
	other   []string           // anything else that is not ARP or neighbour discovery
	marker  int                // frames holding the plaintext marker
}

func countWire(t *testing.T, file string) wireCount {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	w := wireCount{espFrom: map[netip.Addr]int{}}
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return w
		}
		if err != nil {
			t.Fatalf("read capture: %v", err)
		}
		if bytes.Contains(data, marker) {
			w.marker++
		}
		if len(data) < 34 {
			continue
		}
		switch binary.BigEndian.Uint16(data[12:]) {
		case 0x0806:
			continue
		case 0x86dd:
			if len(data) > 54 && data[20] == 58 && data[54] >= 130 && data[54] <= 143 {
				continue // neighbour discovery, MLD
			}
			w.other = append(w.other, "IPv6")
			continue
		case 0x0800:
		default:
			w.other = append(w.other, "non-IP")
			continue
		}
		l3 := 14 + int(data[14]&0xf)*4
		src := netip.AddrFrom4([4]byte(data[26:30]))
		switch proto := data[23]; {
		case proto == 50:
			w.espFrom[src]++
		case proto == 17 && len(data) >= l3+4 && binary.BigEndian.Uint16(data[l3+2:]) == portBypass:
			w.udp500++
		default:
			w.other = append(w.other, fmt.Sprintf("%s protocol %d", src, proto))
		}
	}
}

// TestGuardedStopAndAdopt: gw1 (on_exit: guard) stops under a 10 ms ping from h1 while gw2 runs:
// no plaintext ICMP of h1 appears on the wire across the stop. Until gw1 starts again, UDP
// between the hosts that the SPD protects is dropped in both directions and counted (OutGuard at
// gw1 for h1's, InGuard for gw2's ESP), nothing of it reaches the other host and no plaintext and
// no ESP of gw1 is on the wire, while udp/500, which gw1's SPD bypasses, arrives whole. The next
// start adopts the card — the same two links, never detached — and the tunnel carries pings
// again; afterwards loader.Remove (xdpsec down) leaves no program and no pin, and finds nothing
// the second time.
func TestGuardedStopAndAdopt(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tb, f1, f2 := newTestbed(ctx, t)
	instance := tb.Instance(testbed.GW1)
	t.Cleanup(func() { _, _ = loader.Remove("", instance) })
	y1, err := os.ReadFile(f1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f1, []byte(withIKEBypass(string(y1), "guard")), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = startFromFile(ctx, t, tb, testbed.GW2, f2)
	gw1 := startFromFile(ctx, t, tb, testbed.GW1, f1)
	if _, err := tb.WarmUp(ctx, testbed.H1, testbed.H2Addr4); err != nil {
		t.Fatal(err)
	}
	if err := tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 3); err != nil {
		t.Fatal(err)
	}
	links := func(c *loader.Card) [2]uint32 {
		var ids [2]uint32
		for i, s := range []loader.Side{loader.SideProtected, loader.SideWire} {
			id, err := c.LinkID(s)
			if err != nil || id == 0 {
				t.Fatalf("%s link: %d, %v", s, id, err)
			}
			ids[i] = uint32(id)
		}
		return ids
	}
	ids := links(gw1.Card())
	flows := listenFlows(t, tb)

	// The stop happens under a 10 ms ping from h1; a capture of h1's ICMP on the wire spans it.
	icmpFile := filepath.Join(t.TempDir(), "icmp.pcap")
	icmpCapture := startCapture(ctx, t, tb, icmpFile, "--immediate-mode", "icmp and host "+testbed.H1Addr4.String())
	ping := tb.Command(ctx, testbed.H1, "ping", "-n", "-q", "-i", "0.01", testbed.H2Addr4.String())
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ping.Process.Kill() })
	protected := func() uint64 {
		r, err := gw1.Card().ReasonCounts()
		if err != nil {
			t.Fatal(err)
		}
		return r["OutProtect"]
	}
	p0 := protected()
	testutil.WaitFor(t, 5*time.Second, "the ping through gw1", func() bool { return protected() >= p0+10 })
	t0 := time.Now()
	if err := gw1.Close(); err != nil {
		t.Fatalf("stop gw1: %v", err)
	}
	t.Logf("gw1 stopped in %v", time.Since(t0).Round(time.Millisecond))
	g0 := pinnedReasons(t, instance)["OutGuard"]
	testutil.WaitFor(t, 5*time.Second, "the ping to meet the guard", func() bool { return pinnedReasons(t, instance)["OutGuard"] >= g0+10 })
	_ = ping.Process.Signal(syscall.SIGINT)
	_ = ping.Wait()
	flows.checkClosed(ctx, t, tb, instance, "OutGuard", "InGuard")
	if drops := icmpCapture.stop(t); drops > 0 {
		t.Errorf("tcpdump missed %d packets", drops)
	}
	if n := countFrames(t, icmpFile); n != 0 {
		t.Errorf("%d plaintext ICMP packets of h1 on the wire across the stop", n)
	}

	gw1 = startFromFile(ctx, t, tb, testbed.GW1, f1)
	if !gw1.Info.Adopted {
		t.Error("the second start did not adopt the card")
	}
	if got := links(gw1.Card()); got != ids {
		t.Errorf("links %v after the restart, %v before: the card was detached in between", got, ids)
	}
	if g, err := gw1.Card().Guarded(); err != nil || g {
		t.Errorf("guard after the start: %v, %v", g, err)
	}
	if _, err := tb.WarmUp(ctx, testbed.H1, testbed.H2Addr4); err != nil {
		t.Fatal(err)
	}
	if err := tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 5); err != nil {
		t.Errorf("after the adoption: %v", err)
	}
	sendUDP(t, tb, testbed.H1, netip.AddrPortFrom(testbed.H2Addr4, portOut), udpBurst, []byte("after"))
	if !testutil.Eventually(5*time.Second, func() bool { return flows.out.n.Load() == udpBurst }) {
		t.Errorf("%d of %d datagrams through the tunnel after the adoption", flows.out.n.Load(), udpBurst)
	}

	if err := gw1.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := loader.Remove("", instance)
	if err != nil || len(r.Links) != 2 || r.Dir == "" {
		t.Fatalf("remove: %+v, %v", r, err)
	}
	for _, dev := range []string{testbed.GW1LAN, testbed.GW1WAN} {
		out, err := tb.Run(ctx, testbed.GW1, "ip", "-d", "link", "show", dev)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "prog/xdp") {
			t.Errorf("%s keeps an XDP program after the removal:\n%s", dev, out)
		}
	}
	if _, err := os.Lstat(r.Dir); err == nil {
		t.Errorf("%s left after the removal", r.Dir)
	}
	if r, err := loader.Remove("", instance); err != nil || r.Dir != "" {
		t.Errorf("second removal: %+v, %v", r, err)
	}
}

// reverseSAs returns the configuration with its SAs in the opposite order: each gets the index
// another one had.
func reverseSAs(t *testing.T, y string) string {
	t.Helper()
	head, sas, ok := strings.Cut(y, "sas:\n")
	if !ok {
		t.Fatal("no sas in the configuration")
	}
	var items []string
	for _, it := range strings.Split(sas, "  - name: ")[1:] {
		items = append(items, "  - name: "+it)
	}
	slices.Reverse(items)
	return head + "sas:\n" + strings.Join(items, "")
}

// TestKilledRunFailsClosedAndIsReconciled: gw1 runs as `xdpsec run` with both tunnels and is
// killed with SIGKILL, which leaves no chance to set the guard. Its card stays attached without
// workers: protected UDP in both directions is dropped and counted (OutNoSocket, InNoSocket),
// none reaches the other host, no plaintext is on the wire, and udp/500, which its SPD bypasses,
// arrives whole. gw1 then starts in-process with its
// SAs in the opposite order — every index and every inbound (SPI, destination) held by an SA of
// the killed run — and, one policy fewer: it adopts the card, removes what the killed run left,
// installs the configuration (the manager's check finds the card equal to the SAD and SPD), and
// both tunnels carry pings.
func TestKilledRunFailsClosedAndIsReconciled(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	tb, _, _ := newTestbed(ctx, t)
	instance := tb.Instance(testbed.GW1)
	t.Cleanup(func() { _, _ = loader.Remove("", instance) })
	y1, y2, err := tb.GatewayConfigs(tunnels)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f1, f2, fB := filepath.Join(dir, "gw1.yaml"), filepath.Join(dir, "gw2.yaml"), filepath.Join(dir, "gw1-after.yaml")
	// The killed run has an extra policy the next one lacks (a stale one to remove).
	killed := withIKEBypass(y1, "detach")
	for _, f := range [][2]string{{f1, killed}, {f2, y2}, {fB, reverseSAs(t, y1)}} {
		if err := os.WriteFile(f[0], []byte(f[1]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_ = startFromFile(ctx, t, tb, testbed.GW2, f2)
	g := runGateway(t, bin, f1, tb.NetNS(testbed.GW1))
	if _, err := tb.WarmUp(ctx, testbed.H1, testbed.H2Addr4); err != nil {
		t.Fatal(err)
	}
	flows := listenFlows(t, tb)
	g.stop(t, syscall.SIGKILL)
	flows.checkClosed(ctx, t, tb, instance, "OutNoSocket", "InNoSocket")

	gw1 := startFromFile(ctx, t, tb, testbed.GW1, fB)
	if !gw1.Info.Adopted {
		t.Error("the start after the kill did not adopt the card")
	}
	rep, err := gw1.Manager().Check(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("check after the adoption: %+v, %v", rep, err)
	}
	want := map[uint32]uint32{} // index → SPI, as the reversed configuration gives them
	for _, sa := range gw1.Manager().Store().Snapshot().SAs {
		want[sa.Index] = sa.SPI
	}
	got := map[uint32]uint32{}
	if err := gw1.Card().SAs(func(idx uint32, sa loader.SA) bool { got[idx] = sa.SPI; return true }); err != nil {
		t.Fatal(err)
	}
	if len(want) != 4 || !maps.Equal(got, want) {
		t.Errorf("card SAs %v, SAD %v", got, want)
	}
	if n := len(gw1.Card().Policies()); n != rep.Policies {
		t.Errorf("card holds %d policies, the SPD %d", n, rep.Policies)
	}
	for _, dst := range []netip.Addr{testbed.H2Addr4, testbed.H2Addr6} {
		if _, err := tb.WarmUp(ctx, testbed.H1, dst); err != nil {
			t.Fatal(err)
		}
		if err := tb.Ping(ctx, testbed.H1, dst, 5); err != nil {
			t.Errorf("after the reconciliation: %v", err)
		}
	}
}

// udp returns a UDP header and payload without a checksum.
func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

// espCounter counts the IPv4 ESP packets a node's stack receives (a raw socket for protocol 50).
func espCounter(t *testing.T, tb *testbed.Testbed, n testbed.Node) *atomic.Int64 {
	t.Helper()
	var fd int
	if err := tb.InNS(n, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ESP)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "esp")
	t.Cleanup(func() { f.Close() })
	var c atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			c.Add(1)
		}
	}()
	return &c
}

// TestForgedFromTheWire: frames injected on the wire towards gw2, from h1's address to h2's (an
// inbound PROTECT policy covers them) — UDP to port 4500 with an SPI-like first word, ESP with an
// SPI gw2 does not hold, and a plain UDP datagram — never reach h2 (sockets on h2 count them) and
// are counted by reason: InTmplMismatch for each, InNoStates for the ESP besides. UDP/4500 with
// IKE's non-ESP marker to gw2's own address, which gw2 learned from netlink, reaches gw2's stack
// (InIKE).
func TestForgedFromTheWire(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tb, f1, f2 := newTestbed(ctx, t)
	_ = startFromFile(ctx, t, tb, testbed.GW1, f1)
	gw2 := startFromFile(ctx, t, tb, testbed.GW2, f2)
	if _, err := tb.WarmUp(ctx, testbed.H1, testbed.H2Addr4); err != nil {
		t.Fatal(err)
	}
	dmac, err := tb.MAC(ctx, testbed.GW2, testbed.GW2WAN)
	if err != nil {
		t.Fatal(err)
	}
	smac, err := tb.MAC(ctx, testbed.GW1, testbed.GW1WAN)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	natt := listenUDP(t, tb, testbed.H2, netip.AddrPortFrom(testbed.H2Addr4, 4500))
	plain := listenUDP(t, tb, testbed.H2, netip.AddrPortFrom(testbed.H2Addr4, portOut))
	esp := espCounter(t, tb, testbed.H2)
	ike := listenUDP(t, tb, testbed.GW2, netip.AddrPortFrom(testbed.GW2WANAddr4, 4500))
	spiLike := []byte{0xde, 0xad, 0x00, 0x01, 0, 0, 0, 1, 'x', 'x', 'x', 'x'}
	var frames [][]byte
	for range n {
		frames = append(frames,
			testbed.IPv4Frame(dmac, smac, testbed.H1Addr4, testbed.H2Addr4, 17, udp(4500, 4500, spiLike)),
			testbed.IPv4Frame(dmac, smac, testbed.H1Addr4, testbed.H2Addr4, 50, spiLike),
			testbed.IPv4Frame(dmac, smac, testbed.H1Addr4, testbed.H2Addr4, 17, udp(40000, portOut, marker)),
			testbed.IPv4Frame(dmac, smac, testbed.GW1WANAddr4, testbed.GW2WANAddr4, 17, udp(4500, 4500, []byte{0, 0, 0, 0, 'i', 'k', 'e'})))
	}
	card0, err := gw2.Card().ReasonCounts()
	if err != nil {
		t.Fatal(err)
	}
	if err := sendFrames(tb, testbed.SW, testbed.SWGW2, frames); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"InTmplMismatch": 3 * n, "InNoStates": n, "InIKE": n}
	var card1 map[string]uint64
	ok := testutil.Eventually(10*time.Second, func() bool {
		card1, err = gw2.Card().ReasonCounts()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if card1[k]-card0[k] < v {
				return false
			}
		}
		return ike.n.Load() >= n
	})
	for k, v := range want {
		if d := card1[k] - card0[k]; d != v || !ok {
			t.Errorf("gw2 counted %s %d times, want %d", k, d, v)
		}
	}
	if got := ike.n.Load(); got != n {
		t.Errorf("gw2's stack received %d of the %d IKE datagrams on 4500", got, n)
	}
	// Every forged frame is counted as dropped: none can reach h2 later.
	if a, b, c := natt.n.Load(), esp.Load(), plain.n.Load(); a != 0 || b != 0 || c != 0 {
		t.Errorf("h2 received %d forged UDP/4500, %d forged ESP and %d plain datagrams", a, b, c)
	}
}
