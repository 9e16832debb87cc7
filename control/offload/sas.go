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

// The SA steps of a pass (1, 3 and 4), reaping and renumbering. Engine goroutine only.

// setSA records a new state for (SA, iface) and queues an ack or nack event when it changed.
func (e *Engine) setSA(k saKey, sa *sadb.SAEntry, st *saOff, status Status, reason Reason, detail string) {
	changed := st.status != status || st.reason != reason
	st.status, st.reason, st.detail = status, reason, detail
	st.gen, st.serial, st.id = sa.Gen, sa.Serial, sa.ID()
	if status == StatusRefused && reason == ReasonTableFull {
		st.epoch = e.epoch
		e.full = true
	}
	e.sa[k] = st
	if !changed {
		return
	}
	ev := events.ForSA(events.OffloadAck, sa)
	ev.Iface = k.iface
	if status == StatusRefused {
		ev.Type, ev.Reason, ev.Detail = events.OffloadNack, string(reason), detail
		e.log.Info("sa offload nacked", "sa", sa.Name, "spi", fmt.Sprintf("0x%08x", sa.SPI), "iface", k.iface, "reason", reason, "detail", detail)
	}
	e.pending = append(e.pending, ev)
}

// installSAs is steps 1 and 4. With retryDeferred it only installs SAs whose identity collided before;
// it returns the SAs it had to defer.
func (e *Engine) installSAs(v *view, retryDeferred bool) []saKey {
	var deferred []saKey
	for i := range v.snap.SAs {
		if e.stopping() {
			return deferred
		}
		sa := &v.snap.SAs[i]
		for _, ifc := range e.ifaces {
			k := saKey{sa.Index, ifc}
			st := e.sa[k]
			if st != nil && st.serial != sa.Serial {
				if st.installed {
					// The index still holds another SA: one of an earlier run the card was adopted
					// with (adopt; a reaped SA cannot be, Reap waits). Never overwrite: it leaves in
					// removeSAs, and step 4 installs this one.
					if !retryDeferred {
						deferred = append(deferred, k)
					}
					continue
				}
				st = nil
			}
			if st == nil {
				st = &saOff{status: StatusPending, serial: sa.Serial}
			}
			if !e.saAllowed(sa, ifc) {
				if !st.installed {
					e.setSA(k, sa, st, StatusRefused, ReasonNotInList, e.notInListDetail())
				}
				continue // an installed one leaves in removeSAs, after the policies moved away
			}
			check := v.inCheck[sa.Index]
			var need bool
			switch {
			case st.installed:
				need = st.gen != sa.Gen || !slices.Equal(st.check, check)
			case st.status == StatusPending:
				need = true
			case st.status == StatusRefused:
				// Re-offer what could now succeed: the SA changed, room was freed, it was outside the
				// list, the failure may have been transient, or the policies it serves changed (a card
				// may refuse an inbound SA that no policy covers yet: ReasonNoPolicy).
				need = st.gen != sa.Gen || (st.reason == ReasonTableFull && st.epoch < e.epoch) ||
					st.reason == ReasonNotInList || retried(st.reason) || !slices.Equal(st.check, check)
			}
			if !need {
				continue
			}
			if other, ok := e.byID[ifc][sa.ID()]; ok && other != sa.Index {
				if !retryDeferred {
					deferred = append(deferred, k)
				}
				continue
			}
			var err error
			o := &SAOffload{Iface: ifc, Index: sa.Index, SA: sa, InCheck: check}
			if st.installed && st.id != sa.ID() {
				o.MovedFrom = st.id // the same SA (same serial), migrated
			}
			if e.capacity.SAs > 0 && sa.Index >= e.capacity.SAs {
				err = Nack(ReasonTableFull, "sa index %d is beyond the card's %d slots", sa.Index, e.capacity.SAs)
			} else {
				err = e.drv.InstallSA(o)
			}
			if err != nil {
				e.stats.SANacks++
				r, d := ReasonOf(err)
				if r == ReasonError {
					e.driverFailed()
				} else if retried(r) {
					e.retry = true
				}
				if st.installed {
					// An update was refused: the old entry stays. A transient failure is tried
					// again; a refusal is shown until the SA changes again.
					e.log.Warn("update offloaded sa", "sa", sa.Name, "iface", ifc, "err", err)
					if r != ReasonError && !retried(r) {
						st.detail = "update not applied: " + string(r) + ": " + d
					}
					continue
				}
				st.check = slices.Clone(check) // what was offered, so a change of policies re-offers it
				e.setSA(k, sa, st, StatusRefused, r, d)
				continue
			}
			st.installed = true
			st.inbound = st.inbound || check.ServesAny()
			st.check = slices.Clone(check)
			if e.byID[ifc] == nil {
				e.byID[ifc] = map[sadb.SAID]uint32{}
			}
			if o.MovedFrom != (sadb.SAID{}) && e.byID[ifc][o.MovedFrom] == sa.Index {
				delete(e.byID[ifc], o.MovedFrom)
			}
			e.byID[ifc][sa.ID()] = sa.Index
			e.stats.SAInstalls++
			e.setSA(k, sa, st, StatusOffloaded, "", e.sharedDetail(sa, ifc))
		}
	}
	return deferred
}

