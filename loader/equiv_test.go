package loader

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// spdGen draws SPDs and packets from small address, port and priority pools, so that packets hit
// selectors, selectors overlap and priorities tie often.
type spdGen struct {
	r *rand.Rand
}

func (g spdGen) addr(v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, byte(g.r.IntN(4)), 15: byte(g.r.IntN(8))})
	}
	return netip.AddrFrom4([4]byte{198, 18, byte(g.r.IntN(4)), byte(g.r.IntN(8))})
}

func (g spdGen) prefix(v6 bool) netip.Prefix {
	bits := []int{0, 16, 24, 29, 30, 32}
	if v6 {
		bits = []int{0, 48, 64, 125, 126, 128}
	}
	return netip.PrefixFrom(g.addr(v6), bits[g.r.IntN(len(bits))]).Masked()
}

var portPool = []uint16{0, 1, 2, 3, 53, 54, 500, 4500, 65535}

func (g spdGen) port() uint16 { return portPool[g.r.IntN(len(portPool))] }

func (g spdGen) portRange(max uint16) ipsec.PortRange {
	if g.r.IntN(2) == 0 {
		return ipsec.AnyPorts
	}
	a, b := min(g.port(), max), min(g.port(), max)
	return ipsec.Ports(min(a, b), max16(a, b))
}

func max16(a, b uint16) uint16 {
	if a > b {
		return a
	}
	return b
}

var protoPool = []ipsec.Proto{ipsec.ProtoAny, ipsec.ProtoAny, ipsec.ProtoTCP, ipsec.ProtoUDP, ipsec.ProtoICMP, ipsec.ProtoICMPv6, ipsec.ProtoESP, 47, ipsec.ProtoSCTP}

func (g spdGen) policy(id uint32, sas uint32) ipsec.Policy {
	v6 := g.r.IntN(2) == 0
	s := ipsec.Selector{Src: g.prefix(v6), Dst: g.prefix(v6), Proto: protoPool[g.r.IntN(len(protoPool))], SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.AnyPorts}
	switch {
	case s.Proto.HasPorts():
		s.SrcPorts, s.DstPorts = g.portRange(65535), g.portRange(65535)
	case s.Proto.IsICMP():
		s.SrcPorts, s.DstPorts = g.portRange(255), g.portRange(255)
	}
	p := ipsec.Policy{ID: id, Dir: ipsec.Dir(g.r.IntN(2)), Priority: uint32(g.r.IntN(6)), Selector: s, Action: ipsec.Action(g.r.IntN(3)), SA: ipsec.NoSA}
	if p.Action == ipsec.ActionProtect && g.r.IntN(8) != 0 {
		p.SA = uint32(g.r.IntN(int(sas)))
	}
	return p
}

var pktProtos = []ipsec.Proto{ipsec.ProtoTCP, ipsec.ProtoUDP, ipsec.ProtoICMP, ipsec.ProtoICMPv6, ipsec.ProtoESP, 47, ipsec.ProtoSCTP}

// tuple draws a packet's tuple; inbound ESP and ESP-in-UDP take the SA path, not the SPD, so they are
// not drawn for the wire side.
func (g spdGen) tuple(dir ipsec.Dir) (ipsec.Tuple, bool) {
	v6 := g.r.IntN(2) == 0
	t := ipsec.Tuple{Src: g.addr(v6), Dst: g.addr(v6), Proto: pktProtos[g.r.IntN(len(pktProtos))]}
	first := false
	switch n := g.r.IntN(20); {
	case n < 3:
		t.NonFirstFragment = true
	case n < 5:
		first = true
	}
	if !t.NonFirstFragment {
		switch {
		case t.Proto.HasPorts():
			t.SrcPort, t.DstPort = g.port(), g.port()
		case t.Proto.IsICMP():
			t.SrcPort, t.DstPort = uint16(g.r.IntN(4)), uint16(g.r.IntN(3))
		}
	}
	if dir == ipsec.DirIn && (t.Proto == ipsec.ProtoESP || t.Proto == ipsec.ProtoUDP && t.DstPort == 4500) {
		t.Proto = ipsec.ProtoTCP
	}
	return t, first
}

