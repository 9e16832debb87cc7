package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// readmeCommands are the commands of the README's "Running a gateway" block, continuation lines
// joined, in order.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	cur := ""
	for _, line := range strings.Split(readmeBlock(t, "## Running a gateway", "sh"), "\n") {
		if strings.TrimSpace(line) == "" && cur == "" {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur += s + " "
			continue
		}
		cmds = append(cmds, cur+line)
		cur = ""
	}
	return cmds
}

// readmeStep is what the test expects of one README command, found by its prefix.
type readmeStep struct {
	prefix string
	// want are strings the command's standard output must hold (what the README says it shows).
	want []string
}

// TestReadmeRunningAGateway runs the README's "Running a gateway" commands exactly as written
// (through sh, with the built binary first on PATH, in a directory holding the README's minimal
// configuration as gw1.yaml) against a live `xdpsec run` on gw1 of a testbed: each must exit 0 and
// show what the README says. Adapted to the test machine, and nothing else: the daemon runs inside
// gw1's network namespace (entered with nsenter, which keeps /sys/fs/bpf; the file's interfaces
// gw1-lan and gw1-wan are the testbed's), `--netns gw` names that namespace, the file's instance is
// the testbed's (pins under /sys/fs/bpf/xdpsec/<instance>/ must not meet another test's gw1), and
// $XDPSEC_RUN_DIR puts the sockets in a temporary directory (the clients find the one daemon
// there, as they would in /run/xdpsec). The two `xdpsec run` lines are alternatives: the first
// serves every client command, then stops (SIGTERM: exit 0); the second then starts and its
// Prometheus endpoint is read.
func TestReadmeRunningAGateway(t *testing.T) {
	testutil.RequireRoot(t, "xdpsec run loads XDP and opens AF_XDP sockets")
	testutil.RequireTools(t, "nsenter")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	tb, err := testbed.New(ctx, testbed.Options{Tag: "readme"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	instance := tb.Instance(testbed.GW1)
	t.Cleanup(func() { _ = os.RemoveAll("/sys/fs/bpf/xdpsec/" + instance) }) // after a kill -9 only
	// The README's file keeps the default state_dir (/var/lib/xdpsec/<instance>): the sequence state
	// of this test's SAs, ours to remove.
	t.Cleanup(func() { _ = os.RemoveAll(config.DefaultStateDir(instance)) })

	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	yaml := readmeConfig(t)
	if strings.Count(yaml, "instance: gw1\n") != 1 {
		t.Fatalf("the README's configuration no longer names instance gw1:\n%s", yaml)
	}
	yaml = strings.Replace(yaml, "instance: gw1\n", "instance: "+instance+"\n", 1)
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gw1.yaml", yaml)
	write("gw1-to-gw2.key", "0x202122232425262728292a2b2c2d2e2f30313233\n")
	env := append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), config.RunDirEnv+"="+runDir)
	// in.pcap: the shipped plaintext sample, encrypted with the README's gw2-to-gw1.
	sample, err := filepath.Abs(samplePcap)
	if err != nil {
		t.Fatal(err)
	}
	enc := exec.CommandContext(ctx, bin, "pcap", "encrypt", "--config", "gw1.yaml", "--sa", "gw2-to-gw1", sample, "in.pcap")
	enc.Dir, enc.Env = dir, env
	if out, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("prepare in.pcap: %v\n%s", err, out)
	}

	nsPath := "/run/netns/" + tb.NetNS(testbed.GW1)
	// sh runs one README command as written; inNS puts it in gw1's network namespace.
	sh := func(command string, inNS bool) *exec.Cmd {
		args := []string{"sh", "-c", command}
		if inNS {
			args = append([]string{"nsenter", "--net=" + nsPath, "--"}, args...)
		}
		c := exec.CommandContext(ctx, args[0], args[1:]...)
		c.Dir, c.Env, c.WaitDelay = dir, env, 5*time.Second
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return c
	}
	// startBG starts a command that runs until signalled, its output in a buffer.
	type bg struct {
		cmd       *exec.Cmd
		out, logs *logBuffer
	}
	startBG := func(command string, inNS bool) *bg {
		t.Helper()
		b := &bg{cmd: sh(command, inNS), out: &logBuffer{}, logs: &logBuffer{}}
		b.cmd.Stdout, b.cmd.Stderr = b.out, b.logs
		if err := b.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL); _ = b.cmd.Wait() })
		return b
	}
	// stop sends sig to the xdpsec that sh started (not to sh: it would die of SIGINT itself) and
	// wants the command to exit 0.
	stop := func(b *bg, sig syscall.Signal, what string) {
		t.Helper()
		child := shChild(t, b.cmd.Process.Pid)
		if err := syscall.Kill(child, sig); err != nil {
			t.Fatal(err)
		}
		if err := b.cmd.Wait(); err != nil {
			t.Fatalf("%s after %v: %v\nstdout: %s\nstderr: %s", what, sig, err, b.out, b.logs)
		}
	}
	daemonUp := func(b *bg) {
		t.Helper()
		if !testutil.Eventually(60*time.Second, func() bool {
			return len(runningDaemons(runDir)) == 1 && strings.Contains(b.logs.String(), "gateway running")
		}) {
			t.Fatalf("no daemon serving in %s and logging \"gateway running\":\n%s", runDir, b.logs)
		}
	}

	steps := []readmeStep{
		// SAs with counters, lifetime state and offload state per interface.
		{"xdpsec sa list -s", []string{"name gw1-to-gw2", "name gw2-to-gw1", "state mature", "lifetime current:",
			"offload gw1-lan offloaded, gw1-wan offloaded", "replay 0 integrity 0"}},
		{"xdpsec sp list", []string{"name lan-out", "name lan-in", "name ike", "action bypass"}},
		// Global drop and error reasons.
		{"xdpsec stats", []string{"InNoStates", "OutNoPols", "WorkerTxRingFull", "sas 2 (mature 2)  policies 3"}},
		{"xdpsec sa add src 198.19.0.1 dst 198.19.0.2 proto esp spi 0x1002", nil},
		// Only the differences: the file did not change (the SA the CLI added is not the file's).
		{"xdpsec reload", []string{"sas unchanged: 2"}},
		// The README's SAs, the added one and the file's policies.
		{"xdpsec check", []string{"ok: the card matches 3 SAs and 3 policies"}},
		{"xdpsec pcap decrypt", []string{"ok            10", "failed        0"}},
	}
	var daemonLines []string
	var monitorLine, downLine string
	var monitor *bg
	var daemon *bg
	done := map[string]bool{}
	for _, c := range readmeCommands(t) {
		switch {
		case strings.HasPrefix(c, "xdpsec run "):
			daemonLines = append(daemonLines, c)
			if daemon == nil {
				if strings.Contains(c, "--netns") {
					t.Fatalf("the README's first run line has --netns; the test starts that one in the namespace: %q", c)
				}
				daemon = startBG(c, true)
				daemonUp(daemon)
			}
			continue
		case strings.HasPrefix(c, "xdpsec monitor"):
			monitorLine = c
			monitor = startBG(c, false)
			waitMonitoring(t, ctx, bin, env, dir, monitor.out)
			continue
		case strings.HasPrefix(c, "xdpsec down "):
			// It removes what a stopped gateway left: run after the last stop, below.
			downLine = c
			continue
		}
		var step *readmeStep
		for i := range steps {
			if strings.HasPrefix(c, steps[i].prefix) {
				step = &steps[i]
			}
		}
		if step == nil {
			t.Fatalf("the README's command %q has no step in this test: say what it must show", c)
		}
		if daemon == nil {
			t.Fatalf("the README runs %q before xdpsec run", c)
		}
		cmd := sh(c, false)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", c, err, stdout.String(), stderr.String())
		}
		for _, w := range step.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%s: the output lacks %q:\n%s", step.prefix, w, stdout.String())
			}
		}
		done[step.prefix] = true
		t.Logf("%s: ok", step.prefix)
	}
	for _, s := range steps {
		if !done[s.prefix] {
			t.Errorf("the README no longer runs %q", s.prefix)
		}
	}
	if len(daemonLines) != 2 || monitor == nil {
		t.Fatalf("the README's block has %d xdpsec run lines (want 2) and monitor %q", len(daemonLines), monitorLine)
	}

	// The monitor streamed the README's sa add (SPI 0x1002) as JSON lines; SIGINT ends it with 0.
	stop(monitor, syscall.SIGINT, monitorLine)
	sawAdd := false
	for _, line := range strings.Split(strings.TrimSpace(monitor.out.String()), "\n") {
		var ev struct {
			Type string `json:"type"`
			SPI  uint32 `json:"spi"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("%s printed a line that is no JSON: %q", monitorLine, line)
		}
		sawAdd = sawAdd || (ev.SPI == 0x1002 && strings.HasPrefix(ev.Type, "sa-add"))
	}
	if !sawAdd {
		t.Errorf("%s did not show the added SA 0x1002:\n%s", monitorLine, monitor.out)
	}
	// pcap decrypt gave the sample back, byte for byte.
	if got, want := readCapture(t, filepath.Join(dir, "out.pcap")), readCapture(t, sample); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("out.pcap (%d packets) is not the sample (%d packets) it was encrypted from", len(got), len(want))
	}

	stop(daemon, syscall.SIGTERM, daemonLines[0])
	if len(runningDaemons(runDir)) != 0 {
		t.Fatal("a daemon still answers after SIGTERM")
	}

	// The second form: --netns (the testbed's gw1 for gw) and Prometheus on 127.0.0.1:9585 (in the
	// namespace the process runs in: gw1's, so no other test's port is in the way).
	line := daemonLines[1]
	if !strings.Contains(line, " --netns gw ") || !strings.Contains(line, "--metrics 127.0.0.1:9585") {
		t.Fatalf("the README's second run line changed: %q", line)
	}
	daemon = startBG(strings.Replace(line, " --netns gw ", " --netns "+tb.NetNS(testbed.GW1)+" ", 1), true)
	daemonUp(daemon)
	body := metricsInNS(t, tb, "127.0.0.1:9585")
	for _, w := range []string{`xdpsec_sa_packets_total{`, `sa="gw1-to-gw2"`} {
		if !strings.Contains(body, w) {
			t.Errorf("the metrics lack %s:\n%.2000s", w, body)
		}
	}
	stop(daemon, syscall.SIGTERM, line)

	// The gateway stopped in guard state: its card stays attached and pinned until xdpsec down (the
	// README's line, for the testbed's instance) removes it; a second down finds nothing.
	pinDir := "/sys/fs/bpf/xdpsec/" + instance
	if _, err := os.Stat(pinDir); err != nil {
		t.Fatalf("after SIGTERM the card is not pinned (guard state): %v", err)
	}
	if !strings.Contains(downLine, " --instance gw1") {
		t.Fatalf("the README's down line changed: %q", downLine)
	}
	down := strings.Replace(downLine, " --instance gw1", " --instance "+instance, 1)
	for i, want := range []string{"removed", "nothing to remove"} {
		var stdout, stderr bytes.Buffer
		cmd := sh(down, false)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s (%d): %v\nstdout: %s\nstderr: %s", down, i+1, err, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("%s (%d): the output lacks %q:\n%s", down, i+1, want, stdout.String())
		}
	}
	if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
		t.Errorf("after xdpsec down, %s: %v", pinDir, err)
	}
}

// shChild returns the pid of the one process sh (pid) started, or pid when sh replaced itself with
// the command (as bash does with a single command).
func shChild(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return pid
	}
	if len(f) != 1 {
		t.Fatalf("sh (pid %d) has children %q, want one", pid, f)
	}
	child, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// waitMonitoring waits until the monitor follows the stream: it adds and deletes a probe SA (not
// one of the README's) until the monitor prints an event.
func waitMonitoring(t *testing.T, ctx context.Context, bin string, env []string, dir string, out *logBuffer) {
	t.Helper()
	probe := func(args ...string) {
		c := exec.CommandContext(ctx, bin, args...)
		c.Dir, c.Env = dir, env
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("probe %v: %v\n%s", args, err, b)
		}
	}
	add := []string{"sa", "add", "src", "198.19.0.1", "dst", "198.19.0.9", "proto", "esp", "spi", "0x9999", "mode", "tunnel",
		"aead", "rfc4106(gcm(aes))", "0x404142434445464748494a4b4c4d4e4f50515253", "128", "name", "probe"}
	for i := 0; i < 50 && out.String() == ""; i++ {
		probe(add...)
		probe("sa", "del", "probe")
		testutil.Eventually(200*time.Millisecond, func() bool { return out.String() != "" })
	}
	if out.String() == "" {
		t.Fatal("the monitor printed no event of 50 probe SAs")
	}
}

// metricsInNS reads http://addr/metrics from inside gw1's network namespace.
func metricsInNS(t *testing.T, tb *testbed.Testbed, addr string) string {
	t.Helper()
	var conn net.Conn
	err := tb.InNS(testbed.GW1, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("connect to the metrics in gw1: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("GET /metrics HTTP/1.0\r\nHost: " + addr + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %s\n%s", resp.Status, b.String())
	}
	return b.String()
}
