//go:build linux

package worker

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/loader/xsk"
)

// DefaultBatchSize is how many descriptors a worker takes off a ring at once.
const DefaultBatchSize = 64

// Config describes one worker: the pair of sockets on one receive queue of
// the protected-side and the wire-side interface, and what it needs to
// process packets.
type Config struct {
	// Protected and Wire are the sockets on the same queue index of the two
	// interfaces, opened on one UMEM so frames cross without a copy.
	Protected, Wire *xsk.Socket
	// Pool is this worker's share of the UMEM's frames (xsk.UMEM.Pools).
	Pool *xsk.FramePool
	// SAs is the SA table shared by all workers.
	SAs *SATable
	// SAStats receives per-SA counters: the card's loader.WorkerStats in
	// the daemon; nil allocates a private StatsTable.
	SAStats SACounters
	// Resolver gives inbound packets their next hop (required).
	Resolver NextHopResolver
	// PMTU handles too-big inner packets; nil drops and counts them.
	PMTU PMTU
	// ProtectedIfindex and WireIfindex, when non-zero, are checked against
	// the next hops: a packet that should leave elsewhere is dropped and
	// counted (the worker can only transmit on its two sockets). They
	// default to the sockets' interfaces.
	ProtectedIfindex, WireIfindex int

	// BatchSize is the number of descriptors per ring operation (default
	// DefaultBatchSize, at most 256).
	BatchSize int
	// BusyPoll makes the worker spin (non-blocking poll) instead of sleeping
	// when its rings are empty: lower latency, one core burnt. Open the
	// sockets with xsk.SocketConfig.BusyPoll as well.
	BusyPoll bool
	// LockOSThread locks the worker's goroutine to an OS thread.
	LockOSThread bool
	// CPU, when >= 0, pins that thread to the CPU (implies LockOSThread).
	// Use -1 for no pinning.
	CPU int
	// NoChecksumCompletion turns off the completion of CHECKSUM_PARTIAL
	// TCP/UDP checksums in outbound packets (see crypto/internal/packet/csum.go): with it set,
	// hosts sending through a veth into the protected side must turn their
	// transmit checksum offload off. The completion is on by default: it
	// touches only packets whose checksum field holds exactly the
	// pseudo-header sum and whose checksum does not verify, which no
	// correct sender emits otherwise.
	NoChecksumCompletion bool
	// ProtectedMTU is the protected-side interface's MTU (default 1500). A
	// TCP or UDP packet longer than it cannot have been sent as one packet
	// on that link: it is a host's GSO super-packet (small ones fit one
	// frame, larger ones come as descriptor chains with multi-buffer
	// sockets), which the worker segments (TCP) or drops (UDP) instead of
	// answering with an ICMP error the host would ignore (segment.go).
	ProtectedMTU int
	// MSSClamp, when non-zero, lowers the MSS option of outbound TCP SYNs
	// to at most this value, or with MSSClampAuto to the SA's inner MTU
	// minus 40 (IPv4) or 60 (IPv6) bytes (crypto/internal/packet/mss.go). Off by default. A
	// fixed value also caps the payload of the segments cut from GSO
	// super-packets (segment.go).
	MSSClamp int
}

// Worker runs the ESP data path of one receive queue. Its rings, its frame
// pool and its batches are used by its own goroutine only (Run); Stop,
// Stats and the tables may be used from any goroutine.
type Worker struct {
	cfg      Config
	umem     *xsk.UMEM
	socks    [2]*xsk.Socket // sideProtected, sideWire
	pool     *xsk.FramePool
	sas      *SATable
	saStats  SACounters
	resolver NextHopResolver
	pmtu     PMTU

	protIfindex, wireIfindex int
	completeCsum             bool
	protMTU                  int
	one                      [1]xsk.Desc // a single frame handed to split as a chain of one

	rx      []xsk.Desc
	tx      [2][]xsk.Desc
	txSA    [2][]uint32 // SA index of each queued frame, to count TX drops per SA
	addrs   []uint64
	fillOut [2]int // frames on each fill ring (given minus received)
	// chain holds the descriptors of a multi-buffer packet received so far
	// (xsk.PktContd), per side; a chain may span RX batches. chainOver
	// marks one being dropped for length.
	chain     [2][]xsk.Desc
	chainOver [2]bool
	txOut     [2]int // frames on each TX ring or in the kernel (queued minus completed)
	touched   byte   // what touch read, kept so that its loads are not optimised away

	stopper  *xsk.Stopper
	poller   *xsk.Poller
	stopping atomic.Bool
	stopMu   sync.Mutex // orders Stop against Close, so Stop never writes to a closed (reused) fd
	closed   bool
	stats    Stats
}

