package ipsec

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestCheckListEqualsFirstMatch: on random inbound SPDs (few addresses, so selectors overlap
// often; both families, ports, ICMP, fragments), an SA's CheckList accepts exactly the packets
// whose first match in the whole SPD — the reference classifier's answer — is a PROTECT policy
// the SA serves.
func TestCheckListEqualsFirstMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 4301))
	var lens, accepted, total int
	for round := range 400 {
		n := 1 + rng.IntN(24)
		spd := make([]Policy, n)
		for i := range spd {
			spd[i] = randPolicy(rng, uint32(i+1))
		}
		// A few outbound policies: the check ignores them.
		spd = append(spd, Policy{ID: 100, Dir: DirOut, Priority: 0, Selector: randSelector(rng, rng.IntN(2) == 0),
			Action: ActionDiscard, SA: NoSA})
		ref, err := NewClassifier(spd, Defaults{In: ActionBypass, Out: ActionBypass})
		if err != nil {
			t.Fatal(err)
		}
		x := NewCheckIndex(spd)
		for range 8 {
			// The SA serves a random subset of the inbound PROTECT policies.
			served := map[uint32]bool{}
			var ids []uint32
			for _, p := range spd {
				if p.Dir == DirIn && p.Action == ActionProtect && rng.IntN(2) == 0 {
					served[p.ID] = true
					ids = append(ids, p.ID)
				}
			}
			list := x.List(ids)
			lens += len(list)
			if list.ServesAny() != (len(ids) > 0) {
				t.Fatalf("round %d: ServesAny %v for served %v", round, list.ServesAny(), ids)
			}
			for range 300 {
				tu := randTuple(rng)
				d := ref.Lookup(DirIn, tu)
				want := d.Matched && !d.Ambiguous && d.Action == ActionProtect && served[d.PolicyID]
				if got := list.Accepts(&tu); got != want {
					t.Fatalf("round %d: tuple %+v: CheckList says %v, first match over the SPD says %v (decision %+v)\nserved %v\nlist %v\nspd %v",
						round, tu, got, want, d, ids, list, spd)
				}
				total++
				if want {
					accepted++
				}
			}
		}
	}
	// The test means something only if both answers occur often.
	if accepted < total/20 || accepted > total*19/20 {
		t.Fatalf("%d of %d random packets accepted: the generator does not exercise both answers", accepted, total)
	}
	t.Logf("%d packets, %d accepted; mean list length %.1f", total, accepted, float64(lens)/float64(400*8))
}

// TestCheckListShortAndOrdered: the list holds the served policies and only the earlier policies
// that may overlap them, in SPD order.
func TestCheckListShortAndOrdered(t *testing.T) {
	spd := []Policy{
		{ID: 1, Dir: DirIn, Priority: 10, Selector: sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, AnyPorts, Port(500)), Action: ActionBypass, SA: NoSA},
		{ID: 2, Dir: DirIn, Priority: 20, Selector: sel("198.18.2.0/24", "198.18.1.66/32", 0, AnyPorts, AnyPorts), Action: ActionDiscard, SA: NoSA},
		{ID: 3, Dir: DirIn, Priority: 20, Selector: sel("198.18.9.0/24", "198.18.1.0/24", 0, AnyPorts, AnyPorts), Action: ActionDiscard, SA: NoSA},
		{ID: 4, Dir: DirIn, Priority: 30, Selector: sel("198.18.2.0/24", "198.18.1.0/24", ProtoTCP, AnyPorts, Port(22)), Action: ActionDiscard, SA: NoSA},
		{ID: 5, Dir: DirIn, Priority: 100, Selector: sel("198.18.2.0/24", "198.18.1.0/24", 0, AnyPorts, AnyPorts), Action: ActionProtect, SA: 7},
		{ID: 6, Dir: DirIn, Priority: 200, Selector: sel("198.18.2.0/24", "198.18.1.0/24", ProtoUDP, AnyPorts, AnyPorts), Action: ActionDiscard, SA: NoSA},
		{ID: 7, Dir: DirIn, Priority: 5, Selector: sel("2001:2::/48", "::/0", 0, AnyPorts, AnyPorts), Action: ActionDiscard, SA: NoSA},
	}
	got := NewCheckIndex(spd).List([]uint32{5})
	want := CheckList{{spd[0].Selector, false}, {spd[1].Selector, false}, {spd[3].Selector, false}, {spd[4].Selector, true}}
	if !slices.Equal(got, want) {
		t.Fatalf("list\n%v\nwant\n%v", got, want)
	}
	if l := NewCheckIndex(spd).List(nil); len(l) != 0 || l.Accepts(&Tuple{Src: netip.MustParseAddr("198.18.2.1"), Dst: netip.MustParseAddr("198.18.1.1")}) {
		t.Fatalf("an SA that serves nothing gets %v", l)
	}
}

func TestOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b Selector
		want bool
	}{
		{sel("10.0.0.0/8", "0.0.0.0/0", 0, AnyPorts, AnyPorts), sel("10.1.0.0/16", "10.2.0.0/16", ProtoTCP, AnyPorts, Port(80)), true},
		{sel("10.0.0.0/8", "0.0.0.0/0", 0, AnyPorts, AnyPorts), sel("11.1.0.0/16", "10.2.0.0/16", 0, AnyPorts, AnyPorts), false},
		{sel("10.0.0.0/8", "0.0.0.0/0", ProtoUDP, AnyPorts, AnyPorts), sel("10.1.0.0/16", "0.0.0.0/0", ProtoTCP, AnyPorts, AnyPorts), false},
		{sel("10.0.0.0/8", "0.0.0.0/0", ProtoTCP, AnyPorts, Ports(1, 100)), sel("10.1.0.0/16", "0.0.0.0/0", ProtoTCP, AnyPorts, Ports(100, 200)), true},
		{sel("10.0.0.0/8", "0.0.0.0/0", ProtoTCP, AnyPorts, Ports(1, 99)), sel("10.1.0.0/16", "0.0.0.0/0", ProtoTCP, AnyPorts, Ports(100, 200)), false},
		{sel("0.0.0.0/0", "0.0.0.0/0", 0, AnyPorts, AnyPorts), sel("::/0", "::/0", 0, AnyPorts, AnyPorts), false},
	} {
		if got := Overlap(tc.a, tc.b); got != tc.want || Overlap(tc.b, tc.a) != tc.want {
			t.Errorf("Overlap(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCheckListAcceptsAllocates(t *testing.T) {
	spd := []Policy{
		{ID: 1, Dir: DirIn, Priority: 10, Selector: sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, AnyPorts, Port(500)), Action: ActionBypass, SA: NoSA},
		{ID: 2, Dir: DirIn, Priority: 100, Selector: sel("198.18.2.0/24", "198.18.1.0/24", 0, AnyPorts, AnyPorts), Action: ActionProtect, SA: 1},
	}
	l := NewCheckIndex(spd).List([]uint32{2})
	tu := Tuple{Src: netip.MustParseAddr("198.18.2.1"), Dst: netip.MustParseAddr("198.18.1.1"), Proto: ProtoTCP, SrcPort: 1, DstPort: 2}
	if n := testing.AllocsPerRun(100, func() { _ = l.Accepts(&tu) }); n != 0 {
		t.Fatalf("Accepts allocates %v times per packet", n)
	}
}

// Small pools of prefixes and ports, so that random selectors often overlap.
var (
	pfx4 = []string{"0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.1.2.7/32", "10.2.0.0/16", "10.1.3.0/24"}
	pfx6 = []string{"::/0", "2001:2::/48", "2001:2:0:1::/64", "2001:2:0:1::7/128", "2001:2:0:2::/64"}
	hst4 = []string{"10.1.2.7", "10.1.2.200", "10.1.3.1", "10.2.0.1", "10.9.9.9", "192.0.2.1"}
	hst6 = []string{"2001:2:0:1::7", "2001:2:0:1::8", "2001:2:0:2::1", "2001:db8::1"}
)

func randSelector(rng *rand.Rand, v4 bool) Selector {
	pool := pfx6
	if v4 {
		pool = pfx4
	}
	s := Selector{Src: netip.MustParsePrefix(pool[rng.IntN(len(pool))]), Dst: netip.MustParsePrefix(pool[rng.IntN(len(pool))])}
	switch rng.IntN(4) {
	case 1:
		s.Proto = ProtoTCP
	case 2:
		s.Proto = ProtoUDP
	case 3:
		s.Proto = ProtoICMP
		if !v4 {
			s.Proto = ProtoICMPv6
		}
	}
	if s.Proto != ProtoAny && rng.IntN(2) == 0 {
		lo := uint16(rng.IntN(6))
		s.DstPorts = Ports(lo, lo+uint16(rng.IntN(3)))
	}
	if s.Proto != ProtoAny && rng.IntN(4) == 0 {
		lo := uint16(rng.IntN(6))
		s.SrcPorts = Ports(lo, lo+uint16(rng.IntN(3)))
	}
	return s
}

func randPolicy(rng *rand.Rand, id uint32) Policy {
	p := Policy{ID: id, Dir: DirIn, Priority: uint32(rng.IntN(5)), Selector: randSelector(rng, rng.IntN(4) != 0), SA: NoSA}
	switch r := rng.IntN(10); {
	case r < 6:
		p.Action, p.SA = ActionProtect, uint32(1+rng.IntN(3))
	case r < 8:
		p.Action = ActionDiscard
	default:
		p.Action = ActionBypass
	}
	return p
}

func randTuple(rng *rand.Rand) Tuple {
	v4 := rng.IntN(4) != 0
	pool := hst6
	if v4 {
		pool = hst4
	}
	t := Tuple{Src: netip.MustParseAddr(pool[rng.IntN(len(pool))]), Dst: netip.MustParseAddr(pool[rng.IntN(len(pool))]),
		SrcPort: uint16(rng.IntN(7)), DstPort: uint16(rng.IntN(7))}
	switch rng.IntN(4) {
	case 0:
		t.Proto = ProtoTCP
	case 1:
		t.Proto = ProtoUDP
	case 2:
		t.Proto = ProtoICMP
		if !v4 {
			t.Proto = ProtoICMPv6
		}
	default:
		t.Proto = 47 // GRE: no ports
		t.SrcPort, t.DstPort = 0, 0
	}
	t.NonFirstFragment = rng.IntN(6) == 0
	return t
}

// TestCheckIndexFindsEveryOverlap: the index's list is exactly the served policies and every earlier
// policy that may overlap one of them, as a scan of the whole SPD finds them — on SPDs large enough
// that the index takes each of its ways in (source or destination prefix, source or destination
// port), and on SPDs of port policies between one pair of prefixes.
func TestCheckIndexFindsEveryOverlap(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 4301))
	for round := range 60 {
		n := 50 + rng.IntN(300)
		spd := make([]Policy, n)
		for i := range spd {
			spd[i] = randPolicy(rng, uint32(i+1))
			if round%2 == 1 { // port policies sharing prefixes, a few wide ones among them
				spd[i].Selector.Src, spd[i].Selector.Dst = netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16")
				if spd[i].Selector.Proto != ProtoAny && rng.IntN(8) != 0 {
					spd[i].Selector.DstPorts = Port(uint16(rng.IntN(64)))
					spd[i].Selector.SrcPorts = Port(uint16(rng.IntN(16)))
				}
			}
		}
		x := NewCheckIndex(spd)
		sorted := slices.Clone(spd)
		slices.SortFunc(sorted, func(a, b Policy) int { return Compare(&a, &b) })
		for _, served := range sorted {
			if served.Action != ActionProtect {
				continue
			}
			var want CheckList
			for _, q := range sorted {
				if q.ID == served.ID {
					want = append(want, CheckEntry{Selector: q.Selector, Accept: true})
					break
				}
				if Overlap(q.Selector, served.Selector) {
					want = append(want, CheckEntry{Selector: q.Selector})
				}
			}
			if got := x.List([]uint32{served.ID}); !slices.Equal(got, want) {
				t.Fatalf("round %d, policy %d (%v): index list\n%v\nwant (whole SPD)\n%v", round, served.ID, served.Selector, got, want)
			}
		}
	}
}