// tuplePacket builds a packet with tuple t; with r, it also wraps it in 0–2 VLAN tags and, for IPv6,
// puts 0–3 extension headers before the upper layer, which must not change the classification.
func tuplePacket(t ipsec.Tuple, first bool, r *rand.Rand) []byte {
	var l4 []byte
	switch {
	case t.NonFirstFragment:
		l4 = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	case t.Proto.HasPorts():
		l4 = ports(t.SrcPort, t.DstPort, 4)
	case t.Proto.IsICMP():
		l4 = icmp(uint8(t.SrcPort), uint8(t.DstPort))
	case t.Proto == ipsec.ProtoESP:
		l4 = espPayload(0x7777, 1, 8)
	default:
		l4 = []byte{0, 0, 8, 0}
	}
	p := pkt{src: t.Src, dst: t.Dst, proto: t.Proto, l4: l4, moreFrag: first}
	if t.NonFirstFragment {
		p.fragOff = 10
	}
	if r != nil {
		p.vlans = [][]uint16{nil, nil, {0x8100}, {0x88a8, 0x8100}}[r.IntN(4)]
		if t.Dst.Is6() {
			for range r.IntN(4) {
				p.exts = append(p.exts, []ext{{0, 8}, {43, 24}, {60, 16}}[r.IntN(3)])
			}
		}
	}
	return p.build()
}

// cardOutcome names what the card must do for the reference's decision: the reason counter that moves.
func expectedReason(dir ipsec.Dir, d ipsec.Decision, saValid func(uint32) bool) (uint32, string) {
	switch {
	case d.Ambiguous:
		return xdpDrop, "FragAmbiguous"
	case dir == ipsec.DirOut && d.Action == ipsec.ActionBypass:
		return xdpPass, "OutBypass"
	case dir == ipsec.DirOut && d.Action == ipsec.ActionDiscard && d.Matched:
		return xdpDrop, "OutPolBlock"
	case dir == ipsec.DirOut && d.Action == ipsec.ActionDiscard:
		return xdpDrop, "OutNoPols"
	case dir == ipsec.DirOut && saValid(d.SA):
		return xdpDrop, "OutNoSocket"
	case dir == ipsec.DirOut:
		return xdpDrop, "OutNoStates"
	case d.Action == ipsec.ActionBypass:
		return xdpPass, "InBypass"
	case d.Action == ipsec.ActionProtect:
		return xdpDrop, "InTmplMismatch"
	case d.Matched:
		return xdpDrop, "InPolBlock"
	}
	return xdpDrop, "InNoPols"
}

// TestEquivalence compares the card with package ipsec's reference classifier on random SPDs and packets:
// the verdict, the reason, the winning policy (its hit counter) and, for PROTECT, the SA in the metadata.
// All SPDs go through one card, so every ReplaceSPD also tests that the flow cache forgets the old SPD.
func TestEquivalence(t *testing.T) {
	const (
		spds    = 100
		packets = 1000
	)
	e := newEquivCard(t, 1024)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	g := spdGen{r: rand.New(rand.NewPCG(seed, 1))}
	for s := 0; s < spds && e.mismatches < 10; s++ {
		n := 1 + g.r.IntN(64)
		if s%10 == 9 {
			n = 200 + g.r.IntN(300)
		}
		ids := g.r.Perm(1024)[:n]
		pols := make([]ipsec.Policy, n)
		for i := range pols {
			pols[i] = g.policy(uint32(ids[i]), equivSAs)
		}
		defs := ipsec.Defaults{Out: ipsec.Action(2 * g.r.IntN(2)), In: ipsec.Action(2 * g.r.IntN(2))}
		e.replace(pols, defs)
		for k := 0; k < packets && e.mismatches < 10; k++ {
			dir := ipsec.Dir(g.r.IntN(2))
			tup, first := g.tuple(dir)
			e.check(fmt.Sprintf("spd %d packet %d", s, k), dir, tup, tuplePacket(tup, first, g.r))
		}
	}
}

