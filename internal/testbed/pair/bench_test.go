//go:build linux

package pair_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testbed/pair"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// The whole-gateway benchmarks run the two gateways of internal/testbed in this
// process, so `go test -cpuprofile` profiles their workers. Flags tune them:
//
//	go test -c -o /tmp/pair.test ./internal/testbed/pair
//	/tmp/pair.test -test.run xxx -test.bench Testbed -test.benchtime 1x -tb.secs 5 -tb.runs 3
var (
	tbSecs    = flag.Int("tb.secs", 5, "seconds per iperf3 run (BenchmarkTestbed*)")
	tbRuns    = flag.Int("tb.runs", 3, "iperf3 runs per figure (BenchmarkTestbed*)")
	tbStreams = flag.Int("tb.streams", 1, "iperf3 streams (BenchmarkTestbedTCP)")
	tbV6      = flag.Bool("tb.v6", false, "use the IPv6 tunnel (BenchmarkTestbedTCP)")
	tbOffload = flag.Bool("tb.offload", false, "leave the hosts' transmit checksum offload on, their default (pair.Options.HostOffloads)")
	tbBusy    = flag.Bool("tb.busypoll", false, "busy-polling workers")
	tbGRO     = flag.String("tb.gro", "", "comma-separated interfaces (as -tb.threaded) that get GRO turned on (veth: NAPI + GRO for packets without XDP)")
	tbQueues  = flag.Int("tb.queues", 0, "queues per veth (testbed.Options.Queues: one worker per queue)")
	tbFrames  = flag.Uint("tb.frames", 16384, "AF_XDP frames per gateway (dataplane.umem_frames; the daemon sizes rings from it)")
	tbPkts    = flag.Int("tb.pkts", 2_000_000, "64-byte frames per generator run (BenchmarkTestbedPPS)")
	tbMulti   = flag.Bool("tb.multibuf", false, "dataplane.multi_buffer with the protected sides in generic XDP mode (the hosts keep TSO; implies -tb.offload)")
	tbProt    = flag.String("tb.protmode", "", "dataplane.protected_xdp_mode (native|generic; -tb.multibuf sets generic)")
	tbLinks   = flag.Bool("tb.linkstats", false, "log every node's `ip -s link` and the gateways' counters after the runs (where packets are lost)")
	tbThread  = flag.String("tb.threaded", "", "comma-separated interfaces (of gw1-lan,gw1-wan,gw2-wan,gw2-lan,h1-eth0,h2-eth0, or all) whose NAPI runs in a kernel thread")
)

