package loader

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Writing the compiled tuple spaces (tss.go) into the card's double-buffered maps, and reading them back.

// filterBitsFor is log2 of the filter's bits per list for a policy capacity: at least 16 bits per bucket
// a list can hold (two per policy), so that a probe whose key is absent finds its bit clear about 94 %
// of the time. At least 2^12, so that a list's words fill whole bitset words (dirtyWords).
func filterBitsFor(policies uint32) uint {
	return uint(min(max(bits.Len32(32*policies-1), 12), 26))
}

// chainRegion is the size in rules of one (direction, buffer) region of spd_chain, whole blocks: a
// bucket's rules after its first, and each policy is in at most two buckets.
func chainRegion(policies uint32) uint32 {
	return (2*policies + uint32(ruleBlock) - 1) / uint32(ruleBlock) * uint32(ruleBlock)
}

// ruleBlock is the rules per spd_chain entry.
const ruleBlock = len(bpf.CardXdpsecRuleBlock{}.Rule)

// extents allocates runs of spd_chain entries within one (direction, buffer) region: first fit over the
// free runs, sorted by offset and coalesced.
type extents struct {
	base, size uint32
	free       []tssChain
}

func (e *extents) reset() { e.free = []tssChain{{e.base, e.size}} }

func (e *extents) alloc(n uint32) (uint32, bool) {
	for i, f := range e.free {
		if f.n >= n {
			if f.n == n {
				e.free = slices.Delete(e.free, i, i+1)
			} else {
				e.free[i] = tssChain{f.off + n, f.n - n}
			}
			return f.off, true
		}
	}
	return 0, false
}

func (e *extents) release(c tssChain) {
	if c.n == 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(e.free, c.off, func(f tssChain, off uint32) int { return cmp.Compare(f.off, off) })
	e.free = slices.Insert(e.free, i, c)
	if i+1 < len(e.free) && c.off+c.n == e.free[i+1].off {
		e.free[i].n += e.free[i+1].n
		e.free = slices.Delete(e.free, i+1, i+2)
	}
	if i > 0 && e.free[i-1].off+e.free[i-1].n == c.off {
		e.free[i-1].n += e.free[i].n
		e.free = slices.Delete(e.free, i, i+1)
	}
}

// restore sets the free runs to the gaps between used; false when used overlap or leave the region.
func (e *extents) restore(used []tssChain) bool {
	used = slices.DeleteFunc(slices.Clone(used), func(c tssChain) bool { return c.n == 0 })
	slices.SortFunc(used, func(a, b tssChain) int { return cmp.Compare(a.off, b.off) })
	e.free = nil
	at := e.base
	for _, u := range used {
		if u.off < at || u.off+u.n > e.base+e.size || u.off+u.n < u.off {
			e.reset()
			return false
		}
		if u.off > at {
			e.free = append(e.free, tssChain{at, u.off - at})
		}
		at = u.off + u.n
	}
	if at < e.base+e.size {
		e.free = append(e.free, tssChain{at, e.base + e.size - at})
	}
	return true
}

var errChainFull = errors.New("chain region fragmented")

// tssWrites are the writes that bring one buffer up to date: spd_buckets through syscalls, the chains
// and filter words through the mmap'ed arrays (indexes into them).
type tssWrites struct {
	bucketKeys []bucketKey
	buckets    []bpf.CardXdpsecBucket
	chainIdx   []uint32
	chain      []bpf.CardXdpsecRule
	deletes    []bucketKey
	wordIdx    []uint32
	words      []uint64
	// pending is what the buffer holds of each dirty bucket once the writes succeed (nil: absent).
	pending []map[bucketKey]*tssChain
}

