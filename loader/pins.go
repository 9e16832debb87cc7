package loader

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPinDir makes sure PinRoot is on a bpffs, creates the instance directory and locks it, so that two
// processes never drive one instance.
func (c *Card) openPinDir() error {
	var st unix.Statfs_t
	root := c.cfg.PinRoot
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
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	f, err := os.Open(c.dir)
	if err != nil {
		return fmt.Errorf("open pin directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("lock pin directory %s: instance in use by another process: %w", c.dir, err)
	}
	c.lock = f
	return nil
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
