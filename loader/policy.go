package loader

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// PutPolicies installs or replaces policies (by ID) in one SPD change: the card switches from the old
// rule lists to the new ones atomically, and every flow is classified again.
//
// Order of writes: the policy table entries first, then the rule lists, so a rule never names a policy
// the table lacks. Cost: one batch write of the rule lists of each direction touched, O(policies of
// that direction).
func (c *Card) PutPolicies(ps ...ipsec.Policy) error {
	return c.changeSPD(ps, nil)
}

// DeletePolicies removes policies by ID (unknown IDs are ignored): the rule lists drop them first, then
// their table entries are cleared.
func (c *Card) DeletePolicies(ids ...uint32) error {
	return c.changeSPD(nil, ids)
}

// ReplaceSPD makes the card's SPD exactly ps, in one SPD change.
func (c *Card) ReplaceSPD(ps []ipsec.Policy) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var del []uint32
	keep := make(map[uint32]bool, len(ps))
	for _, p := range ps {
		keep[p.ID] = true
	}
	for id := range c.pols {
		if !keep[id] {
			del = append(del, id)
		}
	}
	return c.changeSPDLocked(ps, del)
}

// Policies returns the installed policies in SPD order per direction (out first).
func (c *Card) Policies() []ipsec.Policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ipsec.Policy, 0, len(c.pols))
	for _, p := range c.pols {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b ipsec.Policy) int {
		if a.Dir != b.Dir {
			return int(a.Dir) - int(b.Dir)
		}
		return ipsec.Compare(&a, &b)
	})
	return out
}

func (c *Card) changeSPD(put []ipsec.Policy, del []uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changeSPDLocked(put, del)
}

func (c *Card) changeSPDLocked(put []ipsec.Policy, del []uint32) error {
	if c.closed {
		return ErrClosed
	}
	seen := make(map[uint32]bool, len(put))
	for i := range put {
		p := &put[i]
		if p.ID >= c.cfg.Policies {
			return fmt.Errorf("put policy %d: %w (%d policies)", p.ID, ErrCapacity, c.cfg.Policies)
		}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("put policy: %w", err)
		}
		if p.Action == ipsec.ActionProtect && p.SA != ipsec.NoSA && p.SA >= c.cfg.SAs {
			return fmt.Errorf("put policy %d: SA %d: %w", p.ID, p.SA, ErrCapacity)
		}
		if seen[p.ID] {
			return fmt.Errorf("put policy %d: %w: given twice", p.ID, ErrInvalid)
		}
		seen[p.ID] = true
	}
	// Apply to the loader's view, remembering how to undo it if the card refuses a write.
	undo := make(map[uint32]*ipsec.Policy, len(put)+len(del))
	remember := func(id uint32) {
		if _, ok := undo[id]; ok {
			return
		}
		if old, ok := c.pols[id]; ok {
			undo[id] = &old
		} else {
			undo[id] = nil
		}
	}
	var ops [2][2]listOps // [dir][family]
	var removed []uint32
	for _, id := range del {
		if old, ok := c.pols[id]; ok && !seen[id] {
			remember(id)
			ops[old.Dir][famOf(&old)].remove = append(ops[old.Dir][famOf(&old)].remove, old)
			delete(c.pols, id)
			removed = append(removed, id)
		}
	}
	fresh := make(map[uint32]bool)
	for _, p := range put {
		if p.Action != ipsec.ActionProtect {
			p.SA = ipsec.NoSA // the card keeps no SA for other actions; so does the loader's view
		}
		remember(p.ID)
		if old, ok := c.pols[p.ID]; ok {
			ops[old.Dir][famOf(&old)].remove = append(ops[old.Dir][famOf(&old)].remove, old)
		} else {
			fresh[p.ID] = true
		}
		ops[p.Dir][famOf(&p)].insert = append(ops[p.Dir][famOf(&p)].insert, p)
		c.pols[p.ID] = p
	}
	for d := range ops {
		for f := range ops[d] {
			if o := &ops[d][f]; len(o.remove)+len(o.insert) > 0 {
				c.lists[d][f].apply(o, c.pols, ipsec.Dir(d), f)
			}
		}
	}

	err := c.writeSPDChange(put, fresh, removed, &ops)
	if err != nil {
		for id, old := range undo {
			if old == nil {
				delete(c.pols, id)
			} else {
				c.pols[id] = *old
			}
		}
		for d := range ops {
			if len(ops[d][0].remove)+len(ops[d][0].insert)+len(ops[d][1].remove)+len(ops[d][1].insert) > 0 {
				for f := range 2 {
					c.lists[d][f].rebuild(c.pols, ipsec.Dir(d), f)
					// The idle buffer may be half written.
					c.shadowKnown[d][0][f], c.shadowKnown[d][1][f] = false, false
				}
			}
		}
	}
	return err
}

