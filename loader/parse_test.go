package loader

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// parseCard has policies whose verdicts tell the parse result apart: a bypass that needs the right ports
// ahead of a discard that does not.
func parseCard(t *testing.T) *Card {
	c := newTestCard(t, Config{})
	dns := anySel("198.18.1.0/24", "198.18.2.0/24")
	dns.Proto, dns.DstPorts = ipsec.ProtoUDP, ipsec.Ports(53, 53)
	ssh := anySel("2001:2:1::/64", "2001:2:2::/64")
	ssh.Proto, ssh.DstPorts = ipsec.ProtoTCP, ipsec.Ports(22, 22)
	ping6 := anySel("2001:2:1::/64", "2001:2:2::/64")
	ping6.Proto, ping6.SrcPorts, ping6.DstPorts = ipsec.ProtoICMPv6, ipsec.Ports(128, 128), ipsec.Ports(0, 0)
	if err := c.PutPolicies(
		ipsec.Policy{ID: 1, Dir: ipsec.DirOut, Priority: 10, Selector: dns, Action: ipsec.ActionBypass},
		ipsec.Policy{ID: 2, Dir: ipsec.DirOut, Priority: 20, Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: ipsec.ActionDiscard},
		ipsec.Policy{ID: 3, Dir: ipsec.DirOut, Priority: 10, Selector: ssh, Action: ipsec.ActionBypass},
		ipsec.Policy{ID: 4, Dir: ipsec.DirOut, Priority: 10, Selector: ping6, Action: ipsec.ActionBypass},
		ipsec.Policy{ID: 5, Dir: ipsec.DirOut, Priority: 20, Selector: anySel("2001:2:1::/64", "2001:2:2::/64"), Action: ipsec.ActionDiscard},
	); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParsePaths(t *testing.T) {
	c := parseCard(t)
	one := func(k string) map[string]uint64 { return map[string]uint64{k: 1} }
	dns := ports(3333, 53, 20)
	v6 := func(proto ipsec.Proto, l4 []byte, exts ...ext) pkt {
		return pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: proto, exts: exts, l4: l4}
	}
	eight := make([]ext, 8)
	for i := range eight {
		eight[i] = ext{nh: 60, len: 8}
	}
	nine := append(append([]ext{}, eight...), ext{nh: 60, len: 8})
	badVersion := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, dns).build()
	badVersion[14] = 0x55
	shortIHL := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, dns).build()
	shortIHL[14] = 0x44
	badV6 := v6(ipsec.ProtoTCP, ports(1, 22, 0)).build()
	badV6[14] = 0x40
	longExt := v6(ipsec.ProtoTCP, ports(1, 22, 0), ext{nh: 0, len: 8}).build()
	longExt[14+40+1] = 200 // hop-by-hop claims 1608 bytes

	runCases(t, c, []verdictCase{
		{"IPv4 UDP ports", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, dns).build(), xdpPass, one("OutBypass")},
		{"IPv4 other port", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(3333, 54, 0)).build(), xdpDrop, one("OutPolBlock")},
		{"IPv4 options", SideProtected, pkt{src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoUDP, v4opts: 40, l4: dns}.build(), xdpPass, one("OutBypass")},
		{"one 802.1Q tag", SideProtected, pkt{vlans: []uint16{0x8100}, src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoUDP, l4: dns}.build(), xdpPass, one("OutBypass")},
		{"802.1ad + 802.1Q tags", SideProtected, pkt{vlans: []uint16{0x88a8, 0x8100}, src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoUDP, l4: dns}.build(), xdpPass, one("OutBypass")},
		{"three tags", SideProtected, pkt{vlans: []uint16{0x88a8, 0x8100, 0x8100}, src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoUDP, l4: dns}.build(), xdpDrop, one("ParseVLANDepth")},
		{"VLAN around ARP", SideProtected, pkt{vlans: []uint16{0x8100}, ethType: 0x0806}.build(), xdpPass, one("NonIP")},
		{"IPv4 version not 4", SideProtected, badVersion, xdpDrop, one("ParseIPv4")},
		{"IPv4 IHL below 5", SideProtected, shortIHL, xdpDrop, one("ParseIPv4")},
		{"IPv6 version not 6", SideProtected, badV6, xdpDrop, one("ParseIPv6")},
		{"IPv6 TCP", SideProtected, v6(ipsec.ProtoTCP, ports(1, 22, 0)).build(), xdpPass, one("OutBypass")},
		{"IPv6 ICMPv6 echo", SideProtected, v6(ipsec.ProtoICMPv6, icmp(128, 0)).build(), xdpPass, one("OutBypass")},
		{"IPv6 ICMPv6 other type", SideProtected, v6(ipsec.ProtoICMPv6, icmp(129, 0)).build(), xdpDrop, one("OutPolBlock")},
		{"IPv6 hop-by-hop, routing, destination options", SideProtected, v6(ipsec.ProtoTCP, ports(1, 22, 0), ext{0, 8}, ext{43, 24}, ext{60, 16}).build(), xdpPass, one("OutBypass")},
		{"IPv6 eight extension headers", SideProtected, v6(ipsec.ProtoTCP, ports(1, 22, 0), eight...).build(), xdpPass, one("OutBypass")},
		{"IPv6 nine extension headers", SideProtected, v6(ipsec.ProtoTCP, ports(1, 22, 0), nine...).build(), xdpDrop, one("ParseIPv6Ext")},
		{"IPv6 extension header past the packet", SideProtected, longExt, xdpDrop, one("ParseIPv6Ext")},
		{"IPv6 no next header", SideProtected, v6(59, nil).build(), xdpDrop, one("OutPolBlock")},

		// Fragments (RFC 4301 §7): first fragments carry ports, non-first ones do not.
		{"IPv4 first fragment", SideProtected, pkt{src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoUDP, moreFrag: true, l4: dns}.build(), xdpPass, one("OutBypass")},
		{"IPv4 non-first fragment behind a port selector", SideProtected, pkt{src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoUDP, fragOff: 100, l4: dns}.build(), xdpDrop, one("FragAmbiguous")},
		{"IPv4 non-first fragment, portless match", SideProtected, pkt{src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoTCP, fragOff: 100, moreFrag: true, l4: []byte{1, 2}}.build(), xdpDrop, one("OutPolBlock")},
		{"IPv6 atomic fragment", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoTCP, frag: true, l4: ports(1, 22, 0)}.build(), xdpPass, one("OutBypass")},
		{"IPv6 non-first fragment behind a port selector", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoTCP, fragOff: 3, l4: []byte{9}}.build(), xdpDrop, one("FragAmbiguous")},
		{"IPv6 non-first fragment after extension headers", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoUDP, exts: []ext{{0, 8}}, fragOff: 3, l4: []byte{9}}.build(), xdpDrop, one("OutPolBlock")},
		{"IPv4 truncated ports", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, []byte{0, 1, 0}).build(), xdpDrop, one("ParseL4")},
		{"IPv4 truncated ICMP", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoICMP, []byte{8}).build(), xdpDrop, one("ParseL4")},
	})
}

