package offload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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
	// StatusShadowed: a policy with the same (dir, selector) applies first, so this one is not in the
	// card; it takes over when that one goes.
	StatusShadowed Status = "shadowed"
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

// Engine is the offload engine. Create with New, run with Start.
//
// One goroutine, the engine's (Start), owns all of its working state — the fields under "owned by
// the engine goroutine" — and is the only caller of the Driver. No lock guards that state. Other
// goroutines reach the engine in two ways only:
//   - requests: a function run in the engine goroutine between passes (do). Counters,
//     GlobalCounters, SetDefaults and Check are requests, because they call the Driver or read the
//     working state;
//   - the published state: an immutable copy of the offload states and the counters, replaced at
//     the end of every pass (shown). SAStates, PolicyStates, Direction, Stats and Sync read it without
//     waiting for the engine.
//
// A pass makes what it did visible at its end, in this order: the published state, then its acks
// and nacks as events, then the progress Sync waits for. So whoever receives an event already sees
// the state it announces, and Sync returns after the events of the passes it waited for.
type Engine struct {
	// Set by New; read-only afterwards.
	store    *sadb.Store
	drv      Driver
	opts     Options
	log      *slog.Logger
	ifaces   []string
	capacity Capacity // zero when the driver does not report it
	// protected and wire are set when the driver's tables are shared (SharedTables).
	protected, wire string
	kick            chan struct{} // a pass is wanted; kicks coalesce
	reqs            chan func()   // requests, run by the engine goroutine

	// The engine goroutine's lifecycle: Start, Stop and the requests' view of whether it runs.
	runMu   sync.Mutex
	running bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when the goroutine has returned
	// halted is set when the engine's context ends: a pass in progress stops between two driver
	// calls instead of finishing (a first pass offering 65,536 SAs can take minutes, and a stop
	// must not wait for it). The card keeps what it holds, as after any stop.
	// One flag per run: a run's flag is set by its own context's end, which may come after the next
	// Start (context.AfterFunc runs late), so it must never be the next run's flag. Written by Start
	// before the goroutine that reads it starts.
	halted *atomic.Bool

	// Published by the engine goroutine for everyone; replaced, never changed.
	shown    atomic.Pointer[shown]
	progress atomic.Pointer[progress]

	// Owned by the engine goroutine.
	sa      map[saKey]*saOff
	pol     map[polKey]*polOff
	byID    map[string]map[sadb.SAID]uint32 // iface → installed SA identity → index
	epoch   uint64                          // counts removals, to retry nacks for lack of room
	stats   Stats
	retry   bool           // a driver call failed in this pass: run another one after RetryDelay
	full    bool           // an SA was refused for lack of room: renumbering may help
	pending []events.Event // this pass's acks and nacks, published at its end
	checks  checkCache     // the inbound SAs' post-decryption check lists of the last pass
}

type saKey struct {
	index uint32
	iface string
}

// saOff is what the engine knows of one (SA, interface).
type saOff struct {
	serial    uint64 // which SA (indices are reused after Reap)
	gen       uint64 // the SA generation last installed or refused
	status    Status
	reason    Reason
	detail    string
	installed bool
	id        sadb.SAID
	check     ipsec.CheckList // the post-decryption check installed (or last offered) with it
	// inbound: installed as an inbound SA (offered with a list that accepted something). It stays
	// so while installed, also once its list empties (the driver keeps it inbound).
	inbound bool
	epoch   uint64 // removal epoch when it was refused for lack of room
}

type polKey struct {
	id    uint32
	iface string
}

// polOff is what the engine knows of one (policy, interface).
type polOff struct {
	cur       ipsec.Policy // what the card holds, when installed
	tried     ipsec.Policy // the last policy attempted
	installed bool
	status    Status
	reason    Reason
	detail    string
	epoch     uint64
}

// shown is the engine's state as other goroutines see it, as of the end of the last pass.
type shown struct {
	stats Stats
	sa    map[saKey]shownSA
	pol   map[polKey]IfaceState
}

type shownSA struct {
	serial  uint64
	state   IfaceState
	inbound bool // offered with inbound selectors
}

