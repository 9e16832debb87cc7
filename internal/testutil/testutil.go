// Package testutil holds the few helpers every package's tests share so that the suite cannot pass
// by accident: one way to skip a root-only test (and to fail it instead where it must run), one way
// to require a tool the tests need, one way to skip for a documented reason, and waits on conditions
// with deadlines instead of fixed sleeps.
//
// The skip reasons carry a fixed prefix that hack/testsum reads to judge a run's skips: RootPrefix
// is allowed only when the suite runs as another user outside CI, OptionalPrefix always, and any
// other skip fails `make test`.
package testutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The prefixes of the skip reasons this package writes, for hack/testsum.
const (
	RootPrefix     = "needs root: "
	OptionalPrefix = "optional: "
)

// InCI reports whether the tests run under CI (the CI variable set, and not to "false" or "0").
// CI runs the suite as root, so there a root-only test must run, not skip.
func InCI() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// RequireRoot skips tb unless the process runs as root; why says what needs root. Under CI it fails
// instead: CI runs as root, and a root-only test that skips there checks nothing.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		tb.Fatalf("%s%s; CI must run the suite as root", RootPrefix, why)
	}
	tb.Skip(RootPrefix + why)
}

// RequireTools fails tb when one of the named programs is not on PATH: hack/deps.sh (make deps,
// which make test runs first) installs every tool a test needs, so a missing one is a broken
// machine, not a reason to check less. It returns the programs' paths in order.
func RequireTools(tb testing.TB, names ...string) []string {
	tb.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			tb.Fatalf("%s is not installed: hack/deps.sh (make deps) installs it", n)
		}
		paths[i] = p
	}
	return paths
}

// RequireFiles fails tb when one of the named files is missing; hack/deps.sh installs them (a
// shell's completion helpers, the system's python).
func RequireFiles(tb testing.TB, paths ...string) {
	tb.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("%s is missing: hack/deps.sh (make deps) installs it: %v", p, err)
		}
	}
}

// Skip skips tb for a documented reason that is not a hole in the environment: -short, a switch
// that regenerates test data, instrumentation that changes what is measured, an input a fuzz
// target does not take. hack/testsum lists these and lets them pass.
func Skip(tb testing.TB, reason string) {
	tb.Helper()
	tb.Skip(OptionalPrefix + reason)
}

// SkipShort skips tb in -short mode, saying what it would have run.
func SkipShort(tb testing.TB, what string) {
	tb.Helper()
	if testing.Short() {
		Skip(tb, "-short: "+what)
	}
}

// pollEvery is the interval between two checks of a condition: short against the deadlines the
// tests use, long enough not to steal a busy 2-core machine's time.
const pollEvery = 5 * time.Millisecond

// Eventually checks cond until it returns true or timeout has passed, and reports whether it held.
// cond is checked once more at the deadline, so a condition that holds then is not missed.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(pollEvery)
	}
}

// WaitFor is Eventually that fails tb, naming what it waited for, when the condition does not hold
// within timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Eventually(timeout, cond) {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// BuildXdpsec builds the xdpsec binary into the test's temporary directory as `make build` does:
// without cgo, because `xdpsec run` drops capabilities in every thread (syscall.AllThreadsSyscall),
// which Go allows only in a binary without it. The test must run inside the module.
func BuildXdpsec(ctx context.Context, tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "xdpsec")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/xdpsec/xdpsec/cmd/xdpsec")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build xdpsec: %v\n%s", err, out)
	}
	return bin
}
