package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

// complete runs `xdpsec __complete ARGS…` (what the shell scripts run) and returns the candidates
// ("name\tdescription") and the directive line.
func complete(t *testing.T, args ...string) (cands []string, directive string) {
	t.Helper()
	code, out, errOut := cliRun(append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, errOut)
	}
	if strings.Contains(errOut, "xdpsec:") || strings.Contains(strings.ToLower(errOut), "error") {
		t.Errorf("__complete %q complained: %s", args, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

// names strips the descriptions.
func names(cands []string) []string {
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i], _, _ = strings.Cut(c, "\t")
	}
	return out
}

const noFileComp = ":4" // cobra.ShellCompDirectiveNoFileComp

func TestCompleteCommandsAndFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{""}, []string{"bench", "check", "completion", "config", "demo", "down", "help", "monitor", "pcap", "reload", "run", "sa", "sp", "stats", "version"}, noFileComp},
		{[]string{"sa", ""}, []string{"add", "del", "flush", "get", "list", "update"}, noFileComp},
		{[]string{"sa", "l"}, []string{"list"}, noFileComp},
		{[]string{"pcap", ""}, []string{"decrypt", "encrypt"}, noFileComp},
		{[]string{"completion", ""}, []string{"bash", "fish", "powershell", "zsh"}, noFileComp},
		{[]string{"sa", "list", "-o", ""}, []string{"text", "json"}, noFileComp},
		{[]string{"--output", "j"}, []string{"json"}, noFileComp},
		{[]string{"stats", "--log-level", ""}, []string{"debug", "info", "warn", "error"}, noFileComp},
		{[]string{"--config", ""}, []string{"yaml", "yml"}, ":8"}, // FilterFileExt: the shell lists *.yaml, *.yml
		{[]string{"pcap", "encrypt", "--config", "testdata/sample.yaml", "--sa", ""},
			[]string{"gcm-tunnel", "chacha-tunnel6", "cbc-tunnel", "gcm-transport", "cbc-transport6"}, noFileComp},
		{[]string{"pcap", "decrypt", "--config", "testdata/sample.yaml", "--sa", "cbc"}, []string{"cbc-tunnel", "cbc-transport6"}, noFileComp},
		{[]string{"pcap", "decrypt", "--sa", ""}, nil, noFileComp}, // no --config: nothing to offer
		{[]string{"pcap", "decrypt", "--sa", "x", ""}, []string{"pcap", "pcapng", "cap"}, ":8"},
	} {
		got, dir := complete(t, tc.args...)
		if !slices.Equal(names(got), tc.want) || dir != tc.directive {
			t.Errorf("__complete %q: %q %s, want %q %s", tc.args, names(got), dir, tc.want, tc.directive)
		}
	}
}

// SA and policy names come from the running daemon, with a description; without a daemon there
// is nothing to offer and nothing to complain about.
func TestCompleteNamesFromDaemon(t *testing.T) {
	d := startDaemon(t)
	d.ok(t, strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x2002 reqid 1 mode tunnel "+
		"aead rfc4106(gcm(aes)) "+testKey+" 128 name rekeyed")...)
	d.sync(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"sa", "del", ""}, []string{"gw1-to-gw2\tspi 0x00001001 198.18.0.1 → 198.19.0.1", "rekeyed\tspi 0x00002002 198.18.0.1 → 198.19.0.1"}},
		{[]string{"sa", "get", "r"}, []string{"rekeyed\tspi 0x00002002 198.18.0.1 → 198.19.0.1"}},
		{[]string{"sa", "delete", "name", "gw"}, []string{"gw1-to-gw2\tspi 0x00001001 198.18.0.1 → 198.19.0.1"}},
		{[]string{"sa", "del", "rekeyed", ""}, nil},
		{[]string{"sp", "del", ""}, []string{"lan-out\tdir out action protect", "ike\tdir in action bypass"}}, // the card's order: out, then in
		{[]string{"sp", "del", "i"}, []string{"ike\tdir in action bypass"}},
	} {
		got, dir := complete(t, append([]string{"--socket", d.socket}, tc.args...)...)
		if !slices.Equal(got, tc.want) || dir != noFileComp {
			t.Errorf("__complete %q: %q %s, want %q", tc.args, got, dir, tc.want)
		}
	}
	quiet := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"sa", "del", ""}, {"sp", "del", ""}} {
		if got, dir := complete(t, append([]string{"--socket", quiet}, args...)...); len(got) != 0 || dir != noFileComp {
			t.Errorf("no daemon: __complete %q: %q %s", args, got, dir)
		}
	}
}

// Each shell's script is generated, and the shells installed here accept it; bash's, sourced in a
// real bash with the binary on PATH, completes subcommands and the daemon's SA names.
func TestCompletionScripts(t *testing.T) {
	marks := map[string]string{"bash": "__start_xdpsec", "zsh": "#compdef xdpsec", "fish": "complete -c xdpsec",
		"powershell": "Register-ArgumentCompleter"}
	dir := t.TempDir()
	for shell, mark := range marks {
		code, script, errOut := cliRun("completion", shell)
		if code != 0 || !strings.Contains(script, mark) {
			t.Fatalf("completion %s: exit %d, no %q: %s", shell, code, mark, errOut)
		}
		path := filepath.Join(dir, "xdpsec."+shell)
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		check := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}[shell]
		if check == nil {
			continue
		}
		testutil.RequireTools(t, check[0])
		if out, err := exec.Command(check[0], append(check[1:], path)...).CombinedOutput(); err != nil {
			t.Errorf("%s rejects its completion script: %v\n%s", shell, err, out)
		}
	}

	const bashCompletion = "/usr/share/bash-completion/bash_completion" // the scripts need its helpers
	testutil.RequireFiles(t, bashCompletion)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	d := startDaemon(t)
	tab := func(line string) string {
		t.Helper()
		// What bash does on TAB: COMP_WORDS/COMP_CWORD from the line, then the registered function.
		sh := `source ` + bashCompletion + `; source "$1"; read -ra COMP_WORDS <<< "$2"; [[ "$2" == *" " ]] && COMP_WORDS+=("");
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$2"; COMP_POINT=${#COMP_LINE};
__start_xdpsec xdpsec; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.CommandContext(ctx, "bash", "-c", sh, "bash", filepath.Join(dir, "xdpsec.bash"), line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s%s", line, err, out, stderr.String())
		}
		// compopt only works inside a real completion; bash says so and goes on.
		for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			if l != "" && !strings.Contains(l, "compopt: not currently executing completion function") {
				t.Errorf("bash completion of %q: %s", line, l)
			}
		}
		return strings.TrimSpace(string(out))
	}
	if got := tab("xdpsec sa l"); got != "list" {
		t.Errorf("xdpsec sa l<TAB>: %q", got)
	}
	if got := tab("xdpsec --socket " + d.socket + " sa del gw"); got != "gw1-to-gw2" {
		t.Errorf("xdpsec sa del gw<TAB>: %q", got)
	}
}
