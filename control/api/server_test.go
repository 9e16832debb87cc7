package api

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testutil"
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

func TestPeerUID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("unix", path)
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred, err := peerCred(c)
	if err != nil || int(cred.Uid) != os.Geteuid() {
		t.Fatalf("peer cred %+v (%v), want uid %d", cred, err, os.Geteuid())
	}
}

// Even with the socket's permissions loosened behind the daemon's back, another user gets no answer.
func TestOtherUserRefused(t *testing.T) {
	testutil.RequireRoot(t, "connects as another user")
	// The system's python, which another user can run (not a shim under root's home).
	py := "/usr/bin/python3"
	testutil.RequireFiles(t, py)
	// Not t.TempDir: its parent admits only root, and the other user must reach the socket.
	dir, err := os.MkdirTemp("", "xdpsec-api-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "x.sock")
	srv, err := Serve(path, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for p, mode := range map[string]os.FileMode{dir: 0o755, path: 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	// The request needs no backend: the mux answers 404 to whoever it admits.
	client := `import socket,sys
s=socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b"GET /nope HTTP/1.0\r\n\r\n")
    print(s.recv(12).decode() or "closed")
except (ConnectionResetError, BrokenPipeError):
    print("closed")`
	ask := func(uid uint32) string {
		cmd := exec.Command(py, "-c", client, path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %d: %v: %s", uid, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := ask(0); got != "HTTP/1.0 404" {
		t.Fatalf("root got %q, want an HTTP answer", got)
	}
	if got := ask(65534); got != "closed" {
		t.Fatalf("another user got %q, want the connection closed", got)
	}
}

// TestSocketGroup: with daemon.socket_group, the socket is 0660 and its directory 0750 with that
// group, and a peer of the group gets answers while another user still does not.
func TestSocketGroup(t *testing.T) {
	testutil.RequireRoot(t, "connecting as other users")
	py := "/usr/bin/python3"
	testutil.RequireFiles(t, py)
	parent, err := os.MkdirTemp("", "xdpsec-api-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "run")
	path := filepath.Join(dir, "x.sock")
	const group = 65534 // nogroup
	srv, err := ServeWith(path, nil, ServeOptions{Log: slog.New(slog.DiscardHandler), Group: strconv.Itoa(group)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for p, want := range map[string]os.FileMode{dir: 0o750, path: 0o660} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want || fi.Sys().(*syscall.Stat_t).Gid != group {
			t.Fatalf("%s: mode %o gid %d, want %o and %d", p, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, want, group)
		}
	}
	client := `import socket,sys
s=socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /nope HTTP/1.0\r\n\r\n")
    print(s.recv(12).decode() or "closed")
except (ConnectionResetError, BrokenPipeError):
    print("closed")
except PermissionError:
    print("denied")`
	ask := func(uid, gid uint32, groups ...uint32) string {
		cmd := exec.Command(py, "-c", client, path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as %d:%d: %v: %s", uid, gid, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := ask(65533, group); got != "HTTP/1.0 404" {
		t.Fatalf("a peer of the group got %q, want an answer", got)
	}
	if got := ask(65533, 65533); got != "denied" {
		t.Fatalf("another user got %q, want the directory to keep it out", got)
	}
	// Past the permissions (loosened behind the daemon's back), the credential check still refuses.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if got := ask(65533, 65533); got != "closed" {
		t.Fatalf("another user past the permissions got %q, want the connection closed", got)
	}
	if _, err := ServeWith(filepath.Join(parent, "y", "x.sock"), nil, ServeOptions{Group: "no-such-group-xdpsec"}); err == nil {
		t.Fatal("an unknown group was accepted")
	}
}
