package loader

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// stressGen draws SPDs that stress the tuple space: prefixes of every length over spdGen's small address
// pools (many shapes, overlapping so that a packet hits several tuples at once), exact ports, ranges and
// any, ICMP type and code, and priorities from a small pool (ties across tuples, broken by ID). Packets
// are mostly spdGen's: every protocol, ICMP, non-first fragments, both families. A third of the selectors
// repeat one of a few hot selectors with other ports of the same kind, so that buckets grow long
// (chains of several chunks), and a third of the packets fall in a hot selector.
type stressGen struct {
	spdGen
	hot *[]ipsec.Selector
}

func newStressGen(r *rand.Rand) stressGen { return stressGen{spdGen{r: r}, new([]ipsec.Selector)} }

// tuple draws spdGen's packets, and a third of the time one inside a hot selector's prefixes and
// protocol, with ports from the pool, so that long buckets are searched deep.
func (g stressGen) tuple(dir ipsec.Dir) (ipsec.Tuple, bool) {
	t, first := g.spdGen.tuple(dir)
	if hot := *g.hot; len(hot) > 0 && g.r.IntN(3) == 0 {
		s := hot[g.r.IntN(len(hot))]
		t.Src, t.Dst, t.Proto = s.Src.Addr(), s.Dst.Addr(), s.Proto
		switch {
		case t.NonFirstFragment:
			t.SrcPort, t.DstPort = 0, 0
		case t.Proto.IsICMP():
			t.SrcPort, t.DstPort = uint16(g.r.IntN(4)), uint16(g.r.IntN(3))
		default:
			t.SrcPort, t.DstPort = g.port(), g.port()
		}
		if dir == ipsec.DirIn && t.Proto == ipsec.ProtoUDP && t.DstPort == 4500 {
			t.DstPort = 4501 // ESP-in-UDP takes the SA path
		}
	}
	return t, first
}

// reset forgets the hot selectors (for the next SPD).
func (g stressGen) reset() { *g.hot = (*g.hot)[:0] }

func (g stressGen) prefix(v6 bool) netip.Prefix {
	width, varying := 32, []int{0, 8, 16, 21, 22, 23, 24, 28, 29, 30, 31, 32}
	if v6 {
		width, varying = 128, []int{0, 32, 48, 61, 62, 63, 64, 96, 124, 125, 126, 127, 128}
	}
	bits := varying[g.r.IntN(len(varying))]
	if g.r.IntN(4) == 0 {
		bits = g.r.IntN(width + 1)
	}
	return netip.PrefixFrom(g.addr(v6), bits).Masked()
}

func (g stressGen) ports(max uint16) ipsec.PortRange {
	switch g.r.IntN(3) {
	case 0:
		p := min(g.port(), max)
		return ipsec.Ports(p, p)
	case 1:
		return g.portRange(max)
	}
	return ipsec.AnyPorts
}

// like draws a port range of the same kind as r: any, one port, or a range of several.
func (g stressGen) like(r ipsec.PortRange, max uint16) ipsec.PortRange {
	switch {
	case r.IsAny():
		return r
	case r.Lo() == r.Hi():
		p := min(g.port(), max)
		return ipsec.Ports(p, p)
	}
	for {
		a, b := min(g.port(), max), min(g.port(), max)
		if a != b {
			return ipsec.Ports(min(a, b), max16(a, b))
		}
	}
}

func (g stressGen) policy(id uint32, sas uint32) ipsec.Policy {
	v6 := g.r.IntN(2) == 0
	s := ipsec.Selector{Src: g.prefix(v6), Dst: g.prefix(v6), Proto: protoPool[g.r.IntN(len(protoPool))], SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.AnyPorts}
	clone := false
	if hot := *g.hot; len(hot) > 0 && g.r.IntN(3) == 0 {
		s, clone = hot[g.r.IntN(len(hot))], true
	}
	top := uint16(65535)
	if s.Proto.IsICMP() {
		top = 3
	}
	switch {
	case clone:
		// The same shape, so the same tuple: another range, another exact port.
		s.SrcPorts, s.DstPorts = g.like(s.SrcPorts, top), g.like(s.DstPorts, top)
	case s.Proto.HasPorts() || s.Proto.IsICMP():
		s.SrcPorts, s.DstPorts = g.ports(top), g.ports(top)
	}
	if len(*g.hot) < 3 && s.ConstrainsPorts() {
		*g.hot = append(*g.hot, s)
	}
	p := ipsec.Policy{ID: id, Dir: ipsec.Dir(g.r.IntN(2)), Priority: uint32(g.r.IntN(4)), Selector: s, Action: ipsec.Action(g.r.IntN(3)), SA: ipsec.NoSA}
	if p.Action == ipsec.ActionProtect && g.r.IntN(8) != 0 {
		p.SA = uint32(g.r.IntN(int(sas)))
	}
	return p
}

