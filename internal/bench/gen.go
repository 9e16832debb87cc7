//go:build linux

package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf/bench"
	"github.com/xdpsec/xdpsec/internal/testbed"
)

// The generator: bench_gen (bpf/bench) run through BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES
// on h1-eth0. Each run rewrites the template into the workload's next packet and transmits it
// (XDP_TX) to gw1: the kernel's veth_xdp_xmit puts it on the peer's receive queue of the CPU the
// generator runs on, so one generator thread per CPU spreads the load over the gateways' queues as
// RSS would. iperf3's UDP tops out near 0.3 Mpps here (PERF-NOTES); this offers several Mpps.

// Frame sizes are Ethernet frames with their 4-byte FCS, as RFC 2544 counts them; 0 means IMIX.
const (
	IMIX    = 0
	fcsLen  = 4
	maxSize = 1518
)

// SinkPort is the UDP destination port of the generator's packets; ProbePort that of the latency
// probes, which the sink passes to h2's stack.
const (
	SinkPort  = 9
	ProbePort = 7777
)

// Workload is what the generator sends.
type Workload struct {
	Size  int // Ethernet frame size with FCS (64 … 1518); IMIX for 64/594/1518 in 7:4:1
	Flows int // distinct flows (a power of two, default 1): source port and address vary
	// PerPolicy puts the flow index into the ports (destination port from PortBase, then the
	// source port), so that each flow matches its own port policy (scaling with SAs).
	PerPolicy bool
	PortBase  uint16
}

// genSources are the source addresses bench_gen gives a workload's flows (bpf/bench: 198.18.1.32
// and up, one address per 32,768 flows, 1M flows at most), inside the h1 network of the testbed New
// builds. On a path whose h1 network does not hold them (an adopted topology) the tunnel's
// policies would not match them, so the generator varies the destination and source ports
// instead (Workload.PerPolicy, from genPortBase): as many distinct flows, from h1's own address.
var genSources = netip.MustParsePrefix("198.18.1.32/27")

// genPortBase is the first destination port of flows varied by port: the 32,768 ports from it
// stay clear of ProbePort.
const genPortBase = 10000

func genSourcesFit(t *testbed.Topology) bool {
	lan := t.LAN1(false)
	return lan.Bits() <= genSources.Bits() && lan.Contains(genSources.Addr())
}

// Generator offers a workload from h1 to h2.
type Generator struct {
	tb      *testbed.Testbed
	objs    bench.BenchObjects
	frame   []byte
	ifindex int
	threads int
}

// NewGenerator loads the generator for w on tb's h1. threads is the number of CPUs it runs on
// (one thread each).
func NewGenerator(ctx context.Context, tb *testbed.Testbed, w Workload, threads int) (*Generator, error) {
	topo := tb.Topology()
	if !w.PerPolicy && !genSourcesFit(&topo) {
		w.PerPolicy, w.PortBase = true, genPortBase
	}
	if w.Flows <= 0 {
		w.Flows = 1
	}
	if w.Flows&(w.Flows-1) != 0 {
		return nil, fmt.Errorf("generator: %d flows is not a power of two", w.Flows)
	}
	if w.PortBase == 0 {
		w.PortBase = 1024
	}
	size := w.Size
	if size == IMIX {
		size = maxSize
	}
	if size < 64 || size > maxSize {
		return nil, fmt.Errorf("generator: frame size %d outside 64-%d", size, maxSize)
	}
	spec, err := bench.LoadBench()
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{
		bench.BenchVarFlowsMask:   uint32(w.Flows - 1),
		bench.BenchVarFlowInDport: boolU32(w.PerPolicy),
		bench.BenchVarPortBase:    w.PortBase,
		bench.BenchVarImix:        boolU32(w.Size == IMIX),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("generator: set %s: %w", name, err)
		}
	}
	g := &Generator{tb: tb, threads: max(threads, 1)}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		return nil, fmt.Errorf("generator: load: %w", err)
	}
	if g.frame, err = udpTemplate(ctx, tb, &topo, size-fcsLen); err != nil {
		g.Close()
		return nil, err
	}
	err = tb.InNS(testbed.H1, func() error {
		ifc, err := net.InterfaceByName(topo.H1.Dev)
		if err != nil {
			return err
		}
		g.ifindex = ifc.Index
		return nil
	})
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Close releases the program.
func (g *Generator) Close() { g.objs.Close() }

