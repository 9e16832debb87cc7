package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/manager"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/control/seqstate"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/worker"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// driver is the card as the control plane's offload engine sees it (offload.Driver): the XDP card's
// tables (loader.Card, selectors and SPIs, never keys) and the workers' SA table (the keys). One card
// serves both interfaces of the instance, so an SA or policy offloaded to both is held once and
// counted per interface; it leaves the card when it leaves its last interface.
//
// With a durable sequence state (control/seqstate) every SA it installs holds a handle there: an
// outbound SA is installed only once its first reservation is on disk, and starts above what any
// earlier life of it may have sent, with that life's IV mask; an inbound SA starts with the replay
// window of its last persisted high-water mark.
type driver struct {
	card   *loader.Card
	sas    *worker.SATable
	state  *seqstate.Store // nil: no durable sequence state (tests of the driver alone)
	log    *slog.Logger
	ifaces []string
	local  func(netip.Addr) bool // is the address one of this gateway's (decides an SA's direction)
	// minWindow is the smallest replay window an inbound SA gets (Info.MinReplayWindow); set
	// before the engine starts.
	minWindow uint32

	mu   sync.Mutex
	held map[uint32]*heldSA
	pols map[uint32]*heldPolicy
	// stale are the SAs a card adopted from an earlier run held when this driver started (adopt):
	// no keys, no worker; the interfaces that still hold each. The engine takes them out.
	stale map[uint32]map[string]bool
	uses  map[*heldSA]useMark // last use readings (usage.go)
	// replaced are SAs an update in place took out of the workers' table; they are wiped a
	// moment later (wipeGrace), once no worker can be inside a call with them.
	replaced map[*esp.SA]*time.Timer

	acqMu sync.Mutex
	acq   *loader.AcquireReader
}

// wipeGrace is how long an SA replaced by an update in place stays usable for a worker that loaded
// it just before the replacement: a worker's call takes microseconds.
const wipeGrace = time.Second

type heldSA struct {
	index     uint32
	name      string
	spi       uint32
	dst       netip.Addr
	dir       ipsec.Dir
	transport bool
	sa        *esp.SA
	shape     espShape // what the SA was made with, but the keys
	card      loader.SA
	check     ipsec.CheckList
	handle    stateHandle // nil without a durable state
	ifaces    map[string]bool
}

// espShape is what of an SA's parameters an update in place may change (esp.Continue): if it
// differs, the driver continues the SA with the new ones.
type espShape struct {
	src          netip.Addr
	mode         ipsec.Mode
	esn          bool
	replayWindow uint32
	encap        esp.UDPEncap
	udp          bool
	ttl          uint8
	df           esp.DFPolicy
	tfcPadTo     uint16
}

func shapeOf(p *esp.Params) espShape {
	s := espShape{src: p.Src, mode: p.Mode, esn: p.ESN, replayWindow: p.ReplayWindow, ttl: p.TTL, df: p.DF,
		tfcPadTo: p.TFCPadTo}
	if p.UDPEncap != nil {
		s.udp, s.encap = true, *p.UDPEncap
	}
	return s
}

// stateHandle is an SA's claim on its durable sequence state (*seqstate.Outbound or *seqstate.Inbound).
type stateHandle interface {
	Release()
}

type heldPolicy struct {
	p      ipsec.Policy
	ifaces map[string]bool
}

var _ offload.Driver = (*driver)(nil)

func newDriver(card *loader.Card, sas *worker.SATable, state *seqstate.Store, ifaces []string, local func(netip.Addr) bool,
	log *slog.Logger) *driver {
	if log == nil {
		log = slog.Default()
	}
	return &driver{card: card, sas: sas, state: state, ifaces: ifaces, local: local, log: log,
		held: map[uint32]*heldSA{}, pols: map[uint32]*heldPolicy{}, stale: map[uint32]map[string]bool{},
		replaced: map[*esp.SA]*time.Timer{}}
}

