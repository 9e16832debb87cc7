package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/lifetime"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/control/seqstate"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Options configure a Manager. Zero values take the configuration's settings.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for lifetimes and events (tests inject one); time.Now by default.
	Now func() time.Time
	// Socket overrides the config's daemon.socket; NoAPI disables the API server.
	Socket string
	NoAPI  bool
	// Metrics overrides the config's daemon.metrics (host:port for Prometheus; empty: none).
	Metrics string
	// PollInterval overrides the config's daemon.poll_interval; NoPoller disables the poller (tests drive
	// Poll themselves).
	PollInterval time.Duration
	NoPoller     bool
	// ConfigPath is the file ReloadFile re-reads (default: the config's File).
	ConfigPath string
	// AcquireInterval bounds ACQUIRE events per policy (default 1 s).
	AcquireInterval time.Duration
	// Acquires is an ACQUIRE source; when nil, the driver's own, if it implements offload.AcquireReader
	// (the daemon's driver reads the card's ring).
	Acquires offload.AcquireReader
	// ExtraCounters adds global counters the driver does not report (the workers'), for `xdpsec stats`
	// and the metrics. Called from API requests and metric scrapes; must be safe for concurrent use.
	ExtraCounters func() map[string]uint64
	// EncapPort is the UDP port the card decapsulates ESP-in-UDP on, for GET /v1/info (default 4500).
	EncapPort uint16
	// EventKeepalive overrides the event stream's idle interval (api.DefaultKeepalive).
	EventKeepalive time.Duration
	// Keys is the durable sequence state of the SAs' keys (the daemon's driver over
	// control/seqstate); nil without one.
	Keys KeyState
}

// KeyState is the durable sequence state as the control plane consults it: which keys must never
// be used again, and the first reservations of a configuration's outbound SAs.
type KeyState interface {
	// Admit refuses an SA whose key is retired (it expired hard or used up its sequence numbers,
	// in this life or an earlier one), naming the reason and the time.
	Admit(sa *sadb.SA) error
	// Prepare reserves, in one write, the first sequence numbers of the outbound SAs among sas,
	// before the offload engine installs them one by one.
	Prepare(sas []sadb.SA) error
	// Retire records that sa's key expired hard (reason: a short [a-z0-9-] word) and must never
	// be used again, under any SPI; it returns once that is on disk.
	Retire(sa *sadb.SA, reason string) error
	// Stats are the state directory's counters (reservations blocked, writes and write errors),
	// for the metrics.
	Stats() seqstate.Stats
}

// Manager is the running control plane.
type Manager struct {
	opts   Options
	log    *slog.Logger
	store  *sadb.Store
	engine *offload.Engine
	poller *lifetime.Poller
	bus    *events.Bus
	drv    offload.Driver
	epoch  string // names this process's state (the API's Xdpsec-Epoch)

	mu  sync.Mutex // serializes reloads and guards cfg
	cfg *config.Config

	runMu   sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func() error
	// metricsAddr is where the metrics server listens, once started.
	metricsAddr string
}

