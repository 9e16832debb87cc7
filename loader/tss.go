package loader

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// The card's SPD is a tuple space (bpf/xdpsec.h): per direction and family, policies grouped into tuples
// by the fields their selectors constrain, each tuple's policies hashed by those fields into buckets.
// This file compiles policies into that form and keeps it up to date policy by policy; tss_card.go
// writes the differences into the idle buffer of the card's double-buffered maps.

// tssShape is what a tuple hashes: the prefix lengths its addresses are masked to, and whether the
// protocol and each port (or ICMP type and code) are part of the key.
type tssShape struct {
	src, dst            uint8
	proto, sport, dport bool
}

// shapeOf is the most a policy's tuple may hash: exactly the fields its selector fixes. Port ranges are
// not hashed (the bucket's rules check them).
func shapeOf(p *ipsec.Policy) tssShape {
	s := &p.Selector
	return tssShape{
		src: uint8(s.Src.Bits()), dst: uint8(s.Dst.Bits()),
		proto: s.Proto != ipsec.ProtoAny,
		sport: s.SrcPorts.Lo() == s.SrcPorts.Hi(),
		dport: s.DstPorts.Lo() == s.DstPorts.Hi(),
	}
}

// meet is the finest shape both a and b may be placed in.
func (a tssShape) meet(b tssShape) tssShape {
	return tssShape{min(a.src, b.src), min(a.dst, b.dst), a.proto && b.proto, a.sport && b.sport, a.dport && b.dport}
}

// hashesPorts reports whether the tuple's keys hold ports, so that non-first fragments (which have none)
// need the tuple's fragment entries.
func (a tssShape) hashesPorts() bool { return a.sport || a.dport }

func compareShapes(a, b tssShape) int {
	if c := cmp.Compare(a.src, b.src); c != 0 {
		return c
	}
	if c := cmp.Compare(a.dst, b.dst); c != 0 {
		return c
	}
	bits := func(s tssShape) int {
		n := 0
		for i, f := range []bool{s.proto, s.sport, s.dport} {
			if f {
				n |= 1 << i
			}
		}
		return n
	}
	return cmp.Compare(bits(a), bits(b))
}

// tssMaxTuples is the most tuples the card probes per direction and family.
const tssMaxTuples = len(bpf.CardXdpsecTupleList{}.T)

// tssGreedyShapes bounds the shapes the greedy merge of tupleShapes works on (its cost is cubic).
const tssGreedyShapes = 128

// tupleShapes maps each exact shape of a list to the shape of the tuple that holds its policies: itself
// when there are at most max shapes; otherwise shapes are merged into coarser tuples (shorter prefixes,
// fewer hashed fields), which cost longer buckets but keep the probes per packet bounded. The mapping
// depends on the set of shapes only, never on the history of changes, so that a rebuild reproduces it.
func tupleShapes(shapes []tssShape, max int) map[tssShape]tssShape {
	out := make(map[tssShape]tssShape, len(shapes))
	if len(shapes) <= max {
		for _, s := range shapes {
			out[s] = s
		}
		return out
	}
	// First coarsen uniformly until the greedy merge has few enough shapes to work on.
	var level int
	for level = 0; level < len(tssLevels)-1; level++ {
		seen := map[tssShape]bool{}
		for _, s := range shapes {
			seen[tssLevels[level].round(s)] = true
		}
		if len(seen) <= tssGreedyShapes {
			break
		}
	}
	round := tssLevels[level].round
	var distinct []tssShape
	seen := map[tssShape]bool{}
	for _, s := range shapes {
		if r := round(s); !seen[r] {
			seen[r] = true
			distinct = append(distinct, r)
		}
	}
	slices.SortFunc(distinct, compareShapes)
	// Then merge the two clusters whose union loses the least specificity, until max are left. The
	// costs of all pairs are kept and only the merged cluster's are recomputed.
	type cluster struct {
		members []tssShape
		meet    tssShape
		loss    int
	}
	lossOf := func(m tssShape, groups ...[]tssShape) int {
		n := 0
		for _, g := range groups {
			for _, s := range g {
				n += shapeDistance(s, m)
			}
		}
		return n
	}
	cs := make([]*cluster, len(distinct))
	for i, s := range distinct {
		cs[i] = &cluster{members: []tssShape{s}, meet: s}
	}
	cost := make([][]int, len(cs))
	pair := func(i, j int) int {
		a, b := cs[i], cs[j]
		return lossOf(a.meet.meet(b.meet), a.members, b.members) - a.loss - b.loss
	}
	for i := range cs {
		cost[i] = make([]int, len(cs))
		for j := i + 1; j < len(cs); j++ {
			cost[i][j] = pair(i, j)
		}
	}
	alive := len(cs)
	for alive > max {
		bi, bj := -1, -1
		for i := range cs {
			if cs[i] == nil {
				continue
			}
			for j := i + 1; j < len(cs); j++ {
				if cs[j] != nil && (bi < 0 || cost[i][j] < cost[bi][bj]) {
					bi, bj = i, j
				}
			}
		}
		a, b := cs[bi], cs[bj]
		a.meet = a.meet.meet(b.meet)
		a.members = append(a.members, b.members...)
		a.loss = lossOf(a.meet, a.members)
		cs[bj] = nil
		alive--
		for k := range cs {
			switch {
			case cs[k] == nil || k == bi:
			case k < bi:
				cost[k][bi] = pair(k, bi)
			default:
				cost[bi][k] = pair(bi, k)
			}
		}
	}
	tupleOf := map[tssShape]tssShape{}
	for _, c := range cs {
		if c == nil {
			continue
		}
		for _, s := range c.members {
			tupleOf[s] = c.meet
		}
	}
	for _, s := range shapes {
		out[s] = tupleOf[round(s)]
	}
	return out
}

