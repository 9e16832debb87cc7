package loader

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/control/spd"
)

// The card's SPD is a tuple space (bpf/xdpsec.h): per direction and family, policies grouped into tuples
// by the fields their selectors constrain, each tuple's policies hashed by those fields into buckets.
// This file compiles policies into that form, keeps it up to date policy by policy, and writes the
// differences into the idle buffer of the card's double-buffered maps.

// tssShape is what a tuple hashes: the prefix lengths its addresses are masked to, and whether the
// protocol and each port (or ICMP type and code) are part of the key.
type tssShape struct {
	src, dst            uint8
	proto, sport, dport bool
}

// shapeOf is the most a policy's tuple may hash: exactly the fields its selector fixes. Port ranges are
// not hashed (the bucket's rules check them).
func shapeOf(p *spd.Policy) tssShape {
	s := &p.Selector
	return tssShape{
		src: uint8(s.Src.Bits()), dst: uint8(s.Dst.Bits()),
		proto: s.Proto != spd.ProtoAny,
		sport: s.SrcPorts.Lo == s.SrcPorts.Hi,
		dport: s.DstPorts.Lo == s.DstPorts.Hi,
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

// bucketKey is a bucket's key with buffer 0 in List and chunk 0; withBuffer gives the key in a buffer.
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
func tssOrder(p *spd.Policy) uint64 { return uint64(p.Priority)<<16 | uint64(p.ID) }

func ruleOrder(r *bpf.CardXdpsecRule) uint64 { return uint64(r.Priority)<<16 | uint64(r.PolicyId) }

// tssList is the compiled SPD of one direction and family, what each of the card's two buffers holds of
// it, and which buckets differ.
type tssList struct {
	dir  spd.Dir
	fam  int
	pols map[uint32]spd.Policy // the list's policies by ID
	// shapes counts the list's policies by exact shape; tupleOf maps each to its tuple's shape.
	shapes  map[tssShape]int
	tupleOf map[tssShape]tssShape
	tuples  map[tssShape]*tssTuple
	ids     [256]bool // tuple ids in use
	// hint is the id a tuple of the shape had on the card before a restart, reused when free.
	hint    map[tssShape]uint8
	buckets map[bucketKey][]bpf.CardXdpsecRule // SPD order
	// card[buf] holds, for each bucket the buffer may hold, 1 + the chain chunks it may hold; dirty[buf]
	// the buckets whose content in that buffer may differ from buckets.
	card  [2]map[bucketKey]uint16
	dirty [2]map[bucketKey]bool
	// written[buf] is the tuple list last written to buffer buf, nil when unknown.
	written [2]*bpf.CardXdpsecTupleList
}

func (l *tssList) init(dir spd.Dir, fam int) {
	*l = tssList{
		dir: dir, fam: fam,
		pols:    map[uint32]spd.Policy{},
		shapes:  map[tssShape]int{},
		tupleOf: map[tssShape]tssShape{},
		tuples:  map[tssShape]*tssTuple{},
		hint:    map[tssShape]uint8{},
		buckets: map[bucketKey][]bpf.CardXdpsecRule{},
		card:    [2]map[bucketKey]uint16{{}, {}},
		dirty:   [2]map[bucketKey]bool{{}, {}},
	}
}

// listIndex is the list's index in spd_tuples (and the List of its keys) in buffer buf.
func (l *tssList) listIndex(buf uint32) uint32 {
	return (uint32(l.dir)*2+buf)*2 + uint32(l.fam)
}

// apply removes and inserts policies (a policy replaced is in both) and marks what changed.
func (l *tssList) apply(o *listOps) {
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
func (l *tssList) remap(fresh []spd.Policy) {
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
	if moved {
		isFresh := make(map[uint32]bool, len(fresh))
		for _, p := range fresh {
			isFresh[p.ID] = true
		}
		var move []spd.Policy
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
		return
	}
	l.tupleOf = next
}

// place inserts p into (or removes it from) its tuple and buckets.
func (l *tssList) place(p *spd.Policy, insert bool) {
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
		b := l.buckets[k]
		i, found := slices.BinarySearchFunc(b, order, func(r bpf.CardXdpsecRule, o uint64) int { return cmp.Compare(ruleOrder(&r), o) })
		switch {
		case insert && !found:
			b = slices.Insert(b, i, r)
		case !insert && found:
			b = slices.Delete(b, i, i+1)
		default:
			continue
		}
		if len(b) == 0 {
			delete(l.buckets, k)
		} else {
			l.buckets[k] = b
		}
		l.dirty[0][k], l.dirty[1][k] = true, true
	}
}

// keysOf is the bucket key of p in tuple t and, when t hashes ports, the key of p's fragment entry.
func (l *tssList) keysOf(p *spd.Policy, t *tssTuple) []bucketKey {
	s := &p.Selector
	k := bucketKey{List: uint8(l.listIndex(0)), Tuple: t.id}
	k.Src, _ = prefixWords(netip.PrefixFrom(s.Src.Addr(), int(t.shape.src)))
	k.Dst, _ = prefixWords(netip.PrefixFrom(s.Dst.Addr(), int(t.shape.dst)))
	if t.shape.proto {
		k.Proto = s.Proto
	}
	if !t.shape.hashesPorts() {
		return []bucketKey{k}
	}
	frag := k
	frag.Frag = 1
	if t.shape.sport {
		k.Sport = s.SrcPorts.Lo
	}
	if t.shape.dport {
		k.Dport = s.DstPorts.Lo
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

// rebuild recompiles the list from pols (after a failed write undid the loader's view). Tuple ids may
// change, so every bucket the buffers may hold and every bucket of the result is marked for rewriting.
func (l *tssList) rebuild(pols map[uint32]spd.Policy) {
	card, dirty := l.card, l.dirty
	for k := range l.buckets {
		dirty[0][k], dirty[1][k] = true, true
	}
	written := l.written
	l.init(l.dir, l.fam)
	l.card, l.dirty, l.written = card, dirty, written
	var o listOps
	for _, p := range pols {
		if p.Dir == l.dir && famOf(&p) == l.fam {
			o.insert = append(o.insert, p)
		}
	}
	l.apply(&o)
	for b := range l.card {
		for k := range l.card[b] {
			l.dirty[b][k] = true
		}
	}
}

// tupleList is the card's tuple list: the tuples by their best policy.
func (l *tssList) tupleList() *bpf.CardXdpsecTupleList {
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
	return &v
}

func (l *tssList) zero() netip.Addr {
	if l.fam == 0 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// chunks is how many chain chunks a bucket of n rules needs.
func chunks(n int) int { return (n - 1 + ruleBlock - 1) / ruleBlock }

const ruleBlock = len(bpf.CardXdpsecRuleBlock{}.Rule)

// tssWrites are the map writes that bring one buffer up to date.
type tssWrites struct {
	bucketKeys []bucketKey
	buckets    []bpf.CardXdpsecBucket
	chainKeys  []bucketKey
	chains     []bpf.CardXdpsecRuleBlock
	deletes    []bucketKey // buckets
	chainDels  []bucketKey
}

// collect adds the writes that make buffer buf hold l's dirty buckets, and records what the buffer will
// hold once they succeed (commit) or, pessimistically, may hold if they fail.
func (l *tssList) collect(buf uint32, w *tssWrites) {
	for k := range l.dirty[buf] {
		kb := withBuffer(k, buf)
		rules := l.buckets[k]
		old := int(l.card[buf][k]) // 0: absent
		if len(rules) > 0 {
			w.bucketKeys = append(w.bucketKeys, kb)
			w.buckets = append(w.buckets, bpf.CardXdpsecBucket{N: uint32(len(rules)), Rule: rules[0]})
			for c := 1; c <= chunks(len(rules)); c++ {
				var blk bpf.CardXdpsecRuleBlock
				copy(blk.Rule[:], rules[1+(c-1)*ruleBlock:])
				ck := kb
				ck.Chunk = uint16(c)
				w.chainKeys = append(w.chainKeys, ck)
				w.chains = append(w.chains, blk)
			}
		} else if old > 0 {
			w.deletes = append(w.deletes, kb)
		}
		for c := max(1, chunks(len(rules))+1); c < old; c++ {
			ck := kb
			ck.Chunk = uint16(c)
			w.chainDels = append(w.chainDels, ck)
		}
		// Until the writes succeed the buffer may hold the old or the new bucket.
		if n := len(rules); n > 0 {
			l.card[buf][k] = uint16(max(old, 1+chunks(n)))
		}
	}
}

// commit records that buffer buf now holds exactly the compiled buckets.
func (l *tssList) commit(buf uint32) {
	for k := range l.dirty[buf] {
		if rules := l.buckets[k]; len(rules) > 0 {
			l.card[buf][k] = uint16(1 + chunks(len(rules)))
		} else {
			delete(l.card[buf], k)
		}
	}
	// A new map rather than clear: iterating a cleared map still walks all the room it once grew to.
	l.dirty[buf] = map[bucketKey]bool{}
}

// writeTSS brings the idle buffer of dir up to the compiled lists and makes it live. Only buckets that
// changed since that buffer was last written are written (the loader tracks both buffers), so a change
// costs O(buckets changed) map writes, plus the two tuple lists.
func (c *Card) writeTSS(dir spd.Dir) error {
	var st bpf.CardXdpsecSpd
	if err := c.objs.SpdState.Lookup(uint32(dir), &st); err != nil {
		return fmt.Errorf("read spd state: %w", err)
	}
	buf := (st.Gen + 1) & 1
	var w tssWrites
	for fam := range 2 {
		c.tss[dir][fam].collect(buf, &w)
	}
	// Chains before the buckets that count them (not needed for correctness, the buffer is idle, but it
	// keeps a bucket from ever announcing rules its chain lacks); deletions last.
	if err := putBatch(c.objs.SpdChains, w.chainKeys, w.chains); err != nil {
		return fmt.Errorf("write %s chains: %w", dir, err)
	}
	if err := putBatch(c.objs.SpdBuckets, w.bucketKeys, w.buckets); err != nil {
		return fmt.Errorf("write %s buckets: %w", dir, err)
	}
	if err := deleteBatch(c.objs.SpdBuckets, w.deletes); err != nil {
		return fmt.Errorf("delete %s buckets: %w", dir, err)
	}
	if err := deleteBatch(c.objs.SpdChains, w.chainDels); err != nil {
		return fmt.Errorf("delete %s chains: %w", dir, err)
	}
	for fam := range 2 {
		l := &c.tss[dir][fam]
		v := l.tupleList()
		if l.written[buf] != nil && *l.written[buf] == *v {
			continue
		}
		l.written[buf] = nil
		if err := c.objs.SpdTuples.Put(l.listIndex(buf), v); err != nil {
			return fmt.Errorf("write %s tuples: %w", dir, err)
		}
		l.written[buf] = v
	}
	for fam := range 2 {
		c.tss[dir][fam].commit(buf)
	}
	// One 32-bit store makes the buffer live and invalidates the flow cache of this direction.
	st.Gen++
	if err := c.objs.SpdState.Put(uint32(dir), &st); err != nil {
		return fmt.Errorf("write spd state: %w", err)
	}
	return nil
}

func putBatch[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := m.BatchUpdate(keys, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i := range keys {
			if err := m.Put(&keys[i], &vals[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return err
}

// deleteBatch deletes keys; keys already gone are fine (after a failed write the loader only knows
// what a buffer may hold).
func deleteBatch[K any](m *ebpf.Map, keys []K) error {
	if len(keys) == 0 {
		return nil
	}
	n, err := m.BatchDelete(keys, nil)
	if err == nil {
		return nil
	}
	for i := n; i < len(keys); i++ {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// tssCard is what the card's SPD maps hold.
type tssCard struct {
	gen [2]uint32 // per direction
	// buckets[buf] are the rules of each bucket of buffer buf (keys as bucketKey: buffer 0), chains[buf]
	// the highest chain chunk present for each bucket (stale chunks included).
	buckets [2]map[bucketKey][]bpf.CardXdpsecRule
	chains  [2]map[bucketKey]uint16
	lists   [8]bpf.CardXdpsecTupleList
}

// missingRule stands for a rule a bucket counts but its chain lacks: no policy has its ID.
var missingRule = bpf.CardXdpsecRule{Priority: ^uint32(0), PolicyId: 0xffff}

// readTSS reads every bucket, chain and tuple list of the card.
func (c *Card) readTSS() (*tssCard, error) {
	t := &tssCard{
		buckets: [2]map[bucketKey][]bpf.CardXdpsecRule{{}, {}},
		chains:  [2]map[bucketKey]uint16{{}, {}},
	}
	for d := range t.gen {
		var st bpf.CardXdpsecSpd
		if err := c.objs.SpdState.Lookup(uint32(d), &st); err != nil {
			return nil, fmt.Errorf("read spd state: %w", err)
		}
		t.gen[d] = st.Gen
	}
	for i := range t.lists {
		if err := c.objs.SpdTuples.Lookup(uint32(i), &t.lists[i]); err != nil {
			return nil, fmt.Errorf("read tuples: %w", err)
		}
	}
	if err := readAll(c.objs.SpdBuckets, func(k bucketKey, v *bpf.CardXdpsecBucket) error {
		if k.Chunk != 0 || k.List > 7 || v.N == 0 || v.N > c.cfg.Policies {
			return fmt.Errorf("%w: spd bucket %+v of %d rules", ErrIncompatiblePin, k, v.N)
		}
		buf := uint32(k.List>>1) & 1
		k.List &^= 2
		rules := make([]bpf.CardXdpsecRule, v.N)
		rules[0] = v.Rule
		for i := 1; i < len(rules); i++ {
			rules[i] = missingRule
		}
		t.buckets[buf][k] = rules
		return nil
	}); err != nil {
		return nil, err
	}
	type chunk struct {
		k bucketKey
		v bpf.CardXdpsecRuleBlock
	}
	var cs []chunk
	if err := readAll(c.objs.SpdChains, func(k bucketKey, v *bpf.CardXdpsecRuleBlock) error {
		if k.List > 7 || k.Chunk == 0 {
			return fmt.Errorf("%w: spd chain %+v", ErrIncompatiblePin, k)
		}
		cs = append(cs, chunk{k, *v})
		return nil
	}); err != nil {
		return nil, err
	}
	for _, ch := range cs {
		k := ch.k
		buf := uint32(k.List>>1) & 1
		n := int(k.Chunk)
		k.List &^= 2
		k.Chunk = 0
		t.chains[buf][k] = max(t.chains[buf][k], uint16(n))
		if rules, ok := t.buckets[buf][k]; ok && 1+(n-1)*ruleBlock < len(rules) {
			copy(rules[1+(n-1)*ruleBlock:], ch.v.Rule[:])
		}
	}
	return t, nil
}

func readAll[K comparable, V any](m *ebpf.Map, fn func(K, *V) error) error {
	const chunk = 1024
	keys := make([]K, chunk)
	vals := make([]V, chunk)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			if err := fn(keys[i], &vals[i]); err != nil {
				return err
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", m, err)
		}
	}
}

// livePolicies is the SPD of the card's live buffers: every policy's rule joined with the policy table,
// in SPD order per direction (out first).
func (c *Card) livePolicies(t *tssCard) ([]spd.Policy, error) {
	var out []spd.Policy
	for _, dir := range []spd.Dir{spd.DirOut, spd.DirIn} {
		live := t.gen[dir] & 1
		type famRule struct {
			r      bpf.CardXdpsecRule
			family uint8
		}
		rules := map[uint16]famRule{}
		for k, rs := range t.buckets[live] {
			if spd.Dir(k.List>>2) != dir {
				continue
			}
			family := uint8(4)
			if k.List&1 == 1 {
				family = 6
			}
			for _, r := range rs {
				if uint32(r.PolicyId) >= c.cfg.Policies {
					return nil, fmt.Errorf("%w: %s bucket %+v holds a rule of policy %d", ErrIncompatiblePin, dir, k, r.PolicyId)
				}
				fr := famRule{r, family}
				if old, ok := rules[r.PolicyId]; ok && old != fr {
					return nil, fmt.Errorf("%w: policy %d has two rules", ErrIncompatiblePin, r.PolicyId)
				}
				rules[r.PolicyId] = fr
			}
		}
		var list []spd.Policy
		for id, fr := range rules {
			r := &fr.r
			var e bpf.CardXdpsecPolicy
			if err := c.objs.PolicyTable.Lookup(uint32(id), &e); err != nil {
				return nil, fmt.Errorf("read policy %d: %w", id, err)
			}
			list = append(list, spd.Policy{
				ID: uint32(id), Dir: dir, Priority: e.Priority, Action: spd.Action(e.Action), SA: e.SaIndex,
				Selector: spd.Selector{
					Src:      wordsPrefix(r.Src, r.SrcMask, fr.family),
					Dst:      wordsPrefix(r.Dst, r.DstMask, fr.family),
					Proto:    r.Proto,
					SrcPorts: spd.PortRange{Lo: r.SportLo, Hi: r.SportHi},
					DstPorts: spd.PortRange{Lo: r.DportLo, Hi: r.DportHi},
				},
			})
		}
		slices.SortFunc(list, func(a, b spd.Policy) int { return spd.Compare(&a, &b) })
		out = append(out, list...)
	}
	return out, nil
}

// restore rebuilds the loader's view of the SPD from a reopened card's live buffers, and learns what each
// buffer holds so that the next changes write only what differs.
func (c *Card) restore() error {
	t, err := c.readTSS()
	if err != nil {
		return err
	}
	pols, err := c.livePolicies(t)
	if err != nil {
		return err
	}
	for _, p := range pols {
		c.pols[p.ID] = p
	}
	for d := range c.tss {
		for f := range c.tss[d] {
			l := &c.tss[d][f]
			l.init(spd.Dir(d), f)
			// The live tuples keep their ids, so that the buckets of unchanged tuples keep their keys.
			live := &t.lists[l.listIndex(t.gen[d]&1)]
			for _, e := range live.T[:min(int(live.N), len(live.T))] {
				l.hint[tssShape{e.SrcBits, e.DstBits, e.ProtoMask != 0, e.SportMask != 0, e.DportMask != 0}] = e.Id
			}
			var o listOps
			for _, p := range pols {
				if p.Dir == l.dir && famOf(&p) == f {
					o.insert = append(o.insert, p)
				}
			}
			l.apply(&o)
			clear(l.hint)
			for buf := range l.written {
				l.written[buf] = &t.lists[l.listIndex(uint32(buf))]
			}
			for buf := range l.card {
				l.dirty[buf] = map[bucketKey]bool{}
				for k, rs := range t.buckets[buf] {
					if k.List == uint8(l.listIndex(0)) {
						l.card[buf][k] = uint16(1 + chunks(len(rs)))
						if !slices.Equal(rs, l.buckets[k]) {
							l.dirty[buf][k] = true
						}
					}
				}
				for k, n := range t.chains[buf] {
					if k.List == uint8(l.listIndex(0)) && n+1 > l.card[buf][k] {
						l.card[buf][k] = n + 1 // stale chunks past the bucket's rules
						l.dirty[buf][k] = true
					}
				}
				for k := range l.buckets {
					if _, ok := t.buckets[buf][k]; !ok {
						l.dirty[buf][k] = true
					}
				}
			}
		}
	}
	if len(c.pols) > 0 {
		c.log.Info("card reopened with its offloaded SPD", "policies", len(c.pols))
	}
	return nil
}

// DumpSPD reads the SPD the card is using — its live buckets joined with the policy table — rather than
// the loader's copy: for consistency checks. Policies come in SPD order, out first.
func (c *Card) DumpSPD() ([]spd.Policy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	t, err := c.readTSS()
	if err != nil {
		return nil, err
	}
	return c.livePolicies(t)
}