// truncCase is a well-formed packet, the side it enters, and how many bytes the parser needs.
type truncCase struct {
	name   string
	side   Side
	p      pkt
	l3     int // offset of the IP header
	needed int // bytes the parser reads: up to the end of ports / ICMP type+code / ESP SPI+seq
}

// TestTruncation cuts packets at every length. A raw cut leaves the IP length fields claiming more than
// the frame holds; a consistent cut also shrinks them, so the parser must notice the missing headers by
// itself. Either way the verdict is a counted drop or a defined verdict — never a read past the end.
func TestTruncation(t *testing.T) {
	c := parseCard(t)
	if err := c.PutSA(saIn, SA{Dir: ipsec.DirIn, SPI: 0x2001, Src: ip("198.18.0.2"), Dst: ip("198.18.0.1"), Mode: ipsec.ModeTunnel}); err != nil {
		t.Fatal(err)
	}
	r := runner(t)
	cases := []truncCase{
		{"IPv4 UDP", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 53, 8)), 14, 14 + 20 + 4},
		{"IPv4 options TCP", SideProtected, pkt{src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoTCP, v4opts: 12, l4: ports(1, 80, 12)}, 14, 14 + 32 + 4},
		{"IPv4 ICMP behind two tags", SideProtected, pkt{vlans: []uint16{0x88a8, 0x8100}, src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoICMP, l4: icmp(8, 0)}, 22, 22 + 20 + 2},
		{"IPv6 extension chain TCP", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoTCP, exts: []ext{{0, 8}, {43, 16}, {60, 8}}, l4: ports(1, 22, 12)}, 14, 14 + 40 + 32 + 4},
		{"IPv6 first fragment UDP", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoUDP, moreFrag: true, l4: ports(1, 53, 8)}, 14, 14 + 40 + 8 + 4},
		{"IPv6 ICMPv6 behind a tag", SideProtected, pkt{vlans: []uint16{0x8100}, src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoICMPv6, l4: icmp(128, 0)}, 18, 18 + 40 + 2},
		{"ESP", SideWire, v4("198.18.0.2", "198.18.0.1", ipsec.ProtoESP, espPayload(0x2001, 1, 16)), 14, 14 + 20 + 8},
		{"ESP over IPv6 with destination options", SideWire, pkt{src: ip("2001:2::2"), dst: ip("2001:2::1"), proto: ipsec.ProtoESP, exts: []ext{{60, 8}}, l4: espPayload(0x2001, 1, 16)}, 14, 14 + 40 + 8 + 8},
	}
	for _, tc := range cases {
		full := tc.p.build()
		fullV, _ := r.run(t, c.program(tc.side), full)
		for cut := 14; cut < len(full); cut++ {
			for _, consistent := range []bool{false, true} {
				data := append([]byte(nil), full[:cut]...)
				if consistent && cut >= tc.l3+4 {
					ipLen := cut - tc.l3
					if tc.p.src.Is4() {
						binary.BigEndian.PutUint16(data[tc.l3+2:], uint16(ipLen))
					} else if ipLen >= 40 {
						binary.BigEndian.PutUint16(data[tc.l3+4:], uint16(ipLen-40))
					}
				}
				var v uint32
				d := reasonDelta(t, c, func() { v, _ = r.run(t, c.program(tc.side), data) })
				parse := ""
				for k := range d {
					if strings.HasPrefix(k, "Parse") {
						parse = k
					}
				}
				switch {
				case v != xdpDrop && v != xdpPass:
					t.Errorf("%s cut %d consistent=%v: verdict %s", tc.name, cut, consistent, verdictName(v))
				case !consistent || cut < tc.needed:
					if v != xdpDrop || parse == "" || len(d) != 1 {
						t.Errorf("%s cut %d/%d consistent=%v: verdict %s, reasons %v; want a counted parse drop",
							tc.name, cut, len(full), consistent, verdictName(v), d)
					}
				default:
					// The parser has what it needs: the packet classifies like the whole one.
					if parse != "" || v != fullV {
						t.Errorf("%s cut %d consistent: verdict %s reasons %v, want %s without parse errors",
							tc.name, cut, verdictName(v), d, verdictName(fullV))
					}
				}
			}
		}
	}
}

