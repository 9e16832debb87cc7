package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/xdpsec/xdpsec"

// rule forbids packages under from to import — directly or through others — anything under one of
// forbid. With tests, the packages' test binaries (their _test.go imports) are held to it too.
type rule struct {
	from   string
	forbid []string
	tests  bool
	why    string
}

var rules = []rule{
	{from: "ipsec", forbid: []string{""}, tests: false, why: "the vocabulary is the leaf: the standard library only"},
	{from: "internal/testutil", forbid: []string{""}, why: "every package's tests use it: the standard library only"},
	{from: "bpf", forbid: []string{"control", "cmd", "hack", "internal/testbed"}, why: "the card is below the control plane"},
	{from: "loader", forbid: []string{"control", "cmd", "hack", "internal/testbed"}, why: "the loader is below the control plane"},
	{from: "crypto", forbid: []string{"control", "cmd", "hack", "internal/testbed"}, why: "the workers are below the control plane"},
	{from: "loader", forbid: []string{"control", "cmd", "hack", "internal/testbed/pair"}, tests: true, why: "the loader's tests must not build the control plane"},
	{from: "crypto", forbid: []string{"control", "cmd", "hack", "internal/testbed/pair"}, tests: true, why: "the workers' tests must not build the control plane"},
	{from: "internal/testbed", forbid: []string{"control", "cmd", "hack"}, why: "the testbed builds namespaces; package pair starts gateways"},
	{from: "control", forbid: []string{"cmd", "hack"}, why: "the control plane is below the binary and never needs test scaffolding"},
	{from: "cmd", forbid: []string{"hack"}, why: "the shipped binary does not depend on hack/"},
}

// under reports whether the module-relative path p is dir or below it ("" is the whole module).
func under(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

// exempt are packages a rule's from-prefix covers that the rule does not mean: pair is the one part of
// internal/testbed that starts gateways.
func exempt(r rule, pkg string) bool {
	return r.from == "internal/testbed" && under(pkg, "internal/testbed/pair")
}

// violations checks a dependency graph (module-relative package → its module-relative deps) against
// the rules. test says whether the graph holds test binaries' dependencies.
func violations(graph map[string][]string, test bool) []string {
	var out []string
	for pkg, deps := range graph {
		for _, r := range rules {
			if r.tests != test || !under(pkg, r.from) || exempt(r, pkg) {
				continue
			}
			for _, d := range deps {
				if d == pkg {
					continue
				}
				for _, f := range r.forbid {
					if under(d, f) {
						what := "imports"
						if test {
							what = "has tests that import"
						}
						out = append(out, fmt.Sprintf("%s %s %s: %s", pkg, what, d, r.why))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// deps runs go list and returns each package's module-relative dependencies within the module.
// With test, the packages' test variants are listed and folded into their package.
func deps(t *testing.T, test bool, patterns ...string) map[string][]string {
	t.Helper()
	args := []string{"list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}"}
	if test {
		args = append(args, "-test")
	}
	cmd := exec.Command(goTool(), append(args, patterns...)...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		// Test variants read "pkg [pkg.test]", "pkg_test [pkg.test]" or "pkg.test".
		name := strings.TrimSuffix(strings.TrimSuffix(f[0], ".test"), "_test")
		rest := f[1:]
		if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
			rest = rest[1:]
		}
		rel, ok := relative(name)
		if !ok {
			continue
		}
		for _, d := range rest {
			if r, ok := relative(strings.Fields(d)[0]); ok {
				graph[rel] = append(graph[rel], r)
			}
		}
		if _, ok := graph[rel]; !ok {
			graph[rel] = nil
		}
	}
	if len(graph) == 0 {
		t.Fatalf("go list found no packages:\n%s", out)
	}
	return graph
}

func relative(p string) (string, bool) {
	if p == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(p, module+"/")
	return rel, ok
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// TestImportsPointDown: no package imports a layer above its own, and the tests of the card's and the
// workers' packages build nothing of the control plane.
func TestImportsPointDown(t *testing.T) {
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Fatalf("not in the module's tree: %v", err)
	}
	prod := deps(t, false, "./...")
	for _, p := range []string{"ipsec", "bpf", "loader", "crypto/worker", "control/sadb", "cmd/xdpsec", "internal/testbed"} {
		if _, ok := prod[p]; !ok {
			t.Fatalf("go list did not list %s: the rules would check nothing", p)
		}
	}
	for _, v := range violations(prod, false) {
		t.Error(v)
	}
	// The vocabulary imports the standard library only, not even another module.
	cmd := exec.Command(goTool(), "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./ipsec")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./ipsec: %v", err)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{module + "/ipsec"}) {
		t.Errorf("package ipsec depends on more than the standard library: %v", got)
	}
	tests := deps(t, true, "./loader/...", "./crypto/...")
	if _, ok := tests["crypto/worker"]; !ok {
		t.Fatal("go list -test did not list crypto/worker")
	}
	for _, v := range violations(tests, true) {
		t.Error(v)
	}
}

// TestRulesCatchUpwardImports: the rules fail on the edges they are there to forbid, and pass a
// clean graph, so TestImportsPointDown cannot pass by checking nothing.
func TestRulesCatchUpwardImports(t *testing.T) {
	clean := map[string][]string{
		"ipsec":                 nil,
		"loader":                {"bpf", "ipsec"},
		"crypto/worker":         {"bpf", "crypto/esp", "ipsec", "loader/xsk"},
		"control/manager":       {"control/sadb", "ipsec"},
		"cmd/xdpsec":            {"control/daemon", "internal/testbed", "internal/testbed/pair"},
		"internal/testbed":      {"ipsec"},
		"internal/testbed/pair": {"control/daemon", "internal/testbed"},
		"hack/e2e":              {"internal/testbed/pair", "control/daemon"},
	}
	if v := violations(clean, false); len(v) > 0 {
		t.Fatalf("a clean graph fails: %v", v)
	}
	for _, tc := range []struct {
		from, to string
		test     bool
	}{
		{"ipsec", "bpf", false},
		{"loader", "control/spd", false},
		{"crypto/worker", "control", false},
		{"bpf", "internal/testbed", false},
		{"loader/xsk/xsktest", "hack/e2e", false},
		{"control/daemon", "hack/xsbench", false},
		{"control/config", "cmd/xdpsec", false},
		{"cmd/xdpsec", "hack/e2e", false},
		{"internal/testbed", "control/daemon", false},
		{"crypto/worker", "internal/testbed/pair", true},
		{"loader/neigh", "control/config", true},
	} {
		g := map[string][]string{tc.from: {tc.to}}
		if v := violations(g, tc.test); len(v) != 1 {
			t.Errorf("%s → %s (tests %v): %d violations, want 1: %v", tc.from, tc.to, tc.test, len(v), v)
		}
	}
	// Tests of the loader may use the testbed's namespaces, not its gateways.
	if v := violations(map[string][]string{"loader/neigh": {"internal/testbed"}}, true); len(v) > 0 {
		t.Errorf("loader/neigh's tests using internal/testbed: %v", v)
	}
}
