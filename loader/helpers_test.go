package loader

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

func requireRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "loads BPF programs and creates network namespaces")
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// nsRunner runs functions on one OS thread that lives in a network namespace the tests created, so that
// Program.Run (whose bpf_fib_lookup uses the caller's namespace) sees a known, fixed routing table:
//
//	xs-d0 (veth to xs-d1): 198.18.0.1/24, 2001:2::1/64
//	neighbours:    198.18.0.2 and 2001:2::2 at 02:00:00:00:00:02 (permanent)
//	198.18.0.3 and 2001:2::3 have no neighbour entry; 198.19.255.1 has no route
type nsRunner struct {
	name    string
	ch      chan func()
	ifindex int
	mac     net.HardwareAddr
	err     error
}

var (
	testNSOnce sync.Once
	testNS     *nsRunner
)

var neighMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}

func runner(t testing.TB) *nsRunner {
	t.Helper()
	requireRoot(t)
	testNSOnce.Do(func() {
		testNS = startNS("xs-cardut-"+randHex(4), (*nsRunner).setup)
	})
	if testNS.err != nil {
		t.Fatalf("set up test namespace: %v", testNS.err)
	}
	return testNS
}

// startNS creates the named namespace on a locked thread that stays in it, runs setup there, and then
// serves do.
func startNS(name string, setup func(*nsRunner) error) *nsRunner {
	r := &nsRunner{name: name, ch: make(chan func())}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.NewNamed(r.name)
		if err != nil {
			r.err = err
			close(ready)
			return
		}
		ns.Close()
		if setup != nil {
			r.err = setup(r)
		}
		close(ready)
		for f := range r.ch {
			f()
		}
	}()
	<-ready
	return r
}

// stop ends the runner's thread and deletes its namespace.
func (r *nsRunner) stop() {
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
	netns.DeleteNamed(r.name)
}

func (r *nsRunner) setup() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	// This kernel has no dummy driver; a veth pair with both ends here serves as well.
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "xs-d0"}, PeerName: "xs-d1"}
	if err := netlink.LinkAdd(v); err != nil {
		return err
	}
	for _, n := range []string{"xs-d1", "xs-d0"} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	l, err := netlink.LinkByName("xs-d0")
	if err != nil {
		return err
	}
	for _, a := range []string{"198.18.0.1/24", "2001:2::1/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = 0x02 // IFA_F_NODAD
		if err := netlink.AddrAdd(l, addr); err != nil {
			return err
		}
	}
	for _, ip := range []string{"198.18.0.2", "2001:2::2"} {
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT, IP: net.ParseIP(ip), HardwareAddr: neighMAC}
		if err := netlink.NeighAdd(n); err != nil {
			return err
		}
	}
	for _, p := range []string{"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return err
		}
	}
	r.ifindex = l.Attrs().Index
	r.mac = l.Attrs().HardwareAddr
	return nil
}

// quiet keeps the loader's attach and reopen messages out of test output.
var quiet = slog.New(slog.DiscardHandler)

func (r *nsRunner) do(f func()) {
	done := make(chan struct{})
	r.ch <- func() { defer close(done); f() }
	<-done
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testNS != nil {
		testNS.stop()
	}
	os.Exit(code)
}

// run runs prog on data in the test namespace and returns the verdict and the output (metadata
// included: the kernel returns the frame from data_meta).
func (r *nsRunner) run(t testing.TB, prog *ebpf.Program, data []byte) (uint32, []byte) {
	t.Helper()
	var (
		ret uint32
		out = make([]byte, len(data)+256)
		err error
	)
	r.do(func() {
		opts := ebpf.RunOptions{Data: data, DataOut: out}
		ret, err = prog.Run(&opts)
		out = opts.DataOut
	})
	if err != nil {
		t.Fatalf("run %v: %v", prog, err)
	}
	return ret, out
}

