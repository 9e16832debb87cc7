package loader

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdpsec/xdpsec/ipsec"
)

// vethPair builds two namespaces joined by a veth pair:
//
//	A: xs-va 198.18.10.1/24 2001:2:10::1/64  (the card's wire side: xdpsec_in)
//	B: xs-vb 198.18.10.2/24 2001:2:10::2/64  (the card's protected side: xdpsec_out)
func vethPair(t *testing.T) (a, b *nsRunner) {
	t.Helper()
	requireRoot(t)
	suffix := randHex(3)
	b = startNS("xs-cardvb-"+suffix, nil)
	t.Cleanup(b.stop)
	if b.err != nil {
		t.Fatalf("create namespace: %v", b.err)
	}
	nsB, err := netns.GetFromName(b.name)
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()
	a = startNS("xs-cardva-"+suffix, func(r *nsRunner) error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "xs-va"}, PeerName: "xs-vb", PeerNamespace: netlink.NsFd(nsB)}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		return upWithAddrs("xs-va", "198.18.10.1/24", "2001:2:10::1/64")
	})
	t.Cleanup(a.stop)
	if a.err != nil {
		t.Fatalf("create namespace: %v", a.err)
	}
	var setupErr error
	b.do(func() { setupErr = upWithAddrs("xs-vb", "198.18.10.2/24", "2001:2:10::2/64") })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return a, b
}