// shapeDistance is how much less selective tuple shape m is than s: address bits given up, and a
// guess of the bits a protocol (2) or a port (8) tells apart.
func shapeDistance(s, m tssShape) int {
	d := int(s.src-m.src) + int(s.dst-m.dst)
	if s.proto && !m.proto {
		d += 2
	}
	if s.sport && !m.sport {
		d += 8
	}
	if s.dport && !m.dport {
		d += 8
	}
	return d
}

// tssLevel is one step of uniform coarsening: prefix lengths rounded down to a multiple of step, ports
// and the protocol dropped from the key.
type tssLevel struct {
	step                int
	noPorts, noProtocol bool
}

var tssLevels = []tssLevel{{1, false, false}, {2, false, false}, {4, false, false}, {8, false, false},
	{8, true, false}, {16, true, false}, {32, true, false}, {32, true, true}}

func (l tssLevel) round(s tssShape) tssShape {
	s.src = uint8(int(s.src) / l.step * l.step)
	s.dst = uint8(int(s.dst) / l.step * l.step)
	if l.noPorts {
		s.sport, s.dport = false, false
	}
	if l.noProtocol {
		s.proto = false
	}
	return s
}

// bucketKey is a bucket's key with buffer 0 in List; withBuffer gives the key in a buffer.
type bucketKey = bpf.CardXdpsecBucketKey

func withBuffer(k bucketKey, buf uint32) bucketKey {
	k.List |= uint8(buf << 1)
	return k
}

// tssTuple is one tuple of a list: its shape, the id its keys carry, and the SPD order of its policies.
type tssTuple struct {
	shape  tssShape
	id     uint8
	orders []uint64 // sorted: orders[0] is the tuple's best
}

// tssOrder is a policy's place in SPD order as the card compares it: (priority << 16) | ID.
func tssOrder(p *ipsec.Policy) uint64 { return uint64(p.Priority)<<16 | uint64(p.ID) }

func ruleOrder(r *bpf.CardXdpsecRule) uint64 { return uint64(r.Priority)<<16 | uint64(r.PolicyId) }

// tssList is the SPD of one direction and family compiled into a tuple space (the target both of the
// card's buffers are brought to), and what each buffer holds of it.
type tssList struct {
	dir  ipsec.Dir
	fam  int
	pols map[uint32]ipsec.Policy // the list's policies by ID
	// shapes counts the list's policies by exact shape; tupleOf maps each to its tuple's shape.
	shapes  map[tssShape]int
	tupleOf map[tssShape]tssShape
	tuples  map[tssShape]*tssTuple
	ids     [256]bool // tuple ids in use
	// hint is the id a tuple of the shape had on the card before a restart, reused when free.
	hint    map[tssShape]uint8
	buckets map[bucketKey][]bpf.CardXdpsecRule // SPD order
	// fragSame holds, for each group of a fragment bucket's rules that a non-first fragment cannot
	// tell apart, all of the group in SPD order; the bucket holds only the first of each (tssfrag.go).
	fragSame map[fragKey][]bpf.CardXdpsecRule
	// The filter: the bit array, and how many buckets beyond the first set a bit.
	filterBits uint
	filter     bitset
	shared     map[uint32]uint32
	buf        [2]tssBuffer
	// list is the card's tuple list of the target, nil until tupleList computes it after a change.
	list *bpf.CardXdpsecTupleList
}

