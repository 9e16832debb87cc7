package seqstate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "changes file owners")
}

func realOptions(dir string) Options {
	o := testOptions(newClock())
	o.Dir = dir
	return o
}

// TestOpenCreatesPrivateDir: Open creates the directory (and its missing
// parents) 0700, the secret 0600, and the state survives a reopen.
func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "xdpsec", "gw1")
	s, err := Open(realOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Dir(dir): 0o700, filepath.Join(dir, secretName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	p := saParams(0x1234, 1, false)
	h, err := s.Outbound(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "seq-*.state"))
	for _, n := range names {
		if fi, _ := os.Stat(n); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", n, fi.Mode().Perm())
		}
	}
	s2, err := Open(realOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	h2, err := s2.Outbound(p)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Seq() != h.Ceiling() || h2.IVMask() != h.IVMask() {
		t.Fatalf("reopened: seq %d mask %x, want %d %x", h2.Seq(), h2.IVMask(), h.Ceiling(), h.IVMask())
	}
}

// TestOpenRefusesUnsafeDir: a directory that group or others can write, a
// non-sticky parent that they can write, or a relative path.
func TestOpenRefusesUnsafeDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o770, 0o702, 0o722} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(realOptions(dir))
		if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "writ") {
			t.Errorf("mode %v: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o700, 0o750, 0o755} { // readable is fine: no keys inside
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		s, err := Open(realOptions(dir))
		if err != nil {
			t.Fatalf("mode %v: %v", mode, err)
		}
		s.Close()
	}
	os.Chmod(dir, 0o700)
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(realOptions(dir)); !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "parent") {
		t.Errorf("writable parent: %v", err)
	}
	if err := os.Chmod(base, 0o777|os.ModeSticky); err != nil { // as /tmp
		t.Fatal(err)
	}
	s, err := Open(realOptions(dir))
	if err != nil {
		t.Fatalf("sticky parent: %v", err)
	}
	s.Close()
	os.Chmod(base, 0o700)
	if _, err := Open(realOptions("var/lib/xdpsec")); !errors.Is(err, errNotAbs) {
		t.Errorf("relative path: %v", err)
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(realOptions(file)); err == nil {
		t.Error("a regular file accepted as the state directory")
	}
}

// TestOpenRefusesForeignOwner: a directory, parent or secret that another
// user owns, and a secret that others can read.
func TestOpenRefusesForeignOwner(t *testing.T) {
	requireRoot(t)
	const nobody = 65534
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	s, err := Open(realOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	refused := func(what string, contains string) {
		t.Helper()
		_, err := Open(realOptions(dir))
		if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), contains) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	refused("directory of nobody", "uid 65534")
	os.Chown(dir, 0, 0)
	if err := os.Chown(base, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	refused("parent of nobody", "parent")
	os.Chown(base, 0, 0)
	secret := filepath.Join(dir, secretName)
	os.Chown(secret, nobody, nobody)
	refused("secret of nobody", "uid 65534")
	os.Chown(secret, 0, 0)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		os.Chmod(secret, mode)
		refused("secret mode "+mode.String(), "read")
	}
	os.Chmod(secret, 0o600)
	if s, err := Open(realOptions(dir)); err != nil {
		t.Fatalf("after the repairs: %v", err)
	} else {
		s.Close()
	}
}

// TestOpenLocks: a second store on the same directory is refused while the
// first is open, and accepted after Close.
func TestOpenLocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(realOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(realOptions(dir)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	s2, err := Open(realOptions(dir))
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	s2.Close()
}

// TestOpenStateWithoutSecret: state files without the secret cannot be
// matched to any SA: Open refuses rather than starting over.
func TestOpenStateWithoutSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(realOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Outbound(saParams(0x4321, 4, false)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(filepath.Join(dir, secretName))
	if _, err := Open(realOptions(dir)); !errors.Is(err, ErrSecretLost) {
		t.Fatalf("%v", err)
	}
}

// TestOpenCorruptAndLeftovers: a damaged state file stops Open with the file
// named; a temporary file left by a crash before its rename is removed and
// ignored (the file it was to replace is the state).
func TestOpenCorruptAndLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(realOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Outbound(saParams(0x4321, 4, false))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	name := filepath.Join(dir, shardName(h.ID().shard()))
	good, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	// A crash between write and rename: the new content lies in .tmp.
	tmp := name + tmpSuffix
	os.WriteFile(tmp, []byte("xdpsec-seqstate 1\nhalf a fi"), 0o600)
	s2, err := Open(realOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover %s not removed: %v", tmp, err)
	}
	h2, err := s2.Outbound(saParams(0x4321, 4, false))
	if err != nil || h2.Seq() != h.Ceiling() {
		t.Fatalf("seq %d, want %d: %v", h2.Seq(), h.Ceiling(), err)
	}
	s2.Close()
	bad := append([]byte(nil), good...)
	bad[len(fileHeader)+3] ^= 1
	os.WriteFile(name, bad, 0o600)
	_, err = Open(realOptions(dir))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), shardName(h.ID().shard())) {
		t.Fatalf("corrupt file: %v", err)
	}
}

// TestRun: Run steps on its ticker, reports failures to OnError and flushes
// at the end.
func TestRun(t *testing.T) {
	c := newClock()
	m := newMemFS()
	o := testOptions(c)
	o.Tick = time.Millisecond
	errs := make(chan error, 100)
	o.OnError = func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	s := openMem(t, m, o)
	h, err := s.Outbound(saParams(0x5555, 5, false))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSender{limit: 1<<32 - 1}
	_ = h.Attach(f)
	f.send(900) // needs a renewal
	m.setFail(failWrites(errDiskFull))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	select {
	case err := <-errs:
		if !errors.Is(err, errDiskFull) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error reported within 10 s")
	}
	m.setFail(nil)
	deadline := time.Now().Add(10 * time.Second)
	for f.ceiling.Load() == 1000 {
		if time.Now().After(deadline) {
			t.Fatal("no renewal within 10 s after the disk recovered")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
