//go:build linux

package worker

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet"
	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// seal sends one plaintext frame through the worker's outbound path and
// returns the frame it put on the wire.
func (r *rig) seal(t *testing.T, ip []byte) []byte {
	t.Helper()
	if !r.prot.Receive(outMeta(), outFrame(ip)) {
		t.Fatal("kernel double could not deliver")
	}
	wire, prot := r.step(t)
	if len(wire) != 1 || len(prot) != 0 {
		t.Fatalf("transmitted %d on the wire, %d on the protected side; want 1, 0 (stats %+v)", len(wire), len(prot), statsOf(r.w))
	}
	return wire[0]
}

func statsOf(w *Worker) map[string]uint64 {
	s := &w.stats
	return map[string]uint64{"badmeta": s.BadMeta.Load(), "wrongdir": s.WrongDir.Load(), "nosa": s.NoSA.Load(),
		"crypto": s.CryptoErrors.Load(), "policy": s.PolicyMismatch.Load(), "noneigh": s.NoNeighOut.Load(),
		"nonexthop": s.NoNextHopIn.Load(), "egress": s.WrongEgress.Load(), "ttl": s.TTLExpired.Load(),
		"toobig": s.TooBig.Load(), "txfull": s.TXRingFull.Load()}
}

func TestOutboundSeal(t *testing.T) {
	r := newRig(t, 128, nil)
	for _, size := range []int{28, 64, 1000, 1400} {
		ip := ipv4UDP(size, innerSrc, innerDst, 1000, 2000, true, 64)
		f := r.seal(t, ip)
		if !bytes.Equal(f[0:6], peerGwMAC[:]) || !bytes.Equal(f[6:12], gwMAC[:]) || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			t.Fatalf("outer ethernet header %x", f[:14])
		}
		outer := f[14:]
		if outer[9] != 50 || binary.BigEndian.Uint32(outer[20:]) != spiOut {
			t.Fatalf("not ESP with our SPI: proto %d spi %#x", outer[9], binary.BigEndian.Uint32(outer[20:]))
		}
		// The peer opens it: the inner packet is ours with the TTL decremented.
		buf := make([]byte, esp.Headroom+len(outer))
		copy(buf[esp.Headroom:], outer)
		s, e, err := r.peerIn.Decap(buf, esp.Headroom, len(outer))
		if err != nil {
			t.Fatalf("peer decap: %v", err)
		}
		want := append([]byte(nil), ip...)
		packet.DecTTL(want)
		if !bytes.Equal(buf[s:e], want) {
			t.Fatalf("inner packet differs:\n got %x\nwant %x", buf[s:e], want)
		}
	}
	st := r.stats.SA(outIdx)
	if st.Packets.Load() != 4 || st.Bytes.Load() != 28+64+1000+1400 {
		t.Fatalf("sa counters: %d packets %d bytes", st.Packets.Load(), st.Bytes.Load())
	}
	r.checkFrames(t)
}

func TestInboundOpen(t *testing.T) {
	r := newRig(t, 128, nil)
	ip := ipv4UDP(200, innerSrc, innerDst, 1000, 2000, true, 64)
	esp1 := r.seal(t, ip)
	if !r.wire.Receive(inMeta(), esp1) {
		t.Fatal("deliver")
	}
	wire, prot := r.step(t)
	if len(wire) != 0 || len(prot) != 1 {
		t.Fatalf("transmitted %d/%d, want 0/1 (stats %v)", len(wire), len(prot), statsOf(r.w))
	}
	f := prot[0]
	if !bytes.Equal(f[0:6], hostMAC[:]) || !bytes.Equal(f[6:12], lanMAC[:]) || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		t.Fatalf("inner ethernet header %x", f[:14])
	}
	want := append([]byte(nil), ip...)
	packet.DecTTL(want) // at the sealing gateway
	packet.DecTTL(want) // and here
	if !bytes.Equal(f[14:], want) {
		t.Fatalf("delivered\n %x\nwant\n %x", f[14:], want)
	}
	if st := r.stats.SA(inIdx); st.Packets.Load() != 1 || st.Bytes.Load() != 200 {
		t.Fatalf("inbound sa counters %d/%d", st.Packets.Load(), st.Bytes.Load())
	}

	// The same packet again is a replay.
	r.wire.Receive(inMeta(), esp1)
	if _, prot := r.step(t); len(prot) != 0 {
		t.Fatal("replayed packet delivered")
	}
	if got := r.stats.SA(inIdx).Errors[esp.ReasonReplay].Load(); got != 1 {
		t.Fatalf("replay counter %d", got)
	}
	// A flipped ICV bit.
	esp2 := r.seal(t, ip)
	esp2[len(esp2)-1] ^= 1
	r.wire.Receive(inMeta(), esp2)
	if _, prot := r.step(t); len(prot) != 0 {
		t.Fatal("forged packet delivered")
	}
	if got := r.stats.SA(inIdx).Errors[esp.ReasonICV].Load(); got != 1 {
		t.Fatalf("icv counter %d", got)
	}
	r.checkFrames(t)
}

