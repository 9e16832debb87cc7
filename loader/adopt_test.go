package loader

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/xdpsec/xdpsec/ipsec"
)

// attachedProgram is the id of the XDP program attached to the runner's interface name (0: none).
func attachedProgram(t *testing.T, r *nsRunner, name string) uint32 {
	t.Helper()
	var (
		id  uint32
		err error
	)
	r.do(func() {
		var l netlink.Link
		if l, err = netlink.LinkByName(name); err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
			id = l.Attrs().Xdp.ProgId
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func programID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return uint32(id)
}

// TestAdoptAndRemove: a card left attached and pinned in guard state is adopted by the next Load of
// its instance — same links (their ids), the new programs swapped in, its tables and the guard kept —
// while Remove refuses to touch it; once released, Remove detaches both sides and unpins everything,
// and a second Remove finds nothing.
func TestAdoptAndRemove(t *testing.T) {
	a, b := vethPair(t)
	cfg := Config{Instance: "xs-ld-" + randHex(4), Policies: 64, SAs: 64, FlowCache: 256, Guard: true, Logger: quiet}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.PinDir()
	t.Cleanup(func() { c.Close(); _, _ = Remove("", cfg.Instance); os.RemoveAll(dir) })
	if c.Adopted() {
		t.Error("a fresh instance reported as adopted")
	}
	a.do(func() { _, err = c.Attach(SideWire, "xs-va", XDPAuto) })
	if err != nil {
		t.Fatal(err)
	}
	b.do(func() { _, err = c.Attach(SideProtected, "xs-vb", XDPAuto) })
	if err != nil {
		t.Fatal(err)
	}
	ids := map[Side]uint64{}
	for _, s := range []Side{SideProtected, SideWire} {
		id, err := c.LinkID(s)
		if err != nil || id == 0 {
			t.Fatalf("%s link id %d, %v", s, id, err)
		}
		ids[s] = uint64(id)
	}
	sa := SA{Dir: ipsec.DirIn, SPI: 0x4242, Src: ip("198.18.10.2"), Dst: ip("198.18.10.1"), Mode: ipsec.ModeTunnel, PolicyID: 1}
	if err := c.PutSA(3, sa); err != nil {
		t.Fatal(err)
	}
	if err := c.PutPolicies(ipsec.Policy{ID: 1, Dir: ipsec.DirIn, Priority: 5, Selector: anySel("198.18.20.0/24", "198.18.10.0/24"),
		Action: ipsec.ActionProtect, SA: 3}); err != nil {
		t.Fatal(err)
	}
	old := map[Side]uint32{SideWire: programID(t, c.objs.XdpsecIn), SideProtected: programID(t, c.objs.XdpsecOut)}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if attachedProgram(t, a, "xs-va") != old[SideWire] || attachedProgram(t, b, "xs-vb") != old[SideProtected] {
		t.Fatal("Close detached a pinned card")
	}

	c, err = Load(cfg)
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	if !c.Adopted() {
		t.Error("Load over the instance's pins did not report adopting them")
	}
	for _, s := range []Side{SideProtected, SideWire} {
		if id, err := c.LinkID(s); err != nil || uint64(id) != ids[s] {
			t.Errorf("%s link after adoption: id %d, %v; want the same link %d", s, id, err, ids[s])
		}
	}
	newIn, newOut := programID(t, c.objs.XdpsecIn), programID(t, c.objs.XdpsecOut)
	if newIn == old[SideWire] || attachedProgram(t, a, "xs-va") != newIn || attachedProgram(t, b, "xs-vb") != newOut {
		t.Errorf("attached programs %d, %d after adoption; want the new ones %d, %d (the old %v)",
			attachedProgram(t, a, "xs-va"), attachedProgram(t, b, "xs-vb"), newIn, newOut, old)
	}
	var mode AttachMode
	a.do(func() { mode, err = c.Attach(SideWire, "xs-va", XDPAuto) })
	if err != nil || mode != AttachNative {
		t.Errorf("attach of an adopted side: %s, %v", mode, err)
	}
	if g, err := c.Guarded(); err != nil || !g {
		t.Errorf("adopted card guarded: %v, %v", g, err)
	}
	if got, err := c.GetSA(3); err != nil || got != sa {
		t.Errorf("adopted SA %+v, %v; want %+v", got, err, sa)
	}
	if n := len(c.Policies()); n != 1 {
		t.Errorf("adopted card holds %d policies, want 1", n)
	}

	if _, err := Remove("", cfg.Instance); !errors.Is(err, ErrInstanceBusy) {
		t.Errorf("Remove of a held instance: %v; want ErrInstanceBusy", err)
	}
	if attachedProgram(t, a, "xs-va") == 0 {
		t.Fatal("a refused Remove detached the card")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Remove("", cfg.Instance)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir != dir || len(r.Links) != 2 || r.Pins < 2+len(c.mapsByName()) {
		t.Errorf("Remove: %+v; want both links and every map of %s", r, dir)
	}
	for _, l := range r.Links {
		if uint64(l.ID) != ids[l.Side] || l.Ifindex == 0 {
			t.Errorf("removed link %+v; want id %d and its interface", l, ids[l.Side])
		}
	}
	if attachedProgram(t, a, "xs-va") != 0 || attachedProgram(t, b, "xs-vb") != 0 {
		t.Error("Remove left an XDP program attached")
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove left %s", dir)
	}
	if r, err := Remove("", cfg.Instance); err != nil || r.Dir != "" || r.Pins != 0 {
		t.Errorf("second Remove: %+v, %v; want nothing to remove", r, err)
	}
}

// TestAdoptDefunctLink: a link whose interface was deleted while no process held the card (a
// throwaway namespace torn down) is dropped on adoption, and the side is attached afresh.
func TestAdoptDefunctLink(t *testing.T) {
	a, _ := vethPair(t)
	cfg := Config{Instance: "xs-ld-" + randHex(4), Policies: 64, SAs: 64, FlowCache: 256, Logger: quiet}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.PinDir()
	t.Cleanup(func() { c.Close(); os.RemoveAll(dir) })
	a.do(func() { _, err = c.Attach(SideWire, "xs-va", XDPAuto) })
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	a.do(func() {
		err = netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "xs-vc"}, PeerName: "xs-vd"})
		if err == nil {
			var l netlink.Link
			if l, err = netlink.LinkByName("xs-va"); err == nil {
				err = netlink.LinkDel(l)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err = Load(cfg)
	if err != nil {
		t.Fatalf("adopt with a defunct link: %v", err)
	}
	if id, _ := c.LinkID(SideWire); id != 0 {
		t.Errorf("the defunct link (id %d) was taken over", id)
	}
	if _, err := os.Lstat(filepath.Join(dir, linkPinName(SideWire))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the defunct link's pin is still there: %v", err)
	}
	a.do(func() { _, err = c.Attach(SideWire, "xs-vc", XDPAuto) })
	if err != nil {
		t.Errorf("attach afresh: %v", err)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
}

// TestPinDirOwnership: the loader refuses pins someone else could have put there or can change — an
// instance directory or pin root of another user, one that group or others can write, a parent
// writable by others without the sticky bit — and accepts a sticky, world-writable parent (bpffs is
// often mounted 1777, as here).
func TestPinDirOwnership(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(root, inst string) error
		ok    bool
	}{
		{"private root and instance", func(root, inst string) error { return nil }, true},
		{"sticky world-writable root", func(root, inst string) error { return os.Chmod(root, 0o777|os.ModeSticky) }, true},
		{"root writable by others", func(root, inst string) error { return os.Chmod(root, 0o777) }, false},
		{"root of another user", func(root, inst string) error { return os.Chown(root, 4242, 4242) }, false},
		{"instance of another user", func(root, inst string) error { return os.Chown(inst, 4242, 4242) }, false},
		{"instance writable by its group", func(root, inst string) error { return os.Chmod(inst, 0o770) }, false},
		{"instance is a symlink", func(root, inst string) error {
			if err := os.Remove(inst); err != nil {
				return err
			}
			if err := os.Mkdir(inst+"-real", 0o700); err != nil {
				return err
			}
			return os.Symlink(inst+"-real", inst)
		}, false},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			root := "/sys/fs/bpf/xs-pins-" + randHex(4)
			name := "xs-ld-" + randHex(4)
			inst := filepath.Join(root, name)
			if err := os.MkdirAll(inst, 0o700); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(root) })
			if err := tc.setup(root, inst); err != nil {
				t.Fatal(err)
			}
			c, err := Load(Config{Instance: name, PinRoot: root, Policies: 64, SAs: 64, FlowCache: 256, Logger: quiet})
			if err == nil {
				defer c.Destroy()
			}
			_, rerr := Remove(root, name)
			if c != nil {
				rerr = nil // Remove is refused while the card is held (checked elsewhere)
			}
			switch {
			case tc.ok && err != nil:
				t.Errorf("Load: %v", err)
			case !tc.ok && !errors.Is(err, ErrUnsafePinDir):
				t.Errorf("Load: %v; want ErrUnsafePinDir", err)
			case !tc.ok && !errors.Is(rerr, ErrUnsafePinDir):
				t.Errorf("Remove: %v; want ErrUnsafePinDir", rerr)
			}
			if !tc.ok {
				t.Logf("refused: %v", err)
			}
		})
	}
}

func TestLocalAddrs(t *testing.T) {
	c := newTestCard(t, Config{})
	set := func(addrs ...string) {
		t.Helper()
		var in []netip.Addr
		for _, a := range addrs {
			in = append(in, ip(a))
		}
		if err := c.SetLocalAddrs(in); err != nil {
			t.Fatal(err)
		}
		got, err := c.LocalAddrs()
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(in, netip.Addr.Compare)
		in = slices.Compact(in)
		if !slices.Equal(got, in) {
			t.Errorf("local addresses %v, want %v", got, in)
		}
	}
	set("198.18.0.1", "2001:2::1", "198.18.1.1", "198.18.0.1")
	set("198.18.1.1", "2001:2::9")
	set()
	many := make([]netip.Addr, LocalAddrCapacity+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
	}
	if err := c.SetLocalAddrs(many); !errors.Is(err, ErrCapacity) {
		t.Errorf("%d local addresses: %v; want ErrCapacity", len(many), err)
	}
}
