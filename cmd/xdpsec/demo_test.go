package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--duration", "10ms"},
		{"demo", "--streams", "0"},
		{"demo", "extra"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, nil, &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errOut.String())
		}
	}
}

// TestDemo runs the whole demo for a second per tunnel: both tunnels carry traffic, the
// counters are printed, and the testbed is gone afterwards.
func TestDemo(t *testing.T) {
	testutil.RequireRoot(t, "the demo builds namespaces and loads XDP and AF_XDP")
	testutil.SkipShort(t, "the demo")
	testutil.RequireTools(t, "ip", "ping", "iperf3", "ethtool", "bpftool")
	var out, errOut bytes.Buffer
	code := run([]string{"demo", "--duration", "1s", "--log-level", "warn"}, nil, &out, &errOut)
	text := out.String()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, text, errOut.String())
	}
	for _, want := range []string{"per-SA counters", "iperf3:", "bpftool map dump pinned", "v4-gw1-to-gw2", "v6-gw1-to-gw2", "tearing down"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "FAILED") || strings.Contains(text, "iperf3 failed") {
		t.Errorf("a step failed:\n%s", text)
	}
	m := regexp.MustCompile(`namespaces (xs-demo-[0-9a-f]+)-`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the output does not name the namespaces:\n%s", text)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), m[1]) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	if ents, _ := os.ReadDir("/sys/fs/bpf/xdpsec"); len(ents) > 0 {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), m[1]) {
				t.Errorf("pins %s left behind", e.Name())
			}
		}
	}
}

// TestDemoInterrupted runs the demo binary and sends it SIGINT, once in the middle of the
// traffic and once while --hold keeps the gateways up (after reading a table with the bpftool
// command the demo printed): each time it must tear everything down — no namespace, no pin, and
// no process (iperf3, ping) left in the testbed's namespaces — and exit 0.
func TestDemoInterrupted(t *testing.T) {
	testutil.RequireRoot(t, "the demo builds namespaces and loads XDP and AF_XDP")
	testutil.SkipShort(t, "the demo")
	testutil.RequireTools(t, "ip", "ping", "iperf3", "ethtool", "bpftool")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	for _, c := range []struct {
		name  string
		args  []string
		until string // interrupt once the output has this
	}{
		{"traffic", []string{"--duration", "20s"}, " pkts"},
		{"hold", []string{"--duration", "1s", "--hold"}, "holding the gateways up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bin, append([]string{"demo", "--log-level", "warn"}, c.args...)...)
			out := &logBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			var prefix string
			nsInodes := map[uint64]string{}
			for end := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				text := out.String()
				if m := regexp.MustCompile(`namespaces (xs-demo-[0-9a-f]+)-`).FindStringSubmatch(text); m != nil && prefix == "" {
					prefix = m[1]
				}
				if strings.Contains(text, c.until) {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("no %q in the demo's output:\n%s", c.until, text)
				}
			}
			if prefix == "" {
				t.Fatalf("the output does not name the namespaces:\n%s", out.String())
			}
			for _, n := range []string{"h1", "gw1", "gw2", "h2"} {
				var st syscall.Stat_t
				if err := syscall.Stat("/run/netns/"+prefix+"-"+n, &st); err != nil {
					t.Fatalf("namespace %s-%s while the demo runs: %v", prefix, n, err)
				}
				nsInodes[st.Ino] = prefix + "-" + n
			}
			if c.name == "hold" {
				m := regexp.MustCompile(`bpftool map dump pinned (\S+/sa_table)`).FindStringSubmatch(out.String())
				if m == nil {
					t.Fatalf("no bpftool command for the SA table in the output:\n%s", out.String())
				}
				dump, err := exec.CommandContext(ctx, "bpftool", "map", "dump", "pinned", m[1]).CombinedOutput()
				if err != nil {
					t.Errorf("the printed bpftool command fails: %v\n%s", err, dump)
				}
			}
			_ = cmd.Process.Signal(os.Interrupt)
			if err := cmd.Wait(); err != nil {
				t.Errorf("interrupted demo exited with %v:\n%s", err, out.String())
			}
			text := out.String()
			for _, want := range []string{"per-SA counters", "tearing down"} {
				if !strings.Contains(text, want) {
					t.Errorf("no %q in the output:\n%s", want, text)
				}
			}
			for _, n := range []string{"h1", "gw1", "gw2", "h2"} {
				if _, err := os.Stat("/run/netns/" + prefix + "-" + n); err == nil {
					t.Errorf("namespace %s-%s left behind", prefix, n)
				}
				if _, err := os.Stat("/sys/fs/bpf/xdpsec/" + prefix + "-" + n); err == nil {
					t.Errorf("pins of %s-%s left behind", prefix, n)
				}
			}
			// A process still inside one of the namespaces would keep it (and its links) alive
			// after `ip netns del`.
			procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
			for _, p := range procs {
				var st syscall.Stat_t
				if syscall.Stat(p, &st) == nil && nsInodes[st.Ino] != "" {
					cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(p)), "cmdline"))
					t.Errorf("process %s (%s) still in namespace %s", filepath.Base(filepath.Dir(filepath.Dir(p))),
						strings.ReplaceAll(string(cmdline), "\x00", " "), nsInodes[st.Ino])
				}
			}
		})
	}
}

// TestDemoCleanup: what a killed demo leaves — a namespace and a pin directory under its prefix —
// is removed. The test sweeps a prefix of its own, not every demo's.
func TestDemoCleanup(t *testing.T) {
	testutil.RequireRoot(t, "--cleanup removes namespaces and pins")
	prefix := fmt.Sprintf("%s%x", demoPrefix, time.Now().UnixNano()&0xffffff)
	ns, pins := prefix+"-gw1", "/sys/fs/bpf/xdpsec/"+prefix+"-gw1"
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if err := os.MkdirAll(pins, 0o700); err != nil {
		t.Fatalf("no bpffs (hack/test.sh mounts it): %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(pins) })
	var out bytes.Buffer
	if err := sweepDemo(&out, prefix); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"removed namespace " + ns, "removed pins " + pins} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, p := range []string{"/run/netns/" + ns, pins} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s survived --cleanup", p)
		}
	}
}
