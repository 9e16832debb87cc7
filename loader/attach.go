package loader

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Side names an interface of the gateway and the program attached to it.
type Side uint8

const (
	// SideProtected is the protected (LAN) side: xdpsec_out, outbound classification.
	SideProtected Side = 0
	// SideWire is the wire (WAN) side: xdpsec_in, inbound SA lookup and plaintext policy check.
	SideWire Side = 1
)

func (s Side) String() string {
	switch s {
	case SideProtected:
		return "protected"
	case SideWire:
		return "wire"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// XDPMode is the attach mode asked for.
type XDPMode uint8

const (
	XDPAuto    XDPMode = iota // native, falling back to generic when the driver refuses native
	XDPNative                 // native (driver) mode only
	XDPGeneric                // generic (skb) mode only
)

// AttachMode is the mode obtained.
type AttachMode string

const (
	AttachNone    AttachMode = ""
	AttachNative  AttachMode = "native"
	AttachGeneric AttachMode = "generic"
)

func linkPinName(s Side) string {
	if s == SideProtected {
		return "link_protected"
	}
	return "link_wire"
}

func (c *Card) program(s Side) *ebpf.Program {
	if s == SideProtected {
		return c.objs.XdpsecOut
	}
	return c.objs.XdpsecIn
}

// Attach attaches the side's program to the interface ifname (in the calling thread's network
// namespace) with a bpf_link, pins the link when the card is pinned, and reports the mode obtained. If
// the side's pinned link from an earlier run was taken over by Load and is on the same interface, it
// already runs the new program and Attach just reports its mode.
func (c *Card) Attach(s Side, ifname string, mode XDPMode) (AttachMode, error) {
	if s > SideWire {
		return AttachNone, fmt.Errorf("%w: side %d", ErrInvalid, s)
	}
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return AttachNone, fmt.Errorf("attach %s side to %s: %w", s, ifname, ErrNoInterface)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return AttachNone, ErrClosed
	}
	if l := c.links[s]; l != nil {
		idx, err := linkIfindex(l)
		if err != nil {
			return AttachNone, err
		}
		if idx != ifc.Index {
			return AttachNone, fmt.Errorf("attach %s side to %s: %w: the card adopted from an earlier run has its %s side on ifindex %d (%s)",
				s, ifname, ErrXDPBusy, s, idx, downHint(c.cfg.Instance))
		}
		return c.modes[s], nil
	}
	if err := checkFreeXDP(ifc); err != nil {
		return AttachNone, err
	}
	prog := c.program(s)
	var l link.Link
	got := AttachNative
	if mode != XDPGeneric {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		if err != nil && mode == XDPAuto && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBUSY) {
			c.log.Info("native XDP refused, trying generic", "side", s.String(), "iface", ifname, "err", err)
			l, err = nil, nil
		}
	}
	if l == nil && err == nil {
		got = AttachGeneric
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPGenericMode})
	}
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return AttachNone, fmt.Errorf("attach %s side to %s: %w", s, ifname, ErrNotRoot)
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return AttachNone, fmt.Errorf("attach %s side to %s: %w: %v", s, ifname, ErrXDPBusy, err)
		}
		return AttachNone, fmt.Errorf("attach %s side to %s: %w", s, ifname, err)
	}
	if c.dir != "" {
		if err := l.Pin(filepath.Join(c.dir, linkPinName(s))); err != nil {
			l.Close()
			return AttachNone, fmt.Errorf("pin %s link: %w", s, err)
		}
	}
	c.links[s] = l
	c.modes[s] = got
	c.log.Info("card attached", "side", s.String(), "iface", ifname, "mode", string(got))
	return got, nil
}

// Mode reports how the side is attached (AttachNone when it is not).
func (c *Card) Mode(s Side) AttachMode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.modes[s&1]
}

// Detach detaches the side's program and removes its link pin.
func (c *Card) Detach(s Side) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.links[s&1]
	if l == nil {
		return nil
	}
	c.links[s&1] = nil
	c.modes[s&1] = AttachNone
	var errs []error
	if c.dir != "" {
		errs = append(errs, l.Unpin())
	}
	errs = append(errs, l.Close())
	return errors.Join(errs...)
}

// checkFreeXDP fails with ErrXDPBusy naming the program when the interface already has one.
func checkFreeXDP(ifc *net.Interface) error {
	nl, err := netlink.LinkByIndex(ifc.Index)
	if err != nil {
		return nil // the attach itself will report what is wrong
	}
	x := nl.Attrs().Xdp
	if x == nil || !x.Attached || x.ProgId == 0 {
		return nil
	}
	name := "?"
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId)); err == nil {
		if info, err := p.Info(); err == nil {
			name = info.Name
		}
		p.Close()
	}
	return fmt.Errorf("attach to %s: %w: program %q (id %d); detach it first (ip link set dev %s xdp off, or remove its pinned link)",
		ifc.Name, ErrXDPBusy, name, x.ProgId, ifc.Name)
}

func linkIfindex(l link.Link) (int, error) {
	info, err := l.Info()
	if err != nil {
		return 0, fmt.Errorf("read link info: %w", err)
	}
	x := info.XDP()
	if x == nil {
		return 0, fmt.Errorf("pinned link is not an XDP link")
	}
	return int(x.Ifindex), nil
}

// LinkID returns the kernel's id of the side's link (for logs and tests: an adopted link keeps its
// id across restarts), or 0 when the side is not attached.
func (c *Card) LinkID(s Side) (link.ID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.links[s&1]
	if l == nil {
		return 0, nil
	}
	info, err := l.Info()
	if err != nil {
		return 0, fmt.Errorf("read %s link info: %w", s, err)
	}
	return info.ID, nil
}

// adoptLinks takes over links pinned by an earlier run: the new programs replace the old ones
// atomically (BPF_LINK_UPDATE), so the interfaces never run without the card. A link whose
// interface is gone (deleted, or its namespace with it) is defunct: its pin is removed and Attach
// makes a new link.
func (c *Card) adoptLinks() error {
	for _, s := range []Side{SideProtected, SideWire} {
		path := filepath.Join(c.dir, linkPinName(s))
		if _, err := os.Lstat(path); err != nil {
			continue
		}
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			return fmt.Errorf("%w: open pinned %s link: %v (%s)", ErrIncompatiblePin, s, err, downHint(c.cfg.Instance))
		}
		idx, err := linkIfindex(l)
		if err != nil {
			l.Close()
			return fmt.Errorf("%w: pinned %s link: %v (%s)", ErrIncompatiblePin, s, err, downHint(c.cfg.Instance))
		}
		if idx == 0 {
			c.log.Info("pinned link's interface is gone: removing the link", "side", s.String())
			if err := errors.Join(l.Unpin(), l.Close()); err != nil {
				return fmt.Errorf("remove defunct %s link: %w", s, err)
			}
			continue
		}
		if err := l.Update(c.program(s)); err != nil {
			l.Close()
			return fmt.Errorf("%w: update pinned %s link: %v (%s)", ErrIncompatiblePin, s, err, downHint(c.cfg.Instance))
		}
		c.links[s] = l
		c.modes[s] = AttachNative
		if idx, err := linkIfindex(l); err == nil {
			if nl, err := netlink.LinkByIndex(idx); err == nil && nl.Attrs().Xdp != nil &&
				nl.Attrs().Xdp.AttachMode == 2 /* XDP_ATTACHED_SKB */ {
				c.modes[s] = AttachGeneric
			}
		}
		c.log.Info("card took over pinned link", "side", s.String(), "mode", string(c.modes[s]))
	}
	return nil
}
