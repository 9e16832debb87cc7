// Command testsum turns `go test -json` into what `make test` shows and judges (hack/test.sh):
//
//	go test -json ./... | testsum stream -o build/test/main.json
//	testsum report build/test/main.json build/test/race.json
//
// stream prints what plain `go test` prints (a line per package, the whole output of every test
// that failed, build errors) and keeps the JSON. report lists every skipped test with its reason and
// every package's time, and fails the suite when a test failed, a package did not build, no test
// ran, or a skip is not allowed: a root-only test (internal/testutil.RequireRoot) may skip only
// when the suite runs as another user outside CI, a documented optional skip (testutil.Skip) always,
// any other skip never. A test that passed while every one of its subtests skipped (a fuzz target
// whose seeds all skipped, a table of root-only cases) counts as skipped, not passed.
//
// Its last line is the run's count, "tests: N passed, N failed, N skipped".
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

// event is one line of `go test -json` (cmd/test2json), with the build events of `go test -json`.
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Elapsed    float64
	Output     string
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "stream":
		out := ""
		if len(os.Args) == 4 && os.Args[2] == "-o" {
			out = os.Args[3]
		} else if len(os.Args) != 2 {
			usage()
		}
		if err := stream(os.Stdin, os.Stdout, out); err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
			os.Exit(2)
		}
	case "report":
		if len(os.Args) < 3 {
			usage()
		}
		var runs []*run
		for _, f := range os.Args[2:] {
			r, err := readRun(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, "testsum:", err)
				os.Exit(2)
			}
			runs = append(runs, r)
		}
		if !report(os.Stdout, runs, os.Geteuid() == 0, testutil.InCI()) {
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go test -json … | testsum stream [-o FILE.json]\n       testsum report FILE.json…")
	os.Exit(2)
}

// stream copies the JSON events from r to the file out (when not empty) and writes to w what plain
// `go test` would print.
func stream(r io.Reader, w io.Writer, out string) error {
	var raw io.Writer = io.Discard
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		bw := bufio.NewWriter(f)
		defer bw.Flush()
		raw = bw
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	p := newPrinter(bw)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		raw.Write(line)
		raw.Write([]byte{'\n'})
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// go test writes some errors (a bad flag, a missing package) as plain text.
			fmt.Fprintf(bw, "%s\n", line)
			bw.Flush()
			continue
		}
		p.event(e)
	}
	return sc.Err()
}

// printer holds each running test's output until the test ends: shown if it failed, dropped if not,
// as `go test` without -v does.
type printer struct {
	w   *bufio.Writer
	buf map[[2]string][]string // (package, test) → output lines
}

func newPrinter(w *bufio.Writer) *printer { return &printer{w: w, buf: map[[2]string][]string{}} }

func (p *printer) event(e event) {
	key := [2]string{e.Package, e.Test}
	switch {
	case e.Action == "build-output":
		p.w.WriteString(e.Output)
	case e.Action == "output" && e.Test == "":
		if e.Output != "PASS\n" {
			p.w.WriteString(e.Output)
		}
	case e.Action == "output":
		if !strings.HasPrefix(e.Output, "=== ") {
			p.buf[key] = append(p.buf[key], e.Output)
		}
	case e.Action == "fail" && e.Test != "":
		for _, l := range p.buf[key] {
			p.w.WriteString(l)
		}
		delete(p.buf, key)
	case (e.Action == "pass" || e.Action == "skip") && e.Test != "":
		delete(p.buf, key)
	case e.Action == "fail":
		// The package failed: whatever its tests still hold (a timeout's or a panic's victims) is
		// what explains it.
		for k, lines := range p.buf {
			if k[0] == e.Package {
				for _, l := range lines {
					p.w.WriteString(l)
				}
				delete(p.buf, k)
			}
		}
	}
	if e.Action != "output" || e.Test == "" {
		p.w.Flush()
	}
}