// TestPostDecryptionPolicy checks RFC 4301 §5.2: a packet that decrypts
// fine but is not traffic the SA's policy covers is dropped and counted.
func TestPostDecryptionPolicy(t *testing.T) {
	check := ipsec.CheckList{{Selector: ipsec.Selector{
		Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24"),
		Proto: ipsec.ProtoTCP, SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.Ports(80, 80),
	}, Accept: true}}
	cases := []struct {
		name string
		ip   []byte
		ok   bool
	}{
		{"udp, policy is tcp", ipv4UDP(100, innerSrc, innerDst, 1, 80, true, 64), false},
		{"tcp/80", tcp4(innerSrc, innerDst, 80, 0), true},
		{"tcp/81", tcp4(innerSrc, innerDst, 81, 0), false},
		{"source outside", tcp4(netip.MustParseAddr("198.18.9.1"), innerDst, 80, 0), false},
		{"non-first fragment vs port selector", tcp4(innerSrc, innerDst, 80, 100), false},
	}
	r := newRig(t, 0, check)
	for _, c := range cases {
		f := r.seal(t, c.ip)
		before := r.stats.SA(inIdx).Errors[ReasonPolicyMismatch].Load()
		r.wire.Receive(inMeta(), f)
		_, prot := r.step(t)
		if got := len(prot) == 1; got != c.ok {
			t.Errorf("%s: delivered=%v, want %v", c.name, got, c.ok)
		}
		if after := r.stats.SA(inIdx).Errors[ReasonPolicyMismatch].Load(); (after > before) == c.ok {
			t.Errorf("%s: policy mismatch counter went %d → %d", c.name, before, after)
		}
	}
	r.checkFrames(t)
}

// TestPostDecryptionFirstMatch: a rejecting entry before the SA's own policy (a higher-priority
// inbound DISCARD) wins for the packets it matches; replacing the entry's list in place
// (SATable.Replace, as the control plane does when a policy is withdrawn) takes effect on the
// next packet, and an empty list rejects everything — each rejection counted as a policy failure.
func TestPostDecryptionFirstMatch(t *testing.T) {
	lan := lanCheck()[0].Selector
	discard := ipsec.Selector{Src: lan.Src, Dst: netip.MustParsePrefix("198.18.2.0/25"), Proto: ipsec.ProtoTCP,
		SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.AnyPorts}
	r := newRig(t, 0, ipsec.CheckList{{Selector: discard}, {Selector: lan, Accept: true}})
	deliver := func(ip []byte) bool {
		t.Helper()
		r.wire.Receive(inMeta(), r.seal(t, ip))
		_, prot := r.step(t)
		return len(prot) == 1
	}
	mismatches := func() uint64 { return r.stats.SA(inIdx).Errors[ReasonPolicyMismatch].Load() }
	high := netip.MustParseAddr("198.18.2.200") // outside the DISCARD's /25
	for _, c := range []struct {
		name string
		ip   []byte
		ok   bool
	}{
		{"tcp to the discarded /25", tcp4(innerSrc, innerDst, 80, 0), false},
		{"udp to the discarded /25", ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64), true},
		{"tcp above the /25", tcp4(innerSrc, high, 80, 0), true},
	} {
		before := mismatches()
		if got := deliver(c.ip); got != c.ok {
			t.Errorf("%s: delivered %v, want %v", c.name, got, c.ok)
		}
		if d := mismatches() - before; d != map[bool]uint64{true: 0, false: 1}[c.ok] {
			t.Errorf("%s: %d policy failures counted", c.name, d)
		}
	}
	// The policy is withdrawn: the SA stays, with an empty list.
	e := r.sas.Lookup(inIdx)
	old, err := r.sas.Replace(inIdx, &Entry{SA: e.SA, Dir: ipsec.DirIn})
	if err != nil || old != e {
		t.Fatalf("replace: %v (old %p, want %p)", err, old, e)
	}
	before := mismatches()
	if deliver(tcp4(innerSrc, high, 80, 0)) || deliver(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64)) {
		t.Error("an SA with an empty check list delivered a packet")
	}
	if d := mismatches() - before; d != 2 {
		t.Errorf("%d policy failures counted for 2 rejected packets", d)
	}
	r.checkFrames(t)
}

