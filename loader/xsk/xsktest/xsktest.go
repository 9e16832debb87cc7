//go:build linux

// Package xsktest builds throw-away network namespaces with veth pairs, a
// minimal XDP program that redirects every packet into an XSKMAP, and raw
// packet ports, for the root-only tests of AF_XDP code. Everything it makes
// is removed by t.Cleanup, also when the test fails.
package xsktest

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/nsenter"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// RequireRoot skips the test unless it runs as root (fails it under CI: testutil.RequireRoot).
func RequireRoot(tb testing.TB) {
	tb.Helper()
	testutil.RequireRoot(tb, "creates network namespaces, veth pairs, XDP programs and AF_XDP sockets")
}

// NS is a network namespace made for one test.
type NS struct {
	Name   string
	handle netns.NsHandle
	nl     *netlink.Handle
}

// NewNS creates a namespace named xs-<tag>-<random> and deletes it at cleanup.
func NewNS(tb testing.TB, tag string) *NS {
	tb.Helper()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("xs-%s-%s", tag, hex.EncodeToString(rnd[:]))

	h, err := nsenter.Create(name)
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		_ = netns.DeleteNamed(name)
		tb.Fatalf("netlink handle in %s: %v", name, err)
	}
	ns := &NS{Name: name, handle: h, nl: nl}
	tb.Cleanup(func() {
		nl.Close()
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete netns %s: %v", name, err)
		}
	})
	if err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		tb.Fatalf("bring up lo in %s: %v", name, err)
	}
	return ns
}

// Do runs fn on a thread switched into the namespace (nsenter.Run). Sockets
// created and interfaces looked up inside fn belong to the namespace.
func (ns *NS) Do(fn func() error) error {
	if err := nsenter.Run(ns.handle, fn); err != nil {
		return fmt.Errorf("in netns %s: %w", ns.Name, err)
	}
	return nil
}

// Veth is one end of a veth pair inside a test namespace.
type Veth struct {
	Name    string
	Index   int
	MAC     [6]byte
	NS      *NS
	PeerNS  *NS
	Peer    string
	PeerIdx int
	PeerMAC [6]byte
}

// AddVeth creates the pair name—peer, name in ns and peer in peerNS (which
// may be ns), both up, and returns their indexes and MACs. The pair goes
// away with its namespace.
func AddVeth(tb testing.TB, ns *NS, name string, peerNS *NS, peer string) Veth {
	tb.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = name
	v := &netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(int(peerNS.handle))}
	if err := ns.nl.LinkAdd(v); err != nil {
		tb.Fatalf("add veth %s/%s: %v", name, peer, err)
	}
	out := Veth{Name: name, Peer: peer, NS: ns, PeerNS: peerNS}
	for _, e := range []struct {
		nl  *netlink.Handle
		n   string
		idx *int
		mac *[6]byte
	}{{ns.nl, name, &out.Index, &out.MAC}, {peerNS.nl, peer, &out.PeerIdx, &out.PeerMAC}} {
		l, err := e.nl.LinkByName(e.n)
		if err != nil {
			tb.Fatalf("find %s: %v", e.n, err)
		}
		if err := e.nl.LinkSetUp(l); err != nil {
			tb.Fatalf("set %s up: %v", e.n, err)
		}
		*e.idx = l.Attrs().Index
		copy(e.mac[:], l.Attrs().HardwareAddr)
	}
	return out
}

