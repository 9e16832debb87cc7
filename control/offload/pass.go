package offload

import (
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// A pass makes the card hold what one snapshot of the store says (see the package documentation for
// the order of its steps). Everything here runs in the engine goroutine.

// view is one snapshot prepared for a pass, indexed so that finding a policy's SAs costs the number
// of SAs with its template's name or reqid, not the size of the SAD.
type view struct {
	snap    sadb.Snapshot
	live    map[uint32]*sadb.SAEntry
	byName  map[string]*sadb.SAEntry
	byReqid map[uint32][]*sadb.SAEntry
	inCheck map[uint32]ipsec.CheckList // by SA index: the check list of each SA that serves inbound policies
	pols    map[uint32]*sadb.PolicyEntry
	// winner is, for each (dir, selector) on the card, the policy that holds it there (sadb's spd.go).
	winner map[sadb.PolicyKey]*sadb.PolicyEntry
}

func newView(snap sadb.Snapshot, checks *checkCache) *view {
	v := &view{snap: snap, live: make(map[uint32]*sadb.SAEntry, len(snap.SAs)),
		byName: map[string]*sadb.SAEntry{}, byReqid: map[uint32][]*sadb.SAEntry{}, inCheck: make(map[uint32]ipsec.CheckList, len(snap.SAs)),
		pols: make(map[uint32]*sadb.PolicyEntry, len(snap.Policies)), winner: map[sadb.PolicyKey]*sadb.PolicyEntry{}}
	for i := range snap.SAs {
		sa := &snap.SAs[i]
		v.live[sa.Index] = sa
		if sa.Name != "" {
			v.byName[sa.Name] = sa
		}
		if sa.Reqid != 0 {
			v.byReqid[sa.Reqid] = append(v.byReqid[sa.Reqid], sa)
		}
	}
	served := make(map[uint32][]uint32, len(snap.SAs)) // SA index → ids of the inbound PROTECT policies it serves
	var inbound []ipsec.Policy
	for i := range snap.Policies {
		p := &snap.Policies[i]
		v.pols[p.ID] = p
		if !p.OnCard() {
			// fwd and shadowed policies are not in the card: the post-decryption check is the first
			// match over the inbound policies the card holds.
			continue
		}
		v.winner[sadb.PolicyKey{Dir: p.Dir, Sel: p.Sel}] = p
		if p.Dir != ipsec.DirIn {
			continue
		}
		inbound = append(inbound, cardPolicy(p, ipsec.NoSA))
		if p.Action != ipsec.ActionProtect {
			continue
		}
		for _, sa := range v.candidates(p) {
			served[sa.Index] = append(served[sa.Index], p.ID)
		}
	}
	checks.lists(v, inbound, served)
	return v
}

// checkCache keeps the check lists of the last pass: a list depends only on the inbound SPD and
// the policies its SA serves, so a pass over the same inbound SPD reuses the lists of SAs that
// serve the same policies (most passes: a change to one SA), and builds the index only when some
// list must be made anew. Owned by the engine goroutine.
type checkCache struct {
	inbound []ipsec.Policy
	x       *ipsec.CheckIndex
	byIndex map[uint32]cachedList
}

type cachedList struct {
	served []uint32
	list   ipsec.CheckList
}

// lists fills v.inCheck for the SAs in served (SA index → ids of the policies it serves).
func (c *checkCache) lists(v *view, inbound []ipsec.Policy, served map[uint32][]uint32) {
	if !slices.Equal(c.inbound, inbound) {
		c.inbound, c.x, c.byIndex = inbound, nil, nil
	}
	next := make(map[uint32]cachedList, len(served))
	for idx, ids := range served {
		if old, ok := c.byIndex[idx]; ok && slices.Equal(old.served, ids) {
			v.inCheck[idx], next[idx] = old.list, old
			continue
		}
		if c.x == nil {
			c.x = ipsec.NewCheckIndex(inbound)
		}
		l := cachedList{served: ids, list: c.x.List(ids)}
		v.inCheck[idx], next[idx] = l.list, l
	}
	c.byIndex = next
}

func (v *view) policy(id uint32) (*sadb.PolicyEntry, bool) {
	p, ok := v.pols[id]
	return p, ok
}

// replacement is the policy that takes the card's entry cur (of the policy with id) over: the winner
// of cur's (dir, selector), if that is another policy. nil when the selector leaves the card.
func (v *view) replacement(cur ipsec.Policy, id uint32) *sadb.PolicyEntry {
	w := v.winner[sadb.PolicyKey{Dir: cur.Dir, Sel: cur.Selector}]
	if w == nil || w.ID == id {
		return nil
	}
	return w
}

// candidates returns the live SAs that can serve PROTECT policy p (its template and direction).
func (v *view) candidates(p *sadb.PolicyEntry) []*sadb.SAEntry {
	t := p.Tmpl
	if t == nil {
		return nil
	}
	var pool []*sadb.SAEntry
	switch {
	case t.SA != "":
		if sa, ok := v.byName[t.SA]; ok {
			pool = []*sadb.SAEntry{sa}
		}
	case t.Reqid != 0:
		pool = v.byReqid[t.Reqid]
	}
	var out []*sadb.SAEntry
	for _, sa := range pool {
		if dirFits(sa, p.Dir) && sadb.Matches(t, sa) {
			out = append(out, sa)
		}
	}
	return out
}

func dirFits(sa *sadb.SAEntry, d ipsec.Dir) bool { return sa.Dir == nil || *sa.Dir == d }

// cardPolicy is p as the card holds it, pointing at SA index sa (ipsec.NoSA for none).
func cardPolicy(p *sadb.PolicyEntry, sa uint32) ipsec.Policy {
	return ipsec.Policy{ID: p.ID, Dir: p.Dir, Priority: p.Priority, Selector: p.Sel, Action: p.Action, SA: sa}
}

// pass reconciles the card with the store's current snapshot, then publishes the result (show).
func (e *Engine) pass() *view {
	v := newView(e.store.Snapshot(), &e.checks)
	for range 4 {
		if !e.reconcile(v) {
			break
		}
	}
	if e.stopping() {
		return v // stopping: what was done stays, the rest is for the next start
	}
	e.reap(v)
	e.renumber(v)
	if e.retry {
		e.retry = false
		d := e.opts.RetryDelay
		if d <= 0 {
			d = time.Second
		}
		time.AfterFunc(d, e.Kick)
	}
	e.stats.Passes++
	e.show(v.snap.Gen)
	return v
}

// reconcile runs steps 1-4 once. It reports whether another round could make progress (something was
// removed while SAs or policies wait for room).
func (e *Engine) reconcile(v *view) bool {
	epoch0 := e.epoch
	deferred := e.installSAs(v, false)
	e.syncPolicies(v)
	if e.stopping() {
		// Never remove SAs after a policy sync that stopped half way: a policy still on the card
		// may point at them.
		return false
	}
	e.removeSAs(v)
	if len(deferred) > 0 {
		if e.installSAs(v, true) != nil {
			e.log.Warn("sa still collides with an installed one after removals")
		}
		e.syncPolicies(v)
	}
	if e.epoch == epoch0 {
		return false
	}
	for _, st := range e.sa {
		if st.status == StatusRefused && st.reason == ReasonTableFull && st.epoch < e.epoch {
			return true
		}
	}
	for _, st := range e.pol {
		if st.status == StatusRefused && st.reason == ReasonTableFull && st.epoch < e.epoch {
			return true
		}
	}
	return false
}

// driverFailed counts a driver call that failed for another reason than a refusal (ReasonError), and
// has the pass run again after RetryDelay. The caller logs what failed.
func (e *Engine) driverFailed() {
	e.stats.DriverErrors++
	e.retry = true
}

// --- offload lists ---

func allowed(list []string, iface string) bool {
	return len(list) == 0 || slices.Contains(list, iface)
}

// saAllowed tells whether sa may be offloaded to iface. On shared tables the wire interface decides for
// every interface (see SharedTables).
func (e *Engine) saAllowed(sa *sadb.SAEntry, iface string) bool {
	if e.wire != "" {
		return allowed(sa.Offload, e.wire)
	}
	return allowed(sa.Offload, iface)
}

// polAllowed tells whether p may be offloaded to iface. On shared tables the interface whose packets the
// policy classifies decides for every interface. fwd policies never go to the card.
func (e *Engine) polAllowed(p *sadb.PolicyEntry, iface string) bool {
	if !p.Dir.OnCard() {
		return false
	}
	if e.wire != "" {
		if p.Dir == ipsec.DirIn {
			return allowed(p.Offload, e.wire)
		}
		return allowed(p.Offload, e.protected)
	}
	return allowed(p.Offload, iface)
}

// notInListDetail explains a ReasonNotInList refusal.
func (e *Engine) notInListDetail() string {
	if e.wire != "" {
		return "the card's tables serve both interfaces: an SA is offloaded only if its list admits the wire interface " + e.wire
	}
	return ""
}

// sharedDetail notes an SA offloaded to an interface outside its own list because the card's tables are
// shared.
func (e *Engine) sharedDetail(sa *sadb.SAEntry, iface string) string {
	if e.wire != "" && !allowed(sa.Offload, iface) {
		return "held in the card's table shared with " + e.wire
	}
	return ""
}
