//go:build linux

package worker

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

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
		want ipsec.Tuple
	}{
		{"ipv4 udp", ipv4UDP(40, innerSrc, innerDst, 1234, 53, false, 64), true,
			ipsec.Tuple{Src: innerSrc, Dst: innerDst, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv4 non-first fragment", tcp4(innerSrc, innerDst, 80, 3), true,
			ipsec.Tuple{Src: innerSrc, Dst: innerDst, Proto: 6, NonFirstFragment: true}},
		{"ipv4 truncated", ipv4UDP(40, innerSrc, innerDst, 1, 2, false, 64)[:19], false, ipsec.Tuple{}},
		{"ipv4 udp without ports", ipv4UDP(40, innerSrc, innerDst, 1, 2, false, 64)[:22], false, ipsec.Tuple{}},
		{"ipv6 udp", v6(17, udp), true, ipsec.Tuple{Src: src6, Dst: dst6, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv6 hbh+udp", v6(0, hbh(17), udp), true, ipsec.Tuple{Src: src6, Dst: dst6, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv6 icmp", v6(58, icmp6), true, ipsec.Tuple{Src: src6, Dst: dst6, Proto: 58, SrcPort: 128}},
		{"ipv6 first fragment", v6(44, frag(17, 0), udp), true, ipsec.Tuple{Src: src6, Dst: dst6, Proto: 17, SrcPort: 1234, DstPort: 53}},
		{"ipv6 non-first fragment", v6(0, hbh(44), frag(17, 100), udp), true, ipsec.Tuple{Src: src6, Dst: dst6, Proto: 17, NonFirstFragment: true}},
		{"ipv6 truncated extension", v6(0, hbh(17)[:4]), false, ipsec.Tuple{}},
		{"ipv6 chain too deep", v6(60, hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), hbh(60), udp), false, ipsec.Tuple{}},
		{"not ip", []byte{0x50, 1, 2, 3}, false, ipsec.Tuple{}},
		{"empty", nil, false, ipsec.Tuple{}},
	}
	for _, c := range cases {
		var tu ipsec.Tuple
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
	f.Add(metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: 7, l3Off: 18}), outFrame(ip), false)
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
			var tu ipsec.Tuple
			if !innerTuple(p[14:], &tu) {
				t.Fatalf("unparsable frame on the protected side: %x", p)
			}
			ok := false
			for _, sel := range sels {
				ok = ok || sel.Matches(&tu)
			}
			if !ok {
				t.Fatalf("frame outside the SA's selectors on the protected side: %+v %x", tu, p)
			}
		}
		r.checkFrames(t)
	})
}