// collect adds the writes that bring buffer buf of l up to the target, allocating chains from ch.
func (l *tssList) collect(buf uint32, ch *extents, w *tssWrites) error {
	b := &l.buf[buf]
	for k := range b.dirty {
		if h, ok := b.held[k]; ok {
			ch.release(h)
		}
	}
	pending := make(map[bucketKey]*tssChain, len(b.dirty))
	w.pending = append(w.pending, pending)
	for k := range b.dirty {
		kb := withBuffer(k, buf)
		rules := l.buckets[k]
		if len(rules) == 0 {
			if _, ok := b.held[k]; ok {
				w.deletes = append(w.deletes, kb)
			}
			pending[k] = nil
			continue
		}
		var c tssChain
		if n := uint32(len(rules) - 1); n > 0 {
			off, ok := ch.alloc(n)
			if !ok {
				return errChainFull
			}
			c = tssChain{off, n}
			for i, r := range rules[1:] {
				w.chainIdx = append(w.chainIdx, off+uint32(i))
				w.chain = append(w.chain, r)
			}
		}
		w.bucketKeys = append(w.bucketKeys, kb)
		w.buckets = append(w.buckets, bpf.CardXdpsecBucket{N: uint32(len(rules)), Chain: c.off, Rule: rules[0]})
		pending[k] = &c
	}
	base := l.listIndex(buf) << (l.filterBits - 6)
	b.dirtyWords.each(func(i uint32) {
		w.wordIdx = append(w.wordIdx, base+i)
		w.words = append(w.words, l.filter[i])
	})
	return nil
}

// resetBuffer forgets where buffer buf of dir keeps its chains and marks everything for rewriting: after a
// failed write, or when its chain region is too fragmented for a change.
func (c *Card) resetBuffer(dir ipsec.Dir, buf uint32) {
	c.chains[dir][buf].reset()
	for f := range c.tss[dir] {
		l := &c.tss[dir][f]
		b := &l.buf[buf]
		for k := range b.held {
			b.held[k] = tssChain{}
			b.dirty[k] = true
		}
		for k := range l.buckets {
			b.dirty[k] = true
		}
		for i := range b.dirtyWords {
			b.dirtyWords[i] = ^uint64(0)
		}
		b.written = nil
	}
}

// writeTSS brings the idle buffer of dir up to the compiled lists and makes it live. Only buckets and
// filter words that changed since that buffer was last written are written (the loader tracks both
// buffers), so a change costs O(buckets changed): one batch update of spd_buckets (and one batch delete)
// in syscalls, the rest written through the mmap'ed arrays.
func (c *Card) writeTSS(dir ipsec.Dir) error {
	gen := &c.spd.state[dir].Gen
	buf := (atomic.LoadUint32(gen) + 1) & 1
	if c.tssReset[dir][buf] {
		c.resetBuffer(dir, buf)
	}
	var w tssWrites
	for attempt := 0; ; attempt++ {
		w = tssWrites{}
		var err error
		for f := range c.tss[dir] {
			if err = c.tss[dir][f].collect(buf, &c.chains[dir][buf], &w); err != nil {
				break
			}
		}
		if err == nil {
			break
		}
		if attempt > 0 {
			return fmt.Errorf("write %s chains: %w", dir, err) // cannot happen: the region fits the worst case
		}
		// Rewriting the buffer whole lays its chains out end to end.
		c.chainCompactions++
		c.resetBuffer(dir, buf)
	}
	// The buckets first: the only writes that can fail.
	err := putBatch(c.objs.SpdBuckets, w.bucketKeys, w.buckets)
	if err == nil {
		err = deleteBatch(c.objs.SpdBuckets, w.deletes)
	}
	if err != nil {
		// What the buffer holds is unknown now: the next change rewrites it whole.
		c.tssReset[dir][buf] = true
		for f := range c.tss[dir] {
			for k, h := range w.pending[f] {
				if h != nil {
					c.tss[dir][f].buf[buf].held[k] = tssChain{}
				}
			}
		}
		return fmt.Errorf("write %s buckets: %w", dir, err)
	}
	for i, idx := range w.chainIdx {
		c.spd.chain[idx/uint32(ruleBlock)].Rule[idx%uint32(ruleBlock)] = w.chain[i]
	}
	for i, idx := range w.wordIdx {
		c.spd.filter[idx] = w.words[i]
	}
	c.tssReset[dir][buf] = false
	for f := range c.tss[dir] {
		l := &c.tss[dir][f]
		b := &l.buf[buf]
		if v := l.tupleList(); b.written != v {
			writeTuples(&c.spd.tuples[l.listIndex(buf)], b.written, v)
			b.written = v
		}
		for k, h := range w.pending[f] {
			if h == nil {
				delete(b.held, k)
			} else {
				b.held[k] = *h
			}
		}
		// A new map rather than clear: iterating a cleared map still walks all the room it once had.
		b.dirty = map[bucketKey]bool{}
		clear(b.dirtyWords)
	}
	// One atomic add makes the buffer live, after every store above (it is sequentially consistent),
	// and invalidates the flow cache of this direction.
	atomic.AddUint32(gen, 1)
	return nil
}