// writeSPDChange writes an applied change to the card: table entries of put policies, the rule lists of
// the directions touched, then the cleared table entries of removed ones.
func (c *Card) writeSPDChange(put []ipsec.Policy, fresh map[uint32]bool, removed []uint32, ops *[2][2]listOps) error {
	for i := range put {
		p := c.pols[put[i].ID]
		if fresh[p.ID] {
			if err := c.resetPolicyCounters(p.ID); err != nil {
				return err
			}
		}
		if err := c.objs.PolicyTable.Put(p.ID, policyEntry(&p)); err != nil {
			return fmt.Errorf("write policy %d: %w", p.ID, err)
		}
	}
	for d := range ops {
		if len(ops[d][0].remove)+len(ops[d][0].insert)+len(ops[d][1].remove)+len(ops[d][1].insert) > 0 {
			if err := c.writeRules(ipsec.Dir(d)); err != nil {
				return err
			}
		}
	}
	for _, id := range removed {
		if err := c.objs.PolicyTable.Put(id, &bpf.CardXdpsecPolicy{SaIndex: ipsec.NoSA}); err != nil {
			return fmt.Errorf("clear policy %d: %w", id, err)
		}
	}
	return nil
}

func famOf(p *ipsec.Policy) int {
	if p.Selector.Is4() {
		return 0
	}
	return 1
}

// listOps are the policies leaving and entering one rule list in one SPD change.
type listOps struct {
	remove, insert []ipsec.Policy
}

// ruleList is one (direction, family) list in SPD order, with the card's rule for each policy.
type ruleList struct {
	pols  []ipsec.Policy
	rules []bpf.CardXdpsecRule
}

// incrementalOps is the change size up to which a list is edited in place (binary search and
// memmove per policy) rather than rebuilt and sorted.
const incrementalOps = 64

func (l *ruleList) apply(o *listOps, pols map[uint32]ipsec.Policy, dir ipsec.Dir, fam int) {
	if len(o.remove)+len(o.insert) > incrementalOps {
		l.rebuild(pols, dir, fam)
		return
	}
	cmp := func(a ipsec.Policy, b ipsec.Policy) int { return ipsec.Compare(&a, &b) }
	for _, p := range o.remove {
		if i, ok := slices.BinarySearchFunc(l.pols, p, cmp); ok {
			l.pols = slices.Delete(l.pols, i, i+1)
			l.rules = slices.Delete(l.rules, i, i+1)
		}
	}
	for _, p := range o.insert {
		i, _ := slices.BinarySearchFunc(l.pols, p, cmp)
		l.pols = slices.Insert(l.pols, i, p)
		l.rules = slices.Insert(l.rules, i, ruleOf(&p))
	}
}

func (l *ruleList) rebuild(pols map[uint32]ipsec.Policy, dir ipsec.Dir, fam int) {
	l.pols = l.pols[:0]
	for _, p := range pols {
		if p.Dir == dir && famOf(&p) == fam {
			l.pols = append(l.pols, p)
		}
	}
	slices.SortFunc(l.pols, func(a, b ipsec.Policy) int { return ipsec.Compare(&a, &b) })
	l.rules = l.rules[:0]
	for i := range l.pols {
		l.rules = append(l.rules, ruleOf(&l.pols[i]))
	}
}

