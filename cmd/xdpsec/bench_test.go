package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/bench"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--phases", "nonsense"},
		{"bench", "--queues", "-1"},
		{"bench", "--storm-packets", "-1"},
		{"bench", "extra"},
		{"bench", "--dev", "h1=eth0"}, // interfaces without the namespaces they are in
		{"bench", "--netns", "h1=a,gw1=b,gw2=c"},
		{"bench", "--netns", "h1=a,gw1=b,gw2=c,h2=a"},
		{"bench", "--netns", "h1=a,gw1=b,gw2=c,h2=d", "--dev", "gw3-lan=x"},
		{"bench", "--netns", "h1,gw1"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, nil, &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errOut.String())
		}
	}
}

// TestBenchQuick runs `xdpsec bench --quick` (its figures are not asserted: the machine is
// shared) and checks its report: the JSON schema, every measurement of every phase present and
// successful, and every system's own counters accounting for what reached h2 (Report.Check),
// every bad packet of the storm counted by gw2 under its reason and none at h2, the Markdown
// summary and the plots written, and the testbed gone afterwards.
func TestBenchQuick(t *testing.T) {
	testutil.RequireRoot(t, "the bench builds namespaces and loads XDP and AF_XDP")
	testutil.SkipShort(t, "the bench")
	testutil.RequireTools(t, "ip", "iperf3", "ethtool")
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--quick", "--out", dir, "--log-level", "warn"}, nil, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	rep, err := bench.ReadReport(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Check(); err != nil {
		t.Errorf("report: %v", err)
	}
	var names []string
	for _, s := range rep.Systems {
		names = append(names, s.Name)
	}
	for _, want := range []string{"kernel", "xsfwd", "xdpsec/aes-gcm-128", "xdpsec/chacha20-poly1305"} {
		if !slices.Contains(names, want) {
			t.Errorf("system %s missing (have %v)", want, names)
		}
	}
	for _, ph := range bench.AllPhases {
		if !slices.ContainsFunc(rep.Results, func(r bench.Result) bool { return r.Phase == ph }) {
			t.Errorf("phase %s has no result", ph)
		}
	}
	if len(rep.Goals) == 0 {
		t.Error("no goals evaluated")
	}
	checkStorm(t, rep)
	for _, f := range []string{"bench.md", "bench-frames.svg", "bench-latency-cdf.svg", "bench-sas.svg", "bench-flows.svg", "bench-workers.svg"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if rep.Host.Testbed == "" {
		t.Fatal("the report does not name its testbed")
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), rep.Host.Testbed) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

// checkStorm checks the quick run's storm: every kind sent, counted exactly under each of its
// reasons at gw2, nothing else counted, nothing at h2 (Report.Check says the same; this names it).
func checkStorm(t *testing.T, rep *bench.Report) {
	t.Helper()
	var storms []bench.Result
	for _, r := range rep.Results {
		if r.Phase == bench.PhaseStorm {
			storms = append(storms, r)
		}
	}
	if len(storms) != 1 || storms[0].Storm == nil {
		t.Errorf("%d storm results, want 1 with its accounting", len(storms))
		return
	}
	s := storms[0].Storm
	var kinds []string
	for _, k := range s.Kinds {
		kinds = append(kinds, k.Kind)
		if k.Sent == 0 || len(k.Reasons) == 0 || len(k.Counted) != len(k.Reasons) {
			t.Errorf("storm kind %s: sent %d, reasons %v, counted %v", k.Kind, k.Sent, k.Reasons, k.Counted)
			continue
		}
		for i, n := range k.Counted {
			if n != k.Sent {
				t.Errorf("storm kind %s: sent %d, gw2 counted %d under %s", k.Kind, k.Sent, n, k.Reasons[i])
			}
		}
	}
	if !slices.Equal(kinds, bench.StormKinds) {
		t.Errorf("storm kinds %v, want %v", kinds, bench.StormKinds)
	}
	if s.ReachedH2 != 0 || s.PrimerDelivered != 1 || len(s.Unexpected) != 0 {
		t.Errorf("storm: %d packets reached h2 (primer %d, want 1), unexplained drops %v", s.ReachedH2, s.PrimerDelivered, s.Unexpected)
	}
}
