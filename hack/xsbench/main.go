// Command xsbench measures the data path's first figures on the four-namespace testbed
// (hack/bench.sh runs it as root): TCP throughput h1 → h2 with iperf3 through plain kernel
// forwarding and through the xdpsec tunnels, and the packet rate of 64-byte UDP through a tunnel
// with a BPF_PROG_TEST_RUN live-frames generator (iperf3 cannot offer more than ~0.3 Mpps here).
// It prints a Markdown table; every run is bounded by -t.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testbed/pair"
)

func main() {
	secs := flag.Int("t", 5, "seconds per iperf3 run")
	runs := flag.Int("runs", 3, "runs per figure (the median is reported)")
	pkts := flag.Int("pps-packets", 2_000_000, "64-byte UDP packets the generator offers per run")
	only := flag.String("only", "", "comma-separated subset: plain, tunnel, pps")
	busy := flag.Bool("busy-poll", false, "gateways' workers busy-poll (dataplane.busy_poll)")
	frames := flag.Uint("umem-frames", 16384, "AF_XDP frames per gateway (dataplane.umem_frames)")
	multi := flag.Bool("multi-buffer", false, "dataplane.multi_buffer with the protected sides in generic XDP mode; the hosts' offloads (TSO) stay on for the tunnel")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, time.Duration(*secs)*time.Second, *runs, *pkts, *only, testbed.Dataplane{BusyPoll: *busy, UMEMFrames: uint32(*frames), MultiBuffer: *multi}); err != nil {
		fmt.Fprintln(os.Stderr, "xsbench:", err)
		os.Exit(1)
	}
}

func want(only, what string) bool {
	return only == "" || strings.Contains(","+only+",", ","+what+",")
}

