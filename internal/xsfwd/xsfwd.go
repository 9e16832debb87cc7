//go:build linux

// Package xsfwd is a bare AF_XDP forwarder: the pipe xdpsec's gateways use — an XDP program that hands
// every IP packet to the AF_XDP socket of its receive queue, one goroutine per queue owning a socket
// on each interface over one shared UMEM, frames transmitted in place on the other interface — with
// no card classification and no crypto. It only swaps the Ethernet addresses and decrements the
// TTL, as a router would. `xdpsec bench` runs it as the ceiling of what the pipe carries on a given
// machine, so that xdpsec's figures can be read as a fraction of it.
//
// Ring sizes, batch size, UMEM and the loop (reap completions, refill, one RX batch per side, TX,
// kick when the ring asks, poll when idle) follow crypto/worker and control/daemon, so that the
// difference between the two is the card's and the crypto's work.
package xsfwd

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"

	"github.com/xdpsec/xdpsec/bpf/bench"
	"github.com/xdpsec/xdpsec/internal/nsenter"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// Side is one interface of the forwarder and the Ethernet addresses of what it transmits there.
type Side struct {
	Ifindex int
	// Src is the interface's own address, Dst the next hop's (the one neighbour on that link).
	Src, Dst net.HardwareAddr
}

// Config describes a forwarder between two interfaces of one namespace.
type Config struct {
	LAN, WAN Side
	// Queues is the number of receive queues served (one goroutine each); default 1.
	Queues int
	// UMEMFrames and FrameSize size the shared UMEM (defaults 16384 and 4096, as the daemon's).
	UMEMFrames, FrameSize uint32
	// BatchSize is the number of descriptors per ring operation (default 64, as crypto/worker).
	BatchSize int
	// Generic attaches in generic (skb) mode instead of native.
	Generic bool
}

// Stats are the forwarder's counters, summed over its queues.
type Stats struct {
	Forwarded [2]uint64 // packets LAN→WAN, WAN→LAN
	Bytes     [2]uint64 // their IP bytes
	Dropped   uint64    // no room on a TX ring
}

// Forwarder is a running forwarder.
type Forwarder struct {
	objs  []*bench.BenchObjects
	links []link.Link
	umem  *xsk.UMEM
	socks []*xsk.Socket
	fwds  []*queue
	wg    sync.WaitGroup
	errs  chan error
	once  sync.Once
	err   error
}

// Start loads the redirect program once per interface, opens the sockets of every queue on one
// UMEM, attaches both programs (native XDP unless cfg.Generic) and starts one goroutine per queue.
// It runs its setup inside ns (0: the caller's namespace). On failure it undoes what it did.
func Start(ns netns.NsHandle, cfg Config) (_ *Forwarder, err error) {
	if cfg.Queues <= 0 {
		cfg.Queues = 1
	}
	if cfg.UMEMFrames == 0 {
		cfg.UMEMFrames = 16384
	}
	if cfg.FrameSize == 0 {
		cfg.FrameSize = 4096
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 64
	}
	for _, s := range []Side{cfg.LAN, cfg.WAN} {
		if s.Ifindex <= 0 || len(s.Src) != 6 || len(s.Dst) != 6 {
			return nil, fmt.Errorf("start forwarder: each side needs an interface and two MAC addresses")
		}
	}
	f := &Forwarder{errs: make(chan error, cfg.Queues)}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	err = nsenter.Run(ns, func() error { return f.setup(cfg) })
	if err != nil {
		return nil, fmt.Errorf("start forwarder: %w", err)
	}
	for _, q := range f.fwds {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := q.run(); err != nil {
				f.errs <- err
			}
		}()
	}
	return f, nil
}

func (f *Forwarder) setup(cfg Config) error {
	sides := [2]Side{cfg.LAN, cfg.WAN}
	for range sides {
		var o bench.BenchObjects
		if err := bench.LoadBenchObjects(&o, nil); err != nil {
			return fmt.Errorf("load redirect program: %w", err)
		}
		f.objs = append(f.objs, &o)
	}
	var err error
	if f.umem, err = xsk.NewUMEM(xsk.UMEMConfig{FrameCount: cfg.UMEMFrames, FrameSize: cfg.FrameSize}); err != nil {
		return err
	}
	pools, err := f.umem.Pools(cfg.Queues)
	if err != nil {
		return err
	}
	ring := uint32(1) // as control/daemon: fill + TX of both sockets fit a queue's share
	for ring*2*4 <= uint32(pools[0].Size()) && ring < 4096 {
		ring *= 2
	}
	for q := range cfg.Queues {
		var pair [2]*xsk.Socket
		for i, s := range sides {
			sock, err := f.umem.Open(xsk.SocketConfig{Ifindex: s.Ifindex, QueueID: q,
				FillSize: ring, CompletionSize: ring, RXSize: ring, TXSize: ring})
			if err != nil {
				return fmt.Errorf("open socket on ifindex %d queue %d: %w", s.Ifindex, q, err)
			}
			f.socks = append(f.socks, sock)
			pair[i] = sock
			if err := f.objs[i].FwdXsks.Put(uint32(q), uint32(sock.FD())); err != nil {
				return fmt.Errorf("register socket: %w", err)
			}
		}
		qf, err := newQueue(f.umem, pair, pools[q], sides, cfg.BatchSize)
		if err != nil {
			return err
		}
		f.fwds = append(f.fwds, qf)
	}
	flags := link.XDPDriverMode
	if cfg.Generic {
		flags = link.XDPGenericMode
	}
	for i, s := range sides {
		l, err := link.AttachXDP(link.XDPOptions{Program: f.objs[i].BenchFwd, Interface: s.Ifindex, Flags: flags})
		if err != nil {
			return fmt.Errorf("attach to ifindex %d: %w", s.Ifindex, err)
		}
		f.links = append(f.links, l)
	}
	return nil
}

// Stats sums the counters of every queue.
func (f *Forwarder) Stats() Stats {
	var s Stats
	for _, q := range f.fwds {
		s.Forwarded[0] += q.fwd[0].Load()
		s.Forwarded[1] += q.fwd[1].Load()
		s.Bytes[0] += q.bytes[0].Load()
		s.Bytes[1] += q.bytes[1].Load()
		s.Dropped += q.drops.Load()
	}
	return s
}

// Err returns the error of a queue's goroutine that stopped, or nil.
func (f *Forwarder) Err() error {
	select {
	case err := <-f.errs:
		return err
	default:
		return nil
	}
}

// Close detaches the programs, stops the goroutines and closes sockets, UMEM and maps. It is
// idempotent.
func (f *Forwarder) Close() error {
	f.once.Do(func() {
		var errs []error
		for _, l := range f.links {
			errs = append(errs, l.Close())
		}
		for _, q := range f.fwds {
			q.stopping.Store(true)
			_ = q.stop.Stop()
		}
		f.wg.Wait()
		for _, q := range f.fwds {
			_ = q.stop.Close()
		}
		for _, s := range f.socks {
			errs = append(errs, s.Close())
		}
		if f.umem != nil {
			errs = append(errs, f.umem.Close())
		}
		for _, o := range f.objs {
			errs = append(errs, o.Close())
		}
		f.err = errors.Join(errs...)
	})
	return f.err
}
