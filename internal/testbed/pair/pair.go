// Package pair starts the two gateways of a testbed in-process: one daemon per gateway, each
// working on the interfaces of its namespace (netns handles, not `ip netns exec`), so that pins
// stay under the host's /sys/fs/bpf where bpftool finds them. The end-to-end test, `xdpsec demo`
// and hack/bench.sh use it, and its benchmarks (bench_test.go) measure the whole gateway in one process.
package pair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/internal/testbed"
)

// Pair is the two running gateways.
type Pair struct {
	GW1, GW2 *daemon.Daemon
}

// Options configure Start.
type Options struct {
	Tunnels []testbed.Tunnel // default testbed.DefaultTunnels
	Log     *slog.Logger     // default slog.Default()
	// API serves each gateway's unix-socket API at /run/xdpsec/<instance>.sock, so that
	// `xdpsec sa list -s --socket …` works while the pair runs.
	API bool
	// SocketDir, with API, puts each gateway's socket at <SocketDir>/<gw>.sock (gw1.sock,
	// gw2.sock) instead of /run/xdpsec/<instance>.sock.
	SocketDir string
	// Edit, if set, rewrites the two gateways' YAML configurations before they are parsed.
	Edit func(gw1, gw2 string) (string, string)
	// Dataplane tunes the workers (busy polling, UMEM size).
	Dataplane testbed.Dataplane
	// HostOffloads leaves h1's and h2's transmit checksum offload on (a host's default): their
	// TCP and UDP then reach the gateways with CHECKSUM_PARTIAL checksums, which the workers
	// complete. Without it Start turns the offload off (testbed.HostChecksumOffloadOff), so that
	// benchmarks compare the tunnel with kernel forwarding under the same host settings.
	HostOffloads bool
	// SyncTimeout bounds each gateway's wait for its card to hold the configuration (daemon
	// default 10 s): tens of thousands of SAs on a loaded machine take longer.
	SyncTimeout time.Duration
}

// Start parses the testbed's gateway configurations and starts gw1 and gw2. On failure nothing
// stays attached.
func Start(ctx context.Context, tb *testbed.Testbed, opts Options) (*Pair, error) {
	log, tunnels := opts.Log, opts.Tunnels
	if log == nil {
		log = slog.Default()
	}
	if tunnels == nil {
		tunnels = testbed.DefaultTunnels
	}
	if !opts.HostOffloads {
		if err := tb.HostChecksumOffloadOff(ctx); err != nil {
			return nil, err
		}
	}
	y1, y2, err := tb.GatewayConfigsWith(tunnels, opts.Dataplane)
	if err != nil {
		return nil, err
	}
	if opts.Edit != nil {
		y1, y2 = opts.Edit(y1, y2)
	}
	p := &Pair{}
	for i, y := range []string{y1, y2} {
		gw := []testbed.Node{testbed.GW1, testbed.GW2}[i]
		cfg, err := config.Parse(string(gw)+".yaml", []byte(y))
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("parse %s configuration: %w", gw, err)
		}
		ns, err := tb.NsHandle(gw)
		if err != nil {
			p.Close()
			return nil, err
		}
		dopts := daemon.Options{NetNS: ns, NoAPI: !opts.API, Log: log.With("gw", string(gw)), SyncTimeout: opts.SyncTimeout}
		if opts.SocketDir != "" {
			dopts.Socket = filepath.Join(opts.SocketDir, string(gw)+".sock")
		}
		d, err := daemon.Start(ctx, cfg, dopts)
		ns.Close()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("start %s: %w", gw, err)
		}
		if i == 0 {
			p.GW1 = d
		} else {
			p.GW2 = d
		}
	}
	return p, nil
}

// Close stops both gateways.
func (p *Pair) Close() error {
	var errs []error
	for _, d := range []*daemon.Daemon{p.GW2, p.GW1} {
		if d != nil {
			errs = append(errs, d.Close())
		}
	}
	return errors.Join(errs...)
}