// tssBuffer is what one of the card's buffers holds of a list, as far as the loader knows.
type tssBuffer struct {
	// held are the buckets the buffer (may) hold, with their chains; dirty the buckets whose content
	// there may differ from the target, dirtyWords the filter words (a bit per word).
	held       map[bucketKey]tssChain
	dirty      map[bucketKey]bool
	dirtyWords bitset
	// written is the tuple list last written (tssList.list when it was), nil when unknown.
	written *bpf.CardXdpsecTupleList
}

// tssChain is where a bucket's rules after its first are in spd_chain: n entries from off.
type tssChain struct{ off, n uint32 }

func (l *tssList) init(dir ipsec.Dir, fam int, filterBits uint) {
	*l = tssList{
		dir: dir, fam: fam,
		pols:       map[uint32]ipsec.Policy{},
		shapes:     map[tssShape]int{},
		tupleOf:    map[tssShape]tssShape{},
		tuples:     map[tssShape]*tssTuple{},
		hint:       map[tssShape]uint8{},
		buckets:    map[bucketKey][]bpf.CardXdpsecRule{},
		fragSame:   map[fragKey][]bpf.CardXdpsecRule{},
		filterBits: filterBits,
		filter:     newBitset(1 << filterBits),
		shared:     map[uint32]uint32{},
	}
	for b := range l.buf {
		l.buf[b] = tssBuffer{held: map[bucketKey]tssChain{}, dirty: map[bucketKey]bool{}, dirtyWords: newBitset(1 << (filterBits - 6))}
	}
}

// listIndex is the list's index in spd_tuples (and the List of its keys) in buffer buf.
func (l *tssList) listIndex(buf uint32) uint32 {
	return (uint32(l.dir)*2+buf)*2 + uint32(l.fam)
}

// apply removes and inserts policies (a policy replaced is in both) and marks what changed.
func (l *tssList) apply(o *listOps) {
	l.list = nil
	if len(l.pols) == 0 && len(l.buckets) == 0 && len(o.insert) > 64 {
		// A bulk load (an initial offload): maps sized once rather than grown step by step.
		n := len(o.insert)
		l.pols = make(map[uint32]ipsec.Policy, n)
		l.buckets = make(map[bucketKey][]bpf.CardXdpsecRule, n)
		for b := range l.buf {
			if len(l.buf[b].dirty) == 0 {
				l.buf[b].dirty = make(map[bucketKey]bool, n)
			}
		}
	}
	before := len(l.shapes)
	grew := false
	for i := range o.remove {
		p := &o.remove[i]
		old, ok := l.pols[p.ID]
		if !ok {
			continue
		}
		l.place(&old, false)
		delete(l.pols, p.ID)
		s := shapeOf(&old)
		if l.shapes[s]--; l.shapes[s] == 0 {
			delete(l.shapes, s)
		}
	}
	for _, p := range o.insert {
		l.pols[p.ID] = p
		s := shapeOf(&p)
		if l.shapes[s] == 0 {
			grew = true
		}
		l.shapes[s]++
	}
	if grew || len(l.shapes) != before {
		l.remap(o.insert)
	}
	for i := range o.insert {
		l.place(&o.insert[i], true)
	}
	l.dropEmptyTuples()
}

// remap recomputes the tuple of every shape after the set of shapes changed, and moves the policies
// already placed (all but fresh) whose tuple changed.
func (l *tssList) remap(fresh []ipsec.Policy) {
	shapes := make([]tssShape, 0, len(l.shapes))
	for s := range l.shapes {
		shapes = append(shapes, s)
	}
	next := tupleShapes(shapes, tssMaxTuples)
	moved := false
	for s, t := range l.tupleOf {
		if n, ok := next[s]; ok && n != t {
			moved = true
		}
	}
	if !moved {
		l.tupleOf = next
		return
	}
	isFresh := make(map[uint32]bool, len(fresh))
	for _, p := range fresh {
		isFresh[p.ID] = true
	}
	var move []ipsec.Policy
	for id, p := range l.pols {
		s := shapeOf(&p)
		if old, ok := l.tupleOf[s]; ok && !isFresh[id] && old != next[s] {
			move = append(move, p)
		}
	}
	for i := range move {
		l.place(&move[i], false)
	}
	l.tupleOf = next
	for i := range move {
		l.place(&move[i], true)
	}
}