func startTestbed(b *testing.B) (*testbed.Testbed, *pair.Pair) {
	b.Helper()
	testutil.RequireRoot(b, "the testbed benchmarks build namespaces and load XDP and AF_XDP")
	ctx := context.Background()
	tb, err := testbed.New(ctx, testbed.Options{Tag: "wkb", Queues: *tbQueues})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tb.Close() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dp := testbed.Dataplane{BusyPoll: *tbBusy, UMEMFrames: uint32(*tbFrames), MultiBuffer: *tbMulti, ProtectedXDPMode: *tbProt}
	if *tbMulti && dp.ProtectedXDPMode == "" {
		dp.ProtectedXDPMode = "generic"
	}
	// Super-packets need the hosts' TSO, which needs their checksum offload.
	gws, err := pair.Start(ctx, tb, pair.Options{Log: log, HostOffloads: *tbOffload || *tbMulti, Dataplane: dp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gws.Close() })
	for _, d := range []struct {
		n   testbed.Node
		dev string
	}{{testbed.H1, testbed.H1Eth}, {testbed.GW1, testbed.GW1LAN}, {testbed.GW1, testbed.GW1WAN},
		{testbed.GW2, testbed.GW2WAN}, {testbed.GW2, testbed.GW2LAN}, {testbed.H2, testbed.H2Eth}} {
		if *tbGRO == "all" || strings.Contains(","+*tbGRO+",", ","+d.dev+",") {
			if _, err := tb.Run(ctx, d.n, "ethtool", "-K", d.dev, "gro", "on"); err != nil {
				b.Fatal(err)
			}
		}
		if *tbThread == "all" || strings.Contains(","+*tbThread+",", ","+d.dev+",") {
			if _, err := tb.Run(ctx, d.n, "sh", "-c", "echo 1 > /sys/class/net/"+d.dev+"/threaded"); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, dst := range []netip.Addr{testbed.H2Addr4, testbed.H2Addr6} {
		if _, err := tb.WarmUp(ctx, testbed.H1, dst); err != nil {
			b.Fatal(err)
		}
	}
	return tb, gws
}

// cpuTimes is the machine-wide /proc/stat "cpu" line: user+nice, system,
// softirq+irq, idle+iowait, steal (in ticks).
type cpuTimes struct{ user, sys, soft, idle, steal float64 }

func readCPU(b *testing.B) cpuTimes {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
	v := make([]float64, len(f))
	for i := 1; i < len(f); i++ {
		v[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return cpuTimes{user: v[1] + v[2], sys: v[3], idle: v[4] + v[5], soft: v[6] + v[7], steal: v[8]}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the machine's CPU split over a run as fractions of all
// CPUs, and this process's (the gateways') CPU seconds per second.
func reportCPU(b *testing.B, c0, c1 cpuTimes, self time.Duration, wall time.Duration, n int) {
	tot := (c1.user - c0.user) + (c1.sys - c0.sys) + (c1.soft - c0.soft) + (c1.idle - c0.idle) + (c1.steal - c0.steal)
	if tot <= 0 {
		return
	}
	b.ReportMetric((c1.user-c0.user)/tot, "user")
	b.ReportMetric((c1.sys-c0.sys)/tot, "sys")
	b.ReportMetric((c1.soft-c0.soft)/tot, "softirq")
	b.ReportMetric((c1.idle-c0.idle)/tot, "idle")
	b.ReportMetric(self.Seconds()/wall.Seconds()/float64(n), "gw-cpu/s")
}

// BenchmarkTestbedTCP measures TCP h1 → h2 through the IPv4 (or, with
// -tb.v6, IPv6) tunnel with iperf3; -tb.offload leaves the hosts' checksum
// offload on (CHECKSUM_PARTIAL packets reach the card).
func BenchmarkTestbedTCP(b *testing.B) {
	tb, gws := startTestbed(b)
	ctx := context.Background()
	dst := testbed.H2Addr4
	if *tbV6 {
		dst = testbed.H2Addr6
	}
	var rates []float64
	var retr int64
	c0, s0, t0 := readCPU(b), selfCPU(), time.Now()
	for b.Loop() {
		for range *tbRuns {
			r, err := tb.Iperf3(ctx, testbed.IperfOptions{Dst: dst, Streams: *tbStreams, Duration: time.Duration(*tbSecs) * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			rates = append(rates, r.BitsPerSecond/1e9)
			retr += r.Retransmits
		}
	}
	reportCPU(b, c0, readCPU(b), selfCPU()-s0, time.Since(t0), 1)
	b.ReportMetric(median(rates), "Gbit/s")
	b.ReportMetric(float64(retr)/float64(len(rates)), "retr/run")
	st := gws.GW1.WorkerStats()
	if st["chains"] > 0 {
		b.ReportMetric(float64(st["segments"])/float64(st["chains"]), "segs/chain")
	}
	b.Logf("Gbit/s per run: %.2f; gw1 sealed %d, chains %d, segments %d, chain drops %d",
		rates, st["sealed"], st["chains"], st["segments"], st["chain_drops"])
	if *tbLinks {
		logLinks(b, tb, gws)
	}
}

// BenchmarkTestbedPPS offers 64-byte UDP h1 → h2 from a live-frames
// generator (as hack/xsbench does) and reports what gw1 sealed and
// gw2 delivered per second of the generator's run, and gw1's RX ring losses.
func BenchmarkTestbedPPS(b *testing.B) {
	tb, gws := startTestbed(b)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 3 /* XDP_TX */), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	frame, err := tb.UDPFrame(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var offered, sealed, opened []float64
	var ringFull uint64
	c0, s0, t0 := readCPU(b), selfCPU(), time.Now()
	var genTime time.Duration
	for b.Loop() {
		for range *tbRuns {
			st0 := gws.GW1.SocketStats()
			sl0, op0 := gws.GW1.WorkerStats()["sealed"], gws.GW2.WorkerStats()["opened"]
			var el time.Duration
			err := tb.InNS(testbed.H1, func() error {
				ifc, err := net.InterfaceByName(testbed.H1Eth)
				if err != nil {
					return err
				}
				md := make([]byte, 24)
				binary.LittleEndian.PutUint32(md[4:], uint32(len(frame)))
				binary.LittleEndian.PutUint32(md[12:], uint32(ifc.Index))
				start := time.Now()
				_, err = prog.Run(&ebpf.RunOptions{Data: frame, Context: md, Repeat: uint32(*tbPkts),
					Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: 64})
				el = time.Since(start)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			genTime += el
			time.Sleep(500 * time.Millisecond)
			sl1, op1 := gws.GW1.WorkerStats()["sealed"], gws.GW2.WorkerStats()["opened"]
			st1 := gws.GW1.SocketStats()
			for k, v := range st1 {
				ringFull += v.RXRingFull - st0[k].RXRingFull
			}
			s := el.Seconds()
			offered = append(offered, float64(*tbPkts)/s/1e6)
			sealed = append(sealed, float64(sl1-sl0)/s/1e6)
			opened = append(opened, float64(op1-op0)/s/1e6)
		}
	}
	reportCPU(b, c0, readCPU(b), selfCPU()-s0, time.Since(t0), 1)
	b.ReportMetric(median(offered), "offered-Mpps")
	b.ReportMetric(median(sealed), "sealed-Mpps")
	b.ReportMetric(median(opened), "delivered-Mpps")
	b.ReportMetric(float64(ringFull)/float64(len(sealed)), "gw1-rxringfull/run")
	b.Logf("offered %.2f sealed %.2f delivered %.2f Mpps", offered, sealed, opened)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// logLinks logs where packets were lost: every node's interface counters,
// the workers' and sockets' counters, and the cards' reasons.
func logLinks(b *testing.B, tb *testbed.Testbed, gws *pair.Pair) {
	ctx := context.Background()
	for _, n := range []testbed.Node{testbed.H1, testbed.GW1, testbed.GW2, testbed.H2} {
		out, _ := tb.Run(ctx, n, "ip", "-s", "-s", "link")
		fmt.Fprintf(os.Stderr, "%s:\n%s\n", n, out)
		out, _ = tb.Run(ctx, n, "nstat", "-az", "TcpExtTCPLostRetransmit", "TcpRetransSegs", "IpInDiscards", "IpOutDiscards", "TcpInCsumErrors", "IpInHdrErrors", "Ip6InDiscards")
		fmt.Fprintf(os.Stderr, "%s nstat:\n%s\n", n, out)
	}
	for i, g := range []*daemonStats{{gws.GW1.WorkerStats(), gws.GW1.SocketStats()}, {gws.GW2.WorkerStats(), gws.GW2.SocketStats()}} {
		fmt.Fprintf(os.Stderr, "gw%d workers %v sockets %+v\n", i+1, g.w, g.s)
	}
}

type daemonStats struct {
	w map[string]uint64
	s any
}