// adopt records what the card already holds — a card adopted from an earlier run, whose SAs have no
// keys and no worker any more — as held on every interface, so that the offload engine, which starts
// from Dump, removes or replaces it like any entry the SAD does not have.
func (d *driver) adopt() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	all := func() map[string]bool {
		m := map[string]bool{}
		for _, ifc := range d.ifaces {
			m[ifc] = true
		}
		return m
	}
	if err := d.card.SAs(func(idx uint32, _ loader.SA) bool { d.stale[idx] = all(); return true }); err != nil {
		return fmt.Errorf("read the adopted card's sas: %w", err)
	}
	for _, p := range d.card.Policies() {
		d.pols[p.ID] = &heldPolicy{p: p, ifaces: all()}
	}
	return nil
}

func (d *driver) Interfaces() []string { return slices.Clone(d.ifaces) }

func (d *driver) known(iface string) error {
	if !slices.Contains(d.ifaces, iface) {
		return fmt.Errorf("no interface %q in this instance", iface)
	}
	return nil
}

// InstallSA puts the SA's keys into the workers' table before the card may name it, and the card's
// entry after. An SA already held (same SPI and destination) is updated in place (update).
func (d *driver) InstallSA(o *offload.SAOffload) error {
	if err := d.known(o.Iface); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := o.SA
	if d.stale[o.Index] != nil {
		return fmt.Errorf("install sa %d: the index holds an sa of an earlier run", o.Index)
	}
	var wasOn map[string]bool
	if h, ok := d.held[o.Index]; ok && h.dir == ipsec.DirOut && e.Dir == nil && o.InCheck.ServesAny() {
		// Offered before any inbound policy named it, with no direction in the SAD and a
		// destination that is not ours, it was taken for outbound; an inbound policy now expects
		// traffic through it, so it is inbound. Install it afresh as inbound (new engine state,
		// and its outbound reservation released) on every interface it was held on.
		if err := d.card.DeleteSA(o.Index); err != nil {
			return fmt.Errorf("move sa %d to inbound: %w", o.Index, err)
		}
		d.sas.Remove(o.Index)
		d.drop(o.Index, h)
		wasOn = h.ifaces
	}
	if h, ok := d.held[o.Index]; ok {
		// A moved SA (sadb.Store.MigrateSA) comes under its new destination: the engine names the
		// identity the card holds it under.
		if h.spi != e.SPI || (h.dst != e.Dst && o.MovedFrom != (sadb.SAID{SPI: h.spi, Dst: h.dst, Proto: ipsec.ProtoESP})) {
			return fmt.Errorf("install sa %d: index holds spi 0x%x dst %s", o.Index, h.spi, h.dst)
		}
		if err := d.update(o, h); err != nil {
			return err
		}
		h.ifaces[o.Iface] = true
		return nil
	}
	return d.install(o, wasOn)
}

// Admit is what the driver decides about a new SA offered to it before it touches the workers,
// the card or the sequence state: the direction it installs the SA in (local tells the gateway's
// own addresses), the engine's parameters, or the nack. `xdpsec config check` asks it too.
func Admit(o *offload.SAOffload, local func(netip.Addr) bool) (ipsec.Dir, esp.Params, error) {
	e := o.SA
	params, err := e.ESPParams()
	if err != nil {
		return 0, params, offload.Nack(offload.ReasonUnsupported, "%v", err)
	}
	dir := direction(o, local)
	if dir == ipsec.DirIn && !o.InCheck.ServesAny() {
		// No inbound PROTECT policy serves it yet: the post-decryption check would have nothing
		// to accept. The engine re-offers it once a policy points at it.
		return dir, params, offload.Nack(offload.ReasonNoPolicy, "inbound sa %s has no policy to check against", e.ID())
	}
	return dir, params, nil
}

