package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Node names one namespace of the testbed.
type Node string

// The four nodes, in path order.
const (
	H1  Node = "h1"
	GW1 Node = "gw1"
	GW2 Node = "gw2"
	H2  Node = "h2"
)

// Nodes lists the nodes in path order.
var Nodes = []Node{H1, GW1, GW2, H2}

// Interface names inside the namespaces. They are fixed because every namespace is private to one
// testbed; the gateway names match the example configuration of the data path issue.
const (
	H1Eth  = "h1-eth0"
	GW1LAN = "gw1-lan"
	GW1WAN = "gw1-wan"
	GW2WAN = "gw2-wan"
	GW2LAN = "gw2-lan"
	H2Eth  = "h2-eth0"
)

// Addresses and prefixes of the topology (see the package documentation for the picture).
var (
	H1Addr4     = netip.MustParseAddr("198.18.1.10")
	GW1LANAddr4 = netip.MustParseAddr("198.18.1.1")
	GW1WANAddr4 = netip.MustParseAddr("198.18.0.1")
	GW2WANAddr4 = netip.MustParseAddr("198.18.0.2")
	GW2LANAddr4 = netip.MustParseAddr("198.18.2.1")
	H2Addr4     = netip.MustParseAddr("198.18.2.10")

	H1Addr6     = netip.MustParseAddr("2001:2:0:1::10")
	GW1LANAddr6 = netip.MustParseAddr("2001:2:0:1::1")
	GW1WANAddr6 = netip.MustParseAddr("2001:2::1")
	GW2WANAddr6 = netip.MustParseAddr("2001:2::2")
	GW2LANAddr6 = netip.MustParseAddr("2001:2:0:2::1")
	H2Addr6     = netip.MustParseAddr("2001:2:0:2::10")

	LAN1Prefix4 = netip.MustParsePrefix("198.18.1.0/24")
	WirePrefix4 = netip.MustParsePrefix("198.18.0.0/24")
	LAN2Prefix4 = netip.MustParsePrefix("198.18.2.0/24")
	LAN1Prefix6 = netip.MustParsePrefix("2001:2:0:1::/64")
	WirePrefix6 = netip.MustParsePrefix("2001:2::/64")
	LAN2Prefix6 = netip.MustParsePrefix("2001:2:0:2::/64")
)

// NamePrefix starts every namespace a testbed creates; the project's rule for shared machines.
const NamePrefix = "xs-"

// ErrNotRoot is returned by New when the process cannot create namespaces.
var ErrNotRoot = errors.New("testbed needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")

// Options configure New.
type Options struct {
	// Tag is a short word naming the user of the testbed ("e2e", "demo", "bench"); it goes into the
	// namespace names after "xs-". Default "tb".
	Tag string
	// MTU of every link. Default 1500.
	MTU int
	// Queues, when above 1, is the number of transmit and receive queues of every veth (the
	// gateways then run one worker per queue). Default: the kernel's (one queue in use).
	Queues int
	// Log receives one line per step at debug level. Default: discard.
	Log *slog.Logger
	// WireTap puts a fifth namespace, "sw", in the middle of the wire link: gw1-wan and gw2-wan
	// then connect to a bridge there (ports sw-gw1, sw-gw2) instead of to each other. Packets a
	// gateway transmits over AF_XDP skip the packet taps of its own interface, and the peer's XDP
	// program takes them before its taps: only a hop in between can capture or inject them.
	WireTap bool
}

// SW is the wire tap's namespace (Options.WireTap), and its ports towards the gateways.
const (
	SW    Node = "sw"
	SWGW1      = "sw-gw1"
	SWGW2      = "sw-gw2"
	SWBr       = "sw-br0"
)

// Testbed is a built topology. Its methods are safe for concurrent use.
type Testbed struct {
	// Prefix is the common start of the namespace names, "xs-<tag>-<random>".
	Prefix  string
	mtu     int
	queues  int
	log     *slog.Logger
	wireTap bool
	topo    Topology // what New built or Adopt took; never changes after either returns

	mu     sync.Mutex
	made   []string // namespaces created, for teardown
	state  string   // the gateways' state directories live under it (StateDir); removed by Close
	closed bool
	// nsIno maps the nsfs inode of every namespace ever created to its name, for Leftovers.
	nsIno map[uint64]string
	nsDev uint64 // the nsfs device
}

// New builds the topology: four namespaces, three veth pairs, addresses, routes and forwarding on
// the gateways. On any failure it removes everything it created before returning the error.
func New(ctx context.Context, opts Options) (*Testbed, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	tb, err := newTestbed(opts)
	if err != nil {
		return nil, err
	}
	tb.topo = defaultTopology(tb.Prefix)
	if err := tb.build(ctx); err != nil {
		if cerr := tb.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("build testbed %s: %w", tb.Prefix, err)
	}
	return tb, nil
}

