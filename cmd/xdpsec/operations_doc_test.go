package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/loader"
)

// TestOperationsDocExplainsEveryCounter checks docs/operations.md's troubleshooting tables against the
// code's name lists: every reason the card counts (the loader's names), every worker counter `xdpsec
// stats` prints (the daemon's), every per-SA worker error (in slot order) and every offload nack
// reason has a row that says what it means, and no row names something the code does not have.
func TestOperationsDocExplainsEveryCounter(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var cardReasons, workerErrors []string
	for i := range loader.NumReasons {
		cardReasons = append(cardReasons, loader.ReasonName(loader.Reason(i)))
	}
	for i := range loader.NumWorkerErrors {
		if n := loader.WorkerErrorName(uint8(i)); n != "" {
			workerErrors = append(workerErrors, n)
		}
	}
	for _, s := range []struct {
		heading string
		code    []string
		ordered bool // the doc gives the slots in order
	}{
		{"### The card's reasons", cardReasons, false},
		{"### The workers' counters", daemonWorkerCounters(t), false},
		{"### The workers' errors per SA", workerErrors, true},
		{"### Offload refusals (nack reasons)", offloadReasons(t), false},
	} {
		rows := docTableNames(t, string(doc), s.heading)
		if len(s.code) == 0 {
			t.Fatalf("%s: the code's list is empty (the test lost its source)", s.heading)
		}
		for _, n := range s.code {
			if !slices.Contains(rows, n) {
				t.Errorf("%s: the code has %q, the doc does not explain it", s.heading, n)
			}
		}
		seen := map[string]bool{}
		for _, n := range rows {
			if !slices.Contains(s.code, n) {
				t.Errorf("%s: the doc explains %q, which the code does not have", s.heading, n)
			}
			if seen[n] {
				t.Errorf("%s: %q has two rows", s.heading, n)
			}
			seen[n] = true
		}
		if s.ordered && !slices.Equal(rows, s.code) {
			t.Errorf("%s: the rows are not in slot order:\n doc  %q\n code %q", s.heading, rows, s.code)
		}
	}
}

// docTableNames returns the first cells (`name`) of the table rows under heading, up to the next
// heading, and fails on a row whose cells, but the last ("what to check"), are not all filled.
func docTableNames(t *testing.T, doc, heading string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/operations.md has no %q", heading)
	}
	if i := strings.Index(rest, "\n#"); i >= 0 {
		rest = rest[:i]
	}
	var names []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		for _, c := range cells[1 : len(cells)-1] {
			if strings.TrimSpace(c) == "" {
				t.Errorf("%s: the row of %q has an empty cell", heading, name)
			}
		}
		names = append(names, name)
	}
	return names
}

// daemonWorkerCounters are the names `xdpsec stats` gives the workers' counters: the keys of
// control/daemon's (*Daemon).WorkerStats map, renamed as its workerCounters does
// ("no_next_hop_in" → "WorkerNoNextHopIn"). Read from the source: the daemon builds them only from
// running workers.
func daemonWorkerCounters(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../control/daemon/daemon.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "WorkerStats" || fn.Recv == nil {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if _, isMap := lit.Type.(*ast.MapType); !isMap {
				return true
			}
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if bl, ok := kv.Key.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					k, _ := strconv.Unquote(bl.Value)
					name := "Worker"
					for _, w := range strings.Split(k, "_") {
						if w != "" {
							name += strings.ToUpper(w[:1]) + w[1:]
						}
					}
					names = append(names, name)
				}
			}
			return false
		})
	}
	if len(names) == 0 {
		t.Fatal("control/daemon/daemon.go: no map literal in (*Daemon).WorkerStats: where do the workers' counters get their names now?")
	}
	return names
}

// offloadReasons are the values of control/offload's Reason constants (the nack reasons).
func offloadReasons(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../control/offload/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
					continue
				}
				for _, v := range vs.Values {
					if bl, ok := v.(*ast.BasicLit); ok && bl.Kind == token.STRING {
						s, _ := strconv.Unquote(bl.Value)
						reasons = append(reasons, s)
					}
				}
			}
		}
	}
	return reasons
}
