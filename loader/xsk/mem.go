//go:build linux

package xsk

import (
	"fmt"
	"sync/atomic"
)

// MemKernel plays the kernel's half of a socket whose rings live in ordinary
// Go memory, so that code built on Socket (the crypto workers) can be tested
// without root, without a network, and deterministically. It takes frames
// from the fill ring to "receive" packets into, and moves TX descriptors to
// the completion ring. It is owned by the test goroutine, which must not use
// it while the socket's owner is inside a ring call.
type MemKernel struct {
	umem                 *UMEM
	fill, comp, rx, tx   ring // the kernel's views: it consumes fill and TX, produces RX and completion
	fillAddrs, compAddrs []uint64
	rxDescs, txDescs     []Desc
	fillFlags, txFlags   *atomic.Uint32

	// Kicks counts the sendto calls the socket's owner made.
	Kicks int
}

type memRingHeader struct {
	prod, cons, flags atomic.Uint32
}

// NewMemSocket returns a socket on u whose rings are in Go memory, and the
// kernel double that serves them. Ring sizes default as for Open.
func (u *UMEM) NewMemSocket(cfg SocketConfig) (*Socket, *MemKernel, error) {
	var sizes [4]uint32
	var err error
	for i, v := range []uint32{cfg.FillSize, cfg.CompletionSize, cfg.RXSize, cfg.TXSize} {
		if sizes[i], err = ringSize(v, "mem"); err != nil {
			return nil, nil, fmt.Errorf("create mem socket: %w", err)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, nil, ErrClosed
	}
	u.sockets++
	s := &Socket{fd: -1, umem: u, mode: ModeCopy, ifindex: cfg.Ifindex, queue: cfg.QueueID, needWakeup: !cfg.NoNeedWakeup, sg: cfg.SG}
	k := &MemKernel{umem: u}
	s.mem = k
	hdr := make([]memRingHeader, 4)
	s.Fill.addrs = make([]uint64, sizes[0])
	s.Completion.addrs = make([]uint64, sizes[1])
	s.RX.descs = make([]Desc, sizes[2])
	s.TX.descs = make([]Desc, sizes[3])
	for i, r := range []*ring{&s.Fill.r, &s.Completion.r, &s.RX.r, &s.TX.r} {
		r.init(&hdr[i].prod, &hdr[i].cons, &hdr[i].flags, sizes[i])
	}
	k.fill.init(&hdr[0].prod, &hdr[0].cons, &hdr[0].flags, sizes[0])
	k.comp.init(&hdr[1].prod, &hdr[1].cons, &hdr[1].flags, sizes[1])
	k.rx.init(&hdr[2].prod, &hdr[2].cons, &hdr[2].flags, sizes[2])
	k.tx.init(&hdr[3].prod, &hdr[3].cons, &hdr[3].flags, sizes[3])
	k.fillAddrs, k.compAddrs = s.Fill.addrs, s.Completion.addrs
	k.rxDescs, k.txDescs = s.RX.descs, s.TX.descs
	k.fillFlags, k.txFlags = &hdr[0].flags, &hdr[3].flags
	return s, k, nil
}

// SetNeedWakeup sets or clears the need-wakeup flag of the fill and TX rings.
func (k *MemKernel) SetNeedWakeup(fill, tx bool) {
	set := func(f *atomic.Uint32, on bool) {
		if on {
			f.Store(1)
		} else {
			f.Store(0)
		}
	}
	set(k.fillFlags, fill)
	set(k.txFlags, tx)
}

// Receive delivers one packet the way the kernel does in copy mode: it takes
// a frame from the fill ring, copies meta and pkt so that pkt starts at the
// frame's RXOffset with meta right before it, and puts the descriptor on
// the RX ring. It reports false when the fill ring is empty or the RX ring
// full (the kernel would drop the packet).
func (k *MemKernel) Receive(meta, pkt []byte) bool {
	off := int(k.umem.RXOffset())
	if len(meta) > off || off+len(pkt) > int(k.umem.frameSize) || k.rx.free() == 0 {
		return false
	}
	idx, n := k.fill.peek(1)
	if n == 0 {
		return false
	}
	base := k.umem.FrameBase(k.fillAddrs[idx&k.fill.mask])
	k.fill.release(1)
	frame := k.umem.Frame(base)
	copy(frame[off-len(meta):], meta)
	copy(frame[off:], pkt)
	ridx, _ := k.rx.reserve(1)
	k.rxDescs[ridx&k.rx.mask] = Desc{Addr: base + uint64(off), Len: uint32(len(pkt))}
	k.rx.submit()
	return true
}

// ReceiveMulti delivers one packet the way the kernel does for a
// multi-buffer (SG) socket in copy mode: pkt is cut into pieces of
// FrameSize-RXOffset bytes, each copied to RXOffset of a frame from the fill
// ring (meta before the first only), and put on the RX ring as one chain of
// descriptors, all but the last flagged PktContd. It delivers all or
// nothing: false when the fill ring has too few frames or the RX ring too
// little room (the kernel drops the packet then, too).
func (k *MemKernel) ReceiveMulti(meta, pkt []byte) bool {
	off := int(k.umem.RXOffset())
	room := int(k.umem.frameSize) - off
	if len(meta) > off || room <= 0 || len(pkt) == 0 {
		return false
	}
	need := uint32((len(pkt) + room - 1) / room)
	if k.rx.free() < need {
		return false
	}
	idx, n := k.fill.peek(need)
	if n < need {
		return false
	}
	ridx, _ := k.rx.reserve(need)
	for i := range need {
		base := k.umem.FrameBase(k.fillAddrs[(idx+i)&k.fill.mask])
		frame := k.umem.Frame(base)
		if i == 0 {
			copy(frame[off-len(meta):], meta)
		}
		piece := pkt[min(len(pkt), int(i)*room):min(len(pkt), int(i+1)*room)]
		copy(frame[off:], piece)
		var opts uint32
		if i < need-1 {
			opts = PktContd
		}
		k.rxDescs[(ridx+i)&k.rx.mask] = Desc{Addr: base + uint64(off), Len: uint32(len(piece)), Options: opts}
	}
	k.fill.release(need)
	k.rx.submit()
	return true
}

// Transmit consumes up to max TX descriptors (all when max <= 0), calls fn
// with each descriptor and its packet bytes (valid only during the call),
// and returns their addresses on the completion ring. It stops early when
// the completion ring is full and returns how many it moved.
func (k *MemKernel) Transmit(max int, fn func(d Desc, pkt []byte)) int {
	moved := 0
	for max <= 0 || moved < max {
		idx, n := k.tx.peek(1)
		if n == 0 {
			break
		}
		cidx, cn := k.comp.reserve(1)
		if cn == 0 {
			break
		}
		d := k.txDescs[idx&k.tx.mask]
		if fn != nil {
			fn(d, k.umem.Bytes(d.Addr, d.Len))
		}
		k.tx.release(1)
		k.compAddrs[cidx&k.comp.mask] = d.Addr
		k.comp.submit()
		moved++
	}
	return moved
}

// FillPending is how many frames sit on the fill ring for the kernel.
func (k *MemKernel) FillPending() int { return int(k.fill.pending()) }

// TXPending is how many descriptors wait on the TX ring.
func (k *MemKernel) TXPending() int { return int(k.tx.pending()) }

// FillAddrs returns the addresses on the fill ring not yet taken (for
// accounting checks).
func (k *MemKernel) FillAddrs() []uint64 {
	n := k.fill.pending()
	out := make([]uint64, 0, n)
	for i := range n {
		out = append(out, k.fillAddrs[(k.fill.cachedCons+i)&k.fill.mask])
	}
	return out
}