func policyEntry(p *ipsec.Policy) *bpf.CardXdpsecPolicy {
	sa := p.SA
	if p.Action != ipsec.ActionProtect {
		sa = ipsec.NoSA
	}
	return &bpf.CardXdpsecPolicy{
		SaIndex:  sa,
		Priority: p.Priority,
		Action:   uint8(p.Action),
		Dir:      uint8(p.Dir),
		Flags:    uint8(bpf.CardXdpsecPolicyFlagsXDPSEC_POL_F_INSTALLED),
	}
}

func ruleOf(p *ipsec.Policy) bpf.CardXdpsecRule {
	s := &p.Selector
	r := bpf.CardXdpsecRule{
		SportLo: s.SrcPorts.Lo(), SportHi: s.SrcPorts.Hi(),
		DportLo: s.DstPorts.Lo(), DportHi: s.DstPorts.Hi(),
		PolicyId: uint16(p.ID),
		Proto:    uint8(s.Proto),
	}
	r.Src, r.SrcMask = prefixWords(s.Src)
	r.Dst, r.DstMask = prefixWords(s.Dst)
	if s.ConstrainsPorts() {
		r.Flags = uint8(bpf.CardXdpsecRuleFlagsXDPSEC_RULE_F_PORTS)
	}
	return r
}

// ruleBlock is how many rules one spd_rules entry holds.
const ruleBlock = len(bpf.CardXdpsecRuleBlock{}.Rule)

// ruleBlocks is the number of blocks one rule list needs for a policy capacity.
func ruleBlocks(policies uint32) uint32 {
	return (policies + uint32(ruleBlock) - 1) / uint32(ruleBlock)
}

// ruleBase is the first block of the list of (dir, buffer, family).
func (c *Card) ruleBase(dir ipsec.Dir, buf, fam uint32) uint32 {
	return ((uint32(dir)*2+buf)*2 + fam) * ruleBlocks(c.cfg.Policies)
}

// writeRules brings the idle buffer of dir up to the loader's lists and makes it live. Only blocks that
// differ from what the idle buffer is known to hold are written (the loader shadows each buffer), so a
// change costs O(blocks changed) map writes plus an O(n) comparison in memory.
func (c *Card) writeRules(dir ipsec.Dir) error {
	var st bpf.CardXdpsecSpd
	if err := c.objs.SpdState.Lookup(uint32(dir), &st); err != nil {
		return fmt.Errorf("read spd state: %w", err)
	}
	nb := (st.Gen + 1) & 1
	for fam := range 2 {
		target := c.lists[dir][fam].rules
		shadow := c.shadow[dir][nb][fam]
		known := c.shadowKnown[dir][nb][fam]
		base := c.ruleBase(dir, nb, uint32(fam))
		var (
			keys []uint32
			vals []bpf.CardXdpsecRuleBlock
		)
		for blk := 0; blk*ruleBlock < len(target); blk++ {
			if known && blockEqual(target, shadow, blk) {
				continue
			}
			var b bpf.CardXdpsecRuleBlock
			copy(b.Rule[:], target[blk*ruleBlock:min(len(target), (blk+1)*ruleBlock)])
			keys = append(keys, base+uint32(blk))
			vals = append(vals, b)
		}
		// The shadow is dropped first: a failed write leaves the buffer's contents unknown.
		c.shadowKnown[dir][nb][fam] = false
		if err := putBatch(c.objs.SpdRules, keys, vals); err != nil {
			return fmt.Errorf("write %s rules: %w", dir, err)
		}
		c.shadow[dir][nb][fam] = append(shadow[:0], target...)
		c.shadowKnown[dir][nb][fam] = true
		st.Count[nb][fam] = uint32(len(target))
	}
	// The idle buffer's counts first (the live ones are untouched), then the generation: one 32-bit
	// store that makes the new lists live and invalidates the flow cache for this direction.
	if err := c.objs.SpdState.Put(uint32(dir), &st); err != nil {
		return fmt.Errorf("write spd state: %w", err)
	}
	st.Gen++
	if err := c.objs.SpdState.Put(uint32(dir), &st); err != nil {
		return fmt.Errorf("write spd state: %w", err)
	}
	return nil
}

