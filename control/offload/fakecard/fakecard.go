// Package fakecard is an in-memory card for tests of the control plane: it implements offload.Driver,
// enforces the card's capacity and algorithm limits, and records every violation of the ordering the
// engine promises (a policy pointing at an SA the card lacks, an SA removed while a policy points at it,
// two SAs with one (SPI, dst) on an interface), so tests can assert there were none.
package fakecard

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// SA is an SA as the fake card holds it.
type SA struct {
	offload.CardSA
	Key      []byte          // the card's own copy, wiped when the SA leaves its last interface
	Check    ipsec.CheckList // the inbound post-decryption check it was last offered
	Installs int             // how many times it was (re)installed in place
	Moves    int             // how many times it moved to another destination in place
	Counters offload.SACounters
}

// Card is the fake card.
type Card struct {
	mu     sync.Mutex
	ifaces []string
	// SACapacity and PolicyCapacity bound the tables per interface (0 = unlimited).
	SACapacity, PolicyCapacity int
	// IndexLimit, when set, refuses SA indices at or above it, like a card whose SA table is an array.
	IndexLimit uint32
	// Unsupported names algorithms the card nacks.
	Unsupported map[string]bool
	// Fail, if set, is asked before each call ("install-sa", "remove-sa", "install-policy",
	// "remove-policy") and makes it fail with the error it returns.
	Fail func(op string, iface string, id uint32) error
	// OnRemoveSA, if set, runs inside RemoveSA before the SA leaves (tests check the order of events).
	OnRemoveSA func(index uint32, iface string)
	// AfterRemovePolicy, if set, runs inside RemovePolicy after the policy left (with the card's lock
	// held: use HasSelectorLocked).
	AfterRemovePolicy func(id uint32, iface string)
	// RequireCheck makes the card nack a new inbound SA (Dir in) that serves no inbound policy (its
	// check list accepts nothing), as the real card does: its traffic could only be dropped.
	RequireCheck bool
	// Protected and Wire, when both set, make the card report offload.SharedTables as the real card
	// does (one SA table and one SPD for both interfaces). The fake still keeps a table per interface,
	// so tests can see whether the engine treated both alike.
	Protected, Wire string

	sas        map[string]map[uint32]*SA
	byID       map[string]map[offload.CardSA]uint32 // (spi, dst) with Index 0 → index, per interface
	pols       map[string]map[uint32]ipsec.Policy
	counters   map[uint32]*offload.SACounters // per index, shared by interfaces like the real per-CPU maps
	wiped      []uint32
	violations []string
	global     map[string]uint64
	defaults   ipsec.Defaults
}

// New returns an empty card with the given interfaces.
func New(ifaces ...string) *Card {
	c := &Card{ifaces: ifaces, sas: map[string]map[uint32]*SA{}, pols: map[string]map[uint32]ipsec.Policy{},
		counters: map[uint32]*offload.SACounters{}, global: map[string]uint64{},
		byID: map[string]map[offload.CardSA]uint32{}}
	for _, i := range ifaces {
		c.sas[i] = map[uint32]*SA{}
		c.byID[i] = map[offload.CardSA]uint32{}
		c.pols[i] = map[uint32]ipsec.Policy{}
	}
	return c
}

func (c *Card) violate(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// Violations returns every ordering violation seen.
func (c *Card) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// Wiped returns the indices whose keys the card wiped, in order.
func (c *Card) Wiped() []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.wiped)
}

// Interfaces implements offload.Driver.
func (c *Card) Interfaces() []string { return slices.Clone(c.ifaces) }

func (c *Card) fail(op, iface string, id uint32) error {
	if c.Fail == nil {
		return nil
	}
	return c.Fail(op, iface, id)
}

func keyOf(e *sadb.SAEntry) []byte {
	for _, a := range []*sadb.Algorithm{e.AEAD, e.Enc, e.Auth} {
		if a != nil && len(a.Key) > 0 {
			return slices.Clone([]byte(a.Key))
		}
	}
	return nil
}