// AddAddr adds an address (CIDR) to an interface of the namespace.
func (ns *NS) AddAddr(tb testing.TB, ifname, cidr string) {
	tb.Helper()
	l, err := ns.nl.LinkByName(ifname)
	if err != nil {
		tb.Fatalf("find %s: %v", ifname, err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		tb.Fatalf("parse %s: %v", cidr, err)
	}
	if err := ns.nl.AddrAdd(l, a); err != nil {
		tb.Fatalf("add %s to %s: %v", cidr, ifname, err)
	}
}

// Redirect is an XSKMAP and an XDP program attached to one interface that
// redirects every packet to the socket in the map at its RX queue's index
// (and passes it to the stack when there is none). With meta, the program
// first puts those bytes (a multiple of 4, at most 32) in front of the
// packet with bpf_xdp_adjust_meta: a stand-in for the card's metadata.
type Redirect struct {
	Map  *ebpf.Map
	Prog *ebpf.Program
	Link link.Link
}

// AttachRedirect loads and attaches the redirect program in native mode to
// ifindex inside ns.
func AttachRedirect(tb testing.TB, ns *NS, ifindex int, meta []byte) *Redirect {
	tb.Helper()
	return attachRedirect(tb, ns, ifindex, meta, false)
}

// AttachRedirectFrags is AttachRedirect with the program loaded
// multi-buffer aware (BPF_F_XDP_HAS_FRAGS), so frames larger than a page
// reach it and, on a socket bound with SG, arrive as descriptor chains.
func AttachRedirectFrags(tb testing.TB, ns *NS, ifindex int, meta []byte) *Redirect {
	tb.Helper()
	return attachRedirect(tb, ns, ifindex, meta, true)
}

// SetMTU sets the MTU of an interface of the namespace.
func (ns *NS) SetMTU(tb testing.TB, ifname string, mtu int) {
	tb.Helper()
	l, err := ns.nl.LinkByName(ifname)
	if err != nil {
		tb.Fatalf("find %s: %v", ifname, err)
	}
	if err := ns.nl.LinkSetMTU(l, mtu); err != nil {
		tb.Fatalf("set mtu %d on %s: %v", mtu, ifname, err)
	}
}

func attachRedirect(tb testing.TB, ns *NS, ifindex int, meta []byte, frags bool) *Redirect {
	if len(meta)%4 != 0 || len(meta) > 32 {
		tb.Fatalf("metadata of %d bytes: want a multiple of 4, at most 32", len(meta))
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xs_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	if err != nil {
		tb.Fatalf("create xskmap: %v", err)
	}
	tb.Cleanup(func() { m.Close() })
	var insns asm.Instructions
	insns = append(insns, asm.Mov.Reg(asm.R6, asm.R1))
	if len(meta) > 0 {
		insns = append(insns,
			asm.Mov.Imm(asm.R2, -int32(len(meta))),
			asm.FnXdpAdjustMeta.Call(),
			asm.JNE.Imm(asm.R0, 0, "redirect"),
			asm.LoadMem(asm.R2, asm.R6, 8, asm.Word), // data_meta
			asm.LoadMem(asm.R3, asm.R6, 0, asm.Word), // data
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, int32(len(meta))),
			asm.JGT.Reg(asm.R4, asm.R3, "redirect"),
		)
		for i := 0; i < len(meta); i += 4 {
			w := binary.NativeEndian.Uint32(meta[i:])
			insns = append(insns, asm.StoreImm(asm.R2, int16(i), int64(int32(w)), asm.Word))
		}
	}
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word).WithSymbol("redirect"), // rx_queue_index
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Imm(asm.R3, 2), // XDP_PASS when no socket is in the map
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	spec := &ebpf.ProgramSpec{Name: "xs_redirect", Type: ebpf.XDP, License: "GPL", Instructions: insns}
	if frags {
		spec.Flags = unix.BPF_F_XDP_HAS_FRAGS
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			tb.Fatalf("load redirect program: %+v", ve)
		}
		tb.Fatalf("load redirect program: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return &Redirect{Map: m, Prog: p, Link: attach(tb, ns, p, ifindex)}
}

// AttachVerdict attaches a program that returns a fixed XDP verdict
// (unix.XDP_DROP, XDP_PASS, XDP_TX...) to ifindex in ns: XDP_DROP on a
// receiver makes it cheap, and a program on a veth's far end is what lets
// XDP_TX and redirects into that veth deliver.
func AttachVerdict(tb testing.TB, ns *NS, ifindex int, verdict int32) *ebpf.Program {
	tb.Helper()
	p := VerdictProgram(tb, verdict)
	attach(tb, ns, p, ifindex)
	return p
}

// VerdictProgram loads (without attaching) an XDP program returning verdict.
func VerdictProgram(tb testing.TB, verdict int32) *ebpf.Program {
	tb.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xs_verdict", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, verdict), asm.Return()}})
	if err != nil {
		tb.Fatalf("load verdict program: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func attach(tb testing.TB, ns *NS, p *ebpf.Program, ifindex int) link.Link {
	tb.Helper()
	var l link.Link
	if err := ns.Do(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: p, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	}); err != nil {
		tb.Fatalf("attach xdp to ifindex %d in %s: %v", ifindex, ns.Name, err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// PacketPort is an AF_PACKET socket on one interface: it sends raw frames
// and receives the frames that arrive on the interface (not its own).
type PacketPort struct {
	fd      int
	ifindex int
}

// OpenPacketPort opens the port on ifindex inside ns.
func OpenPacketPort(tb testing.TB, ns *NS, ifindex int) *PacketPort {
	tb.Helper()
	var fd int
	if err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex})
	}); err != nil {
		tb.Fatalf("open packet socket on ifindex %d: %v", ifindex, err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	tb.Cleanup(func() { unix.Close(fd) })
	return &PacketPort{fd: fd, ifindex: ifindex}
}

// Send transmits one Ethernet frame.
func (p *PacketPort) Send(frame []byte) error {
	return unix.Sendto(p.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: p.ifindex, Halen: 6})
}

// Recv waits up to timeout for a frame that arrived on the interface and
// copies it into buf; it returns the frame's length, or 0 on timeout.
func (p *PacketPort) Recv(buf []byte, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, nil
		}
		pfd := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return 0, err
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			continue
		}
		n, from, err := unix.Recvfrom(p.fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return 0, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return n, nil
	}
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// UDPFrame builds an Ethernet/IPv4/UDP frame of exactly size bytes (at
// least 42) from src to dst MAC, 198.18.0.1:9 → 198.18.0.2:9, whose payload
// starts with the 4-byte big-endian seq and is then filled with fill.
func UDPFrame(size int, dst, src [6]byte, seq uint32, fill byte) []byte {
	if size < 46 {
		size = 46
	}
	f := make([]byte, size)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], []byte{198, 18, 0, 1})
	copy(ip[16:20], []byte{198, 18, 0, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 9)
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], uint16(size-34))
	binary.BigEndian.PutUint32(f[42:], seq)
	for i := 46; i < size; i++ {
		f[i] = fill
	}
	return f
}

