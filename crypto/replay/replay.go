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
package replay

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

const blockBits = 64

// Window is an anti-replay window over 64-bit sequence numbers (32-bit
// sequence numbers are the special case with a zero high half).
type Window struct {
	mu     sync.Mutex
	top    atomic.Uint64   // highest accepted sequence number; written under mu
	size   uint64          // W: a number below top-W+1 is too old; 0 disables the check
	mask   uint64          // number of ring blocks - 1 (a power of two)
	bitmap []atomic.Uint64 // bit (seq mod ring bits) is set when seq was accepted; written under mu
}

// New returns a window of size packets (0 disables replay checking but still
// tracks the top). top restores state: the highest sequence number already
// received; every number up to it is treated as already seen.
func New(size uint32, top uint64) *Window {
	w := &Window{size: uint64(size)}
	w.top.Store(top)
	if size == 0 {
		return w
	}
	// One spare block beyond ceil(W/64): the block the top moves into is
	// cleared without losing any bit still inside the window (RFC 6479 §2).
	n := (uint64(size)+blockBits-1)/blockBits + 1
	n = 1 << bits.Len64(n-1)
	w.mask = n - 1
	w.bitmap = make([]atomic.Uint64, n)
	if top > 0 {
		for i := range w.bitmap {
			w.bitmap[i].Store(^uint64(0))
		}
		// Bits above top in its own block stand for numbers not yet seen.
		off := top % blockBits
		w.bitmap[(top/blockBits)&w.mask].Store(^uint64(0) >> (blockBits - 1 - off))
	}
	return w
}

// Size returns the window size in packets (0: disabled).
func (w *Window) Size() uint32 { return uint32(w.size) }

// Top returns the highest sequence number accepted so far.
func (w *Window) Top() uint64 { return w.top.Load() }

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
	top := w.top.Load()
	if seq > top {
		return true
	}
	if top-seq >= w.size {
		return false // left of the window
	}
	return w.bitmap[(seq/blockBits)&w.mask].Load()&(1<<(seq%blockBits)) == 0
}

// Accept checks seq and, when it is new, records it and slides the window.
// It reports whether seq was new. Call it only for packets whose integrity
// check passed, so forged packets cannot move the window.
func (w *Window) Accept(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if w.size == 0 {
		for { // no window: only the top is kept, as a lock-free maximum
			top := w.top.Load()
			if seq <= top || w.top.CompareAndSwap(top, seq) {
				return true
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	top := w.top.Load()
	if !w.check(seq) {
		return false
	}
	if seq > top {
		// Clear the blocks the window slides over; at most the whole ring,
		// which bounds the work whatever the jump.
		cur, next := top/blockBits, seq/blockBits
		diff := next - cur
		if diff > w.mask+1 {
			diff = w.mask + 1
		}
		for i := uint64(1); i <= diff; i++ {
			w.bitmap[(cur+i)&w.mask].Store(0)
		}
		w.top.Store(seq)
	}
	b := &w.bitmap[(seq/blockBits)&w.mask]
	b.Store(b.Load() | 1<<(seq%blockBits))
	return true
}
