package seqstate

import (
	"errors"
	"io/fs"
	"maps"
	"slices"
	"sync"
	"syscall"
)

// memFS is a directory that keeps what POSIX promises after a crash and
// nothing more: a file's bytes survive only up to its last fsync, and a
// name (creation, rename, removal) only up to the directory's last fsync.
// crash() throws everything else away, as a power cut would. fail, when
// set, is asked before every operation and may inject an error (ENOSPC,
// EIO); the operation then does nothing.
type memFS struct {
	mu      sync.Mutex
	names   map[string]*inode // the directory as processes see it
	durable map[string]*inode // the directory as the disk has it
	fail    func(op, name string) error
	ops     []string // "op name" of every operation, for tests that count steps
}

type inode struct {
	data    []byte // as processes see it
	durable []byte // as the disk has it
}

func newMemFS() *memFS {
	return &memFS{names: map[string]*inode{}, durable: map[string]*inode{}}
}

func (m *memFS) check(op, name string) error {
	m.ops = append(m.ops, op+" "+name)
	if m.fail != nil {
		return m.fail(op, name)
	}
	return nil
}

// setFail sets fail under the lock (for tests where a Run goroutine writes).
func (m *memFS) setFail(f func(op, name string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

// crash loses what was not made durable.
func (m *memFS) crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names = maps.Clone(m.durable)
	for _, ino := range m.names {
		ino.data = slices.Clone(ino.durable)
	}
}

func (m *memFS) Create(name string) (file, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("create", name); err != nil {
		return nil, err
	}
	ino := m.names[name]
	if ino == nil {
		ino = &inode{}
		m.names[name] = ino
	}
	ino.data = nil
	return &memFile{m: m, ino: ino, name: name}, nil
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("read", name); err != nil {
		return nil, err
	}
	ino := m.names[name]
	if ino == nil {
		return nil, fs.ErrNotExist
	}
	return slices.Clone(ino.data), nil
}

func (m *memFS) ReadDir() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("readdir", ""); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(m.names)), nil
}

func (m *memFS) Rename(from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("rename", from); err != nil {
		return err
	}
	ino := m.names[from]
	if ino == nil {
		return fs.ErrNotExist
	}
	m.names[to] = ino
	delete(m.names, from)
	return nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("remove", name); err != nil {
		return err
	}
	if m.names[name] == nil {
		return fs.ErrNotExist
	}
	delete(m.names, name)
	return nil
}

func (m *memFS) SyncDir() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("syncdir", ""); err != nil {
		return err
	}
	m.durable = maps.Clone(m.names)
	return nil
}

// file returns the durable content of name (what a restart would read).
func (m *memFS) durableFile(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ino := m.durable[name]; ino != nil {
		return slices.Clone(ino.durable)
	}
	return nil
}

type memFile struct {
	m    *memFS
	ino  *inode
	name string
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.check("write", f.name); err != nil {
		return 0, err
	}
	f.ino.data = append(f.ino.data, p...)
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.check("sync", f.name); err != nil {
		return err
	}
	f.ino.durable = slices.Clone(f.ino.data)
	return nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.m.check("close", f.name)
}

var (
	errDiskFull = syscall.ENOSPC
	errIO       = syscall.EIO
)

// failWrites makes every operation that changes the disk fail with err.
func failWrites(err error) func(op, name string) error {
	return func(op, _ string) error {
		if op == "read" || op == "readdir" {
			return nil
		}
		return err
	}
}

var errInjected = errors.New("injected failure")