// progress is what Sync waits for: the store generation the last finished pass covered, and a channel
// closed when the next pass has finished.
type progress struct {
	gen  uint64
	next chan struct{}
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
	}
	p, w := opts.Protected, opts.Wire
	if st, ok := drv.(SharedTables); ok && p == "" && w == "" {
		p, w = st.Sides()
	}
	if p != "" && w != "" && p != w && slices.Contains(e.ifaces, p) && slices.Contains(e.ifaces, w) {
		e.protected, e.wire = p, w
	}
	e.shown.Store(&shown{})
	e.progress.Store(&progress{next: make(chan struct{})})
	return e
}

// Sides returns the protected and wire interfaces when the driver's tables are shared by both
// (SharedTables), else empty strings.
func (e *Engine) Sides() (protected, wire string) { return e.protected, e.wire }

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
	halted := new(atomic.Bool)
	e.halted = halted
	context.AfterFunc(ctx, func() { halted.Store(true) })
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

// stopping reports whether the engine's run is ending (a pass outside a run never stops early).
func (e *Engine) stopping() bool { return e.halted != nil && e.halted.Load() }

// Kick asks for a pass; it never blocks, and kicks coalesce.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// maxGather bounds how long the engine lets changes gather between two passes of a burst.
const maxGather = 50 * time.Millisecond

// loop is the engine goroutine.
func (e *Engine) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	e.adopt()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
			start := time.Now()
			e.pass()
			if len(e.kick) > 0 {
				// A burst (an IKE daemon bringing up thousands of CHILD_SAs): every pass costs
				// the whole SAD and SPD, so let the changes gather for as long as the pass took
				// instead of running passes back to back and leaving the API no CPU.
				e.gather(ctx, min(time.Since(start), maxGather))
			}
		case f := <-e.reqs:
			f()
		}
	}
}

// gather waits d, serving requests meanwhile.
func (e *Engine) gather(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case f := <-e.reqs:
			f()
		}
	}
}

// adopt starts the engine from what the card actually holds (Driver.Dump) rather than from an empty
// card: a card a daemon adopted from an earlier run (after a crash, or left in guard state) may hold
// SAs and policies the SAD does not have, or has under other indexes. Each entry the engine does not
// know is taken as installed and belonging to no SA of the SAD (serial 0), so the first pass
// replaces or removes it like any stale entry: its policies are rewritten or removed before its SAs
// leave, and an SA of the SAD whose index or (SPI, destination) a stale one holds is installed once
// that one is gone.
func (e *Engine) adopt() {
	st, err := e.drv.Dump()
	if err != nil {
		e.log.Warn("read the card's entries at start; assuming it holds none", "err", err)
		return
	}
	n := 0
	for ifc, sas := range st.SAs {
		for idx, cs := range sas {
			k := saKey{idx, ifc}
			if _, ok := e.sa[k]; ok {
				continue
			}
			id := sadb.SAID{SPI: cs.SPI, Dst: cs.Dst, Proto: ipsec.ProtoESP}
			e.sa[k] = &saOff{installed: true, status: StatusOffloaded, id: id}
			if e.byID[ifc] == nil {
				e.byID[ifc] = map[sadb.SAID]uint32{}
			}
			e.byID[ifc][id] = idx
			n++
		}
	}
	for ifc, pols := range st.Policies {
		for id, p := range pols {
			k := polKey{id, ifc}
			if _, ok := e.pol[k]; ok {
				continue
			}
			e.pol[k] = &polOff{cur: p, tried: p, installed: true, status: StatusOffloaded}
			n++
		}
	}
	if n > 0 {
		e.log.Info("the card holds entries of an earlier run; reconciling them with the SAD and SPD", "entries", n)
	}
}

// runState returns whether the goroutine runs and the channel closed when it ends.
func (e *Engine) runState() (bool, chan struct{}) {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	return e.running, e.done
}

