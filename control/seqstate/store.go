package seqstate

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/netip"
	"path/filepath"
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