// InstallSA implements offload.Driver.
func (c *Card) InstallSA(o *offload.SAOffload) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.sas[o.Iface]
	if !ok {
		return fmt.Errorf("install sa: no interface %q", o.Iface)
	}
	if err := c.fail("install-sa", o.Iface, o.Index); err != nil {
		return err
	}
	for _, a := range []*sadb.Algorithm{o.SA.AEAD, o.SA.Enc, o.SA.Auth} {
		if a != nil && c.Unsupported[a.Name] {
			return offload.Nack(offload.ReasonUnsupported, "algorithm %s", a.Name)
		}
	}
	if old, ok := t[o.Index]; ok {
		moved := o.MovedFrom != (sadb.SAID{}) && o.MovedFrom.SPI == old.SPI && o.MovedFrom.Dst == old.Dst &&
			o.SA.SPI == old.SPI
		if (old.SPI != o.SA.SPI || old.Dst != o.SA.Dst) && !moved {
			c.violate("install sa index %d on %s: overwrites spi 0x%x with 0x%x", o.Index, o.Iface, old.SPI, o.SA.SPI)
		}
		if moved && old.Dst != o.SA.Dst {
			nid := offload.CardSA{SPI: o.SA.SPI, Dst: o.SA.Dst}
			if idx, ok := c.byID[o.Iface][nid]; ok {
				c.violate("move sa index %d on %s: spi 0x%x dst %s already held by index %d", o.Index, o.Iface, o.SA.SPI, o.SA.Dst, idx)
			}
			c.byID[o.Iface][nid] = o.Index
			delete(c.byID[o.Iface], offload.CardSA{SPI: old.SPI, Dst: old.Dst})
			old.Dst = o.SA.Dst
			old.Moves++
		}
		old.Check = slices.Clone(o.InCheck)
		old.Installs++
		return nil
	}
	if c.IndexLimit > 0 && o.Index >= c.IndexLimit {
		return offload.Nack(offload.ReasonTableFull, "sa index %d out of range", o.Index)
	}
	if c.RequireCheck && o.SA.Dir != nil && *o.SA.Dir == ipsec.DirIn && !o.InCheck.ServesAny() {
		return offload.Nack(offload.ReasonNoPolicy, "inbound sa %s", o.SA.ID())
	}
	if c.SACapacity > 0 && c.heldSAs(t, o.Index) >= c.SACapacity {
		return offload.Nack(offload.ReasonTableFull, "%d SAs", c.SACapacity)
	}
	id := offload.CardSA{SPI: o.SA.SPI, Dst: o.SA.Dst}
	if idx, ok := c.byID[o.Iface][id]; ok {
		c.violate("install sa index %d on %s: spi 0x%x dst %s already held by index %d", o.Index, o.Iface, o.SA.SPI, o.SA.Dst, idx)
	}
	c.byID[o.Iface][id] = o.Index
	fresh := true
	for _, ifc := range c.ifaces {
		if _, ok := c.sas[ifc][o.Index]; ok {
			fresh = false
		}
	}
	if fresh {
		c.counters[o.Index] = &offload.SACounters{}
	}
	t[o.Index] = &SA{CardSA: offload.CardSA{Index: o.Index, SPI: o.SA.SPI, Dst: o.SA.Dst}, Key: keyOf(o.SA),
		Check: slices.Clone(o.InCheck), Installs: 1}
	return nil
}

// heldSAs counts the SAs that bound a new install at index: per interface, or over all interfaces
// when the tables are shared (an index held for another interface then costs nothing).
func (c *Card) heldSAs(t map[uint32]*SA, index uint32) int {
	if c.Wire == "" {
		return len(t)
	}
	seen := map[uint32]bool{}
	for _, ifc := range c.ifaces {
		for idx := range c.sas[ifc] {
			seen[idx] = true
		}
	}
	if seen[index] {
		return 0
	}
	return len(seen)
}

// RemoveSA implements offload.Driver.
func (c *Card) RemoveSA(index uint32, iface string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fail("remove-sa", iface, index); err != nil {
		return err
	}
	sa, ok := c.sas[iface][index]
	if !ok {
		return fmt.Errorf("remove sa index %d on %s: not in the card", index, iface)
	}
	for id, p := range c.pols[iface] {
		if p.SA == index {
			c.violate("remove sa index %d on %s: policy %d still points at it", index, iface, id)
		}
	}
	if c.OnRemoveSA != nil {
		c.OnRemoveSA(index, iface)
	}
	delete(c.sas[iface], index)
	if id := (offload.CardSA{SPI: sa.SPI, Dst: sa.Dst}); c.byID[iface][id] == index {
		delete(c.byID[iface], id)
	}
	last := true
	for _, ifc := range c.ifaces {
		if _, ok := c.sas[ifc][index]; ok {
			last = false
		}
	}
	if last {
		clear(sa.Key)
		c.wiped = append(c.wiped, index)
		delete(c.counters, index)
	}
	return nil
}

