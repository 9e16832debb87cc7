package dist

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// keptCapabilities reads the capabilities the unit says the running daemon keeps (its
// "#   kept after setup:" comment line).
func keptCapabilities(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "#   kept after setup:"); ok {
			return strings.Fields(v)
		}
	}
	t.Fatal(`the unit has no "#   kept after setup:" line`)
	return nil
}

// capMask is the bit mask of named capabilities ("CAP_NET_ADMIN", …).
func capMask(t *testing.T, names []string) uint64 {
	t.Helper()
	numbers := map[string]int{"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_BPF": unix.CAP_BPF,
		"CAP_PERFMON": unix.CAP_PERFMON, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN}
	var m uint64
	for _, n := range names {
		c, ok := numbers[n]
		if !ok {
			t.Fatalf("capability %s: add its number to capMask", n)
		}
		m |= 1 << c
	}
	return m
}

// procStatus reads the capability sets (hex), NoNewPrivs and VmLck (kB) of /proc/<pid>[/task/<tid>]/status.
func procStatus(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		base := 10
		if strings.HasPrefix(k, "Cap") {
			base = 16
		} else if k != "NoNewPrivs" && k != "VmLck" {
			continue
		}
		n, err := strconv.ParseUint(v, base, 64)
		if err != nil {
			t.Fatalf("%s: %s %q: %v", path, k, v, err)
		}
		out[k] = n
	}
	return out
}

