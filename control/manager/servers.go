package manager

import (
	"context"

	"github.com/xdpsec/xdpsec/control/api"
)

// startServers starts the API server (and the metrics server, when asked for).
func (m *Manager) startServers(ctx context.Context) error {
	if !m.opts.NoAPI {
		srv, err := api.Serve(m.opts.Socket, m, m.opts.Logger)
		if err != nil {
			return err
		}
		m.closers = append(m.closers, srv.Close)
	}
	return m.startMetrics(ctx)
}

func (m *Manager) startMetrics(context.Context) error { return nil }