// install puts a new SA into the workers' table and the card.
func (d *driver) install(o *offload.SAOffload, wasOn map[string]bool) error {
	e := o.SA
	dir, params, err := Admit(o, d.local)
	if err != nil {
		return err
	}
	params.ReplayWindow = replayWindow(dir, params.ReplayWindow, d.minWindow)
	esa, handle, err := d.newSA(params, dir)
	if err != nil {
		return err
	}
	undo := func() {
		if handle != nil {
			handle.Release()
		}
		esa.Wipe()
	}
	// A transport-mode packet is the endpoint's own: the worker must not decrement its TTL as a
	// router hop would.
	ent := &worker.Entry{SA: esa, Dir: dir, Transport: params.Mode == ipsec.ModeTransport}
	if dir == ipsec.DirOut {
		ent.OuterDst = e.Dst
	} else {
		ent.Check = o.InCheck
	}
	if err := d.sas.Install(o.Index, ent); err != nil {
		undo()
		if errors.Is(err, worker.ErrIndex) {
			return offload.Nack(offload.ReasonTableFull, "%v", err)
		}
		return fmt.Errorf("install sa %d in the workers: %w", o.Index, err)
	}
	csa := cardSA(e, dir, params.Mode)
	if err := d.card.PutSA(o.Index, csa); err != nil {
		d.sas.Remove(o.Index)
		undo()
		if errors.Is(err, loader.ErrCapacity) {
			return offload.Nack(offload.ReasonTableFull, "%v", err)
		}
		return fmt.Errorf("install sa %d in the card: %w", o.Index, err)
	}
	ifaces := map[string]bool{o.Iface: true}
	for ifc := range wasOn {
		ifaces[ifc] = true
	}
	d.held[o.Index] = &heldSA{index: o.Index, name: e.Name, spi: e.SPI, dst: e.Dst, dir: dir, transport: ent.Transport, sa: esa,
		shape: shapeOf(&params), card: csa, check: slices.Clone(ent.Check), handle: handle, ifaces: ifaces}
	return nil
}

// newSA makes the engine's SA for params in direction dir, with its durable sequence state: an
// outbound SA gets its first reservation (on disk when this returns), the IV mask of its earlier
// lives and a counter above what they may have sent; an inbound SA the replay window of its last
// persisted high-water mark. Without a reservation the SA is refused, never installed.
func (d *driver) newSA(params esp.Params, dir ipsec.Dir) (*esp.SA, stateHandle, error) {
	var opts []esp.Option
	var handle stateHandle
	var attach func(*esp.SA) error
	if d.state != nil {
		switch dir {
		case ipsec.DirOut:
			h, err := d.state.Outbound(params)
			if err != nil {
				return nil, nil, stateNack(err)
			}
			params.Seq, opts, handle, attach = h.Seq(), h.Options(), h, func(sa *esp.SA) error { return h.Attach(sa) }
		default:
			h, err := d.state.Inbound(params)
			if err != nil {
				return nil, nil, stateNack(err)
			}
			params.Seq, handle, attach = h.Top(), h, func(sa *esp.SA) error { return h.Attach(sa) }
		}
	}
	esa, err := esp.New(params, opts...)
	if err != nil {
		if handle != nil {
			handle.Release()
		}
		return nil, nil, offload.Nack(offload.ReasonUnsupported, "%v", err)
	}
	if attach != nil {
		if err := attach(esa); err != nil {
			handle.Release()
			esa.Wipe()
			return nil, nil, fmt.Errorf("attach sequence state: %w", err)
		}
	}
	return esa, handle, nil
}

// stateNack turns a refusal of the durable sequence state into the engine's words: a retired or
// exhausted key for good, anything else (a write that failed) for now.
func stateNack(err error) error {
	switch {
	case errors.Is(err, seqstate.ErrRetired), errors.Is(err, seqstate.ErrExhausted):
		return offload.Nack(offload.ReasonRetired, "%v", err)
	case errors.Is(err, seqstate.ErrClaimed):
		return fmt.Errorf("sequence state: %w", err) // another index still holds it: retried
	}
	return offload.Nack(offload.ReasonSeqState, "%v", err)
}

// cardSA is what the card holds of e in direction dir.
func cardSA(e *sadb.SAEntry, dir ipsec.Dir, mode ipsec.Mode) loader.SA {
	csa := loader.SA{Dir: dir, SPI: e.SPI, Src: e.Src, Dst: e.Dst, Mode: mode, PolicyID: loader.NoPolicy, ReqID: e.Reqid}
	if e.Encap != nil {
		csa.EncapSrcPort, csa.EncapDstPort = e.Encap.Sport, e.Encap.Dport
	}
	return csa
}