// modelFilterBits is the model's filter size: small, so that bits are shared and the counting is tested.
const modelFilterBits = 12

// spdModel is the loader's compilation without a card: the four lists, changed as changeSPDLocked
// changes them.
type spdModel struct {
	pols  map[uint32]ipsec.Policy
	lists [2][2]tssList
}

func newSPDModel() *spdModel {
	m := &spdModel{pols: map[uint32]ipsec.Policy{}}
	for d := range m.lists {
		for f := range m.lists[d] {
			m.lists[d][f].init(ipsec.Dir(d), f, modelFilterBits)
		}
	}
	return m
}

func (m *spdModel) change(put []ipsec.Policy, del []uint32) {
	var ops [2][2]listOps
	for _, id := range del {
		if old, ok := m.pols[id]; ok {
			ops[old.Dir][famOf(&old)].remove = append(ops[old.Dir][famOf(&old)].remove, old)
			delete(m.pols, id)
		}
	}
	for _, p := range put {
		if old, ok := m.pols[p.ID]; ok {
			ops[old.Dir][famOf(&old)].remove = append(ops[old.Dir][famOf(&old)].remove, old)
		}
		ops[p.Dir][famOf(&p)].insert = append(ops[p.Dir][famOf(&p)].insert, p)
		m.pols[p.ID] = p
	}
	for d := range ops {
		for f := range ops[d] {
			if len(ops[d][f].remove)+len(ops[d][f].insert) > 0 {
				m.lists[d][f].apply(&ops[d][f])
			}
		}
	}
}

// lookup is the card's lookup (bpf/xdpsec.c lookup) over what the loader writes into a buffer: the
// tuple list and the buckets.
func (m *spdModel) lookup(dir ipsec.Dir, t ipsec.Tuple, defs ipsec.Defaults) ipsec.Decision {
	fam := 0
	if t.Src.Is6() {
		fam = 1
	}
	l := &m.lists[dir][fam]
	tl := l.tupleList()
	src, dst := addrWords(t.Src), addrWords(t.Dst)
	best, outcome, id := ^uint64(0), bpf.CardXdpsecFlowOutcomeXDPSEC_FLOW_NOMATCH, uint16(0)
	for _, tp := range tl.T[:tl.N] {
		if tp.Best > best {
			break
		}
		k := bucketKey{List: uint8(l.listIndex(0)), Tuple: tp.Id, Proto: uint8(t.Proto) & tp.ProtoMask}
		for j := range 4 {
			k.Src[j], k.Dst[j] = src[j]&tp.SrcMask[j], dst[j]&tp.DstMask[j]
		}
		if t.NonFirstFragment {
			if tp.SportMask|tp.DportMask != 0 {
				k.Frag = 1
			}
		} else {
			k.Sport, k.Dport = t.SrcPort&tp.SportMask, t.DstPort&tp.DportMask
		}
		if !l.filter.has(filterBit(&k, fam == 1, l.filterBits)) {
			if len(l.buckets[k]) > 0 {
				panic(fmt.Sprintf("the filter lacks bucket %+v", k))
			}
			continue
		}
		for _, r := range l.buckets[k] {
			if ruleOrder(&r) > best {
				break
			}
			if r.Proto != 0 && r.Proto != uint8(t.Proto) {
				continue
			}
			ok := true
			for j := range 4 {
				ok = ok && src[j]&r.SrcMask[j] == r.Src[j] && dst[j]&r.DstMask[j] == r.Dst[j]
			}
			if !ok {
				continue
			}
			if t.NonFirstFragment {
				outcome = bpf.CardXdpsecFlowOutcomeXDPSEC_FLOW_MATCH
				if r.Flags&uint8(bpf.CardXdpsecRuleFlagsXDPSEC_RULE_F_PORTS) != 0 {
					outcome = bpf.CardXdpsecFlowOutcomeXDPSEC_FLOW_AMBIGUOUS
				}
			} else {
				if t.SrcPort < r.SportLo || t.SrcPort > r.SportHi || t.DstPort < r.DportLo || t.DstPort > r.DportHi {
					continue
				}
				outcome = bpf.CardXdpsecFlowOutcomeXDPSEC_FLOW_MATCH
			}
			best, id = ruleOrder(&r), r.PolicyId
			break
		}
	}
	switch outcome {
	case bpf.CardXdpsecFlowOutcomeXDPSEC_FLOW_AMBIGUOUS:
		return ipsec.Decision{Ambiguous: true, Action: ipsec.ActionDiscard, SA: ipsec.NoSA}
	case bpf.CardXdpsecFlowOutcomeXDPSEC_FLOW_MATCH:
		p := m.pols[uint32(id)]
		d := ipsec.Decision{Matched: true, PolicyID: p.ID, Action: p.Action, SA: ipsec.NoSA}
		if p.Action == ipsec.ActionProtect {
			d.SA = p.SA
		}
		return d
	}
	if dir == ipsec.DirIn {
		return ipsec.Decision{Action: defs.In, SA: ipsec.NoSA}
	}
	return ipsec.Decision{Action: defs.Out, SA: ipsec.NoSA}
}

