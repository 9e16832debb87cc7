//go:build linux

package worker

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/control/spd"
	"github.com/xdpsec/xdpsec/crypto/esp"
)

// TestSelectorsMatchEquivalence: for whole packets and first fragments the
// post-decryption check answers exactly what control/spd's Selector.Matches
// answers, over random selectors and tuples drawn from a small space so
// that matches are frequent.
func TestSelectorsMatchEquivalence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addr4 := func() netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(4)), byte(rng.IntN(4))}) }
	addr6 := func() netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, byte(rng.IntN(4)), 14: byte(rng.IntN(4)), 15: byte(rng.IntN(4))})
	}
	protos := []uint8{spd.ProtoAny, spd.ProtoTCP, spd.ProtoUDP, spd.ProtoICMP, spd.ProtoICMPv6, 47}
	ports := func(p uint8) spd.PortRange {
		if rng.IntN(2) == 0 || !(spd.HasPorts(p) || spd.IsICMP(p)) {
			return spd.AnyPort
		}
		lo := uint16(rng.IntN(8))
		return spd.PortRange{Lo: lo, Hi: lo + uint16(rng.IntN(4))}
	}
	var matched, missed int
	for range 20000 {
		v6 := rng.IntN(2) == 0
		mk := addr4
		bits := []int{30, 31, 32, 16}
		if v6 {
			mk = addr6
			bits = []int{126, 127, 128, 32}
		}
		p := protos[rng.IntN(len(protos))]
		sel := spd.Selector{
			Src:   netip.PrefixFrom(mk(), bits[rng.IntN(4)]).Masked(),
			Dst:   netip.PrefixFrom(mk(), bits[rng.IntN(4)]).Masked(),
			Proto: p, SrcPorts: ports(p), DstPorts: ports(p),
		}
		if sel.Validate() != nil {
			continue
		}
		tu := spd.Tuple{Src: mk(), Dst: mk(), Proto: protos[1+rng.IntN(len(protos)-1)],
			SrcPort: uint16(rng.IntN(10)), DstPort: uint16(rng.IntN(10))}
		// Bias towards matches: half the time take a field from the selector.
		if rng.IntN(2) == 0 {
			tu.Src = sel.Src.Addr()
		}
		if rng.IntN(2) == 0 {
			tu.Dst = sel.Dst.Addr()
		}
		if rng.IntN(2) == 0 && sel.Proto != spd.ProtoAny {
			tu.Proto = sel.Proto
		}
		if rng.IntN(2) == 0 {
			tu.SrcPort, tu.DstPort = sel.SrcPorts.Lo, sel.DstPorts.Hi
		}
		if rng.IntN(10) == 0 { // the other family
			if v6 {
				tu.Src, tu.Dst = addr4(), addr4()
			} else {
				tu.Src, tu.Dst = addr6(), addr6()
			}
		}
		got, want := selectorsMatch([]spd.Selector{sel}, &tu), sel.Matches(tu)
		if got != want {
			t.Fatalf("selector %v, tuple %+v: worker says %v, spd says %v", sel, tu, got, want)
		}
		if got {
			matched++
		} else {
			missed++
		}
		// A non-first fragment never matches a selector that constrains ports.
		tu.NonFirstFragment = true
		if selectorsMatch([]spd.Selector{sel}, &tu) && sel.ConstrainsPorts() {
			t.Fatalf("non-first fragment matched port selector %v", sel)
		}
	}
	if matched < 500 || missed < 500 {
		t.Fatalf("the random space is off: %d matches, %d misses", matched, missed)
	}
}

