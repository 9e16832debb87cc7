// Package metrics exports the control plane's counters to Prometheus (`--metrics 127.0.0.1:PORT`):
// per-SA traffic, errors, lifetime state and offload state; the card's and the workers' global
// counters, split by what they count (drops, the card's verdicts, the workers' throughput and work);
// SA expiries; and the offload engine's work. Values are read at scrape time from the same sources as
// `xdpsec sa list -s` and `xdpsec stats`, so the two never disagree.
//
// Names follow Prometheus conventions (xdpsec_ prefix, _total for counters, base units), checked by
// promlint in a test. Label values are bounded: per-SA series are keyed by the SA's name, card index
// and direction (at most the card's SA capacity of them), never by SPI, and no series carries a
// sequence number — the endpoint is readable by whoever can connect to it, which is why it listens on
// loopback unless told otherwise (Serve, config.CheckMetricsAddr). The global counters' label
// values are the fixed names `xdpsec stats` prints (counters.go).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/lifetime"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/seqstate"
)

// Source is what the metrics read (the manager).
type Source interface {
	ListSAs(showKeys bool) []api.SAView
	ListPolicies() []api.PolicyView
	GlobalCounters(ctx context.Context) (map[string]uint64, error)
	EngineStats() offload.Stats
	EventStats() api.EventStats
	// StateStats are the state directory's counters; false when the daemon runs without one.
	StateStats() (seqstate.Stats, bool)
	// Subscribe streams the control plane's events; the collector counts SA expiries from them.
	Subscribe(buf int) *events.Sub
}

// saLabels name an SA: its name ("" for an SA added without one), its card index, its direction.
var saLabels = []string{"sa", "index", "dir"}

var (
	descSAPackets    = prometheus.NewDesc("xdpsec_sa_packets_total", "Packets protected or accepted on the SA.", saLabels, nil)
	descSABytes      = prometheus.NewDesc("xdpsec_sa_bytes_total", "Bytes (inner packets) protected or accepted on the SA.", saLabels, nil)
	descSAReplay     = prometheus.NewDesc("xdpsec_sa_replay_errors_total", "Packets dropped on the SA by the anti-replay check.", saLabels, nil)
	descSAIntegrity  = prometheus.NewDesc("xdpsec_sa_integrity_errors_total", "Packets dropped on the SA because the ICV did not verify.", saLabels, nil)
	descSAOther      = prometheus.NewDesc("xdpsec_sa_other_errors_total", "Packets dropped on the SA for other reasons.", saLabels, nil)
	descSAUnreserved = prometheus.NewDesc("xdpsec_sa_reservation_errors_total",
		"Outbound packets dropped on the SA because it had used its whole durable sequence reservation (part of other errors): the state directory lags or cannot be written.",
		saLabels, nil)
	descSAState   = prometheus.NewDesc("xdpsec_sa_state", "1 for the SA's lifetime state (mature, dying: soft limit reached).", append(saLabels, "state"), nil)
	descSAAdded   = prometheus.NewDesc("xdpsec_sa_add_time_seconds", "Unix time the SA was added.", saLabels, nil)
	descSAUsed    = prometheus.NewDesc("xdpsec_sa_use_time_seconds", "Unix time of the SA's first packet (absent until then).", saLabels, nil)
	descSAOffload = prometheus.NewDesc("xdpsec_sa_offload", "1 for the SA's offload state on each interface.",
		append(saLabels, "iface", "status", "reason"), nil)
	descPolicyOffload = prometheus.NewDesc("xdpsec_policy_offload", "1 for the policy's offload state on each interface.",
		[]string{"policy", "id", "iface", "status", "reason"}, nil)
	descExpiries = prometheus.NewDesc("xdpsec_sa_expiries_total",
		"SA lifetime expiries since the daemon started: soft (rekey now) and hard (the SA is gone), by the limit reached.",
		[]string{"kind", "limit"}, nil)

	descDrops = prometheus.NewDesc("xdpsec_drops_total",
		"Packets dropped by the card or the workers, by reason (the names of xdpsec stats).", []string{"reason"}, nil)
	descVerdicts = prometheus.NewDesc("xdpsec_card_verdicts_total",
		"Packets the card let through: to a worker (OutProtect, InOffload) or to the kernel (OutBypass, InBypass, InNoStates, InESPFragment, NonIP).",
		[]string{"verdict"}, nil)
	descCardEvents = prometheus.NewDesc("xdpsec_card_events_total",
		"The card's events besides verdicts: ACQUIRE records sent or lost to a full ring, packets handed on with an unresolved next hop (FibNoNeigh).",
		[]string{"event"}, nil)
	descWorkerPackets = prometheus.NewDesc("xdpsec_worker_packets_total",
		"The crypto workers' throughput: descriptors received and transmitted, packets sealed and opened.", []string{"counter"}, nil)
	descWorkerOps = prometheus.NewDesc("xdpsec_worker_operations_total",
		"Work the crypto workers did on packets: fragmentation, PMTU errors sent, checksum completion, segmentation, MSS clamping.",
		[]string{"counter"}, nil)
	descUnclassified = prometheus.NewDesc("xdpsec_counters_unclassified_total",
		"Global counters the metrics do not classify yet (a bug: it belongs in drops, verdicts or operations).", []string{"counter"}, nil)

	descSAs      = prometheus.NewDesc("xdpsec_sas", "SAs in the SAD.", nil, nil)
	descPolicies = prometheus.NewDesc("xdpsec_policies", "Policies in the SPD.", nil, nil)
	descEngine   = prometheus.NewDesc("xdpsec_offload_operations_total", "Work of the offload engine by operation.", []string{"op"}, nil)
	descEvents   = prometheus.NewDesc("xdpsec_events_total", "Events published, and deliveries dropped for slow subscribers.", []string{"kind"}, nil)
	descUp       = prometheus.NewDesc("xdpsec_card_up", "1 when the card's counters could be read at this scrape.", nil, nil)

	descStateWrites = prometheus.NewDesc("xdpsec_state_writes_total",
		"Commits of the durable sequence state (state_dir) that reached the disk.", nil, nil)
	descStateWriteErrors = prometheus.NewDesc("xdpsec_state_write_errors_total",
		"Commits of the durable sequence state that failed (disk full, I/O error): reservations stop growing until one succeeds.", nil, nil)
	descStateBlocked = prometheus.NewDesc("xdpsec_state_blocked_sas",
		"Outbound SAs that had used their whole durable sequence reservation at the last commit: they drop (seq_unreserved) until a renewal reaches the disk.", nil, nil)
	descStateEntries = prometheus.NewDesc("xdpsec_state_entries",
		"Entries in the durable sequence state: SAs' reservations and high-water marks (kind=sa), keys that must never be used again (kind=tombstone).", []string{"kind"}, nil)
)

