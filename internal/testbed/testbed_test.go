package testbed

import (
	"context"
	"fmt"
	"os"
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
		if _, err := tb.Run(ctx, c.from, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", c.dst); err != nil {
			t.Errorf("ping %s from %s: %v", c.dst, c.from, err)
		}
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