// New builds a manager for cfg (which it keeps: do not change or wipe it) on the card drv.
func New(cfg *config.Config, drv offload.Driver, opts Options) (*Manager, error) {
	if cfg == nil {
		return nil, errors.New("new manager: nil config")
	}
	if drv == nil {
		return nil, errors.New("new manager: nil driver")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Socket == "" {
		opts.Socket = cfg.Daemon.Socket
	}
	if opts.Metrics == "" {
		opts.Metrics = cfg.Daemon.Metrics
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = cfg.Daemon.PollInterval.Duration
	}
	if opts.ConfigPath == "" {
		opts.ConfigPath = cfg.File
	}
	if opts.AcquireInterval <= 0 {
		opts.AcquireInterval = time.Second
	}
	if opts.EncapPort == 0 {
		opts.EncapPort = 4500
	}
	m := &Manager{opts: opts, log: opts.Logger.With("component", "control"), drv: drv, epoch: newEpoch()}
	m.bus = events.NewBusBacklog(opts.Now, cmp.Or(cfg.Daemon.EventBacklog, events.DefaultBacklog))
	// Policy ids must stay below the card's policy capacity, and the SPD must never hold a policy the
	// card cannot (its traffic would fall through to lower-priority policies): the SPD refuses more.
	var maxPolicies uint32
	if c := cfg.Capacities.Policies; c > 1 {
		maxPolicies = c - 1
	}
	if cr, ok := drv.(offload.CapacityReporter); ok {
		if c := cr.Capacity().Policies; c > 1 && (maxPolicies == 0 || c-1 < maxPolicies) {
			maxPolicies = c - 1
		}
	}
	m.store = sadb.New(sadb.Options{Now: opts.Now, MaxPolicies: maxPolicies})
	// xdpsec's card has one set of tables for both of its interfaces: offload lists are decided on the
	// interface where each entry is used (offload.SharedTables), never by bookkeeping alone.
	m.engine = offload.New(m.store, drv, offload.Options{Events: m.bus, Logger: opts.Logger,
		Protected: cfg.Interfaces.Protected, Wire: cfg.Interfaces.Wire})
	lopts := lifetime.Options{Interval: opts.PollInterval, Now: opts.Now, Events: m.bus, Logger: opts.Logger}
	if opts.Keys != nil {
		lopts.Retire = func(sa *sadb.SA, why lifetime.Expiry) error { return opts.Keys.Retire(sa, retireReason(why)) }
	}
	m.poller = lifetime.New(m.store, m.engine, lopts)
	m.cfg = cfg
	return m, nil
}

// retireReason is the tombstone's word for a hard expiry: "seq-exhausted", or "hard-expired-" and
// the limit reached.
func retireReason(why lifetime.Expiry) string {
	if why == lifetime.BySeq {
		return string(why)
	}
	return "hard-expired-" + string(why)
}

// Store is the SPD/SAD.
func (m *Manager) Store() *sadb.Store { return m.store }

// Engine is the offload engine.
func (m *Manager) Engine() *offload.Engine { return m.engine }

// Events is the event bus (`xdpsec monitor`).
func (m *Manager) Events() *events.Bus { return m.bus }

// Poller is the lifetime poller.
func (m *Manager) Poller() *lifetime.Poller { return m.poller }

// Config returns the configuration in force.
func (m *Manager) Config() *config.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// Start puts the configuration's SAs and policies into the store, then starts the offload engine, the
// lifetime poller, the ACQUIRE reader (when the driver has one), the API server and the metrics server.
// It returns once they run; the card fills in the background (Sync waits for it).
func (m *Manager) Start(ctx context.Context) error {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if m.started {
		return errors.New("start control plane: already started")
	}
	m.mu.Lock()
	_, err := m.apply(nil, m.cfg)
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	m.engine.Start(ctx)
	if !m.opts.NoPoller {
		m.wg.Go(func() { m.poller.Run(ctx) })
	}
	ar := m.opts.Acquires
	if ar == nil {
		ar, _ = m.drv.(offload.AcquireReader)
	}
	if ar != nil {
		m.wg.Go(func() { m.readAcquires(ctx, ar) })
	}
	if err := m.startServers(ctx); err != nil {
		cancel()
		m.engine.Stop()
		m.wg.Wait()
		return fmt.Errorf("start control plane: %w", err)
	}
	m.started = true
	m.log.Info("control plane started", "sas", len(m.cfg.SAs), "policies", len(m.cfg.Policies),
		"interfaces", m.engine.Interfaces(), "socket", m.socketForLog())
	return nil
}

func (m *Manager) socketForLog() string {
	if m.opts.NoAPI {
		return "none"
	}
	return m.opts.Socket
}

// Sync waits until the card reflects every change made before the call.
func (m *Manager) Sync(ctx context.Context) error { return m.engine.Sync(ctx) }

// Close stops the API, the poller and the engine. The card keeps what it holds (the daemon detaches it);
// the SAD's key bytes are overwritten, and so are those of the configuration in force (the one given
// to New, or the last one a reload applied).
func (m *Manager) Close() error {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if !m.started {
		return nil
	}
	m.started = false
	var errs []error
	for _, c := range slices.Backward(m.closers) {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	m.cancel()
	m.wg.Wait()
	m.engine.Stop()
	m.store.WipeKeys()
	m.mu.Lock()
	m.cfg.Wipe()
	m.mu.Unlock()
	return errors.Join(errs...)
}

// readAcquires turns the card's ACQUIRE records into events, at most one per policy per interval.
func (m *Manager) readAcquires(ctx context.Context, ar offload.AcquireReader) {
	lim := events.NewLimiter(m.opts.AcquireInterval, m.opts.Now)
	for {
		a, err := ar.ReadAcquire(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, offload.ErrStopped) {
				m.log.Warn("read acquire", "err", err)
			}
			return
		}
		if !lim.Allow(a.PolicyID) {
			continue
		}
		ev := events.Event{Type: events.Acquire, PolicyID: a.PolicyID, Iface: a.Iface, Proto: a.Proto}
		if a.Proto == ipsec.ProtoTCP || a.Proto == ipsec.ProtoUDP || a.Proto == ipsec.ProtoSCTP {
			ev.Sport, ev.Dport = a.Sport, a.Dport
		}
		if a.Src.IsValid() {
			ev.Src = a.Src.String()
		}
		if a.Dst.IsValid() {
			ev.Dst = a.Dst.String()
		}
		if p, err := m.store.GetPolicy(sadb.PolicyRef{ID: a.PolicyID}); err == nil {
			ev.Policy, ev.Owner = p.Label(), p.Owner.String()
			if p.Tmpl != nil {
				ev.Reqid, ev.SA = p.Tmpl.Reqid, p.Tmpl.SA
			}
		}
		m.bus.Publish(ev)
	}
}