// result is one test's end.
type result struct {
	pkg, test string
	action    string // pass, fail, skip
	reason    string // a skip's reason
	children  int
	skipped   int // children that skipped
}

// run is one `go test -json` run read back from its file.
type run struct {
	name        string
	tests       []*result
	pkgTime     map[string]float64
	pkgFailed   []string // packages that failed (a test, a build, a timeout, a panic)
	buildFailed []string
	start, end  time.Time
}

func readRun(file string) (*run, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := parseRun(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	r.name = strings.TrimSuffix(filepath.Base(file), ".json")
	return r, nil
}

func parseRun(rd io.Reader) (*run, error) {
	r := &run{pkgTime: map[string]float64{}}
	out := map[[2]string][]string{}
	byName := map[[2]string]*result{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if !e.Time.IsZero() {
			if r.start.IsZero() || e.Time.Before(r.start) {
				r.start = e.Time
			}
			if e.Time.After(r.end) {
				r.end = e.Time
			}
		}
		key := [2]string{e.Package, e.Test}
		switch e.Action {
		case "build-fail":
			r.buildFailed = append(r.buildFailed, e.ImportPath)
		case "output":
			if e.Test != "" {
				out[key] = append(out[key], e.Output)
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				r.pkgTime[e.Package] = e.Elapsed
				if e.Action == "fail" {
					r.pkgFailed = append(r.pkgFailed, e.Package)
				}
				continue
			}
			res := &result{pkg: e.Package, test: e.Test, action: e.Action}
			if e.Action == "skip" {
				res.reason = skipReason(out[key])
			}
			delete(out, key)
			r.tests = append(r.tests, res)
			byName[key] = res
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Subtests end before their parent: count them into it.
	for _, t := range r.tests {
		i := strings.LastIndexByte(t.test, '/')
		if i < 0 {
			continue
		}
		if parent := byName[[2]string{t.pkg, t.test[:i]}]; parent != nil {
			parent.children++
			if t.action == "skip" {
				parent.skipped++
				if parent.reason == "" {
					parent.reason = t.reason
				}
			}
		}
	}
	return r, nil
}

// skipReason is the message of t.Skip in a skipped test's output: the last "file.go:NN: " line and
// the lines that continue it.
func skipReason(lines []string) string {
	var text []string
	for _, l := range lines {
		s := strings.TrimRight(l, "\n")
		switch {
		case strings.HasPrefix(s, "--- ") || strings.HasPrefix(s, "=== "):
			continue
		case logLine(s):
			text = []string{s[strings.Index(s, ".go:")+4:]}
			text[0] = strings.TrimSpace(text[0][strings.IndexByte(text[0], ':')+1:])
		case len(text) > 0:
			text = append(text, strings.TrimSpace(s))
		}
	}
	return strings.TrimSpace(strings.Join(text, " "))
}

// logLine reports whether s is the first line of a t.Log or t.Skip message: "    name.go:12: …".
func logLine(s string) bool {
	t := strings.TrimLeft(s, " ")
	if len(t) == len(s) {
		return false
	}
	i := strings.Index(t, ".go:")
	if i <= 0 || strings.ContainsAny(t[:i], " \t") {
		return false
	}
	rest := t[i+4:]
	j := strings.IndexByte(rest, ':')
	if j <= 0 {
		return false
	}
	for _, c := range rest[:j] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// judge says whether a skip with this reason is allowed in a run as root (or not) and under CI
// (or not), and why not when it is not.
func judge(reason string, root, ci bool) (bool, string) {
	switch {
	case strings.HasPrefix(reason, testutil.RootPrefix):
		if root {
			return false, "a root-only test skipped although the suite runs as root"
		}
		if ci {
			return false, "a root-only test skipped under CI: CI must run the suite as root"
		}
		return true, ""
	case strings.HasPrefix(reason, testutil.OptionalPrefix):
		return true, ""
	default:
		return false, "a skip not made through internal/testutil (RequireRoot, Skip): make the test run, or " +
			"fail it when the machine lacks what hack/deps.sh installs"
	}
}

// hollow reports whether a passing test did nothing but skip subtests.
func (t *result) hollow() bool {
	return t.action == "pass" && t.children > 0 && t.skipped == t.children
}

// report writes the skips, the packages' times and the count of runs to w and reports whether the
// suite passes.
func report(w io.Writer, runs []*run, root, ci bool) bool {
	ok := true
	var passed, failed, skipped int
	var bad []string
	for _, r := range runs {
		fmt.Fprintf(w, "\n== %s: skipped tests\n", r.name)
		// A hollow parent stands for its skipped children: list it, not each of them.
		hollowParents := map[[2]string]bool{}
		for _, t := range r.tests {
			if t.hollow() {
				hollowParents[[2]string{t.pkg, t.test}] = true
			}
		}
		n := 0
		for _, t := range r.tests {
			if i := strings.LastIndexByte(t.test, '/'); i >= 0 && t.action == "skip" && hollowParents[[2]string{t.pkg, t.test[:i]}] {
				continue
			}
			if t.action != "skip" && !t.hollow() {
				continue
			}
			n++
			what := t.test
			if t.hollow() {
				what += fmt.Sprintf(" (passed, but all %d subtests skipped)", t.children)
			}
			allowed, why := judge(t.reason, root, ci)
			mark := "  "
			if !allowed {
				mark = "!!"
				bad = append(bad, fmt.Sprintf("%s %s: %s (%s)", short(t.pkg), what, why, t.reason))
			}
			fmt.Fprintf(w, "%s %-28s %s: %s\n", mark, short(t.pkg), what, t.reason)
		}
		if n == 0 {
			fmt.Fprintln(w, "   none")
		}
		var rp, rf, rs int
		for _, t := range r.tests {
			switch {
			case t.hollow() || t.action == "skip":
				rs++
			case t.action == "pass":
				rp++
			case t.action == "fail":
				rf++
				bad = append(bad, fmt.Sprintf("%s %s: failed", short(t.pkg), t.test))
			}
		}
		fmt.Fprintf(w, "\n== %s: time per package (%s wall)\n", r.name, r.end.Sub(r.start).Round(time.Second))
		pkgs := make([]string, 0, len(r.pkgTime))
		for p := range r.pkgTime {
			pkgs = append(pkgs, p)
		}
		slices.SortFunc(pkgs, func(a, b string) int {
			if c := -cmpFloat(r.pkgTime[a], r.pkgTime[b]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, p := range pkgs {
			if r.pkgTime[p] > 0 {
				fmt.Fprintf(w, "%8.1fs  %s\n", r.pkgTime[p], short(p))
			}
		}
		for _, p := range r.buildFailed {
			bad = append(bad, fmt.Sprintf("%s: build failed", short(p)))
		}
		for _, p := range r.pkgFailed {
			if !slices.ContainsFunc(r.tests, func(t *result) bool { return t.pkg == p && t.action == "fail" }) {
				bad = append(bad, fmt.Sprintf("%s: package failed outside a test (timeout, panic, build)", short(p)))
			}
		}
		fmt.Fprintf(w, "%s: %d passed, %d failed, %d skipped\n", r.name, rp, rf, rs)
		passed, failed, skipped = passed+rp, failed+rf, skipped+rs
	}
	if passed+failed == 0 {
		bad = append(bad, "no test ran")
	}
	if len(bad) > 0 {
		ok = false
		fmt.Fprintf(w, "\n== the suite fails: %d problem(s)\n", len(bad))
		for _, b := range bad {
			fmt.Fprintln(w, "  "+b)
		}
	}
	fmt.Fprintf(w, "\ntests: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	return ok
}

func short(pkg string) string { return strings.TrimPrefix(pkg, "github.com/xdpsec/xdpsec/") }

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