// canonical is a list's compiled content without tuple ids (which depend on history): bucket rules by
// tuple shape and key, and the tuples' bests.
func (l *tssList) canonical() (map[string][]bpf.CardXdpsecRule, map[tssShape]uint64) {
	shapeOfID := map[uint8]tssShape{}
	bests := map[tssShape]uint64{}
	for s, t := range l.tuples {
		shapeOfID[t.id] = s
		bests[s] = t.orders[0]
	}
	out := map[string][]bpf.CardXdpsecRule{}
	for k, rs := range l.buckets {
		s := shapeOfID[k.Tuple]
		k.Tuple = 0
		out[fmt.Sprintf("%+v %+v", s, k)] = rs
	}
	return out, bests
}

// TestTSSModel drives the compilation with random changes to stress SPDs and checks, after every change,
// that the card's lookup over the compiled tuple space (modelled in Go) equals the reference classifier,
// that every list stays within the tuples the card probes, that every bucket is in SPD order, and that
// the incremental result equals a compilation from scratch. No card needed: the BPF equivalence tests
// check the card runs the same lookup.
func TestTSSModel(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	g := newStressGen(rand.New(rand.NewPCG(seed, 3)))
	rounds := 60
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		g.reset()
		m := newSPDModel()
		size := 20 + g.r.IntN(600)
		defs := ipsec.Defaults{Out: ipsec.Action(2 * g.r.IntN(2)), In: ipsec.Action(2 * g.r.IntN(2))}
		for step := range 12 {
			var put []ipsec.Policy
			var del []uint32
			n := 1 + g.r.IntN(8)
			if step == 0 {
				n = size
			}
			seen := map[uint32]bool{}
			for range n {
				id := uint32(g.r.IntN(size + size/4))
				if seen[id] {
					continue
				}
				seen[id] = true
				if _, ok := m.pols[id]; ok && g.r.IntN(2) == 0 {
					del = append(del, id)
				} else {
					put = append(put, g.policy(id, 16))
				}
			}
			m.change(put, del)
			ref, err := ipsec.NewClassifier(slices.Collect(maps.Values(m.pols)), defs)
			if err != nil {
				t.Fatal(err)
			}
			for d := range m.lists {
				for f := range m.lists[d] {
					l := &m.lists[d][f]
					if len(l.tuples) > tssMaxTuples {
						t.Fatalf("round %d step %d: %d tuples", round, step, len(l.tuples))
					}
					for k, rs := range l.buckets {
						if !slices.IsSortedFunc(rs, func(a, b bpf.CardXdpsecRule) int { return cmp.Compare(ruleOrder(&a), ruleOrder(&b)) }) {
							t.Fatalf("round %d step %d: bucket %+v out of SPD order", round, step, k)
						}
					}
					filter := newBitset(1 << l.filterBits)
					for k := range l.buckets {
						filter.set(filterBit(&k, f == 1, l.filterBits))
					}
					if !slices.Equal(filter, l.filter) {
						t.Fatalf("round %d step %d: the filter is not the buckets' bits", round, step)
					}
					var fresh tssList
					fresh.init(l.dir, l.fam, modelFilterBits)
					fresh.apply(&listOps{insert: slices.Collect(maps.Values(l.pols))})
					gb, gt := l.canonical()
					wb, wt := fresh.canonical()
					if !maps.Equal(gt, wt) || !maps.EqualFunc(gb, wb, slices.Equal) {
						t.Fatalf("round %d step %d: %s family %d: the incremental compilation differs from a fresh one", round, step, l.dir, f)
					}
				}
			}
			for range 400 {
				dir := ipsec.Dir(g.r.IntN(2))
				tup, _ := g.tuple(dir)
				want := ref.Lookup(dir, tup)
				if got := m.lookup(dir, tup, defs); got != want {
					t.Fatalf("round %d step %d: %s %+v: model %+v, reference %+v; policies:\n%s", round, step, dir, tup, got, want,
						dumpPolicies(slices.Collect(maps.Values(m.pols)), dir))
				}
			}
		}
	}
}

