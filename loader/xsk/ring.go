//go:build linux

package xsk

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Desc is one RX or TX descriptor: the UMEM address of the packet's first
// byte, its length, and option flags (XDP_PKT_CONTD for multi-buffer).
type Desc = unix.XDPDesc

// PktContd in Desc.Options says that the packet continues in the next
// descriptor (XDP_PKT_CONTD, multi-buffer sockets only): a packet is the
// run of descriptors up to and including the first one without it.
const PktContd = unix.XDP_PKT_CONTD

// ring is the index arithmetic shared by the four ring kinds. One side of a
// ring produces, the other consumes; each side keeps a cached copy of the
// other side's index so that it touches the shared cache line only when its
// cached view runs out. Indexes are free-running uint32s; entries are at
// index&mask. Go's atomics are sequentially consistent, which is at least the
// acquire (load of the peer's index before reading entries) and release
// (store of our index after writing entries) that the kernel's side pairs with.
type ring struct {
	prod  *atomic.Uint32
	cons  *atomic.Uint32
	flags *atomic.Uint32
	size  uint32
	mask  uint32

	// cachedProd is, for a producer, the next index to reserve (already
	// published or not); for a consumer, the last producer index it loaded.
	cachedProd uint32
	// cachedCons is, for a consumer, the next index to consume; for a
	// producer, the last consumer index it loaded.
	cachedCons uint32
}

func (r *ring) init(prod, cons, flags *atomic.Uint32, size uint32) {
	r.prod, r.cons, r.flags = prod, cons, flags
	r.size, r.mask = size, size-1
	r.cachedProd = prod.Load()
	r.cachedCons = cons.Load()
}

// reserve claims up to n entries for a producer and returns the first index
// and how many it got.
func (r *ring) reserve(n uint32) (idx, got uint32) {
	free := r.size - (r.cachedProd - r.cachedCons)
	if free < n {
		r.cachedCons = r.cons.Load()
		free = r.size - (r.cachedProd - r.cachedCons)
	}
	if n > free {
		n = free
	}
	idx = r.cachedProd
	r.cachedProd += n
	return idx, n
}

// submit publishes every reserved entry to the consumer.
func (r *ring) submit() { r.prod.Store(r.cachedProd) }

// free reports how many entries a producer could reserve now.
func (r *ring) free() uint32 {
	r.cachedCons = r.cons.Load()
	return r.size - (r.cachedProd - r.cachedCons)
}

// peek returns the first index and how many of up to n entries a consumer
// can read.
func (r *ring) peek(n uint32) (idx, got uint32) {
	avail := r.cachedProd - r.cachedCons
	if avail < n {
		r.cachedProd = r.prod.Load()
		avail = r.cachedProd - r.cachedCons
	}
	if n > avail {
		n = avail
	}
	return r.cachedCons, n
}

// release hands n consumed entries back to the producer.
func (r *ring) release(n uint32) {
	r.cachedCons += n
	r.cons.Store(r.cachedCons)
}

// pending reports how many entries a consumer has not read yet.
func (r *ring) pending() uint32 {
	r.cachedProd = r.prod.Load()
	return r.cachedProd - r.cachedCons
}

// produce puts as many of src as fit into the producer ring r, whose
// entries are slots, publishes them in one store, and returns how many it
// took (the first n of src).
func produce[T uint64 | Desc](r *ring, slots, src []T) int {
	idx, n := r.reserve(uint32(len(src)))
	for i := range n {
		slots[(idx+i)&r.mask] = src[i]
	}
	if n > 0 {
		r.submit()
	}
	return int(n)
}

// consume copies up to len(out) entries of the consumer ring r, whose
// entries are slots, into out, releases them to the producer, and returns
// how many it copied.
func consume[T uint64 | Desc](r *ring, slots, out []T) int {
	idx, n := r.peek(uint32(len(out)))
	for i := range n {
		out[i] = slots[(idx+i)&r.mask]
	}
	if n > 0 {
		r.release(n)
	}
	return int(n)
}

func (r *ring) needWakeup() bool { return r.flags.Load()&unix.XDP_RING_NEED_WAKEUP != 0 }

// FillQueue is the ring on which user space gives the kernel empty frames to
// receive into. User space produces, the kernel consumes.
type FillQueue struct {
	r     ring
	addrs []uint64
}

// Produce puts as many of addrs as fit on the ring, publishes them in one
// store, and returns how many it took (the first n of addrs).
func (q *FillQueue) Produce(addrs []uint64) int {
	return produce(&q.r, q.addrs, addrs)
}

// Free reports how many addresses Produce would accept now.
func (q *FillQueue) Free() int { return int(q.r.free()) }

// Size is the ring's capacity.
func (q *FillQueue) Size() int { return int(q.r.size) }

// NeedWakeup reports whether the kernel asks to be woken (poll or recvfrom)
// before it looks at the fill ring again (zero-copy drivers only).
func (q *FillQueue) NeedWakeup() bool { return q.r.needWakeup() }

// CompletionQueue is the ring on which the kernel returns frames it has
// finished transmitting. The kernel produces, user space consumes.
type CompletionQueue struct {
	r     ring
	addrs []uint64
}

// Consume copies up to len(out) completed addresses into out, releases them
// to the kernel, and returns how many it copied.
func (q *CompletionQueue) Consume(out []uint64) int {
	return consume(&q.r, q.addrs, out)
}

// Pending reports how many completions are waiting.
func (q *CompletionQueue) Pending() int { return int(q.r.pending()) }

// RXQueue is the ring on which the kernel delivers received packets. The
// kernel produces, user space consumes.
type RXQueue struct {
	r     ring
	descs []Desc
}

// Consume copies up to len(out) received descriptors into out, releases them
// to the kernel, and returns how many it copied. The frames they name belong
// to the caller from now on.
func (q *RXQueue) Consume(out []Desc) int {
	return consume(&q.r, q.descs, out)
}

// Pending reports how many received descriptors are waiting.
func (q *RXQueue) Pending() int { return int(q.r.pending()) }

// TXQueue is the ring on which user space hands the kernel packets to
// transmit. User space produces, the kernel consumes.
type TXQueue struct {
	r     ring
	descs []Desc
}

// Produce puts as many of descs as fit on the ring, publishes them, and
// returns how many it took (the first n). The frames of the taken
// descriptors belong to the kernel until they come back on the completion
// ring.
func (q *TXQueue) Produce(descs []Desc) int {
	return produce(&q.r, q.descs, descs)
}

// Free reports how many descriptors Produce would accept now.
func (q *TXQueue) Free() int { return int(q.r.free()) }

// Size is the ring's capacity.
func (q *TXQueue) Size() int { return int(q.r.size) }

// NeedWakeup reports whether the kernel asks for a sendto before it
// transmits what is on the ring (always so in copy mode).
func (q *TXQueue) NeedWakeup() bool { return q.r.needWakeup() }