// IsTestUDP reports whether frame is one UDPFrame built (IPv4, UDP port 9):
// interfaces that come up send IPv6 neighbour discovery of their own, which
// tests must skip.
func IsTestUDP(frame []byte) bool {
	return len(frame) >= 46 && binary.BigEndian.Uint16(frame[12:]) == unix.ETH_P_IP &&
		frame[23] == unix.IPPROTO_UDP && binary.BigEndian.Uint16(frame[36:]) == 9
}

// RecvUDP is Recv that skips frames other than UDPFrame's.
func (p *PacketPort) RecvUDP(buf []byte, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := p.Recv(buf, time.Until(deadline))
		if err != nil || n == 0 || IsTestUDP(buf[:n]) {
			return n, err
		}
	}
}

// xdpMd is struct xdp_md, the context BPF_PROG_TEST_RUN takes for XDP.
type xdpMd struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// StartGenerator transmits frame out of ifindex (inside ns) as fast as the
// kernel can, with BPF_PROG_TEST_RUN in live-frames mode running an XDP_TX
// program, until the returned stop function is called; stop returns how
// many frames were sent. The far end of ifindex must have an XDP program
// attached (veth delivers XDP_TX frames only then). PERF-NOTES: this is the
// generator that works on this kernel.
func StartGenerator(tb testing.TB, ns *NS, ifindex int, frame []byte) (stop func() uint64) {
	tb.Helper()
	prog := VerdictProgram(tb, 3) // XDP_TX
	var (
		quit atomic.Bool
		sent atomic.Uint64
		done = make(chan error, 1)
	)
	go func() {
		done <- ns.Do(func() error {
			for !quit.Load() {
				const chunk = 1 << 15
				_, err := prog.Run(&ebpf.RunOptions{
					Data:    frame,
					Repeat:  chunk,
					Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
					Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)},
				})
				if err != nil {
					return fmt.Errorf("run live-frames generator: %w", err)
				}
				sent.Add(chunk)
			}
			return nil
		})
	}()
	var once sync.Once
	return func() uint64 {
		once.Do(func() {
			quit.Store(true)
			if err := <-done; err != nil {
				tb.Error(err)
			}
		})
		return sent.Load()
	}
}