// tcp4 builds an IPv4/TCP packet; fragOff (in 8-byte units) > 0 makes it a
// non-first fragment.
func tcp4(src, dst netip.Addr, dport uint16, fragOff uint16) []byte {
	p := ipv4UDP(60, src, dst, 1234, dport, false, 64)
	p[9] = 6
	binary.BigEndian.PutUint16(p[6:], fragOff)
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], ^uint16(packettest.RefSum(p[:20], 0)))
	return p
}

// TestDrops feeds frames that must each be dropped with one counter.
func TestDrops(t *testing.T) {
	ip := ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64)
	cases := []struct {
		name    string
		meta    []byte
		side    string
		frame   []byte
		counter func(*Stats) uint64
	}{
		{"bad magic", metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: 7, badMag: true}), "prot", outFrame(ip), func(s *Stats) uint64 { return s.BadMeta.Load() }},
		{"bad version", metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: 7, version: 9}), "prot", outFrame(ip), func(s *Stats) uint64 { return s.BadMeta.Load() }},
		{"no metadata", nil, "prot", outFrame(ip), func(s *Stats) uint64 { return s.BadMeta.Load() }},
		{"l3 offset past the end", metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: 7, l3Off: 200}), "prot", outFrame(ip), func(s *Stats) uint64 { return s.BadMeta.Load() }},
		{"inbound meta on protected side", inMeta(), "prot", outFrame(ip), func(s *Stats) uint64 { return s.WrongDir.Load() }},
		{"no such sa", metaBytes(metaOpt{dir: ipsec.DirOut, sa: 9, egress: 7}), "prot", outFrame(ip), func(s *Stats) uint64 { return s.NoSA.Load() }},
		{"sa index beyond table", metaBytes(metaOpt{dir: ipsec.DirOut, sa: 1 << 30, egress: 7}), "prot", outFrame(ip), func(s *Stats) uint64 { return s.NoSA.Load() }},
		{"inbound sa used outbound", metaBytes(metaOpt{dir: ipsec.DirOut, sa: inIdx, egress: 7}), "prot", outFrame(ip), func(s *Stats) uint64 { return s.WrongDir.Load() }},
		{"egress elsewhere", metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: 99}), "prot", outFrame(ip), func(s *Stats) uint64 { return s.WrongEgress.Load() }},
		{"ttl 1", outMeta(), "prot", outFrame(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 1)), func(s *Stats) uint64 { return s.TTLExpired.Load() }},
		{"truncated ip", outMeta(), "prot", outFrame(ip)[:40], func(s *Stats) uint64 { return s.CryptoErrors.Load() }},
		{"not esp inbound", inMeta(), "wire", outFrame(ip), func(s *Stats) uint64 { return s.CryptoErrors.Load() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, 128, nil)
			k := r.prot
			if c.side == "wire" {
				k = r.wire
			}
			if !k.Receive(c.meta, c.frame) {
				t.Fatal("deliver")
			}
			wire, prot := r.step(t)
			if len(wire)+len(prot) != 0 {
				t.Fatalf("transmitted %d/%d", len(wire), len(prot))
			}
			if c.counter(&r.w.stats) != 1 {
				t.Fatalf("counter not 1; stats %v", statsOf(r.w))
			}
			r.checkFrames(t)
		})
	}
}

