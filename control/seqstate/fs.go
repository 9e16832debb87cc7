package seqstate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// fileSystem is the few operations the store performs in its directory. It
// is a seam: tests put a file system behind it that fails at a chosen step
// (disk full, EIO) or loses everything not yet made durable (a crash), to
// check the write protocol rather than hope for timing.
type fileSystem interface {
	// Create creates or truncates name for writing, mode 0600.
	Create(name string) (file, error)
	ReadFile(name string) ([]byte, error)
	// ReadDir lists the names in the directory.
	ReadDir() ([]string, error)
	Rename(from, to string) error
	Remove(name string) error
	// SyncDir makes renames, creations and removals in the directory
	// durable (fsync of the directory).
	SyncDir() error
}

type file interface {
	io.Writer
	Sync() error
	Close() error
}

// writeDurably replaces name with data so that after a crash at any step the
// directory holds either the old or the new content, never a mix, and the
// new one only once this returns nil: write a temporary file, fsync it,
// rename it over name, fsync the directory.
func writeDurably(fsys fileSystem, name string, data []byte) error {
	return writeAll(fsys, []named{{name, data}})
}

type named struct {
	name string
	data []byte
}

// writeAll replaces several files with one directory fsync: each is
// written and fsynced under a temporary name, then all are renamed, then the
// directory is fsynced once. A crash in between leaves each file old or new.
// (Writing the files from several goroutines at once measured no faster
// here: BENCHMARKS.md.)
func writeAll(fsys fileSystem, files []named) (err error) {
	var tmps []string
	defer func() {
		if err != nil {
			for _, t := range tmps {
				_ = fsys.Remove(t) // best effort; Open removes leftovers too
			}
		}
	}()
	for _, f := range files {
		tmp := f.name + tmpSuffix
		tmps = append(tmps, tmp)
		if err := writeFile(fsys, tmp, f.data); err != nil {
			return err
		}
	}
	for i, f := range files {
		if err := fsys.Rename(tmps[i], f.name); err != nil {
			return fmt.Errorf("rename %s: %w", tmps[i], err)
		}
	}
	tmps = nil // renamed: nothing to clean up
	if err := fsys.SyncDir(); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}

func writeFile(fsys fileSystem, name string, data []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}

const tmpSuffix = ".tmp"

// osFS is the real directory, opened as an os.Root so that no name can
// leave it (no "..", no symlink out).
type osFS struct {
	root *os.Root
}

func openOSFS(dir string) (*osFS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	return &osFS{root: r}, nil
}

func (o *osFS) Create(name string) (file, error) {
	return o.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
}

func (o *osFS) ReadFile(name string) ([]byte, error) { return o.root.ReadFile(name) }

func (o *osFS) ReadDir() ([]string, error) {
	d, err := o.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

func (o *osFS) Rename(from, to string) error { return o.root.Rename(from, to) }
func (o *osFS) Remove(name string) error     { return o.root.Remove(name) }

func (o *osFS) SyncDir() error {
	d, err := o.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (o *osFS) Close() error { return o.root.Close() }

// stat returns name's mode and owner inside the directory.
func (o *osFS) stat(name string) (fs.FileInfo, error) { return o.root.Lstat(name) }

// shardName is the file of shard i.
func shardName(i int) string { return fmt.Sprintf("seq-%02x.state", i) }

// isShardName reports whether name is a shard file and which.
func isShardName(name string) (int, bool) {
	hexPart, ok := strings.CutPrefix(name, "seq-")
	if !ok {
		return 0, false
	}
	hexPart, ok = strings.CutSuffix(hexPart, ".state")
	if !ok || len(hexPart) != 2 {
		return 0, false
	}
	v, err := parseHex(hexPart, 2)
	if err != nil || v >= numShards {
		return 0, false
	}
	return int(v), true
}

var errNotAbs = errors.New("state directory must be an absolute path")

func cleanDir(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%q: %w", dir, errNotAbs)
	}
	return filepath.Clean(dir), nil
}
