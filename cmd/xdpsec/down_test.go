package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

func TestDownNeedsInstance(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"down"}, nil, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d (usage): %s", code, exitUsage, errOut.String())
	}
	if !strings.Contains(errOut.String(), "--instance") {
		t.Errorf("the error does not say how to name the instance: %s", errOut.String())
	}
	// A name that is not an instance's never reaches the file system.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"down", "--instance", "../x"}, nil, &out, &errOut); code != exitFailure ||
		!strings.Contains(errOut.String(), `instance name "../x"`) {
		t.Errorf("down --instance ../x: exit %d: %s", code, errOut.String())
	}
}

// TestDownReadsOnlyTheInstance: --config gives down the instance and nothing else; a file whose
// keys and interfaces would not pass xdpsec run's checks (world-readable, bad key) is fine.
func TestDownReadsOnlyTheInstance(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(cfg, []byte("instance: xs-down-none\nsas:\n  - name: x\n    aead: {alg: aes-gcm, key: \"0102\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &App{ConfigPath: cfg}
	got, err := a.downInstance()
	if err != nil || got != "xs-down-none" {
		t.Fatalf("instance %q, %v; want xs-down-none", got, err)
	}
}

// TestRunGuardAdoptDown runs the binary (`xdpsec run --netns` for gw1 of a testbed, on_exit: guard)
// through its lifecycle: while it runs `down` refuses; SIGTERM makes it exit 0 within 15 s leaving
// both programs attached and the pins in place; the next run adopts them (the same two link ids:
// no detach in between); after it stops, `down` detaches both sides and removes every pin, and a
// second `down` says there is nothing to remove.
func TestRunGuardAdoptDown(t *testing.T) {
	testutil.RequireRoot(t, "xdpsec run loads XDP and opens AF_XDP sockets")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	tb, err := testbed.New(ctx, testbed.Options{Tag: "down"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	y1, _, err := tb.GatewayConfigs(testbed.DefaultTunnels)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(y1, "on_exit: detach\n") {
		t.Fatalf("the testbed's configuration does not set on_exit: detach:\n%s", y1)
	}
	cfg := filepath.Join(t.TempDir(), "gw1.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(y1, "on_exit: detach\n", "on_exit: guard\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	instance := tb.Instance(testbed.GW1)
	pins := "/sys/fs/bpf/xdpsec/" + instance
	t.Cleanup(func() {
		// Whatever happened: leave no card behind.
		_ = exec.Command(bin, "down", "--instance", instance).Run()
	})
	down := func() (string, error) {
		out, err := exec.CommandContext(ctx, bin, "down", "--instance", instance).CombinedOutput()
		return string(out), err
	}
	start := func() (*exec.Cmd, *logBuffer) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, "run", "--config", cfg, "--netns", tb.NetNS(testbed.GW1), "--no-api")
		logs := &logBuffer{}
		cmd.Stderr, cmd.Stdout = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		if !testutil.Eventually(60*time.Second, func() bool { return strings.Contains(logs.String(), "gateway running") }) {
			t.Fatalf("no \"gateway running\" in the log:\n%s", logs.String())
		}
		return cmd, logs
	}
	stop := func(cmd *exec.Cmd, logs *logBuffer) {
		t.Helper()
		t0 := time.Now()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("xdpsec run exited with %v:\n%s", err, logs.String())
		}
		if d := time.Since(t0); d > 15*time.Second {
			t.Errorf("xdpsec run took %v to stop, want at most 15 s", d)
		}
		if !strings.Contains(logs.String(), "card left attached in guard state") {
			t.Errorf("no guard line in the shutdown log:\n%s", logs.String())
		}
	}
	linkIDs := func() [2]link.ID {
		t.Helper()
		var ids [2]link.ID
		for i, name := range []string{"link_protected", "link_wire"} {
			l, err := link.LoadPinnedLink(filepath.Join(pins, name), nil)
			if err != nil {
				t.Fatalf("open pinned link: %v", err)
			}
			info, err := l.Info()
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = info.ID
		}
		return ids
	}
	guarded := func() bool {
		t.Helper()
		m, err := ebpf.LoadPinnedMap(filepath.Join(pins, bpf.CardMapCardConfig), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var c bpf.CardXdpsecConfig
		if err := m.Lookup(uint32(0), &c); err != nil {
			t.Fatal(err)
		}
		return c.Guard != 0
	}
	attached := func() int {
		t.Helper()
		n := 0
		for _, dev := range []string{testbed.GW1LAN, testbed.GW1WAN} {
			out, err := tb.Run(ctx, testbed.GW1, "ip", "-d", "link", "show", dev)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "prog/xdp") {
				n++
			}
		}
		return n
	}

	cmd, logs := start()
	if strings.Contains(logs.String(), "adopted=true") {
		t.Errorf("the first run says it adopted a card:\n%s", logs.String())
	}
	if out, err := down(); err == nil || !strings.Contains(out, "a gateway of it is running") {
		t.Errorf("down while the gateway runs: %v, %s", err, out)
	}
	ids := linkIDs()
	stop(cmd, logs)
	if n := attached(); n != 2 {
		t.Fatalf("%d of 2 interfaces have the card after a guarded stop", n)
	}
	if got := linkIDs(); got != ids {
		t.Errorf("links %v after the stop, %v before", got, ids)
	}
	if !guarded() {
		t.Error("the card is not in guard state after the stop")
	}

	cmd, logs = start()
	if guarded() {
		t.Error("the adopting run left the guard on")
	}
	if !strings.Contains(logs.String(), "adopted=true") {
		t.Errorf("the second run did not adopt the card:\n%s", logs.String())
	}
	if got := linkIDs(); got != ids {
		t.Errorf("the second run has links %v, the first had %v: it detached in between", got, ids)
	}
	stop(cmd, logs)

	out, err := down()
	if err != nil || !strings.Contains(out, "detached the protected side") || !strings.Contains(out, "detached the wire side") ||
		!strings.Contains(out, "removed") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if n := attached(); n != 0 {
		t.Errorf("%d interfaces keep an XDP program after down", n)
	}
	if _, err := os.Lstat(pins); err == nil {
		t.Errorf("down left %s", pins)
	}
	out, err = down()
	if err != nil || !strings.Contains(out, "nothing to remove") {
		t.Errorf("second down: %v\n%s", err, out)
	}
}
