package loader

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// verdictCase is one packet through one program: the verdict and the reason counters it must move.
type verdictCase struct {
	name    string
	side    Side
	pkt     []byte
	verdict uint32
	reasons map[string]uint64 // exact deltas of the global counters
}

func runCases(t *testing.T, c *Card, cases []verdictCase) {
	t.Helper()
	r := runner(t)
	for _, tc := range cases {
		var v uint32
		d := reasonDelta(t, c, func() { v, _ = r.run(t, c.program(tc.side), tc.pkt) })
		if v != tc.verdict {
			t.Errorf("%s: verdict %s, want %s (reasons %v)", tc.name, verdictName(v), verdictName(tc.verdict), d)
			continue
		}
		if len(d) != len(tc.reasons) {
			t.Errorf("%s: reasons %v, want %v", tc.name, d, tc.reasons)
			continue
		}
		for k, n := range tc.reasons {
			if d[k] != n {
				t.Errorf("%s: reasons %v, want %v", tc.name, d, tc.reasons)
				break
			}
		}
	}
}

const (
	saOut   = 5  // outbound SA, IPv4 outer, neighbour resolved
	saOut6  = 6  // outbound SA, IPv6 outer, neighbour resolved
	saNoNb  = 7  // outbound SA whose next hop has no neighbour entry
	saNoRt  = 8  // outbound SA without a route
	saLarv  = 9  // larval outbound SA
	saIn    = 10 // inbound SA, plain ESP
	saInUDP = 11 // inbound SA, ESP in UDP
	saInLrv = 12 // larval inbound SA
	saIn6   = 13 // inbound SA over IPv6, ESP in UDP
)

// verdictCard is a card with one policy for each outbound and inbound outcome.
func verdictCard(t *testing.T, cfg Config) *Card {
	c := newTestCard(t, cfg)
	fillVerdictTables(t, c)
	return c
}