func upWithAddrs(name string, addrs ...string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, s := range addrs {
		addr, err := netlink.ParseAddr(s)
		if err != nil {
			return err
		}
		addr.Flags = 0x02 // IFA_F_NODAD
		if err := netlink.AddrAdd(l, addr); err != nil {
			return err
		}
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	return netlink.LinkSetUp(l)
}

// ping sends three echo requests from namespace ns to addr and fails unless all three are answered
// (ping itself exits 0 on one reply of three).
func ping(t *testing.T, ns, addr string) error {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-q", "-c", "3", "-i", "0.2", "-W", "2", addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "3 packets transmitted, 3 received,") {
		return fmt.Errorf("want 3 of 3 echoes answered (%v): %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// sendUDP sends n datagrams from the runner's namespace.
func sendUDP(t *testing.T, r *nsRunner, dst string, port, n int) {
	t.Helper()
	var err error
	r.do(func() {
		var c net.Conn
		c, err = net.Dial("udp", net.JoinHostPort(dst, strconv.Itoa(port)))
		if err != nil {
			return
		}
		defer c.Close()
		for i := 0; i < n; i++ {
			c.Write([]byte("xdpsec test datagram"))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sendESP sends one raw ESP packet (SPI, sequence number, junk) from the runner's namespace.
func sendESP(t *testing.T, r *nsRunner, dst string, spi uint32) {
	t.Helper()
	var err error
	r.do(func() {
		var fd int
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, int(ipsec.ProtoESP))
		if err != nil {
			return
		}
		defer syscall.Close(fd)
		sa := &syscall.SockaddrInet4{}
		copy(sa.Addr[:], net.ParseIP(dst).To4())
		err = syscall.Sendto(fd, espPayload(spi, 1, 32), 0, sa)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func xdpAttached(t *testing.T, r *nsRunner, name string) bool {
	t.Helper()
	return attachedProgram(t, r, name) != 0
}

// TestVeth attaches both programs to a real veth pair, passes traffic, reads the counters, restarts the
// loader over its pins without detaching, and finally destroys the instance leaving nothing behind.
func TestVeth(t *testing.T) {
	a, b := vethPair(t)
	inst := "t" + randHex(4)
	cfg := Config{Instance: inst, Policies: 256, SAs: 256, FlowCache: 1024, Logger: quiet}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.PinDir()
	t.Cleanup(func() {
		if c != nil {
			c.Destroy()
		}
		os.RemoveAll(dir)
	})

	var modeA, modeB AttachMode
	a.do(func() { modeA, err = c.Attach(SideWire, "xs-va", XDPAuto) })
	if err != nil {
		t.Fatal(err)
	}
	b.do(func() { modeB, err = c.Attach(SideProtected, "xs-vb", XDPAuto) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attached: wire %s, protected %s", modeA, modeB)
	if modeA != AttachNative || modeB != AttachNative {
		t.Errorf("veth offers native XDP; got %s and %s", modeA, modeB)
	}

	discard9 := anySel("198.18.10.0/24", "198.18.10.0/24")
	discard9.Proto, discard9.DstPorts = ipsec.ProtoUDP, ipsec.Ports(9, 9)
	protect7 := anySel("198.18.10.0/24", "198.18.10.0/24")
	protect7.Proto, protect7.DstPorts = ipsec.ProtoUDP, ipsec.Ports(7, 7)
	icmpIn := anySel("198.18.10.0/24", "198.18.10.0/24")
	icmpIn.Proto = ipsec.ProtoICMP
	if err := c.PutPolicies(
		ipsec.Policy{ID: 1, Dir: ipsec.DirIn, Priority: 10, Selector: icmpIn, Action: ipsec.ActionBypass},
		ipsec.Policy{ID: 2, Dir: ipsec.DirIn, Priority: 10, Selector: discard9, Action: ipsec.ActionDiscard},
		ipsec.Policy{ID: 3, Dir: ipsec.DirOut, Priority: 10, Selector: protect7, Action: ipsec.ActionProtect, SA: ipsec.NoSA},
	); err != nil {
		t.Fatal(err)
	}
	rd, err := c.NewAcquireReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	d := reasonDelta(t, c, func() {
		if err := ping(t, b.name, "198.18.10.1"); err != nil {
			t.Errorf("ping B → A through the card: %v", err)
		}
		if err := ping(t, b.name, "2001:2:10::1"); err != nil {
			t.Errorf("ping6 B → A through the card: %v", err)
		}
		sendUDP(t, b, "198.18.10.1", 9, 5)
		sendUDP(t, a, "198.18.10.2", 7, 5)
		sendESP(t, b, "198.18.10.1", 0xdead)
		// The marker that the card has seen all of the above: B's echo requests queue behind B's
		// datagrams and ESP at A's end of the veth, A's replies behind A's datagrams at B's end.
		if err := ping(t, b.name, "198.18.10.1"); err != nil {
			t.Errorf("ping B → A after the datagrams: %v", err)
		}
	})
	t.Logf("reasons: %v", d)
	if d["InPolBlock"] != 5 {
		t.Errorf("InPolBlock = %d, want 5 (UDP to port 9)", d["InPolBlock"])
	}
	if d["OutNoStates"] != 5 {
		t.Errorf("OutNoStates = %d, want 5 (UDP to port 7 without SA)", d["OutNoStates"])
	}
	if d["InNoStates"] != 1 {
		t.Errorf("InNoStates = %d, want 1 (ESP with an unknown SPI)", d["InNoStates"])
	}
	if d["InBypass"] < 9 || d["OutBypass"] < 9 {
		t.Errorf("InBypass %d, OutBypass %d: want the pings' packets", d["InBypass"], d["OutBypass"])
	}
	icmpHits := func() uint64 {
		t.Helper()
		s, err := c.PolicyStats(1)
		if err != nil {
			t.Fatal(err)
		}
		return s.Packets
	}
	// B's IPv4 echo requests, two pings of three, and nothing else from B to A is ICMP.
	if n := icmpHits(); n != 6 {
		t.Errorf("ICMP bypass policy hits = %d, want the 6 echo requests", n)
	}
	rd.SetDeadline(time.Now().Add(time.Second))
	if acq, err := rd.Read(); err != nil || acq.PolicyID != 3 || acq.Tuple.DstPort != 7 {
		t.Errorf("acquire = %+v, %v; want policy 3, dport 7", acq, err)
	}

	// Another program on a busy interface, and a missing interface.
	other := newTestCard(t, Config{})
	a.do(func() { _, err = other.Attach(SideWire, "xs-va", XDPAuto) })
	if !errors.Is(err, ErrXDPBusy) || !strings.Contains(err.Error(), "xdpsec_in") {
		t.Errorf("attach over the card: %v; want ErrXDPBusy naming xdpsec_in", err)
	}
	a.do(func() { _, err = other.Attach(SideWire, "xs-nonexistent", XDPAuto) })
	if !errors.Is(err, ErrNoInterface) {
		t.Errorf("attach to a missing interface: %v; want ErrNoInterface", err)
	}
	// Generic mode when asked (on the namespace's loopback, which the test owns).
	var gm AttachMode
	a.do(func() { gm, err = other.Attach(SideWire, "lo", XDPGeneric) })
	if err != nil || gm != AttachGeneric || other.Mode(SideWire) != AttachGeneric {
		t.Errorf("generic attach: %s, %v", gm, err)
	}
	if err := other.Detach(SideWire); err != nil {
		t.Error(err)
	}
	if xdpAttached(t, a, "lo") {
		t.Error("Detach left the generic program on lo")
	}

	// Restart: Close leaves the card attached and pinned; traffic keeps flowing; Load takes it over.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !xdpAttached(t, a, "xs-va") || !xdpAttached(t, b, "xs-vb") {
		t.Fatal("Close detached a pinned card")
	}
	if err := ping(t, b.name, "198.18.10.1"); err != nil {
		t.Errorf("ping while no loader runs: %v", err)
	}
	c, err = Load(cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if n := len(c.Policies()); n != 3 {
		t.Errorf("reopened card has %d policies, want 3", n)
	}
	a.do(func() { modeA, err = c.Attach(SideWire, "xs-va", XDPAuto) })
	if err != nil || modeA != AttachNative {
		t.Errorf("attach after reopen: %s, %v", modeA, err)
	}
	hits0 := icmpHits()
	d = reasonDelta(t, c, func() {
		if err := ping(t, b.name, "198.18.10.1"); err != nil {
			t.Errorf("ping after reopen: %v", err)
		}
	})
	if d["InBypass"] < 3 || icmpHits()-hits0 != 3 {
		t.Errorf("after reopen the new program counted %d ICMP policy hits for 3 echo requests: %v", icmpHits()-hits0, d)
	}

	// Destroy: nothing left.
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	c = nil
	if xdpAttached(t, a, "xs-va") || xdpAttached(t, b, "xs-vb") {
		t.Error("Destroy left an XDP program attached")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(dir)
		t.Errorf("Destroy left the pin directory %s (%d entries)", dir, len(entries))
	}
}
