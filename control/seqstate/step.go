package seqstate

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"time"
)

// snapshot is the content of some shards at one moment and the outbound
// ceilings it carries, to raise once it is durable.
type snapshot struct {
	shards []int
	files  []named
	raise  []raise
}

type raise struct {
	e       *entry
	ceiling uint64
}

func (s *Store) snapshotLocked(shards []int) snapshot {
	var snap snapshot
	for _, i := range shards {
		sh := &s.shards[i]
		if !sh.dirty {
			continue
		}
		recs := s.recs[:0]
		for _, e := range sh.entries {
			r := record{kind: 'i', id: e.key.id, value: e.top, released: e.released}
			if e.key.dir == Out {
				r.kind, r.mask, r.value = 'o', e.mask, e.ceiling
				if e.ceiling > e.durable {
					snap.raise = append(snap.raise, raise{e, e.ceiling})
				}
			}
			recs = append(recs, r)
		}
		for _, t := range sh.tombs {
			recs = append(recs, record{kind: 't', id: t.id, at: t.at, reason: t.reason})
		}
		if len(recs) == 0 && !sh.exists {
			sh.dirty = false
			continue
		}
		snap.shards = append(snap.shards, i)
		// The buffer is the shard's own: s.io keeps the next snapshot of
		// this shard from being taken before this one is written.
		sh.buf = encodeShard(sh.buf, recs)
		s.recs = recs[:0]
		snap.files = append(snap.files, named{shardName(i), sh.buf})
		sh.dirty = false
	}
	return snap
}

// commit writes a snapshot (s.io held) and, once it is durable, raises the
// ceilings it carries. On failure the shards stay dirty for the next Step
// and no ceiling moves: the SAs stop at what is on disk.
func (s *Store) commit(snap snapshot) error {
	if len(snap.files) == 0 {
		return nil
	}
	err := writeAll(s.fs, snap.files)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		for _, i := range snap.shards {
			s.shards[i].dirty = true
		}
		s.stats.WriteErrors++
		s.stats.LastError = err.Error()
		return err
	}
	s.stats.Writes++
	for _, i := range snap.shards {
		s.shards[i].exists = true
	}
	for _, r := range snap.raise {
		if r.ceiling > r.e.durable {
			r.e.durable = r.ceiling
		}
		if r.e.out != nil {
			r.e.out.RaiseCeiling(r.e.durable)
		}
	}
	return nil
}

// Step does one round of the store's background work at time now: renew
// the outbound reservations that run low (sized from each SA's observed
// rate), collect the inbound high-water marks (every InboundEvery), prune
// released entries and excess tombstones, write what changed (one
// directory fsync for all shards) and raise the ceilings it reserved. It
// never runs on the packet path. A failed write is returned, counted in
// Stats and retried by the next Step; until then the SAs stop at their
// durable ceilings.
func (s *Store) Step(now time.Time) error { return s.round(now, false) }

// Flush persists every inbound high-water mark and every pending change
// now (a clean shutdown).
func (s *Store) Flush(now time.Time) error { return s.round(now, true) }

func (s *Store) round(now time.Time, allInbound bool) error {
	s.io.Lock()
	defer s.io.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	snap := s.stepLocked(now, allInbound || now.Sub(s.lastIn) >= s.opts.InboundEvery)
	s.mu.Unlock()
	return s.commit(snap)
}

func (s *Store) stepLocked(now time.Time, inbound bool) snapshot {
	if inbound {
		s.lastIn = now
	}
	// Most SAs were looked at in the previous Step: one decay factor serves
	// them all.
	dt := now.Sub(s.lastStep).Seconds()
	decay := math.Exp(-dt / s.opts.ReserveAhead.Seconds())
	s.lastStep = now
	blocked := 0
	for _, e := range s.active {
		switch {
		case e.out != nil:
			if s.renewLocked(e, now, dt, decay) {
				s.shards[e.key.id.shard()].dirty = true
			}
			if e.out.NextSeq()-1 >= e.durable {
				blocked++
			}
		case e.in != nil && inbound:
			if top := e.in.ReplayTop(); top > e.top {
				e.top = top
				s.shards[e.key.id.shard()].dirty = true
			}
		}
	}
	s.stats.Blocked = blocked
	if now.Sub(s.lastGC) >= gcEvery {
		s.lastGC = now
		s.pruneLocked(now)
	}
	return s.snapshotLocked(allShards)
}

