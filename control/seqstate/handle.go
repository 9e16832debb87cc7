package seqstate

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
)

// Outbound reserves sequence numbers for the outbound SA p before its first
// use and returns its handle; the reservation is on disk when it returns.
// The driver calls it synchronously before installing the SA, then:
//
//	p.Seq = h.Seq()
//	sa, err := esp.New(p, h.Options()...) // the mask and the ceiling
//	h.Attach(sa)                           // Step renews and raises from now on
//
// A new SA starts at p.Seq with a fresh IV mask; an SA known from a previous
// life continues strictly above its last durable reservation (or p.Seq if
// higher), with the mask of that life. Refused: a retired key (ErrRetired),
// an SA whose numbers ran out (ErrExhausted), an SA already claimed
// (ErrClaimed); a failed write returns its error and reserves nothing.
func (s *Store) Outbound(p esp.Params) (*Outbound, error) {
	id, err := s.ID(p)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	s.io.Lock()
	defer s.io.Unlock()
	s.mu.Lock()
	k := entryKey{id, Out}
	sh := &s.shards[id.shard()]
	if err := s.admitLocked(sh, k); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	e, base, err := s.reserveLocked(sh, k, p, now)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	gen := s.claimLocked(e)
	e.lastUsed, e.lastAt, e.rate = base, now, 0
	var snap snapshot
	if e.ceiling > e.durable { // not prepared: write before the first use
		snap = s.snapshotLocked([]int{id.shard()})
	}
	s.mu.Unlock()

	if err := s.commit(snap); err != nil {
		s.mu.Lock()
		s.releaseLocked(e, gen, now)
		s.mu.Unlock()
		return nil, fmt.Errorf("reserve sequence numbers for %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Outbound{handle{s, e, gen}, base, e.durable, e.mask}, nil
}

// reserveLocked finds or creates the outbound entry k for p and makes sure
// its target ceiling holds at least half a minimum reservation above the
// SA's base: the numbers an earlier SA of the entry may have sent (floor)
// or p.Seq, whichever is higher. It marks the shard dirty when the target
// moved beyond what is on disk. It returns the base.
func (s *Store) reserveLocked(sh *shard, k entryKey, p esp.Params, now time.Time) (*entry, uint64, error) {
	limit := uint64(math.MaxUint32)
	if p.ESN {
		limit = math.MaxUint64
	}
	e := sh.entries[k]
	if e == nil {
		e = &entry{key: k, mask: randomMask(), floor: p.Seq, ceiling: p.Seq, durable: p.Seq, released: now.Unix()}
		sh.entries[k] = e
	}
	base := max(e.floor, p.Seq)
	if base >= limit {
		return nil, 0, fmt.Errorf("%s: %w in a previous life (last reserved %d): configure a new key", k.id, ErrExhausted, base)
	}
	if e.durable < limit && e.durable-min(e.durable, base) < s.opts.MinReservation/2 {
		e.ceiling = max(e.ceiling, min(limit, satAdd(base, s.opts.MinReservation)))
	}
	if e.ceiling > e.durable {
		sh.dirty = true
	}
	return e, base, nil
}

// Prepare reserves, in one write, sequence numbers for the outbound SAs ps
// that have no durable reservation to start from yet: the daemon calls it
// with every outbound SA of the configuration before the offload engine
// installs them, so that Outbound finds their reservations on disk and
// returns without a write of its own (one write for all instead of one per
// SA: see BENCHMARKS.md). The entries stay unclaimed until Outbound claims
// them. SAs that Outbound would refuse (retired key, exhausted, invalid) are
// skipped: Outbound reports them.
func (s *Store) Prepare(ps []esp.Params) error {
	now := s.opts.Now()
	s.io.Lock()
	defer s.io.Unlock()
	s.mu.Lock()
	var shards []int
	for _, p := range ps {
		id, err := s.ID(p)
		if err != nil {
			continue
		}
		k := entryKey{id, Out}
		sh := &s.shards[id.shard()]
		if s.admitLocked(sh, k) != nil {
			continue
		}
		if e, _, err := s.reserveLocked(sh, k, p, now); err == nil && e.ceiling > e.durable {
			shards = append(shards, id.shard())
		}
	}
	slices.Sort(shards)
	snap := s.snapshotLocked(slices.Compact(shards))
	s.mu.Unlock()
	if err := s.commit(snap); err != nil {
		return fmt.Errorf("prepare sequence reservations: %w", err)
	}
	return nil
}

// Inbound returns the handle of the inbound SA p and its restored
// high-water mark: the driver creates the SA with p.Seq = h.Top(), so it
// drops every number at or below it, and attaches it. No write is needed
// before use: the mark is persisted by Step.
func (s *Store) Inbound(p esp.Params) (*Inbound, error) {
	id, err := s.ID(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := entryKey{id, In}
	sh := &s.shards[id.shard()]
	if err := s.admitLocked(sh, k); err != nil {
		return nil, err
	}
	e := sh.entries[k]
	if e == nil {
		e = &entry{key: k}
		sh.entries[k] = e
	}
	e.top = max(e.top, p.Seq)
	gen := s.claimLocked(e)
	sh.dirty = true
	return &Inbound{handle{s, e, gen}, e.top}, nil
}

// Admit reports whether an SA with p's key may be added at all: ErrRetired (naming the reason
// and the time) when the key has a tombstone, under any SPI and in either direction, and
// ErrExhausted when the SA used its last sequence number in an earlier life. It neither claims
// nor writes: the control plane asks before an SA enters the SAD, so that `xdpsec sa add` and a
// reload refuse a retired key at once, with the reason, rather than have the card nack it later.
func (s *Store) Admit(p esp.Params) error {
	id, err := s.ID(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	sh := &s.shards[id.shard()]
	if t := sh.tombs[id.Key]; t != nil {
		return retiredErr(id, t)
	}
	limit := uint64(math.MaxUint32)
	if p.ESN {
		limit = math.MaxUint64
	}
	if e := sh.entries[entryKey{id, Out}]; e != nil && max(e.floor, p.Seq) >= limit {
		return fmt.Errorf("%s: %w in a previous life (last reserved %d): configure a new key", id, ErrExhausted, e.floor)
	}
	return nil
}

func retiredErr(id ID, t *tomb) error {
	return fmt.Errorf("%s: %w: %s at %s (%s): configure a new key", id, ErrRetired, t.reason,
		time.Unix(t.at, 0).UTC().Format(time.RFC3339), t.id)
}

// admitLocked refuses a retired key, a claimed entry and a closed store.
func (s *Store) admitLocked(sh *shard, k entryKey) error {
	if s.closed {
		return ErrClosed
	}
	if t := sh.tombs[k.id.Key]; t != nil {
		return retiredErr(k.id, t)
	}
	if e := sh.entries[k]; e != nil && e.claim != 0 {
		return fmt.Errorf("%s (%s): %w", k.id, k.dir, ErrClaimed)
	}
	return nil
}

func (s *Store) claimLocked(e *entry) uint64 {
	s.claims++
	e.claim, e.released = s.claims, 0
	return s.claims
}

// releaseLocked detaches e from handle gen (a no-op for a stale handle).
func (s *Store) releaseLocked(e *entry, gen uint64, now time.Time) bool {
	if e.claim != gen || gen == 0 {
		return false
	}
	if e.in != nil {
		e.top = max(e.top, e.in.ReplayTop())
	}
	s.detachLocked(e)
	// Its SA may go on sending up to the ceiling it has: the next one
	// starts above.
	e.floor = max(e.floor, e.durable)
	e.claim, e.released = 0, now.Unix()
	s.shards[e.key.id.shard()].dirty = true
	return true
}

// attachLocked puts e on the active list (once).
func (s *Store) attachLocked(e *entry) {
	if e.active == 0 {
		s.active = append(s.active, e)
		e.active = len(s.active)
	}
}

// detachLocked drops e's SA and takes it off the active list.
func (s *Store) detachLocked(e *entry) {
	e.out, e.in = nil, nil
	if e.active == 0 {
		return
	}
	i, last := e.active-1, len(s.active)-1
	s.active[i] = s.active[last]
	s.active[i].active = i + 1
	s.active[last] = nil
	s.active = s.active[:last]
	e.active = 0
}

// handle is what Outbound and Inbound share: the entry and the generation
// of the claim it holds.
type handle struct {
	s   *Store
	e   *entry
	gen uint64
}

// ID returns the SA's identity.
func (h *handle) ID() ID { return h.e.key.id }

// Release detaches the SA: it left the configuration or the SAD (deleted,
// replaced, moved). Its state is kept for the grace period, so a re-add of
// the same SA continues its numbers; an inbound SA's high-water mark is
// taken now. Releasing twice, or after Retire, does nothing.
func (h *handle) Release() {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.releaseLocked(h.e, h.gen, h.s.opts.Now())
}

// Retire records a tombstone for the SA's key (reason: a short
// [a-z0-9-] word, e.g. "hard-expired" or "seq-exhausted") and drops the
// SA's entries: Outbound and Inbound refuse the key from now on, under any
// SPI, in this life and the next ones. It returns once the tombstone is on
// disk; on a write error the tombstone is in force in memory and Step
// retries the write.
func (h *handle) Retire(reason string) error {
	return h.s.retire(h.e.key.id, reason, func() error {
		if h.e.claim != h.gen {
			return ErrStale
		}
		return nil
	})
}

// Retire is Retire for the SA p, whether or not a handle holds it, for a
// caller that learns of the hard expiry without the handle (the lifetime
// poller). A handle of the SA goes stale: its SA is no longer renewed and
// stops at its ceiling.
func (s *Store) Retire(p esp.Params, reason string) error {
	id, err := s.ID(p)
	if err != nil {
		return err
	}
	return s.retire(id, reason, nil)
}

func (s *Store) retire(id ID, reason string, check func() error) error {
	if !validReason(reason) {
		return fmt.Errorf("retire %s: reason %q is not [a-z0-9-]{1,%d}", id, reason, maxReasonLen)
	}
	now := s.opts.Now()
	s.io.Lock()
	defer s.io.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if check != nil {
		if err := check(); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("retire %s: %w", id, err)
		}
	}
	sh := &s.shards[id.shard()]
	for _, d := range []Dir{Out, In} {
		if e := sh.entries[entryKey{id, d}]; e != nil {
			delete(sh.entries, e.key)
			s.detachLocked(e)
			e.claim = 0
		}
	}
	if sh.tombs[id.Key] == nil {
		sh.tombs[id.Key] = &tomb{id: id, at: now.Unix(), reason: reason}
	}
	sh.dirty = true
	snap := s.snapshotLocked([]int{id.shard()})
	s.mu.Unlock()
	if err := s.commit(snap); err != nil {
		return fmt.Errorf("retire %s: %w", id, err)
	}
	return nil
}

// attach sets the SA of a handle still holding its claim (under the lock)
// and puts the entry on the list Step works through.
func (h *handle) attach(set func(*entry)) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.e.claim != h.gen {
		return fmt.Errorf("attach %s: %w", h.e.key.id, ErrStale)
	}
	set(h.e)
	h.s.attachLocked(h.e)
	return nil
}

// Outbound is the state handle of an outbound SA.
type Outbound struct {
	handle
	seq, ceiling, mask uint64
}

// Seq is the last number the SA counts as used: create it with
// Params.Seq = Seq() (the first packet carries Seq()+1).
func (o *Outbound) Seq() uint64 { return o.seq }

// Ceiling is the durable reservation at Outbound: the SA may send up to it.
func (o *Outbound) Ceiling() uint64 { return o.ceiling }

// IVMask is the SA's AEAD IV mask, the same in every life.
func (o *Outbound) IVMask() uint64 { return o.mask }

// Options are the esp.New options that carry the mask and the ceiling.
func (o *Outbound) Options() []esp.Option {
	return []esp.Option{esp.WithIVMask(o.mask), esp.WithCeiling(o.ceiling)}
}

// Attach hands the SA to the store: Step measures its rate, renews its
// reservation and raises its ceiling. After an update in place
// (esp.Continue) attach the new SA: it shares the counter.
func (o *Outbound) Attach(sa Sender) error {
	return o.attach(func(e *entry) {
		e.out = sa
		e.lastUsed, e.lastAt = sa.NextSeq()-1, o.s.opts.Now()
		sa.RaiseCeiling(e.durable)
	})
}

// Inbound is the state handle of an inbound SA.
type Inbound struct {
	handle
	top uint64
}

// Top is the restored high-water mark: create the SA with Params.Seq =
// Top(), so it drops every number at or below it.
func (i *Inbound) Top() uint64 { return i.top }

// Attach hands the SA to the store: Step persists its ReplayTop every
// InboundEvery.
func (i *Inbound) Attach(sa Receiver) error {
	return i.attach(func(e *entry) { e.in = sa })
}
