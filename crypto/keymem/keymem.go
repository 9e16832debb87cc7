// Package keymem holds raw key material outside the Go heap, in memory the kernel keeps out of swap
// (mlock), out of core dumps (MADV_DONTDUMP) and zeroed in a forked child (MADV_WIPEONFORK). A freed
// buffer is wiped before it can be handed out again, and WipeAll zeroes everything at process exit.
//
// It is for the few long-lived copies of raw keys a daemon holds (the configuration's, the SAD's and
// the ESP engine's copy from which it builds its ciphers), not for the packet path: Alloc and Free
// take a mutex and never run per packet. What it cannot reach is said in docs/security.md: the cipher
// objects that crypto/aes, crypto/cipher, crypto/hmac and x/crypto build from a key (expanded AES key
// schedules, GHASH tables, HMAC pads, ChaCha20-Poly1305's key copy) live in the Go heap, which Go
// gives no way to lock or exclude from a dump.
//
// Memory is manual here: a Buf is owned by whoever allocated it, Free ends its life, and a slice taken
// from Bytes must not be used after that (the slot may hold another key by then). Free is idempotent
// per Buf, so two owners of one Buf cannot free someone else's key. Freed slots are reused oldest
// first, which keeps a stale slice from meeting a new key as long as possible.
//
// If the kernel refuses to lock (RLIMIT_MEMLOCK without CAP_IPC_LOCK), the memory is still marked
// MADV_DONTDUMP and MADV_WIPEONFORK and works; Stats reports how much is unlocked and why, and the
// daemon logs it.
package keymem

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// chunkSize is how much is mapped at a time, carved into slots of one size class.
	chunkSize = 64 << 10
	// minSlot and MaxSize bound the size classes (powers of two). No algorithm's key is larger
	// than 64 bytes (AES-256 + HMAC-SHA-256); a larger buffer comes from the Go heap (see Alloc).
	minSlot = 16
	MaxSize = 4096
)

// numClasses covers minSlot, 2·minSlot, …, MaxSize.
var numClasses = classOf(MaxSize) + 1

// Buf is one buffer of key memory. The zero Buf and a nil *Buf are empty.
type Buf struct {
	b     []byte // what Bytes returns: len = the requested size
	slot  []byte // the whole slot in the arena; nil for an empty or heap-backed buffer
	class int
	freed atomic.Bool
}

// Bytes returns the buffer, or nil once it was freed.
func (b *Buf) Bytes() []byte {
	if b == nil || b.freed.Load() {
		return nil
	}
	return b.b
}

// Len is the buffer's length (0 once freed).
func (b *Buf) Len() int { return len(b.Bytes()) }

// Locked reports whether the buffer lies in memory the kernel agreed to lock.
func (b *Buf) Locked() bool {
	if b == nil || b.slot == nil {
		return false
	}
	return global.lockedAt(unsafe.Pointer(unsafe.SliceData(b.slot)))
}

// Free zeroes the buffer and returns its memory; later calls do nothing. Safe on nil.
func (b *Buf) Free() {
	if b == nil || !b.freed.CompareAndSwap(false, true) {
		return
	}
	clear(b.b)
	if b.slot != nil {
		global.put(b.class, b.slot)
	}
}

// Alloc returns a zeroed buffer of n bytes in key memory. Sizes above MaxSize (no valid key is
// that large; an invalid one may be on its way to being refused) come from the Go heap and are
// only wiped on Free.
func Alloc(n int) *Buf {
	switch {
	case n < 0:
		panic(fmt.Sprintf("keymem: negative size %d", n))
	case n == 0:
		return &Buf{b: []byte{}}
	case n > MaxSize:
		return &Buf{b: make([]byte, n)}
	}
	c := classOf(n)
	slot := global.get(c)
	return &Buf{b: slot[:n:n], slot: slot, class: c}
}

// Copy returns a buffer in key memory holding a copy of src. The caller wipes src if it must.
func Copy(src []byte) *Buf {
	b := Alloc(len(src))
	copy(b.b, src)
	return b
}

// WipeAll zeroes every byte of key memory, in use or not: for the end of the process, after which
// no key is needed. Buffers stay valid (and read as zeros).
func WipeAll() { global.wipeAll() }

// Stat describes the arena.
type Stat struct {
	Mapped  int   // bytes mapped
	Locked  int   // of which the kernel locked
	InUse   int   // bytes in slots handed out and not freed
	LockErr error // why the last refused chunk is not locked (nil: all are)
}

// Stats returns the arena's figures.
func Stats() Stat { return global.stats() }

// classOf is the index of the smallest size class holding n bytes.
func classOf(n int) int {
	c, size := 0, minSlot
	for size < n {
		size <<= 1
		c++
	}
	return c
}

