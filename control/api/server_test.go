package api

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestListenSocketMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "x.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("created directory mode %o, want 0700", di.Mode().Perm())
	}
	// A live daemon on the socket: refuse rather than steal it.
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second listener: %v, want ErrInUse", err)
	}
}

func TestListenRefusesInsecureDir(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o1777, 0o770, 0o722} {
		dir := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(filepath.Join(dir, "x.sock")); !errors.Is(err, ErrInsecure) {
			t.Errorf("directory mode %o: %v, want ErrInsecure", mode, err)
		}
	}
}

func TestListenReplacesStaleSocketOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.sock")
	// A socket file nobody listens on (a daemon that died): replaced.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	// A regular file in the way: never removed.
	file := filepath.Join(dir, "f.sock")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); !errors.Is(err, ErrInsecure) {
		t.Fatalf("regular file: %v, want ErrInsecure", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatal("the regular file was removed")
	}
}