func run(ctx context.Context, dur time.Duration, runs, pkts int, only string, dp testbed.Dataplane) error {
	busy := dp.BusyPoll
	tb, err := testbed.New(ctx, testbed.Options{Tag: "bench"})
	if err != nil {
		return err
	}
	defer tb.Close()
	fmt.Printf("| path | test | median of %d | runs |\n|---|---|---|---|\n", runs)
	tcp := func(label string, dst netip.Addr, streams int) error {
		var rates []float64
		for i := 0; i < runs; i++ {
			r, err := tb.Iperf3(ctx, testbed.IperfOptions{Dst: dst, Streams: streams, Duration: dur})
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			rates = append(rates, r.BitsPerSecond/1e9)
		}
		fmt.Printf("| %s | TCP %d stream(s), %v | %.2f Gbit/s | %s |\n", label, streams, dur, median(rates), list(rates, "%.2f"))
		return nil
	}
	if want(only, "plain") {
		for _, s := range []int{1, 4} {
			if err := tcp("kernel forwarding (default offloads)", testbed.H2Addr4, s); err != nil {
				return err
			}
		}
	}
	// The tunnel needs the hosts' transmit checksum offload off (see
	// testbed.HostChecksumOffloadOff); measure plain forwarding that way too, for a fair pair.
	if err := tb.HostChecksumOffloadOff(ctx); err != nil {
		return err
	}
	if want(only, "plain") {
		for _, s := range []int{1, 4} {
			if err := tcp("kernel forwarding (hosts' tx checksum offload off)", testbed.H2Addr4, s); err != nil {
				return err
			}
		}
	}
	if !want(only, "tunnel") && !want(only, "pps") {
		return nil
	}
	if dp.MultiBuffer {
		// Super-packets need the hosts' TSO back (it depends on the checksum offload), and a
		// protected side in generic mode (native XDP on a veth turns TSO off on its peer).
		dp.ProtectedXDPMode = "generic"
		for _, h := range []struct {
			n   testbed.Node
			dev string
		}{{testbed.H1, testbed.H1Eth}, {testbed.H2, testbed.H2Eth}} {
			if _, err := tb.Run(ctx, h.n, "ethtool", "-K", h.dev, "tx", "on", "tso", "on", "gso", "on"); err != nil {
				return err
			}
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gws, err := pair.Start(ctx, tb, pair.Options{Log: log, Dataplane: dp, HostOffloads: dp.MultiBuffer})
	if err != nil {
		return err
	}
	defer gws.Close()
	for _, dst := range []netip.Addr{testbed.H2Addr4, testbed.H2Addr6} {
		if _, err := tb.WarmUp(ctx, testbed.H1, dst); err != nil {
			return err
		}
	}
	if want(only, "tunnel") {
		for _, c := range []struct {
			label string
			dst   netip.Addr
		}{{"xdpsec IPv4 tunnel, AES-GCM-128" + pollNote(busy) + mbNote(dp.MultiBuffer), testbed.H2Addr4},
			{"xdpsec IPv6 tunnel, AES-GCM-128" + pollNote(busy) + mbNote(dp.MultiBuffer), testbed.H2Addr6}} {
			for _, s := range []int{1, 4} {
				if err := tcp(c.label, c.dst, s); err != nil {
					return err
				}
			}
		}
	}
	if want(only, "pps") {
		var offered, sealed, opened []float64
		for i := 0; i < runs; i++ {
			o, s, d, err := udpRate(ctx, tb, gws, pkts)
			if err != nil {
				return err
			}
			offered, sealed, opened = append(offered, o), append(sealed, s), append(opened, d)
		}
		fmt.Printf("| generator → h1-eth0 → gw1 | 64-byte UDP offered | %.2f Mpps | %s |\n", median(offered), list(offered, "%.2f"))
		fmt.Printf("| xdpsec gw1 (IPv4, AES-GCM-128%s) | 64-byte UDP sealed | %.2f Mpps | %s |\n", pollNote(busy), median(sealed), list(sealed, "%.2f"))
		fmt.Printf("| xdpsec gw1 → gw2 → h2 | 64-byte UDP delivered | %.2f Mpps | %s |\n", median(opened), list(opened, "%.2f"))
		for _, g := range []struct {
			name string
			d    *daemon.Daemon
		}{{"gw1", gws.GW1}, {"gw2", gws.GW2}} {
			fmt.Fprintf(os.Stderr, "%s sockets: %+v\n%s card: %v\n%s workers: %v\n", g.name, g.d.SocketStats(),
				g.name, nonzeroCard(g.d), g.name, g.d.WorkerStats())
		}
	}
	return nil
}

// udpRate offers pkts 64-byte UDP frames h1 → h2 from an XDP program run with
// BPF_F_TEST_XDP_LIVE_FRAMES on h1-eth0 (XDP_TX sends each copy out of h1-eth0, to gw1's card),
// and returns the rates offered, sealed by gw1 and opened by gw2, in Mpps.
func udpRate(ctx context.Context, tb *testbed.Testbed, gws *pair.Pair, pkts int) (offered, sealed, opened float64, err error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 3 /* XDP_TX */), asm.Return()}})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("load generator: %w", err)
	}
	defer prog.Close()
	frame, err := tb.UDPFrame(context.Background())
	if err != nil {
		return 0, 0, 0, err
	}
	s0, o0 := count(gws.GW1, "sealed"), count(gws.GW2, "opened")
	var el time.Duration
	err = tb.InNS(testbed.H1, func() error {
		ifc, err := net.InterfaceByName(testbed.H1Eth)
		if err != nil {
			return err
		}
		md := make([]byte, 24) // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
		// The kernel wants data_end to be the frame's length (bpf_prog_test_run_xdp).
		binary.LittleEndian.PutUint32(md[4:], uint32(len(frame)))
		binary.LittleEndian.PutUint32(md[12:], uint32(ifc.Index))
		start := time.Now()
		_, err = prog.Run(&ebpf.RunOptions{Data: frame, Context: md, Repeat: uint32(pkts),
			Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: 64})
		el = time.Since(start)
		return err
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("run generator: %w", err)
	}
	// The workers may still be draining their rings.
	time.Sleep(500 * time.Millisecond)
	s1, o1 := count(gws.GW1, "sealed"), count(gws.GW2, "opened")
	secs := el.Seconds()
	return float64(pkts) / secs / 1e6, float64(s1-s0) / secs / 1e6, float64(o1-o0) / secs / 1e6, nil
}

func pollNote(busy bool) string {
	if busy {
		return ", busy-polling workers"
	}
	return ""
}

func nonzeroCard(d *daemon.Daemon) map[string]uint64 {
	m, _ := d.Card().ReasonCounts()
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
}

func count(d *daemon.Daemon, what string) uint64 { return d.WorkerStats()[what] }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func list(v []float64, f string) string {
	var p []string
	for _, x := range v {
		p = append(p, fmt.Sprintf(f, x))
	}
	return strings.Join(p, ", ")
}

func mbNote(on bool) string {
	if on {
		return ", multi-buffer (hosts' TSO on)"
	}
	return ""
}
