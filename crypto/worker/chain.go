//go:build linux

package worker

import "github.com/xdpsec/xdpsec/loader/xsk"

// Multi-buffer receive: the descriptors of one packet, possibly across RX batches, become one chain
// (see segment.go for what the outbound side does with it).

// maxChain bounds the descriptors of one packet: a 64 KiB IP packet over
// 2 KiB frames (1,792 bytes of room) takes 37.
const maxChain = 64

// link adds d to the side's chain and reports whether the chain is a
// complete packet now. An over-long chain is dropped whole, counted once.
func (w *Worker) link(side int, d xsk.Desc) bool {
	c := w.chain[side]
	if len(c) == cap(c) || w.chainOver[side] {
		w.chainOver[side] = true
		w.free(d.Addr)
	} else {
		w.chain[side] = append(c, d)
	}
	if d.Options&xsk.PktContd != 0 {
		return false
	}
	if w.chainOver[side] {
		w.chainOver[side] = false
		w.stats.Chains.Add(1)
		w.stats.ChainDrops.Add(1)
		w.freeChain(w.chain[side])
		w.chain[side] = w.chain[side][:0]
		return false
	}
	return true
}

func (w *Worker) freeChain(c []xsk.Desc) {
	for _, d := range c {
		w.free(d.Addr)
	}
}

// handleChain processes the side's complete chain and empties it.
func (w *Worker) handleChain(side int) {
	c := w.chain[side]
	w.chain[side] = c[:0]
	if len(c) == 1 {
		// A chain of one is an ordinary packet.
		if side == sideProtected {
			w.handleOut(c[0])
		} else {
			w.handleIn(c[0])
		}
		return
	}
	w.stats.Chains.Add(1)
	if side != sideProtected {
		w.stats.ChainDrops.Add(1)
		w.freeChain(c)
		return
	}
	w.handleOutChain(c)
}

// chainReader copies a chain's bytes out in order.
type chainReader struct {
	w     *Worker
	descs []xsk.Desc
	i     int // current descriptor
	off   int // bytes of it already read
}

// read fills dst from the chain and returns how many bytes it copied.
func (r *chainReader) read(dst []byte) int {
	n := 0
	for n < len(dst) && r.i < len(r.descs) {
		d := r.descs[r.i]
		src := r.w.umem.Bytes(d.Addr, d.Len)[r.off:]
		k := copy(dst[n:], src)
		n += k
		r.off += k
		if r.off == int(d.Len) {
			r.i++
			r.off = 0
		}
	}
	return n
}
