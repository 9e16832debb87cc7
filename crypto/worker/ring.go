//go:build linux

package worker

import (
	"time"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// The ring loop's pieces: completions back to the pool, the fill rings topped up, one RX batch per
// side handed to the directions, the TX batches put on the rings, and at shutdown every frame back.

// reap returns frames the kernel finished transmitting to the pool.
func (w *Worker) reap(side int) {
	s := w.socks[side]
	for w.txOut[side] > 0 {
		n := s.Completion.Consume(w.addrs)
		if n == 0 {
			return
		}
		w.txOut[side] -= n
		w.stats.Completed.Add(uint64(n))
		for _, a := range w.addrs[:n] {
			w.free(a)
		}
	}
}

// refill tops up a fill ring from the pool.
func (w *Worker) refill(side int) error {
	s := w.socks[side]
	free := s.Fill.Free()
	for free > 0 && w.pool.Len() > 0 {
		n := w.pool.GetN(w.addrs[:min(free, len(w.addrs))])
		p := s.Fill.Produce(w.addrs[:n])
		for _, a := range w.addrs[p:n] {
			w.free(a)
		}
		w.fillOut[side] += p
		free -= p
		if p < n {
			break
		}
	}
	if did, err := s.WakeRX(); err != nil {
		return err
	} else if did {
		w.stats.Wakeups.Add(1)
	}
	return nil
}

// receive processes one batch from a side's RX ring.
func (w *Worker) receive(side int) int {
	n := w.socks[side].RX.Consume(w.rx)
	if n == 0 {
		return 0
	}
	w.fillOut[side] -= n
	w.stats.RXPackets.Add(uint64(n))
	w.touch(w.rx[:n])
	for _, d := range w.rx[:n] {
		if d.Options&xsk.PktContd != 0 || len(w.chain[side]) > 0 || w.chainOver[side] {
			if w.link(side, d) {
				w.handleChain(side)
			}
			continue
		}
		if side == sideProtected {
			w.handleOut(d)
		} else {
			w.handleIn(d)
		}
	}
	return n
}

// touch loads the first bytes of every received frame (the card's metadata, the headers) before
// any is processed. The kernel has just written them on another CPU, so each first load misses the
// cache; issued back to back the misses overlap, instead of stalling each packet's work in turn.
func (w *Worker) touch(ds []xsk.Desc) {
	var t byte
	for _, d := range ds {
		frame, off := w.frameOf(d)
		if off >= bpf.MetaSize && off+ethLen+20 <= len(frame) {
			t ^= frame[off-bpf.MetaSize] ^ frame[off+ethLen+20-1]
		}
	}
	w.touched ^= t
}

// queue adds a frame of SA sa to the batch bound for a side.
func (w *Worker) queue(side int, sa uint32, d xsk.Desc) {
	if len(w.tx[side]) == cap(w.tx[side]) {
		w.stats.TXRingFull.Add(1)
		w.saStats.AddError(sa, ReasonTXFull, 1)
		w.free(d.Addr)
		return
	}
	w.tx[side] = append(w.tx[side], d)
	w.txSA[side] = append(w.txSA[side], sa)
}

// transmit puts a side's batch on its TX ring, drops what does not fit, and
// kicks the kernel when it asks for it.
func (w *Worker) transmit(side int) error {
	s := w.socks[side]
	q := w.tx[side]
	p := 0
	if len(q) > 0 {
		p = s.TX.Produce(q)
		for i, d := range q[p:] {
			w.stats.TXRingFull.Add(1)
			w.saStats.AddError(w.txSA[side][p+i], ReasonTXFull, 1)
			w.free(d.Addr)
		}
		w.txOut[side] += p
		w.stats.TXPackets.Add(uint64(p))
		w.tx[side] = q[:0]
		w.txSA[side] = w.txSA[side][:0]
	}
	// Kick for new descriptors, and again while the kernel left some on the
	// ring (one sendto transmits a bounded number in copy mode).
	if p > 0 || (w.txOut[side] > 0 && s.TX.Free() < s.TX.Size()) {
		did, err := s.Kick()
		if did {
			w.stats.Kicks.Add(1)
		}
		return err
	}
	return nil
}

// free returns a frame to the pool; a frame returned twice is a bug that
// must not corrupt the pool, so it is counted instead.
func (w *Worker) free(addr uint64) {
	if !w.pool.Put(addr) {
		w.stats.FrameErrors.Add(1)
	}
}

// drain returns held frames to the pool at shutdown: unprocessed RX frames,
// unsent batches, and (waiting up to timeout) TX frames in the kernel.
func (w *Worker) drain(timeout time.Duration) {
	for side, s := range w.socks {
		for {
			n := s.RX.Consume(w.rx)
			if n == 0 {
				break
			}
			w.fillOut[side] -= n
			for _, d := range w.rx[:n] {
				w.free(d.Addr)
			}
		}
		for _, d := range w.tx[side] {
			w.free(d.Addr)
		}
		w.freeChain(w.chain[side])
		w.chain[side] = w.chain[side][:0]
		w.chainOver[side] = false
		w.tx[side] = w.tx[side][:0]
		w.txSA[side] = w.txSA[side][:0]
	}
	deadline := time.Now().Add(timeout)
	for {
		busy := false
		for side, s := range w.socks {
			w.reap(side)
			if w.txOut[side] > 0 {
				busy = true
				if _, err := s.Kick(); err != nil {
					return
				}
			}
		}
		if !busy || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// txFrame reserves room for one more frame of SA sa bound for side: a slot in
// the side's TX batch and a fresh frame from the pool, for a packet the
// worker makes (a fragment, a segment). When the batch or the pool runs dry
// it flushes the batch to the ring first, since one packet can make dozens
// of frames. On failure it has counted the drop.
func (w *Worker) txFrame(side int, sa uint32) (addr uint64, ok bool) {
	if len(w.tx[side]) == cap(w.tx[side]) {
		w.flush(side)
		if len(w.tx[side]) == cap(w.tx[side]) {
			w.stats.TXRingFull.Add(1)
			w.saStats.AddError(sa, ReasonTXFull, 1)
			return 0, false
		}
	}
	if addr, ok = w.pool.Get(); !ok {
		w.flush(side)
		if addr, ok = w.pool.Get(); !ok {
			w.stats.NoFrame.Add(1)
			w.saStats.AddError(sa, ReasonTXFull, 1)
			return 0, false
		}
	}
	return addr, true
}

// flush puts what is queued for a side on its TX ring mid-batch (a
// super-packet makes dozens of frames), kicks, and reaps completions, so
// that the batch and the pool have room again. A kick error comes back
// from the next Step's transmit.
func (w *Worker) flush(side int) {
	_ = w.transmit(side)
	w.reap(side)
}