// ErrConfig is wrapped by New for a configuration it refuses.
var ErrConfig = errors.New("invalid worker configuration")

// New checks cfg and prepares a worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	if cfg.Protected == nil || cfg.Wire == nil || cfg.Pool == nil || cfg.SAs == nil || cfg.Resolver == nil {
		return nil, fmt.Errorf("create worker: %w: sockets, pool, SA table and resolver are required", ErrConfig)
	}
	if cfg.Protected.UMEM() != cfg.Wire.UMEM() {
		return nil, fmt.Errorf("create worker: %w: the two sockets must share one umem", ErrConfig)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.MSSClamp < MSSClampAuto || cfg.MSSClamp > 0xffff {
		return nil, fmt.Errorf("create worker: %w: mss clamp %d", ErrConfig, cfg.MSSClamp)
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > 256 {
		return nil, fmt.Errorf("create worker: %w: batch size %d outside 1-256", ErrConfig, cfg.BatchSize)
	}
	// Frames on the fill rings and in flight on the TX rings come out of the
	// same pool: if the rings could hold more than the pool, RX would starve
	// TX (or the other way round).
	if need := cfg.Protected.Fill.Size() + cfg.Wire.Fill.Size() + cfg.Protected.TX.Size() + cfg.Wire.TX.Size(); need > cfg.Pool.Size() {
		return nil, fmt.Errorf("create worker: %w: fill and tx rings hold %d descriptors, more than the pool's %d frames",
			ErrConfig, need, cfg.Pool.Size())
	}
	if cfg.SAStats == nil {
		cfg.SAStats = NewStatsTable(cfg.SAs.Capacity())
	}
	if cfg.ProtectedIfindex == 0 {
		cfg.ProtectedIfindex = cfg.Protected.Ifindex()
	}
	if cfg.WireIfindex == 0 {
		cfg.WireIfindex = cfg.Wire.Ifindex()
	}
	stop, err := xsk.NewStopper()
	if err != nil {
		return nil, fmt.Errorf("create worker: %w", err)
	}
	w := &Worker{
		cfg:          cfg,
		umem:         cfg.Protected.UMEM(),
		socks:        [2]*xsk.Socket{cfg.Protected, cfg.Wire},
		pool:         cfg.Pool,
		sas:          cfg.SAs,
		saStats:      cfg.SAStats,
		resolver:     cfg.Resolver,
		pmtu:         cfg.PMTU,
		protIfindex:  cfg.ProtectedIfindex,
		wireIfindex:  cfg.WireIfindex,
		completeCsum: !cfg.NoChecksumCompletion,
		protMTU:      cmp.Or(cfg.ProtectedMTU, 1500),
		rx:           make([]xsk.Desc, cfg.BatchSize),
		addrs:        make([]uint64, max(cfg.BatchSize, 256)),
		chain:        [2][]xsk.Desc{make([]xsk.Desc, 0, maxChain), make([]xsk.Desc, 0, maxChain)},
		stopper:      stop,
		poller:       xsk.NewPoller(stop, cfg.Protected, cfg.Wire),
	}
	// Room for a whole batch of both directions plus the fragments of a
	// few packets.
	for i := range w.tx {
		w.tx[i] = make([]xsk.Desc, 0, 2*cfg.BatchSize+16)
		w.txSA[i] = make([]uint32, 0, 2*cfg.BatchSize+16)
	}
	return w, nil
}

// Stats returns the worker's counters.
func (w *Worker) Stats() *Stats { return &w.stats }

// Stop asks Run to return; safe from any goroutine, idempotent, and
// harmless after Close.
func (w *Worker) Stop() {
	w.stopping.Store(true)
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	if !w.closed {
		_ = w.stopper.Stop()
	}
}

// Close releases the stop eventfd. Call it after Run returned; it is
// idempotent.
func (w *Worker) Close() error {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.stopper.Close()
}

// Run moves packets until Stop: it drains both RX rings batch by batch
// until they are empty, then sleeps in poll(2) on both sockets and the stop
// eventfd (or spins, with BusyPoll). Before returning it gives back every
// frame it holds: received frames not yet processed return to the pool, and
// it waits up to a second for the kernel to complete what it transmitted.
// Frames on the fill rings stay there (the kernel owns them until the
// sockets close). Run returns an error only when the kernel refuses a
// sendto/poll for good (the interface went away, …).
func (w *Worker) Run() error {
	if w.cfg.LockOSThread || w.cfg.CPU >= 0 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	if w.cfg.CPU >= 0 {
		var set unix.CPUSet
		set.Set(w.cfg.CPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin worker to cpu %d: %w", w.cfg.CPU, err)
		}
	}
	var err error
	for !w.stopping.Load() {
		var n int
		if n, err = w.Step(); err != nil {
			break
		}
		if n > 0 {
			continue
		}
		if w.cfg.BusyPoll {
			if _, err = w.poller.Wait(0); err != nil {
				break
			}
			continue
		}
		// Completions do not wake poll(2): with frames in flight, wake
		// soon to reap them.
		timeout := -1
		for i := range w.socks {
			if w.txOut[i] > 0 {
				timeout = 1
			}
		}
		w.stats.Polls.Add(1)
		if _, err = w.poller.Wait(timeout); err != nil {
			break
		}
	}
	w.drain(time.Second)
	return err
}

// Step does one round: reap completions, refill the fill rings, process at
// most one batch from each RX ring, transmit. It returns how many packets it
// took off the RX rings. Run calls it in a loop; tests call it directly.
func (w *Worker) Step() (int, error) {
	for i := range w.socks {
		w.reap(i)
	}
	for i := range w.socks {
		if err := w.refill(i); err != nil {
			return 0, err
		}
	}
	n := w.receive(sideProtected)
	n += w.receive(sideWire)
	for i := range w.socks {
		if err := w.transmit(i); err != nil {
			return n, err
		}
	}
	return n, nil
}

// FrameAccount says where a worker's frames are.
type FrameAccount struct {
	Total  int // frames in the worker's pool when it was cut
	Free   int // in the pool
	OnFill int // on the fill rings (or received and not yet taken off the RX rings)
	InTX   int // queued for transmission and not completed
	Held   int // received as the first part of a multi-buffer packet whose rest has not come yet
}

// Balanced reports whether every frame is free or on a fill ring, as it
// must be after Run returned.
func (a FrameAccount) Balanced() bool {
	return a.InTX == 0 && a.Held == 0 && a.Free+a.OnFill == a.Total
}

// Frames reports where the worker's frames are. Call it from the goroutine
// that runs the worker, or after Run returned.
func (w *Worker) Frames() FrameAccount {
	return FrameAccount{
		Total:  w.pool.Size(),
		Free:   w.pool.Len(),
		OnFill: w.fillOut[0] + w.fillOut[1],
		InTX:   w.txOut[0] + w.txOut[1] + len(w.tx[0]) + len(w.tx[1]),
		Held:   len(w.chain[0]) + len(w.chain[1]),
	}
}

// SocketStatistics returns the kernel's drop counters (XDP_STATISTICS) of
// the protected-side and the wire-side socket: packets lost to a full RX
// ring or an empty fill ring never reach the worker's own counters. Safe
// from any goroutine while the sockets are open.
func (w *Worker) SocketStatistics() (protected, wire xsk.Statistics, err error) {
	if protected, err = w.socks[sideProtected].Statistics(); err != nil {
		return protected, wire, err
	}
	wire, err = w.socks[sideWire].Statistics()
	return protected, wire, err
}
