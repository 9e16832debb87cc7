package packet

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
	"github.com/xdpsec/xdpsec/ipsec"
)

// TestTuple parses the inner packets the workers' policy check sees, IPv6
// extension chains and fragments included, and refuses truncated ones.
func TestTuple(t *testing.T) {
	src4, dst4 := packettest.Src4, packettest.Dst4
	udp4, _ := packettest.L4Packet(false, 17, 12)
	frag4, _ := packettest.L4Packet(false, 6, 20)
	binary.BigEndian.PutUint16(frag4[6:], 3) // offset 24 bytes: no ports
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
		{"ipv4 udp", udp4, true, ipsec.Tuple{Src: src4, Dst: dst4, Proto: 17, SrcPort: 40000, DstPort: 5201}},
		{"ipv4 non-first fragment", frag4, true, ipsec.Tuple{Src: src4, Dst: dst4, Proto: 6, NonFirstFragment: true}},
		{"ipv4 truncated", udp4[:19], false, ipsec.Tuple{}},
		{"ipv4 udp without ports", udp4[:22], false, ipsec.Tuple{}},
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
		ok := Tuple(c.pkt, &tu)
		if ok != c.ok || (ok && tu != c.want) {
			t.Errorf("%s: got %v %+v, want %v %+v", c.name, ok, tu, c.ok, c.want)
		}
		// Every prefix of a packet parses or is refused, never panics.
		for i := range c.pkt {
			Tuple(c.pkt[:i], &tu)
		}
	}
}
