package loader

import (
	"fmt"
	"slices"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// PutPolicies installs or replaces policies (by ID) in one SPD change: the card switches from the old
// SPD to the new one atomically, and every flow is classified again.
//
// Order of writes: the policy table entries first, then the tuple space, so a rule never names a policy
// the table lacks. Cost: batch writes of the buckets that changed in each direction touched, O(policies
// changed) in the usual case.
func (c *Card) PutPolicies(ps ...ipsec.Policy) error {
	return c.changeSPD(ps, nil)
}

// DeletePolicies removes policies by ID (unknown IDs are ignored): the tuple space drops them first,
// then their table entries are cleared.
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
				c.tss[d][f].apply(o)
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
					c.tss[d][f].rebuild(c.pols)
				}
			}
		}
	}
	return err
}

// writeSPDChange writes an applied change to the card: table entries of put policies, the tuple spaces
// of the directions touched, then the cleared table entries of removed ones.
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
			if err := c.writeTSS(ipsec.Dir(d)); err != nil {
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

// listOps are the policies leaving and entering one (direction, family) in one SPD change.
type listOps struct {
	remove, insert []ipsec.Policy
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
		Priority: p.Priority,
		Proto:    uint8(s.Proto),
	}
	r.Src, r.SrcMask = prefixWords(s.Src)
	r.Dst, r.DstMask = prefixWords(s.Dst)
	if s.ConstrainsPorts() {
		r.Flags = uint8(bpf.CardXdpsecRuleFlagsXDPSEC_RULE_F_PORTS)
	}
	return r
}