// blockEqual reports whether block blk of target is already in a buffer holding shadow: every rule of
// the block that target has is equal (rules past the list's end are never read by the card).
func blockEqual(target, shadow []bpf.CardXdpsecRule, blk int) bool {
	for i := blk * ruleBlock; i < min(len(target), (blk+1)*ruleBlock); i++ {
		if i >= len(shadow) || target[i] != shadow[i] {
			return false
		}
	}
	return true
}

func putBatch[V any](m *ebpf.Map, keys []uint32, vals []V) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := m.BatchUpdate(keys, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i := range keys {
			if err := m.Put(keys[i], &vals[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return err
}

// restore rebuilds the loader's view of the SPD from a reopened card's live rule lists.
func (c *Card) restore() error {
	pols, err := c.readSPD()
	if err != nil {
		return err
	}
	for _, p := range pols {
		c.pols[p.ID] = p
	}
	for d := range c.lists {
		var st bpf.CardXdpsecSpd
		if err := c.objs.SpdState.Lookup(uint32(d), &st); err != nil {
			return fmt.Errorf("read spd state: %w", err)
		}
		for f := range c.lists[d] {
			c.lists[d][f].rebuild(c.pols, ipsec.Dir(d), f)
			// The live buffer holds exactly these rules; the idle one is unknown until written.
			live := st.Gen & 1
			c.shadow[d][live][f] = slices.Clone(c.lists[d][f].rules)
			c.shadowKnown[d][live][f] = true
		}
	}
	if len(c.pols) > 0 {
		c.log.Info("card reopened with its offloaded SPD", "policies", len(c.pols))
	}
	return nil
}

// DumpSPD reads the SPD the card is using — its live rule lists joined with the policy table — rather
// than the loader's copy: for consistency checks. Policies come in SPD order, out first.
func (c *Card) DumpSPD() ([]ipsec.Policy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.readSPD()
}

func (c *Card) readSPD() ([]ipsec.Policy, error) {
	var out []ipsec.Policy
	for _, dir := range []ipsec.Dir{ipsec.DirOut, ipsec.DirIn} {
		var st bpf.CardXdpsecSpd
		if err := c.objs.SpdState.Lookup(uint32(dir), &st); err != nil {
			return nil, fmt.Errorf("read spd state: %w", err)
		}
		buf := st.Gen & 1
		var list []ipsec.Policy
		for fam := uint32(0); fam < 2; fam++ {
			n := st.Count[buf][fam]
			if n > c.cfg.Policies {
				return nil, fmt.Errorf("%w: spd state counts %d rules", ErrIncompatiblePin, n)
			}
			base := c.ruleBase(dir, buf, fam)
			family := uint8(4)
			if fam == 1 {
				family = 6
			}
			var blk bpf.CardXdpsecRuleBlock
			for i := uint32(0); i < n; i++ {
				if i%uint32(ruleBlock) == 0 {
					if err := c.objs.SpdRules.Lookup(base+i/uint32(ruleBlock), &blk); err != nil {
						return nil, fmt.Errorf("read rules: %w", err)
					}
				}
				r := &blk.Rule[i%uint32(ruleBlock)]
				var e bpf.CardXdpsecPolicy
				if err := c.objs.PolicyTable.Lookup(uint32(r.PolicyId), &e); err != nil {
					return nil, fmt.Errorf("read policy %d: %w", r.PolicyId, err)
				}
				list = append(list, ipsec.Policy{
					ID: uint32(r.PolicyId), Dir: dir, Priority: e.Priority, Action: ipsec.Action(e.Action), SA: e.SaIndex,
					Selector: ipsec.Selector{
						Src:      wordsPrefix(r.Src, r.SrcMask, family),
						Dst:      wordsPrefix(r.Dst, r.DstMask, family),
						Proto:    ipsec.Proto(r.Proto),
						SrcPorts: ipsec.Ports(r.SportLo, r.SportHi),
						DstPorts: ipsec.Ports(r.DportLo, r.DportHi),
					},
				})
			}
		}
		slices.SortFunc(list, func(a, b ipsec.Policy) int { return ipsec.Compare(&a, &b) })
		out = append(out, list...)
	}
	return out, nil
}