// equivSAs are the SAs of an equivalence card: 0..9 usable, 10..11 larval.
const equivSAs = 12

// equivCard runs packets through a card and compares each outcome with the reference classifier of the
// SPD it holds.
type equivCard struct {
	t          *testing.T
	c          *Card
	r          *nsRunner
	reasonIdx  map[string]uint32
	pols       []ipsec.Policy
	ref        *ipsec.Classifier
	mismatches int
}

func newEquivCard(t *testing.T, policies uint32) *equivCard {
	c := newTestCard(t, Config{Policies: policies, SAs: 64})
	for i := uint32(0); i < equivSAs; i++ {
		if err := c.PutSA(i, SA{Dir: ipsec.DirOut, SPI: 0x100 + i, Src: ip("198.18.0.1"), Dst: ip("198.18.0.2"), Mode: ipsec.ModeTunnel, Larval: i >= 10}); err != nil {
			t.Fatal(err)
		}
	}
	e := &equivCard{t: t, c: c, r: runner(t), reasonIdx: map[string]uint32{}}
	for i, n := range reasonNames {
		e.reasonIdx[n] = uint32(i)
	}
	return e
}

// replace installs pols and defs as the card's whole SPD.
func (e *equivCard) replace(pols []ipsec.Policy, defs ipsec.Defaults) {
	if err := e.c.ReplaceSPD(pols); err != nil {
		e.t.Fatal(err)
	}
	if err := e.c.SetDefaults(defs); err != nil {
		e.t.Fatal(err)
	}
	e.reference(pols, defs)
}

// reference sets the SPD the card is expected to hold.
func (e *equivCard) reference(pols []ipsec.Policy, defs ipsec.Defaults) {
	ref, err := ipsec.NewClassifier(pols, defs)
	if err != nil {
		e.t.Fatal(err)
	}
	e.pols, e.ref = pols, ref
}

func (e *equivCard) readReason(name string) uint64 {
	var per []uint64
	if err := e.c.objs.Reasons.Lookup(e.reasonIdx[name], &per); err != nil {
		e.t.Fatal(err)
	}
	var s uint64
	for _, v := range per {
		s += v
	}
	return s
}

// check runs one packet of tuple tup through the card's side for dir and compares the verdict, the
// reason that moved, the winning policy's hit counter and, for PROTECT, the metadata's SA and policy.
func (e *equivCard) check(what string, dir ipsec.Dir, tup ipsec.Tuple, data []byte) {
	t, c := e.t, e.c
	want := e.ref.Lookup(dir, tup)
	wantV, wantR := expectedReason(dir, want, func(i uint32) bool { return i < 10 })
	side := SideProtected
	if dir == ipsec.DirIn {
		side = SideWire
	}
	before := e.readReason(wantR)
	var polBefore PolicyStats
	if want.Matched {
		polBefore, _ = c.PolicyStats(want.PolicyID)
	}
	v, out := e.r.run(t, c.program(side), data)
	after := e.readReason(wantR)
	fail := func(format string, args ...any) {
		e.mismatches++
		t.Errorf("%s (%s %+v): %s; reference %+v; policies:\n%s", what, dir, tup,
			fmt.Sprintf(format, args...), want, dumpPolicies(e.pols, dir))
	}
	if v != wantV || after != before+1 {
		fail("verdict %s, %s moved by %d; want %s", verdictName(v), wantR, after-before, verdictName(wantV))
		return
	}
	if want.Matched {
		pa, _ := c.PolicyStats(want.PolicyID)
		if pa.Packets != polBefore.Packets+1 {
			fail("policy %d hit counter moved by %d", want.PolicyID, pa.Packets-polBefore.Packets)
			return
		}
		if pa.LastUse == 0 || pa.LastUse < polBefore.LastUse {
			fail("policy %d last use %s after %s", want.PolicyID, pa.LastUse, polBefore.LastUse)
			return
		}
	}
	if wantR == "OutNoSocket" {
		m := decodeMeta(t, out)
		if m.SaIndex != want.SA || uint32(m.PolicyId) != want.PolicyID {
			fail("metadata SA %d policy %d", m.SaIndex, m.PolicyId)
		}
	}
}

