package ipsec

import (
	"fmt"
	"slices"
)

// Decision is the classifier's answer for one packet.
type Decision struct {
	Matched   bool   // a policy matched (PolicyID is valid)
	Ambiguous bool   // a non-first fragment that a port-constraining policy may claim: discard
	PolicyID  uint32 // the winning policy, when Matched
	Action    Action // the action to apply: the policy's, the default's, or discard when Ambiguous
	SA        uint32 // the policy's SA for PROTECT, else NoSA
}

// Classifier is the reference SPD lookup: a sorted scan, obviously correct rather than fast. The
// card's classifier (bpf/) must give the same Decision for every packet; loader's equivalence tests
// and the workers' post-decryption check compare against it.
type Classifier struct {
	pols     [2][]Policy // per card direction, in SPD order
	defaults Defaults
}

// NewClassifier builds a classifier over policies (copied), which must be valid and have distinct IDs.
func NewClassifier(policies []Policy, d Defaults) (*Classifier, error) {
	c := &Classifier{defaults: d}
	seen := make(map[uint32]bool, len(policies))
	for i := range policies {
		p := policies[i]
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("%w: duplicate policy id %d", ErrBadPolicy, p.ID)
		}
		seen[p.ID] = true
		c.pols[p.Dir] = append(c.pols[p.Dir], p)
	}
	for d := range c.pols {
		slices.SortFunc(c.pols[d], func(a, b Policy) int { return Compare(&a, &b) })
	}
	return c, nil
}

// Lookup classifies t in direction dir (DirOut or DirIn).
func (c *Classifier) Lookup(dir Dir, t Tuple) Decision {
	if dir.OnCard() {
		for i := range c.pols[dir] {
			p := &c.pols[dir][i]
			if !p.Selector.matchesAddrProto(&t) {
				continue
			}
			if t.NonFirstFragment {
				if p.Selector.ConstrainsPorts() {
					return Decision{Ambiguous: true, Action: ActionDiscard, SA: NoSA}
				}
			} else if !p.Selector.SrcPorts.Contains(t.SrcPort) || !p.Selector.DstPorts.Contains(t.DstPort) {
				continue
			}
			d := Decision{Matched: true, PolicyID: p.ID, Action: p.Action, SA: NoSA}
			if p.Action == ActionProtect {
				d.SA = p.SA
			}
			return d
		}
	}
	return Decision{Action: c.defaults.For(dir), SA: NoSA}
}