// do runs f in the engine goroutine and waits for it.
func (e *Engine) do(ctx context.Context, f func()) error {
	running, done := e.runState()
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

// Sync waits until a pass has covered every change made to the store before the call, and that
// pass's events went out.
func (e *Engine) Sync(ctx context.Context) error {
	target := e.store.Gen()
	for {
		p := e.progress.Load()
		if p.gen >= target {
			return nil
		}
		e.Kick()
		running, done := e.runState()
		if !running {
			return ErrStopped
		}
		select {
		case <-p.next:
		case <-done:
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// show publishes the end of a pass that covered store generation gen: the state other goroutines
// read, then the pass's events, then the progress Sync waits for.
func (e *Engine) show(gen uint64) {
	sh := &shown{stats: e.stats, sa: make(map[saKey]shownSA, len(e.sa)), pol: make(map[polKey]IfaceState, len(e.pol))}
	for k, st := range e.sa {
		sh.sa[k] = shownSA{serial: st.serial, inbound: st.inbound || st.check.ServesAny(),
			state: IfaceState{Iface: k.iface, Status: st.status, Reason: st.reason, Detail: st.detail}}
	}
	for k, st := range e.pol {
		s := IfaceState{Iface: k.iface, Status: st.status, Reason: st.reason, Detail: st.detail}
		if st.installed && st.cur.Action == ipsec.ActionProtect && st.cur.SA == ipsec.NoSA {
			s.Detail = "no usable SA: traffic dropped"
		}
		sh.pol[k] = s
	}
	e.shown.Store(sh)
	if e.opts.Events != nil {
		for _, ev := range e.pending {
			e.opts.Events.Publish(ev)
		}
	}
	clear(e.pending)
	e.pending = e.pending[:0]
	old := e.progress.Load()
	e.progress.Store(&progress{gen: gen, next: make(chan struct{})})
	close(old.next)
}

// Stats returns the engine's counters as of the last pass.
func (e *Engine) Stats() Stats { return e.shown.Load().stats }

// SAStates returns the offload state of the SA at index (with that serial) on every interface.
func (e *Engine) SAStates(index uint32, serial uint64) []IfaceState {
	sh := e.shown.Load()
	out := make([]IfaceState, 0, len(e.ifaces))
	for _, ifc := range e.ifaces {
		st, ok := sh.sa[saKey{index, ifc}]
		if !ok || st.serial != serial {
			out = append(out, IfaceState{Iface: ifc, Status: StatusPending})
			continue
		}
		out = append(out, st.state)
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
	sh := e.shown.Load()
	for _, ifc := range e.ifaces {
		if st, ok := sh.sa[saKey{sa.Index, ifc}]; ok && st.serial == sa.Serial && st.inbound {
			return ipsec.DirIn
		}
	}
	return ipsec.DirOut
}

// PolicyStates returns the offload state of the policy with id on every interface it may use.
func (e *Engine) PolicyStates(id uint32) []IfaceState {
	sh := e.shown.Load()
	var out []IfaceState
	for _, ifc := range e.ifaces {
		if s, ok := sh.pol[polKey{id, ifc}]; ok {
			out = append(out, s)
		}
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
		for idx, c := range raw {
			if serial, held := e.heldSerial(idx); held {
				out[idx] = Counted{Serial: serial, SACounters: c}
			}
		}
	}); derr != nil {
		return nil, derr
	}
	if err != nil {
		return nil, fmt.Errorf("read sa counters: %w", err)
	}
	return out, nil
}

// CheckUpdate asks the driver, in the engine's goroutine, whether the SA at index (with that
// serial) can take next's settings in place (UpdateChecker). An SA the card does not hold, or a
// driver that cannot tell, says yes: the change then reaches the card like any other.
func (e *Engine) CheckUpdate(ctx context.Context, index uint32, serial uint64, next *sadb.SA) error {
	uc, ok := e.drv.(UpdateChecker)
	if running, _ := e.runState(); !ok || !running {
		return nil // not running: the card holds nothing the engine installed
	}
	var err error
	if derr := e.do(ctx, func() {
		for _, ifc := range e.ifaces {
			if st := e.sa[saKey{index, ifc}]; st != nil && st.installed && st.serial == serial {
				err = uc.CheckUpdate(index, &sadb.SAEntry{SA: *next, Index: index, Serial: serial})
				return
			}
		}
	}); derr != nil {
		return derr
	}
	return err
}

// ErrNoDefaults is SetDefaults' answer for a driver that does not implement DefaultsSetter.
var ErrNoDefaults = errors.New("the card cannot change its default verdicts in place")

// SetDefaults changes the card's default verdicts, in the engine's goroutine.
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
