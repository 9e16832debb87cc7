package offload

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// The policy step of a pass (2): every policy on every interface it may use, pointing at its SA.
// Engine goroutine only.

// resolve picks the SA a PROTECT policy uses on iface: among the SAs its template matches that the card
// acked there, the newest mature one, else the newest dying one, else none.
func (e *Engine) resolve(v *view, p *sadb.PolicyEntry, iface string) uint32 {
	if p.Action != ipsec.ActionProtect {
		return ipsec.NoSA
	}
	var best *sadb.SAEntry
	for _, sa := range v.candidates(p) {
		st := e.sa[saKey{sa.Index, iface}]
		if st == nil || !st.installed || st.serial != sa.Serial || !e.saAllowed(sa, iface) {
			continue
		}
		if best == nil || cmp.Or(cmp.Compare(best.State, sa.State), cmp.Compare(sa.Serial, best.Serial)) > 0 {
			best = sa
		}
	}
	if best == nil {
		return ipsec.NoSA
	}
	return best.Index
}

// syncPolicies is step 2.
//
// Of the policies with the same (dir, selector) only the group's winner is on the card (the others
// are shadowed, sadb's spd.go), so when the winner changes, or the winner is deleted and another
// takes over, the card changes entry make-before-break: the new winner is installed before the old
// entry leaves, and the old one stays while the new one cannot be installed. No packet matching the
// selector ever falls through to a policy below it.
func (e *Engine) syncPolicies(v *view) {
	// Removals first: they free room, and a removed id may come back with another policy below.
	// Those a winner replaces wait until it is installed.
	var gone, after []polKey
	for k, st := range e.pol {
		p, ok := v.policy(k.id)
		if ok && e.polAllowed(p, k.iface) && p.OnCard() {
			continue
		}
		switch {
		case !st.installed:
			if !ok || !e.polAllowed(p, k.iface) {
				delete(e.pol, k)
			}
		case v.replacement(st.cur, k.id) != nil:
			after = append(after, k)
		default:
			gone = append(gone, k)
		}
	}
	byKey := func(a, b polKey) int { return cmp.Or(cmp.Compare(a.id, b.id), strings.Compare(a.iface, b.iface)) }
	slices.SortFunc(gone, byKey)
	for _, k := range gone {
		if e.stopping() {
			return
		}
		e.removePolicy(k)
	}
	// The snapshot is in SPD order: policies are installed by id within it, deterministically.
	for i := range v.snap.Policies {
		if e.stopping() {
			return
		}
		p := &v.snap.Policies[i]
		for _, ifc := range e.ifaces {
			if !e.polAllowed(p, ifc) {
				continue
			}
			if p.ShadowedBy != 0 {
				e.shadowed(p, polKey{p.ID, ifc})
				continue
			}
			e.syncPolicy(v, p, polKey{p.ID, ifc})
		}
	}
	slices.SortFunc(after, byKey)
	for _, k := range after {
		w := v.replacement(e.pol[k].cur, k.id)
		if ws := e.pol[polKey{w.ID, k.iface}]; ws == nil || !ws.installed {
			e.log.Warn("policy kept in the card until the one replacing it is installed", "policy_id", k.id,
				"replacement", w.ID, "iface", k.iface)
			e.retry = true
			continue
		}
		e.removePolicy(k)
		if p, ok := v.policy(k.id); ok && p.ShadowedBy != 0 {
			e.shadowed(p, k)
		}
	}
}

// shadowed records that p is not on the card on k.iface because another policy with its (dir,
// selector) applies first. An entry still installed stays until syncPolicies removes it after its
// replacement is in.
func (e *Engine) shadowed(p *sadb.PolicyEntry, k polKey) {
	st := e.pol[k]
	if st == nil {
		st = &polOff{}
		e.pol[k] = st
	}
	if st.installed {
		return
	}
	st.status, st.reason = StatusShadowed, ""
	st.detail = fmt.Sprintf("policy %d has the same dir and selector and applies first", p.ShadowedBy)
	st.tried = ipsec.Policy{}
}

// syncPolicy installs or updates one policy on one interface when the card's entry differs.
func (e *Engine) syncPolicy(v *view, p *sadb.PolicyEntry, k polKey) {
	w := cardPolicy(p, e.resolve(v, p, k.iface))
	st := e.pol[k]
	if st == nil {
		st = &polOff{status: StatusPending}
		e.pol[k] = st
	}
	// A refusal is final for what was offered, except for room freed since and driver failures
	// (retried after RetryDelay, as for SAs).
	if (st.installed && st.cur == w) || (st.tried == w && st.status == StatusRefused &&
		!(st.reason == ReasonTableFull && st.epoch < e.epoch) && st.reason != ReasonError) {
		return
	}
	err := e.drv.InstallPolicy(&PolicyOffload{Iface: k.iface, Policy: w})
	st.tried = w
	if err == nil {
		st.installed, st.cur = true, w
		st.status, st.reason, st.detail = StatusOffloaded, "", ""
		e.stats.PolicyInstalls++
		return
	}
	e.stats.PolicyNacks++
	r, d := ReasonOf(err)
	if r == ReasonError {
		e.driverFailed()
	}
	e.log.Warn("policy offload refused", "policy_id", k.id, "iface", k.iface, "err", err)
	if st.installed {
		// The card keeps the old entry (cur): removing a PROTECT policy could let its traffic fall
		// through to a BYPASS below it. removeSAs keeps any SA it points at.
		return
	}
	was := st.status
	st.status, st.reason, st.detail, st.epoch = StatusRefused, r, d, e.epoch
	if was != StatusRefused {
		ev := events.ForPolicy(events.OffloadNack, p)
		ev.Iface, ev.Reason, ev.Detail = k.iface, string(r), d
		e.pending = append(e.pending, ev)
	}
}

func (e *Engine) removePolicy(k polKey) {
	if err := e.drv.RemovePolicy(k.id, k.iface); err != nil {
		e.log.Warn("remove offloaded policy", "policy_id", k.id, "iface", k.iface, "err", err)
		e.driverFailed()
		return
	}
	if st := e.pol[k]; st != nil {
		st.installed = false
		if st.status == StatusOffloaded {
			delete(e.pol, k)
		}
	}
	e.stats.PolicyRemovals++
	e.epoch++
}