// writeTuples makes dst, which holds old (nil: unknown), hold v, writing only the tuples that differ: the
// array is shared memory the loader's syscalls have evicted from the cache, so every line costs.
func writeTuples(dst, old, v *bpf.CardXdpsecTupleList) {
	if old == nil {
		*dst = *v
		return
	}
	for i := range v.T[:v.N] {
		if i >= int(old.N) || old.T[i] != v.T[i] {
			dst.T[i] = v.T[i]
		}
	}
	dst.N, dst.Policies = v.N, v.Policies
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

// deleteBatch deletes keys; keys already gone are fine (after a failed write the loader only knows what
// a buffer may hold).
func deleteBatch[K any](m *ebpf.Map, keys []K) error {
	if len(keys) == 0 {
		return nil
	}
	n, err := m.BatchDelete(keys, nil)
	if err == nil {
		return nil
	}
	for i := max(n, 0); i < len(keys); i++ {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// tssCard is what the card's SPD maps hold.
type tssCard struct {
	gen [2]uint32 // per direction
	// buckets[buf] are the rules of each bucket of buffer buf (keys as bucketKey: buffer 0), and
	// chains[buf] where the buckets say their further rules are.
	buckets [2]map[bucketKey][]bpf.CardXdpsecRule
	chains  [2]map[bucketKey]tssChain
	lists   [8]bpf.CardXdpsecTupleList
	filter  []uint64 // the card's own memory
}

// readTSS reads every bucket with its chain, every tuple list and the filters of the card.
func (c *Card) readTSS() (*tssCard, error) {
	t := &tssCard{
		buckets: [2]map[bucketKey][]bpf.CardXdpsecRule{{}, {}},
		chains:  [2]map[bucketKey]tssChain{{}, {}},
		filter:  c.spd.filter,
	}
	for d := range t.gen {
		t.gen[d] = atomic.LoadUint32(&c.spd.state[d].Gen)
	}
	copy(t.lists[:], c.spd.tuples)
	err := readAll(c.objs.SpdBuckets, func(k bucketKey, v *bpf.CardXdpsecBucket) error {
		if k.List > 7 || v.N == 0 || v.N > c.cfg.Policies || uint64(v.Chain)+uint64(v.N-1) > uint64(len(c.spd.chain)*ruleBlock) {
			return fmt.Errorf("%w: spd bucket %+v of %d rules chained at %d", ErrIncompatiblePin, k, v.N, v.Chain)
		}
		buf := uint32(k.List>>1) & 1
		k.List &^= 2
		t.chains[buf][k] = tssChain{v.Chain, v.N - 1}
		rules := make([]bpf.CardXdpsecRule, 0, v.N)
		rules = append(rules, v.Rule)
		for i := v.Chain; i < v.Chain+v.N-1; i++ {
			rules = append(rules, c.spd.chain[i/uint32(ruleBlock)].Rule[i%uint32(ruleBlock)])
		}
		t.buckets[buf][k] = rules
		return nil
	})
	return t, err
}

func readAll[K comparable, V any](m *ebpf.Map, fn func(K, *V) error) error {
	const chunk = 4096
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
func (c *Card) livePolicies(t *tssCard) ([]ipsec.Policy, error) {
	var out []ipsec.Policy
	for _, dir := range []ipsec.Dir{ipsec.DirOut, ipsec.DirIn} {
		live := t.gen[dir] & 1
		type famRule struct {
			r      bpf.CardXdpsecRule
			family uint8
		}
		rules := map[uint16]famRule{}
		for k, rs := range t.buckets[live] {
			if ipsec.Dir(k.List>>2) != dir {
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
		var list []ipsec.Policy
		for id, fr := range rules {
			r := &fr.r
			var e bpf.CardXdpsecPolicy
			if err := c.objs.PolicyTable.Lookup(uint32(id), &e); err != nil {
				return nil, fmt.Errorf("read policy %d: %w", id, err)
			}
			list = append(list, ipsec.Policy{
				ID: uint32(id), Dir: dir, Priority: e.Priority, Action: ipsec.Action(e.Action), SA: e.SaIndex,
				Selector: ipsec.Selector{
					Src:      wordsPrefix(r.Src, r.SrcMask, fr.family),
					Dst:      wordsPrefix(r.Dst, r.DstMask, fr.family),
					Proto:    ipsec.Proto(r.Proto),
					SrcPorts: ipsec.Ports(r.SportLo, r.SportHi),
					DstPorts: ipsec.Ports(r.DportLo, r.DportHi),
				},
			})
		}
		slices.SortFunc(list, func(a, b ipsec.Policy) int { return ipsec.Compare(&a, &b) })
		out = append(out, list...)
	}
	return out, nil
}

// initTSS sets up the empty compiled lists and chain allocators.
func (c *Card) initTSS() {
	for d := range c.tss {
		for f := range c.tss[d] {
			c.tss[d][f].init(ipsec.Dir(d), f, filterBitsFor(c.cfg.Policies))
		}
		for b := range c.chains[d] {
			c.chains[d][b] = extents{base: uint32(d*2+b) * chainRegion(c.cfg.Policies), size: chainRegion(c.cfg.Policies)}
			c.chains[d][b].reset()
		}
	}
}

// restore rebuilds the loader's view of the SPD from a reopened card's live buffers, and learns what both
// buffers hold so that the next changes write only what differs.
func (c *Card) restore() error {
	c.initTSS()
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
			for buf := range l.buf {
				l.learn(uint32(buf), t)
			}
		}
		for buf := range c.chains[d] {
			var used []tssChain
			for f := range c.tss[d] {
				for _, h := range c.tss[d][f].buf[buf].held {
					used = append(used, h)
				}
			}
			if !c.chains[d][buf].restore(used) {
				c.tssReset[d][buf] = true
			}
		}
	}
	if len(c.pols) > 0 {
		c.log.Info("card reopened with its offloaded SPD", "policies", len(c.pols))
	}
	return nil
}

// learn records what buffer buf of the card holds of l, and marks what differs from the target.
func (l *tssList) learn(buf uint32, t *tssCard) {
	b := &l.buf[buf]
	b.dirty = map[bucketKey]bool{}
	clear(b.dirtyWords)
	for k, rs := range t.buckets[buf] {
		if k.List != uint8(l.listIndex(0)) {
			continue
		}
		b.held[k] = t.chains[buf][k]
		if !slices.Equal(rs, l.buckets[k]) {
			b.dirty[k] = true
		}
	}
	for k := range l.buckets {
		if _, ok := b.held[k]; !ok {
			b.dirty[k] = true
		}
	}
	words := uint32(1) << (l.filterBits - 6)
	base := l.listIndex(buf) * words
	for i := range words {
		if int(base+i) >= len(t.filter) || t.filter[base+i] != l.filter[i] {
			b.dirtyWords.set(i)
		}
	}
	b.written = nil // written at the next change
}

// DumpSPD reads the SPD the card is using — its live buckets joined with the policy table — rather than
// the loader's copy: for consistency checks. Policies come in SPD order, out first.
func (c *Card) DumpSPD() ([]ipsec.Policy, error) {
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

// spdMem is the card's mmap-able SPD arrays, mapped into the process.
type spdMem struct {
	mems   [][]byte
	state  []bpf.CardXdpsecSpd
	tuples []bpf.CardXdpsecTupleList
	chain  []bpf.CardXdpsecRuleBlock
	filter []uint64
}

func (c *Card) mapSPD() error {
	m := &c.spd
	add := func(mem []byte, err error) error {
		if mem != nil {
			m.mems = append(m.mems, mem)
		}
		return err
	}
	var err error
	var mem []byte
	mem, m.state, err = mmapArray[bpf.CardXdpsecSpd](c.objs.SpdState)
	if err := add(mem, err); err != nil {
		return err
	}
	mem, m.tuples, err = mmapArray[bpf.CardXdpsecTupleList](c.objs.SpdTuples)
	if err := add(mem, err); err != nil {
		return err
	}
	mem, m.chain, err = mmapArray[bpf.CardXdpsecRuleBlock](c.objs.SpdChain)
	if err := add(mem, err); err != nil {
		return err
	}
	mem, m.filter, err = mmapArray[uint64](c.objs.SpdFilter)
	if err := add(mem, err); err != nil {
		return err
	}
	if len(m.state) != 2 || len(m.tuples) != 8 {
		return fmt.Errorf("%w: spd state or tuple arrays of %d and %d entries", ErrIncompatiblePin, len(m.state), len(m.tuples))
	}
	return nil
}

func (m *spdMem) close() error {
	var err error
	for _, mem := range m.mems {
		if e := unix.Munmap(mem); e != nil && err == nil {
			err = e
		}
	}
	*m = spdMem{}
	return err
}