func TestNeighbourUnresolved(t *testing.T) {
	r := newRig(t, 128, nil)
	// Outbound, card says no neighbour; the resolver knows nothing of the
	// outer destination either.
	m := metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, flags: 1 << 2, egress: 7})
	r.prot.Receive(m, outFrame(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64)))
	if w, _ := r.step(t); len(w) != 0 || r.w.stats.NoNeighOut.Load() != 1 || r.res.calls != 1 {
		t.Fatalf("sent %d, noneigh %d, resolver calls %d", len(w), r.w.stats.NoNeighOut.Load(), r.res.calls)
	}
	if got := r.stats.SA(outIdx).Errors[ReasonNoNeigh].Load(); got != 1 {
		t.Fatalf("outbound SA no-neigh counter %d", got)
	}
	// Inbound to a destination the resolver cannot reach.
	ip := ipv4UDP(100, innerSrc, netip.MustParseAddr("198.18.2.99"), 1, 2, true, 64)
	r.res.prefix = netip.MustParsePrefix("198.18.3.0/24")
	r.wire.Receive(inMeta(), r.seal(t, ip))
	if _, p := r.step(t); len(p) != 0 || r.w.stats.NoNextHopIn.Load() != 1 {
		t.Fatalf("delivered %d, nonexthop %d", len(p), r.w.stats.NoNextHopIn.Load())
	}
	r.checkFrames(t)
}

func TestTooBig(t *testing.T) {
	r := newRig(t, 128, nil)
	mtu := r.sas.InnerMTU(outIdx)
	if mtu <= 1400 || mtu >= 1500 {
		t.Fatalf("inner mtu %d", mtu)
	}
	// Exactly the inner MTU fits.
	if f := r.seal(t, ipv4UDP(mtu, innerSrc, innerDst, 1, 2, true, 64)); len(f)-14 > 1500 {
		t.Fatalf("sealed packet of %d bytes exceeds the wire mtu", len(f)-14)
	}
	// One more with DF: an ICMP error goes back to the sender.
	r.prot.Receive(outMeta(), outFrame(ipv4UDP(mtu+1, innerSrc, innerDst, 1, 2, true, 64)))
	wire, prot := r.step(t)
	if len(wire) != 0 || len(prot) != 1 {
		t.Fatalf("DF too big: sent %d/%d", len(wire), len(prot))
	}
	f := prot[0]
	if !bytes.Equal(f[0:6], senderMAC[:]) || !bytes.Equal(f[6:12], lanMAC[:]) || f[14+20] != 3 || int(binary.BigEndian.Uint16(f[14+26:])) != mtu {
		t.Fatalf("icmp reply %x", f[:48])
	}
	// Without DF: fragments, each sealed and within the wire MTU.
	big := ipv4UDP(1700, innerSrc, innerDst, 1, 2, false, 64)
	r.prot.Receive(outMeta(), outFrame(big))
	wire, _ = r.step(t)
	if len(wire) != 2 {
		t.Fatalf("fragmenting gave %d packets", len(wire))
	}
	var payload []byte
	for _, f := range wire {
		outer := f[14:]
		if len(outer) > 1500 {
			t.Fatalf("fragment of %d bytes on the wire", len(outer))
		}
		buf := make([]byte, esp.Headroom+len(outer))
		copy(buf[esp.Headroom:], outer)
		s, e, err := r.peerIn.Decap(buf, esp.Headroom, len(outer))
		if err != nil {
			t.Fatal(err)
		}
		payload = append(payload, buf[s+20:e]...)
	}
	if !bytes.Equal(payload, big[20:]) {
		t.Fatal("fragments do not reassemble to the original payload")
	}
	if r.w.stats.TooBig.Load() != 2 || r.w.stats.PTBSent.Load() != 1 || r.w.stats.Fragments.Load() != 2 {
		t.Fatalf("stats %v", statsOf(r.w))
	}
	// Only the packet answered with ICMP counts as an SA error; the
	// fragmented one went through.
	if got := r.stats.SA(outIdx).Errors[ReasonPMTU].Load(); got != 1 {
		t.Fatalf("pmtu counter %d", got)
	}
	r.checkFrames(t)
}