func dumpPolicies(pols []ipsec.Policy, dir ipsec.Dir) string {
	s := ""
	for _, p := range pols {
		if p.Dir == dir {
			s += fmt.Sprintf("  id %d prio %d %s %s sa %d\n", p.ID, p.Priority, p.Selector, p.Action, p.SA)
		}
	}
	return s
}

// TestIncrementalSPD makes many small SPD changes (the control plane's usual pattern, which takes the
// loader's in-place list edits and block-diff writes) and checks after each that the SPD the card
// uses (DumpSPD) is exactly the expected one, and now and then that packets classify like the reference.
func TestIncrementalSPD(t *testing.T) {
	c := newTestCard(t, Config{Policies: 512, SAs: 16})
	r := runner(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	g := spdGen{r: rand.New(rand.NewPCG(seed, 2))}
	want := map[uint32]ipsec.Policy{}
	for op := 0; op < 400; op++ {
		var put []ipsec.Policy
		var del []uint32
		for k := 0; k < 1+g.r.IntN(3); k++ {
			id := uint32(g.r.IntN(300))
			if _, ok := want[id]; ok && g.r.IntN(3) == 0 {
				del = append(del, id)
				continue
			}
			dup := false
			for _, p := range put {
				dup = dup || p.ID == id
			}
			if !dup {
				put = append(put, g.policy(id, 16))
			}
		}
		if err := c.PutPolicies(put...); err != nil {
			t.Fatal(err)
		}
		if err := c.DeletePolicies(del...); err != nil {
			t.Fatal(err)
		}
		for _, p := range put {
			if p.Action != ipsec.ActionProtect {
				p.SA = ipsec.NoSA
			}
			want[p.ID] = p
		}
		for _, id := range del {
			delete(want, id)
		}
		got, err := c.DumpSPD()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("op %d: the card holds %d policies, want %d", op, len(got), len(want))
		}
		for i, p := range got {
			if want[p.ID] != p {
				t.Fatalf("op %d: card policy %d is %+v, want %+v", op, i, p, want[p.ID])
			}
			if i > 0 && got[i-1].Dir == p.Dir && !ipsec.Less(&got[i-1], &p) {
				t.Fatalf("op %d: the card's list is out of SPD order at %d", op, i)
			}
		}
		if op%20 != 19 {
			continue
		}
		pols := make([]ipsec.Policy, 0, len(want))
		for _, p := range want {
			pols = append(pols, p)
		}
		ref, err := ipsec.NewClassifier(pols, ipsec.Defaults{})
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 100; k++ {
			dir := ipsec.Dir(g.r.IntN(2))
			tup, first := g.tuple(dir)
			if bad := verdictMismatch(t, c, r, ref, dir, tup, first); bad != "" {
				t.Fatalf("op %d: %s", op, bad)
			}
		}
	}
}

// verdictMismatch runs a packet of tuple tup through c and reports how its verdict and reason differ from
// the reference's, with every SA unusable; "" when they agree.
func verdictMismatch(t testing.TB, c *Card, r *nsRunner, ref *ipsec.Classifier, dir ipsec.Dir, tup ipsec.Tuple, first bool) string {
	d := ref.Lookup(dir, tup)
	side := SideProtected
	if dir == ipsec.DirIn {
		side = SideWire
	}
	wantV, wantR := expectedReason(dir, d, func(uint32) bool { return false })
	var v uint32
	delta := reasonDelta(t, c, func() { v, _ = r.run(t, c.program(side), tuplePacket(tup, first, nil)) })
	if v != wantV || delta[wantR] != 1 {
		return fmt.Sprintf("%s %+v: verdict %s reasons %v; reference %+v", dir, tup, verdictName(v), delta, d)
	}
	return ""
}