// InstallPolicy implements offload.Driver.
func (c *Card) InstallPolicy(p *offload.PolicyOffload) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.pols[p.Iface]
	if !ok {
		return fmt.Errorf("install policy: no interface %q", p.Iface)
	}
	if err := c.fail("install-policy", p.Iface, p.Policy.ID); err != nil {
		return err
	}
	if err := p.Policy.Validate(); err != nil {
		return fmt.Errorf("install policy: %w", err)
	}
	if p.Policy.SA != ipsec.NoSA {
		if _, ok := c.sas[p.Iface][p.Policy.SA]; !ok {
			c.violate("install policy %d on %s: points at sa index %d, not in the card", p.Policy.ID, p.Iface, p.Policy.SA)
		}
	}
	if _, ok := t[p.Policy.ID]; !ok && c.PolicyCapacity > 0 && len(t) >= c.PolicyCapacity {
		return offload.Nack(offload.ReasonTableFull, "%d policies", c.PolicyCapacity)
	}
	t[p.Policy.ID] = p.Policy
	return nil
}

// RemovePolicy implements offload.Driver.
func (c *Card) RemovePolicy(id uint32, iface string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fail("remove-policy", iface, id); err != nil {
		return err
	}
	if _, ok := c.pols[iface][id]; !ok {
		return fmt.Errorf("remove policy %d on %s: not in the card", id, iface)
	}
	delete(c.pols[iface], id)
	if c.AfterRemovePolicy != nil {
		c.AfterRemovePolicy(id, iface)
	}
	return nil
}

// HasSelectorLocked reports whether a policy with dir and sel is on iface; for AfterRemovePolicy.
func (c *Card) HasSelectorLocked(iface string, dir ipsec.Dir, sel ipsec.Selector) bool {
	for _, p := range c.pols[iface] {
		if p.Dir == dir && p.Selector == sel {
			return true
		}
	}
	return false
}

// Traffic adds packets and bytes to the SA at index, as the card and workers would count them.
func (c *Card) Traffic(index uint32, packets, bytes uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctr, ok := c.counters[index]
	if !ok {
		return
	}
	ctr.Packets += packets
	ctr.Bytes += bytes
	ctr.Seq += packets
	if ctr.FirstUse.IsZero() && packets > 0 {
		ctr.FirstUse = at
	}
}

// SetCounters replaces the counters of the SA at index.
func (c *Card) SetCounters(index uint32, ctr offload.SACounters) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.counters[index]; ok {
		c.counters[index] = &ctr
	}
}

// AddGlobal adds to a global counter.
func (c *Card) AddGlobal(name string, n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.global[name] += n
}

// Counters implements offload.Driver.
func (c *Card) Counters() (map[uint32]offload.SACounters, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint32]offload.SACounters, len(c.counters))
	for idx, ctr := range c.counters {
		out[idx] = *ctr
	}
	return out, nil
}

// GlobalCounters implements offload.Driver.
func (c *Card) GlobalCounters() (map[string]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.global))
	for k, v := range c.global {
		out[k] = v
	}
	return out, nil
}

// Dump implements offload.Driver.
func (c *Card) Dump() (offload.CardState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := offload.CardState{SAs: map[string]map[uint32]offload.CardSA{}, Policies: map[string]map[uint32]ipsec.Policy{}}
	for _, ifc := range c.ifaces {
		st.SAs[ifc] = map[uint32]offload.CardSA{}
		for idx, sa := range c.sas[ifc] {
			st.SAs[ifc][idx] = sa.CardSA
		}
		st.Policies[ifc] = map[uint32]ipsec.Policy{}
		for id, p := range c.pols[ifc] {
			st.Policies[ifc][id] = p
		}
	}
	return st, nil
}

// SA returns a copy of what the card holds at index on iface.
func (c *Card) SA(iface string, index uint32) (SA, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sa, ok := c.sas[iface][index]
	if !ok {
		return SA{}, false
	}
	cp := *sa
	cp.Key = slices.Clone(sa.Key)
	return cp, true
}

// Policy returns what the card holds for policy id on iface.
func (c *Card) Policy(iface string, id uint32) (ipsec.Policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pols[iface][id]
	return p, ok
}

var (
	_ offload.Driver         = (*Card)(nil)
	_ offload.SharedTables   = (*Card)(nil)
	_ offload.DefaultsSetter = (*Card)(nil)
)

// Sides implements offload.SharedTables; empty names mean per-interface tables.
func (c *Card) Sides() (protected, wire string) { return c.Protected, c.Wire }

// SetDefaults implements offload.DefaultsSetter.
func (c *Card) SetDefaults(d ipsec.Defaults) error {
	if err := d.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.defaults = d
	return nil
}

// Defaults returns the default verdicts the card applies.
func (c *Card) Defaults() ipsec.Defaults {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.defaults
}

// Capacity implements offload.CapacityReporter when IndexLimit is set (as the real card, whose SA table
// is an array).
func (c *Card) Capacity() offload.Capacity {
	return offload.Capacity{SAs: c.IndexLimit, Policies: uint32(c.PolicyCapacity)}
}
