package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A client reads only the instance and the socket of a file, whatever is wrong elsewhere in it.
func TestReadEndpoint(t *testing.T) {
	t.Setenv(RunDirEnv, "/tmp/xs-rundir")
	for _, c := range []struct {
		name, text       string
		instance, socket string
		set              bool
	}{
		{"defaults", "sas: []\n", DefaultInstance, "/tmp/xs-rundir/xdpsec.sock", false},
		{"instance", "instance: gw1\n", "gw1", "/tmp/xs-rundir/gw1.sock", false},
		{"block socket", "instance: gw1\ndaemon:\n  poll_interval: 1s\n  socket: /run/x/gw.sock\nsas: []\n", "gw1", "/run/x/gw.sock", true},
		{"flow socket", "daemon: {poll_interval: 1s, socket: \"/run/x/gw.sock\"}\ninstance: 'gw2'\n", "gw2", "/run/x/gw.sock", true},
		// Errors elsewhere do not matter: a bad prefix, a short key, an unknown SA, an unknown field.
		{"errors elsewhere", "instance: gw1\nbogus: 1\npolicies:\n  - {name: p, src: 198.18.1.0/33, sa: nope}\nsas:\n" + shortKeySA, "gw1", "/tmp/xs-rundir/gw1.sock", false},
		// Not YAML at all (half-edited): the two lines still say it.
		{"not yaml, block", "instance: gw3   # the lab\ndaemon:\n  socket: /run/x/3.sock # here\nsas: [\n  - {name: x\n", "gw3", "/run/x/3.sock", true},
		{"not yaml, flow", "sas: [\ninstance: gw4\ndaemon: {metrics: 127.0.0.1:1, socket: '/run/x/4.sock'}\n", "gw4", "/run/x/4.sock", true},
		{"not yaml, socket of another section", "policies: [\n  socket: /wrong\ninstance: gw5\n", "gw5", "/tmp/xs-rundir/gw5.sock", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "gw.yaml")
			if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			ep, err := ReadEndpoint(p)
			if err != nil {
				t.Fatal(err)
			}
			if ep.Instance != c.instance || ep.Socket != c.socket || ep.SocketSet != c.set {
				t.Fatalf("got %+v, want instance %q socket %q set %v", ep, c.instance, c.socket, c.set)
			}
		})
	}
	for _, text := range []string{"instance: ../etc\n", "daemon: {socket: run/x.sock}\n"} {
		p := filepath.Join(t.TempDir(), "gw.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadEndpoint(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err %v, want ErrInvalid", text, err)
		}
	}
	if _, err := ReadEndpoint(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRunDir(t *testing.T) {
	t.Setenv(RunDirEnv, "")
	if RunDir() != DefaultRunDir || DefaultSocket("gw1") != "/run/xdpsec/gw1.sock" {
		t.Fatalf("default: %s %s", RunDir(), DefaultSocket("gw1"))
	}
	t.Setenv(RunDirEnv, "relative/dir") // not absolute: ignored
	if RunDir() != DefaultRunDir {
		t.Fatalf("relative: %s", RunDir())
	}
	t.Setenv(RunDirEnv, "/tmp/xs-x/")
	if DefaultSocket("gw1") != "/tmp/xs-x/gw1.sock" {
		t.Fatalf("set: %s", DefaultSocket("gw1"))
	}
}
