package loader

import (
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
)

// NumWorkerErrors is the length of each SA's error array: crypto/esp's reasons at their own values
// (0..15), the worker's own from 16 (WorkerErrPolicy, …), room to grow.
const NumWorkerErrors = int(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_MAX)

// The worker's own error reasons (beside crypto/esp.Reason's values).
const (
	WorkerErrPolicy  = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_POLICY)   // post-decryption policy check failed
	WorkerErrNoNeigh = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_NO_NEIGH) // next hop unresolved
	WorkerErrTXFull  = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_TX_FULL)  // no TX room or frame
	WorkerErrPMTU    = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_PMTU)     // too big: ICMP sent
)

var workerErrorNames = [NumWorkerErrors]string{
	"replay", "icv", "bad_padding", "bad_next_header", "truncated", "seq_exhausted", "wrong_spi",
	"not_esp", "bad_header", "fragment", "no_room", "too_big", "dummy", "ecn", "wiped", "seq_unreserved",
	"policy_mismatch", "no_neigh", "tx_full", "pmtu",
}

// WorkerErrorName is the stable name of a worker error reason ("" for unused slots): crypto/esp's
// Reason.String for 0..15 (a test keeps them equal).
func WorkerErrorName(r uint8) string {
	if int(r) < NumWorkerErrors {
		return workerErrorNames[r]
	}
	return ""
}

// WorkerStats is the workers' per-SA counters: the worker_stats map (an mmap-able BPF array, so bpftool
// and other processes see the same numbers) mapped into this process. Workers add with atomic
// operations and no syscall; the control plane reads. Indexes are SA indexes; an index beyond the
// capacity is ignored by the adders and reads as zero.
type WorkerStats struct {
	mem []byte
	s   []bpf.CardXdpsecWorkerStats
}

// WorkerSAStats is one SA's worker counters.
type WorkerSAStats struct {
	Packets, Bytes uint64
	Errors         [NumWorkerErrors]uint64 // indexed by crypto/esp.Reason
}

func newWorkerStats(m *ebpf.Map) (*WorkerStats, error) {
	mem, s, err := mmapArray[bpf.CardXdpsecWorkerStats](m)
	if err != nil {
		return nil, err
	}
	return &WorkerStats{mem: mem, s: s}, nil
}

func (w *WorkerStats) close() error {
	if w.mem == nil {
		return nil
	}
	w.s = nil
	m := w.mem
	w.mem = nil
	return unix.Munmap(m)
}

// WorkerStats returns the view of the workers' counters; it stays valid until Close.
func (c *Card) WorkerStats() *WorkerStats { return c.ws }

// Add counts packets and bytes the worker completed for SA sa.
func (w *WorkerStats) Add(sa uint32, packets, bytes uint64) {
	if int(sa) < len(w.s) {
		e := &w.s[sa]
		atomic.AddUint64(&e.Packets, packets)
		atomic.AddUint64(&e.Bytes, bytes)
	}
}

// AddError counts n packets of SA sa refused for reason (a crypto/esp.Reason value).
func (w *WorkerStats) AddError(sa uint32, reason uint8, n uint64) {
	if int(sa) < len(w.s) && int(reason) < NumWorkerErrors {
		atomic.AddUint64(&w.s[sa].Errors[reason], n)
	}
}

// Read returns SA sa's counters (each value read atomically).
func (w *WorkerStats) Read(sa uint32) WorkerSAStats {
	var out WorkerSAStats
	if int(sa) >= len(w.s) {
		return out
	}
	e := &w.s[sa]
	out.Packets = atomic.LoadUint64(&e.Packets)
	out.Bytes = atomic.LoadUint64(&e.Bytes)
	for i := range out.Errors {
		out.Errors[i] = atomic.LoadUint64(&e.Errors[i])
	}
	return out
}

// Len is the number of SA slots.
func (w *WorkerStats) Len() int { return len(w.s) }

func (w *WorkerStats) reset(sa uint32) {
	if int(sa) >= len(w.s) {
		return
	}
	e := &w.s[sa]
	atomic.StoreUint64(&e.Packets, 0)
	atomic.StoreUint64(&e.Bytes, 0)
	for i := range e.Errors {
		atomic.StoreUint64(&e.Errors[i], 0)
	}
}
