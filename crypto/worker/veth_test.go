//go:build linux

package worker

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/loader/xsk"
	"github.com/xdpsec/xdpsec/loader/xsk/xsktest"
)

// vethResolver sends every inner destination to the LAN peer.
type vethResolver struct {
	ifindex int
	src     [6]byte
	dst     [6]byte
}

func (r *vethResolver) NextHop(netip.Addr) (int, [6]byte, [6]byte, bool) {
	return r.ifindex, r.src, r.dst, true
}

// TestVethWorker runs a worker on real AF_XDP sockets between two veth
// pairs — xs-lan (protected side) and xs-wan (wire side), sharing one UMEM —
// with a stand-in for the card: XDP programs that put fixed metadata in
// front of every packet (outbound: SA 1 and the wire next hop; inbound:
// SA 2) and redirect it to the worker. A plaintext frame sent into xs-lan
// leaves xs-wan as ESP; an ESP frame sent into xs-wan leaves xs-lan as the
// inner packet.
func TestVethWorker(t *testing.T) {
	xsktest.RequireRoot(t)
	ns := xsktest.NewNS(t, "worker")
	lan := xsktest.AddVeth(t, ns, "xs-lan", ns, "xs-lanp")
	wan := xsktest.AddVeth(t, ns, "xs-wan", ns, "xs-wanp")

	outM := metaBytes(metaOpt{dir: Out, sa: outIdx, egress: uint32(wan.Index)})
	copy(outM[20:26], wan.MAC[:])
	copy(outM[26:32], wan.PeerMAC[:])
	rLan := xsktest.AttachRedirect(t, ns, lan.Index, outM)
	rWan := xsktest.AttachRedirect(t, ns, wan.Index, inMeta())

	u, err := xsk.NewUMEM(xsk.UMEMConfig{FrameCount: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	pools, _ := u.Pools(1)
	var ps, ws *xsk.Socket
	sc := xsk.SocketConfig{FillSize: 128, CompletionSize: 128, RXSize: 128, TXSize: 128}
	if err := ns.Do(func() (err error) {
		sc.Ifindex = lan.Index
		if ps, err = u.Open(sc); err != nil {
			return err
		}
		sc.Ifindex = wan.Index
		ws, err = u.Open(sc)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close(); ws.Close() })
	if err := rLan.Map.Put(uint32(0), uint32(ps.FD())); err != nil {
		t.Fatal(err)
	}
	if err := rWan.Map.Put(uint32(0), uint32(ws.FD())); err != nil {
		t.Fatal(err)
	}

	sas, _ := NewSATable(16, 1500)
	if err := sas.Install(outIdx, &Entry{SA: newSA(t, spiOut, outerSrc, outerDst, 0), Dir: Out}); err != nil {
		t.Fatal(err)
	}
	inSA := newSA(t, spiOut, outerSrc, outerDst, 64)
	if err := sas.Install(inIdx, &Entry{SA: inSA, Dir: In, Selectors: lanSelectors()}); err != nil {
		t.Fatal(err)
	}
	stats := NewStatsTable(16)
	w, err := New(Config{Protected: ps, Wire: ws, Pool: pools[0], SAs: sas, SAStats: stats,
		Resolver: &vethResolver{ifindex: lan.Index, src: lan.MAC, dst: lan.PeerMAC}, CPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	done := make(chan error, 1)
	go func() { done <- w.Run() }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			w.Stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)

	lanPort := xsktest.OpenPacketPort(t, ns, lan.PeerIdx)
	wanPort := xsktest.OpenPacketPort(t, ns, wan.PeerIdx)
	peer := newSA(t, spiOut, outerSrc, outerDst, 0) // the far gateway, same key

	// Outbound: plaintext in at the LAN, ESP out at the WAN.
	const count = 20
	for i := range count {
		ip := ipv4UDP(100+i*50, innerSrc, innerDst, 9, 9, true, 64)
		if err := lanPort.Send(ether(lan.MAC, lan.PeerMAC, 0x0800, ip)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	seen := 0
	for deadline := time.Now().Add(5 * time.Second); seen < count && time.Now().Before(deadline); {
		n, err := wanPort.Recv(buf, time.Until(deadline))
		if err != nil || n == 0 {
			break
		}
		f := buf[:n]
		if binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14+9] != 50 {
			continue // the LAN peer's own IPv6 chatter, sealed too, or not ours
		}
		if !bytes.Equal(f[0:6], wan.PeerMAC[:]) || !bytes.Equal(f[6:12], wan.MAC[:]) {
			t.Fatalf("outer ethernet %x", f[:14])
		}
		outer := f[14:]
		pb := make([]byte, esp.Headroom+len(outer))
		copy(pb[esp.Headroom:], outer)
		s, e, err := peer.Decap(pb, esp.Headroom, len(outer))
		if err != nil {
			t.Fatalf("peer cannot open the worker's ESP: %v", err)
		}
		if pb[s]>>4 != 4 || pb[s+9] != 17 {
			continue
		}
		want := ipv4UDP(100+seen*50, innerSrc, innerDst, 9, 9, true, 64)
		decTTL(want)
		if !bytes.Equal(pb[s:e], want) {
			t.Fatalf("inner packet %d differs", seen)
		}
		seen++
	}
	if seen != count {
		t.Fatalf("%d of %d packets came out ESP (stats %v)", seen, count, statsOf(w))
	}

	// Inbound: ESP in at the WAN, the inner packet out at the LAN.
	peerOut := newSA(t, spiOut, outerSrc, outerDst, 0)
	for i := range count {
		ip := ipv4UDP(100+i*50, innerSrc, innerDst, 9, 9, true, 64)
		pb := make([]byte, esp.Headroom+len(ip)+esp.Tailroom)
		copy(pb[esp.Headroom:], ip)
		s, e, err := peerOut.Encap(pb, esp.Headroom, len(ip))
		if err != nil {
			t.Fatal(err)
		}
		if err := wanPort.Send(ether(wan.MAC, wan.PeerMAC, 0x0800, pb[s:e])); err != nil {
			t.Fatal(err)
		}
	}
	seen = 0
	for deadline := time.Now().Add(5 * time.Second); seen < count && time.Now().Before(deadline); {
		n, err := lanPort.RecvUDP(buf, time.Until(deadline))
		if err != nil || n == 0 {
			break
		}
		f := buf[:n]
		if !bytes.Equal(f[0:6], lan.PeerMAC[:]) || !bytes.Equal(f[6:12], lan.MAC[:]) {
			t.Fatalf("inner ethernet %x", f[:14])
		}
		want := ipv4UDP(100+seen*50, innerSrc, innerDst, 9, 9, true, 64)
		decTTL(want)
		if !bytes.Equal(f[14:], want) {
			t.Fatalf("delivered packet %d differs", seen)
		}
		seen++
	}
	if seen != count {
		t.Fatalf("%d of %d ESP packets came out decrypted (stats %v)", seen, count, statsOf(w))
	}
	if st := stats.SA(inIdx); st.Packets.Load() != count {
		t.Fatalf("inbound SA counted %d packets", st.Packets.Load())
	}

	// Take the sockets out of the card's maps, as the daemon does before it
	// stops the workers, then stop and account for every frame.
	_ = rLan.Map.Delete(uint32(0))
	_ = rWan.Map.Delete(uint32(0))
	stop()
	if a := w.Frames(); !a.Balanced() {
		t.Fatalf("frames not accounted for after Run: %+v", a)
	}
	t.Logf("mode %v, stats %v", ps.Mode(), statsOf(w))
}