// newTestbed is a Testbed with its prefix and options, before it has a topology.
func newTestbed(opts Options) (*Testbed, error) {
	if opts.Tag == "" {
		opts.Tag = "tb"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("read random suffix: %w", err)
	}
	return &Testbed{
		Prefix:  NamePrefix + opts.Tag + "-" + hex.EncodeToString(rnd[:]),
		mtu:     opts.MTU,
		queues:  opts.Queues,
		log:     opts.Log,
		wireTap: opts.WireTap,
	}, nil
}

// NetNS returns the name of node's namespace (as `ip netns` lists it).
func (tb *Testbed) NetNS(n Node) string {
	if name, ok := tb.topo.NetNS[n]; ok {
		return name
	}
	return tb.Prefix + "-" + string(n)
}

// Topology is the testbed's path: namespaces, interfaces and addresses. A copy: it never changes.
func (tb *Testbed) Topology() Topology {
	t := tb.topo
	t.NetNS = maps.Clone(t.NetNS)
	return t
}

// NsHandle opens node's namespace; the caller closes the handle.
func (tb *Testbed) NsHandle(n Node) (netns.NsHandle, error) {
	h, err := netns.GetFromName(tb.NetNS(n))
	if err != nil {
		return netns.None(), fmt.Errorf("open namespace %s: %w", tb.NetNS(n), err)
	}
	return h, nil
}

func (tb *Testbed) nodes() []Node {
	if tb.wireTap {
		return append(slices.Clone(Nodes), SW)
	}
	return Nodes
}

