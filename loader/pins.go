package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// openPinDir makes sure PinRoot is on a bpffs, creates the instance directory, checks that nobody
// else can change it (checkPinDir), and locks it, so that two processes never drive one instance.
func (c *Card) openPinDir() error {
	if err := checkBPFFS(c.cfg.PinRoot); err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	f, err := lockPinDir(c.dir)
	if err != nil {
		return err
	}
	c.lock = f
	return nil
}

// checkBPFFS fails with ErrNotBPFFS unless root (or its closest existing parent) is on a bpffs.
func checkBPFFS(root string) error {
	var st unix.Statfs_t
	probe := root
	for {
		if err := unix.Statfs(probe, &st); err == nil {
			break
		} else if !errors.Is(err, unix.ENOENT) || probe == "/" {
			return fmt.Errorf("stat %s: %w", probe, err)
		}
		probe = parentDir(probe)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin under %s: %w (mount it: mount -t bpf bpf /sys/fs/bpf)", probe, ErrNotBPFFS)
	}
	return nil
}

// lockPinDir opens the instance directory dir, checks it and its parents (checkPinDir) and takes an
// exclusive, non-blocking flock on it: ErrInstanceBusy when another process holds it. The lock dies
// with the process (also on kill -9).
func lockPinDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			// Whoever made the link chose where the card's tables are.
			return nil, fmt.Errorf("pin directory %s is a symbolic link: %w", dir, ErrUnsafePinDir)
		}
		return nil, fmt.Errorf("open pin directory: %w", err)
	}
	// The checks look at the directory this descriptor holds, so a rename between them and the
	// lock cannot slip another directory in.
	fi, err := f.Stat()
	if err == nil {
		err = checkPinDir(dir, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock pin directory %s: %w", dir, ErrInstanceBusy)
		}
		return nil, fmt.Errorf("lock pin directory %s: %w", dir, err)
	}
	return f, nil
}

// checkPinDir refuses an instance directory (fi, at dir) that another user owns or that group or
// others can write, and a parent directory that another user than root owns or that group or
// others can write without the sticky bit: whoever can change the directory can put their own
// maps and links in place of the card's (bpffs is often mounted mode 1777, like /tmp), and the
// daemon would then steer traffic by tables someone else wrote.
func checkPinDir(dir string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("pin directory %s is not a directory: %w", dir, ErrUnsafePinDir)
	}
	if uid := fileOwner(fi); uid != os.Geteuid() {
		return fmt.Errorf("pin directory %s belongs to uid %d, not to this process's uid %d (remove it, or chown it): %w",
			dir, uid, os.Geteuid(), ErrUnsafePinDir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("pin directory %s has mode %v: group or others can write it (chmod go-w %s): %w",
			dir, fi.Mode().Perm(), dir, ErrUnsafePinDir)
	}
	for p := filepath.Dir(filepath.Clean(dir)); ; p = filepath.Dir(p) {
		pi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if uid := fileOwner(pi); uid != 0 && uid != os.Geteuid() {
			return fmt.Errorf("%s, above pin directory %s, belongs to uid %d: %w", p, dir, uid, ErrUnsafePinDir)
		}
		if pi.Mode().Perm()&0o022 != 0 && pi.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("%s, above pin directory %s, has mode %v: group or others can write it without the sticky bit: %w",
				p, dir, pi.Mode().Perm(), ErrUnsafePinDir)
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

func fileOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

func (c *Card) unlock() {
	if c.lock != nil {
		c.lock.Close() // releases the flock
		c.lock = nil
	}
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