// TestInnerTuple parses the inner packets the policy check sees, IPv6
// extension chains and fragments included, and refuses truncated ones.
func TestInnerTuple(t *testing.T) {
	src6, dst6 := netip.MustParseAddr("2001:2:1::1"), netip.MustParseAddr("2001:2:2::2")
	v6 := func(nh byte, ext ...[]byte) []byte {
		p := make([]byte, 40)
		p[0] = 0x60
		p[6] = nh
		s, d := src6.As16(), dst6.As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
		for _, e := range ext {
			p = append(p, e...)
		}
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		return p
	}
	udp := []byte{0x04, 0xd2, 0x00, 0x35, 0, 8, 0, 0} // 1234 → 53
	hbh := func(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
	frag := func(next byte, off uint16) []byte {
		b := []byte{next, 0, 0, 0, 0, 0, 0, 1}
		binary.BigEndian.PutUint16(b[2:], off<<3)
		return b
	}
	icmp6 := []byte{128, 0, 0, 0}
	cases := []struct {
		name string
		pkt  []byte
		ok   bool
		want spd.Tuple
	}{
		{"ipv4 udp", ipv4UDP(40, innerSrc, innerDst, 1234, 53, false, 64), true,
			spd.Tuple{Src: innerSrc, Dst: innerDst, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv4 non-first fragment", tcp4(innerSrc, innerDst, 80, 3), true,
			spd.Tuple{Src: innerSrc, Dst: innerDst, Proto: 6, NonFirstFragment: true}},
		{"ipv4 truncated", ipv4UDP(40, innerSrc, innerDst, 1, 2, false, 64)[:19], false, spd.Tuple{}},
		{"ipv4 udp without ports", ipv4UDP(40, innerSrc, innerDst, 1, 2, false, 64)[:22], false, spd.Tuple{}},
		{"ipv6 udp", v6(17, udp), true, spd.Tuple{Src: src6, Dst: dst6, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv6 hbh+udp", v6(0, hbh(17), udp), true, spd.Tuple{Src: src6, Dst: dst6, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv6 icmp", v6(58, icmp6), true, spd.Tuple{Src: src6, Dst: dst6, Proto: 58, SrcPort: 128}},
		{"ipv6 first fragment", v6(44, frag(17, 0), udp), true, spd.Tuple{Src: src6, Dst: dst6, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv6 non-first fragment", v6(0, hbh(44), frag(17, 100), udp), true, spd.Tuple{Src: src6, Dst: dst6, Proto: 17, NonFirstFragment: true}},
		{"ipv6 truncated extension", v6(0, hbh(17)[:4]), false, spd.Tuple{}},
		{"ipv6 chain too deep", v6(60, hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), udp), false, spd.Tuple{}},
		{"not ip", []byte{0x50, 1, 2, 3}, false, spd.Tuple{}},
		{"empty", nil, false, spd.Tuple{}},
	}
	for _, c := range cases {
		var tu spd.Tuple
		ok := innerTuple(c.pkt, &tu)
		if ok != c.ok || (ok && tu != c.want) {
			t.Errorf("%s: got %v %+v, want %v %+v", c.name, ok, tu, c.ok, c.want)
		}
		// Every prefix of a packet parses or is refused, never panics.
		for i := range c.pkt {
			innerTuple(c.pkt[:i], &tu)
		}
	}
}

// FuzzWorker feeds arbitrary metadata and frames to both directions of the
// worker: nothing panics, nothing leaves unless it was sealed or opened with
// a valid SA, and every frame is accounted for.
func FuzzWorker(f *testing.F) {
	ip := ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64)
	f.Add(outMeta(), outFrame(ip), false)
	f.Add(inMeta(), outFrame(ip), true)
	f.Add(metaBytes(metaOpt{dir: Out, sa: outIdx, egress: 7, l3Off: 18}), outFrame(ip), false)
	f.Add(outMeta(), outFrame(ipv4UDP(1700, innerSrc, innerDst, 1, 2, false, 64)), false)
	r := newRig(f, 0, nil)
	f.Fuzz(func(t *testing.T, meta, frame []byte, inbound bool) {
		if len(meta) > 64 || len(frame) > 1700 {
			return
		}
		k := r.prot
		if inbound {
			k = r.wire
		}
		if !k.Receive(meta, frame) {
			return
		}
		wire, prot := r.step(t)
		for _, f := range wire {
			// Only ESP leaves on the wire.
			if len(f) < 14+20 || (f[14]>>4 == 4 && f[14+9] != 50) || (f[14]>>4 == 6 && f[14+6] != 50) {
				t.Fatalf("non-ESP frame on the wire: %x", f)
			}
		}
		_ = prot
		r.checkFrames(t)
	})
}

// FuzzWorkerInbound is FuzzWorker's inbound direction with authentic
// packets: FuzzWorker's random frames fail the ICV, so the decrypted inner
// packet, the policy check on it and the forwarding to the protected side
// are out of its reach. Here the fuzzer's bytes are the inner packet, sealed
// with the inbound SA's key as the peer gateway (buggy or hostile, but
// holding the keys) would: nothing panics, every frame is accounted for, and
// whatever reaches the protected side matches the inbound SA's selectors.
func FuzzWorkerInbound(f *testing.F) {
	f.Add(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64))
	f.Add(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 1))
	f.Add(ipv4UDP(100, innerDst, innerSrc, 1, 2, false, 64))
	f.Add(ipv4UDP(1400, innerSrc, innerDst, 1, 2, true, 64))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 17, 64})
	r := newRig(f, 0, nil)
	peerOut := newSA(f, spiOut, outerSrc, outerDst, 0)
	sels := lanSelectors()
	buf := make([]byte, esp.Headroom+1800+esp.Tailroom)
	f.Fuzz(func(t *testing.T, inner []byte) {
		if len(inner) > 1600 {
			return
		}
		n := copy(buf[esp.Headroom:], inner)
		s, e, err := peerOut.Encap(buf, esp.Headroom, n)
		if err != nil {
			return // not an IP packet the peer could send
		}
		outer := buf[s:e]
		if len(outer) > 1500 {
			return
		}
		if !r.wire.Receive(inMeta(), ether(gwMAC, peerGwMAC, 0x0800, outer)) {
			return
		}
		_, prot := r.step(t)
		for _, p := range prot {
			var tu spd.Tuple
			if !innerTuple(p[14:], &tu) {
				t.Fatalf("unparsable frame on the protected side: %x", p)
			}
			ok := false
			for _, sel := range sels {
				ok = ok || sel.Matches(tu)
			}
			if !ok {
				t.Fatalf("frame outside the SA's selectors on the protected side: %+v %x", tu, p)
			}
		}
		r.checkFrames(t)
	})
}
