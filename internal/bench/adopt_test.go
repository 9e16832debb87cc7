//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// adoptedPath is the path TestAdoptedTopology lays out in a testbed's namespaces: no name and no
// address of the testbed's own, so that a bench leaning on the package's constants fails.
var adoptedPath = []struct {
	n         testbed.Node
	role, old string
	dev, addr string
}{
	{testbed.H1, "h1", testbed.H1Eth, "lan-a", "198.19.10.20/24"},
	{testbed.GW1, "gw1-lan", testbed.GW1LAN, "gwa-in", "198.19.10.1/24"},
	{testbed.GW1, "gw1-wan", testbed.GW1WAN, "gwa-out", "198.19.20.1/29"},
	{testbed.GW2, "gw2-wan", testbed.GW2WAN, "gwb-out", "198.19.20.2/29"},
	{testbed.GW2, "gw2-lan", testbed.GW2LAN, "gwb-in", "198.19.30.1/24"},
	{testbed.H2, "h2", testbed.H2Eth, "lan-b", "198.19.30.40/24"},
}

// TestAdoptedTopology runs the bench on a topology it did not build: a testbed's four namespaces
// with the path renamed and readdressed (IPv4 only), two queues per interface and GRO on at h2
// only. The run sets one queue per interface (Options.Queues) and GRO everywhere; afterwards every
// namespace, interface, address, route, offload setting and queue count must be as before, with
// no XDP program attached and no pins left, and every system must have carried its traffic.
func TestAdoptedTopology(t *testing.T) {
	testutil.RequireRoot(t, "the bench loads XDP and AF_XDP in namespaces")
	testutil.SkipShort(t, "the bench")
	testutil.RequireTools(t, "ip", "iperf3", "ethtool")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tb, err := testbed.New(ctx, testbed.Options{Tag: "adb", Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	run := func(n testbed.Node, args ...string) string {
		t.Helper()
		out, err := tb.Run(ctx, n, args[0], args[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, p := range adoptedPath {
		run(p.n, "ip", "link", "set", p.old, "down")
		run(p.n, "ip", "link", "set", p.old, "name", p.dev)
		run(p.n, "ip", "addr", "flush", "dev", p.dev, "scope", "global")
		run(p.n, "ip", "addr", "add", p.addr, "dev", p.dev)
		run(p.n, "ip", "link", "set", p.dev, "up")
	}
	run(testbed.H1, "ip", "route", "replace", "default", "via", "198.19.10.1")
	run(testbed.GW1, "ip", "route", "add", "198.19.30.0/24", "via", "198.19.20.2")
	run(testbed.GW2, "ip", "route", "add", "198.19.10.0/24", "via", "198.19.20.1")
	run(testbed.H2, "ip", "route", "replace", "default", "via", "198.19.30.1")
	run(testbed.H2, "ethtool", "-K", "lan-b", "gro", "on")
	// Links just set up come up (carrier, then the IPv6 link-local address) a moment later: the
	// state to compare with is the settled one.
	type addr struct {
		Family string `json:"family"`
		Scope  string `json:"scope"`
	}
	for _, p := range adoptedPath {
		testutil.WaitFor(t, 10*time.Second, p.dev+" up with its link-local address", func() bool {
			var links []struct {
				Operstate string `json:"operstate"`
				Addrs     []addr `json:"addr_info"`
			}
			out := run(p.n, "ip", "-j", "addr", "show", "dev", p.dev)
			if json.Unmarshal([]byte(out), &links) != nil || len(links) != 1 || links[0].Operstate != "UP" {
				return false
			}
			return slices.ContainsFunc(links[0].Addrs, func(a addr) bool { return a.Family == "inet6" && a.Scope == "link" })
		})
	}
	before := pathState(t, tb, run)

	netns, devs := map[string]string{}, map[string]string{}
	for _, n := range testbed.Nodes {
		netns[string(n)] = tb.NetNS(n)
	}
	for _, p := range adoptedPath {
		devs[p.role] = p.dev
	}
	topo, err := testbed.TopologyFromNames(netns, devs)
	if err != nil {
		t.Fatal(err)
	}
	systems := []string{"kernel", "xsfwd", "xdpsec"}
	wg, _ := filepath.Abs(filepath.Join("..", "..", "build", "wireguard-go"))
	if _, err := os.Stat(wg); err == nil {
		systems = append(systems, "wireguard-go") // its routes are restored too
	} else {
		t.Logf("wireguard-go not measured (no %s: hack/wireguard-go.sh builds it): its route restore is not exercised", wg)
		wg = ""
	}
	out := t.TempDir()
	rep, err := Run(ctx, Options{Quick: true, Topology: &topo, Queues: 1, Phases: []string{PhaseTCP, PhaseUDP},
		Systems: systems, Suites: []string{"aes-gcm-128"}, WireguardGo: wg, OutDir: out,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("bench on the adopted topology: %v", err)
	}
	if err := rep.Check(); err != nil {
		t.Errorf("report: %v", err)
	}
	var measured []string
	for _, r := range rep.Results {
		t.Logf("%s %s %d streams %s B: %.2f Gbit/s %.3f Mpps, carried %d packets %d bytes %s", r.Phase, r.System, r.Streams,
			r.Frame, r.Gbps, r.Mpps, r.Carried.Packets, r.Carried.Bytes, r.Error)
		if r.Error == "" && !slices.Contains(measured, r.System) {
			measured = append(measured, r.System)
		}
	}
	for _, want := range append(systems[:2:2], append([]string{"xdpsec/aes-gcm-128"}, systems[3:]...)...) {
		if !slices.Contains(measured, want) {
			t.Errorf("system %s has no successful result (measured: %v)", want, measured)
		}
	}
	if rt := rep.Host.Topology; rt == nil || !rt.Adopted || rt.NetNS[testbed.GW1] != tb.NetNS(testbed.GW1) ||
		rt.GW2LAN.Dev != "gwb-in" || rt.H2.Addr4.String() != "198.19.30.40/24" || rt.IPv6() {
		t.Errorf("the report's topology %+v does not name the adopted one", rt)
	}
	if rep.Host.Queues != 1 {
		t.Errorf("report: %d queues, want the 1 asked for", rep.Host.Queues)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "vary the ports") }) {
		t.Errorf("notes %q do not say the generator varied ports (h1's network does not hold its sources)", rep.Notes)
	}

	after := pathState(t, tb, run)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed by the bench:\nbefore:\n%s\nafter:\n%s", k, v, after[k])
		}
	}
	for _, p := range adoptedPath {
		var links []map[string]any
		if err := json.Unmarshal([]byte(run(p.n, "ip", "-j", "link", "show", "dev", p.dev)), &links); err != nil || len(links) != 1 {
			t.Fatalf("%s: %v", p.dev, err)
		}
		if x, ok := links[0]["xdp"]; ok {
			t.Errorf("%s still has an XDP program: %v", p.dev, x)
		}
	}
	if pins, _ := filepath.Glob("/sys/fs/bpf/xdpsec/" + rep.Host.Testbed + "*"); len(pins) > 0 {
		t.Errorf("pins left: %v", pins)
	}
	// And the path still forwards as its owner set it up.
	if err := tb.Ping(ctx, testbed.H1, netip.MustParseAddr("198.19.30.40"), 2); err != nil {
		t.Errorf("after the bench: %v", err)
	}
}

// pathState is what the test compares before and after a run: each namespace's interfaces,
// addresses, routes and forwarding, and each path interface's offloads and queues.
func pathState(t *testing.T, tb *testbed.Testbed, run func(testbed.Node, ...string) string) map[string]string {
	t.Helper()
	s := map[string]string{}
	for _, n := range testbed.Nodes {
		if _, err := os.Stat("/run/netns/" + tb.NetNS(n)); err != nil {
			t.Errorf("namespace %s: %v", tb.NetNS(n), err)
		}
		s[string(n)+" ip -d addr"] = run(n, "ip", "-d", "addr", "show")
		s[string(n)+" ip route"] = run(n, "ip", "route", "show", "table", "all")
		s[string(n)+" ip -6 route"] = run(n, "ip", "-6", "route", "show", "table", "all")
		s[string(n)+" sysctl"] = run(n, "sysctl", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
	}
	for _, p := range adoptedPath {
		s[p.dev+" ethtool -k"] = run(p.n, "ethtool", "-k", p.dev)
		s[p.dev+" ethtool -l"] = run(p.n, "ethtool", "-l", p.dev)
	}
	return s
}