func fillVerdictTables(t testing.TB, c *Card) {
	sas := map[uint32]SA{
		saOut:   {Dir: ipsec.DirOut, SPI: 0x1001, Src: ip("198.18.0.1"), Dst: ip("198.18.0.2"), Mode: ipsec.ModeTunnel, PolicyID: 1},
		saOut6:  {Dir: ipsec.DirOut, SPI: 0x1002, Src: ip("2001:2::1"), Dst: ip("2001:2::2"), Mode: ipsec.ModeTunnel, PolicyID: 2},
		saNoNb:  {Dir: ipsec.DirOut, SPI: 0x1003, Src: ip("198.18.0.1"), Dst: ip("198.18.0.3"), Mode: ipsec.ModeTunnel, PolicyID: 3},
		saNoRt:  {Dir: ipsec.DirOut, SPI: 0x1004, Src: ip("198.18.0.1"), Dst: ip("198.19.255.1"), Mode: ipsec.ModeTunnel, PolicyID: 4},
		saLarv:  {Dir: ipsec.DirOut, SPI: 0x1005, Src: ip("198.18.0.1"), Dst: ip("198.18.0.2"), Mode: ipsec.ModeTunnel, Larval: true},
		saIn:    {Dir: ipsec.DirIn, SPI: 0x2001, Src: ip("198.18.0.2"), Dst: ip("198.18.0.1"), Mode: ipsec.ModeTunnel, PolicyID: 20},
		saInUDP: {Dir: ipsec.DirIn, SPI: 0x2002, Src: ip("198.18.0.2"), Dst: ip("198.18.0.1"), Mode: ipsec.ModeTunnel, EncapSrcPort: 4500, EncapDstPort: 4500, PolicyID: 20},
		saInLrv: {Dir: ipsec.DirIn, SPI: 0x2003, Src: ip("198.18.0.2"), Dst: ip("198.18.0.1"), Mode: ipsec.ModeTunnel, Larval: true},
		saIn6:   {Dir: ipsec.DirIn, SPI: 0x2004, Src: ip("2001:2::2"), Dst: ip("2001:2::1"), Mode: ipsec.ModeTunnel, EncapSrcPort: 4500, EncapDstPort: 4500, PolicyID: 20},
	}
	for idx, sa := range sas {
		if err := c.PutSA(idx, sa); err != nil {
			t.Fatal(err)
		}
	}
	tcp80 := anySel("198.18.1.0/24", "198.18.2.0/24")
	tcp80.Proto, tcp80.DstPorts = ipsec.ProtoTCP, ipsec.Ports(80, 80)
	icmpEcho := anySel("198.18.1.0/24", "198.18.2.0/24")
	icmpEcho.Proto, icmpEcho.SrcPorts, icmpEcho.DstPorts = ipsec.ProtoICMP, ipsec.Ports(8, 8), ipsec.Ports(0, 0)
	ikeIn := anySel("0.0.0.0/0", "0.0.0.0/0")
	ikeIn.Proto, ikeIn.DstPorts = ipsec.ProtoUDP, ipsec.Ports(500, 500)
	natt := ikeIn // NAT-T to the gateway's wire network only (to the protected hosts it is plain UDP)
	natt.Dst, natt.DstPorts = pfx("198.18.0.0/24"), ipsec.Ports(4500, 4500)
	pols := []ipsec.Policy{
		{ID: 1, Dir: ipsec.DirOut, Priority: 100, Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: ipsec.ActionProtect, SA: saOut},
		{ID: 2, Dir: ipsec.DirOut, Priority: 100, Selector: anySel("2001:2:1::/64", "2001:2:2::/64"), Action: ipsec.ActionProtect, SA: saOut6},
		{ID: 3, Dir: ipsec.DirOut, Priority: 100, Selector: anySel("198.18.3.0/24", "198.18.2.0/24"), Action: ipsec.ActionProtect, SA: saNoNb},
		{ID: 4, Dir: ipsec.DirOut, Priority: 100, Selector: anySel("198.18.4.0/24", "198.18.2.0/24"), Action: ipsec.ActionProtect, SA: saNoRt},
		{ID: 5, Dir: ipsec.DirOut, Priority: 100, Selector: anySel("198.18.5.0/24", "198.18.2.0/24"), Action: ipsec.ActionProtect, SA: saLarv},
		{ID: 6, Dir: ipsec.DirOut, Priority: 100, Selector: anySel("198.18.6.0/24", "198.18.2.0/24"), Action: ipsec.ActionProtect, SA: ipsec.NoSA},
		{ID: 7, Dir: ipsec.DirOut, Priority: 50, Selector: tcp80, Action: ipsec.ActionBypass},
		{ID: 8, Dir: ipsec.DirOut, Priority: 50, Selector: icmpEcho, Action: ipsec.ActionDiscard},
		{ID: 20, Dir: ipsec.DirIn, Priority: 100, Selector: anySel("198.18.2.0/24", "198.18.1.0/24"), Action: ipsec.ActionProtect, SA: saIn},
		{ID: 21, Dir: ipsec.DirIn, Priority: 10, Selector: ikeIn, Action: ipsec.ActionBypass},
		{ID: 22, Dir: ipsec.DirIn, Priority: 10, Selector: natt, Action: ipsec.ActionBypass},
		{ID: 23, Dir: ipsec.DirIn, Priority: 100, Selector: anySel("198.18.9.0/24", "198.18.1.0/24"), Action: ipsec.ActionDiscard},
		{ID: 24, Dir: ipsec.DirIn, Priority: 100, Selector: espFrom7, Action: ipsec.ActionBypass},
	}
	if err := c.PutPolicies(pols...); err != nil {
		t.Fatal(err)
	}
	// The gateway's own addresses in the test namespace (xs-d0): ESP-in-UDP ends there.
	if err := c.SetLocalAddrs([]netip.Addr{ip("198.18.0.1"), ip("2001:2::1")}); err != nil {
		t.Fatal(err)
	}
}

