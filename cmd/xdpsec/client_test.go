package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/control/config"
)

// daemonAt starts a test daemon of instance (its SA called instance+"-sa") with its default
// socket in the run directory dir.
func daemonAt(t *testing.T, dir, instance string) *cliDaemon {
	t.Helper()
	text := strings.Replace(strings.ReplaceAll(daemonConfig, "gw1-to-gw2", instance+"-sa"), "instance: clitest", "instance: "+instance, 1)
	return startDaemonWith(t, filepath.Join(dir, instance+".sock"), text)
}

// staleSocket leaves a socket file nobody listens on, as a killed daemon does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// Client commands find the daemon without --instance when exactly one runs, list the running ones
// when several do, and say that none runs (as before) when none does; a stale socket is no daemon.
func TestClientFindsTheDaemon(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(config.RunDirEnv, dir)

	code, _, errOut := cliRun("sa", "list")
	if want := "connect to daemon at " + filepath.Join(dir, "xdpsec.sock") + " (is `xdpsec run` running?)"; code != exitFailure ||
		!strings.Contains(errOut, want) {
		t.Fatalf("no daemon: exit %d, %q; want %q", code, errOut, want)
	}
	staleSocket(t, filepath.Join(dir, "old.sock"))
	if code, _, errOut := cliRun("sa", "list"); code != exitFailure || !strings.Contains(errOut, "is `xdpsec run` running?") {
		t.Fatalf("a stale socket only: exit %d, %q", code, errOut)
	}

	daemonAt(t, dir, "gw-a")
	for _, args := range [][]string{{"sa", "list"}, {"sa", "get", "gw-a-sa"}, {"sp", "list"}} {
		code, out, errOut := cliRun(args...)
		if code != exitOK || !strings.Contains(out, "gw-a-sa") {
			t.Fatalf("one daemon: xdpsec %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if code, out, errOut := cliRun("stats"); code != exitOK || !strings.Contains(out, "sas") {
		t.Fatalf("one daemon: stats: exit %d\n%s%s", code, out, errOut)
	}

	daemonAt(t, dir, "gw-b")
	code, out, errOut := cliRun("sa", "list")
	for _, want := range []string{"2 daemons are running: gw-a (" + filepath.Join(dir, "gw-a.sock") + "), gw-b (" +
		filepath.Join(dir, "gw-b.sock") + ")", "--instance NAME"} {
		if code != exitUsage || !strings.Contains(errOut, want) {
			t.Errorf("two daemons: exit %d, stderr %q, stdout %q; want exit %d and %q", code, errOut, out, exitUsage, want)
		}
	}
	for _, inst := range []string{"gw-a", "gw-b"} {
		code, out, errOut := cliRun("--instance", inst, "sa", "list")
		other := map[string]string{"gw-a": "gw-b", "gw-b": "gw-a"}[inst]
		if code != exitOK || !strings.Contains(out, inst+"-sa") || strings.Contains(out, other+"-sa") {
			t.Errorf("--instance %s: exit %d\n%s%s", inst, code, out, errOut)
		}
	}
}

// -c FILE on a client command reads only the instance and the socket of the file: a file with
// errors elsewhere, even one that is not YAML at all while someone edits it, still names the
// daemon.
func TestClientConfigEndpointOnly(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(config.RunDirEnv, dir)
	daemonAt(t, dir, "gw-a")
	daemonAt(t, dir, "gw-b")
	for name, text := range map[string]string{
		"errors elsewhere": "instance: gw-b\ninterfaces: {protected: lan0}\npolicies:\n  - {name: p, src: 198.18.1.0/33, sa: nope}\n" +
			"sas:\n  - {name: s, spi: 0x1001, aead: {alg: aes-gcm-128, key: \"0x0102\"}}\n",
		"being edited": "instance: gw-b\nsas:\n  - name: s\n    spi: [0x10\n",
	} {
		path := filepath.Join(t.TempDir(), "gw-b.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := cliRun("-c", path, "sa", "list")
		if code != exitOK || !strings.Contains(out, "gw-b-sa") {
			t.Errorf("%s: -c: exit %d\n%s%s", name, code, out, errOut)
		}
		// --instance moves the file's defaulted socket, as it does for xdpsec run.
		code, out, errOut = cliRun("-c", path, "--instance", "gw-a", "sa", "list")
		if code != exitOK || !strings.Contains(out, "gw-a-sa") {
			t.Errorf("%s: -c with --instance: exit %d\n%s%s", name, code, out, errOut)
		}
	}
	// A file that names its socket: that socket, whatever the instance.
	path := filepath.Join(t.TempDir(), "explicit.yaml")
	text := "instance: other\ndaemon: {socket: " + filepath.Join(dir, "gw-a.sock") + "}\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cliRun("-c", path, "sa", "list"); code != exitOK || !strings.Contains(out, "gw-a-sa") {
		t.Errorf("daemon.socket: exit %d\n%s%s", code, out, errOut)
	}
}