// update brings a held SA to o in place: new settings continue the same engine state
// (esp.Continue: sequence counter, ceiling, IV mask and replay window shared; esp.Migrate when the
// SA moved to another destination), a new check list replaces the old one, and the card's entry
// (addresses, mode, reqid, encapsulation ports) is rewritten in place, keeping its counters; a moved
// inbound SA's lookup key moves make-before-break (loader.Card.PutSA). The workers' entry changes
// in one atomic store, so no packet finds the SA missing.
func (d *driver) update(o *offload.SAOffload, h *heldSA) error {
	e := o.SA
	params, err := e.ESPParams()
	if err != nil {
		return offload.Nack(offload.ReasonUnsupported, "%v", err)
	}
	if e.Dir != nil && *e.Dir != h.dir {
		return offload.Nack(offload.ReasonUnsupported, "sa %s: dir %s cannot change in place (held as %s)", e.ID(), *e.Dir, h.dir)
	}
	params.ReplayWindow = replayWindow(h.dir, params.ReplayWindow, d.minWindow)
	shape := shapeOf(&params)
	check := h.check
	if h.dir == ipsec.DirIn {
		check = o.InCheck
	}
	csa := cardSA(e, h.dir, params.Mode)
	moved := e.Dst != h.dst
	if shape == h.shape && slices.Equal(check, h.check) && csa == h.card && !moved {
		return nil
	}
	sa := h.sa
	switch {
	case moved:
		if sa, err = esp.Migrate(h.sa, params); err != nil {
			return offload.Nack(offload.ReasonUnsupported, "sa %s cannot move in place: %v", e.ID(), err)
		}
	case shape != h.shape:
		if sa, err = esp.Continue(h.sa, params); err != nil {
			return offload.Nack(offload.ReasonUnsupported, "sa %s cannot change in place: %v", e.ID(), err)
		}
	}
	ent := &worker.Entry{SA: sa, Dir: h.dir, Check: check, Transport: params.Mode == ipsec.ModeTransport}
	if h.dir == ipsec.DirOut {
		ent.OuterDst = e.Dst
	}
	old, err := d.sas.Replace(o.Index, ent)
	if err != nil {
		if sa != h.sa {
			sa.Wipe()
		}
		return fmt.Errorf("update sa %d in the workers: %w", o.Index, err)
	}
	if csa != h.card {
		if err := d.card.PutSA(o.Index, csa); err != nil {
			if old != nil {
				_, _ = d.sas.Replace(o.Index, old)
			}
			if sa != h.sa {
				sa.Wipe()
			}
			return fmt.Errorf("update sa %d in the card: %w", o.Index, err)
		}
	}
	if sa != h.sa {
		switch sh := h.handle.(type) {
		case *seqstate.Outbound:
			err = sh.Attach(sa)
		case *seqstate.Inbound:
			err = sh.Attach(sa)
		}
		if err != nil {
			// The state let go of the SA (its key retired): it keeps the ceiling it has and the
			// shared counter stops there, as the old one would have.
			d.log.Warn("attach updated sa to its sequence state", "sa", h.name, "err", err)
		}
		d.wipeLater(h.sa)
		h.sa, h.shape = sa, shape
	}
	h.check, h.card, h.transport, h.dst = slices.Clone(check), csa, ent.Transport, e.Dst
	return nil
}

// CheckUpdate tells whether the SA at index can take e's settings in place (offload.UpdateChecker):
// it tries esp.Continue and throws the result away.
func (d *driver) CheckUpdate(index uint32, e *sadb.SAEntry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.held[index]
	if !ok {
		return nil
	}
	if h.spi != e.SPI || h.dst != e.Dst {
		return fmt.Errorf("sa index %d holds spi 0x%x dst %s", index, h.spi, h.dst)
	}
	if e.Dir != nil && *e.Dir != h.dir {
		return fmt.Errorf("dir %s: the running sa is %s", *e.Dir, h.dir)
	}
	params, err := e.ESPParams()
	if err != nil {
		return err
	}
	params.ReplayWindow = replayWindow(h.dir, params.ReplayWindow, d.minWindow)
	if shapeOf(&params) == h.shape {
		return nil
	}
	sa, err := esp.Continue(h.sa, params)
	if err != nil {
		return err
	}
	sa.Wipe()
	return nil
}

// wipeLater wipes an SA an update replaced after wipeGrace (wipeAll at once).
func (d *driver) wipeLater(sa *esp.SA) {
	d.replaced[sa] = time.AfterFunc(wipeGrace, func() {
		sa.Wipe()
		d.mu.Lock()
		delete(d.replaced, sa)
		d.mu.Unlock()
	})
}

