package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

func TestRunNeedsConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"run"}, nil, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d (usage): %s", code, exitUsage, errOut.String())
	}
	if !strings.Contains(errOut.String(), "--config") {
		t.Errorf("the error does not say how to give the configuration: %s", errOut.String())
	}
}

func TestRunRefusesUnknownInterface(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	err := os.WriteFile(cfg, []byte(`instance: xs-runtest
interfaces: {protected: xs-nonexist0, wire: xs-nonexist1}
policies: []
sas: []
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--config", cfg, "--no-api"}, nil, &out, &errOut); code != exitFailure {
		t.Fatalf("exit %d, want %d: %s", code, exitFailure, errOut.String())
	}
	if !strings.Contains(errOut.String(), "xs-nonexist0") {
		t.Errorf("the error does not name the missing interface: %s", errOut.String())
	}
	if _, err := os.Stat("/sys/fs/bpf/xdpsec/xs-runtest"); err == nil {
		t.Error("a failed start left pins behind")
	}
}

func TestRunRefusesConfigWithoutInterfaces(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(cfg, []byte("instance: xs-runtest2\npolicies: []\nsas: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--config", cfg}, nil, &out, &errOut); code == exitOK {
		t.Fatal("run started without interfaces")
	}
	if !strings.Contains(errOut.String(), "interfaces.protected") {
		t.Errorf("the error does not name the missing field: %s", errOut.String())
	}
}

// TestRunBinary builds the binary, runs `xdpsec run --netns` for gw1 of a testbed, waits for it
// to report the gateway running, reloads it with SIGHUP after dropping the IPv6 tunnel from the
// file, stops it with SIGTERM, and checks that it exits 0 leaving no pin and no XDP program on
// the interfaces.
func TestRunBinary(t *testing.T) {
	testutil.RequireRoot(t, "xdpsec run loads XDP and opens AF_XDP sockets")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	tb, err := testbed.New(ctx, testbed.Options{Tag: "run"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	y1, _, err := tb.GatewayConfigs(testbed.DefaultTunnels)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gw1.yaml")
	if err := os.WriteFile(cfg, []byte(y1), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "run", "--config", cfg, "--netns", tb.NetNS(testbed.GW1), "--no-api",
		"--metrics", "127.0.0.1:0")
	logs := &logBuffer{}
	cmd.Stderr, cmd.Stdout = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitLog := func(what string) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(logs.String(), what) {
				return
			}
		}
		t.Fatalf("no %q in the log:\n%s", what, logs.String())
	}
	waitLog("gateway running")
	// --netns entered the namespace during the start; running needs only CAP_NET_ADMIN (the reload
	// and the stop below run with it alone).
	for _, want := range []string{"protected_xdp=native", "wire_xdp=native", "af_xdp=copy", `msg="capabilities dropped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the start log does not say %q:\n%s", want, logs.String())
		}
	}
	// --metrics overrides the configuration (which has none): the start log names the address.
	m := regexp.MustCompile(`metrics=(http://127\.0\.0\.1:[0-9]+/metrics)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Errorf("the start log names no metrics address:\n%s", logs.String())
	} else if body, err := httpGet(ctx, m[1]); err != nil {
		t.Errorf("read metrics: %v", err)
	} else if !strings.Contains(body, `xdpsec_sa_packets_total{`) {
		t.Errorf("metrics at %s lack the per-SA counters:\n%.2000s", m[1], body)
	}
	pins := "/sys/fs/bpf/xdpsec/" + tb.Instance(testbed.GW1)
	if _, err := os.Stat(pins); err != nil {
		t.Errorf("no pins while running: %v", err)
	}

	// Drop the IPv6 tunnel: its two policies and two SAs.
	v4only, _, err := tb.GatewayConfigs(testbed.DefaultTunnels[:1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(v4only), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitLog("reloaded")

	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("xdpsec run exited with %v:\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "card detached and unpinned") {
		t.Errorf("no shutdown line in the log:\n%s", logs.String())
	}
	if _, err := os.Stat(pins); err == nil {
		t.Errorf("pins left behind in %s", pins)
	}
	for _, dev := range []string{testbed.GW1LAN, testbed.GW1WAN} {
		out, err := tb.Run(ctx, testbed.GW1, "ip", "-d", "link", "show", dev)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "xdp") {
			t.Errorf("%s still has an XDP program after shutdown:\n%s", dev, out)
		}
	}
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestRunRejectsBadMetricsAddress(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--metrics", "9585"}, "want host:port"},
		// Beyond loopback only with --metrics-public: the metrics name every SA and policy.
		{[]string{"--metrics", "0.0.0.0:9585"}, "not a loopback address"},
		{[]string{"--metrics", "198.18.0.1:9585"}, "--metrics-public"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"run", "--config", "/nonexistent.yaml"}, c.args...)
		if code := run(args, nil, &out, &errOut); code != exitUsage {
			t.Fatalf("%v: exit %d, want %d (usage): %s", c.args, code, exitUsage, errOut.String())
		}
		if !strings.Contains(errOut.String(), "--metrics") || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: the error does not say %q: %s", c.args, c.want, errOut.String())
		}
	}
	// With --metrics-public the address passes the check (and the run fails later, on the file).
	var out, errOut bytes.Buffer
	code := run([]string{"run", "--config", "/nonexistent.yaml", "--metrics", "0.0.0.0:9585", "--metrics-public"}, nil, &out, &errOut)
	if code != exitFailure || !strings.Contains(errOut.String(), "nonexistent.yaml") {
		t.Errorf("--metrics-public: exit %d: %s", code, errOut.String())
	}
}

// logBuffer collects a child's output while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
