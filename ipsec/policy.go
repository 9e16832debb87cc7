package ipsec

import (
	"fmt"
)

// NoSA is the SA index of a policy that has none: every non-PROTECT policy, and a PROTECT policy whose
// SA is not installed (the card drops its traffic, counts it and raises an ACQUIRE). It is the card's
// XDPSEC_NONE_U32.
const NoSA = ^uint32(0)

// Policy is one SPD entry as the card holds it: what the control plane offloads and the loader writes.
type Policy struct {
	// ID is the policy's slot in the card's policy table, allocated by the control plane below the
	// card's policy capacity. It is also the tie-break between equal priorities: the lower ID wins.
	ID       uint32
	Dir      Dir    // DirOut or DirIn
	Priority uint32 // the lower number wins, as in ip xfrm
	Selector Selector
	Action   Action
	// SA is the index of the SA in the card's SA table: for an outbound PROTECT policy the SA that
	// protects its traffic, for an inbound one the SA its traffic must arrive through. NoSA otherwise.
	SA uint32
}

// Validate checks that p is a policy the card can hold.
func (p *Policy) Validate() error {
	if err := p.Selector.Validate(); err != nil {
		return fmt.Errorf("policy %d: %w", p.ID, err)
	}
	if !p.Dir.OnCard() {
		return fmt.Errorf("%w %d: direction %s (the card has out and in)", ErrBadPolicy, p.ID, p.Dir)
	}
	if p.Action > ActionDiscard {
		return fmt.Errorf("%w %d: %s", ErrBadPolicy, p.ID, p.Action)
	}
	return nil
}

// String prints the policy for messages: "{id 3 dir out prio 100 src … dst … protect sa 7}".
func (p Policy) String() string {
	sa := "none"
	if p.SA != NoSA {
		sa = fmt.Sprint(p.SA)
	}
	return fmt.Sprintf("{id %d dir %s prio %d %s %s sa %s}", p.ID, p.Dir, p.Priority, p.Selector, p.Action, sa)
}

// Less is the SPD order: lower priority number first, then lower ID. The card's rule tables are sorted
// by it, and the first matching policy in this order is the one that applies.
func Less(a, b *Policy) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return a.ID < b.ID
}

// Compare is Less as a three-way comparison for slices.SortFunc.
func Compare(a, b *Policy) int {
	switch {
	case Less(a, b):
		return -1
	case Less(b, a):
		return 1
	}
	return 0
}

// Defaults are the actions for packets that match no policy, per direction (the config's
// default_verdict). Only bypass and discard are meaningful: there is no SA to protect with.
type Defaults struct {
	Out, In Action
}

// Validate checks that both defaults are bypass or discard.
func (d Defaults) Validate() error {
	for _, a := range []Action{d.Out, d.In} {
		if a != ActionBypass && a != ActionDiscard {
			return fmt.Errorf("default action %s: want bypass or discard", a)
		}
	}
	return nil
}

// For returns the default action of direction dir.
func (d Defaults) For(dir Dir) Action {
	if dir == DirIn {
		return d.In
	}
	return d.Out
}
