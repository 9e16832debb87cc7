package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testbed/pair"
)

func init() { register(newDemoCmd) }

type demoOpts struct {
	duration time.Duration
	streams  int
	hold     bool
	cleanup  bool
}

// demoPrefix starts the names of every demo's namespaces and instances.
const demoPrefix = testbed.NamePrefix + "demo-"

func newDemoCmd(a *App) *cobra.Command {
	var o demoOpts
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build a four-namespace testbed with two xdpsec gateways and drive encrypted traffic through it (root)",
		Long: `Build the testbed h1 — gw1 — gw2 — h2 (network namespaces joined by veth pairs, addresses from
198.18.0.0/15 and 2001:2::/48), start an xdpsec gateway on gw1 and on gw2 with a built-in
configuration (one IPv4 and one IPv6 tunnel, AES-GCM-128, fresh random keys), ping through both
tunnels, drive TCP traffic h1 → h2 with iperf3 over each while a progress line shows the
gateways' counters, then print the throughput and the per-SA counters and tear everything down —
also when interrupted (Ctrl-C).

While it runs, the card's tables are pinned under /sys/fs/bpf/xdpsec/<instance>/: the demo prints
the bpftool commands to read them. --hold keeps the gateways up after the traffic until Ctrl-C.
--cleanup removes what a demo that was killed (kill -9) left behind — its namespaces
(xs-demo-*) and pins — and does nothing else (a demo still running loses its testbed).
Needs root, iperf3 and ping (hack/deps.sh installs them).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.cleanup {
				return sweepDemo(a.Out, demoPrefix)
			}
			if o.duration < time.Second || o.duration > 10*time.Minute {
				return usageErrorf("--duration %v: want 1s to 10m", o.duration)
			}
			if o.streams < 1 || o.streams > 16 {
				return usageErrorf("--streams %d: want 1 to 16", o.streams)
			}
			return runDemo(cmd.Context(), a, o)
		},
	}
	cmd.Flags().DurationVar(&o.duration, "duration", 3*time.Second, "traffic `time` per tunnel")
	cmd.Flags().IntVar(&o.streams, "streams", 1, "parallel TCP `streams` (iperf3 -P)")
	cmd.Flags().BoolVar(&o.hold, "hold", false, "keep the testbed and gateways up after the traffic, until Ctrl-C")
	cmd.Flags().BoolVar(&o.cleanup, "cleanup", false, "only remove the namespaces and pins a killed demo left behind")
	return cmd
}

func runDemo(ctx context.Context, a *App, o demoOpts) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("demo: needs root (network namespaces, XDP, AF_XDP); run it with sudo")
	}
	for _, tool := range []string{"ip", "ping", "iperf3", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("demo: %s is not installed (run hack/deps.sh)", tool)
		}
	}
	if err := ensureBPFFS(a.Out); err != nil {
		return err
	}
	w := a.Out
	fmt.Fprintln(w, "== building the testbed: h1 — gw1 — gw2 — h2")
	tb, err := testbed.New(ctx, testbed.Options{Tag: "demo"})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		fmt.Fprintln(w, "== tearing down")
		if cerr := tb.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fmt.Fprintf(w, "   namespaces %s-{h1,gw1,gw2,h2}\n", tb.Prefix)
	fmt.Fprintf(w, "   h1 %s %s  →  gw1  →  wire %s %s  →  gw2  →  h2 %s %s\n", testbed.H1Addr4, testbed.H1Addr6,
		testbed.WirePrefix4, testbed.WirePrefix6, testbed.H2Addr4, testbed.H2Addr6)

	fmt.Fprintln(w, "== starting the gateways (IPv4 and IPv6 tunnel, AES-GCM-128)")
	gws, err := pair.Start(ctx, tb, pair.Options{Log: a.Log, API: true})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if cerr := gws.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, d := range []*daemon.Daemon{gws.GW1, gws.GW2} {
		fmt.Fprintf(w, "   %s: card on %s (%s XDP) and %s (%s XDP), %d worker(s), AF_XDP %s mode\n", d.Info.Instance,
			d.Info.Protected.Name, d.Info.Protected.Mode, d.Info.Wire.Name, d.Info.Wire.Mode, d.Info.Queues, d.Info.SocketMode)
	}
	printBpftool(w, gws.GW1, tb.NetNS(testbed.GW1))

	fmt.Fprintln(w, "== ping through both tunnels")
	for _, c := range []struct {
		from testbed.Node
		dst  netip.Addr
	}{{testbed.H1, testbed.H2Addr4}, {testbed.H1, testbed.H2Addr6}, {testbed.H2, testbed.H1Addr4}, {testbed.H2, testbed.H1Addr6}} {
		// The first packet towards a host neither gateway has sent to yet is dropped while the
		// gateway resolves its neighbour (counted as no_next_hop_in): warm up first.
		res := "ok"
		if lost, err := tb.WarmUp(ctx, c.from, c.dst); err != nil {
			res = "FAILED: " + err.Error()
		} else if err := tb.Ping(ctx, c.from, c.dst, 3); err != nil {
			res = "FAILED: " + err.Error()
		} else if lost > 0 {
			res = fmt.Sprintf("ok (%d first echo(es) lost while the gateways resolved their next hops)", lost)
		}
		fmt.Fprintf(w, "   %s → %-16s %s\n", c.from, c.dst, res)
		if ctx.Err() != nil {
			return nil
		}
	}

	for _, dst := range []struct {
		name string
		addr netip.Addr
		spi  uint32
	}{{"IPv4", testbed.H2Addr4, testbed.DefaultTunnels[0].SPI}, {"IPv6", testbed.H2Addr6, testbed.DefaultTunnels[1].SPI}} {
		fmt.Fprintf(w, "== TCP h1 → h2 over the %s tunnel, %d stream(s), %v\n", dst.name, o.streams, o.duration)
		res, err := trafficWithProgress(ctx, w, tb, gws, testbed.IperfOptions{Dst: dst.addr,
			Streams: o.streams, Duration: o.duration}, dst.spi)
		if ctx.Err() != nil {
			// What the gateways counted up to the interruption, then the teardown.
			fmt.Fprintln(w, "\n   interrupted")
			fmt.Fprintln(w, "== per-SA counters")
			printSAs(w, gws)
			return nil
		}
		if err != nil {
			fmt.Fprintf(w, "\n   iperf3 failed: %v\n", err)
			continue
		}
		fmt.Fprintf(w, "\n   iperf3: %.2f Gbit/s received, %d retransmits\n", res.BitsPerSecond/1e9, res.Retransmits)
	}

	fmt.Fprintln(w, "== per-SA counters")
	printSAs(w, gws)
	if o.hold {
		fmt.Fprintln(w, "== holding the gateways up; Ctrl-C tears everything down. Meanwhile, for example:")
		printBpftool(w, gws.GW1, tb.NetNS(testbed.GW1))
		for _, d := range []*daemon.Daemon{gws.GW1, gws.GW2} {
			fmt.Fprintf(w, "   xdpsec sa list -s --instance %s\n", d.Info.Instance)
		}
		fmt.Fprintf(w, "   ip netns exec %s ping %s\n", tb.NetNS(testbed.H1), testbed.H2Addr4)
		<-ctx.Done()
	}
	return nil
}

// trafficWithProgress runs iperf3 and, meanwhile, prints a line a quarter-second updated from
// gw1's counters for the SA with spi.
func trafficWithProgress(ctx context.Context, w io.Writer, tb *testbed.Testbed, gws *pair.Pair,
	o testbed.IperfOptions, spi uint32) (testbed.IperfResult, error) {
	type result struct {
		r   testbed.IperfResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := tb.Iperf3(ctx, o)
		done <- result{r, err}
	}()
	start := time.Now()
	base, baseIn := saBySPI(gws.GW1, spi, "out"), saBySPI(gws.GW2, spi, "in")
	last, lastT := base, start
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.r, r.err
		case now := <-tick.C:
			cur := saBySPI(gws.GW1, spi, "out")
			rate := float64(cur.Bytes-last.Bytes) * 8 / now.Sub(lastT).Seconds() / 1e9
			in := saBySPI(gws.GW2, spi, "in")
			fmt.Fprintf(w, "\r   %5.1fs  gw1 sealed %9d pkts %8.1f MB  %6.2f Gbit/s   gw2 opened %9d pkts",
				now.Sub(start).Seconds(), cur.Packets-base.Packets, float64(cur.Bytes-base.Bytes)/1e6, rate,
				in.Packets-baseIn.Packets)
			last, lastT = cur, now
		}
	}
}

func saBySPI(d *daemon.Daemon, spi uint32, dir string) daemon.SAInfo {
	for _, sa := range d.SAs() {
		if sa.SPI == spi && sa.Dir == dir {
			return sa
		}
	}
	return daemon.SAInfo{}
}

func printSAs(w io.Writer, gws *pair.Pair) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "gateway\tSA\tSPI\tdir\tpackets\tbytes\treplay\tintegrity\ttoo big¹\tno next hop²\tother errors\t")
	for _, g := range []struct {
		name string
		d    *daemon.Daemon
	}{{"gw1", gws.GW1}, {"gw2", gws.GW2}} {
		for _, sa := range g.d.SAs() {
			fmt.Fprintf(tw, "%s\t%s\t0x%08x\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", g.name, sa.Name, sa.SPI, sa.Dir,
				sa.Packets, sa.Bytes, sa.ReplayErrors, sa.IntegrityErrors, sa.TooBig, sa.NoNextHop,
				sa.OtherErrors-min(sa.OtherErrors, sa.TooBig+sa.NoNextHop))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "   ¹ too big for the tunnel: answered with ICMP fragmentation-needed / packet-too-big, so the")
	fmt.Fprintln(w, "     sender lowers its path MTU (IPv4 without DF is fragmented instead and counted as sent)")
	fmt.Fprintln(w, "   ² dropped while the gateway resolved the destination's neighbour (ARP / NDP); the sender retries")
	for _, g := range []struct {
		name string
		d    *daemon.Daemon
	}{{"gw1", gws.GW1}, {"gw2", gws.GW2}} {
		ws := g.d.WorkerStats()
		fmt.Fprintf(w, "   %s workers: sealed %d, opened %d, ICMP too-big sent %d, no next hop %d, dropped for a full TX ring %d\n",
			g.name, ws["sealed"], ws["opened"], ws["ptb_sent"], ws["no_next_hop_in"]+ws["no_neigh_out"], ws["tx_ring_full"])
	}
}

// printBpftool shows how to read the card's tables while the demo runs.
func printBpftool(w io.Writer, d *daemon.Daemon, ns string) {
	dir := d.Info.PinDir
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "   the card's tables are pinned under %s; read them with bpftool while the demo runs:\n", dir)
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	for _, m := range []struct{ name, what string }{
		{"policy_table", "the offloaded SPD"},
		{"sa_table", "the offloaded SAs (selectors and SPIs, never keys)"},
		{"worker_stats", "per-SA packets, bytes and errors the crypto workers count"},
		{"sa_stats", "per-SA packets the card handed to the workers, per CPU"},
		{"reasons", "the card's verdicts and drops by reason"},
	} {
		if have[m.name] {
			fmt.Fprintf(w, "     bpftool map dump pinned %-*s # %s\n", len(dir)+14, filepath.Join(dir, m.name), m.what)
		}
	}
	fmt.Fprintf(w, "     ip netns exec %s bpftool net show   # the attached XDP programs\n", ns)
}

// sweepDemo removes the namespaces and pin directories whose names start with prefix.
func sweepDemo(w io.Writer, prefix string) error {
	if os.Geteuid() != 0 {
		return errors.New("demo: --cleanup needs root")
	}
	removed, err := testbed.SweepReport(prefix)
	for _, r := range removed {
		fmt.Fprintln(w, "removed", r)
	}
	if err != nil {
		return fmt.Errorf("demo: clean up: %w", err)
	}
	if len(removed) == 0 {
		fmt.Fprintln(w, "nothing to remove")
	}
	return nil
}

// ensureBPFFS mounts bpffs on /sys/fs/bpf when nothing is mounted there (a fresh machine), as
// hack/test.sh does.
func ensureBPFFS(w io.Writer) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
		return fmt.Errorf("demo: /sys/fs/bpf is not a bpffs and mounting one failed: %w", err)
	}
	fmt.Fprintln(w, "   mounted bpffs on /sys/fs/bpf")
	return nil
}
