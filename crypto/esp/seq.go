package esp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// NoCeiling is the ceiling of an SA whose sequence numbers are not reserved
// by a durable state (the default): Encap stops only at exhaustion.
const NoCeiling = math.MaxUint64

// outSeq is an SA's outbound sequence state. SAs made by Continue share it
// with the SA they continue, so the old and the new SA draw from one counter
// while workers move from one to the other.
type outSeq struct {
	// ceiling is the highest number Encap may use: the end of the
	// reservation the durable state has written to disk. Read by every
	// Encap, raised rarely; on its own cache line, away from last.
	ceiling atomic.Uint64
	_       [56]byte
	// last is the last number used, written by every Encap. It moves only
	// for packets that are then sent, so it also counts the outbound
	// packets (Counters): no separate packet counter to update per packet.
	last atomic.Uint64
	// bytes counts the inner bytes of those packets, on last's cache line.
	bytes atomic.Uint64
	_     [48]byte
}

// Option adjusts an SA at New.
type Option func(*options)

type options struct {
	ivMask    uint64
	ivMaskSet bool
	ceiling   uint64
}

// WithIVMask sets the AEAD IV mask instead of drawing a random one. The
// durable state passes the mask of the SA's previous life, so that its IVs
// continue the same injective sequence (see iv.go); tests pass 0 to get
// IV = sequence number. CBC and NULL ignore it.
func WithIVMask(mask uint64) Option {
	return func(o *options) { o.ivMask, o.ivMaskSet = mask, true }
}

// WithCeiling sets the highest sequence number Encap may use until
// RaiseCeiling moves it (NoCeiling, the default, sets none). An SA whose
// numbers are reserved on disk starts with the reservation's end, so it can
// never send a number a later life might send again.
func WithCeiling(seq uint64) Option {
	return func(o *options) { o.ceiling = seq }
}

// nextSeq takes the next outbound sequence number. It never cycles: without
// ESN it stops after 2^32-1 (RFC 4303 §3.3.3), with ESN after 2^64-1. It
// never passes the ceiling either, and a refused call takes no number: the
// counter only moves to numbers that are then sent, so nothing is burnt and
// nothing is left behind for reuse.
func (sa *SA) nextSeq() (uint64, *Error) {
	o := sa.out
	for {
		cur := o.last.Load()
		if cur >= sa.seqLimit {
			return 0, ErrSeqExhausted
		}
		// The ceiling only grows, so a stale read is a lower one: safe.
		if cur >= o.ceiling.Load() {
			return 0, ErrSeqUnreserved
		}
		if o.last.CompareAndSwap(cur, cur+1) {
			return cur + 1, nil
		}
	}
}

// NextSeq returns the sequence number the next Encap will use (meaningless
// once SeqExhausted). NextSeq()-1 is the last number used: the durable
// state reads it, lock-free, to size and renew reservations.
func (sa *SA) NextSeq() uint64 { return sa.out.last.Load() + 1 }

// SeqExhausted reports whether Encap has used the last sequence number
// (2^32-1 without ESN, 2^64-1 with it): the SA can send no more and needs
// a hard expiry (RFC 4303 §3.3.3).
func (sa *SA) SeqExhausted() bool { return sa.out.last.Load() >= sa.seqLimit }

// SeqLimit returns the last sequence number Encap may use, for soft
// lifetimes expressed as "packets left".
func (sa *SA) SeqLimit() uint64 { return sa.seqLimit }

// Ceiling returns the highest sequence number Encap may use now
// (NoCeiling when none was set).
func (sa *SA) Ceiling() uint64 { return sa.out.ceiling.Load() }