// descByKind is the metric of each kind of global counter.
var descByKind = map[kind]*prometheus.Desc{kindDrop: descDrops, kindVerdict: descVerdicts, kindCardEvent: descCardEvents,
	kindWorkerPackets: descWorkerPackets, kindWorkerOp: descWorkerOps, kindUnclassified: descUnclassified}

// expiryLimits are the limits an SA can expire by (the label values of xdpsec_sa_expiries_total).
var expiryLimits = []lifetime.Expiry{lifetime.ByBytes, lifetime.ByPackets, lifetime.ByAddTime, lifetime.ByUseTime, lifetime.BySeq}

// eventQueue is the collector's event subscription's queue: expiries come in bursts at most as
// large as the SAD.
const eventQueue = 4096

// Collector is a prometheus.Collector over a Source. It counts SA expiries from the Source's events
// until Close.
type Collector struct {
	src Source
	log *slog.Logger
	sub *events.Sub

	mu       sync.Mutex
	expiries map[[2]string]uint64 // (kind, limit) → count
	done     chan struct{}
}

// NewCollector returns a collector over src; Close it to stop counting events.
func NewCollector(src Source, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	c := &Collector{src: src, log: log, sub: src.Subscribe(eventQueue), expiries: map[[2]string]uint64{},
		done: make(chan struct{})}
	// Every series from the start, so that increase() sees the first expiry.
	for _, k := range []string{"soft", "hard"} {
		for _, l := range expiryLimits {
			c.expiries[[2]string{k, string(l)}] = 0
		}
	}
	go c.countEvents()
	return c
}

func (c *Collector) countEvents() {
	defer close(c.done)
	for ev := range c.sub.C() {
		var k string
		switch ev.Type {
		case events.SASoftExpire:
			k = "soft"
		case events.SAHardExpire:
			k = "hard"
		default:
			continue
		}
		key := [2]string{k, "other"}
		for _, l := range expiryLimits {
			if ev.Reason == string(l) {
				key[1] = ev.Reason
			}
		}
		c.mu.Lock()
		c.expiries[key]++
		c.mu.Unlock()
	}
}

