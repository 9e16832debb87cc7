package testutil

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// recorder stands in for a test: it records a skip or a failure and stops there, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed string
}

type stop struct{}

func (r *recorder) Helper()          {}
func (r *recorder) Skip(args ...any) { r.skipped = fmt.Sprint(args...); panic(stop{}) }
func (r *recorder) Fatalf(format string, a ...any) {
	r.failed = fmt.Sprintf(format, a...)
	panic(stop{})
}

func (r *recorder) run(f func(tb testing.TB)) (self *recorder) {
	self = r
	defer func() {
		if v := recover(); v != nil && v != (stop{}) {
			panic(v)
		}
	}()
	f(r)
	return
}

func TestRequireRoot(t *testing.T) {
	for _, ci := range []string{"", "true", "false", "0", "1"} {
		t.Setenv("CI", ci)
		r := new(recorder).run(func(tb testing.TB) { RequireRoot(tb, "builds namespaces") })
		switch {
		case os.Geteuid() == 0:
			if r.skipped != "" || r.failed != "" {
				t.Errorf("CI=%q as root: skipped %q, failed %q; want neither", ci, r.skipped, r.failed)
			}
		case InCI():
			if r.skipped != "" || !strings.HasPrefix(r.failed, RootPrefix+"builds namespaces") {
				t.Errorf("CI=%q as a user: skipped %q, failed %q; want a failure", ci, r.skipped, r.failed)
			}
		default:
			if r.failed != "" || r.skipped != RootPrefix+"builds namespaces" {
				t.Errorf("CI=%q as a user: skipped %q, failed %q; want a skip", ci, r.skipped, r.failed)
			}
		}
	}
}

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "false": false, "0": false, "true": true, "1": true, " yes ": true} {
		t.Setenv("CI", v)
		if InCI() != want {
			t.Errorf("CI=%q: InCI %v, want %v", v, !want, want)
		}
	}
}

func TestRequireToolsAndFiles(t *testing.T) {
	r := new(recorder).run(func(tb testing.TB) {
		if p := RequireTools(tb, "sh"); len(p) != 1 || p[0] == "" {
			t.Errorf("RequireTools(sh) = %q", p)
		}
		RequireFiles(tb, "/")
	})
	if r.failed != "" || r.skipped != "" {
		t.Fatalf("present tool and file: failed %q, skipped %q", r.failed, r.skipped)
	}
	r = new(recorder).run(func(tb testing.TB) { RequireTools(tb, "sh", "xdpsec-no-such-tool") })
	if !strings.Contains(r.failed, "xdpsec-no-such-tool is not installed") || r.skipped != "" {
		t.Errorf("missing tool: failed %q, skipped %q; want a failure", r.failed, r.skipped)
	}
	r = new(recorder).run(func(tb testing.TB) { RequireFiles(tb, "/xdpsec-no-such-file") })
	if !strings.Contains(r.failed, "/xdpsec-no-such-file is missing") {
		t.Errorf("missing file: failed %q; want a failure", r.failed)
	}
}

func TestSkip(t *testing.T) {
	r := new(recorder).run(func(tb testing.TB) { Skip(tb, "regenerates testdata") })
	if r.skipped != OptionalPrefix+"regenerates testdata" {
		t.Errorf("Skip: %q", r.skipped)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	if !Eventually(time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("a condition that holds on the third check: held after %d checks", n)
	}
	start := time.Now()
	if Eventually(20*time.Millisecond, func() bool { return false }) {
		t.Error("a condition that never holds held")
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("gave up after %v, before the 20 ms deadline", el)
	}
	// Checked once more at the deadline: a condition that turns true only then is seen.
	deadline := time.Now().Add(15 * time.Millisecond)
	if !Eventually(15*time.Millisecond, func() bool { return !time.Now().Before(deadline) }) {
		t.Error("a condition that holds at the deadline was missed")
	}
	r := new(recorder).run(func(tb testing.TB) { WaitFor(tb, 10*time.Millisecond, "nothing", func() bool { return false }) })
	if !strings.Contains(r.failed, "waiting for nothing") {
		t.Errorf("WaitFor: failed %q", r.failed)
	}
}
