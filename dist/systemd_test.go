package dist

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

const unitFile = "systemd/xdpsec@.service"

// unitSettings reads the unit's Key=value lines (a key given twice collects both values).
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// The unit as `make install` writes it passes `systemd-analyze verify` (which also runs the
// binary's path check and looks up the man pages it names) and keeps its exposure score low.
func TestUnitVerifies(t *testing.T) {
	analyze := testutil.RequireTools(t, "systemd-analyze", "make", "man")[0]
	prefix := t.TempDir()
	install(t, "PREFIX="+prefix)
	unit := filepath.Join(prefix, "lib/systemd/system/xdpsec@.service")
	man := "--man=yes" // Documentation=man:… must name installed pages
	cmd := exec.Command(analyze, "verify", man, unit)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(prefix, "share/man"))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	// --threshold is in tenths: the overall exposure must stay at 3.0 ("OK") or below.
	if out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=30", unit).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
}

// gateway is one `xdpsec run` of a testbed's gw1 under the unit's restrictions.
type gateway struct {
	cmd     *exec.Cmd
	out     *testbed.LockedBuffer
	done    chan struct{}
	socket  string
	wrapped bool // the daemon is the child of a tracer, not cmd's process itself
}

// startGateway runs bin as gateway node (GW1 or GW2) in its network namespace (nsenter, which keeps
// this mount namespace and so /sys/fs/bpf) as root whose capability bounding set is caps, prefixed
// by wrap (strace).
func startGateway(ctx context.Context, t *testing.T, tb *testbed.Testbed, node testbed.Node, bin, cfg string, caps []string, wrap ...string) *gateway {
	t.Helper()
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	g := &gateway{out: &testbed.LockedBuffer{}, done: make(chan struct{}), socket: filepath.Join(t.TempDir(), "api.sock"),
		wrapped: len(wrap) > 0}
	args := append([]string{"--net=/run/netns/" + tb.NetNS(node), "--"}, wrap...)
	args = append(args, "setpriv", "--inh-caps=-all", "--bounding-set="+bounding, "--",
		bin, "run", "--config", cfg, "--instance", tb.Instance(node), "--socket", g.socket, "--metrics", "127.0.0.1:0")
	g.cmd = exec.CommandContext(ctx, "nsenter", args...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.done })
	return g
}

// waitFor waits until the log says what, or the process ends.
func (g *gateway) waitFor(what string) bool {
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(g.out.String(), what) {
			return true
		}
		select {
		case <-g.done:
			return strings.Contains(g.out.String(), what)
		default:
		}
	}
	return false
}

// signal sends sig to the daemon: nsenter and setpriv exec it in their own process, a tracer runs
// it as its child (and would detach on a signal of its own).
func (g *gateway) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	pid := g.cmd.Process.Pid
	if g.wrapped {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(b)); err != nil || len(f) != 1 {
			t.Fatalf("the tracer's children: %q %v", b, err)
		} else if _, err := fmt.Sscan(f[0], &pid); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
}

// stop sends SIGTERM and returns the exit status.
func (g *gateway) stop(t *testing.T) int {
	t.Helper()
	g.signal(t, syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after SIGTERM:\n%s", g.out.String())
	}
	return g.cmd.ProcessState.ExitCode()
}

