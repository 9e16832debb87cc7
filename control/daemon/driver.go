package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/worker"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// driver is the card as the control plane's offload engine sees it (offload.Driver): the XDP card's
// tables (loader.Card, selectors and SPIs, never keys) and the workers' SA table (the keys). One card
// serves both interfaces of the instance, so an SA or policy offloaded to both is held once and
// counted per interface; it leaves the card when it leaves its last interface.
type driver struct {
	card   *loader.Card
	sas    *worker.SATable
	ifaces []string
	local  func(netip.Addr) bool // is the address one of this gateway's (decides an SA's direction)

	mu   sync.Mutex
	held map[uint32]*heldSA
	pols map[uint32]*heldPolicy
	uses map[*heldSA]useMark // last use readings (usage.go)

	acqMu sync.Mutex
	acq   *loader.AcquireReader
}

type heldSA struct {
	index     uint32
	name      string
	spi       uint32
	dst       netip.Addr
	dir       ipsec.Dir
	transport bool
	sa        *esp.SA
	sels      []ipsec.Selector
	ifaces    map[string]bool
}

type heldPolicy struct {
	p      ipsec.Policy
	ifaces map[string]bool
}

var _ offload.Driver = (*driver)(nil)

func newDriver(card *loader.Card, sas *worker.SATable, ifaces []string, local func(netip.Addr) bool) *driver {
	return &driver{card: card, sas: sas, ifaces: ifaces, local: local,
		held: map[uint32]*heldSA{}, pols: map[uint32]*heldPolicy{}}
}

func (d *driver) Interfaces() []string { return slices.Clone(d.ifaces) }

func (d *driver) known(iface string) error {
	if !slices.Contains(d.ifaces, iface) {
		return fmt.Errorf("no interface %q in this instance", iface)
	}
	return nil
}

// InstallSA puts the SA's keys into the workers' table before the card may name it, and the card's
// entry after. An SA already held (same SPI and destination) is updated in place: the same esp.SA
// keeps its sequence numbers and replay window.
func (d *driver) InstallSA(o *offload.SAOffload) error {
	if err := d.known(o.Iface); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := o.SA
	var wasOn map[string]bool
	if h, ok := d.held[o.Index]; ok && h.dir == ipsec.DirOut && e.Dir == nil && len(o.InSelectors) > 0 {
		// Offered before any inbound policy named it, with no direction in the SAD and a
		// destination that is not ours, it was taken for outbound; an inbound policy now expects
		// traffic through it, so it is inbound. Nothing can have been opened with it: install it
		// afresh as inbound (new engine state) on every interface it was held on.
		if err := d.card.DeleteSA(o.Index); err != nil {
			return fmt.Errorf("move sa %d to inbound: %w", o.Index, err)
		}
		d.sas.Remove(o.Index)
		h.sa.Wipe()
		delete(d.held, o.Index)
		wasOn = h.ifaces
	}
	if h, ok := d.held[o.Index]; ok {
		if d.moving(h, o) {
			return d.moveSA(h, o)
		}
		if h.spi != e.SPI || h.dst != e.Dst {
			return fmt.Errorf("install sa %d: index holds spi 0x%x dst %s", o.Index, h.spi, h.dst)
		}
		h.ifaces[o.Iface] = true
		if h.dir == ipsec.DirIn && !slices.Equal(h.sels, o.InSelectors) && len(o.InSelectors) > 0 {
			// Entries are immutable: republish with the new selectors, same engine state.
			old := d.sas.Remove(o.Index)
			ent := &worker.Entry{SA: h.sa, Dir: ipsec.DirIn, Selectors: o.InSelectors, Transport: h.transport}
			if err := d.sas.Install(o.Index, ent); err != nil {
				if old != nil {
					_ = d.sas.Install(o.Index, old)
				}
				return fmt.Errorf("update sa %d selectors: %w", o.Index, err)
			}
			h.sels = slices.Clone(o.InSelectors)
		}
		return nil
	}
	params, err := e.ESPParams()
	if err != nil {
		return offload.Nack(offload.ReasonUnsupported, "%v", err)
	}
	esa, err := esp.New(params)
	if err != nil {
		return offload.Nack(offload.ReasonUnsupported, "%v", err)
	}
	dir := d.direction(o)
	if dir == ipsec.DirIn && len(o.InSelectors) == 0 {
		// No inbound PROTECT policy serves it yet: the post-decryption check would have nothing
		// to accept. The engine re-offers it with selectors once a policy points at it.
		esa.Wipe()
		return offload.Nack(offload.ReasonNoPolicy, "inbound sa %s has no policy to check against", e.ID())
	}
	// A transport-mode packet is the endpoint's own: the worker must not decrement its TTL as a
	// router hop would.
	ent := &worker.Entry{SA: esa, Dir: dir, Selectors: o.InSelectors, Transport: params.Mode == ipsec.ModeTransport}
	if dir == ipsec.DirOut {
		ent.OuterDst = e.Dst
	}
	if err := d.sas.Install(o.Index, ent); err != nil {
		esa.Wipe()
		if errors.Is(err, worker.ErrIndex) {
			return offload.Nack(offload.ReasonTableFull, "%v", err)
		}
		return fmt.Errorf("install sa %d in the workers: %w", o.Index, err)
	}
	csa := loader.SA{Dir: dir, SPI: e.SPI, Src: e.Src, Dst: e.Dst, Mode: params.Mode,
		PolicyID: loader.NoPolicy, ReqID: e.Reqid}
	if e.Encap != nil {
		csa.EncapSrcPort, csa.EncapDstPort = e.Encap.Sport, e.Encap.Dport
	}
	if err := d.card.PutSA(o.Index, csa); err != nil {
		d.sas.Remove(o.Index)
		esa.Wipe()
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
		sels: slices.Clone(o.InSelectors), ifaces: ifaces}
	return nil
}

// direction: the SA's own dir when the SAD has one; else inbound when an inbound policy's
// selectors came with it or its destination is one of ours.
func (d *driver) direction(o *offload.SAOffload) ipsec.Dir {
	if o.SA.Dir != nil {
		return *o.SA.Dir
	}
	if len(o.InSelectors) > 0 || (d.local != nil && d.local(o.SA.Dst)) {
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
	h.sa.Wipe()
	delete(d.held, index)
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
func (d *driver) Counters() (map[uint32]offload.SACounters, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[uint32]offload.SACounters, len(d.held))
	monoNow, wallNow := monotonicNow(), time.Now()
	for idx, h := range d.held {
		out[idx] = d.counters(idx, h, monoNow, wallNow)
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
		h := d.held[idx]
		for _, ifc := range d.ifaces {
			if h == nil || h.ifaces[ifc] {
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

// wipeAll wipes every key the workers hold, at shutdown, after the workers stopped.
func (d *driver) wipeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for idx, h := range d.held {
		d.sas.Remove(idx)
		h.sa.Wipe()
		delete(d.held, idx)
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