// TestMultiBuffer runs a 9000-byte frame (jumbo, split by the kernel into a linear part and fragments)
// through a card loaded with Frags: the IP length is checked against the whole frame, so the packet
// classifies instead of looking truncated.
func TestMultiBuffer(t *testing.T) {
	c := newTestCard(t, Config{Frags: true})
	if err := c.PutPolicies(ipsec.Policy{ID: 1, Dir: ipsec.DirOut, Priority: 1, Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: ipsec.ActionDiscard, SA: ipsec.NoSA}); err != nil {
		t.Fatal(err)
	}
	runCases(t, c, []verdictCase{
		{"jumbo IPv4", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 8950)).build(), xdpDrop, map[string]uint64{"OutPolBlock": 1}},
		{"jumbo IPv6", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoUDP, l4: ports(1, 2, 8900)}.build(), xdpPass, map[string]uint64{"OutBypass": 1}},
		{"small", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 10)).build(), xdpDrop, map[string]uint64{"OutPolBlock": 1}},
	})
	// The protect path (FIB lookup, metadata) on a multi-buffer frame.
	pc := newTestCard(t, Config{Frags: true})
	fillVerdictTables(t, pc)
	data := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 8950)).build()
	var out []byte
	d := reasonDelta(t, pc, func() { _, out = runner(t).run(t, pc.program(SideProtected), data) })
	if d["OutNoSocket"] != 1 || len(d) != 1 {
		t.Fatalf("jumbo protect: reasons %v", d)
	}
	if m := decodeMeta(t, out); m.SaIndex != saOut || m.L4Off != 34 {
		t.Errorf("jumbo protect: metadata %+v", m)
	}
}

func TestPaddingIsNotAHeader(t *testing.T) {
	c := parseCard(t)
	// An IPv4 UDP packet whose total length ends right after the IP header, in a frame padded to the
	// Ethernet minimum: the padding must not be read as ports.
	short := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 53, 20)).build()
	binary.BigEndian.PutUint16(short[14+2:], 20)
	// A non-first IPv6 fragment whose fragment header names destination options: not walked.
	frag := pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: 60, fragOff: 5, l4: []byte{6, 200, 1, 2, 3, 4, 5, 6}}.build()
	runCases(t, c, []verdictCase{
		{"ports in the Ethernet padding", SideProtected, short, xdpDrop, map[string]uint64{"ParseL4": 1}},
		{"non-first IPv6 fragment of destination options", SideProtected, frag, xdpDrop, map[string]uint64{"OutPolBlock": 1}},
	})
}
