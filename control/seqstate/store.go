package seqstate

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
)

// numShards is how many state files the entries are spread over (by the
// first byte of the key fingerprint): a reservation rewrites one shard, not
// the state of every SA.
const numShards = 64

// Defaults of Options.
const (
	DefaultRoot           = "/var/lib/xdpsec"
	DefaultReserveAhead   = 10 * time.Second
	DefaultMinReservation = 1 << 20
	DefaultInboundEvery   = time.Second
	DefaultTick           = 250 * time.Millisecond
	DefaultGrace          = 24 * time.Hour
	DefaultMaxReleased    = 1 << 16
	DefaultMaxTombstones  = 1 << 16
)

// DefaultDir is the state directory of an instance unless configured.
func DefaultDir(instance string) string { return filepath.Join(DefaultRoot, instance) }

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// Dir is the state directory (absolute). Open creates it 0700.
	Dir string
	// ReserveAhead sizes outbound reservations: enough numbers for this
	// long at the SA's observed rate (peak-held), at least MinReservation.
	// A reservation is renewed when less than half of that is left.
	ReserveAhead   time.Duration
	MinReservation uint64
	// InboundEvery is how often the inbound high-water marks are persisted:
	// after a crash, numbers authenticated in the last InboundEvery may be
	// accepted once more.
	InboundEvery time.Duration
	// Tick is how often Run calls Step.
	Tick time.Duration
	// Grace is how long the entry of an SA that left the configuration is
	// kept (a re-add within it continues the SA's numbers).
	Grace time.Duration
	// MaxReleased bounds the entries of SAs no longer configured; beyond it
	// the oldest are pruned before their grace period ends.
	MaxReleased int
	// MaxTombstones bounds the tombstones; beyond it the oldest are dropped.
	MaxTombstones int
	// Logger receives write failures and recoveries (Run).
	Logger *slog.Logger
	// OnError is called by Run for every failed Step (a metric hook).
	OnError func(error)
	// Now is the clock of Open, Outbound, Inbound, Release and Retire
	// (Step takes its time as an argument).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.ReserveAhead <= 0 {
		o.ReserveAhead = DefaultReserveAhead
	}
	if o.MinReservation == 0 {
		o.MinReservation = DefaultMinReservation
	}
	if o.InboundEvery <= 0 {
		o.InboundEvery = DefaultInboundEvery
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.MaxReleased <= 0 {
		o.MaxReleased = DefaultMaxReleased
	}
	if o.MaxTombstones <= 0 {
		o.MaxTombstones = DefaultMaxTombstones
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Fingerprint is the keyed fingerprint of an SA's key and algorithm
// (esp.Fingerprint under the state directory's secret).
type Fingerprint [esp.FingerprintLen]byte

// ID recognises an SA across restarts: its SPI, its destination and the
// fingerprint of its key.
type ID struct {
	SPI uint32
	Dst netip.Addr
	Key Fingerprint
}

func (id ID) String() string { return fmt.Sprintf("sa spi 0x%08x dst %s", id.SPI, id.Dst) }

func (id ID) shard() int { return int(id.Key[0]) % numShards }

// Dir is the direction of an entry.
type Dir uint8

const (
	Out Dir = iota + 1
	In
)

func (d Dir) String() string {
	if d == Out {
		return "outbound"
	}
	return "inbound"
}

// Sender is the outbound SA the store watches and holds to its reservation
// (*esp.SA).
type Sender interface {
	NextSeq() uint64
	SeqLimit() uint64
	RaiseCeiling(seq uint64)
}

// Receiver is the inbound SA whose high-water mark the store persists
// (*esp.SA).
type Receiver interface {
	ReplayTop() uint64
}

// Errors the store returns for an SA; wrapped with the SA and the details.
var (
	// ErrRetired: the SA's key expired hard or used up its numbers; it must
	// not be used again (a tombstone records it).
	ErrRetired = errors.New("key retired")
	// ErrExhausted: the SA used its last sequence number in a previous life.
	ErrExhausted = errors.New("sequence numbers exhausted")
	// ErrClaimed: the SA is tracked already (by another handle).
	ErrClaimed = errors.New("sa state in use")
	// ErrStale: the handle was released or retired.
	ErrStale = errors.New("sa state handle released")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("state store closed")
)

// Store is the durable per-SA sequence state of one daemon instance.
type Store struct {
	opts   Options
	fs     fileSystem
	secret []byte
	closer func() error

	// io is held across taking a snapshot and writing it, so that files
	// reach the disk in the order their snapshots were taken: a later write
	// never carries older values than an earlier one.
	io sync.Mutex

	mu       sync.Mutex
	shards   [numShards]shard
	active   []*entry  // attached entries: what Step looks at every tick
	lastStep time.Time // the previous Step's time (the common rate interval)
	lastIn   time.Time // last collection of inbound high-water marks
	lastGC   time.Time // last prune of released entries and tombstones
	stats    Stats     // Writes, WriteErrors, LastError, Blocked
	recs     []record  // scratch of snapshotLocked
	closed   bool
	claims   uint64 // generations of claims, so a stale handle cannot release a newer one
}

// gcEvery is how often Step prunes released entries and excess tombstones:
// it walks every entry, which the per-tick work does not.
const gcEvery = time.Minute

type shard struct {
	entries map[entryKey]*entry
	tombs   map[Fingerprint]*tomb
	dirty   bool   // differs from its file
	exists  bool   // has a file
	buf     []byte // the encoding of the last snapshot, reused
}

type entryKey struct {
	id  ID
	dir Dir
}

type entry struct {
	key  entryKey
	mask uint64 // outbound: the AEAD IV mask of every life
	// Outbound: floor is as far as an earlier SA of this entry may have
	// sent (the previous life's ceiling, or the ceiling at release); the
	// next claim starts above it. durable is the ceiling on disk, which the
	// attached SA never passes; ceiling is the target the next write
	// carries (≥ durable).
	floor, ceiling, durable uint64
	top                     uint64 // inbound: the high-water mark to write next

	claim    uint64 // generation of the handle holding it; 0 when released
	released int64  // unix seconds since released (0 while claimed)
	out      Sender
	in       Receiver
	active   int // 1 + index in Store.active while attached, else 0

	// Outbound rate, for sizing reservations: packets per second, peak-held
	// with a decay of ReserveAhead.
	lastUsed uint64
	lastAt   time.Time
	rate     float64
}

type tomb struct {
	id     ID
	at     int64
	reason string
}

// Stats are the store's counters (for metrics).
type Stats struct {
	Entries, Claimed, Tombstones int
	// Blocked is the number of outbound SAs that had used their whole
	// durable reservation at the last Step (they drop with seq_unreserved
	// until a renewal reaches the disk).
	Blocked int
	// Writes and WriteErrors count commits (one or more shard files, one
	// directory fsync).
	Writes, WriteErrors uint64
	LastError           string
}

// Open opens (creating if needed) the state directory opts.Dir: it checks
// that nobody else can change it, takes its lock, reads or creates the
// fingerprint secret and loads every state file. A damaged file is an
// error: the store cannot know which numbers it covered.
func Open(opts Options) (*Store, error) {
	dir, err := prepareDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	ofs, err := openOSFS(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	if fi, err := ofs.stat(secretName); err == nil {
		if !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s/%s is not a regular file: %w", dir, secretName, ErrUnsafeDir)
		} else {
			err = checkPrivate(filepath.Join(dir, secretName), fi, 0o077)
		}
		if err != nil {
			ofs.Close()
			lock.Close()
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		ofs.Close()
		lock.Close()
		return nil, fmt.Errorf("stat secret: %w", err)
	}
	s, err := openFS(ofs, opts)
	if err != nil {
		ofs.Close()
		lock.Close()
		return nil, fmt.Errorf("open state %s: %w", dir, err)
	}
	s.closer = func() error { return errors.Join(ofs.Close(), lock.Close()) }
	return s, nil
}

// openFS loads the store from fsys (Open after its checks; tests with a
// fault-injecting file system).
func openFS(fsys fileSystem, opts Options) (*Store, error) {
	opts.defaults()
	s := &Store{opts: opts, fs: fsys}
	for i := range s.shards {
		s.shards[i].entries = map[entryKey]*entry{}
		s.shards[i].tombs = map[Fingerprint]*tomb{}
	}
	names, err := fsys.ReadDir()
	if err != nil {
		return nil, fmt.Errorf("list state directory: %w", err)
	}
	var hasState, hasSecret bool
	for _, n := range names {
		switch _, isShard := isShardName(n); {
		case strings.HasSuffix(n, tmpSuffix):
			// A write that did not finish: its rename never happened, so
			// the file it was to replace is still the durable state.
			if err := fsys.Remove(n); err != nil {
				return nil, fmt.Errorf("remove unfinished %s: %w", n, err)
			}
		case isShard:
			hasState = true
		case n == secretName:
			hasSecret = true
		}
	}
	switch {
	case hasSecret:
		s.secret, err = readSecret(fsys)
	case hasState:
		err = ErrSecretLost
	default:
		s.secret, err = newSecret(fsys)
	}
	if err != nil {
		return nil, err
	}
	now := opts.Now().Unix()
	for _, n := range names {
		i, ok := isShardName(n)
		if !ok {
			continue
		}
		if err := s.loadShard(i, n, now); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) loadShard(i int, name string, now int64) error {
	data, err := s.fs.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	sf, err := parseShard(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	sh := &s.shards[i]
	sh.exists = true
	for _, r := range sf.records {
		if r.id.shard() != i {
			return fmt.Errorf("%s: %s belongs in %s: %w", name, r.id, shardName(r.id.shard()), ErrCorrupt)
		}
		if r.kind == 't' {
			sh.tombs[r.id.Key] = &tomb{id: r.id, at: r.at, reason: r.reason}
			continue
		}
		e := &entry{key: entryKey{r.id, In}, top: r.value, released: r.released}
		if r.kind == 'o' {
			e.key.dir, e.mask, e.floor, e.ceiling, e.durable, e.top = Out, r.mask, r.value, r.value, r.value, 0
		}
		if e.released == 0 {
			// Claimed when the previous life ended: released now, and
			// written so, or every restart would restart the grace period.
			e.released = now
			sh.dirty = true
		}
		sh.entries[e.key] = e
	}
	return nil
}

// ID returns how the store recognises the SA p: SPI, destination and the
// keyed fingerprint of its key and algorithm.
func (s *Store) ID(p esp.Params) (ID, error) {
	fp, err := esp.Fingerprint(p, s.secret)
	if err != nil {
		return ID{}, err
	}
	return ID{SPI: p.SPI, Dst: p.Dst.Unmap(), Key: fp}, nil
}

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

// admitLocked refuses a retired key, a claimed entry and a closed store.
func (s *Store) admitLocked(sh *shard, k entryKey) error {
	if s.closed {
		return ErrClosed
	}
	if t := sh.tombs[k.id.Key]; t != nil {
		return fmt.Errorf("%s: %w: %s at %s (%s): configure a new key", k.id, ErrRetired, t.reason,
			time.Unix(t.at, 0).UTC().Format(time.RFC3339), t.id)
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

// Stats returns the store's counters: entries, claims and tombstones now
// (it walks them: for metrics, not for every packet), Blocked as of the last
// Step, writes and errors so far.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	for i := range s.shards {
		st.Entries += len(s.shards[i].entries)
		st.Tombstones += len(s.shards[i].tombs)
		for _, e := range s.shards[i].entries {
			if e.claim != 0 {
				st.Claimed++
			}
		}
	}
	return st
}

// Close persists the inbound high-water marks and pending changes, then
// releases the directory. Handles still attached stop being renewed: their
// SAs stop at their ceilings.
func (s *Store) Close() error {
	err := s.Flush(s.opts.Now())
	if errors.Is(err, ErrClosed) {
		return nil
	}
	s.io.Lock()
	defer s.io.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for len(s.active) > 0 {
		s.detachLocked(s.active[0])
	}
	if s.closer != nil {
		err = errors.Join(err, s.closer())
	}
	return err
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return math.MaxUint64
	}
	return a + b
}

func randomMask() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
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
