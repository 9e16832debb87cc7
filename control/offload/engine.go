package offload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// ErrStopped is returned by requests to an engine that is not running.
var ErrStopped = errors.New("offload engine stopped")

// Status is the offload state of one (SA, interface) or (policy, interface).
type Status string

const (
	StatusPending   Status = "pending"
	StatusOffloaded Status = "offloaded"
	StatusRefused   Status = "refused"
)

// IfaceState is the offload state on one interface.
type IfaceState struct {
	Iface  string `json:"iface"`
	Status Status `json:"status"`
	Reason Reason `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Stats counts the engine's work.
type Stats struct {
	Passes         uint64 `json:"passes"`
	SAInstalls     uint64 `json:"sa_installs"`
	SARemovals     uint64 `json:"sa_removals"`
	SANacks        uint64 `json:"sa_nacks"`
	PolicyInstalls uint64 `json:"policy_installs"`
	PolicyRemovals uint64 `json:"policy_removals"`
	PolicyNacks    uint64 `json:"policy_nacks"`
	DriverErrors   uint64 `json:"driver_errors"`
}

// Options configure an Engine.
type Options struct {
	Events *events.Bus  // acks and nacks; may be nil
	Logger *slog.Logger // default slog.Default()
	// RetryDelay is how long after a failed driver call the engine tries again (default 1 s).
	RetryDelay time.Duration
	// Protected and Wire name the card's two interfaces when its tables serve both (xdpsec's card: one
	// SA table and one SPD for the protected and the wire interface). Offload lists are then decided
	// as SharedTables describes. Unset, a driver implementing SharedTables supplies them; else each
	// interface is treated as having tables of its own.
	Protected, Wire string
}

type saKey struct {
	index uint32
	iface string
}

type saOff struct {
	serial    uint64 // which SA (indices are reused after Reap)
	gen       uint64 // the SA generation last installed or refused
	status    Status
	reason    Reason
	detail    string
	installed bool
	id        sadb.SAID
	sels      []ipsec.Selector // inbound selectors installed with it
	epoch     uint64           // removal epoch when it was refused for lack of room
}

type polKey struct {
	id    uint32
	iface string
}

type polOff struct {
	cur       ipsec.Policy // what the card holds, when installed
	tried     ipsec.Policy // the last policy attempted
	installed bool
	status    Status
	reason    Reason
	detail    string
	epoch     uint64
}

// Engine is the offload engine. Create with New, run with Start.
type Engine struct {
	store    *sadb.Store
	drv      Driver
	opts     Options
	log      *slog.Logger
	ifaces   []string
	capacity Capacity // zero when the driver does not report it
	// protected and wire are set when the driver's tables are shared (SharedTables).
	protected, wire string

	kick chan struct{}
	reqs chan func()

	runMu   sync.Mutex
	running bool
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex // guards everything below, for readers outside the engine goroutine
	sa      map[saKey]*saOff
	pol     map[polKey]*polOff
	byID    map[string]map[sadb.SAID]uint32 // iface → installed SA identity → index
	epoch   uint64                          // counts removals, to retry nacks for lack of room
	passGen uint64                          // store generation the last pass covered
	passed  chan struct{}                   // closed at the end of each pass
	stats   Stats
	retry   bool // something failed in this pass: run another one after RetryDelay
	full    bool // an SA was refused for lack of room: renumber may help
}

// New returns an engine that offloads store to drv.
func New(store *sadb.Store, drv Driver, opts Options) *Engine {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var capacity Capacity
	if cr, ok := drv.(CapacityReporter); ok {
		capacity = cr.Capacity()
	}
	e := &Engine{
		store: store, drv: drv, opts: opts, log: log.With("component", "offload"), capacity: capacity,
		ifaces: slices.Clone(drv.Interfaces()),
		kick:   make(chan struct{}, 1),
		reqs:   make(chan func()),
		sa:     map[saKey]*saOff{},
		pol:    map[polKey]*polOff{},
		byID:   map[string]map[sadb.SAID]uint32{},
		passed: make(chan struct{}),
	}
	p, w := opts.Protected, opts.Wire
	if st, ok := drv.(SharedTables); ok && p == "" && w == "" {
		p, w = st.Sides()
	}
	if p != "" && w != "" && p != w && slices.Contains(e.ifaces, p) && slices.Contains(e.ifaces, w) {
		e.protected, e.wire = p, w
	}
	return e
}

// Sides returns the protected and wire interfaces when the driver's tables are shared by both
// (SharedTables), else empty strings.
func (e *Engine) Sides() (protected, wire string) { return e.protected, e.wire }

// saAllowed tells whether sa may be offloaded to iface. On shared tables the wire interface decides for
// every interface (see SharedTables).
func (e *Engine) saAllowed(sa *sadb.SAEntry, iface string) bool {
	if e.wire != "" {
		return allowed(sa.Offload, e.wire)
	}
	return allowed(sa.Offload, iface)
}

// polAllowed tells whether p may be offloaded to iface. On shared tables the interface whose packets the
// policy classifies decides for every interface.
func (e *Engine) polAllowed(p *sadb.PolicyEntry, iface string) bool {
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

// Capacity returns the card's table sizes (zero when the driver does not report them).
func (e *Engine) Capacity() Capacity { return e.capacity }

// Interfaces returns the interfaces the engine offloads to.
func (e *Engine) Interfaces() []string { return slices.Clone(e.ifaces) }

// Start runs the engine's goroutine until ctx ends or Stop, and hooks it to the store's changes.
func (e *Engine) Start(ctx context.Context) {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if e.running {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	e.running, e.cancel, e.done = true, cancel, make(chan struct{})
	e.store.SetOnChange(e.Kick)
	go e.loop(ctx, e.done)
	e.Kick()
}

// Stop ends the goroutine and waits for it. The card keeps what it holds.
func (e *Engine) Stop() {
	e.runMu.Lock()
	if !e.running {
		e.runMu.Unlock()
		return
	}
	e.running = false
	e.cancel()
	done := e.done
	e.runMu.Unlock()
	<-done
	e.store.SetOnChange(nil)
}

// Kick asks for a pass; it never blocks, and kicks coalesce.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Engine) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
			e.pass()
		case f := <-e.reqs:
			f()
		}
	}
}

// do runs f in the engine's goroutine and waits for it.
func (e *Engine) do(ctx context.Context, f func()) error {
	e.runMu.Lock()
	running, done := e.running, e.done
	e.runMu.Unlock()
	if !running {
		return ErrStopped
	}
	fin := make(chan struct{})
	select {
	case e.reqs <- func() { f(); close(fin) }:
	case <-done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-fin:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sync waits until a pass has covered every change made to the store before the call.
func (e *Engine) Sync(ctx context.Context) error {
	target := e.store.Gen()
	for {
		e.mu.Lock()
		covered, passed := e.passGen >= target, e.passed
		e.mu.Unlock()
		if covered {
			return nil
		}
		e.Kick()
		e.runMu.Lock()
		running, done := e.running, e.done
		e.runMu.Unlock()
		if !running {
			return ErrStopped
		}
		select {
		case <-passed:
		case <-done:
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// SAStates returns the offload state of the SA at index (with that serial) on every interface.
func (e *Engine) SAStates(index uint32, serial uint64) []IfaceState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]IfaceState, 0, len(e.ifaces))
	for _, ifc := range e.ifaces {
		st := e.sa[saKey{index, ifc}]
		if st == nil || st.serial != serial {
			out = append(out, IfaceState{Iface: ifc, Status: StatusPending})
			continue
		}
		out = append(out, IfaceState{Iface: ifc, Status: st.status, Reason: st.reason, Detail: st.detail})
	}
	return out
}

// Direction returns the direction the card uses sa in: its own dir when it has one; else inbound when it
// serves an inbound PROTECT policy (the engine offered it with that policy's selectors, which is what
// makes a driver treat it as inbound), else outbound.
func (e *Engine) Direction(sa *sadb.SAEntry) ipsec.Dir {
	if sa.Dir != nil {
		return *sa.Dir
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ifc := range e.ifaces {
		if st := e.sa[saKey{sa.Index, ifc}]; st != nil && st.serial == sa.Serial && len(st.sels) > 0 {
			return ipsec.DirIn
		}
	}
	return ipsec.DirOut
}

// PolicyStates returns the offload state of the policy with id on every interface it may use.
func (e *Engine) PolicyStates(id uint32) []IfaceState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []IfaceState
	for _, ifc := range e.ifaces {
		st := e.pol[polKey{id, ifc}]
		if st == nil {
			continue
		}
		s := IfaceState{Iface: ifc, Status: st.status, Reason: st.reason, Detail: st.detail}
		if st.installed && st.cur.Action == ipsec.ActionProtect && st.cur.SA == ipsec.NoSA {
			s.Detail = "no usable SA: traffic dropped"
		}
		out = append(out, s)
	}
	return out
}

// Counted is an SA's counters tagged with the serial of the SA the card held at that index.
type Counted struct {
	Serial uint64
	SACounters
}

// Counters reads the card's per-SA counters in the engine's goroutine, so each index is tagged with the
// SA that was installed there when they were read (indices are reused).
func (e *Engine) Counters(ctx context.Context) (map[uint32]Counted, error) {
	var out map[uint32]Counted
	var err error
	if derr := e.do(ctx, func() {
		var raw map[uint32]SACounters
		raw, err = e.drv.Counters()
		if err != nil {
			return
		}
		out = make(map[uint32]Counted, len(raw))
		e.mu.Lock()
		for idx, c := range raw {
			for _, ifc := range e.ifaces {
				if st := e.sa[saKey{idx, ifc}]; st != nil && st.installed {
					out[idx] = Counted{Serial: st.serial, SACounters: c}
					break
				}
			}
		}
		e.mu.Unlock()
	}); derr != nil {
		return nil, derr
	}
	if err != nil {
		return nil, fmt.Errorf("read sa counters: %w", err)
	}
	return out, nil
}

// ErrNoDefaults is SetDefaults' answer for a driver that does not implement DefaultsSetter.
var ErrNoDefaults = errors.New("the card cannot change its default verdicts in place")

// SetDefaults changes the card's default verdicts, in the engine's goroutine (the Driver is called
// from one goroutine only).
func (e *Engine) SetDefaults(ctx context.Context, d ipsec.Defaults) error {
	ds, ok := e.drv.(DefaultsSetter)
	if !ok {
		return ErrNoDefaults
	}
	var err error
	if derr := e.do(ctx, func() { err = ds.SetDefaults(d) }); derr != nil {
		return derr
	}
	if err != nil {
		return fmt.Errorf("set default verdicts: %w", err)
	}
	return nil
}

// GlobalCounters reads the card's global counters in the engine's goroutine.
func (e *Engine) GlobalCounters(ctx context.Context) (map[string]uint64, error) {
	var out map[string]uint64
	var err error
	if derr := e.do(ctx, func() { out, err = e.drv.GlobalCounters() }); derr != nil {
		return nil, derr
	}
	if err != nil {
		return nil, fmt.Errorf("read global counters: %w", err)
	}
	return out, nil
}

// --- the pass ---

func allowed(list []string, iface string) bool {
	return len(list) == 0 || slices.Contains(list, iface)
}

// cardPolicy is p as the card holds it, pointing at SA index sa (ipsec.NoSA for none).
func cardPolicy(p *sadb.PolicyEntry, sa uint32) ipsec.Policy {
	return ipsec.Policy{ID: p.ID, Dir: p.Dir, Priority: p.Priority, Selector: p.Sel, Action: p.Action, SA: sa}
}

// view is one snapshot prepared for a pass, indexed so that finding a policy's SAs costs the number
// of SAs with its template's name or reqid, not the size of the SAD.
type view struct {
	snap    sadb.Snapshot
	live    map[uint32]*sadb.SAEntry
	byName  map[string]*sadb.SAEntry
	byReqid map[uint32][]*sadb.SAEntry
	inSel   map[uint32][]ipsec.Selector
	pols    map[uint32]*sadb.PolicyEntry
}

func (v *view) policy(id uint32) (*sadb.PolicyEntry, bool) {
	p, ok := v.pols[id]
	return p, ok
}

func newView(snap sadb.Snapshot) *view {
	v := &view{snap: snap, live: make(map[uint32]*sadb.SAEntry, len(snap.SAs)),
		byName: map[string]*sadb.SAEntry{}, byReqid: map[uint32][]*sadb.SAEntry{}, inSel: map[uint32][]ipsec.Selector{},
		pols: make(map[uint32]*sadb.PolicyEntry, len(snap.Policies))}
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
	for i := range snap.Policies {
		p := &snap.Policies[i]
		v.pols[p.ID] = p
		if p.Dir != ipsec.DirIn || p.Action != ipsec.ActionProtect {
			continue
		}
		for _, sa := range v.candidates(p) {
			v.inSel[sa.Index] = append(v.inSel[sa.Index], p.Sel)
		}
	}
	return v
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

func (e *Engine) pass() *view {
	v := newView(e.store.Snapshot())
	for range 4 {
		if !e.reconcile(v) {
			break
		}
	}
	e.reap(v)
	e.renumber(v)
	e.mu.Lock()
	if e.retry {
		e.retry = false
		d := e.opts.RetryDelay
		if d <= 0 {
			d = time.Second
		}
		time.AfterFunc(d, e.Kick)
	}
	e.stats.Passes++
	e.passGen = v.snap.Gen
	close(e.passed)
	e.passed = make(chan struct{})
	e.mu.Unlock()
	return v
}

// reconcile runs steps 1-4 once. It reports whether another round could make progress (something was
// removed while SAs or policies wait for room).
func (e *Engine) reconcile(v *view) bool {
	epoch0 := e.epoch
	deferred := e.installSAs(v, false)
	e.syncPolicies(v)
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
	e.mu.Lock()
	defer e.mu.Unlock()
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

func (e *Engine) publish(ev events.Event) {
	if e.opts.Events != nil {
		e.opts.Events.Publish(ev)
	}
}

// setSA records a new state for (SA, iface) and publishes an ack or nack when it changed.
func (e *Engine) setSA(k saKey, sa *sadb.SAEntry, st *saOff, status Status, reason Reason, detail string) {
	e.mu.Lock()
	changed := st.status != status || st.reason != reason
	st.status, st.reason, st.detail = status, reason, detail
	st.gen, st.serial, st.id = sa.Gen, sa.Serial, sa.ID()
	if status == StatusRefused && reason == ReasonTableFull {
		st.epoch = e.epoch
		e.full = true
	}
	e.sa[k] = st
	e.mu.Unlock()
	if !changed {
		return
	}
	ev := events.ForSA(events.OffloadAck, sa)
	ev.Iface = k.iface
	if status == StatusRefused {
		ev.Type, ev.Reason, ev.Detail = events.OffloadNack, string(reason), detail
		e.log.Info("sa offload nacked", "sa", sa.Name, "spi", fmt.Sprintf("0x%08x", sa.SPI), "iface", k.iface, "reason", reason, "detail", detail)
	}
	e.publish(ev)
}

// installSAs is steps 1 and 4. With retryDeferred it only installs SAs whose identity collided before;
// it returns the SAs it had to defer.
func (e *Engine) installSAs(v *view, retryDeferred bool) []saKey {
	var deferred []saKey
	for i := range v.snap.SAs {
		sa := &v.snap.SAs[i]
		for _, ifc := range e.ifaces {
			k := saKey{sa.Index, ifc}
			e.mu.Lock()
			st := e.sa[k]
			if st != nil && st.serial != sa.Serial {
				if st.installed {
					// The index still holds a reaped SA: cannot happen (Reap waits), but never overwrite.
					e.mu.Unlock()
					continue
				}
				st = nil
			}
			if st == nil {
				st = &saOff{status: StatusPending, serial: sa.Serial}
			}
			e.mu.Unlock()
			if !e.saAllowed(sa, ifc) {
				if !st.installed {
					e.setSA(k, sa, st, StatusRefused, ReasonNotInList, e.notInListDetail())
				}
				continue // an installed one leaves in removeSAs, after the policies moved away
			}
			sels := v.inSel[sa.Index]
			var need bool
			switch {
			case st.installed:
				need = st.gen != sa.Gen || !slices.Equal(st.sels, sels)
			case st.status == StatusPending:
				need = true
			case st.status == StatusRefused:
				// Re-offer what could now succeed: the SA changed, room was freed, it was outside the
				// list, the failure may have been transient, or the policies it serves changed (a card
				// may refuse an inbound SA that no policy covers yet: ReasonNoPolicy).
				need = st.gen != sa.Gen || (st.reason == ReasonTableFull && st.epoch < e.epoch) ||
					st.reason == ReasonNotInList || st.reason == ReasonError || !slices.Equal(st.sels, sels)
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
			if e.capacity.SAs > 0 && sa.Index >= e.capacity.SAs {
				err = Nack(ReasonTableFull, "sa index %d is beyond the card's %d slots", sa.Index, e.capacity.SAs)
			} else {
				err = e.drv.InstallSA(&SAOffload{Iface: ifc, Index: sa.Index, SA: sa, InSelectors: sels})
			}
			if err != nil {
				r, d := ReasonOf(err)
				e.mu.Lock()
				e.stats.SANacks++
				if r == ReasonError {
					e.stats.DriverErrors++
					e.retry = true
				}
				e.mu.Unlock()
				if st.installed {
					// An update failed: the old entry stays; keep it and try again on the next change.
					e.log.Warn("update offloaded sa", "sa", sa.Name, "iface", ifc, "err", err)
					e.mu.Lock()
					e.retry = true
					e.mu.Unlock()
					continue
				}
				e.mu.Lock()
				st.sels = slices.Clone(sels) // what was offered, so a change of policies re-offers it
				e.mu.Unlock()
				e.setSA(k, sa, st, StatusRefused, r, d)
				continue
			}
			e.mu.Lock()
			st.installed = true
			st.sels = slices.Clone(sels)
			if e.byID[ifc] == nil {
				e.byID[ifc] = map[sadb.SAID]uint32{}
			}
			e.byID[ifc][sa.ID()] = sa.Index
			e.stats.SAInstalls++
			e.mu.Unlock()
			e.setSA(k, sa, st, StatusOffloaded, "", e.sharedDetail(sa, ifc))
		}
	}
	return deferred
}

// resolve picks the SA a PROTECT policy uses on iface: among the SAs its template matches that the card
// acked there, the newest mature one, else the newest dying one, else none.
func (e *Engine) resolve(v *view, p *sadb.PolicyEntry, iface string) uint32 {
	if p.Action != ipsec.ActionProtect {
		return ipsec.NoSA
	}
	var best *sadb.SAEntry
	e.mu.Lock()
	defer e.mu.Unlock()
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

// syncPolicies is step 2: every policy on every interface it may use, pointing at its SA.
func (e *Engine) syncPolicies(v *view) {
	// Removals first: they free room, and a removed id may come back with another policy below.
	e.mu.Lock()
	var gone []polKey
	for k, st := range e.pol {
		if p, ok := v.policy(k.id); !ok || !e.polAllowed(p, k.iface) {
			if st.installed {
				gone = append(gone, k)
			} else {
				delete(e.pol, k)
			}
		}
	}
	e.mu.Unlock()
	sortPolKeys(gone)
	for _, k := range gone {
		e.removePolicy(k)
	}
	// The snapshot is in SPD order: policies are installed by id within it, deterministically.
	for i := range v.snap.Policies {
		p := &v.snap.Policies[i]
		for _, ifc := range e.ifaces {
			if e.polAllowed(p, ifc) {
				e.syncPolicy(v, p, polKey{p.ID, ifc})
			}
		}
	}
}

// syncPolicy installs or updates one policy on one interface when the card's entry differs.
func (e *Engine) syncPolicy(v *view, p *sadb.PolicyEntry, k polKey) {
	w := cardPolicy(p, e.resolve(v, p, k.iface))
	e.mu.Lock()
	st := e.pol[k]
	if st == nil {
		st = &polOff{status: StatusPending}
		e.pol[k] = st
	}
	skip := (st.installed && st.cur == w) ||
		(st.tried == w && st.status == StatusRefused && !(st.reason == ReasonTableFull && st.epoch < e.epoch))
	e.mu.Unlock()
	if skip {
		return
	}
	err := e.drv.InstallPolicy(&PolicyOffload{Iface: k.iface, Policy: w})
	e.mu.Lock()
	st.tried = w
	if err != nil {
		r, d := ReasonOf(err)
		e.stats.PolicyNacks++
		if r == ReasonError {
			e.stats.DriverErrors++
		}
		was := st.status
		e.log.Warn("policy offload refused", "policy_id", k.id, "iface", k.iface, "err", err)
		if r == ReasonError {
			e.retry = true
		}
		if st.installed {
			// The card keeps the old entry (cur): removing a PROTECT policy could let its traffic fall
			// through to a BYPASS below it. removeSAs keeps any SA it points at.
			e.mu.Unlock()
			return
		}
		st.status, st.reason, st.detail, st.epoch = StatusRefused, r, d, e.epoch
		e.mu.Unlock()
		if was != StatusRefused {
			ev := events.ForPolicy(events.OffloadNack, p)
			ev.Iface, ev.Reason, ev.Detail = k.iface, string(r), d
			e.publish(ev)
		}
		return
	}
	st.installed, st.cur = true, w
	st.status, st.reason, st.detail = StatusOffloaded, "", ""
	e.stats.PolicyInstalls++
	e.mu.Unlock()
}

func (e *Engine) removePolicy(k polKey) {
	if err := e.drv.RemovePolicy(k.id, k.iface); err != nil {
		e.log.Warn("remove offloaded policy", "policy_id", k.id, "iface", k.iface, "err", err)
		e.mu.Lock()
		e.stats.DriverErrors++
		e.retry = true
		e.mu.Unlock()
		return
	}
	e.mu.Lock()
	if st := e.pol[k]; st != nil {
		st.installed = false
		if st.status == StatusOffloaded {
			delete(e.pol, k)
		}
	}
	e.stats.PolicyRemovals++
	e.epoch++
	e.mu.Unlock()
}

// removeSAs is step 3.
func (e *Engine) removeSAs(v *view) {
	e.mu.Lock()
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
	e.mu.Unlock()
	slices.SortFunc(gone, func(a, b saKey) int { return cmp.Or(cmp.Compare(a.index, b.index), strings.Compare(a.iface, b.iface)) })
	for _, k := range gone {
		if pointing[k] {
			e.log.Warn("offloaded sa kept: a policy still points at it", "index", k.index, "iface", k.iface)
			e.mu.Lock()
			e.retry = true
			e.mu.Unlock()
			continue
		}
		if err := e.drv.RemoveSA(k.index, k.iface); err != nil {
			e.log.Warn("remove offloaded sa", "index", k.index, "iface", k.iface, "err", err)
			e.mu.Lock()
			e.stats.DriverErrors++
			e.retry = true
			e.mu.Unlock()
			continue
		}
		e.mu.Lock()
		st := e.sa[k]
		st.installed = false
		st.sels = nil
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
		e.mu.Unlock()
	}
}

// renumber moves SAs that the card refused for lack of room on every interface, and holds nowhere, to a
// lower free index (a card indexed by SA index may have room below its capacity only). The store's
// change kicks another pass, which offers them again under their new index.
func (e *Engine) renumber(v *view) {
	e.mu.Lock()
	full := e.full
	e.full = false
	e.mu.Unlock()
	if !full {
		return
	}
	for i := range v.snap.SAs {
		sa := &v.snap.SAs[i]
		full := true
		e.mu.Lock()
		for _, ifc := range e.ifaces {
			st := e.sa[saKey{sa.Index, ifc}]
			if !e.saAllowed(sa, ifc) {
				continue
			}
			if st == nil || st.serial != sa.Serial || st.installed || st.reason != ReasonTableFull {
				full = false
			}
		}
		e.mu.Unlock()
		if full {
			e.mu.Lock()
			e.full = true // until it is offloaded or nothing lower is free
			e.mu.Unlock()
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
		e.mu.Lock()
		for _, ifc := range e.ifaces {
			if st := e.sa[saKey{g.Index, ifc}]; st != nil && st.serial == g.Serial {
				if st.installed {
					held = true
				} else {
					delete(e.sa, saKey{g.Index, ifc})
				}
			}
		}
		e.mu.Unlock()
		if !held {
			e.store.Reap(g.Index)
		}
	}
	// Forget states of SAs that are gone (renumbered, or reaped above) and that no interface holds.
	e.mu.Lock()
	for k, st := range e.sa {
		if sa, ok := v.live[k.index]; (!ok || sa.Serial != st.serial) && !st.installed {
			delete(e.sa, k)
		}
	}
	e.mu.Unlock()
}

func sortPolKeys(v []polKey) {
	slices.SortFunc(v, func(a, b polKey) int { return cmp.Or(cmp.Compare(a.id, b.id), strings.Compare(a.iface, b.iface)) })
}