// espFrom7 selects ESP from 198.18.0.7 to the gateway: an inbound BYPASS for ESP the card does not
// offload (a peer whose SAs another implementation handles).
var espFrom7 = ipsec.Selector{Src: pfx("198.18.0.7/32"), Dst: pfx("198.18.0.1/32"), Proto: ipsec.ProtoESP,
	SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.AnyPorts}

func v4(src, dst string, proto ipsec.Proto, l4 []byte) pkt {
	return pkt{src: ip(src), dst: ip(dst), proto: proto, l4: l4}
}

func TestOutboundVerdicts(t *testing.T) {
	c := verdictCard(t, Config{Defaults: ipsec.Defaults{Out: ipsec.ActionBypass, In: ipsec.ActionDiscard}})
	one := func(k string) map[string]uint64 { return map[string]uint64{k: 1} }
	runCases(t, c, []verdictCase{
		{"protect, next hop resolved, no socket", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 10)).build(), xdpDrop, one("OutNoSocket")},
		{"protect over IPv6 outer", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoTCP, l4: ports(1, 2, 12)}.build(), xdpDrop, one("OutNoSocket")},
		{"protect, no neighbour", SideProtected, v4("198.18.3.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpDrop, map[string]uint64{"FibNoNeigh": 1, "OutNoSocket": 1}},
		{"protect, no route", SideProtected, v4("198.18.4.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpDrop, one("FibNoRoute")},
		{"protect, larval SA", SideProtected, v4("198.18.5.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpDrop, map[string]uint64{"OutNoStates": 1, "AcquireSent": 1}},
		{"protect, no SA", SideProtected, v4("198.18.6.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpDrop, map[string]uint64{"OutNoStates": 1, "AcquireSent": 1}},
		{"protect, no SA, rate-limited acquire", SideProtected, v4("198.18.6.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 3, 0)).build(), xdpDrop, one("OutNoStates")},
		{"bypass by port", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoTCP, ports(1000, 80, 20)).build(), xdpPass, one("OutBypass")},
		{"port outside the bypass range", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoTCP, ports(1000, 81, 20)).build(), xdpDrop, one("OutNoSocket")},
		{"discard by ICMP type and code", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoICMP, icmp(8, 0)).build(), xdpDrop, one("OutPolBlock")},
		{"ICMP code outside the selector", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoICMP, icmp(8, 1)).build(), xdpDrop, one("OutNoSocket")},
		{"no policy: default bypass", SideProtected, v4("198.18.7.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpPass, one("OutBypass")},
		{"non-IP passes", SideProtected, pkt{ethType: 0x0806}.build(), xdpPass, one("NonIP")},
	})

	// Default discard.
	if err := c.SetDefaults(ipsec.Defaults{Out: ipsec.ActionDiscard, In: ipsec.ActionDiscard}); err != nil {
		t.Fatal(err)
	}
	runCases(t, c, []verdictCase{
		{"no policy: default discard", SideProtected, v4("198.18.7.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpDrop, one("OutNoPols")},
	})
	if err := c.SetDefaults(ipsec.Defaults{Out: ipsec.ActionProtect}); !errors.Is(err, ErrInvalid) {
		t.Errorf("default protect: err = %v, want ErrInvalid", err)
	}
}

func TestOutboundMetadata(t *testing.T) {
	c := verdictCard(t, Config{})
	r := runner(t)
	for _, tc := range []struct {
		name   string
		p      pkt
		sa     uint32
		policy uint16
		flags  uint16
		l3, l4 int
	}{
		{"IPv4 in, IPv4 outer", v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 10)), saOut, 1, 0, 14, 34},
		{"IPv4 with options and a VLAN tag", pkt{vlans: []uint16{0x8100}, src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoTCP, v4opts: 8, l4: ports(1, 2, 20)},
			saOut, 1, bpf.MetaVLAN, 18, 46},
		{"IPv6 in, IPv6 outer, extension headers", pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoTCP, exts: []ext{{nh: 0, len: 8}, {nh: 60, len: 16}}, l4: ports(1, 2, 20)},
			saOut6, 2, bpf.MetaIPv6 | bpf.MetaOuterIPv6, 14, 14 + 40 + 24},
		{"no neighbour", v4("198.18.3.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 10)), saNoNb, 3, bpf.MetaNoNeigh, 14, 34},
	} {
		data := tc.p.build()
		v, out := r.run(t, c.program(SideProtected), data)
		if v != xdpDrop {
			t.Errorf("%s: verdict %s", tc.name, verdictName(v))
		}
		if len(out) != len(data)+bpf.MetaSize || !bytes.Equal(out[bpf.MetaSize:], data) {
			t.Fatalf("%s: output is not metadata + the unchanged packet (%d bytes, packet %d)", tc.name, len(out), len(data))
		}
		m := decodeMeta(t, out)
		if m.Dir != 0 || m.SaIndex != tc.sa || m.PolicyId != tc.policy || m.Flags != tc.flags ||
			int(m.L3Off) != tc.l3 || int(m.L4Off) != tc.l4 || ipsec.Proto(m.L4Proto) != tc.p.proto {
			t.Errorf("%s: metadata %+v; want sa %d policy %d flags %#x l3 %d l4 %d", tc.name, m, tc.sa, tc.policy, tc.flags, tc.l3, tc.l4)
		}
		if int(m.EgressIfindex) != r.ifindex {
			t.Errorf("%s: egress ifindex %d, want %d (xs-d0)", tc.name, m.EgressIfindex, r.ifindex)
		}
		if tc.flags&bpf.MetaNoNeigh == 0 {
			if !bytes.Equal(m.Smac[:], r.mac) || !bytes.Equal(m.Dmac[:], neighMAC) {
				t.Errorf("%s: MACs %x → %x, want %s → %s", tc.name, m.Smac, m.Dmac, r.mac, neighMAC)
			}
		}
	}
}

func TestAcquireRecord(t *testing.T) {
	c := newTestCard(t, Config{AcquireInterval: time.Hour})
	if err := c.PutPolicies(ipsec.Policy{ID: 3, Dir: ipsec.DirOut, Priority: 1, Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: ipsec.ActionProtect, SA: ipsec.NoSA}); err != nil {
		t.Fatal(err)
	}
	rd, err := c.NewAcquireReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := runner(t)
	r.run(t, c.program(SideProtected), v4("198.18.1.7", "198.18.2.9", ipsec.ProtoTCP, ports(4321, 443, 0)).build())
	r.run(t, c.program(SideProtected), v4("198.18.1.8", "198.18.2.9", ipsec.ProtoTCP, ports(4321, 443, 0)).build())
	rd.SetDeadline(time.Now().Add(2 * time.Second))
	a, err := rd.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := ipsec.Tuple{Src: ip("198.18.1.7"), Dst: ip("198.18.2.9"), Proto: ipsec.ProtoTCP, SrcPort: 4321, DstPort: 443}
	if a.PolicyID != 3 || a.SA != ipsec.NoSA || a.Dir != ipsec.DirOut || a.Tuple != want || a.Time == 0 {
		t.Errorf("acquire %+v, want policy 3, no SA, tuple %+v", a, want)
	}
	rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if a, err := rd.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("second acquire within the interval: %+v, %v; want none", a, err)
	}
}

func TestInboundVerdicts(t *testing.T) {
	c := verdictCard(t, Config{Defaults: ipsec.Defaults{In: ipsec.ActionDiscard}})
	one := func(k string) map[string]uint64 { return map[string]uint64{k: 1} }
	wan := func(l4 []byte, proto ipsec.Proto) []byte { return v4("198.18.0.2", "198.18.0.1", proto, l4).build() }
	runCases(t, c, []verdictCase{
		{"ESP of an offloaded SA, no socket", SideWire, wan(espPayload(0x2001, 1, 32), ipsec.ProtoESP), xdpDrop, one("InNoSocket")},
		{"ESP with an unknown SPI: the inbound SPD decides (default discard)", SideWire, wan(espPayload(0x9999, 1, 32), ipsec.ProtoESP), xdpDrop,
			map[string]uint64{"InNoStates": 1, "InNoPols": 1}},
		{"ESP with an unknown SPI an inbound BYPASS covers", SideWire, v4("198.18.0.7", "198.18.0.1", ipsec.ProtoESP, espPayload(0x9999, 1, 32)).build(), xdpPass,
			map[string]uint64{"InNoStates": 1, "InBypass": 1}},
		{"ESP of an offloaded SPI for another destination", SideWire, v4("198.18.0.2", "198.18.0.9", ipsec.ProtoESP, espPayload(0x2001, 1, 32)).build(), xdpDrop,
			map[string]uint64{"InNoStates": 1, "InNoPols": 1}},
		{"forged ESP to a protected host", SideWire, v4("198.18.2.5", "198.18.1.5", ipsec.ProtoESP, espPayload(0x2001, 1, 32)).build(), xdpDrop,
			map[string]uint64{"InNoStates": 1, "InTmplMismatch": 1}},
		{"forged ESP-in-UDP to a protected host is plain UDP", SideWire, v4("198.18.2.5", "198.18.1.5", ipsec.ProtoUDP, udpESP(4500, 4500, 0x2002, 1, 32)).build(), xdpDrop,
			one("InTmplMismatch")},
		{"non-ESP marker to a protected host is plain UDP", SideWire, v4("198.18.2.5", "198.18.1.5", ipsec.ProtoUDP, udpESP(4500, 4500, 0, 0, 32)).build(), xdpDrop,
			one("InTmplMismatch")},
		{"ESP-in-UDP to another host is plain UDP (a NAT-T bypass covers it)", SideWire, v4("198.18.0.2", "198.18.0.9", ipsec.ProtoUDP, udpESP(4500, 4500, 0x2002, 1, 32)).build(), xdpPass,
			one("InBypass")},
		{"ESP-in-UDP with an unknown SPI to the gateway: the inbound SPD decides", SideWire, wan(udpESP(4500, 4500, 0x9999, 1, 32), ipsec.ProtoUDP), xdpPass,
			map[string]uint64{"InNoStates": 1, "InBypass": 1}},
		{"fragmented ESP to a protected host: the inbound SPD decides", SideWire, pkt{src: ip("198.18.2.5"), dst: ip("198.18.1.5"), proto: ipsec.ProtoESP, moreFrag: true, l4: espPayload(0x2001, 1, 32)}.build(), xdpDrop,
			one("InTmplMismatch")},
		{"ESP of a larval SA", SideWire, wan(espPayload(0x2003, 1, 32), ipsec.ProtoESP), xdpDrop, one("InStateInvalid")},
		{"ESP of a UDP-encapsulated SA without UDP", SideWire, wan(espPayload(0x2002, 1, 32), ipsec.ProtoESP), xdpDrop, one("InStateMismatch")},
		{"ESP-in-UDP of an offloaded SA", SideWire, wan(udpESP(4500, 4500, 0x2002, 1, 32), ipsec.ProtoUDP), xdpDrop, one("InNoSocket")},
		{"ESP-in-UDP of a plain-ESP SA", SideWire, wan(udpESP(4500, 4500, 0x2001, 1, 32), ipsec.ProtoUDP), xdpDrop, one("InStateMismatch")},
		{"IKE on 4500 (non-ESP marker) to the gateway: its stack", SideWire, wan(udpESP(4500, 4500, 0, 0, 32), ipsec.ProtoUDP), xdpPass, one("InIKE")},
		{"NAT-keepalive on 4500 to the gateway: its stack", SideWire, wan(append(ports(4500, 4500, 0), 0xff), ipsec.ProtoUDP), xdpPass, one("InIKE")},
		{"IKE on 4500 over IPv6 to the gateway", SideWire, pkt{src: ip("2001:2::2"), dst: ip("2001:2::1"), proto: ipsec.ProtoUDP, l4: udpESP(4500, 4500, 0, 0, 32)}.build(), xdpPass, one("InIKE")},
		{"IKE on 500: bypass", SideWire, wan(ports(500, 500, 100), ipsec.ProtoUDP), xdpPass, one("InBypass")},
		{"truncated ESP header", SideWire, wan([]byte{0, 0, 0x20, 1, 0, 0}, ipsec.ProtoESP), xdpDrop, one("ParseESP")},
		{"fragmented ESP to the gateway goes to its stack", SideWire, pkt{src: ip("198.18.0.2"), dst: ip("198.18.0.1"), proto: ipsec.ProtoESP, moreFrag: true, l4: espPayload(0x2001, 1, 32)}.build(), xdpPass, one("InESPFragment")},
		{"plaintext a PROTECT policy covers", SideWire, v4("198.18.2.5", "198.18.1.5", ipsec.ProtoTCP, ports(1, 2, 0)).build(), xdpDrop, one("InTmplMismatch")},
		{"plaintext a DISCARD policy covers", SideWire, v4("198.18.9.5", "198.18.1.5", ipsec.ProtoTCP, ports(1, 2, 0)).build(), xdpDrop, one("InPolBlock")},
		{"plaintext without policy: default discard", SideWire, v4("198.18.8.5", "198.18.1.5", ipsec.ProtoTCP, ports(1, 2, 0)).build(), xdpDrop, one("InNoPols")},
		{"non-IP passes", SideWire, pkt{ethType: 0x0806}.build(), xdpPass, one("NonIP")},
	})
}

func TestInboundNoSocketPass(t *testing.T) {
	c := verdictCard(t, Config{InNoSocketPass: true})
	r := runner(t)
	for _, tc := range []struct {
		name   string
		p      pkt
		sa     uint32
		flags  uint16
		l3, l4 int
		proto  ipsec.Proto
	}{
		{"ESP in UDP over IPv4", v4("198.18.0.2", "198.18.0.1", ipsec.ProtoUDP, udpESP(4500, 4500, 0x2002, 7, 32)), saInUDP, bpf.MetaUDPEncap, 14, 34, ipsec.ProtoUDP},
		{"ESP over IPv4 behind a VLAN tag", pkt{vlans: []uint16{0x8100}, src: ip("198.18.0.2"), dst: ip("198.18.0.1"), proto: ipsec.ProtoESP, l4: espPayload(0x2001, 7, 32)}, saIn, bpf.MetaVLAN, 18, 38, ipsec.ProtoESP},
		{"ESP in UDP over IPv6 with destination options", pkt{src: ip("2001:2::2"), dst: ip("2001:2::1"), proto: ipsec.ProtoUDP, exts: []ext{{60, 16}}, l4: udpESP(4500, 4500, 0x2004, 7, 32)},
			saIn6, bpf.MetaUDPEncap | bpf.MetaIPv6, 14, 14 + 40 + 16, ipsec.ProtoUDP},
	} {
		v, out := r.run(t, c.program(SideWire), tc.p.build())
		if v != xdpPass {
			t.Errorf("%s: verdict %s, want PASS (no socket, configured to pass)", tc.name, verdictName(v))
			continue
		}
		m := decodeMeta(t, out)
		if m.Dir != 1 || m.SaIndex != tc.sa || m.PolicyId != 20 || m.Flags != tc.flags || int(m.L3Off) != tc.l3 || int(m.L4Off) != tc.l4 || ipsec.Proto(m.L4Proto) != tc.proto {
			t.Errorf("%s: metadata %+v", tc.name, m)
		}
	}
}

// TestGuardVerdicts: in guard state (a daemon stopped, or starting) the card drops what only a
// worker may handle — traffic of PROTECT policies, with or without a usable SA, and ESP of the SAs it
// holds — and counts it under OutGuard and InGuard, while BYPASS (IKE), DISCARD, the default verdicts
// and the inbound SPD work as always. Lifting the guard brings the normal verdicts back.
func TestGuardVerdicts(t *testing.T) {
	c := verdictCard(t, Config{Guard: true, Defaults: ipsec.Defaults{Out: ipsec.ActionBypass, In: ipsec.ActionDiscard}})
	if g, err := c.Guarded(); err != nil || !g {
		t.Fatalf("loaded with Guard: Guarded() = %v, %v", g, err)
	}
	one := func(k string) map[string]uint64 { return map[string]uint64{k: 1} }
	wan := func(l4 []byte, proto ipsec.Proto) []byte { return v4("198.18.0.2", "198.18.0.1", proto, l4).build() }
	protect := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 10)).build()
	esp := wan(espPayload(0x2001, 1, 32), ipsec.ProtoESP)
	runCases(t, c, []verdictCase{
		{"protect, usable SA", SideProtected, protect, xdpDrop, one("OutGuard")},
		{"protect over IPv6", SideProtected, pkt{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoTCP, l4: ports(1, 2, 12)}.build(), xdpDrop, one("OutGuard")},
		{"protect, no SA: no ACQUIRE while guarded", SideProtected, v4("198.18.6.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpDrop, one("OutGuard")},
		{"outbound bypass", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoTCP, ports(1000, 80, 20)).build(), xdpPass, one("OutBypass")},
		{"outbound discard", SideProtected, v4("198.18.1.1", "198.18.2.1", ipsec.ProtoICMP, icmp(8, 0)).build(), xdpDrop, one("OutPolBlock")},
		{"no outbound policy: default bypass", SideProtected, v4("198.18.7.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpPass, one("OutBypass")},
		{"ESP of an offloaded SA", SideWire, esp, xdpDrop, one("InGuard")},
		{"ESP-in-UDP of an offloaded SA", SideWire, wan(udpESP(4500, 4500, 0x2002, 1, 32), ipsec.ProtoUDP), xdpDrop, one("InGuard")},
		{"ESP of a larval SA", SideWire, wan(espPayload(0x2003, 1, 32), ipsec.ProtoESP), xdpDrop, one("InGuard")},
		{"IKE on 500: bypass", SideWire, wan(ports(500, 500, 100), ipsec.ProtoUDP), xdpPass, one("InBypass")},
		{"IKE on 4500 to the gateway", SideWire, wan(udpESP(4500, 4500, 0, 0, 32), ipsec.ProtoUDP), xdpPass, one("InIKE")},
		{"ESP with an unknown SPI: the inbound SPD", SideWire, wan(espPayload(0x9999, 1, 32), ipsec.ProtoESP), xdpDrop, map[string]uint64{"InNoStates": 1, "InNoPols": 1}},
		{"plaintext a PROTECT policy covers", SideWire, v4("198.18.2.5", "198.18.1.5", ipsec.ProtoTCP, ports(1, 2, 0)).build(), xdpDrop, one("InTmplMismatch")},
		{"plaintext a DISCARD policy covers", SideWire, v4("198.18.9.5", "198.18.1.5", ipsec.ProtoTCP, ports(1, 2, 0)).build(), xdpDrop, one("InPolBlock")},
	})
	if err := c.SetGuard(false); err != nil {
		t.Fatal(err)
	}
	if g, err := c.Guarded(); err != nil || g {
		t.Fatalf("after SetGuard(false): Guarded() = %v, %v", g, err)
	}
	runCases(t, c, []verdictCase{
		{"protect after the guard: to the worker (none bound)", SideProtected, protect, xdpDrop, one("OutNoSocket")},
		{"ESP after the guard: to the worker (none bound)", SideWire, esp, xdpDrop, one("InNoSocket")},
	})
	// Default verdicts change in place without touching the guard, and the other way round.
	if err := c.SetGuard(true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDefaults(ipsec.Defaults{Out: ipsec.ActionDiscard, In: ipsec.ActionDiscard}); err != nil {
		t.Fatal(err)
	}
	runCases(t, c, []verdictCase{
		{"guard kept across a change of defaults", SideProtected, protect, xdpDrop, one("OutGuard")},
		{"new default under the guard", SideProtected, v4("198.18.7.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 0)).build(), xdpDrop, one("OutNoPols")},
	})
}