// TestTupleShapes checks the merge of shapes into tuples: at most the bound, every shape's tuple no
// more specific than the shape, and the same result whatever the order of the input.
func TestTupleShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), 4))
	for _, n := range []int{1, 10, 64, 65, 100, 300, 2000} {
		for _, width := range []int{32, 128} {
			seen := map[tssShape]bool{}
			var shapes []tssShape
			for len(shapes) < n && len(seen) < (width+1)*(width+1)*8 {
				s := tssShape{src: uint8(r.IntN(width + 1)), dst: uint8(r.IntN(width + 1)), proto: r.IntN(2) == 0}
				if s.proto {
					s.sport, s.dport = r.IntN(3) == 0, r.IntN(2) == 0
				}
				if !seen[s] {
					seen[s] = true
					shapes = append(shapes, s)
				}
			}
			m := tupleShapes(shapes, tssMaxTuples)
			tuples := map[tssShape]bool{}
			for _, s := range shapes {
				ts, ok := m[s]
				if !ok {
					t.Fatalf("%d shapes: %+v has no tuple", n, s)
				}
				if ts.src > s.src || ts.dst > s.dst || ts.proto && !s.proto || ts.sport && !s.sport || ts.dport && !s.dport {
					t.Fatalf("%d shapes: %+v in the more specific tuple %+v", n, s, ts)
				}
				tuples[ts] = true
			}
			if len(tuples) > tssMaxTuples || len(shapes) <= tssMaxTuples && len(tuples) != len(shapes) {
				t.Errorf("%d shapes (width %d): %d tuples", len(shapes), width, len(tuples))
			}
			r.Shuffle(len(shapes), func(i, j int) { shapes[i], shapes[j] = shapes[j], shapes[i] })
			if !maps.Equal(m, tupleShapes(shapes, tssMaxTuples)) {
				t.Errorf("%d shapes: the tuples depend on the order of the shapes", n)
			}
		}
	}
}

