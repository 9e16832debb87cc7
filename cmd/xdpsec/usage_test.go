package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// cliRun runs the command line in-process and returns exit code, stdout and stderr.
func cliRun(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// pathOf is the arguments that name c (without "xdpsec").
func pathOf(c *cobra.Command) []string {
	var path []string
	for p := c; p.HasParent(); p = p.Parent() {
		path = append([]string{p.Name()}, path...)
	}
	return path
}

// typo swaps the last two letters of name, as fast fingers do ("list" → "lits", "sa" → "as").
func typo(name string) string {
	r := []rune(name)
	n := len(r)
	r[n-2], r[n-1] = r[n-1], r[n-2]
	return string(r)
}

// Every command with subcommands, the root and `help` included, refuses a typo of each of its
// children with exit status 2 and suggests the child.
func TestUnknownSubcommandSuggests(t *testing.T) {
	root := newRoot(&App{})
	parents := 0
	walk(root, func(p *cobra.Command) {
		if p.Hidden || !p.HasAvailableSubCommands() {
			return
		}
		parents++
		for _, c := range p.Commands() {
			if !c.IsAvailableCommand() || len(c.Name()) < 2 {
				continue
			}
			bad := typo(c.Name())
			if found, _, err := p.Find([]string{bad}); err == nil && found != p {
				continue // the typo is another command's name or alias
			}
			for _, prefix := range [][]string{nil, {"help"}} {
				args := append(append(append([]string{}, prefix...), pathOf(p)...), bad)
				code, out, errOut := cliRun(args...)
				want := `unknown command "` + bad + `" for "` + p.CommandPath() + `"; did you mean `
				if code != exitUsage || !strings.Contains(errOut, want) || !strings.Contains(errOut, `"`+c.Name()+`"`) {
					t.Errorf("xdpsec %s: exit %d, stderr %q; want exit %d, %q naming %q",
						strings.Join(args, " "), code, errOut, exitUsage, want, c.Name())
				}
				if out != "" {
					t.Errorf("xdpsec %s printed on stdout: %q", strings.Join(args, " "), out)
				}
			}
		}
	})
	if parents < 5 { // xdpsec, sa, sp, pcap, completion
		t.Fatalf("only %d commands with subcommands found", parents)
	}
}

// The typos issue 11 saw exit 0.
func TestIssueTypos(t *testing.T) {
	for _, tc := range []struct{ args, suggestion string }{
		{"sa deleteall", `did you mean "flush"?`}, // ip xfrm state deleteall
		{"sp deleteall", `did you mean "flush"?`},
		{"sa lsit", `did you mean "list"?`},
		{"pcap encrpyt", `did you mean "encrypt"?`},
		{"sa list --stat", `unknown flag: --stat; did you mean "--stats"?`},
		{"stats --outptu json", `did you mean "--output"?`},
	} {
		code, _, errOut := cliRun(strings.Fields(tc.args)...)
		if code != exitUsage || !strings.Contains(errOut, tc.suggestion) {
			t.Errorf("xdpsec %s: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut, tc.suggestion)
		}
	}
}

// Every runnable command validates its positional arguments, and one that does not take a single
// argument refuses it with exit status 2 before doing anything (no daemon is asked, no file read).
func TestPositionalArgsValidated(t *testing.T) {
	walk(newRoot(&App{}), func(c *cobra.Command) {
		if c.Hidden || !c.Runnable() {
			return
		}
		if c.Args == nil {
			t.Errorf("%q has no Args: its positional arguments go unchecked", c.CommandPath())
			return
		}
		if c.Args(c, []string{"bogus"}) == nil {
			return // takes arguments (sa add, pcap encrypt, …): their parsers check them
		}
		args := append(pathOf(c), "bogus")
		code, out, errOut := cliRun(args...)
		help := " --help' for usage." // help bogus points to xdpsec --help, the others to their own
		if code != exitUsage || !strings.Contains(errOut, help) || out != "" {
			t.Errorf("xdpsec %s: exit %d, stderr %q, stdout %q; want exit 2 and %q", strings.Join(args, " "), code, errOut, out, help)
		}
	})
}

// A command with subcommands given none prints its help and exits 0, like xdpsec alone.
func TestGroupAloneShowsHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"sa"}, {"sp"}, {"pcap"}, {"completion"}} {
		code, out, errOut := cliRun(args...)
		if code != 0 || !strings.Contains(out, "Available Commands:") || errOut != "" {
			t.Errorf("xdpsec %v: exit %d, stderr %q, stdout %q", args, code, errOut, out)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"stat", "stats", 1}, {"lsit", "list", 2}, {"Output", "outptu", 2}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if d := levenshtein(tc.a, tc.b); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}