// udpTemplate is an IPv4/UDP frame of n bytes (without FCS) from h1 to h2's sink port, addressed to
// gw1's LAN port. The generator rewrites source, ports, lengths and checksum per packet.
func udpTemplate(ctx context.Context, tb *testbed.Testbed, t *testbed.Topology, n int) ([]byte, error) {
	dmac, err := tb.MAC(ctx, testbed.GW1, t.GW1LAN.Dev)
	if err != nil {
		return nil, err
	}
	smac, err := tb.MAC(ctx, testbed.H1, t.H1.Dev)
	if err != nil {
		return nil, err
	}
	udp := make([]byte, n-14-20)
	binary.BigEndian.PutUint16(udp[0:], 1024)
	binary.BigEndian.PutUint16(udp[2:], SinkPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	return testbed.IPv4Frame(dmac, smac, t.H1.Addr(false), t.H2.Addr(false), 17, udp), nil
}

// thread runs fn on a thread pinned to cpu inside h1's namespace; fn transmits with send(n).
func (g *Generator) thread(cpu int, fn func(send func(n int) error) error) error {
	return g.tb.InNS(testbed.H1, func() error {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin generator to cpu %d: %w", cpu, err)
		}
		md := make([]byte, 24) // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
		binary.LittleEndian.PutUint32(md[4:], uint32(len(g.frame)))
		binary.LittleEndian.PutUint32(md[12:], uint32(g.ifindex))
		opts := &ebpf.RunOptions{Data: g.frame, Context: md, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: 64}
		return fn(func(n int) error {
			for n > 0 {
				opts.Repeat = uint32(min(n, 1<<20))
				if _, err := g.objs.BenchGen.Run(opts); err != nil {
					return fmt.Errorf("run generator: %w", err)
				}
				n -= int(opts.Repeat)
			}
			return nil
		})
	})
}

// Paced offers rate frames per second (0: as fast as it goes) for d, in slices of about a
// millisecond per thread, and returns how many it offered.
func (g *Generator) Paced(ctx context.Context, rate float64, d time.Duration) (int, error) {
	per := rate / float64(g.threads)
	chunk := max(16, int(per/1000))
	if rate <= 0 {
		per, chunk = math.Inf(1), 4096
	}
	var mu sync.Mutex
	sent := 0
	err := g.parallel(func(cpu int) error {
		return g.thread(cpu, func(send func(int) error) error {
			start := time.Now()
			n := 0
			defer func() {
				mu.Lock()
				sent += n
				mu.Unlock()
			}()
			for time.Since(start) < d && ctx.Err() == nil {
				if err := send(chunk); err != nil {
					return err
				}
				n += chunk
				if ahead := time.Duration(float64(n)/per*float64(time.Second)) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
			return nil
		})
	})
	return sent, err
}

func (g *Generator) parallel(fn func(cpu int) error) error {
	errs := make([]error, g.threads)
	var wg sync.WaitGroup
	for i := range g.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i % runtime.NumCPU())
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Sink counts and drops the generator's packets at h2 (bench_sink on h2-eth0).
type Sink struct {
	objs bench.BenchObjects
	l    link.Link
}

// AttachSink loads bench_sink and attaches it to h2's interface in native mode.
func AttachSink(tb *testbed.Testbed) (*Sink, error) {
	dev := tb.Topology().H2.Dev
	spec, err := bench.LoadBench()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables[bench.BenchVarProbePort].Set(uint16(ProbePort)); err != nil {
		return nil, err
	}
	if err := spec.Variables[bench.BenchVarStormPort].Set(uint16(StormPort)); err != nil {
		return nil, err
	}
	s := &Sink{}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, fmt.Errorf("sink: load: %w", err)
	}
	err = tb.InNS(testbed.H2, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		s.l, err = link.AttachXDP(link.XDPOptions{Program: s.objs.BenchSink, Interface: ifc.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		s.objs.Close()
		return nil, fmt.Errorf("sink: attach to %s: %w", dev, err)
	}
	return s, nil
}

// Count returns the packets and bytes the sink has counted so far.
func (s *Sink) Count() (packets, bytes uint64, err error) {
	var per []bench.BenchSinkCount
	if err := s.objs.SinkCounts.Lookup(uint32(0), &per); err != nil {
		return 0, 0, fmt.Errorf("sink: read counters: %w", err)
	}
	for _, c := range per {
		packets += c.Packets
		bytes += c.Bytes
	}
	return packets, bytes, nil
}

// Close detaches the sink.
func (s *Sink) Close() error {
	err := s.l.Close()
	s.objs.Close()
	return err
}
