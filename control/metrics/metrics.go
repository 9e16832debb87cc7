// Package metrics exports the control plane's counters to Prometheus (`--metrics 127.0.0.1:PORT`):
// per-SA traffic, errors, lifetime state and offload state, the card's and workers' global drop and
// error reasons, and the offload engine's work. Values are read at scrape time from the same sources as
// `xdpsec sa list -s` and `xdpsec stats`, so the two never disagree.
//
// Names follow Prometheus conventions: xdpsec_ prefix, _total for counters, base units (bytes).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/offload"
)

// Source is what the metrics read (the manager).
type Source interface {
	ListSAs(showKeys bool) []api.SAView
	ListPolicies() []api.PolicyView
	GlobalCounters(ctx context.Context) (map[string]uint64, error)
	EngineStats() offload.Stats
	EventStats() api.EventStats
}

// saLabels name an SA: its name, identity, card index and direction (in, out).
var saLabels = []string{"sa", "spi", "dst", "index", "dir"}

var (
	descSAPackets   = prometheus.NewDesc("xdpsec_sa_packets_total", "Packets protected or accepted on the SA.", saLabels, nil)
	descSABytes     = prometheus.NewDesc("xdpsec_sa_bytes_total", "Bytes (inner packets) protected or accepted on the SA.", saLabels, nil)
	descSAReplay    = prometheus.NewDesc("xdpsec_sa_replay_errors_total", "Packets dropped on the SA by the anti-replay check.", saLabels, nil)
	descSAIntegrity = prometheus.NewDesc("xdpsec_sa_integrity_errors_total", "Packets dropped on the SA because the ICV did not verify.", saLabels, nil)
	descSAOther     = prometheus.NewDesc("xdpsec_sa_other_errors_total", "Packets dropped on the SA for other reasons.", saLabels, nil)
	descSASeq       = prometheus.NewDesc("xdpsec_sa_sequence_number", "Highest sequence number used (outbound) or accepted (inbound).", saLabels, nil)
	descSAState     = prometheus.NewDesc("xdpsec_sa_state", "1 for the SA's lifetime state (mature, dying).", append(saLabels, "state"), nil)
	descSAAdded     = prometheus.NewDesc("xdpsec_sa_add_time_seconds", "Unix time the SA was added.", saLabels, nil)
	descSAUsed      = prometheus.NewDesc("xdpsec_sa_use_time_seconds", "Unix time of the SA's first packet (absent until then).", saLabels, nil)
	descSAOffload   = prometheus.NewDesc("xdpsec_sa_offload", "1 for the SA's offload state on each interface.",
		append(saLabels, "iface", "status", "reason"), nil)
	descPolicyOffload = prometheus.NewDesc("xdpsec_policy_offload", "1 for the policy's offload state on each interface.",
		[]string{"policy", "id", "iface", "status", "reason"}, nil)
	descReasons  = prometheus.NewDesc("xdpsec_drops_total", "Global drop and error reasons of the card and the workers (xfrm_stat-like).", []string{"reason"}, nil)
	descSAs      = prometheus.NewDesc("xdpsec_sas", "SAs in the SAD.", nil, nil)
	descPolicies = prometheus.NewDesc("xdpsec_policies", "Policies in the SPD.", nil, nil)
	descEngine   = prometheus.NewDesc("xdpsec_offload_operations_total", "Work of the offload engine by operation.", []string{"op"}, nil)
	descEvents   = prometheus.NewDesc("xdpsec_events_total", "Events published, and deliveries dropped for slow subscribers.", []string{"kind"}, nil)
	descUp       = prometheus.NewDesc("xdpsec_card_up", "1 when the card's counters could be read at this scrape.", nil, nil)
)

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src Source
	log *slog.Logger
}

// NewCollector returns a collector over src.
func NewCollector(src Source, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{src: src, log: log}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSAPackets, descSABytes, descSAReplay, descSAIntegrity, descSAOther,
		descSASeq, descSAState, descSAAdded, descSAUsed, descSAOffload, descPolicyOffload, descReasons, descSAs, descPolicies,
		descEngine, descEvents, descUp} {
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
		l := []string{v.Name, fmt.Sprintf("0x%08x", v.SPI), v.Dst.String(), fmt.Sprint(v.Index), dir}
		counter := func(d *prometheus.Desc, n uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), l...)
		}
		counter(descSAPackets, v.Cur.Packets)
		counter(descSABytes, v.Cur.Bytes)
		counter(descSAReplay, v.Cur.ReplayErrors)
		counter(descSAIntegrity, v.Cur.IntegrityErrors)
		counter(descSAOther, v.Cur.OtherErrors)
		ch <- prometheus.MustNewConstMetric(descSASeq, prometheus.GaugeValue, float64(v.Cur.Seq), l...)
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up := 1.0
	if g, err := c.src.GlobalCounters(ctx); err != nil {
		c.log.Warn("read global counters for metrics", "err", err)
		up = 0
	} else {
		for k, n := range g {
			ch <- prometheus.MustNewConstMetric(descReasons, prometheus.CounterValue, float64(n), k)
		}
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	e := c.src.EngineStats()
	for op, n := range map[string]uint64{"pass": e.Passes, "sa_install": e.SAInstalls, "sa_remove": e.SARemovals,
		"sa_nack": e.SANacks, "policy_install": e.PolicyInstalls, "policy_remove": e.PolicyRemovals,
		"policy_nack": e.PolicyNacks, "driver_error": e.DriverErrors} {
		ch <- prometheus.MustNewConstMetric(descEngine, prometheus.CounterValue, float64(n), op)
	}
	ev := c.src.EventStats()
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(ev.Published), "published")
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(ev.Dropped), "dropped")
}

// Server serves /metrics.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Serve listens on addr (host:port) and serves src's metrics at /metrics, with the Go runtime's.
func Serve(addr string, src Source, log *slog.Logger) (*Server, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(src, log)); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
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
	return err
}
