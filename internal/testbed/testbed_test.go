package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

func needRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "builds network namespaces")
}

// TestPlainForwarding builds the topology, checks that the kernel forwards IPv4 and IPv6 between
// h1 and h2 both ways, and that Close leaves no namespace behind.
func TestPlainForwarding(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tb, err := New(ctx, Options{Tag: "tbt"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	if !strings.HasPrefix(tb.NetNS(GW1), "xs-tbt-") {
		t.Fatalf("namespace %q does not carry the xs- prefix and tag", tb.NetNS(GW1))
	}
	for _, c := range []struct {
		from Node
		dst  string
	}{
		{H1, H2Addr4.String()}, {H1, H2Addr6.String()},
		{H2, H1Addr4.String()}, {H2, H1Addr6.String()},
	} {
		if err := tb.Ping(ctx, c.from, netip.MustParseAddr(c.dst), 2); err != nil {
			t.Errorf("ping %s from %s: %v", c.dst, c.from, err)
		}
	}
	// Ping fails when echoes go unanswered (h2 ignores them now), and PingCount counts them.
	if _, err := tb.Run(ctx, H2, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"); err != nil {
		t.Fatal(err)
	}
	if r, err := tb.PingCount(ctx, H1, H2Addr4, 2, PingOptions{Wait: 500 * time.Millisecond}); err != nil || r.Sent != 2 || r.Received != 0 {
		t.Errorf("PingCount to a host that ignores echoes: %+v, %v; want 2 sent, 0 answered", r, err)
	}
	if err := tb.Ping(ctx, H1, H2Addr4, 1); err == nil {
		t.Error("Ping to a host that ignores echoes succeeded")
	}
	if _, err := tb.Run(ctx, H2, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=0"); err != nil {
		t.Fatal(err)
	}
	// The path is routed, not bridged: h2 sees h1's packets with the TTL lowered by both gateways.
	out, err := tb.Run(ctx, H1, "ping", "-n", "-c", "1", "-W", "2", H2Addr4.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ttl=62") {
		t.Errorf("echo reply from h2 should arrive with ttl=62 (two hops each way): %s", out)
	}
	res, err := tb.Iperf3(ctx, IperfOptions{Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes == 0 || res.BitsPerSecond <= 0 {
		t.Errorf("iperf3 measured nothing: %v", res)
	}
	t.Logf("plain forwarding, TCP 1 stream, 1 s: %v", res)

	names := []string{}
	for _, n := range Nodes {
		names = append(names, tb.NetNS(n))
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); err == nil {
			t.Errorf("namespace %s left behind", n)
		}
	}
}

// TestNewCleansUpOnFailure makes the build fail half-way (an impossible MTU) and checks that the
// namespaces created before the failure are gone.
func TestNewCleansUpOnFailure(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := countNetNS(t, "xs-tbf-")
	_, err := New(ctx, Options{Tag: "tbf", MTU: 70000})
	if err == nil {
		t.Fatal("New with MTU 70000 succeeded")
	}
	if after := countNetNS(t, "xs-tbf-"); after != before {
		t.Fatalf("failed New left %d namespaces behind: %v", after-before, err)
	}
}

func TestSweepRefusesForeignPrefixes(t *testing.T) {
	for _, p := range []string{"", "xs-", "foo", "/"} {
		if err := Sweep(p); err == nil {
			t.Errorf("Sweep(%q) accepted a prefix that is not a testbed's", p)
		}
	}
}

func countNetNS(t *testing.T, prefix string) int {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			n++
		}
	}
	return n
}

// TestWireTap checks that the bridge in the middle of the wire link forwards, and that a capture
// there sees the gateways' traffic.
func TestWireTap(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tb, err := New(ctx, Options{Tag: "tbw", WireTap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	if err := tb.Ping(ctx, H1, H2Addr4, 2); err != nil {
		t.Fatal(err)
	}
	if err := tb.Ping(ctx, H2, H1Addr6, 2); err != nil {
		t.Fatal(err)
	}
	sw := tb.NetNS(SW)
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + sw); err == nil {
		t.Errorf("wire tap namespace %s left behind", sw)
	}
}

// TestLeftoversSeesHeldNamespace: a process left inside a namespace and an open handle on another
// keep them (and their links) alive after Close; Leftovers must name both, and nothing once they
// are gone.
func TestLeftoversSeesHeldNamespace(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tb, err := New(ctx, Options{Tag: "tbl"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	sleeper := tb.Command(ctx, H2, "sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	h, err := tb.NsHandle(GW1)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// `ip netns exec` execs sleep: wait until the process is sleep itself, inside h2.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(sleeper.Process.Pid) + "/comm"); strings.TrimSpace(string(b)) == "sleep" {
			break
		}
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	left := strings.Join(tb.Leftovers(), "\n")
	for _, want := range []string{"process " + strconv.Itoa(sleeper.Process.Pid) + " (sleep 30) in namespace " + tb.NetNS(H2),
		"on namespace " + tb.NetNS(GW1)} {
		if !strings.Contains(left, want) {
			t.Errorf("Leftovers lacks %q:\n%s", want, left)
		}
	}
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	h.Close()
	if left := tb.Leftovers(); len(left) > 0 {
		t.Errorf("Leftovers after the process and the handle are gone: %v", left)
	}
}

// TestSweep removes a namespace and a pin directory named under a prefix of its own, and leaves
// a namespace outside the prefix alone.
func TestSweep(t *testing.T) {
	needRoot(t)
	prefix := fmt.Sprintf("xs-tbs-%x", time.Now().UnixNano()&0xffffff)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []string{prefix + "-gw1", prefix + "x-h1"} {
		if err := run(ctx, "ip", "netns", "add", n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = removeNetNS(n) })
	}
	if err := os.MkdirAll("/sys/fs/bpf/xdpsec/"+prefix+"-gw1", 0o700); err != nil {
		t.Fatalf("no bpffs to make a pin directory in (hack/test.sh mounts it): %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll("/sys/fs/bpf/xdpsec/" + prefix + "-gw1") })
	removed, err := SweepReport(prefix + "-")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("Sweep removed %v, want the namespace and the pin directory", removed)
	}
	for _, p := range []string{"/run/netns/" + prefix + "-gw1", "/sys/fs/bpf/xdpsec/" + prefix + "-gw1"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s survived the sweep", p)
		}
	}
	if _, err := os.Stat("/run/netns/" + prefix + "x-h1"); err != nil {
		t.Errorf("the sweep removed a namespace outside its prefix: %v", err)
	}
}

// parsePing takes ping's count from its summary, and one reply in three is not three: the exit code
// (0 when any reply came back) says nothing about how many.
func TestParsePing(t *testing.T) {
	exit1 := exec.Command("sh", "-c", "exit 1").Run()
	exit2 := exec.Command("sh", "-c", "exit 2").Run()
	for _, c := range []struct {
		out        string
		err        error
		sent, recv int
		ok         bool
	}{
		{"--- 198.18.2.10 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss, time 402ms\n", nil, 3, 3, true},
		{"3 packets transmitted, 1 received, 66.6667% packet loss, time 2034ms\n", nil, 3, 1, true},
		{"2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1001ms\n", exit1, 2, 0, true},
		{"ping: connect: Network is unreachable\n", exit2, 0, 0, false},
		{"", errors.New("exec: not found"), 0, 0, false},
		{"1 packets transmitted, 1 received\n", exit2, 0, 0, false},
	} {
		r, err := parsePing(c.out, c.err)
		if (err == nil) != c.ok || (c.ok && (r.Sent != c.sent || r.Received != c.recv)) {
			t.Errorf("parsePing(%q, %v) = %+v, %v; want %d sent, %d received, ok %v", c.out, c.err, r, err, c.sent, c.recv, c.ok)
		}
	}
}
