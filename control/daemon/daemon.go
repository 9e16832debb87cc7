package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/manager"
	"github.com/xdpsec/xdpsec/control/seqstate"
	"github.com/xdpsec/xdpsec/crypto/pmtu"
	"github.com/xdpsec/xdpsec/crypto/worker"
	"github.com/xdpsec/xdpsec/internal/nsenter"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
	"github.com/xdpsec/xdpsec/loader/neigh"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// Options tune Start beyond the configuration.
type Options struct {
	// NetNS is the network namespace the interfaces live in (the testbed's gateways); 0 means the
	// caller's. Pins and the API socket stay in the caller's mount namespace, so bpftool on the
	// host sees the card's tables.
	NetNS netns.NsHandle
	// PinRoot overrides loader.DefaultPinRoot.
	PinRoot string
	// NoAPI runs without the unix-socket API (tests, the demo's in-process gateways).
	NoAPI bool
	// Socket overrides the configuration's API socket path.
	Socket string
	// Metrics overrides the configuration's daemon.metrics: host:port to serve Prometheus
	// metrics on, in the caller's network namespace.
	Metrics string
	// Log receives what was attached, in which mode, and shutdown. Default slog.Default().
	Log *slog.Logger
	// ICMPRate bounds the ICMP "too big" replies per second (default 1000, burst 100).
	ICMPRate int
	// SyncTimeout bounds the wait for the card to hold the configuration (default 10 s).
	SyncTimeout time.Duration
	// LeastPrivilege drops, once the gateway runs, every capability but RunningCapabilities from
	// every thread of the process and sets no_new_privs (privileges.go): for a process that is
	// this gateway alone (xdpsec run).
	LeastPrivilege bool
}

// Daemon is a running gateway: the card attached to both interfaces, one worker per receive
// queue on a shared UMEM, the neighbour cache, and the control plane that keeps the card's
// tables equal to the SAD/SPD.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	ns      netns.NsHandle
	card    *loader.Card
	umem    *xsk.UMEM
	socks   []*xsk.Socket
	workers []*worker.Worker
	wg      sync.WaitGroup
	werrs   chan error
	cache   *neigh.Cache
	pmtu    *pmtu.Responder
	drv     *driver
	mgr     *manager.Manager
	// state is the durable sequence state (cfg.StateDir); its Run goroutine ends with stopState.
	state     *seqstate.Store
	stopState func()
	local     *localAddrs // the gateway's own addresses, kept in the card
	running   bool        // Start completed: Close applies on_exit

	// What Start found and obtained, for logs and callers.
	Info Info

	stop      context.CancelFunc // ends the control plane's context
	closeOnce sync.Once
	closeErr  error
}

// Info is what the daemon attached and opened.
type Info struct {
	Instance        string
	Protected, Wire Iface
	Queues          int
	SocketMode      string // AF_XDP copy or zero-copy
	MultiBuffer     bool   // card loaded frags-aware, sockets bound with XDP_USE_SG
	PinDir          string
	StateDir        string // the durable sequence state
	WireMTU         int
	ProtectedMTU    int
	// MinReplayWindow is the smallest anti-replay window inbound SAs get (dataplane.min_replay_window;
	// auto: ReplayWindowFloor).
	MinReplayWindow uint32
	// Adopted: the card was pinned by an earlier run (left in guard state, or by a daemon that
	// was killed) and taken over: same links, new programs, its entries reconciled.
	Adopted bool
}

// Iface is one side of the gateway.
type Iface struct {
	Name    string
	Index   int
	Mode    loader.AttachMode
	Addrs   []netip.Addr
	RXQueue int
}

// ErrNoQueues means an interface reports no receive queue.
var ErrNoQueues = errors.New("interface has no receive queue")