// place inserts p into (or removes it from) its tuple and buckets.
func (l *tssList) place(p *ipsec.Policy, insert bool) {
	ts := l.tupleOf[shapeOf(p)]
	t := l.tuples[ts]
	if t == nil {
		if !insert {
			return
		}
		t = &tssTuple{shape: ts, id: l.allocID(ts)}
		l.tuples[ts] = t
	}
	order := tssOrder(p)
	i, found := slices.BinarySearch(t.orders, order)
	switch {
	case insert && !found:
		t.orders = slices.Insert(t.orders, i, order)
	case !insert && found:
		t.orders = slices.Delete(t.orders, i, i+1)
	}
	r := ruleOf(p)
	for _, k := range l.keysOf(p, t) {
		if k.Frag != 0 {
			l.placeFrag(k, r, insert)
			continue
		}
		l.bucketEdit(k, r, insert)
	}
}

// byRuleOrder compares a rule's SPD order with o (for binary searches of buckets).
func byRuleOrder(r bpf.CardXdpsecRule, o uint64) int { return cmp.Compare(ruleOrder(&r), o) }

// bucketEdit inserts r into (or removes it from) bucket k, keeping the filter and the buffers' dirty
// marks.
func (l *tssList) bucketEdit(k bucketKey, r bpf.CardXdpsecRule, insert bool) {
	b := l.buckets[k]
	i, found := slices.BinarySearchFunc(b, ruleOrder(&r), byRuleOrder)
	switch {
	case insert && !found:
		b = slices.Insert(b, i, r)
	case !insert && found:
		b = slices.Delete(b, i, i+1)
	default:
		return
	}
	switch {
	case len(b) == 0:
		delete(l.buckets, k)
		l.countBit(k, -1)
	case len(b) == 1 && insert:
		l.buckets[k] = b
		l.countBit(k, 1)
	default:
		l.buckets[k] = b
	}
	l.buf[0].dirty[k], l.buf[1].dirty[k] = true, true
}

// countBit counts a bucket key in or out of the filter.
func (l *tssList) countBit(k bucketKey, d int) {
	bit := filterBit(&k, l.fam == 1, l.filterBits)
	switch {
	case d > 0 && l.filter.has(bit):
		l.shared[bit]++
		return
	case d > 0:
		l.filter.set(bit)
	case l.shared[bit] > 0:
		if l.shared[bit]--; l.shared[bit] == 0 {
			delete(l.shared, bit)
		}
		return
	default:
		l.filter.clear(bit)
	}
	l.buf[0].dirtyWords.set(bit >> 6)
	l.buf[1].dirtyWords.set(bit >> 6)
}

// bitset is a set of small integers, a bit each.
type bitset []uint64

func newBitset(n uint32) bitset    { return make(bitset, (n+63)/64) }
func (s bitset) set(i uint32)      { s[i>>6] |= 1 << (i & 63) }
func (s bitset) clear(i uint32)    { s[i>>6] &^= 1 << (i & 63) }
func (s bitset) has(i uint32) bool { return s[i>>6]&(1<<(i&63)) != 0 }
func (s bitset) or(o bitset) {
	for i := range s {
		s[i] |= o[i]
	}
}
func (s bitset) each(fn func(i uint32)) {
	for w, v := range s {
		for v != 0 {
			fn(uint32(w)<<6 | uint32(bits.TrailingZeros64(v)))
			v &= v - 1
		}
	}
}

// filterBit is the card's filter hash of key k (bpf/xdpsec.c maybe_present): the bit of the list's array.
func filterBit(k *bucketKey, v6 bool, bits uint) uint32 {
	mix := func(h, w uint32) uint32 { return (h ^ w) * 0x9e3779b1 }
	h := mix(0, k.Src[0])
	h = mix(h, k.Dst[0])
	if v6 {
		for i := 1; i < 4; i++ {
			h = mix(h, k.Src[i])
			h = mix(h, k.Dst[i])
		}
	}
	h = mix(h, uint32(k.Sport)<<16|uint32(k.Dport))
	h = mix(h, uint32(k.Proto)|uint32(k.Frag)<<8|uint32(k.Tuple)<<16)
	h ^= h >> 15
	h *= 0x85ebca6b
	h ^= h >> 13
	return h >> (32 - bits)
}