// newTestCard loads an unpinned card.
func newTestCard(t testing.TB, cfg Config) *Card {
	t.Helper()
	requireRoot(t)
	if cfg.Policies == 0 {
		cfg.Policies = 1024
	}
	if cfg.SAs == 0 {
		cfg.SAs = 1024
	}
	if cfg.FlowCache == 0 {
		cfg.FlowCache = 4096
	}
	cfg.Logger = quiet
	c, err := Load(cfg)
	if err != nil {
		t.Fatalf("load card: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// XDP verdicts.
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

func verdictName(v uint32) string {
	return [...]string{"ABORTED", "DROP", "PASS", "TX", "REDIRECT", "?"}[min(v, 5)]
}

// ---- packet building ----

type ext struct {
	nh  uint8 // 0 hop-by-hop, 43 routing, 60 destination options, 44 fragment
	len int   // bytes (multiple of 8) for non-fragment headers
}

type pkt struct {
	vlans    []uint16 // TPIDs of VLAN tags, outermost first
	src, dst netip.Addr
	proto    ipsec.Proto
	v4opts   int // IPv4 option bytes (multiple of 4)
	exts     []ext
	fragOff  uint16 // fragment offset in 8-byte units
	moreFrag bool
	frag     bool // IPv6: add a fragment header even with offset 0 and no MF
	l4       []byte
	ethType  uint16 // overrides the EtherType (non-IP frames)
}

func ports(sport, dport uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+payload))
	return b
}

func icmp(typ, code uint8) []byte { return []byte{typ, code, 0, 0, 0, 0, 0, 0, 'x', 'y'} }

func espPayload(spi, seq uint32, n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint32(b[0:], spi)
	binary.BigEndian.PutUint32(b[4:], seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func udpESP(sport, dport uint16, spi, seq uint32, n int) []byte {
	e := espPayload(spi, seq, n)
	b := ports(sport, dport, len(e))
	copy(b[8:], e)
	return b
}

func (p pkt) build() []byte {
	b := make([]byte, 0, 256)
	b = append(b, 0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb)
	for _, tpid := range p.vlans {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 100)
	}
	if p.ethType != 0 {
		b = binary.BigEndian.AppendUint16(b, p.ethType)
		return append(b, make([]byte, 46)...)
	}
	if p.src.Is4() {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		hl := 20 + p.v4opts
		tot := hl + len(p.l4)
		h := make([]byte, hl)
		h[0] = 0x40 | byte(hl/4)
		binary.BigEndian.PutUint16(h[2:], uint16(tot))
		fo := p.fragOff & 0x1fff
		if p.moreFrag {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:], fo)
		h[8] = 64
		h[9] = byte(p.proto)
		s, d := p.src.As4(), p.dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		for i := 20; i < hl; i++ {
			h[i] = 1 // NOP options
		}
		b = append(b, h...)
		return append(b, p.l4...)
	}
	b = binary.BigEndian.AppendUint16(b, 0x86dd)
	var body []byte
	exts := p.exts
	if p.frag || p.fragOff != 0 || p.moreFrag {
		exts = append(exts, ext{nh: 44})
	}
	first := byte(p.proto)
	if len(exts) > 0 {
		first = exts[0].nh
	}
	for i, e := range exts {
		next := byte(p.proto)
		if i+1 < len(exts) {
			next = exts[i+1].nh
		}
		if e.nh == 44 {
			h := make([]byte, 8)
			h[0] = next
			fo := p.fragOff << 3
			if p.moreFrag {
				fo |= 1
			}
			binary.BigEndian.PutUint16(h[2:], fo)
			binary.BigEndian.PutUint32(h[4:], 0x1234)
			body = append(body, h...)
			continue
		}
		h := make([]byte, e.len)
		h[0] = next
		h[1] = byte(e.len/8 - 1)
		if e.nh != 43 {
			h[2] = 1 // PadN
			h[3] = byte(e.len - 4)
		}
		body = append(body, h...)
	}
	body = append(body, p.l4...)
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(body)))
	h[6] = first
	h[7] = 64
	s, d := p.src.As16(), p.dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	b = append(b, h...)
	return append(b, body...)
}

// ---- card helpers ----

func reasonDelta(t testing.TB, c *Card, f func()) map[string]uint64 {
	t.Helper()
	before, err := c.ReasonCounts()
	if err != nil {
		t.Fatal(err)
	}
	f()
	after, err := c.ReasonCounts()
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func decodeMeta(t testing.TB, out []byte) bpf.CardXdpsecMeta {
	t.Helper()
	var m bpf.CardXdpsecMeta
	if err := bpf.DecodeMeta(out, &m); err != nil {
		t.Fatalf("metadata: %v (first bytes % x)", err, out[:min(len(out), 32)])
	}
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func anySel(src, dst string) ipsec.Selector {
	return ipsec.Selector{Src: pfx(src), Dst: pfx(dst), SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.AnyPorts}
}