func (tb *Testbed) build(ctx context.Context) error {
	for _, n := range tb.nodes() {
		name := tb.NetNS(n)
		if err := tb.run(ctx, "ip", "netns", "add", name); err != nil {
			return err
		}
		tb.mu.Lock()
		tb.made = append(tb.made, name)
		tb.mu.Unlock()
		var st unix.Stat_t
		if err := unix.Stat("/run/netns/"+name, &st); err != nil {
			return fmt.Errorf("stat namespace %s: %w", name, err)
		}
		tb.mu.Lock()
		if tb.nsIno == nil {
			tb.nsIno = map[uint64]string{}
		}
		tb.nsIno[st.Ino], tb.nsDev = name, st.Dev
		tb.mu.Unlock()
		// No duplicate address detection, link-local addresses included: a tentative
		// link-local address holds back neighbour solicitations (and with them the first
		// IPv6 packets) for about two seconds, and these links hold no one else.
		if _, err := tb.Run(ctx, n, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
			"net.ipv6.conf.default.accept_dad=0"); err != nil {
			return err
		}
	}
	mtu := fmt.Sprint(tb.mtu)
	// Each pair is created directly inside its two namespaces, so the fixed interface names never
	// meet on the host, where another testbed may be using them at the same time.
	pairs := []struct {
		a    Node
		aIf  string
		b    Node
		bIfn string
	}{
		{H1, H1Eth, GW1, GW1LAN},
		{GW1, GW1WAN, GW2, GW2WAN},
		{GW2, GW2LAN, H2, H2Eth},
	}
	if tb.wireTap {
		pairs[1] = struct {
			a    Node
			aIf  string
			b    Node
			bIfn string
		}{GW1, GW1WAN, SW, SWGW1}
		pairs = append(pairs, struct {
			a    Node
			aIf  string
			b    Node
			bIfn string
		}{GW2, GW2WAN, SW, SWGW2})
	}
	for _, p := range pairs {
		var q []string
		if tb.queues > 1 {
			q = []string{"numtxqueues", fmt.Sprint(tb.queues), "numrxqueues", fmt.Sprint(tb.queues)}
		}
		args := append([]string{"-n", tb.NetNS(p.a), "link", "add", p.aIf, "mtu", mtu}, q...)
		args = append(args, "type", "veth", "peer", "name", p.bIfn, "mtu", mtu)
		args = append(append(args, q...), "netns", tb.NetNS(p.b))
		if err := tb.run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	type addr struct {
		n   Node
		dev string
		a   netip.Addr
		p   netip.Prefix
	}
	addrs := []addr{
		{H1, H1Eth, H1Addr4, LAN1Prefix4}, {H1, H1Eth, H1Addr6, LAN1Prefix6},
		{GW1, GW1LAN, GW1LANAddr4, LAN1Prefix4}, {GW1, GW1LAN, GW1LANAddr6, LAN1Prefix6},
		{GW1, GW1WAN, GW1WANAddr4, WirePrefix4}, {GW1, GW1WAN, GW1WANAddr6, WirePrefix6},
		{GW2, GW2WAN, GW2WANAddr4, WirePrefix4}, {GW2, GW2WAN, GW2WANAddr6, WirePrefix6},
		{GW2, GW2LAN, GW2LANAddr4, LAN2Prefix4}, {GW2, GW2LAN, GW2LANAddr6, LAN2Prefix6},
		{H2, H2Eth, H2Addr4, LAN2Prefix4}, {H2, H2Eth, H2Addr6, LAN2Prefix6},
	}
	for _, a := range addrs {
		cidr := netip.PrefixFrom(a.a, a.p.Bits()).String()
		args := []string{"-n", tb.NetNS(a.n), "addr", "add", cidr, "dev", a.dev}
		if a.a.Is6() {
			// Duplicate address detection would keep the address tentative for a second or two
			// and make the first pings fail; these links hold no one else.
			args = append(args, "nodad")
		}
		if err := tb.run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	for _, n := range tb.nodes() {
		if err := tb.run(ctx, "ip", "-n", tb.NetNS(n), "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if tb.wireTap {
		sw := tb.NetNS(SW)
		for _, args := range [][]string{
			{"link", "add", SWBr, "mtu", mtu, "type", "bridge", "stp_state", "0"},
			{"link", "set", SWGW1, "master", SWBr, "up"},
			{"link", "set", SWGW2, "master", SWBr, "up"},
			{"link", "set", SWBr, "up"},
		} {
			if err := tb.run(ctx, "ip", append([]string{"-n", sw}, args...)...); err != nil {
				return err
			}
		}
	}
	for _, l := range []struct {
		n   Node
		dev string
	}{{H1, H1Eth}, {GW1, GW1LAN}, {GW1, GW1WAN}, {GW2, GW2WAN}, {GW2, GW2LAN}, {H2, H2Eth}} {
		if err := tb.run(ctx, "ip", "-n", tb.NetNS(l.n), "link", "set", l.dev, "up"); err != nil {
			return err
		}
	}
	routes := []struct {
		n    Node
		args []string
	}{
		{H1, []string{"route", "add", "default", "via", GW1LANAddr4.String()}},
		{H1, []string{"-6", "route", "add", "default", "via", GW1LANAddr6.String()}},
		{GW1, []string{"route", "add", LAN2Prefix4.String(), "via", GW2WANAddr4.String()}},
		{GW1, []string{"-6", "route", "add", LAN2Prefix6.String(), "via", GW2WANAddr6.String()}},
		{GW2, []string{"route", "add", LAN1Prefix4.String(), "via", GW1WANAddr4.String()}},
		{GW2, []string{"-6", "route", "add", LAN1Prefix6.String(), "via", GW1WANAddr6.String()}},
		{H2, []string{"route", "add", "default", "via", GW2LANAddr4.String()}},
		{H2, []string{"-6", "route", "add", "default", "via", GW2LANAddr6.String()}},
	}
	for _, r := range routes {
		if err := tb.run(ctx, "ip", append([]string{"-n", tb.NetNS(r.n)}, r.args...)...); err != nil {
			return err
		}
	}
	for _, gw := range []Node{GW1, GW2} {
		if _, err := tb.Run(ctx, gw, "sysctl", "-qw", "net.ipv4.ip_forward=1",
			"net.ipv6.conf.all.forwarding=1"); err != nil {
			return err
		}
	}
	return nil
}

// Command returns a command that runs name inside node's namespace (through `ip netns exec`).
// Note that `ip netns exec` gives the command a fresh /sys, without /sys/fs/bpf.
func (tb *Testbed) Command(ctx context.Context, n Node, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", tb.NetNS(n), name}, args...)...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Run runs name inside node's namespace and returns its combined output; the error carries the
// output too.
func (tb *Testbed) Run(ctx context.Context, n Node, name string, args ...string) (string, error) {
	out, err := tb.Command(ctx, n, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("run %s in %s: %w: %s", name+" "+strings.Join(args, " "),
			n, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Close removes the namespaces, and with them every link in them. It is idempotent and safe to
// call on a partly built testbed. An adopted testbed (Adopt) keeps its namespaces: Close removes
// only what the testbed created itself (the gateways' state directories).
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return nil
	}
	tb.closed = true
	var errs []error
	for i := len(tb.made) - 1; i >= 0; i-- {
		if err := removeNetNS(tb.made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	tb.made = nil
	if tb.state != "" {
		if err := os.RemoveAll(tb.state); err != nil {
			errs = append(errs, fmt.Errorf("remove state directories: %w", err))
		}
		tb.state = ""
	}
	return errors.Join(errs...)
}

// StateDir is the durable sequence state directory (the config's state_dir) of a gateway of this
// testbed: inside a private temporary directory that Close removes, so that tests never write
// under /var/lib and a gateway restarted in one testbed finds its state again.
func (tb *Testbed) StateDir(gw Node) (string, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return "", errors.New("testbed closed")
	}
	if tb.state == "" {
		d, err := os.MkdirTemp("", tb.Prefix+"-state-")
		if err != nil {
			return "", fmt.Errorf("create state directory: %w", err)
		}
		tb.state = d
	}
	return filepath.Join(tb.state, string(gw)), nil
}

// Leftovers lists what of the testbed still exists after Close, for tests that must show nothing
// stays behind: a namespace still named in /run/netns; one still held by a process inside it or
// by an open handle of this process (its links then live on although `ip netns del` succeeded);
// pins under /sys/fs/bpf/xdpsec/ of an instance named after the testbed (Instance). Empty means
// clean.
func (tb *Testbed) Leftovers() []string {
	tb.mu.Lock()
	inos, dev := maps.Clone(tb.nsIno), tb.nsDev
	tb.mu.Unlock()
	var left []string
	for _, name := range inos {
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			left = append(left, "namespace "+name)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range procs {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || st.Dev != dev || inos[st.Ino] == "" {
			continue
		}
		dir := filepath.Dir(filepath.Dir(p))
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		left = append(left, fmt.Sprintf("process %s (%s) in namespace %s", filepath.Base(dir),
			strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")), inos[st.Ino]))
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		// Stat follows the fd to the file it holds (readlink would show the path it was opened by).
		var st unix.Stat_t
		if unix.Stat("/proc/self/fd/"+fd.Name(), &st) == nil && st.Dev == dev && inos[st.Ino] != "" {
			left = append(left, fmt.Sprintf("open handle (fd %s) on namespace %s", fd.Name(), inos[st.Ino]))
		}
	}
	pins, _ := filepath.Glob("/sys/fs/bpf/xdpsec/" + tb.Prefix + "-*")
	for _, p := range pins {
		left = append(left, "pins "+p)
	}
	slices.Sort(left)
	return left
}

// Sweep removes every namespace whose name starts with prefix, and the pin directories of the
// instances named after them (SweepReport without the report).
func Sweep(prefix string) error {
	_, err := SweepReport(prefix)
	return err
}

// SweepReport removes every namespace whose name starts with prefix, and the pin directories of
// the instances named after them (/sys/fs/bpf/xdpsec/<prefix>…, see Instance), and returns what
// it removed. prefix must start with "xs-" and a tag ("xs-demo-"), or be a testbed's Prefix. It is
// for what a killed process left behind (`xdpsec demo --cleanup`): whatever still runs under the
// prefix loses its namespaces too.
func SweepReport(prefix string) ([]string, error) {
	if !strings.HasPrefix(prefix, NamePrefix) || len(prefix) <= len(NamePrefix) {
		return nil, fmt.Errorf("sweep %q: prefix must start with %q and name a testbed", prefix, NamePrefix)
	}
	var removed []string
	var errs []error
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list namespaces: %w", err))
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := removeNetNS(e.Name()); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, "namespace "+e.Name())
		}
	}
	pins, _ := filepath.Glob(filepath.Join("/sys/fs/bpf/xdpsec", prefix+"*"))
	for _, p := range pins {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("remove pins %s: %w", p, err))
			continue
		}
		removed = append(removed, "pins "+p)
	}
	return removed, errors.Join(errs...)
}

func removeNetNS(name string) error {
	if _, err := os.Stat("/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// A fresh context: teardown must run even when the caller's context is already done.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return run(ctx, "ip", "netns", "del", name)
}

func (tb *Testbed) run(ctx context.Context, name string, args ...string) error {
	tb.log.Debug("testbed", "cmd", name+" "+strings.Join(args, " "))
	return run(ctx, name, args...)
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("run %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// HostChecksumOffloadOff turns transmit checksum offload off on h1's and h2's interfaces (and TSO
// with it, which the kernel ties to checksum offload). With it on, a veth hands locally generated
// TCP and UDP packets on with the checksum left for "the hardware" (CHECKSUM_PARTIAL); the
// gateways' workers complete such checksums, so the tunnel works either way. Benchmarks turn it
// off to compare the tunnel with kernel forwarding under the same host settings.
func (tb *Testbed) HostChecksumOffloadOff(ctx context.Context) error {
	for _, h := range []Port{tb.topo.H1, tb.topo.H2} {
		if _, err := tb.Run(ctx, h.Node, "ethtool", "-K", h.Dev, "tx", "off"); err != nil {
			return err
		}
	}
	return nil
}