// BenchmarkCheckLists: one pass's work for n inbound SAs of a hub (one local prefix, a remote /32
// each, behind an IKE bypass): index the inbound SPD and build every SA's list.
func BenchmarkCheckLists(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			spd := []Policy{{ID: 1, Dir: DirIn, Priority: 10, Selector: sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, AnyPorts, Port(500)),
				Action: ActionBypass, SA: NoSA}}
			for i := range n {
				src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 32)
				spd = append(spd, Policy{ID: uint32(i + 2), Dir: DirIn, Priority: 100, Action: ActionProtect, SA: uint32(i + 1),
					Selector: Selector{Src: src, Dst: netip.MustParsePrefix("198.18.1.0/24")}})
			}
			for b.Loop() {
				x := NewCheckIndex(spd)
				for i := range n {
					if l := x.List([]uint32{uint32(i + 2)}); len(l) != 2 {
						b.Fatalf("list %v", l)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sa")
		})
	}
	// The bench's SA scaling: n UDP port policies between the same two prefixes, one SA each,
	// before a tunnel policy for all other traffic.
	for _, n := range []int{1024, 16384, 65520} {
		b.Run(fmt.Sprintf("ports/%d", n), func(b *testing.B) {
			lan1, lan2 := netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("198.18.2.0/24")
			spd := []Policy{{ID: 1, Dir: DirIn, Priority: 10, Selector: sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, AnyPorts, Port(500)),
				Action: ActionBypass, SA: NoSA},
				{ID: 2, Dir: DirIn, Priority: 100, Selector: Selector{Src: lan1, Dst: lan2}, Action: ActionProtect, SA: 1}}
			for i := range n {
				spd = append(spd, Policy{ID: uint32(i + 3), Dir: DirIn, Priority: 50, Action: ActionProtect, SA: uint32(i + 2),
					Selector: Selector{Src: lan1, Dst: lan2, Proto: ProtoUDP, SrcPorts: Port(uint16(1 + i/4096)),
						DstPorts: Port(uint16(5000 + i%4096))}})
			}
			for b.Loop() {
				x := NewCheckIndex(spd)
				for i := range n {
					if l := x.List([]uint32{uint32(i + 3)}); len(l) != 1 { // the tunnel policy comes after
						b.Fatalf("list %v", l)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sa")
		})
	}
}
