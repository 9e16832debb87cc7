// Package replay implements the ESP anti-replay window of RFC 4303 §3.4.3 as
// the bitmap ring of RFC 6479: the window is a ring of 64-bit blocks, and a
// packet that moves the window clears at most every block once, so the cost
// per packet does not grow with the window size.
//
// A Window is safe for concurrent use: Accept serialises on a small mutex
// (the critical section is a few loads and stores); Check and Top take no
// lock (they read atomic copies, and Accept checks again under the lock), so
// the pre-ICV duplicate check and the ESN high-half inference cost no
// contention.
//
// # Restore and continuation
//
// New(size, top) restores a window after a restart: top is the highest
// number authenticated in the previous life, and every number up to it
// counts as seen, so nothing at or below it is accepted again (RFC 4303
// §3.4.3 asks the receiver to drop duplicates; after a restart it cannot
// tell which of the numbers below top it saw, so it assumes all). Top is the
// value to persist: it is read lock-free and only grows.
//
// WithSize returns a second view of the same window with another size: both
// views share the top, the bitmap and the lock, so a number accepted through
// one is a replay through the other. An SA updated in place (a new replay
// window size, same key) keeps its replay state this way, and the old and
// new SA can run side by side while workers move from one to the other.
package replay

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

const blockBits = 64

// Window is an anti-replay window over 64-bit sequence numbers (32-bit
// sequence numbers are the special case with a zero high half): a size over
// a ring that views made by WithSize share.
type Window struct {
	size uint64 // W: a number below top-W+1 is too old; 0 disables the check
	r    *ring
}

// ring is the state the views of one window share.
type ring struct {
	mu     sync.Mutex
	top    atomic.Uint64   // highest accepted sequence number; written under mu
	mask   uint64          // number of ring blocks - 1 (a power of two)
	bitmap []atomic.Uint64 // bit (seq mod ring bits) is set when seq was accepted; written under mu
}

// ErrResize is returned by WithSize for a size the window's ring cannot hold.
var ErrResize = errors.New("window size not representable")

// New returns a window of size packets (0 disables replay checking but still
// tracks the top). top restores state: the highest sequence number already
// received; every number up to it is treated as already seen.
func New(size uint32, top uint64) *Window {
	w := &Window{size: uint64(size), r: &ring{}}
	r := w.r
	r.top.Store(top)
	if size == 0 {
		return w
	}
	n := ringBlocks(size)
	r.mask = n - 1
	r.bitmap = make([]atomic.Uint64, n)
	if top > 0 {
		for i := range r.bitmap {
			r.bitmap[i].Store(^uint64(0))
		}
		// Bits above top in its own block stand for numbers not yet seen.
		off := top % blockBits
		r.bitmap[(top/blockBits)&r.mask].Store(^uint64(0) >> (blockBits - 1 - off))
	}
	return w
}

// Size returns the window size in packets (0: disabled).
func (w *Window) Size() uint32 { return uint32(w.size) }

// Capacity returns the largest size WithSize accepts: the ring's blocks but
// the spare one (0 for a disabled window, which has no ring).
func (w *Window) Capacity() uint32 {
	if w.size == 0 {
		return 0
	}
	return uint32(w.r.mask * blockBits)
}

// ringBlocks is the number of 64-bit blocks of a window of size packets: one spare block beyond
// ceil(W/64), so that the block the top moves into is cleared without losing any bit still inside
// the window (RFC 6479 §2), rounded up to a power of two.
func ringBlocks(size uint32) uint64 {
	n := (uint64(size)+blockBits-1)/blockBits + 1
	return 1 << bits.Len64(n-1)
}

// CapacityFor returns the Capacity of a window of size packets: the largest size that costs the
// same memory, since the ring is rounded up to a power of two blocks anyway.
func CapacityFor(size uint32) uint32 {
	if size == 0 {
		return 0
	}
	return uint32((ringBlocks(size) - 1) * blockBits)
}

// WithSize returns a view of the same window with another size. Every block
// of the ring holds exactly the numbers accepted in its range (a block is
// cleared when the top enters it), so any size up to Capacity reads true
// bits. A disabled window keeps no bitmap: it cannot gain a size, and a
// window cannot lose its check (ErrResize).
func (w *Window) WithSize(size uint32) (*Window, error) {
	switch {
	case uint64(size) == w.size:
		return w, nil
	case w.size == 0 || size == 0:
		return nil, fmt.Errorf("resize replay window %d to %d: %w (replay checking cannot be turned on or off in place)", w.size, size, ErrResize)
	case size > w.Capacity():
		return nil, fmt.Errorf("resize replay window %d to %d: %w (at most %d in place)", w.size, size, ErrResize, w.Capacity())
	}
	return &Window{size: uint64(size), r: w.r}, nil
}

// Top returns the highest sequence number accepted so far (or restored).
// It takes no lock: the durable state reads it while packets are accepted.
func (w *Window) Top() uint64 { return w.r.top.Load() }

// Check reports whether seq would be accepted now, without recording it. The
// ESP receiver calls it before the costly integrity check (RFC 4303 §3.4.3:
// a duplicate is dropped early), then Accept after the check passed.
func (w *Window) Check(seq uint64) bool {
	if seq == 0 {
		return false // never sent (RFC 4303 §3.3.3: the first packet is 1)
	}
	if w.size == 0 {
		return true
	}
	// Without the lock the answer may be stale by the packets other
	// goroutines accept meanwhile; Accept decides under the lock.
	return w.check(seq)
}

func (w *Window) check(seq uint64) bool {
	r := w.r
	top := r.top.Load()
	if seq > top {
		return true
	}
	if top-seq >= w.size {
		return false // left of the window
	}
	return r.bitmap[(seq/blockBits)&r.mask].Load()&(1<<(seq%blockBits)) == 0
}

// Accept checks seq and, when it is new, records it and slides the window.
// It reports whether seq was new. Call it only for packets whose integrity
// check passed, so forged packets cannot move the window.
func (w *Window) Accept(seq uint64) bool {
	if seq == 0 {
		return false
	}
	r := w.r
	if w.size == 0 {
		for { // no window: only the top is kept, as a lock-free maximum
			top := r.top.Load()
			if seq <= top || r.top.CompareAndSwap(top, seq) {
				return true
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	top := r.top.Load()
	if !w.check(seq) {
		return false
	}
	if seq > top {
		// Clear the blocks the window slides over; at most the whole ring,
		// which bounds the work whatever the jump.
		cur, next := top/blockBits, seq/blockBits
		diff := next - cur
		if diff > r.mask+1 {
			diff = r.mask + 1
		}
		for i := uint64(1); i <= diff; i++ {
			r.bitmap[(cur+i)&r.mask].Store(0)
		}
		r.top.Store(seq)
	}
	b := &r.bitmap[(seq/blockBits)&r.mask]
	b.Store(b.Load() | 1<<(seq%blockBits))
	return true
}
