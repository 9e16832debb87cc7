package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// gen-man writes one page per command of the tree (hidden ones and help aside), each with its name,
// synopsis and text intact, and the same pages for the same SOURCE_DATE_EPOCH.
func TestGenMan(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1795932000") // 2026-11-29
	var want []string
	walk(newRoot(&App{}), func(c *cobra.Command) {
		hidden := false
		for p := c; p != nil; p = p.Parent() {
			hidden = hidden || !p.IsAvailableCommand() && p.HasParent()
		}
		if !hidden {
			want = append(want, strings.Join(append([]string{"xdpsec"}, pathOf(c)...), "-")+".1")
		}
	})
	slices.Sort(want)
	if len(want) < 20 {
		t.Fatalf("only %d commands", len(want))
	}

	gen := func() (string, []string) {
		dir := t.TempDir()
		if code, out, errOut := cliRun("gen-man", dir); code != 0 {
			t.Fatalf("gen-man: exit %d\n%s%s", code, out, errOut)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		return dir, got
	}
	dir, got := gen()
	if !slices.Equal(got, want) {
		t.Fatalf("pages %v\nwant %v", got, want)
	}
	page := func(dir, name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, name := range want {
		p := page(dir, name)
		cmd := strings.TrimSuffix(name, ".1")
		if !strings.Contains(p, `.TH "XDPSEC" "1" "Nov 2026" "xdpsec `) || !strings.Contains(p, ".SH NAME\n"+cmd+" - ") ||
			!strings.Contains(p, ".SH SYNOPSIS") {
			t.Errorf("%s lacks its header, name or synopsis:\n%.600s", name, p)
		}
	}
	// Text the markdown renderer would eat: an <instance> taken for an HTML tag, a * for emphasis.
	for name, text := range map[string]string{
		"xdpsec-run.1":  "/sys/fs/bpf/xdpsec/<instance>/), open one AF_XDP socket",
		"xdpsec.1":      "(default /run/xdpsec/<instance>",
		"xdpsec-demo.1": "(xs-demo-*)",
		// A code block in cobra's own help is left as it is.
		"xdpsec-completion-bash.1": "source <(xdpsec completion bash)",
	} {
		if !strings.Contains(page(dir, name), text) {
			t.Errorf("%s lost %q:\n%s", name, text, page(dir, name))
		}
	}
	dir2, _ := gen()
	for _, name := range want {
		if page(dir, name) != page(dir2, name) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}