// removeSAs is step 3.
func (e *Engine) removeSAs(v *view) {
	var gone []saKey
	for k, st := range e.sa {
		if !st.installed {
			continue
		}
		sa, ok := v.live[k.index]
		if !ok || sa.Serial != st.serial || !e.saAllowed(sa, k.iface) {
			gone = append(gone, k)
		}
	}
	// A policy must never point at an SA that left the card. One whose update failed may still point at
	// an SA that should leave: that SA stays until the policy moves (the next pass retries).
	var pointing map[saKey]bool
	if len(gone) > 0 {
		pointing = map[saKey]bool{}
		for pk, st := range e.pol {
			if st.installed && st.cur.SA != ipsec.NoSA {
				pointing[saKey{st.cur.SA, pk.iface}] = true
			}
		}
	}
	slices.SortFunc(gone, func(a, b saKey) int { return cmp.Or(cmp.Compare(a.index, b.index), strings.Compare(a.iface, b.iface)) })
	for _, k := range gone {
		if pointing[k] {
			e.log.Warn("offloaded sa kept: a policy still points at it", "index", k.index, "iface", k.iface)
			e.retry = true
			continue
		}
		if err := e.drv.RemoveSA(k.index, k.iface); err != nil {
			e.log.Warn("remove offloaded sa", "index", k.index, "iface", k.iface, "err", err)
			e.driverFailed()
			continue
		}
		st := e.sa[k]
		st.installed = false
		st.check, st.inbound = nil, false
		if m := e.byID[k.iface]; m != nil && m[st.id] == k.index {
			delete(m, st.id)
		}
		if sa, ok := v.live[k.index]; ok && sa.Serial == st.serial {
			st.status, st.reason, st.detail = StatusRefused, ReasonNotInList, e.notInListDetail()
		} else {
			delete(e.sa, k)
		}
		e.stats.SARemovals++
		e.epoch++
	}
}

// renumber moves SAs that the card refused for lack of room on every interface, and holds nowhere, to a
// lower free index (a card indexed by SA index may have room below its capacity only). The store's
// change kicks another pass, which offers them again under their new index.
func (e *Engine) renumber(v *view) {
	if !e.full {
		return
	}
	e.full = false
	for i := range v.snap.SAs {
		sa := &v.snap.SAs[i]
		full := true
		for _, ifc := range e.ifaces {
			st := e.sa[saKey{sa.Index, ifc}]
			if !e.saAllowed(sa, ifc) {
				continue
			}
			if st == nil || st.serial != sa.Serial || st.installed || st.reason != ReasonTableFull {
				full = false
			}
		}
		if full {
			e.full = true // until it is offloaded or nothing lower is free
			e.store.Renumber(sa.Index)
		}
	}
}

// reap releases deleted SAs that no interface holds any more: the store overwrites their keys and frees
// their indices.
func (e *Engine) reap(v *view) {
	for i := range v.snap.Grave {
		g := &v.snap.Grave[i]
		held := false
		for _, ifc := range e.ifaces {
			if st := e.sa[saKey{g.Index, ifc}]; st != nil && st.serial == g.Serial {
				if st.installed {
					held = true
				} else {
					delete(e.sa, saKey{g.Index, ifc})
				}
			}
		}
		if !held {
			e.store.Reap(g.Index)
		}
	}
	// Forget states of SAs that are gone (renumbered, or reaped above) and that no interface holds.
	for k, st := range e.sa {
		if sa, ok := v.live[k.index]; (!ok || sa.Serial != st.serial) && !st.installed {
			delete(e.sa, k)
		}
	}
}