func TestInstallRemove(t *testing.T) {
	tab, err := NewSATable(4, 1500)
	if err != nil {
		t.Fatal(err)
	}
	sa := newSA(t, 0x2000, outerSrc, outerDst, 0)
	if err := tab.Install(4, &Entry{SA: sa, Dir: ipsec.DirOut}); err == nil {
		t.Fatal("index out of range accepted")
	}
	if err := tab.Install(0, &Entry{SA: sa, Dir: ipsec.DirOut, Check: lanCheck()}); err == nil {
		t.Fatal("outbound SA with a post-decryption check accepted")
	}
	bad := lanCheck()
	bad[0].Selector.Src = netip.MustParsePrefix("198.18.1.1/24")
	if err := tab.Install(0, &Entry{SA: sa, Dir: ipsec.DirIn, Check: bad}); err == nil {
		t.Fatal("check entry with an invalid selector accepted")
	}
	if err := tab.Install(0, &Entry{SA: sa, Dir: ipsec.DirOut}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Install(0, &Entry{SA: sa, Dir: ipsec.DirOut}); err == nil {
		t.Fatal("second install at a used index accepted")
	}
	// Replace swaps in one store and hands back what it replaced.
	old := tab.Lookup(0)
	if prev, err := tab.Replace(0, &Entry{SA: sa, Dir: ipsec.DirOut, OuterDst: outerDst}); err != nil || prev != old {
		t.Fatalf("replace: %v, returned %p, want %p", err, prev, old)
	}
	if e := tab.Remove(0); e == nil || e.SA != sa || e.OuterDst != outerDst {
		t.Fatal("remove did not return the replacing entry")
	}
	if tab.Lookup(0) != nil {
		t.Fatal("entry still there")
	}
	// Removal does not wipe: the control plane does, after the card stopped
	// naming the SA.
	buf := make([]byte, esp.Headroom+100+esp.Tailroom)
	copy(buf[esp.Headroom:], ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64))
	if _, _, err := sa.Encap(buf, esp.Headroom, 100); err != nil {
		t.Fatalf("SA unusable after Remove: %v", err)
	}
}

// TestRunStop runs the worker's loop on its own goroutine (busy-polling,
// since in-memory sockets have no file descriptor to sleep on) while this
// goroutine plays the kernel, then stops it and checks every frame came back.
func TestRunStop(t *testing.T) {
	r := newRig(t, 1024, nil)
	r.w.cfg.BusyPoll = true
	done := make(chan error, 1)
	go func() { done <- r.w.Run() }()
	const count = 500
	sent, got := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	// A TX ring the "kernel" has not emptied yet makes the worker drop (and
	// count) rather than wait: every packet is either transmitted or counted.
	for got+int(r.w.stats.TXRingFull.Load()) < count && time.Now().Before(deadline) {
		if sent < count && r.prot.Receive(outMeta(), outFrame(ipv4UDP(300, innerSrc, innerDst, 1, uint16(sent), true, 64))) {
			sent++
		}
		got += r.wire.Transmit(0, nil)
	}
	r.w.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if full := int(r.w.stats.TXRingFull.Load()); got+full != count || got < count/2 {
		t.Fatalf("transmitted %d and dropped %d for a full TX ring, of %d (stats %v)", got, full, count, statsOf(r.w))
	}
	// Frames the worker transmitted after our last Transmit come back on
	// completion only after the double moves them; Run waited, so move them
	// and reap once more as a final Step would.
	r.wire.Transmit(0, nil)
	r.w.reap(sideWire)
	r.checkFrames(t)
}

// TestZeroAllocs: the per-packet functions allocate nothing.
func TestZeroAllocs(t *testing.T) {
	r := newRig(t, 0, nil)
	d, tmpl := loadFrame(t, r, true, 1400)
	frame := r.w.umem.Frame(d.Addr)
	allocs := testing.AllocsPerRun(200, func() {
		copy(frame, tmpl)
		r.w.handleOut(d)
		r.w.tx[sideWire] = r.w.tx[sideWire][:0]
	})
	if allocs != 0 {
		t.Fatalf("handleOut allocates %.1f times per packet", allocs)
	}
	d, tmpl = loadFrame(t, r, false, 1400)
	frame = r.w.umem.Frame(d.Addr)
	allocs = testing.AllocsPerRun(200, func() {
		copy(frame, tmpl)
		r.w.handleIn(d)
		r.w.tx[sideProtected] = r.w.tx[sideProtected][:0]
	})
	if allocs != 0 {
		t.Fatalf("handleIn allocates %.1f times per packet", allocs)
	}
	if r.w.stats.Sealed.Load() < 200 || r.w.stats.Opened.Load() < 200 {
		t.Fatalf("packets were not processed: %v", statsOf(r.w))
	}
}

