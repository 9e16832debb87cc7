package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafeFile is wrapped by LoadChecked's refusals: someone other than the daemon's user (and
// root) could read the file's keys or change what the gateway does.
var ErrUnsafeFile = errors.New("unsafe configuration file")

// LoadChecked is Load for a daemon (xdpsec run, and its reloads), with the checks ssh makes of a
// private key. The file must be a regular file owned by root or the daemon's user: a file someone
// else owns lets them decide the gateway's policies, its keys and the paths it creates as root (the
// API socket). Group and others must not be able to write it, nor any directory above it unless
// the directory is sticky (/tmp), since whoever can write a directory can put another file in its
// place. A file that holds keys must not be readable by group or others either; one without keys
// may be. Every refusal names the file, what is wrong and the command that fixes it.
//
// The offline tools (xdpsec pcap), whose test vectors ship world-readable, use Load.
func LoadChecked(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	// The checks look at the file that was opened, not at whatever the name points to later.
	if err := checkFile(path, st); err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	if err := checkParents(path); err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	c, err := read(path, f)
	if err != nil {
		return nil, err
	}
	if err := c.checkKeysPrivate(path, st); err != nil {
		c.Wipe()
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// checkKeysPrivate refuses a file with keys that group or others can read.
func (c *Config) checkKeysPrivate(path string, st fs.FileInfo) error {
	if perm := st.Mode().Perm(); perm&0o044 != 0 && c.hasKeys() {
		return fmt.Errorf("%w: mode %04o lets %s read its keys: run chmod 600 %s",
			ErrUnsafeFile, perm, who(perm, 0o040, 0o004), path)
	}
	return nil
}

// checkFile refuses what is not a regular file, an owner other than root or this user, and write
// permission for group or others.
func checkFile(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: not a regular file (%v)", ErrUnsafeFile, st.Mode().Type())
	}
	if uid := ownerOf(st); uid != 0 && uid != os.Geteuid() {
		me := "root"
		if os.Geteuid() != 0 {
			me = fmt.Sprint(os.Geteuid())
		}
		return fmt.Errorf("%w: it belongs to uid %d, and whoever owns it decides this gateway's policies and keys: "+
			"run chown %s %s", ErrUnsafeFile, uid, me, path)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: mode %04o lets %s change it: run chmod go-w %s", ErrUnsafeFile, perm, who(perm, 0o020, 0o002), path)
	}
	return nil
}

// checkParents applies the owner and write rules to every directory above the file (symbolic links
// resolved), sticky directories excepted from the write rule.
func checkParents(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if uid := ownerOf(st); uid != 0 && uid != os.Geteuid() {
			return fmt.Errorf("%w: its directory %s belongs to uid %d, who could replace the file: "+
				"move the file to a directory of root's (/etc/xdpsec)", ErrUnsafeFile, dir, uid)
		}
		if perm := st.Mode().Perm(); perm&0o022 != 0 && st.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("%w: its directory %s has mode %04o, so %s could replace the file: run chmod go-w %s",
				ErrUnsafeFile, dir, perm, who(perm, 0o020, 0o002), dir)
		}
		if dir == "/" {
			return nil
		}
	}
}

// who names the classes whose bit is set in perm.
func who(perm, group, other fs.FileMode) string {
	switch {
	case perm&group != 0 && perm&other != 0:
		return "group and others"
	case perm&group != 0:
		return "its group"
	}
	return "others"
}

func ownerOf(st fs.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid)
	}
	return -1
}

// hasKeys reports whether any SA carries key bytes.
func (c *Config) hasKeys() bool {
	for i := range c.SAs {
		for _, k := range c.SAs[i].Keys() {
			if k.Len() > 0 {
				return true
			}
		}
	}
	return false
}

// read reads and parses an open configuration file.
func read(path string, f io.Reader) (*Config, error) {
	var c *Config
	var perr error
	if err := readText(f, func(data []byte) { c, perr = Parse(path, data) }); err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, perr
}

// readText reads an open configuration file, bounded by MaxFileSize, and hands its text to use;
// the text is wiped after (it holds the keys in hex; a Config holds its own copies).
func readText(f io.Reader, use func([]byte)) error {
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	defer clear(data)
	if err != nil {
		return err
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxFileSize)
	}
	use(data)
	return nil
}
