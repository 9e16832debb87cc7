package sadb

import (
	"cmp"
	"encoding/json"

	"github.com/xdpsec/xdpsec/ipsec"
)

// What the SPD holds besides ip xfrm's one policy per (direction, selector): the policies of an IKE
// daemon, and fwd policies.
//
// An IKE daemon (strongSwan's charon) installs the same selector several times: a trap policy and
// the policy of the CHILD_SA it brought up, overlapping CHILD_SAs, a transient discard policy while
// an SA moves. For owner ike a policy's identity is therefore its whole content: adding an identical
// one returns the existing entry, and one that differs in anything is a new entry, also with the same
// (dir, selector). Among config and cli policies (dir, selector) stays unique.
//
// Policies with the same (dir, selector) can never both match first: of each such group only the
// first in SPD order counts. That one is its group's winner: the lowest priority number; on equal
// priorities config and cli before ike, and among ike the newest (as strongSwan's kernel-netlink
// orders the users of one XFRM policy). The others are shadowed (PolicyEntry.ShadowedBy) and take
// over, in that order, when the winner goes. The card holds only winners, so its order (priority, then
// id) and the SPD's agree wherever the order matters.
//
// fwd policies are stored, listed and deleted like the others but never offered to the card: on a
// gateway the card's inbound side handles forwarded traffic and applies the in policies, which an IKE
// daemon installs with the same selector and template (charon adds in and fwd for every CHILD_SA).
// Their ids come from a range above the card's policy ids (Options.MaxPolicies), so they neither use
// the card's slots nor count against its capacity.

// identity is an ike policy's whole content, normalized: two policies with equal identities are the
// same policy.
func identity(p *Policy) string {
	b, err := json.Marshal(p)
	if err != nil {
		// A Policy always marshals; fall back to something that never collides.
		return "\x00unmarshalable"
	}
	return string(b)
}

// winsOver reports whether a comes before b within a group of policies with the same (dir,
// selector).
func winsOver(a, b *PolicyEntry) bool {
	ownerRank := func(p *PolicyEntry) int {
		if p.Owner == OwnerIKE {
			return 1
		}
		return 0
	}
	c := cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(ownerRank(a), ownerRank(b)))
	if c == 0 && a.Owner == OwnerIKE {
		c = cmp.Compare(b.Serial, a.Serial) // the newest first
	}
	if c == 0 {
		c = cmp.Compare(a.ID, b.ID)
	}
	return c < 0
}

// markShadowed sets ShadowedBy on every policy of v that another policy with the same (dir, selector)
// wins over, to that winner's id.
func markShadowed(v []PolicyEntry) {
	win := map[PolicyKey]int{}
	for i := range v {
		v[i].ShadowedBy = 0
		k := PolicyKey{Dir: v[i].Dir, Sel: v[i].Sel}
		if j, ok := win[k]; !ok || winsOver(&v[i], &v[j]) {
			win[k] = i
		}
	}
	if len(win) == len(v) {
		return
	}
	for i := range v {
		if j := win[PolicyKey{Dir: v[i].Dir, Sel: v[i].Sel}]; j != i {
			v[i].ShadowedBy = v[j].ID
		}
	}
}

// OnCard reports whether a policy may be offered to the card at all: not a fwd policy, not shadowed.
func (e *PolicyEntry) OnCard() bool { return e.Dir.OnCard() && e.ShadowedBy == 0 }

// policyIDDelay is how many other policy ids are freed before a freed one is handed out again (unless
// none is left): an IKE daemon names its policies by id, and a late delete of a policy that is already
// gone must not meet a new one (docs/ike-api.md).
const policyIDDelay = 4096

// isFwdID tells whether a policy id comes from the fwd range.
func (s *Store) isFwdID(id uint32) bool { return id > s.opts.MaxPolicies }

// allocPolicyID takes a free id for p: from the card's range, or for fwd from the range above it.
func (s *Store) allocPolicyID(p *Policy) (uint32, bool) {
	if p.Dir == ipsec.DirFwd {
		i, ok := s.fwdFree.get()
		return s.opts.MaxPolicies + i, ok
	}
	return s.pols.free.get()
}

func (s *Store) freePolicyID(id uint32) {
	if s.isFwdID(id) {
		s.fwdFree.put(id - s.opts.MaxPolicies)
		return
	}
	s.pols.free.put(id)
}

// SAsServing returns the live SAs that PROTECT policy p's template names and whose direction fits
// p's (an inbound SA serves in and fwd policies), without keys.
func (s *Store) SAsServing(p *Policy) []SAEntry {
	if p.Tmpl == nil {
		return nil
	}
	want := p.Dir
	if want == ipsec.DirFwd {
		want = ipsec.DirIn
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SAEntry
	for _, r := range s.sas.all {
		if Matches(p.Tmpl, &r.e) && (r.e.Dir == nil || *r.e.Dir == want) {
			out = append(out, r.e.view(false))
		}
	}
	return out
}

// newPolicyTable is the SPD's table: its ids are reused only after a delay (policyIDDelay).
func newPolicyTable(max uint32) table[PolicyKey, polRec] {
	t := newTable[PolicyKey, polRec]("policy", max)
	t.free.delay = policyIDDelay
	return t
}