// TestEquivalenceTupleSpace is TestEquivalence on SPDs built to stress the card's tuple space
// (stressGen: more shapes than the card probes, so tuples merge; long buckets with chains; overlapping
// priorities across tuples and ties broken by ID; exact ports, ranges, ICMP type and code, non-first
// fragments, IPv6), with small changes between the packets, so that both buffers, the bucket diffs and
// the tuples' re-sorting by best policy are exercised too.
func TestEquivalenceTupleSpace(t *testing.T) {
	const policies = 2048
	e := newEquivCard(t, policies)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	g := newStressGen(rand.New(rand.NewPCG(seed, 5)))
	for s := 0; s < 40 && e.mismatches < 10; s++ {
		g.reset()
		n := []int{1, 40, 250, 1200}[s%4] + g.r.IntN(40)
		cur := map[uint32]ipsec.Policy{}
		for _, id := range g.r.Perm(policies)[:n] {
			cur[uint32(id)] = g.policy(uint32(id), equivSAs)
		}
		defs := ipsec.Defaults{Out: ipsec.Action(2 * g.r.IntN(2)), In: ipsec.Action(2 * g.r.IntN(2))}
		e.replace(slices.Collect(maps.Values(cur)), defs)
		for batch := 0; batch < 10 && e.mismatches < 10; batch++ {
			for k := 0; k < 100 && e.mismatches < 10; k++ {
				dir := ipsec.Dir(g.r.IntN(2))
				tup, first := g.tuple(dir)
				e.check(fmt.Sprintf("spd %d batch %d packet %d", s, batch, k), dir, tup, tuplePacket(tup, first, g.r))
			}
			var put []ipsec.Policy
			var del []uint32
			for _, id := range g.r.Perm(policies)[:1+g.r.IntN(6)] {
				if _, ok := cur[uint32(id)]; ok && g.r.IntN(2) == 0 {
					del = append(del, uint32(id))
					delete(cur, uint32(id))
					continue
				}
				p := g.policy(uint32(id), equivSAs)
				put = append(put, p)
				if p.Action != ipsec.ActionProtect {
					p.SA = ipsec.NoSA
				}
				cur[p.ID] = p
			}
			if err := e.c.PutPolicies(put...); err != nil {
				t.Fatal(err)
			}
			if err := e.c.DeletePolicies(del...); err != nil {
				t.Fatal(err)
			}
			e.reference(slices.Collect(maps.Values(cur)), defs)
		}
		checkChains(t, e.c)
		e.checkHolds(fmt.Sprintf("spd %d", s), cur)
	}
}

// TestTupleSpaceReopen reopens a pinned card holding a stress SPD: the loader reads the SPD back from
// the live buffers, recognises what both buffers hold (nothing to rewrite in the live one), and the card
// classifies exactly as before, also after the next change.
func TestTupleSpaceReopen(t *testing.T) {
	requireRoot(t)
	cfg := Config{Instance: "t" + randHex(4), Policies: 1024, SAs: 64, Logger: quiet}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.PinDir()
	t.Cleanup(func() { os.RemoveAll(dir) })
	g := newStressGen(rand.New(rand.NewPCG(rand.Uint64(), 6)))
	var pols []ipsec.Policy
	for _, id := range g.r.Perm(1024)[:700] {
		p := g.policy(uint32(id), 1)
		p.SA = ipsec.NoSA
		pols = append(pols, p)
	}
	if err := c.ReplaceSPD(pols[:600]); err != nil {
		t.Fatal(err)
	}
	if err := c.PutPolicies(pols[600:]...); err != nil {
		t.Fatal(err)
	}
	want := c.Policies()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	if got := c.Policies(); !slices.Equal(got, want) {
		t.Fatalf("reopened with %d policies, want %d", len(got), len(want))
	}
	for d := range c.tss {
		var st bpf.CardXdpsecSpd
		if err := c.objs.SpdState.Lookup(uint32(d), &st); err != nil {
			t.Fatal(err)
		}
		for f := range c.tss[d] {
			if n := len(c.tss[d][f].buf[st.Gen&1].dirty); n != 0 {
				t.Errorf("%s family %d: %d buckets of the live buffer to rewrite after reopening", ipsec.Dir(d), f, n)
			}
		}
	}
	r := runner(t)
	ref, err := ipsec.NewClassifier(want, ipsec.Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	for step := range 2 {
		for range 500 {
			d := ipsec.Dir(g.r.IntN(2))
			tup, first := g.tuple(d)
			if bad := verdictMismatch(t, c, r, ref, d, tup, first); bad != "" {
				t.Fatalf("step %d: %s", step, bad)
			}
		}
		// A change after the reopen writes the idle buffer from what the loader learnt of it.
		if err := c.DeletePolicies(want[0].ID, want[len(want)-1].ID); err != nil {
			t.Fatal(err)
		}
		want = want[1 : len(want)-1]
		if ref, err = ipsec.NewClassifier(want, ipsec.Defaults{}); err != nil {
			t.Fatal(err)
		}
		got, err := c.DumpSPD()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after the change the card holds %d policies, want %d", len(got), len(want))
		}
	}
}

