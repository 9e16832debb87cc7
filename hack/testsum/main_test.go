package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// events builds a go test -json stream: each item is action, test, output (for "output").
func events(t *testing.T, pkg string, items ...[3]string) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	tm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, it := range items {
		tm = tm.Add(time.Second)
		e := event{Time: tm, Action: it[0], Package: pkg, Test: it[1], Output: it[2]}
		if it[0] != "output" && it[0] != "run" && it[1] == "" {
			e.Elapsed = 1.5
		}
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func skipped(test, file, reason string) [][3]string {
	return [][3]string{
		{"run", test, ""},
		{"output", test, "=== RUN   " + test + "\n"},
		{"output", test, "    " + file + ": " + reason + "\n"},
		{"output", test, "--- SKIP: " + test + " (0.00s)\n"},
		{"skip", test, ""},
	}
}

func suite(t *testing.T, reason string) string {
	var items [][3]string
	items = append(items, [3]string{"run", "TestOK", ""}, [3]string{"output", "TestOK", "    a_test.go:3: a log line\n"},
		[3]string{"pass", "TestOK", ""})
	items = append(items, skipped("TestSkip", "b_test.go:12", reason)...)
	items = append(items, [3]string{"output", "", "ok  \texample/p\t1.5s\n"}, [3]string{"pass", "", ""})
	return events(t, "example/p", items...)
}

func TestSkipReason(t *testing.T) {
	for _, c := range []struct {
		lines []string
		want  string
	}{
		{[]string{"=== RUN   TestX\n", "    x_test.go:50: needs root: builds namespaces\n", "--- SKIP: TestX (0.00s)\n"},
			"needs root: builds namespaces"},
		{[]string{"    x_test.go:9: a log line\n", "    x_test.go:10: optional: -short: the demo\n", "        and more\n",
			"--- SKIP: TestX (0.00s)\n"}, "optional: -short: the demo and more"},
		{[]string{"    x_test.go:10: host: 1.2.3.4:5\n"}, "host: 1.2.3.4:5"},
		{[]string{"--- SKIP: TestX (0.00s)\n"}, ""},
	} {
		if got := skipReason(c.lines); got != c.want {
			t.Errorf("skipReason(%q) = %q, want %q", c.lines, got, c.want)
		}
	}
}

// The policy: root-only skips only as a user outside CI, optional ones always, others never.
func TestJudge(t *testing.T) {
	for _, c := range []struct {
		reason   string
		root, ci bool
		ok       bool
	}{
		{"needs root: x", false, false, true},
		{"needs root: x", true, false, false},
		{"needs root: x", false, true, false},
		{"optional: -short", true, true, true},
		{"optional: -short", false, false, true},
		{"skipping: tcpdump is not installed", false, false, false},
		{"skipping: no bpffs", true, false, false},
		{"", false, false, false},
	} {
		if ok, why := judge(c.reason, c.root, c.ci); ok != c.ok || ok != (why == "") {
			t.Errorf("judge(%q, root %v, ci %v) = %v %q, want %v", c.reason, c.root, c.ci, ok, why, c.ok)
		}
	}
}

func TestReport(t *testing.T) {
	for _, c := range []struct {
		name     string
		reason   string
		root     bool
		pass     bool
		contains []string
	}{
		{"root skip as a user", "needs root: builds namespaces", false, true,
			[]string{"TestSkip: needs root: builds namespaces", "tests: 1 passed, 0 failed, 1 skipped", "1.5s  example/p"}},
		{"root skip as root", "needs root: builds namespaces", true, false,
			[]string{"!! example/p", "skipped although the suite runs as root", "tests: 1 passed, 0 failed, 1 skipped"}},
		{"unaudited skip", "skipping: tcpdump is not installed", false, false,
			[]string{"a skip not made through internal/testutil", "the suite fails: 1 problem"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := parseRun(strings.NewReader(suite(t, c.reason)))
			if err != nil {
				t.Fatal(err)
			}
			r.name = "main"
			var out bytes.Buffer
			if ok := report(&out, []*run{r}, c.root, false); ok != c.pass {
				t.Errorf("report passes %v, want %v:\n%s", ok, c.pass, out.String())
			}
			for _, s := range c.contains {
				if !strings.Contains(out.String(), s) {
					t.Errorf("report lacks %q:\n%s", s, out.String())
				}
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "tests: ") {
				t.Errorf("last line %q, want the count", last)
			}
		})
	}
}

// A test that passes while all its subtests skip (a fuzz target whose seeds need root) is a skip.
func TestHollowPass(t *testing.T) {
	var items [][3]string
	items = append(items, [3]string{"run", "FuzzCard", ""})
	items = append(items, skipped("FuzzCard/seed#0", "f_test.go:60", "needs root: loads the card")...)
	items = append(items, skipped("FuzzCard/seed#1", "f_test.go:60", "needs root: loads the card")...)
	items = append(items, [3]string{"pass", "FuzzCard", ""}, [3]string{"pass", "", ""})
	r, err := parseRun(strings.NewReader(events(t, "example/p", items...)))
	if err != nil {
		t.Fatal(err)
	}
	r.name = "main"
	var out bytes.Buffer
	if report(&out, []*run{r}, true, false) {
		t.Errorf("a hollow pass as root passed the suite:\n%s", out.String())
	}
	for _, s := range []string{"FuzzCard (passed, but all 2 subtests skipped): needs root: loads the card",
		"tests: 0 passed, 0 failed, 3 skipped", "no test ran"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
	if strings.Contains(out.String(), "FuzzCard/seed#0") {
		t.Errorf("the hollow parent's subtests are listed besides it:\n%s", out.String())
	}
}

func TestFailuresAndBuild(t *testing.T) {
	in := events(t, "example/p",
		[3]string{"run", "TestBad", ""},
		[3]string{"output", "TestBad", "=== RUN   TestBad\n"},
		[3]string{"output", "TestBad", "    bad_test.go:7: want 5 replies, got 4\n"},
		[3]string{"output", "TestBad", "--- FAIL: TestBad (0.00s)\n"},
		[3]string{"fail", "TestBad", ""},
		[3]string{"run", "TestGood", ""},
		[3]string{"output", "TestGood", "    good_test.go:7: noise\n"},
		[3]string{"pass", "TestGood", ""},
		[3]string{"output", "", "PASS\n"},
		[3]string{"output", "", "FAIL\texample/p\t1.5s\n"},
		[3]string{"fail", "", ""},
	)
	in += `{"ImportPath":"example/q","Action":"build-output","Output":"q.go:3:1: syntax error\n"}` + "\n"
	in += `{"ImportPath":"example/q","Action":"build-fail"}` + "\n"
	var shown bytes.Buffer
	if err := stream(strings.NewReader(in), &shown, ""); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"want 5 replies, got 4", "--- FAIL: TestBad", "FAIL\texample/p", "syntax error"} {
		if !strings.Contains(shown.String(), s) {
			t.Errorf("stream output lacks %q:\n%s", s, shown.String())
		}
	}
	for _, s := range []string{"noise", "=== RUN", "PASS\n"} {
		if strings.Contains(shown.String(), s) {
			t.Errorf("stream output shows %q, which go test without -v hides:\n%s", s, shown.String())
		}
	}
	r, err := parseRun(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	r.name = "main"
	var out bytes.Buffer
	if report(&out, []*run{r}, false, false) {
		t.Errorf("a failed test and a failed build passed:\n%s", out.String())
	}
	for _, s := range []string{"p TestBad: failed", "q: build failed", "tests: 1 passed, 1 failed, 0 skipped"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
}