// The daemon under the unit's capability set keeps, once running, exactly the capabilities the unit
// documents as kept, in every thread (and in its bounding set), with no_new_privs, locked key memory
// and no dump or ptrace access for others; and the gateway still does everything a running gateway
// does with only those: a tunnel carries traffic both ways, a next hop is resolved after the drop, an
// SA is added and deleted through the API, and a reload adds an SA and a policy.
func TestUnitLeastPrivilege(t *testing.T) {
	testutil.RequireRoot(t, "running the daemon needs namespaces, XDP and AF_XDP")
	testutil.RequireTools(t, "nsenter", "setpriv", "ip", "ping")
	unit := unitSettings(t)
	caps := strings.Fields(strings.Join(unit["CapabilityBoundingSet"], " "))
	kept := keptCapabilities(t)
	want := capMask(t, kept)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	tb, err := testbed.New(ctx, testbed.Options{Tag: "priv"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	// Without CAP_IPC_LOCK, AF_XDP UMEM counts against RLIMIT_MEMLOCK per user, across every root
	// process (8 MiB by default; the unit sets infinity, the test cannot raise it without
	// CAP_SYS_RESOURCE): 1 MiB each leaves room for tests running beside this one.
	y1, y2, err := tb.GatewayConfigsWith(testbed.DefaultTunnels, testbed.Dataplane{UMEMFrames: 256})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gws := map[testbed.Node]*gateway{}
	cfgs := map[testbed.Node]string{}
	for node, y := range map[testbed.Node]string{testbed.GW1: y1, testbed.GW2: y2} {
		cfgs[node] = filepath.Join(dir, string(node)+".yaml")
		if err := os.WriteFile(cfgs[node], []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		pins := "/sys/fs/bpf/xdpsec/" + tb.Instance(node)
		t.Cleanup(func() { _ = os.RemoveAll(pins) })
		gws[node] = startGateway(ctx, t, tb, node, bin, cfgs[node], caps)
	}
	for node, g := range gws {
		if !g.waitFor("gateway running") {
			state := "still running"
			select {
			case <-g.done:
				state = g.cmd.ProcessState.String()
			default:
			}
			t.Fatalf("%s did not start with %v (%s):\n%s", node, caps, state, g.out.String())
		}
		if !strings.Contains(g.out.String(), `msg="capabilities dropped" instance=`+tb.Instance(node)+` kept=`+strings.Join(kept, ",")) {
			t.Errorf("%s: no log line about the drop:\n%s", node, g.out.String())
		}
	}

	// 1. What each thread holds.
	for node, g := range gws {
		pid := g.cmd.Process.Pid // nsenter and setpriv exec the daemon in this process
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		if err != nil || len(tasks) < 2 {
			t.Fatalf("%s: threads %v %v", node, tasks, err)
		}
		for _, task := range tasks {
			st := procStatus(t, task)
			for field, v := range map[string]uint64{"CapEff": want, "CapPrm": want, "CapBnd": want, "CapInh": 0, "CapAmb": 0, "NoNewPrivs": 1} {
				if st[field] != v {
					t.Errorf("%s thread %s: %s %#x, want %#x (%v)", node, filepath.Base(filepath.Dir(task)), field, st[field], v, kept)
				}
			}
		}
		// Key memory is locked (the UMEM is accounted elsewhere, per user).
		if st := procStatus(t, fmt.Sprintf("/proc/%d/status", pid)); st["VmLck"] == 0 {
			t.Errorf("%s: VmLck 0: the key memory is not locked", node)
		}
		checkNotDumpable(ctx, t, pid, kept)
	}

	// 2. A next hop resolved after the drop: gw1 has never heard from h1, so the first decrypted
	//    packet to it makes the daemon ask the kernel to resolve h1 (RTM_NEWNEIGH with NTF_USE).
	for _, h1 := range []string{testbed.H1Addr4.String(), testbed.H1Addr6.String()} {
		if out, err := tb.Run(ctx, testbed.GW1, "ip", "neigh", "show", h1); err != nil || strings.Contains(out, "lladdr") {
			t.Fatalf("gw1 already knows h1 (%s): %q %v", h1, out, err)
		}
		_, _ = tb.Run(ctx, testbed.H2, "ping", "-n", "-q", "-c", "1", "-W", "1", h1) // may be lost: it starts the resolution
		if !waitNeigh(ctx, t, tb, h1) {
			t.Errorf("gw1 never resolved h1 (%s) after the drop:\n%s", h1, gws[testbed.GW1].out.String())
		}
	}
	pings := func(when string) {
		t.Helper()
		for _, p := range []struct {
			from testbed.Node
			to   string
		}{{testbed.H2, testbed.H1Addr4.String()}, {testbed.H1, testbed.H2Addr4.String()},
			{testbed.H2, testbed.H1Addr6.String()}, {testbed.H1, testbed.H2Addr6.String()}} {
			// Every one of 5 echoes answered (testbed.Ping fails on any loss).
			if out, err := tb.Run(ctx, p.from, "ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "2", p.to); err != nil {
				t.Errorf("%s: %s → %s: %v\n%s", when, p.from, p.to, err, out)
			}
		}
	}
	pings("after the drop")
	// A packet too big for the tunnel with DF: the worker answers with ICMP from the AF_XDP path.
	if out, _ := tb.Run(ctx, testbed.H1, "ping", "-n", "-c", "1", "-M", "do", "-s", "1472", "-W", "2",
		testbed.H2Addr4.String()); !strings.Contains(out, "Frag needed and DF set") {
		t.Errorf("no ICMP fragmentation-needed from gw1 after the drop:\n%s", out)
	}

	// 3. The API: stats, check, an SA added and deleted; and a metrics scrape.
	g1 := gws[testbed.GW1]
	cli := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"--socket", g1.socket}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli("", "stats"); err != nil || !strings.Contains(out, "WorkerSealed") {
		t.Errorf("stats: %v\n%s", err, out)
	}
	if out, err := cli("", "check"); err != nil || !strings.HasPrefix(out, "ok: the card matches 4 SAs") {
		t.Errorf("check: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`metrics=http://(127\.0\.0\.1:[0-9]+)/metrics`).FindStringSubmatch(g1.out.String()); m == nil {
		t.Errorf("no metrics address in the log:\n%s", g1.out.String())
	} else if err := tb.InNS(testbed.GW1, func() error { return scrape(ctx, m[1]) }); err != nil {
		t.Errorf("scrape: %v", err)
	}
	add := strings.Fields("sa add src 198.18.0.1 dst 198.18.0.2 proto esp spi 0x7001 mode tunnel " +
		"aead rfc4106(gcm(aes)) - 128 name api-added --key-file -")
	if out, err := cli("0x"+strings.Repeat("42", 20)+"\n", add...); err != nil {
		t.Fatalf("sa add: %v\n%s", err, out)
	}
	if !waitOutput(func() (string, error) { return cli("", "sa", "get", "api-added") }, "gw1-wan offloaded") {
		out, _ := cli("", "sa", "get", "api-added")
		t.Errorf("the SA added through the API is not offloaded:\n%s", out)
	}
	if out, err := cli("", "sa", "del", "api-added"); err != nil {
		t.Errorf("sa del: %v\n%s", err, out)
	}
	if out, _ := cli("", "sa", "list"); strings.Contains(out, "api-added") {
		t.Errorf("the deleted SA is still listed:\n%s", out)
	}

	// 4. A reload that adds a policy and an SA.
	more := strings.Replace(y1, "sas:\n", "  - {name: extra-bypass, dir: in, src: 198.18.9.0/24, dst: 198.18.1.0/24, proto: udp, "+
		"dport: 4789, priority: 20, action: bypass}\nsas:\n", 1) +
		"  - name: extra-sa\n    spi: 0x00007002\n    src: 198.18.0.1\n    dst: 198.18.0.2\n    mode: tunnel\n" +
		"    aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x" + strings.Repeat("17", 20) + "\", icv_bits: 128}\n"
	if err := os.WriteFile(cfgs[testbed.GW1], []byte(more), 0o600); err != nil {
		t.Fatal(err)
	}
	g1.signal(t, unix.SIGHUP)
	if !g1.waitFor("reloaded") {
		t.Fatalf("no reload:\n%s", g1.out.String())
	}
	if !strings.Contains(g1.out.String(), "sas_added=1") {
		t.Errorf("the reload did not add the SA:\n%s", g1.out.String())
	}
	if out, _ := cli("", "sp", "list"); !strings.Contains(out, "extra-bypass") {
		t.Errorf("the reloaded policy is not listed:\n%s", out)
	}
	if !waitOutput(func() (string, error) { return cli("", "sa", "get", "extra-sa") }, "gw1-wan offloaded") {
		out, _ := cli("", "sa", "get", "extra-sa")
		t.Errorf("the reloaded SA is not offloaded:\n%s", out)
	}
	pings("after the reload")

	for node, g := range gws {
		if code := g.stop(t); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM:\n%s", node, code, g.out.String())
		}
		// Nothing failed quietly on the way (the lifetime poller, the neighbour cache, the engine).
		for _, line := range strings.Split(g.out.String(), "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				t.Errorf("%s: %s", node, line)
			}
		}
	}
}

// checkNotDumpable shows the daemon is not dumpable: a process of the same user holding the same
// capabilities (so the kernel's capability comparison lets it through) but not CAP_SYS_PTRACE can
// read a dumpable process's /proc/PID/environ, and not the daemon's.
func checkNotDumpable(ctx context.Context, t *testing.T, pid int, kept []string) {
	t.Helper()
	bounding := "-all"
	for _, c := range kept {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	read := func(p int) error {
		return exec.CommandContext(ctx, "setpriv", "--inh-caps=-all", "--bounding-set="+bounding, "--",
			"cat", fmt.Sprintf("/proc/%d/environ", p)).Run()
	}
	control := exec.CommandContext(ctx, "setpriv", "--inh-caps=-all", "--bounding-set="+bounding, "--", "sleep", "60")
	if err := control.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = control.Process.Kill(); _ = control.Wait() }()
	// Until setpriv has exec'd sleep, the control holds every capability, which the reader lacks.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", control.Process.Pid)); strings.TrimSpace(string(b)) == "sleep" {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the control process never became sleep")
		}
	}
	if err := read(control.Process.Pid); err != nil {
		t.Fatalf("the reader cannot read even a dumpable process's environ (the check proves nothing): %v", err)
	}
	if err := read(pid); err == nil {
		t.Errorf("a process without CAP_SYS_PTRACE read the daemon's /proc/%d/environ: it is dumpable", pid)
	}
}

// waitNeigh waits until gw1's kernel has a usable neighbour entry for addr.
func waitNeigh(ctx context.Context, t *testing.T, tb *testbed.Testbed, addr string) bool {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		out, err := tb.Run(ctx, testbed.GW1, "ip", "neigh", "show", addr)
		if err == nil && strings.Contains(out, "lladdr") && !strings.Contains(out, "FAILED") && !strings.Contains(out, "INCOMPLETE") {
			return true
		}
	}
	return false
}

// waitOutput polls f until its output contains what (10 s).
func waitOutput(f func() (string, error), what string) bool {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if out, err := f(); err == nil && strings.Contains(out, what) {
			return true
		}
	}
	return false
}
