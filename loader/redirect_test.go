package loader

import (
	"bytes"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// xskReceiver is an AF_XDP socket (copy mode) on one interface queue with its fill ring stocked.
type xskReceiver struct {
	u *xsk.UMEM
	s *xsk.Socket
}

func openReceiver(t *testing.T, r *nsRunner, ifname string) *xskReceiver {
	t.Helper()
	var (
		rx  xskReceiver
		err error
	)
	r.do(func() {
		var l netlink.Link
		if l, err = netlink.LinkByName(ifname); err != nil {
			return
		}
		if rx.u, err = xsk.NewUMEM(xsk.UMEMConfig{FrameCount: 256}); err != nil {
			return
		}
		rx.s, err = rx.u.Open(xsk.SocketConfig{Ifindex: l.Attrs().Index, QueueID: 0, FillSize: 64, CompletionSize: 64, RXSize: 64, TXSize: 64, Mode: xsk.ModeCopy})
		if err != nil {
			return
		}
		addrs := make([]uint64, 64)
		for i := range addrs {
			addrs[i] = uint64(i) * uint64(rx.u.FrameSize())
		}
		rx.s.Fill.Produce(addrs)
	})
	if err != nil {
		t.Fatalf("open AF_XDP socket on %s: %v", ifname, err)
	}
	t.Cleanup(func() { rx.s.Close(); rx.u.Close() })
	return &rx
}

func mustCPUs(t *testing.T) int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// receive waits for one packet and returns its metadata and bytes.
func (rx *xskReceiver) receive(t *testing.T) (bpf.CardXdpsecMeta, []byte) {
	t.Helper()
	descs := make([]xsk.Desc, 1)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		rx.s.WakeRX()
		if rx.s.RX.Consume(descs) == 1 {
			d := descs[0]
			meta := rx.u.Bytes(d.Addr-uint64(bpf.MetaSize), uint32(bpf.MetaSize))
			return decodeMeta(t, meta), append([]byte(nil), rx.u.Bytes(d.Addr, d.Len)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no packet on the AF_XDP socket")
	return bpf.CardXdpsecMeta{}, nil
}

// TestVethRedirect sends real packets through the card into AF_XDP sockets: inbound ESP of an offloaded
// SA on the wire side, and outbound traffic of a PROTECT policy on the protected side, and checks the
// metadata the worker will read in front of each frame.
func TestVethRedirect(t *testing.T) {
	a, b := vethPair(t)
	c := newTestCard(t, Config{})
	var (
		err          error
		macA, macB   net.HardwareAddr
		ifidxB       int
		setupB       error
		modeA, modeB AttachMode
	)
	a.do(func() {
		l, _ := netlink.LinkByName("xs-va")
		macA = l.Attrs().HardwareAddr
		modeA, err = c.Attach(SideWire, "xs-va", XDPNative)
	})
	if err != nil {
		t.Fatal(err)
	}
	b.do(func() {
		l, _ := netlink.LinkByName("xs-vb")
		macB, ifidxB = l.Attrs().HardwareAddr, l.Attrs().Index
		// The outer destination's neighbour, resolved for a deterministic FIB result, and
		// forwarding on, which bpf_fib_lookup requires of the ingress interface.
		setupB = netlink.NeighAdd(&netlink.Neigh{LinkIndex: ifidxB, State: netlink.NUD_PERMANENT, IP: net.ParseIP("198.18.10.1"), HardwareAddr: macA})
		if setupB == nil {
			setupB = os.WriteFile("/proc/sys/net/ipv4/conf/all/forwarding", []byte("1"), 0o644)
		}
		if setupB == nil {
			modeB, setupB = c.Attach(SideProtected, "xs-vb", XDPNative)
		}
	})
	if setupB != nil {
		t.Fatal(setupB)
	}
	t.Logf("modes: wire %s, protected %s", modeA, modeB)

	if err := c.PutSA(40, SA{Dir: ipsec.DirIn, SPI: 0x4242, Src: ip("198.18.10.2"), Dst: ip("198.18.10.1"), Mode: ipsec.ModeTunnel, PolicyID: 9}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutSA(41, SA{Dir: ipsec.DirOut, SPI: 0x4343, Src: ip("198.18.10.2"), Dst: ip("198.18.10.1"), Mode: ipsec.ModeTunnel, PolicyID: 8}); err != nil {
		t.Fatal(err)
	}
	sel := anySel("198.18.10.1/32", "198.18.10.2/32")
	sel.Proto, sel.DstPorts = ipsec.ProtoUDP, ipsec.Ports(7, 7)
	if err := c.PutPolicies(ipsec.Policy{ID: 8, Dir: ipsec.DirOut, Priority: 1, Selector: sel, Action: ipsec.ActionProtect, SA: 41}); err != nil {
		t.Fatal(err)
	}

	rxA := openReceiver(t, a, "xs-va")
	rxB := openReceiver(t, b, "xs-vb")
	if err := c.RegisterSocket(SideWire, 0, rxA.s.FD()); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterSocket(SideProtected, 0, rxB.s.FD()); err != nil {
		t.Fatal(err)
	}

	// BPF_PROG_TEST_RUN (without live frames) reports the redirect verdict with a socket bound on the
	// queue, but performs no redirect: nothing reaches the socket, and the SA counts the packet.
	v, _ := a.run(t, c.program(SideWire), v4("198.18.10.2", "198.18.10.1", ipsec.ProtoESP, espPayload(0x4242, 9, 16)).build())
	if v != xdpRedirect {
		t.Errorf("test run with a bound socket: %s, want REDIRECT", verdictName(v))
	}
	if n := rxA.s.RX.Pending(); n != 0 {
		t.Errorf("a test run delivered %d packets to the socket", n)
	}
	if err := c.objs.SaStats.Put(uint32(40), make([]bpf.CardXdpsecSaStats, mustCPUs(t))); err != nil {
		t.Fatal(err)
	}
	if err := c.objs.Reasons.Put(uint32(bpf.CardXdpsecReasonXDPSEC_R_IN_OFFLOAD), make([]uint64, mustCPUs(t))); err != nil {
		t.Fatal(err)
	}

	// Inbound: ESP from B to A.
	sendESP(t, b, "198.18.10.1", 0x4242)
	m, frame := rxA.receive(t)
	if m.Dir != 1 || m.SaIndex != 40 || m.PolicyId != 9 || m.L3Off != 14 || m.L4Off != 34 || ipsec.Proto(m.L4Proto) != ipsec.ProtoESP || m.Flags != 0 {
		t.Errorf("inbound metadata %+v", m)
	}
	if len(frame) < 42 || !bytes.Equal(frame[34:38], []byte{0, 0, 0x42, 0x42}) {
		t.Errorf("inbound frame does not hold the ESP header at l4_off: % x", frame[:min(len(frame), 48)])
	}

	// Outbound: UDP to port 7 from A reaches B's protected side.
	sendUDP(t, a, "198.18.10.2", 7, 1)
	m, frame = rxB.receive(t)
	if m.Dir != 0 || m.SaIndex != 41 || m.PolicyId != 8 || ipsec.Proto(m.L4Proto) != ipsec.ProtoUDP || m.Flags != 0 ||
		int(m.EgressIfindex) != ifidxB || !bytes.Equal(m.Smac[:], macB) || !bytes.Equal(m.Dmac[:], macA) {
		t.Errorf("outbound metadata %+v; want egress %d %s → %s", m, ifidxB, macB, macA)
	}
	if len(frame) < int(m.L4Off)+4 || frame[m.L4Off+3] != 7 {
		t.Errorf("outbound frame does not hold the UDP header at l4_off")
	}

	for idx, want := range map[uint32]uint64{40: 1, 41: 1} {
		if s, err := c.SAStats(idx); err != nil || s.Packets != want || s.Bytes == 0 || s.FirstUse == 0 || s.LastUse < s.FirstUse {
			t.Errorf("SA %d stats %+v, %v", idx, s, err)
		}
	}
	seen := map[uint32]uint64{}
	if err := c.EachSAStats(func(idx uint32, s SAStats) bool { seen[idx] = s.Packets; return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[40] != 1 || seen[41] != 1 {
		t.Errorf("EachSAStats saw %v, want SAs 40 and 41 with one packet each", seen)
	}
	counts, _ := c.ReasonCounts()
	if counts["InOffload"] != 1 || counts["OutProtect"] != 1 {
		t.Errorf("InOffload %d, OutProtect %d; want 1 each", counts["InOffload"], counts["OutProtect"])
	}
}

// TestSocketCloseFailsClosed is what a daemon killed with SIGKILL leaves: the card attached and
// pinned, no guard set, and its AF_XDP sockets closed by the kernel. Closing a socket removes it from
// the XSKMAPs, so the card then drops PROTECT traffic (OutNoSocket) and the ESP of its SAs
// (InNoSocket, the default no-socket verdict): neither goes to the kernel, in clear or at all.
func TestSocketCloseFailsClosed(t *testing.T) {
	a, b := vethPair(t)
	c := newTestCard(t, Config{})
	fillVerdictTables(t, c)
	rxA := openReceiver(t, a, "xs-va")
	rxB := openReceiver(t, b, "xs-vb")
	if err := c.RegisterSocket(SideWire, 0, rxA.s.FD()); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterSocket(SideProtected, 0, rxB.s.FD()); err != nil {
		t.Fatal(err)
	}
	r := runner(t)
	protect := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 10)).build()
	esp := v4("198.18.0.2", "198.18.0.1", ipsec.ProtoESP, espPayload(0x2001, 1, 32)).build()
	for _, p := range [][]byte{protect, esp} {
		side := SideProtected
		if bytes.Equal(p, esp) {
			side = SideWire
		}
		if v, _ := r.run(t, c.program(side), p); v != xdpRedirect {
			t.Fatalf("%s side with a socket bound: %s, want REDIRECT", side, verdictName(v))
		}
	}
	// What the kernel does to the sockets of a process that dies: every descriptor closed.
	for _, rx := range []*xskReceiver{rxA, rxB} {
		rx.s.Close()
		rx.u.Close()
	}
	// (An XSKMAP cannot be read from user space: the verdicts below show its entries are gone.)
	one := func(k string) map[string]uint64 { return map[string]uint64{k: 1} }
	runCases(t, c, []verdictCase{
		{"PROTECT traffic, socket closed", SideProtected, protect, xdpDrop, one("OutNoSocket")},
		{"ESP of an offloaded SA, socket closed", SideWire, esp, xdpDrop, one("InNoSocket")},
		{"IKE still bypasses", SideWire, v4("198.18.0.2", "198.18.0.1", ipsec.ProtoUDP, ports(500, 500, 100)).build(), xdpPass, one("InBypass")},
		{"plaintext a PROTECT policy covers", SideWire, v4("198.18.2.5", "198.18.1.5", ipsec.ProtoTCP, ports(1, 2, 0)).build(), xdpDrop, one("InTmplMismatch")},
	})
}
