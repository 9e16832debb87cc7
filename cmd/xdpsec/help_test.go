package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every subcommand, including those added later by other files, answers
// --help with exit 0 and its usage, and says in one line what it does.
func TestEveryCommandHasHelp(t *testing.T) {
	var paths [][]string
	walk(newRoot(&App{}), func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		var path []string
		for p := c; p.HasParent(); p = p.Parent() {
			path = append([]string{p.Name()}, path...)
		}
		if c.Short == "" {
			t.Errorf("%q has no Short description", c.CommandPath())
		}
		paths = append(paths, path)
	})
	if len(paths) < 3 {
		t.Fatalf("only %d commands found: the tree is not built", len(paths))
	}
	for _, path := range paths {
		name := strings.Join(append([]string{"xdpsec"}, path...), " ")
		t.Run(name, func(t *testing.T) {
			for _, flag := range []string{"--help", "-h"} {
				var out, errOut bytes.Buffer
				code := run(append(append([]string{}, path...), flag), strings.NewReader(""), &out, &errOut)
				if code != 0 {
					t.Fatalf("%s %s: exit %d, stderr %q", name, flag, code, errOut.String())
				}
				if !strings.Contains(out.String(), "Usage:") || !strings.Contains(out.String(), name) {
					t.Fatalf("%s %s: no usage text:\n%s", name, flag, out.String())
				}
			}
		})
	}
}

func TestGlobalFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nonsense"}, exitUsage, `unknown command "nonsense"`},
		{[]string{"--no-such-flag"}, exitUsage, "unknown flag"},
		{[]string{"pcap", "encrypt", "-o", "xml", "--sa", "x", "a", "b"}, exitUsage, `-o "xml": want text or json`},
		{[]string{"pcap", "encrypt", "--log-level", "loud", "--sa", "x", "a", "b"}, exitUsage, `--log-level "loud"`},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}

// --instance renames the configured instance and moves its default socket.
func TestLoadConfigInstance(t *testing.T) {
	a := &App{ConfigPath: "testdata/sample.yaml", Instance: "t1"}
	c, err := a.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := a.daemonSocket()
	if c.Instance != "t1" || c.Daemon.Socket != "/run/xdpsec/t1.sock" || sock != "/run/xdpsec/t1.sock" || err != nil {
		t.Fatalf("instance %q socket %q / %q %v", c.Instance, c.Daemon.Socket, sock, err)
	}
	a.Instance = "bad/name"
	if _, err := a.LoadConfig(); err == nil || !strings.Contains(err.Error(), `--instance "bad/name"`) {
		t.Fatalf("bad instance: %v", err)
	}
	if _, err := (&App{}).LoadConfig(); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("no config: %v", err)
	}
}