// TestTupleSpaceChains checks long buckets on the card: policies with one selector but disjoint
// destination port ranges share one bucket, whose rules after the first are a chain in spd_chain. Four
// such buckets of 11 to 40 rules are allocated one after the other, so most chains start inside a block.
// Policies in other tuples beat or lose to the first bucket's rules by SPD order. Every range is hit, in
// both families, and so is a non-first fragment.
func TestTupleSpaceChains(t *testing.T) {
	e := newEquivCard(t, 1024)
	for _, fam := range []struct {
		net, host, other string
		dst              func(int) string
	}{
		{"198.18.1.0/24", "198.18.1.1", "198.18.1.2", func(i int) string { return fmt.Sprintf("198.18.%d.0/24", 2+i) }},
		{"2001:2:1::/48", "2001:2:1::1", "2001:2:1::2", func(i int) string { return fmt.Sprintf("2001:2:%d::/48", 2+i) }},
	} {
		var pols []ipsec.Policy
		sizes := []int{40, 11, 23, 17}
		for sel, size := range sizes {
			for i := range size {
				s := anySel(fam.net, fam.dst(sel))
				s.Proto, s.DstPorts = ipsec.ProtoUDP, ipsec.Ports(uint16(1000+10*i), uint16(1009+10*i))
				pols = append(pols, ipsec.Policy{ID: uint32(100*(sel+1) + i), Dir: ipsec.DirOut, Priority: 10, Selector: s, Action: ipsec.Action(i % 3), SA: uint32(i % 10)})
			}
		}
		// Before the first bucket in SPD order, for one host and port: wins there.
		s := anySel(netip.PrefixFrom(ip(fam.host), ip(fam.host).BitLen()).String(), fam.dst(0))
		s.Proto, s.DstPorts = ipsec.ProtoUDP, ipsec.Ports(1205, 1205)
		pols = append(pols, ipsec.Policy{ID: 5, Dir: ipsec.DirOut, Priority: 10, Selector: s, Action: ipsec.ActionBypass, SA: ipsec.NoSA})
		// Between the first bucket's rules in SPD order (IDs 120 and 121), for everything of the
		// source: the bucket's rules up to 120 win over it, those after lose.
		pols = slices.DeleteFunc(pols, func(p ipsec.Policy) bool { return p.ID == 120 })
		pols = append(pols, ipsec.Policy{ID: 120, Dir: ipsec.DirOut, Priority: 10, Selector: anySel(fam.net, fam.dst(0)), Action: ipsec.ActionDiscard, SA: ipsec.NoSA})
		e.replace(pols, ipsec.Defaults{})
		for sel, size := range sizes {
			dst := pfx(fam.dst(sel)).Addr().Next()
			for _, src := range []string{fam.host, fam.other} {
				for i := range size + 1 {
					tup := ipsec.Tuple{Src: ip(src), Dst: dst, Proto: ipsec.ProtoUDP, SrcPort: 7, DstPort: uint16(995 + 10*i)}
					e.check(fmt.Sprintf("bucket %d range %d", sel, i), ipsec.DirOut, tup, tuplePacket(tup, false, nil))
				}
				frag := ipsec.Tuple{Src: ip(src), Dst: dst, Proto: ipsec.ProtoUDP, NonFirstFragment: true}
				e.check(fmt.Sprintf("bucket %d fragment", sel), ipsec.DirOut, frag, tuplePacket(frag, false, nil))
			}
		}
	}
}