// RaiseCeiling lets Encap use numbers up to seq. The durable state calls it
// once a reservation reached the disk. The ceiling never moves down: a
// lower seq is ignored.
func (sa *SA) RaiseCeiling(seq uint64) {
	c := &sa.out.ceiling
	for {
		cur := c.Load()
		if seq <= cur || c.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// IVMask returns the mask XORed into the AEAD IVs (0 for CBC and NULL). It
// is not secret: any packet shows it as IV XOR sequence number.
func (sa *SA) IVMask() uint64 { return sa.ivMask }

// ReplayTop returns the highest sequence number Decap authenticated so far
// (or the restored top): the inbound high-water mark to persist and to
// restore through Params.Seq. It takes no lock.
func (sa *SA) ReplayTop() uint64 { return sa.window.Top() }

// ErrNotContinuable is wrapped (inside a *FieldError naming the field) by
// Continue when the new parameters differ in something an SA cannot change
// in place.
var ErrNotContinuable = errors.New("cannot change in place: needs a new sa (new spi and key)")

// Continue returns an SA with the parameters p that continues prev's
// cryptographic state: a configuration reload that touches neither the SPI,
// the destination, the algorithm nor the key updates the SA in place.
//
// The new SA shares prev's outbound counter and ceiling, its IV mask and its
// replay window (by reference, not by copy), so the two may run side by
// side while workers move from prev to the new SA and no sequence number,
// IV or accepted inbound number is ever used twice. It builds its own copy
// of the key and its own cipher objects: wiping prev afterwards does not
// touch it. Its per-SA counters (Counters) start at zero; p.Seq is ignored.
//
// May change: src (same family), mode, TTL, DF, TFC padding, UDP
// encapsulation (on, off, ports), ESN (on at any time; off only while the
// counter and the replay top still fit in 32 bits), and the replay window
// size within the window's capacity (replay.Window.WithSize; turning the
// check on or off is refused). Anything else — SPI, destination, algorithm,
// ICV length, key or salt — is refused with a *FieldError wrapping
// ErrNotContinuable; a wiped prev with ErrWiped.
//
// The outbound packet and byte counts (Counters) are the shared counter's
// since each SA was made: the new SA's start at zero, and from then on each
// of the two counts the packets either sends.
func Continue(prev *SA, p Params) (*SA, error) {
	spec, err := p.suite()
	if err != nil {
		return nil, fmt.Errorf("validate sa: %w", err)
	}
	st := prev.st.Load()
	if st == nil {
		return nil, fmt.Errorf("continue sa spi %#x: %w", prev.spi, ErrWiped)
	}
	switch {
	case p.SPI != prev.spi:
		return nil, fieldErr("spi", ErrNotContinuable, "%#x differs from the running sa's %#x", p.SPI, prev.spi)
	case p.Dst.Unmap().As16() != prev.dst:
		_, d := prev.addrs()
		return nil, fieldErr("dst", ErrNotContinuable, "%s differs from the running sa's %s", p.Dst, d)
	case spec.name != prev.name || spec.icvLen != prev.icvLen:
		return nil, fieldErr("algorithm", ErrNotContinuable, "%s/%d-byte icv differs from the running sa's %s/%d-byte icv",
			spec.name, spec.icvLen, prev.name, prev.icvLen)
	case !sameKeys(st.keys, spec):
		return nil, fieldErr("key", ErrNotContinuable, "differs from the running sa's")
	case !p.ESN && (prev.out.last.Load() > 1<<32-1 || prev.window.Top() > 1<<32-1):
		return nil, fieldErr("esn", ErrNotContinuable, "the sa's numbers already passed 2^32-1")
	}
	win, err := prev.window.WithSize(p.ReplayWindow)
	if err != nil {
		return nil, fieldErr("replay_window", ErrNotContinuable, "%v", err)
	}
	sa := newSA(p, spec)
	sa.out, sa.window, sa.ivMask = prev.out, win, prev.ivMask
	sa.outBase, sa.outBytesBase = prev.out.last.Load(), prev.out.bytes.Load()
	if err := sa.build(spec); err != nil {
		return nil, err
	}
	return sa, nil
}

// sameKeys compares, in constant time for equal lengths, the SA's key buffer
// (cipher key ‖ salt ‖ auth key) with spec's keys.
func sameKeys(keys []byte, spec suiteSpec) bool {
	c, s, a := len(spec.cipher), len(spec.salt), len(spec.authKey)
	if len(keys) != c+s+a {
		return false
	}
	eq := subtle.ConstantTimeCompare(keys[:c], spec.cipher) &
		subtle.ConstantTimeCompare(keys[c:c+s], spec.salt) &
		subtle.ConstantTimeCompare(keys[c+s:], spec.authKey)
	// Two empty slices compare equal (1): NULL has no cipher key.
	return eq == 1
}

// Migrate is Continue that may also change the destination, within its address family: an SA that
// moves (MOBIKE, or a NAT mapping change of the peer: the daemon's POST /v1/sa/migrate) keeps its
// sequence numbers, IV mask and replay window, so nothing is sent or accepted twice across the move.
// The SA's identity (SPI, destination) changes with it: the caller moves whatever finds the SA by it.
func Migrate(prev *SA, p Params) (*SA, error) {
	_, d := prev.addrs()
	if p.Dst.Unmap().Is4() != d.Is4() {
		return nil, fieldErr("dst", ErrNotContinuable, "%s is of another address family than the running sa's %s", p.Dst, d)
	}
	q := p
	q.Dst = d
	sa, err := Continue(prev, q)
	if err != nil {
		return nil, err
	}
	sa.dst = p.Dst.Unmap().As16() // not shared yet: no reader can see the change
	sa.buildHdr()
	return sa, nil
}