var allShards = func() []int {
	a := make([]int, numShards)
	for i := range a {
		a[i] = i
	}
	return a
}()

// pruneLocked drops the entries released longer than Grace ago, then the
// oldest released entries beyond MaxReleased and the oldest tombstones
// beyond MaxTombstones. Both bounds hold after each prune (every gcEvery);
// in between, releases and retirements can add to them.
func (s *Store) pruneLocked(now time.Time) {
	grace := int64(s.opts.Grace / time.Second)
	var released []*entry
	var tombs []*tomb
	for i := range s.shards {
		sh := &s.shards[i]
		for k, e := range sh.entries {
			if e.claim != 0 {
				continue
			}
			if now.Unix()-e.released > grace {
				delete(sh.entries, k)
				sh.dirty = true
				continue
			}
			released = append(released, e)
		}
		for _, t := range sh.tombs {
			tombs = append(tombs, t)
		}
	}
	if n := len(released) - s.opts.MaxReleased; n > 0 {
		slices.SortFunc(released, func(a, b *entry) int { return cmp.Compare(a.released, b.released) })
		for _, e := range released[:n] {
			sh := &s.shards[e.key.id.shard()]
			delete(sh.entries, e.key)
			sh.dirty = true
		}
	}
	if n := len(tombs) - s.opts.MaxTombstones; n > 0 {
		slices.SortFunc(tombs, func(a, b *tomb) int { return cmp.Compare(a.at, b.at) })
		for _, t := range tombs[:n] {
			sh := &s.shards[t.id.shard()]
			delete(sh.tombs, t.id.Key)
			sh.dirty = true
		}
	}
}

// renewLocked updates e's rate estimate and, when less than half of a
// reservation's worth is left, moves its target ceiling to a full
// reservation above the numbers used. It reports whether it did. stepDt and
// stepDecay are the interval since the previous Step and its decay factor.
func (s *Store) renewLocked(e *entry, now time.Time, stepDt, stepDecay float64) bool {
	used := e.out.NextSeq() - 1
	if dt := now.Sub(e.lastAt).Seconds(); dt > 0 {
		decay := stepDecay
		if dt != stepDt {
			decay = math.Exp(-dt / s.opts.ReserveAhead.Seconds())
		}
		inst := 0.0
		if used > e.lastUsed {
			inst = float64(used-e.lastUsed) / dt
		}
		e.rate = max(inst, e.rate*decay)
		e.lastUsed, e.lastAt = used, now
	}
	limit := e.out.SeqLimit()
	if e.ceiling >= limit {
		return false // reserved to the last number
	}
	want := uint64(min(e.rate*s.opts.ReserveAhead.Seconds(), 1<<62))
	want = max(want, s.opts.MinReservation)
	left := uint64(0)
	if e.ceiling > used {
		left = e.ceiling - used
	}
	if left >= want/2 {
		return false
	}
	e.ceiling = max(e.ceiling, min(limit, satAdd(used, want)))
	return true
}

// Run calls Step every Tick until ctx ends, then Flush. The daemon runs it
// on a goroutine of its own rather than from the lifetime poller: an fsync
// can stall for seconds on a busy disk, which must delay neither expiry
// enforcement nor counter polling, and renewals must keep pace with the
// packet rate whatever the poller's interval. Failures go to OnError every
// time and to the log when they start and when they end.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			if err := s.Flush(s.opts.Now()); err != nil && !errors.Is(err, ErrClosed) {
				s.opts.Logger.Error("persist sequence state at exit", "err", err)
			}
			return
		case now := <-t.C:
			err := s.Step(now)
			switch {
			case errors.Is(err, ErrClosed):
				return
			case err != nil:
				if s.opts.OnError != nil {
					s.opts.OnError(err)
				}
				if !failing {
					s.opts.Logger.Error("persist sequence state: outbound sas stop at their reserved ceilings until a write succeeds", "err", err)
				}
				failing = true
			case failing:
				s.opts.Logger.Info("persist sequence state: writing again")
				failing = false
			}
		}
	}
}