// TestTupleSpaceCompaction churns an SPD of long buckets on a card so small that the chain regions
// fragment: the loader then rewrites the idle buffer whole, and the card still classifies like the
// reference and holds exactly the SPD.
func TestTupleSpaceCompaction(t *testing.T) {
	const policies = 16
	e := newEquivCard(t, policies)
	g := newStressGen(rand.New(rand.NewPCG(rand.Uint64(), 7)))
	cur := map[uint32]ipsec.Policy{}
	e.replace(nil, ipsec.Defaults{})
	// The regions are sized for every policy in two long buckets (2 × 16 rules). Here the fragment
	// bucket holds one rule (only the first of the policies a non-first fragment cannot tell apart is
	// written, tssfrag.go), so these policies need at most 15 chain entries: give each region 16, the
	// worst case still fits, and it is fragmentation, not room, that the changes run into.
	for d := range e.c.chains {
		for b := range e.c.chains[d] {
			e.c.chains[d][b].size = 16
			e.c.chains[d][b].reset()
		}
	}
	for op := 0; op < 1000 && e.mismatches == 0; op++ {
		var put []ipsec.Policy
		var del []uint32
		for _, id := range g.r.Perm(policies)[:1+g.r.IntN(4)] {
			if _, ok := cur[uint32(id)]; ok && g.r.IntN(8) == 0 {
				del = append(del, uint32(id))
				delete(cur, uint32(id))
				continue
			}
			// One selector, exact destination ports from a small pool: long buckets whose lengths
			// keep changing. (The fragment bucket holds one rule: only the first of policies a
			// non-first fragment cannot tell apart is written, tssfrag.go.)
			s := anySel("198.18.1.0/24", "198.18.2.0/24")
			s.Proto, s.SrcPorts = ipsec.ProtoUDP, ipsec.Ports(g.port(), 65535)
			dport := []uint16{53, 500, 4500}[g.r.IntN(3)]
			s.DstPorts = ipsec.Ports(dport, dport)
			p := ipsec.Policy{ID: uint32(id), Dir: ipsec.DirOut, Priority: uint32(g.r.IntN(3)), Selector: s, Action: ipsec.ActionDiscard, SA: ipsec.NoSA}
			put = append(put, p)
			cur[p.ID] = p
		}
		if err := e.c.PutPolicies(put...); err != nil {
			t.Fatal(err)
		}
		if err := e.c.DeletePolicies(del...); err != nil {
			t.Fatal(err)
		}
		e.reference(slices.Collect(maps.Values(cur)), ipsec.Defaults{})
		for k := range 8 {
			tup := ipsec.Tuple{Src: ip("198.18.1.1"), Dst: ip("198.18.2.1"), Proto: ipsec.ProtoUDP, SrcPort: g.port(), DstPort: []uint16{53, 500, 4500}[k%3]}
			tup.NonFirstFragment = k == 7
			if tup.NonFirstFragment {
				tup.SrcPort, tup.DstPort = 0, 0
			}
			e.check(fmt.Sprintf("op %d packet %d", op, k), ipsec.DirOut, tup, tuplePacket(tup, false, nil))
		}
		e.checkHolds(fmt.Sprintf("op %d", op), cur)
	}
	checkChains(t, e.c)
	if e.c.chainCompactions == 0 {
		t.Errorf("no chain region was ever too fragmented: the test did not test compaction")
	}
	t.Logf("%d compactions", e.c.chainCompactions)
}

func TestExtents(t *testing.T) {
	e := extents{base: 100, size: 10}
	e.reset()
	a, _ := e.alloc(3)
	b, _ := e.alloc(3)
	c, _ := e.alloc(4)
	if a != 100 || b != 103 || c != 106 {
		t.Fatalf("allocated %d %d %d", a, b, c)
	}
	if _, ok := e.alloc(1); ok {
		t.Fatal("allocated from a full region")
	}
	e.release(tssChain{b, 3})
	if _, ok := e.alloc(4); ok {
		t.Fatal("allocated 4 from a hole of 3")
	}
	e.release(tssChain{a, 3})
	e.release(tssChain{c, 4})
	if len(e.free) != 1 || e.free[0] != (tssChain{100, 10}) {
		t.Fatalf("free runs %v after releasing all, want one", e.free)
	}
	if !e.restore([]tssChain{{102, 2}, {105, 0}, {106, 1}}) || !slices.Equal(e.free, []tssChain{{100, 2}, {104, 2}, {107, 3}}) {
		t.Fatalf("restored free runs %v", e.free)
	}
	if e.restore([]tssChain{{102, 2}, {103, 1}}) || e.restore([]tssChain{{108, 3}}) {
		t.Fatal("restored overlapping or out-of-region runs")
	}
}