// arena is the process's key memory: chunks mapped on demand, each carved into slots of one class.
type arena struct {
	mu      sync.Mutex
	free    [][][]byte // per class: a FIFO queue of free slots
	head    []int      // per class: index of the queue's first entry
	chunks  []chunk
	inUse   int
	lockErr error
}

type chunk struct {
	mem    []byte
	locked bool
}

var global = arena{free: make([][][]byte, numClasses), head: make([]int, numClasses)}

func (a *arena) get(c int) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.head[c] == len(a.free[c]) {
		a.grow(c)
	}
	q := a.free[c]
	s := q[a.head[c]]
	q[a.head[c]] = nil
	a.head[c]++
	if a.head[c] == len(q) {
		a.free[c], a.head[c] = q[:0], 0
	} else if a.head[c] >= 1024 && a.head[c]*2 >= len(q) {
		// Compact so the queue does not creep through memory.
		n := copy(q, q[a.head[c]:])
		a.free[c], a.head[c] = q[:n], 0
	}
	a.inUse += len(s)
	return s
}

func (a *arena) put(c int, s []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free[c] = append(a.free[c], s)
	a.inUse -= len(s)
}

// grow maps a chunk and queues its slots for class c. The mapping is never unmapped: a stale slice
// into it reads memory, never faults.
func (a *arena) grow(c int) {
	mem, err := unix.Mmap(-1, 0, chunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		// Out of address space or memory: there is no key memory to give, as with any allocation.
		panic(fmt.Sprintf("keymem: map %d bytes: %v", chunkSize, err))
	}
	// Marking cannot fail on a fresh private anonymous mapping of a kernel that has the flags
	// (DONTDUMP: 3.4, WIPEONFORK: 4.14); an older kernel only loses that protection.
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP)
	_ = unix.Madvise(mem, unix.MADV_WIPEONFORK)
	ch := chunk{mem: mem}
	if err := unix.Mlock(mem); err != nil {
		a.lockErr = fmt.Errorf("mlock %d bytes of key memory: %w", chunkSize, err)
	} else {
		ch.locked = true
	}
	a.chunks = append(a.chunks, ch)
	size := minSlot << c
	for off := 0; off+size <= len(mem); off += size {
		a.free[c] = append(a.free[c], mem[off:off+size:off+size])
	}
}

func (a *arena) lockedAt(p unsafe.Pointer) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ch := range a.chunks {
		base := unsafe.Pointer(unsafe.SliceData(ch.mem))
		if uintptr(p) >= uintptr(base) && uintptr(p) < uintptr(base)+uintptr(len(ch.mem)) {
			return ch.locked
		}
	}
	return false
}

func (a *arena) wipeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ch := range a.chunks {
		clear(ch.mem)
	}
}

func (a *arena) stats() Stat {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Stat{Mapped: len(a.chunks) * chunkSize, InUse: a.inUse, LockErr: a.lockErr}
	for _, ch := range a.chunks {
		if ch.locked {
			s.Locked += len(ch.mem)
		}
	}
	return s
}

// ParseHex reads key text as ip xfrm writes it — 0x (or 0X) followed by an even number of hex digits;
// "0x" alone is the empty key of NULL encryption — straight into key memory. Its errors name the
// position of a bad character (counting from 1, the 0x included), never a character of the text: key
// digits must not reach a log. The text may be a []byte the caller wipes after.
func ParseHex[T ~string | ~[]byte](text T) (*Buf, error) {
	if len(text) < 2 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X') {
		return nil, ErrNoHexPrefix
	}
	h := text[2:]
	if len(h)%2 != 0 {
		return nil, fmt.Errorf("%w (%d)", ErrOddHex, len(h))
	}
	b := Alloc(len(h) / 2)
	out := b.Bytes()
	for i := range out {
		hi, ok1 := unhex(h[2*i])
		lo, ok2 := unhex(h[2*i+1])
		if !ok1 || !ok2 {
			pos := 2 + 2*i + 1
			if ok1 {
				pos++
			}
			b.Free()
			return nil, &HexError{Pos: pos}
		}
		out[i] = hi<<4 | lo
	}
	return b, nil
}

// Errors of ParseHex.
var (
	ErrNoHexPrefix = errors.New("want 0x followed by hex digits")
	ErrOddHex      = errors.New("odd number of hex digits")
)

// HexError is a character of key text that is not a hex digit, by position only.
type HexError struct{ Pos int }

func (e *HexError) Error() string {
	return fmt.Sprintf("character %d is not a hex digit (the key's characters are not shown)", e.Pos)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
