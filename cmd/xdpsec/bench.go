package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/internal/bench"
	"github.com/xdpsec/xdpsec/internal/testbed"
)

func init() { register(newBenchCmd) }

func newBenchCmd(a *App) *cobra.Command {
	var o bench.Options
	var timeout time.Duration
	// An existing topology is named with two flags rather than described in a file: the names are
	// all a user has to type (one line, like `ip netns` takes them), and the addresses, the
	// gateways' forwarding and the routes are read from the namespaces themselves, so nothing is
	// said twice and nothing can disagree with the kernel (testbed.Adopt checks it all).
	var netns, devs map[string]string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure xdpsec against kernel forwarding, a bare AF_XDP forwarder and wireguard-go in a testbed (root)",
		Long: `Build the four-namespace testbed h1 — gw1 — gw2 — h2 (veth pairs with one queue per CPU,
GRO on, addresses from 198.18.0.0/15) and measure, side by side in rounds: plain kernel
forwarding, the bare AF_XDP forwarder (xsfwd: xdpsec's pipe without classification or crypto),
xdpsec with its default configuration per suite, and wireguard-go when a binary is found
(--wireguard-go, build/wireguard-go from hack/wireguard-go.sh, or $PATH).

Workloads: TCP with 1 and 4 streams (iperf3); UDP at 64, 512 and 1400 bytes and IMIX from an XDP
generator on h1 (BPF_PROG_TEST_RUN with live frames) that outruns the gateways, counted by an XDP
sink on h2; an RFC 2544 search for the highest rate with loss ≤ 0.1 %; one-way latency
percentiles of timestamped probes at fixed loads; xdpsec by workers, SAs/policies and flows; a
storm of bad packets (truncated ESP, unknown SPIs, replays, bad ICVs, garbage) injected towards
gw2 beside valid traffic, each counted by gw2 under its reason and none reaching h2; and the ESP
engine's Encap against the raw AEAD Seal.

Writes bench.json (the schema internal/bench.Report), bench.md (the tables and the goals, with
ratios within this run) and SVG plots into --out. --quick takes about two minutes, the full run
under fifteen. All traffic stays inside the testbed's namespaces (xs-bench-*), removed at the end.
Needs root, iperf3 and ethtool (hack/deps.sh installs them).

--netns h1=NS,gw1=NS,gw2=NS,h2=NS runs on a topology that exists already instead of building
one: four namespaces, each node in its own, linked h1 — gw1 — gw2 — h2. --dev names the six
interfaces when they are not the testbed's own names (h1=h1-eth0, gw1-lan=gw1-lan,
gw1-wan=gw1-wan, gw2-wan=gw2-wan, gw2-lan=gw2-lan, h2=h2-eth0). Their addresses are read from
them (one global IPv4 address each; IPv6 is measured when all six have one); the bench checks
that every interface exists and is up without an XDP program, that the gateways forward, and
that h1 and h2 route to each other through gw1 and gw2, and says what is missing. It never
removes an adopted topology: it attaches and detaches only its own programs, starts and stops
only its own processes, and restores every setting it changes (GRO, queue counts with --queues
or in the workers phase, wireguard-go's routes); the report names the topology.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range o.Phases {
				if !slices.Contains(bench.AllPhases, p) {
					return usageErrorf("--phases %s: want some of %s", p, strings.Join(bench.AllPhases, ","))
				}
			}
			if o.Queues < 0 || o.Queues > 64 {
				return usageErrorf("--queues %d: want 1 to 64 (0: one per CPU)", o.Queues)
			}
			if o.StormPackets < 0 || o.StormPackets > bench.MaxStormPackets {
				return usageErrorf("--storm-packets %d: want 1 to %d (0: the default)", o.StormPackets, bench.MaxStormPackets)
			}
			if len(netns) > 0 || len(devs) > 0 {
				if len(netns) == 0 {
					return usageErrorf("--dev names interfaces of an existing topology: give its namespaces with --netns")
				}
				t, err := testbed.TopologyFromNames(netns, devs)
				if err != nil {
					return usageErrorf("%v", err)
				}
				o.Topology = &t
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			o.Command = "xdpsec " + strings.Join(os.Args[1:], " ")
			o.Progress = a.Err
			o.Log = a.Log
			rep, err := bench.Run(ctx, o)
			if rep == nil {
				return err
			}
			fmt.Fprint(a.Out, rep.Markdown())
			fmt.Fprintf(a.Out, "\nwrote %s, %s and the plots\n", filepath.Join(o.OutDir, "bench.json"), filepath.Join(o.OutDir, "bench.md"))
			if err != nil {
				return err
			}
			if cerr := rep.Check(); cerr != nil {
				return errors.Join(errors.New("the report does not account for every measurement"), cerr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Quick, "quick", false, "the short run (about two minutes): one round, fewer points")
	f.IntVar(&o.Rounds, "rounds", 0, "rounds of every system (0: 3, or 1 with --quick)")
	f.StringSliceVar(&o.Systems, "systems", nil, "measure only these `systems` (kernel, xsfwd, xdpsec, xdpsec/SUITE, wireguard-go)")
	f.StringSliceVar(&o.Phases, "phases", nil, "run only these `phases` ("+strings.Join(bench.AllPhases, ",")+")")
	f.StringSliceVar(&o.Suites, "suites", nil, "xdpsec `suites` (default aes-gcm-128,chacha20-poly1305)")
	f.StringVar(&o.WireguardGo, "wireguard-go", "", "the wireguard-go `binary` (default build/wireguard-go, then $PATH)")
	f.IntVar(&o.Queues, "queues", 0, "queues of every veth (0: one per CPU, at most 8; with --netns: keep the interfaces' own)")
	f.IntVar(&o.StormPackets, "storm-packets", 0, "bad packets of each kind in the storm (0: 5000, 2000 with --quick)")
	f.StringToStringVar(&netns, "netns", nil, "run on an existing topology: the `namespaces` h1=NS,gw1=NS,gw2=NS,h2=NS (never removed; settings restored)")
	f.StringToStringVar(&devs, "dev", nil, "with --netns, the `interfaces` h1=IF,gw1-lan=IF,gw1-wan=IF,gw2-wan=IF,gw2-lan=IF,h2=IF (default the testbed's names)")
	f.StringVar(&o.OutDir, "out", filepath.Join("build", "bench"), "`directory` for bench.json, bench.md and the plots")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the run (gateways, forwarders, generator) to `file`")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this `time`")
	return cmd
}