// Close stops counting events.
func (c *Collector) Close() {
	c.sub.Close()
	<-c.done
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSAPackets, descSABytes, descSAReplay, descSAIntegrity, descSAOther,
		descSAUnreserved, descSAState, descSAAdded, descSAUsed, descSAOffload, descPolicyOffload, descExpiries, descDrops, descVerdicts,
		descCardEvents, descWorkerPackets, descWorkerOps, descUnclassified, descSAs, descPolicies, descEngine,
		descEvents, descUp, descStateWrites, descStateWriteErrors, descStateBlocked, descStateEntries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	sas := c.src.ListSAs(false)
	for i := range sas {
		v := &sas[i]
		dir := ""
		switch {
		case v.Direction != nil:
			dir = v.Direction.String()
		case v.Dir != nil:
			dir = v.Dir.String()
		}
		l := []string{v.Name, fmt.Sprint(v.Index), dir}
		counter := func(d *prometheus.Desc, n uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), l...)
		}
		counter(descSAPackets, v.Cur.Packets)
		counter(descSABytes, v.Cur.Bytes)
		counter(descSAReplay, v.Cur.ReplayErrors)
		counter(descSAIntegrity, v.Cur.IntegrityErrors)
		counter(descSAOther, v.Cur.OtherErrors)
		counter(descSAUnreserved, v.Cur.SeqUnreserved)
		ch <- prometheus.MustNewConstMetric(descSAState, prometheus.GaugeValue, 1, append(l, v.State.String())...)
		ch <- prometheus.MustNewConstMetric(descSAAdded, prometheus.GaugeValue, float64(v.AddTime.Unix()), l...)
		if !v.UseTime.IsZero() {
			ch <- prometheus.MustNewConstMetric(descSAUsed, prometheus.GaugeValue, float64(v.UseTime.Unix()), l...)
		}
		for _, o := range v.OffloadState {
			ch <- prometheus.MustNewConstMetric(descSAOffload, prometheus.GaugeValue, 1,
				append(l, o.Iface, string(o.Status), string(o.Reason))...)
		}
	}
	pols := c.src.ListPolicies()
	for _, p := range pols {
		for _, o := range p.OffloadState {
			ch <- prometheus.MustNewConstMetric(descPolicyOffload, prometheus.GaugeValue, 1,
				p.Name, fmt.Sprint(p.ID), o.Iface, string(o.Status), string(o.Reason))
		}
	}
	ch <- prometheus.MustNewConstMetric(descSAs, prometheus.GaugeValue, float64(len(sas)))
	ch <- prometheus.MustNewConstMetric(descPolicies, prometheus.GaugeValue, float64(len(pols)))
	c.mu.Lock()
	for k, n := range c.expiries {
		ch <- prometheus.MustNewConstMetric(descExpiries, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up := 1.0
	if g, err := c.src.GlobalCounters(ctx); err != nil {
		c.log.Warn("read global counters for metrics", "err", err)
		up = 0
	} else {
		for name, n := range g {
			ch <- prometheus.MustNewConstMetric(descByKind[counterKinds[name]], prometheus.CounterValue, float64(n), name)
		}
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for op, n := range engineOps(c.src.EngineStats()) {
		ch <- prometheus.MustNewConstMetric(descEngine, prometheus.CounterValue, float64(n), op)
	}
	ev := c.src.EventStats()
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(ev.Published), "published")
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(ev.Dropped), "dropped")
	if st, ok := c.src.StateStats(); ok {
		ch <- prometheus.MustNewConstMetric(descStateWrites, prometheus.CounterValue, float64(st.Writes))
		ch <- prometheus.MustNewConstMetric(descStateWriteErrors, prometheus.CounterValue, float64(st.WriteErrors))
		ch <- prometheus.MustNewConstMetric(descStateBlocked, prometheus.GaugeValue, float64(st.Blocked))
		ch <- prometheus.MustNewConstMetric(descStateEntries, prometheus.GaugeValue, float64(st.Entries), "sa")
		ch <- prometheus.MustNewConstMetric(descStateEntries, prometheus.GaugeValue, float64(st.Tombstones), "tombstone")
	}
}

// engineOps are the offload engine's counters by the op label of xdpsec_offload_operations_total.
func engineOps(e offload.Stats) map[string]uint64 {
	return map[string]uint64{"pass": e.Passes, "sa_install": e.SAInstalls, "sa_remove": e.SARemovals,
		"sa_nack": e.SANacks, "policy_install": e.PolicyInstalls, "policy_remove": e.PolicyRemovals,
		"policy_nack": e.PolicyNacks, "driver_error": e.DriverErrors}
}

// Server serves /metrics.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	col  *Collector
	done chan struct{}
}

// Serve listens on addr (host:port) and serves src's metrics at /metrics, with the Go runtime's.
// An address without a host (":9585") listens on 127.0.0.1 only, not on every address: the metrics
// name every SA and policy, so reaching them from other hosts takes an address that says so
// (config.CheckMetricsAddr is what the configuration and --metrics allow).
func Serve(addr string, src Source, log *slog.Logger) (*Server, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	if log == nil {
		log = slog.Default()
	}
	reg := prometheus.NewRegistry()
	col := NewCollector(src, log)
	if err := reg.Register(col); err != nil {
		col.Close()
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		col.Close()
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, col: col, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	s.col.Close()
	return err
}