// TestTupleSpaceWriteFailure makes the card refuse an SPD change half way (spd_buckets swapped for a map
// too small to take the writes): the change fails, the card keeps classifying with the SPD it had, and
// the next change rewrites the half-written buffer whole, after which the card holds exactly the SPD.
func TestTupleSpaceWriteFailure(t *testing.T) {
	e := newEquivCard(t, 1024)
	g := newStressGen(rand.New(rand.NewPCG(rand.Uint64(), 8)))
	cur := map[uint32]ipsec.Policy{}
	for id := range uint32(300) {
		p := g.policy(id, equivSAs)
		if p.Action != ipsec.ActionProtect {
			p.SA = ipsec.NoSA
		}
		cur[id] = p
	}
	e.replace(slices.Collect(maps.Values(cur)), ipsec.Defaults{})
	packets := func(what string) {
		for k := range 300 {
			dir := ipsec.Dir(g.r.IntN(2))
			tup, first := g.tuple(dir)
			e.check(fmt.Sprintf("%s packet %d", what, k), dir, tup, tuplePacket(tup, first, g.r))
		}
	}
	real := e.c.objs.SpdBuckets
	small, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: real.KeySize(), ValueSize: real.ValueSize(), MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	for _, dir := range []ipsec.Dir{ipsec.DirOut, ipsec.DirIn} {
		var put []ipsec.Policy
		for id := uint32(300); id < 400; id++ {
			p := g.policy(id, equivSAs)
			p.Dir = dir
			put = append(put, p)
		}
		e.c.mu.Lock()
		e.c.objs.SpdBuckets = small
		e.c.mu.Unlock()
		err := e.c.PutPolicies(put...)
		e.c.mu.Lock()
		e.c.objs.SpdBuckets = real
		e.c.mu.Unlock()
		if err == nil {
			t.Fatalf("%s: the change went through a map of one entry", dir)
		}
		if !e.c.tssReset[dir][0] && !e.c.tssReset[dir][1] {
			t.Fatalf("%s: a failed write left the buffer known", dir)
		}
		if got := e.c.Policies(); len(got) != len(cur) {
			t.Fatalf("%s: after a failed change the loader holds %d policies, want %d", dir, len(got), len(cur))
		}
		packets(fmt.Sprintf("%s after the failure", dir))
		// The next change goes to the half-written buffer.
		p := g.policy(500, equivSAs)
		p.Dir = dir
		if err := e.c.PutPolicies(p); err != nil {
			t.Fatal(err)
		}
		if p.Action != ipsec.ActionProtect {
			p.SA = ipsec.NoSA
		}
		cur[p.ID] = p
		e.reference(slices.Collect(maps.Values(cur)), ipsec.Defaults{})
		packets(fmt.Sprintf("%s after the next change", dir))
		checkChains(t, e.c)
		e.checkHolds(dir.String(), cur)
	}
}

// checkChains checks that the free runs and the chains the loader knows each buffer holds partition
// every spd_chain region exactly: nothing leaked, nothing handed out twice.
func checkChains(t *testing.T, c *Card) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range c.chains {
		for b := range c.chains[d] {
			if c.tssReset[d][b] {
				continue // rewritten whole at the next change
			}
			e := &c.chains[d][b]
			runs := slices.Clone(e.free)
			for f := range c.tss[d] {
				for _, h := range c.tss[d][f].buf[b].held {
					if h.n > 0 {
						runs = append(runs, h)
					}
				}
			}
			slices.SortFunc(runs, func(a, b tssChain) int { return cmp.Compare(a.off, b.off) })
			at := e.base
			for _, r := range runs {
				if r.off != at {
					t.Fatalf("%s buffer %d: chain region has a run at %d, want %d (runs %v)", ipsec.Dir(d), b, r.off, at, runs)
				}
				at += r.n
			}
			if at != e.base+e.size {
				t.Fatalf("%s buffer %d: chain region runs end at %d, want %d", ipsec.Dir(d), b, at, e.base+e.size)
			}
		}
	}
}

// checkHolds checks that the SPD the card uses (DumpSPD) is exactly want (by ID; SA NoSA unless PROTECT).
func (e *equivCard) checkHolds(what string, want map[uint32]ipsec.Policy) {
	e.t.Helper()
	got, err := e.c.DumpSPD()
	if err != nil {
		e.t.Fatal(err)
	}
	if len(got) != len(want) {
		e.t.Fatalf("%s: the card holds %d policies, want %d", what, len(got), len(want))
	}
	for _, p := range got {
		if want[p.ID] != p {
			e.t.Fatalf("%s: the card holds %+v, want %+v", what, p, want[p.ID])
		}
	}
}
