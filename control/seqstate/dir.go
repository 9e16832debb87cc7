package seqstate

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errors of the directory checks; each is wrapped with the path and what
// is wrong.
var (
	// ErrUnsafeDir: the state directory, one of its parents, or a file in it
	// can be changed by someone other than this user (and root).
	ErrUnsafeDir = errors.New("unsafe state directory")
	// ErrLocked: another process holds the state directory.
	ErrLocked = errors.New("state directory in use by another process")
	// ErrSecretLost: state files exist but the fingerprint secret is gone,
	// so no SA can be recognised; the state cannot be trusted or extended.
	ErrSecretLost = errors.New("state directory has state files but no secret")
)

const (
	secretName = "secret"
	lockName   = "lock"
	secretLen  = 32
)

// prepareDir creates dir (0700, with any missing parents) and checks that
// nobody but this user can change it: the directory must belong to this
// user and be writable by nobody else, and each parent must belong to root
// or this user and be writable by nobody else unless it is sticky (/tmp),
// since whoever can write a parent can rename the directory away and put
// their own in its place.
func prepareDir(dir string) (string, error) {
	dir, err := cleanDir(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create state directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolve state directory: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("stat state directory: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("state directory %s is not a directory: %w", real, ErrUnsafeDir)
	}
	if err := checkPrivate(real, fi, 0o022); err != nil {
		return "", err
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		pi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("stat %s: %w", p, err)
		}
		uid := owner(pi)
		if uid != 0 && uid != os.Geteuid() {
			return "", fmt.Errorf("parent %s of the state directory belongs to uid %d: %w", p, uid, ErrUnsafeDir)
		}
		if pi.Mode().Perm()&0o022 != 0 && pi.Mode()&fs.ModeSticky == 0 {
			return "", fmt.Errorf("parent %s of the state directory is writable by group or others (mode %v): %w",
				p, pi.Mode().Perm(), ErrUnsafeDir)
		}
		if p == "/" || p == "." {
			break
		}
	}
	return real, nil
}

// checkPrivate refuses fi when another user owns it or any bit of deny is
// set in its permissions.
func checkPrivate(path string, fi fs.FileInfo, deny fs.FileMode) error {
	if uid := owner(fi); uid != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this process's uid %d: %w", path, uid, os.Geteuid(), ErrUnsafeDir)
	}
	if fi.Mode().Perm()&deny != 0 {
		who := "group or others can write it"
		if deny&0o044 != 0 {
			who = "group or others can read or write it"
		}
		return fmt.Errorf("%s has mode %v: %s: %w", path, fi.Mode().Perm(), who, ErrUnsafeDir)
	}
	return nil
}

func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// lockDir takes an exclusive, non-blocking flock on dir/lock: two daemons
// reserving from one state would hand out the same numbers. The lock dies
// with the process (also on kill -9).
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	return f, nil
}

// loadSecret reads the fingerprint secret, or creates it when the directory
// holds no state yet. An existing secret must be a regular file of this
// user that nobody else can read (it keys the fingerprints).
func loadSecret(o *osFS, hasState bool) ([]byte, error) {
	fi, err := o.stat(secretName)
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file: %w", secretName, ErrUnsafeDir)
		}
		if err := checkPrivate(secretName, fi, 0o077); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		if hasState {
			return nil, ErrSecretLost
		}
		return newSecret(o)
	default:
		return nil, fmt.Errorf("stat secret: %w", err)
	}
	return readSecret(o)
}

func readSecret(fsys fileSystem) ([]byte, error) {
	b, err := fsys.ReadFile(secretName)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if len(b) != secretLen {
		return nil, fmt.Errorf("secret is %d bytes, want %d: %w", len(b), secretLen, ErrCorrupt)
	}
	return b, nil
}

func newSecret(fsys fileSystem) ([]byte, error) {
	s := make([]byte, secretLen)
	rand.Read(s)
	if err := writeDurably(fsys, secretName, s); err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	return s, nil
}