// loadFrame takes a frame from the pool and puts in it what the kernel
// would deliver: for outbound a plaintext frame of ipLen bytes, for inbound
// that frame sealed by the worker's outbound SA. It returns the descriptor
// and a copy of the whole frame to restore before each run.
func loadFrame(t testing.TB, r *rig, outbound bool, ipLen int) (xsk.Desc, []byte) {
	t.Helper()
	ip := ipv4UDP(ipLen, innerSrc, innerDst, 1, 2, true, 64)
	meta, pkt := outMeta(), outFrame(ip)
	if !outbound {
		e := r.sas.Lookup(outIdx)
		buf := make([]byte, esp.Headroom+len(ip)+esp.Tailroom)
		copy(buf[esp.Headroom:], ip)
		s, en, err := e.SA.Encap(buf, esp.Headroom, len(ip))
		if err != nil {
			t.Fatal(err)
		}
		meta, pkt = inMeta(), ether(gwMAC, peerGwMAC, 0x0800, buf[s:en])
	}
	addr, ok := r.w.pool.Get()
	if !ok {
		t.Fatal("no frame")
	}
	frame := r.w.umem.Frame(addr)
	off := int(r.w.umem.RXOffset())
	copy(frame[off-len(meta):], meta)
	copy(frame[off:], pkt)
	// The frame is handed back to the pool by the handler only on drops;
	// on success it sits in a TX batch the caller empties, so put it back now
	// to keep the pool's count right for later checks.
	r.w.pool.Put(addr)
	return xsk.Desc{Addr: addr + uint64(off), Len: uint32(len(pkt))}, append([]byte(nil), frame...)
}

func TestStopCloseOrder(t *testing.T) {
	r := newRig(t, 0, nil)
	r.w.Stop()
	// Run after Stop returns at once, with every frame accounted for.
	done := make(chan error, 1)
	go func() { done <- r.w.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
	if err := r.w.Close(); err != nil {
		t.Fatal(err)
	}
	r.w.Stop() // after Close: no write to a closed descriptor
	if err := r.w.Close(); err != nil {
		t.Fatal(err)
	}
	r.checkFrames(t)
}

// TestSeqUnreservedCounted: an outbound SA at the end of its durable reservation (esp.WithCeiling)
// drops instead of sending, counted per SA under esp.ReasonSeqUnreserved and in the worker's
// SeqUnreserved; once the ceiling is raised it sends the next number.
func TestSeqUnreservedCounted(t *testing.T) {
	r := newRig(t, 0, nil)
	sa, err := esp.New(esp.Params{SPI: spiOut, Src: outerSrc, Dst: outerDst, Mode: ipsec.ModeTunnel,
		AEAD: esp.AEADAlg{Name: "rfc4106(gcm(aes))", Key: gcmKey}}, esp.WithCeiling(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sas.Replace(outIdx, &Entry{SA: sa, Dir: ipsec.DirOut, OuterDst: outerDst}); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for range 5 {
		r.prot.Receive(outMeta(), outFrame(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64)))
		wire, _ := r.step(t)
		sent += len(wire)
	}
	if got := r.stats.SA(outIdx).Errors[esp.ReasonSeqUnreserved].Load(); sent != 2 || got != 3 || r.w.stats.SeqUnreserved.Load() != 3 {
		t.Fatalf("sent %d, seq_unreserved per SA %d, worker %d: want 2, 3, 3", sent, got, r.w.stats.SeqUnreserved.Load())
	}
	sa.RaiseCeiling(3)
	r.prot.Receive(outMeta(), outFrame(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64)))
	if wire, _ := r.step(t); len(wire) != 1 || sa.NextSeq() != 4 {
		t.Fatalf("after raising the ceiling: %d frames sent, next seq %d", len(wire), sa.NextSeq())
	}
	r.checkFrames(t)
}