// drop forgets a held SA that left the card and the workers' table: its sequence state is
// released (kept on disk for a re-add) and its key wiped.
func (d *driver) drop(index uint32, h *heldSA) {
	if h.handle != nil {
		h.handle.Release()
	}
	h.sa.Wipe()
	delete(d.held, index)
}

// direction: the SA's own dir when the SAD has one; else inbound when it serves an inbound
// policy or its destination is one of ours.
func direction(o *offload.SAOffload, local func(netip.Addr) bool) ipsec.Dir {
	if o.SA.Dir != nil {
		return *o.SA.Dir
	}
	if o.InCheck.ServesAny() || (local != nil && local(o.SA.Dst)) {
		return ipsec.DirIn
	}
	return ipsec.DirOut
}

// RemoveSA takes the SA out of the card first (no packet can name it any more), then out of the
// workers' table, and wipes the key last: a worker that loaded the entry just before finds
// ErrWiped at worst.
func (d *driver) RemoveSA(index uint32, iface string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if on := d.stale[index]; on != nil {
		return d.removeStale(index, iface, on)
	}
	h, ok := d.held[index]
	if !ok || !h.ifaces[iface] {
		return fmt.Errorf("remove sa %d on %s: not in the card", index, iface)
	}
	delete(h.ifaces, iface)
	if len(h.ifaces) > 0 {
		return nil
	}
	if err := d.card.DeleteSA(index); err != nil {
		h.ifaces[iface] = true
		return fmt.Errorf("remove sa %d from the card: %w", index, err)
	}
	d.sas.Remove(index)
	d.drop(index, h)
	return nil
}

// removeStale takes an SA of an earlier run off iface, and out of the card when it leaves the
// last one; it has no key to wipe and no worker entry.
func (d *driver) removeStale(index uint32, iface string, on map[string]bool) error {
	if !on[iface] {
		return fmt.Errorf("remove sa %d on %s: not in the card", index, iface)
	}
	delete(on, iface)
	if len(on) > 0 {
		return nil
	}
	if err := d.card.DeleteSA(index); err != nil {
		on[iface] = true
		return fmt.Errorf("remove sa %d of an earlier run from the card: %w", index, err)
	}
	delete(d.stale, index)
	return nil
}

func (d *driver) InstallPolicy(p *offload.PolicyOffload) error {
	if err := d.known(p.Iface); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.pols[p.Policy.ID]
	if h != nil && h.p == p.Policy {
		h.ifaces[p.Iface] = true
		return nil
	}
	if err := d.card.PutPolicies(p.Policy); err != nil {
		if errors.Is(err, loader.ErrCapacity) {
			return offload.Nack(offload.ReasonTableFull, "%v", err)
		}
		return fmt.Errorf("install policy %d: %w", p.Policy.ID, err)
	}
	if h == nil {
		h = &heldPolicy{ifaces: map[string]bool{}}
		d.pols[p.Policy.ID] = h
	}
	h.p = p.Policy
	h.ifaces[p.Iface] = true
	return nil
}

func (d *driver) RemovePolicy(id uint32, iface string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.pols[id]
	if h == nil || !h.ifaces[iface] {
		return fmt.Errorf("remove policy %d on %s: not in the card", id, iface)
	}
	delete(h.ifaces, iface)
	if len(h.ifaces) > 0 {
		return nil
	}
	if err := d.card.DeletePolicies(id); err != nil {
		h.ifaces[iface] = true
		return fmt.Errorf("remove policy %d from the card: %w", id, err)
	}
	delete(d.pols, id)
	return nil
}

// Counters: packets and bytes are what the workers completed (sealed, or opened and
// policy-checked); the first and last use are the card's (usage.go).
//
// The card's counters are read in one batched walk (loader.Card.EachSAStats) rather than a lookup
// per SA: with 65,536 SAs the lifetime poll otherwise made as many syscalls every interval.
func (d *driver) Counters() (map[uint32]offload.SACounters, error) {
	card := map[uint32]loader.SAStats{}
	cardOK := d.card.EachSAStats(func(idx uint32, s loader.SAStats) bool { card[idx] = s; return true }) == nil
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[uint32]offload.SACounters, len(d.held))
	monoNow, wallNow := monotonicNow(), time.Now()
	for idx, h := range d.held {
		out[idx] = d.countersWith(idx, h, card[idx], cardOK, monoNow, wallNow)
	}
	d.pruneUses()
	return out, nil
}