// The daemon runs with exactly the unit's capability set (a reload, an API call and a scrape
// included, stopped with SIGTERM: exit 0, no pins left), fails without any one of them, and makes
// only the system calls the unit's filter allows, on the address families it allows.
func TestUnitCapabilitiesAndSyscalls(t *testing.T) {
	testutil.RequireRoot(t, "running the daemon builds namespaces and loads XDP and AF_XDP")
	testutil.RequireTools(t, "nsenter", "setpriv", "strace", "systemd-analyze", "ip")
	unit := unitSettings(t)
	caps := strings.Fields(strings.Join(unit["CapabilityBoundingSet"], " "))
	if len(caps) == 0 {
		t.Fatal("the unit sets no CapabilityBoundingSet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	tb, err := testbed.New(ctx, testbed.Options{Tag: "unit"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	// The unit's LimitMEMLOCK=infinity covers any UMEM; this test runs under the caller's memlock
	// limit (8 MiB by default, and raising it needs CAP_SYS_RESOURCE), so its UMEM is 4 MiB.
	y1, _, err := tb.GatewayConfigsWith(testbed.DefaultTunnels, testbed.Dataplane{UMEMFrames: 1024})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gw1.yaml")
	if err := os.WriteFile(cfg, []byte(y1), 0o600); err != nil {
		t.Fatal(err)
	}
	pins := "/sys/fs/bpf/xdpsec/" + tb.Instance(testbed.GW1) // this testbed's own instance
	t.Cleanup(func() { _ = os.RemoveAll(pins) })

	trace := filepath.Join(t.TempDir(), "strace.out")
	g := startGateway(ctx, t, tb, testbed.GW1, bin, cfg, caps, "strace", "-f", "-qq", "-o", trace)
	if !g.waitFor("gateway running") {
		t.Fatalf("the daemon did not start with %v:\n%s", caps, g.out.String())
	}
	g.signal(t, syscall.SIGHUP)
	if !g.waitFor("reloaded") {
		t.Errorf("no reload with %v:\n%s", caps, g.out.String())
	}
	if out, err := exec.CommandContext(ctx, bin, "--socket", g.socket, "stats").CombinedOutput(); err != nil {
		t.Errorf("xdpsec stats: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`metrics=http://(127\.0\.0\.1:[0-9]+)/metrics`).FindStringSubmatch(g.out.String()); m == nil {
		t.Errorf("no metrics address in the log:\n%s", g.out.String())
	} else if err := tb.InNS(testbed.GW1, func() error { return scrape(ctx, m[1]) }); err != nil { // it listens in gw1
		t.Errorf("scrape: %v", err)
	}
	if code := g.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM:\n%s", code, g.out.String())
	}
	if _, err := os.Stat(pins); err == nil {
		t.Errorf("pins left in %s", pins)
	}
	checkTrace(t, trace, bin, unit)

	// Each capability is needed: without it the start fails, saying why.
	for i, c := range caps {
		fewer := slices.Delete(slices.Clone(caps), i, i+1)
		g := startGateway(ctx, t, tb, testbed.GW1, bin, cfg, fewer)
		if g.waitFor("gateway running") {
			t.Errorf("the daemon started without %s: the unit grants more than it needs", c)
			g.stop(t)
			continue
		}
		<-g.done
		// The error names what is missing: the kernel's EPERM alone does not.
		if g.cmd.ProcessState.ExitCode() != 1 || !strings.Contains(g.out.String(), "xdpsec: start gateway:") ||
			!strings.Contains(g.out.String(), "missing capability: ") || !strings.Contains(g.out.String(), c+" (") {
			t.Errorf("without %s: exit %d\n%s", c, g.cmd.ProcessState.ExitCode(), g.out.String())
		}
		// Nothing stays attached. (Pins may: a verifier rejection leaves the maps the loader pinned
		// before loading the programs, a loader issue outside this test; they are removed below.)
		for _, dev := range []string{testbed.GW1LAN, testbed.GW1WAN} {
			if out, err := tb.Run(ctx, testbed.GW1, "ip", "-d", "link", "show", dev); err != nil || strings.Contains(out, "xdp") {
				t.Errorf("after a failed start without %s, %s: %v\n%s", c, dev, err, out)
			}
		}
	}
}

// scrape reads the metrics page once (over TCP: the daemon's AF_INET socket is exercised).
func scrape(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
		return err
	}
	b, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(b, "200") {
		return fmt.Errorf("status %q: %v", b, err)
	}
	return nil
}

var (
	reCall   = regexp.MustCompile(`^(\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]`)
	reSocket = regexp.MustCompile(`socket\((AF_[A-Z0-9]+)`)
)

// checkTrace compares what the daemon did (after setpriv exec'd it) with the unit's
// SystemCallFilter (plus @default, which systemd always allows) and RestrictAddressFamilies.
func checkTrace(t *testing.T, trace, bin string, unit map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	allowed := syscallSet(t, append([]string{"@default"}, strings.Fields(strings.Join(unit["SystemCallFilter"], " "))...))
	families := strings.Fields(strings.Join(unit["RestrictAddressFamilies"], " "))
	used, denied := map[string]bool{}, map[string]bool{}
	daemonPID := ""
	for _, line := range strings.Split(string(b), "\n") {
		m := reCall.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, call := m[1], m[2]
		if daemonPID == "" {
			// Until setpriv execs the daemon, the calls are setpriv's.
			if call == "execve" && strings.Contains(line, `"`+bin+`"`) && strings.Contains(line, "= 0") {
				daemonPID = pid
			}
			continue
		}
		used[call] = true
		if !allowed[call] {
			denied[call] = true
		}
		if s := reSocket.FindStringSubmatch(line); s != nil && !slices.Contains(families, s[1]) {
			t.Errorf("socket(%s), which RestrictAddressFamilies= does not allow: %s", s[1], line)
		}
	}
	if daemonPID == "" || len(used) < 20 {
		t.Fatalf("the trace does not show the daemon (%d calls):\n%.3000s", len(used), b)
	}
	if len(denied) > 0 {
		t.Errorf("the daemon makes system calls SystemCallFilter= denies: %v", slices.Sorted(maps.Keys(denied)))
	} else {
		t.Logf("%d distinct system calls, all allowed by the unit", len(used))
	}
}

// syscallSet expands systemd's syscall groups (systemd-analyze syscall-filter) and names.
func syscallSet(t *testing.T, names []string) map[string]bool {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "syscall-filter").Output()
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string][]string{}
	var cur string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "@"):
			cur = strings.TrimSpace(line)
		case strings.HasPrefix(line, "    ") && !strings.HasPrefix(strings.TrimSpace(line), "#") && cur != "":
			groups[cur] = append(groups[cur], strings.TrimSpace(line))
		}
	}
	set := map[string]bool{}
	var add func(string)
	add = func(n string) {
		if !strings.HasPrefix(n, "@") {
			set[n] = true
			return
		}
		members, ok := groups[n]
		if !ok {
			t.Fatalf("systemd-analyze knows no group %s", n)
		}
		for _, m := range members {
			add(m)
		}
	}
	for _, n := range names {
		add(n)
	}
	return set
}
