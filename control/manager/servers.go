package manager

import (
	"context"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/metrics"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/seqstate"
)

// startServers starts the API server (and the metrics server, when asked for).
func (m *Manager) startServers(ctx context.Context) error {
	if !m.opts.NoAPI {
		srv, err := api.ServeWith(m.opts.Socket, m, api.ServeOptions{Log: m.opts.Logger,
			Group: m.Config().Daemon.SocketGroup, Keepalive: m.opts.EventKeepalive})
		if err != nil {
			return err
		}
		m.closers = append(m.closers, srv.Close)
	}
	return m.startMetrics(ctx)
}

func (m *Manager) startMetrics(context.Context) error {
	if m.opts.Metrics == "" {
		return nil
	}
	srv, err := metrics.Serve(m.opts.Metrics, m, m.opts.Logger)
	if err != nil {
		return err
	}
	m.metricsAddr = srv.Addr()
	m.closers = append(m.closers, srv.Close)
	return nil
}

// MetricsAddr is the address the metrics server listens on ("" without one).
func (m *Manager) MetricsAddr() string {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	return m.metricsAddr
}

// EngineStats returns the offload engine's counters.
func (m *Manager) EngineStats() offload.Stats { return m.engine.Stats() }

// StateStats returns the durable sequence state's counters; false without a state directory.
func (m *Manager) StateStats() (seqstate.Stats, bool) {
	if m.opts.Keys == nil {
		return seqstate.Stats{}, false
	}
	return m.opts.Keys.Stats(), true
}

// EventStats returns the event stream's counters.
func (m *Manager) EventStats() api.EventStats {
	return api.EventStats{Published: m.bus.Published(), Dropped: m.bus.Dropped()}
}