func saCounters(s loader.WorkerSAStats) offload.SACounters {
	c := offload.SACounters{Packets: s.Packets, Bytes: s.Bytes}
	for r, n := range s.Errors {
		switch esp.Reason(r) {
		case esp.ReasonReplay:
			c.ReplayErrors += n
		case esp.ReasonICV:
			c.IntegrityErrors += n
		case esp.ReasonSeqExhausted:
			c.SeqExhausted = c.SeqExhausted || n > 0
			c.OtherErrors += n
		case esp.ReasonSeqUnreserved:
			c.SeqUnreserved += n
			c.OtherErrors += n
		default:
			c.OtherErrors += n
		}
	}
	return c
}

func monotonicNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// SetDefaults writes the default verdicts into the card's card_config map: the card applies them to
// the next packet that matches no policy (its flow cache keeps "no match", not the verdict).
func (d *driver) SetDefaults(defaults ipsec.Defaults) error { return d.card.SetDefaults(defaults) }

// GlobalCounters are the card's drop and error reasons; the daemon adds the workers' (see
// Daemon.GlobalCounters).
func (d *driver) GlobalCounters() (map[string]uint64, error) { return d.card.ReasonCounts() }

func (d *driver) Dump() (offload.CardState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := offload.CardState{SAs: map[string]map[uint32]offload.CardSA{},
		Policies: map[string]map[uint32]ipsec.Policy{}}
	for _, ifc := range d.ifaces {
		st.SAs[ifc] = map[uint32]offload.CardSA{}
		st.Policies[ifc] = map[uint32]ipsec.Policy{}
	}
	// Read the card itself, not our bookkeeping: the check is there to find where they differ.
	inCard := map[uint32]loader.SA{}
	if err := d.card.SAs(func(idx uint32, sa loader.SA) bool { inCard[idx] = sa; return true }); err != nil {
		return st, fmt.Errorf("dump card sas: %w", err)
	}
	for idx, sa := range inCard {
		on := d.stale[idx]
		if h := d.held[idx]; h != nil {
			on = h.ifaces
		}
		for _, ifc := range d.ifaces {
			if on == nil || on[ifc] {
				st.SAs[ifc][idx] = offload.CardSA{Index: idx, SPI: sa.SPI, Dst: sa.Dst}
			}
		}
	}
	for _, p := range d.card.Policies() {
		h := d.pols[p.ID]
		for _, ifc := range d.ifaces {
			if h == nil || h.ifaces[ifc] {
				st.Policies[ifc][p.ID] = p
			}
		}
	}
	return st, nil
}

// SAInfo describes one SA the driver holds, for the daemon's counters.
type SAInfo struct {
	Index uint32
	Name  string
	SPI   uint32
	Dst   netip.Addr
	Dir   string
	offload.SACounters
	// Two of the reasons within OtherErrors, which are no fault of the SA: packets too big for
	// the tunnel (answered with ICMP, or fragmented), and packets dropped while their next hop's
	// neighbour was being resolved.
	TooBig, NoNextHop uint64
	// InnerMTU, outbound: the largest inner packet whose ESP packet fits the wire MTU — the
	// next-hop MTU the gateway's ICMP "too big" replies announce.
	InnerMTU int
}

func (d *driver) list() []SAInfo {
	cs, _ := d.Counters()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]SAInfo, 0, len(d.held))
	for idx, h := range d.held {
		info := SAInfo{Index: idx, Name: h.name, SPI: h.spi, Dst: h.dst, Dir: h.dir.String(),
			SACounters: cs[idx]}
		s := d.card.WorkerStats().Read(idx)
		info.TooBig = s.Errors[loader.WorkerErrPMTU]
		info.NoNextHop = s.Errors[loader.WorkerErrNoNeigh]
		if h.dir == ipsec.DirOut {
			info.InnerMTU = d.sas.InnerMTU(idx)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b SAInfo) int { return int(a.Index) - int(b.Index) })
	return out
}