// Start assembles and starts the gateway described by cfg. ctx bounds the start only: the gateway
// runs until Close. The card is loaded in guard state and the guard lifted only once the card holds
// the configuration and the workers run; a card an earlier run left pinned is adopted (same links,
// new programs) and reconciled under the guard. On any failure it undoes what it did: a card it
// created is detached and unpinned, an adopted one is left pinned in guard state, as it was found.
// cfg belongs to the daemon from now on: its keys are wiped at Close.
func Start(ctx context.Context, cfg *config.Config, opts Options) (_ *Daemon, err error) {
	if err := cfg.RequireDataplane(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.ICMPRate == 0 {
		opts.ICMPRate = 1000
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = 10 * time.Second
	}
	d := &Daemon{cfg: cfg, log: opts.Log.With("instance", cfg.Instance), ns: netns.None()}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if opts.NetNS > 0 {
		fd, err := unix.FcntlInt(uintptr(opts.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("start gateway: duplicate namespace handle: %w", err)
		}
		d.ns = netns.NsHandle(fd)
	}
	d.Info.Instance = cfg.Instance
	if err := d.inspect(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	// The sequence state before the card: a state directory that is unsafe, damaged or in use by
	// another daemon stops the start before anything is loaded or attached.
	if err := d.openState(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	// Channels in use, where the driver says (veth, most NICs); else what netlink reported.
	_ = nsenter.Run(d.ns, func() error {
		for _, ifc := range []*Iface{&d.Info.Protected, &d.Info.Wire} {
			if n, err := rxQueues(ifc.Name); err == nil && n > 0 {
				ifc.RXQueue = n
			}
		}
		return nil
	})
	queues := min(d.Info.Protected.RXQueue, d.Info.Wire.RXQueue)
	if n := int(cfg.Dataplane.Workers); n > 0 {
		queues = min(queues, n)
	}
	d.Info.Queues = queues
	d.card, err = loader.Load(loader.Config{
		Instance:  cfg.Instance,
		PinRoot:   opts.PinRoot,
		Policies:  cfg.Capacities.Policies,
		SAs:       cfg.Capacities.SAs,
		FlowCache: cfg.Capacities.FlowCache,
		Queues:    uint32(max(d.Info.Protected.RXQueue, d.Info.Wire.RXQueue)),
		Defaults:  cfg.DefaultVerdict.Defaults(),
		Frags:     cfg.Dataplane.MultiBuffer,
		// Guarded until the workers run and the card holds this configuration: an adopted card
		// may hold SAs no worker has a key for, and policies of an older configuration.
		Guard:  true,
		Logger: d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("start gateway: load card: %w", err)
	}
	d.Info.PinDir, d.Info.Adopted = d.card.PinDir(), d.card.Adopted()
	if d.Info.Adopted {
		d.log.Info("adopting the card an earlier run left pinned: guard on while it is reconciled", "pins", d.Info.PinDir)
	}
	d.local, err = watchLocalAddrs(d.ns, d.card, d.log)
	if err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}

	// The workers count per SA into the card's mmap-able worker_stats map (loader.WorkerStats), so
	// that the control plane, bpftool and this process read the same numbers.
	stats := d.card.WorkerStats()
	sas, err := worker.NewSATable(int(cfg.Capacities.SAs), d.Info.WireMTU)
	if err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	// Hosts on the protected side that already spoke to the gateway are resolved before their
	// first decrypted packet arrives (see loader/neigh, "The first packet to a host").
	d.cache, err = neigh.New(neigh.Options{NetNS: d.ns, Log: d.log, LearnOn: []int{d.Info.Protected.Index}})
	if err != nil {
		return nil, fmt.Errorf("start gateway: start neighbour cache: %w", err)
	}
	var src4, src6 netip.Addr
	for _, a := range d.Info.Protected.Addrs {
		if a.Is4() && !src4.IsValid() {
			src4 = a
		}
		if a.Is6() && !a.IsLinkLocalUnicast() && !src6.IsValid() {
			src6 = a
		}
	}
	d.pmtu = pmtu.NewResponder(src4, src6, opts.ICMPRate, max(opts.ICMPRate/10, 1))

	if err := nsenter.Run(d.ns, func() error { return d.openSockets(queues, sas, stats) }); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}

	d.drv = newDriver(d.card, sas, d.state, []string{cfg.Interfaces.Protected, cfg.Interfaces.Wire}, d.local.has, d.log)
	d.drv.minWindow = d.Info.MinReplayWindow
	if err := d.drv.adopt(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	mopts := manager.Options{Logger: opts.Log, NoAPI: opts.NoAPI, Socket: opts.Socket,
		Metrics: opts.Metrics, ExtraCounters: d.workerCounters, Keys: d.drv}
	d.mgr, err = manager.New(cfg, d.drv, mopts)
	if err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	// The control plane lives until Close, not as long as the caller's ctx (which bounds the
	// start only).
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stop = stop
	if err := d.mgr.Start(runCtx); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, opts.SyncTimeout)
	defer cancel()
	if err := d.mgr.Sync(sctx); err != nil {
		return nil, fmt.Errorf("start gateway: wait for the card to hold the configuration: %w", err)
	}

	// Attach once the card holds the configuration (a fresh card would otherwise give the
	// default verdict to traffic its policies protect), with the sockets registered, so that the
	// first packet already finds a worker. An adopted card is attached already.
	mode := attachMode(cfg.Dataplane.XDPMode)
	protMode := mode
	if cfg.Dataplane.ProtectedXDPMode != "" {
		protMode = attachMode(cfg.Dataplane.ProtectedXDPMode)
	}
	err = nsenter.Run(d.ns, func() error {
		var err error
		if d.Info.Protected.Mode, err = d.card.Attach(loader.SideProtected, cfg.Interfaces.Protected, protMode); err != nil {
			return err
		}
		d.Info.Wire.Mode, err = d.card.Attach(loader.SideWire, cfg.Interfaces.Wire, mode)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	if d.Info.Protected.Mode == loader.AttachGeneric && !cfg.Dataplane.MultiBuffer {
		d.log.Warn("protected side in generic XDP mode without dataplane.multi_buffer: hosts keep TSO, "+
			"and their GSO packets larger than a frame are lost", "interface", d.Info.Protected.Name)
	}
	d.werrs = make(chan error, len(d.workers))
	for _, w := range d.workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := w.Run(); err != nil {
				d.werrs <- err
			}
		}()
	}
	// Workers run and the card holds the configuration: its PROTECT traffic and ESP may go to them.
	if err := d.card.SetGuard(false); err != nil {
		return nil, fmt.Errorf("start gateway: lift the card's guard: %w", err)
	}
	// Resolve the tunnel peers now: the card's FIB lookup needs the kernel's neighbour entry for
	// each SA's outer destination, and without one the first packets would be dropped while the
	// cache resolves it. NextHop only starts the resolution; nothing waits for an absent peer.
	for _, sa := range d.drv.list() {
		if sa.Dir == ipsec.DirOut.String() {
			d.cache.NextHop(sa.Dst)
		}
	}
	if opts.LeastPrivilege {
		if err := d.leastPrivilege(); err != nil {
			return nil, fmt.Errorf("start gateway: %w", err)
		}
	}
	attrs := []any{"protected", d.Info.Protected.Name, "protected_xdp", string(d.Info.Protected.Mode),
		"wire", d.Info.Wire.Name, "wire_xdp", string(d.Info.Wire.Mode),
		"queues", queues, "min_replay_window", d.Info.MinReplayWindow, "af_xdp", d.Info.SocketMode, "multi_buffer", d.Info.MultiBuffer, "wire_mtu", d.Info.WireMTU,
		"pins", d.Info.PinDir, "adopted", d.Info.Adopted, "on_exit", string(cfg.OnExit), "sas", len(d.drv.list())}
	if a := d.mgr.MetricsAddr(); a != "" {
		attrs = append(attrs, "metrics", "http://"+a+"/metrics")
	}
	d.log.Info("gateway running", attrs...)
	d.running = true
	return d, nil
}

// openState opens the durable sequence state in cfg.StateDir and starts its background step
// (reservation renewals, inbound high-water marks), which runs until Close.
func (d *Daemon) openState() error {
	st, err := seqstate.Open(seqstate.Options{Dir: d.cfg.StateDir, Logger: d.log})
	if err != nil {
		return fmt.Errorf("open sequence state: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Run(ctx)
	}()
	d.state, d.stopState = st, func() { cancel(); <-done }
	d.Info.StateDir = d.cfg.StateDir
	return nil
}

// StateStats are the durable sequence state's counters (reservations blocked, writes, errors).
func (d *Daemon) StateStats() seqstate.Stats { return d.state.Stats() }

// attachMode maps the configuration's XDP mode to the loader's.
func attachMode(m config.XDPMode) loader.XDPMode {
	switch m {
	case config.XDPNative:
		return loader.XDPNative
	case config.XDPGeneric:
		return loader.XDPGeneric
	}
	return loader.XDPAuto
}

// inspect reads the two interfaces: index, receive queues, addresses, the wire MTU.
func (d *Daemon) inspect() error {
	var h *netlink.Handle
	var err error
	if d.ns > 0 {
		h, err = netlink.NewHandleAt(d.ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	for _, side := range []struct {
		name string
		out  *Iface
	}{{d.cfg.Interfaces.Protected, &d.Info.Protected}, {d.cfg.Interfaces.Wire, &d.Info.Wire}} {
		l, err := h.LinkByName(side.name)
		if err != nil {
			return fmt.Errorf("find interface %s: %w: %w", side.name, loader.ErrNoInterface, err)
		}
		a := l.Attrs()
		side.out.Name, side.out.Index, side.out.RXQueue = side.name, a.Index, a.NumRxQueues
		if side.out.RXQueue <= 0 {
			return fmt.Errorf("inspect %s: %w", side.name, ErrNoQueues)
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", side.name, err)
		}
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP); ok {
				side.out.Addrs = append(side.out.Addrs, ip.Unmap())
			}
		}
		if side.out == &d.Info.Wire {
			d.Info.WireMTU = a.MTU
		} else {
			d.Info.ProtectedMTU = a.MTU
		}
	}
	return nil
}

// openSockets opens, per queue, one socket on each interface, all on one UMEM, registers them
// with the card and makes the workers. It runs inside the gateway's namespace.
func (d *Daemon) openSockets(queues int, sas *worker.SATable, stats worker.SACounters) error {
	dp := d.cfg.Dataplane
	var err error
	d.umem, err = xsk.NewUMEM(xsk.UMEMConfig{FrameCount: dp.UMEMFrames, FrameSize: dp.FrameSize})
	if err != nil {
		return fmt.Errorf("create umem: %w", err)
	}
	pools, err := d.umem.Pools(queues)
	if err != nil {
		return err
	}
	ring := socketRing(pools[0].Size())
	d.Info.MinReplayWindow = ReplayWindowFloor(queues, int(ring))
	if n, auto := d.cfg.Dataplane.ReplayWindowFloor(); !auto {
		d.Info.MinReplayWindow = n
	}
	for q := 0; q < queues; q++ {
		var pair [2]*xsk.Socket
		for i, ifc := range []*Iface{&d.Info.Protected, &d.Info.Wire} {
			s, err := d.umem.Open(xsk.SocketConfig{Ifindex: ifc.Index, QueueID: q,
				FillSize: ring, CompletionSize: ring, RXSize: ring, TXSize: ring, BusyPoll: dp.BusyPoll,
				SG: dp.MultiBuffer})
			if err != nil {
				return fmt.Errorf("open AF_XDP socket on %s queue %d: %w", ifc.Name, q, err)
			}
			d.socks = append(d.socks, s)
			pair[i] = s
		}
		d.Info.SocketMode = pair[0].Mode().String()
		d.Info.MultiBuffer = pair[0].SG()
		if err := d.card.RegisterSocket(loader.SideProtected, uint32(q), pair[0].FD()); err != nil {
			return err
		}
		if err := d.card.RegisterSocket(loader.SideWire, uint32(q), pair[1].FD()); err != nil {
			return err
		}
		w, err := worker.New(worker.Config{Protected: pair[0], Wire: pair[1], Pool: pools[q], SAs: sas,
			SAStats: stats, Resolver: d.cache, PMTU: d.pmtu, BusyPoll: dp.BusyPoll, CPU: -1,
			NoChecksumCompletion: !dp.CompletesChecksums(), ProtectedMTU: d.Info.ProtectedMTU,
			MSSClamp: int(dp.MSSClamp)}) // config.MSSClampAuto == worker.MSSClampAuto
		if err != nil {
			return err
		}
		d.workers = append(d.workers, w)
	}
	return nil
}

// Manager is the control plane (SAD/SPD, offload engine, lifetimes, events, API).
func (d *Daemon) Manager() *manager.Manager { return d.mgr }

// Card is the loaded card.
func (d *Daemon) Card() *loader.Card { return d.card }

// Neighbours is the next-hop cache the workers use.
func (d *Daemon) Neighbours() *neigh.Cache { return d.cache }

// PMTU is the ICMP responder the workers use.
func (d *Daemon) PMTU() *pmtu.Responder { return d.pmtu }

// SAs lists the SAs the card and workers hold, with their counters.
func (d *Daemon) SAs() []SAInfo { return d.drv.list() }

// WorkerStats sums the workers' counters.
func (d *Daemon) WorkerStats() map[string]uint64 {
	out := map[string]uint64{}
	for _, w := range d.workers {
		s := w.Stats()
		for name, v := range map[string]uint64{
			"rx_packets": s.RXPackets.Load(), "tx_packets": s.TXPackets.Load(),
			"sealed": s.Sealed.Load(), "opened": s.Opened.Load(),
			"bad_meta": s.BadMeta.Load(), "wrong_dir": s.WrongDir.Load(), "no_sa": s.NoSA.Load(),
			"crypto_errors": s.CryptoErrors.Load(), "seq_unreserved": s.SeqUnreserved.Load(),
			"policy_mismatch": s.PolicyMismatch.Load(),
			"ttl_expired":     s.TTLExpired.Load(), "no_neigh_out": s.NoNeighOut.Load(),
			"no_next_hop_in": s.NoNextHopIn.Load(), "wrong_egress": s.WrongEgress.Load(),
			"too_big": s.TooBig.Load(), "ptb_sent": s.PTBSent.Load(), "fragments": s.Fragments.Load(),
			"no_frame": s.NoFrame.Load(), "tx_ring_full": s.TXRingFull.Load(),
			"frame_errors": s.FrameErrors.Load(), "checksums_completed": s.ChecksumsCompleted.Load(),
			"chains": s.Chains.Load(), "segments": s.Segments.Load(), "chain_drops": s.ChainDrops.Load(),
			"gso_frames": s.GSOFrames.Load(), "mss_clamped": s.MSSClamped.Load(),
		} {
			out[name] += v
		}
	}
	return out
}

// WorkerPackets returns how many packets each worker sealed and opened so far, in queue order: how
// a tunnel's traffic spreads over the workers.
func (d *Daemon) WorkerPackets() (sealed, opened []uint64) {
	sealed, opened = make([]uint64, len(d.workers)), make([]uint64, len(d.workers))
	for i, w := range d.workers {
		sealed[i], opened[i] = w.Stats().Sealed.Load(), w.Stats().Opened.Load()
	}
	return sealed, opened
}

// SocketStats sums the kernel's drop counters of the gateway's AF_XDP sockets, per side
// ("protected", "wire"): where packets are lost before a worker sees them.
func (d *Daemon) SocketStats() map[string]xsk.Statistics {
	out := map[string]xsk.Statistics{}
	for i, s := range d.socks {
		side := "protected"
		if i%2 == 1 {
			side = "wire"
		}
		st, err := s.Statistics()
		if err != nil {
			continue
		}
		t := out[side]
		t.RXDropped += st.RXDropped
		t.RXInvalidDescs += st.RXInvalidDescs
		t.TXInvalidDescs += st.TXInvalidDescs
		t.RXRingFull += st.RXRingFull
		t.RXFillRingEmpty += st.RXFillRingEmpty
		t.TXRingEmptyDescs += st.TXRingEmptyDescs
		out[side] = t
	}
	return out
}

// workerCounters are the workers' counters under xfrm_stat-like names ("WorkerNoNextHopIn"),
// for `xdpsec stats` and the metrics beside the card's reasons.
func (d *Daemon) workerCounters() map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range d.WorkerStats() {
		name := "Worker"
		for _, w := range strings.Split(k, "_") {
			if w != "" {
				name += strings.ToUpper(w[:1]) + w[1:]
			}
		}
		out[name] = v
	}
	return out
}

// Wait blocks until ctx is done or a worker fails, and returns the worker's error if one did.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.werrs:
		return fmt.Errorf("worker stopped: %w", err)
	}
}

// Close stops the gateway. With on_exit: guard (the default) it fails closed and restarts
// hitless: the card is put in guard state first (PROTECT traffic and ESP of its SAs dropped and
// counted, BYPASS and DISCARD policies in force) and stays attached and pinned with its tables,
// so that nothing protected leaks while no gateway runs and the next start adopts it; `xdpsec
// down` removes it. With on_exit: detach both programs are detached first and every pin removed:
// nothing of the gateway stays behind. Either way the control plane and the workers stop, the
// sequence state is closed and the keys are wiped. It works with CAP_NET_ADMIN alone, on the
// descriptors the daemon holds, and is idempotent. A Start that failed leaves a card it created
// detached and unpinned, and one it adopted pinned and guarded.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		guard := d.card != nil && d.exitGuard()
		if guard {
			// Before anything stops: from the next packet on no worker is needed.
			if err := d.card.SetGuard(true); err != nil {
				errs = append(errs, fmt.Errorf("set the card's guard: %w", err))
			}
		}
		if d.mgr != nil {
			if err := d.mgr.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.stop != nil {
			d.stop()
		}
		if d.drv != nil {
			d.drv.closeAcquire()
		}
		if d.local != nil {
			d.local.close()
		}
		// Detach first: the card stops handing packets to sockets that are about to go.
		if d.card != nil && !guard {
			for _, s := range []loader.Side{loader.SideProtected, loader.SideWire} {
				if err := d.card.Detach(s); err != nil {
					errs = append(errs, err)
				}
			}
		}
		for _, w := range d.workers {
			w.Stop()
		}
		d.wg.Wait()
		for _, w := range d.workers {
			_ = w.Close()
		}
		// Nothing sends or receives any more: persist the last inbound high-water marks and
		// release the state directory, then wipe the keys.
		if d.state != nil {
			d.stopState()
			if err := d.state.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close sequence state: %w", err))
			}
		}
		if d.drv != nil {
			d.drv.wipeAll()
		}
		for _, s := range d.socks {
			if err := s.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.umem != nil {
			if err := d.umem.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.cache != nil {
			_ = d.cache.Close()
		}
		if d.card != nil {
			var err error
			if guard {
				err = d.card.Close() // links and maps stay pinned
			} else {
				err = d.card.Destroy() // a stopped gateway leaves no pinned map behind
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		if d.ns > 0 {
			_ = d.ns.Close()
		}
		d.cfg.Wipe()
		d.closeErr = errors.Join(errs...)
		switch {
		case d.closeErr != nil:
		case guard:
			d.log.Info("gateway stopped; card left attached in guard state (PROTECT traffic and ESP of its SAs dropped) "+
				"until the next start adopts it; `xdpsec down --instance "+d.cfg.Instance+"` removes it", "pins", d.Info.PinDir)
		default:
			d.log.Info("gateway stopped; card detached and unpinned")
		}
	})
	return d.closeErr
}

// exitGuard tells whether Close leaves the card in guard state: on_exit as the configuration in
// force says (a reload may have changed it), for a gateway that ran or a card it adopted.
func (d *Daemon) exitGuard() bool {
	onExit := d.cfg.OnExit
	if d.mgr != nil {
		if c := d.mgr.Config(); c != nil {
			onExit = c.OnExit
		}
	}
	return onExit == config.OnExitGuard && (d.running || d.card.Adopted())
}
