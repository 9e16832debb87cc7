package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/crypto/keymem"
)

func init() { register(newRunCmd) }

func newRunCmd(a *App) *cobra.Command {
	var nsName string
	var noAPI bool
	var metrics string
	var metricsPublic bool
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the gateway: load the card, attach it to both interfaces, start the crypto workers",
		Long: `Run the gateway described by the configuration file: load the card (the XDP program and its
tables, pinned under /sys/fs/bpf/xdpsec/<instance>/), open one AF_XDP socket per receive queue on
each interface over one shared UMEM, start one crypto worker per queue, install the SAs and
policies through the control plane, and serve the API on the instance's unix socket.

It logs what it attached and in which XDP mode. SIGHUP re-reads the configuration and applies only
the differences (as 'xdpsec reload').

It fails closed. SIGINT or SIGTERM (exit status 0) or a failing worker (status 1) stops it; with
on_exit: guard, the default, the card stays attached and pinned in guard state: PROTECT traffic
and ESP of its SAs are dropped and counted (out_guard, in_guard), BYPASS and DISCARD policies work
as before, so IKE still reaches the gateway and nothing protected leaves in the clear. The next run
of the instance adopts that card without detaching it (the same links get the new programs) and,
still guarded, makes its tables equal to the configuration — removing policies and SAs a killed
run left — before its workers take over and the guard is lifted. 'xdpsec down' removes a card no
gateway should come back to; with on_exit: detach the run does that itself when it stops. A
gateway killed with SIGKILL leaves the card running without workers: what would go to them is
dropped (no socket), nothing passes unprotected.

--netns runs the gateway on interfaces inside a named network namespace (ip netns) while pins and
the API socket stay in this process's mount namespace, so bpftool on the host sees the tables
(running the binary under 'ip netns exec' instead hides /sys/fs/bpf). The metrics server, too,
listens in this process's network namespace.

--metrics ADDR serves Prometheus metrics at http://ADDR/metrics, overriding the configuration's
daemon.metrics (port 0 picks a free port; the start log names the address). ADDR must be a loopback
address (127.0.0.1:9585, [::1]:9585; :9585 means 127.0.0.1) unless --metrics-public: the metrics
name every SA and policy and show their traffic to whoever connects.

Hardening (docs/security.md): the configuration file must be private (no keys readable by group or
others, nothing writable by them, owned by root or this user); the process is made non-dumpable
(no core dumps, no ptrace or /proc/PID/mem for other users); raw keys live in locked memory kept out
of core dumps and wiped at exit; once the gateway runs, it drops every capability but
CAP_NET_ADMIN from all its threads and sets no_new_privs.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if metrics != "" {
				if err := config.CheckMetricsAddr(metrics, metricsPublic); err != nil {
					return usageErrorf("--metrics %w", err)
				}
			}
			// Before any key is read: no core dump, no ptrace and no /proc/PID/mem for anyone
			// but root with CAP_SYS_PTRACE (the mm-wide flag covers every thread).
			if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
				return fmt.Errorf("make the process non-dumpable: %w", err)
			}
			defer keymem.WipeAll()
			cfg, err := a.LoadPrivateConfig()
			if err != nil {
				return err
			}
			opts := daemon.Options{Socket: a.Socket, NoAPI: noAPI, Metrics: metrics, Log: a.Log, LeastPrivilege: true}
			if nsName != "" {
				h, err := netns.GetFromName(nsName)
				if err != nil {
					return fmt.Errorf("open network namespace %s: %w", nsName, err)
				}
				defer h.Close()
				opts.NetNS = h
			}
			return runGateway(cmd.Context(), a, cfg, opts)
		},
	}
	cmd.Flags().StringVar(&nsName, "netns", "", "run on interfaces inside this network `namespace` (ip netns name)")
	_ = cmd.RegisterFlagCompletionFunc("netns", completeNetns)
	cmd.Flags().BoolVar(&noAPI, "no-api", false, "do not serve the unix-socket API")
	cmd.Flags().StringVar(&metrics, "metrics", "", "serve Prometheus metrics on `host:port` (overrides the config's daemon.metrics)")
	cmd.Flags().BoolVar(&metricsPublic, "metrics-public", false, "allow --metrics to name an address other hosts can reach")
	return cmd
}

// runGateway starts the daemon and keeps it up until ctx ends (SIGINT/SIGTERM through the root
// command) or a worker fails; SIGHUP reloads the configuration.
func runGateway(ctx context.Context, a *App, cfg *config.Config, opts daemon.Options) error {
	d, err := daemon.Start(ctx, cfg, opts)
	if err != nil {
		return daemon.ExplainStartError(err, opts.NetNS > 0)
	}
	if st := keymem.Stats(); st.LockErr != nil {
		a.Log.Warn("key memory not locked: keys may be swapped out (raise LimitMEMLOCK)", "unlocked_bytes",
			st.Mapped-st.Locked, "err", st.LockErr)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- d.Wait(wctx) }()
	for {
		select {
		case <-hup:
			res, err := d.Manager().ReloadFile()
			if err != nil {
				a.Log.Error("reload failed; the running configuration stays", "err", err)
				continue
			}
			a.Log.Info("reloaded", "sas_added", len(res.SAsAdded), "sas_replaced", len(res.SAsReplaced),
				"sas_deleted", len(res.SAsDeleted), "sas_unchanged", res.SAsUnchanged)
		case err := <-werr:
			cerr := d.Close()
			if err != nil {
				return err
			}
			return cerr
		}
	}
}
