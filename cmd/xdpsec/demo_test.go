package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
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
	if os.Geteuid() != 0 {
		t.Skip("skipping: the demo needs root (namespaces, XDP, AF_XDP)")
	}
	if testing.Short() {
		t.Skip("skipping the demo in -short mode")
	}
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
