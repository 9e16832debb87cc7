package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf/link"
)

// Removed is what Remove took away.
type Removed struct {
	Dir   string        // the instance's pin directory, "" when there was none
	Links []RemovedLink // the links detached
	Pins  int           // pinned objects removed (maps and links)
}

// RemovedLink is one detached link.
type RemovedLink struct {
	Side    Side
	ID      link.ID
	Ifindex int // in the namespace of the interface (0: the interface was already gone)
}

// Remove detaches and unpins the card of an instance that no process holds: the card a daemon left
// in guard state, or one killed with SIGKILL left behind. It needs nothing but the instance's pin
// directory (PinRoot/instance; pinRoot "" means DefaultPinRoot): links pinned there are detached
// whatever network namespace their interfaces are in. It refuses (ErrInstanceBusy) while another
// process holds the instance, and (ErrUnsafePinDir) a directory someone else could have changed.
// With nothing pinned it returns an empty Removed (Dir "") and no error.
func Remove(pinRoot, instance string) (Removed, error) {
	cfg := Config{Instance: instance, PinRoot: pinRoot}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return Removed{}, err
	}
	if instance == "" {
		return Removed{}, fmt.Errorf("%w: no instance", ErrInvalid)
	}
	dir := filepath.Join(cfg.PinRoot, instance)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return Removed{}, nil
	}
	if err := checkBPFFS(cfg.PinRoot); err != nil {
		return Removed{}, err
	}
	lock, err := lockPinDir(dir)
	if err != nil {
		return Removed{}, err
	}
	defer lock.Close()
	r := Removed{Dir: dir}
	var errs []error
	for _, s := range []Side{SideProtected, SideWire} {
		path := filepath.Join(dir, linkPinName(s))
		if _, err := os.Lstat(path); err != nil {
			continue
		}
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("open pinned %s link: %w", s, err))
			continue
		}
		rl := RemovedLink{Side: s}
		if info, err := l.Info(); err == nil {
			rl.ID = info.ID
			if x := info.XDP(); x != nil {
				rl.Ifindex = int(x.Ifindex)
			}
		}
		// Unpinned and closed, the link has no holder left: the kernel detaches the program.
		if err := errors.Join(l.Unpin(), l.Close()); err != nil {
			errs = append(errs, fmt.Errorf("detach %s link: %w", s, err))
			continue
		}
		r.Links = append(r.Links, rl)
		r.Pins++
	}
	if len(errs) > 0 {
		return r, errors.Join(errs...)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return r, fmt.Errorf("read pin directory: %w", err)
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("unpin %s: %w", e.Name(), err))
			continue
		}
		r.Pins++
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove pin directory: %w", err))
	}
	return r, errors.Join(errs...)
}