// wipeAll wipes every key the workers hold, at shutdown, after the workers stopped. The SAs'
// sequence states stay claimed: the state's Close persists them as they are.
func (d *driver) wipeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for idx, h := range d.held {
		d.sas.Remove(idx)
		h.sa.Wipe()
		delete(d.held, idx)
	}
	for sa, t := range d.replaced {
		t.Stop()
		sa.Wipe()
		delete(d.replaced, sa)
	}
}

var (
	_ offload.CapacityReporter = (*driver)(nil)
	_ offload.AcquireReader    = (*driver)(nil)
	_ offload.SharedTables     = (*driver)(nil)
	_ offload.DefaultsSetter   = (*driver)(nil)
)

// Sides: one card serves both interfaces of the instance, with one set of tables (the manager
// tells the engine the same from the configuration).
func (d *driver) Sides() (protected, wire string) { return d.ifaces[0], d.ifaces[1] }

// Capacity: SA indexes below the smaller of the card's and the workers' tables; policy ids below
// the card's.
func (d *driver) Capacity() offload.Capacity {
	pols, sas := d.card.Capacities()
	return offload.Capacity{SAs: min(sas, uint32(d.sas.Capacity())), Policies: pols}
}

// ReadAcquire reads the card's ACQUIRE ring (a PROTECT policy matched and had no usable SA). It
// wakes every quarter second to notice ctx's end.
func (d *driver) ReadAcquire(ctx context.Context) (offload.Acquire, error) {
	d.acqMu.Lock()
	if d.acq == nil {
		r, err := d.card.NewAcquireReader()
		if err != nil {
			d.acqMu.Unlock()
			return offload.Acquire{}, err
		}
		d.acq = r
	}
	r := d.acq
	d.acqMu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return offload.Acquire{}, err
		}
		r.SetDeadline(time.Now().Add(250 * time.Millisecond))
		a, err := r.Read()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case errors.Is(err, loader.ErrReaderClosed):
			return offload.Acquire{}, offload.ErrStopped
		case err != nil:
			return offload.Acquire{}, err
		}
		iface := d.ifaces[0] // outbound policies classify on the protected side
		if a.Dir == ipsec.DirIn && len(d.ifaces) > 1 {
			iface = d.ifaces[1]
		}
		return offload.Acquire{PolicyID: a.PolicyID, Iface: iface, Src: a.Tuple.Src, Dst: a.Tuple.Dst,
			Proto: a.Tuple.Proto, Sport: a.Tuple.SrcPort, Dport: a.Tuple.DstPort}, nil
	}
}

// closeAcquire stops the ACQUIRE reader, once the control plane no longer reads.
func (d *driver) closeAcquire() {
	d.acqMu.Lock()
	defer d.acqMu.Unlock()
	if d.acq != nil {
		_ = d.acq.Close()
		d.acq = nil
	}
}

// The durable sequence state of the SAs' keys, as the manager consults it (manager.KeyState).
var _ manager.KeyState = (*driver)(nil)

// Admit refuses an SA whose key the state retired (manager.KeyState).
func (d *driver) Admit(sa *sadb.SA) error {
	if d.state == nil {
		return nil
	}
	p, err := sa.ESPParams()
	if err != nil {
		return nil // invalid: the SAD says why
	}
	return d.state.Admit(p)
}

// Prepare reserves, in one write, for the SAs among sas that will be outbound: their own dir, or
// none and a destination that is not this gateway's (manager.KeyState).
func (d *driver) Prepare(sas []sadb.SA) error {
	if d.state == nil {
		return nil
	}
	ps := make([]esp.Params, 0, len(sas))
	for i := range sas {
		sa := &sas[i]
		if sa.Dir != nil && *sa.Dir != ipsec.DirOut || sa.Dir == nil && d.local != nil && d.local(sa.Dst.Unmap()) {
			continue
		}
		if p, err := sa.ESPParams(); err == nil {
			ps = append(ps, p)
		}
	}
	return d.state.Prepare(ps)
}

// Retire records a tombstone for sa's key (manager.KeyState).
func (d *driver) Retire(sa *sadb.SA, reason string) error {
	if d.state == nil {
		return nil
	}
	p, err := sa.ESPParams()
	if err != nil {
		return err
	}
	return d.state.Retire(p, reason)
}