// keysOf is the bucket key of p in tuple t and, when t hashes ports, the key of p's fragment entry.
func (l *tssList) keysOf(p *ipsec.Policy, t *tssTuple) []bucketKey {
	s := &p.Selector
	k := bucketKey{List: uint8(l.listIndex(0)), Tuple: t.id}
	k.Src, _ = prefixWords(netip.PrefixFrom(s.Src.Addr(), int(t.shape.src)))
	k.Dst, _ = prefixWords(netip.PrefixFrom(s.Dst.Addr(), int(t.shape.dst)))
	if t.shape.proto {
		k.Proto = uint8(s.Proto)
	}
	if !t.shape.hashesPorts() {
		return []bucketKey{k}
	}
	frag := k
	frag.Frag = 1
	if t.shape.sport {
		k.Sport = s.SrcPorts.Lo()
	}
	if t.shape.dport {
		k.Dport = s.DstPorts.Lo()
	}
	return []bucketKey{k, frag}
}

func (l *tssList) allocID(s tssShape) uint8 {
	if id, ok := l.hint[s]; ok && !l.ids[id] {
		l.ids[id] = true
		return id
	}
	hinted := map[uint8]bool{}
	for _, id := range l.hint {
		hinted[id] = true
	}
	for _, skipHinted := range []bool{true, false} {
		for id := range l.ids {
			if !l.ids[id] && !(skipHinted && hinted[uint8(id)]) {
				l.ids[id] = true
				return uint8(id)
			}
		}
	}
	panic("loader: tuple ids exhausted") // at most 2*tssMaxTuples are in use at once
}

func (l *tssList) dropEmptyTuples() {
	for s, t := range l.tuples {
		if len(t.orders) == 0 {
			l.ids[t.id] = false
			delete(l.tuples, s)
		}
	}
}

// rebuild recompiles the list from pols (after a failed write undid the loader's view). What the buffers
// hold is kept; tuple ids may change, so every bucket the buffers may hold is marked for rewriting.
func (l *tssList) rebuild(pols map[uint32]ipsec.Policy) {
	bufs := l.buf
	l.init(l.dir, l.fam, l.filterBits)
	var o listOps
	for _, p := range pols {
		if p.Dir == l.dir && famOf(&p) == l.fam {
			o.insert = append(o.insert, p)
		}
	}
	l.apply(&o)
	for b := range bufs {
		for k := range bufs[b].held {
			l.buf[b].dirty[k] = true
		}
		for k := range bufs[b].dirty {
			l.buf[b].dirty[k] = true
		}
		// Words the old target set and the new one does not are not marked by apply.
		for i := range l.buf[b].dirtyWords {
			l.buf[b].dirtyWords[i] = ^uint64(0)
		}
		l.buf[b].held = bufs[b].held
		l.buf[b].written = bufs[b].written
	}
}

// tupleList is the card's tuple list: the tuples by their best policy.
func (l *tssList) tupleList() *bpf.CardXdpsecTupleList {
	if l.list != nil {
		return l.list
	}
	ts := make([]*tssTuple, 0, len(l.tuples))
	for _, t := range l.tuples {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *tssTuple) int { return cmp.Compare(a.orders[0], b.orders[0]) })
	var v bpf.CardXdpsecTupleList
	v.N = uint32(len(ts))
	v.Policies = uint32(len(l.pols))
	for i, t := range ts {
		e := &v.T[i]
		_, e.SrcMask = prefixWords(netip.PrefixFrom(l.zero(), int(t.shape.src)))
		_, e.DstMask = prefixWords(netip.PrefixFrom(l.zero(), int(t.shape.dst)))
		e.Best = t.orders[0]
		if t.shape.sport {
			e.SportMask = 0xffff
		}
		if t.shape.dport {
			e.DportMask = 0xffff
		}
		if t.shape.proto {
			e.ProtoMask = 0xff
		}
		e.Id = t.id
		e.SrcBits, e.DstBits = t.shape.src, t.shape.dst
	}
	l.list = &v
	return l.list
}

func (l *tssList) zero() netip.Addr {
	if l.fam == 0 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
