//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf/bench"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/loader"
)

// The storm (issue 10): xdpsec's valid traffic (the generator's 64-byte UDP, h1 → h2) at a fixed
// rate, alone and then with bad packets injected on the wire towards gw2 — a packet socket on gw1's
// wire interface, as if from gw1 or an attacker on the wire — in known numbers per kind
// (stormpkt.go). Every bad packet must be counted at gw2 under the reason it belongs to
// (stormReasons) and none may reach h2. The kinds that reach a worker (truncated, replay, bad ICV)
// use an SA of their own (GatewayConfig.Storm) that no valid traffic uses, so its error counters
// are the storm's alone; the valid traffic's own drops (its SA's replay drops, full rings) are
// reported beside them.

// stormLoad is the valid traffic's rate in both trials, as a fraction of what it delivered flat out.
const stormLoad = 0.5

// storm runs the storm phase with base's suite.
func (r *runner) storm(ctx context.Context, base GatewayConfig) {
	x := &xdpsec{cfg: GatewayConfig{Suite: base.Suite, Storm: true}}
	r.register(x)
	res := measureStorm(ctx, r.env, x, r.p.stormPerKind, r.p.udpDur)
	what := ""
	if s := res.Storm; s != nil {
		exact := 0
		for _, k := range s.Kinds {
			if !slices.ContainsFunc(k.Counted, func(n uint64) bool { return n != k.Sent }) {
				exact++
			}
		}
		what = fmt.Sprintf("%.3f Mpps alone, %.3f with %.0f bad pps; %d/%d kinds counted exactly, %d reached h2",
			s.CleanMpps, res.Mpps, s.StormPPS, exact, len(s.Kinds), s.ReachedH2)
	}
	r.add(res, 1, what)
}

// measureStorm starts x (with GatewayConfig.Storm), measures the valid traffic flat out, then at
// stormLoad of that alone and with perKind bad packets of every kind sent over the trial of d.
func measureStorm(ctx context.Context, env *Env, x *xdpsec, perKind int, d time.Duration) Result {
	res := Result{Phase: PhaseStorm, System: x.Name(), Frame: "64"}
	if err := x.Start(ctx, env); err != nil {
		return failed(res, fmt.Errorf("start: %w", err))
	}
	defer func() {
		if err := x.Stop(); err != nil {
			env.Log.Warn("bench: stop system", "system", x.Name(), "err", err)
		}
	}()
	sink, err := AttachSink(env.TB)
	if err != nil {
		return failed(res, err)
	}
	defer sink.Close()
	gen, err := NewGenerator(ctx, env.TB, Workload{Size: 64}, env.Queues)
	if err != nil {
		return failed(res, err)
	}
	defer gen.Close()

	flat := trial(ctx, x, sink, gen, PhaseStorm, 0, d)
	if flat.Error != "" {
		return failed(res, fmt.Errorf("flat out: %s", flat.Error))
	}
	rate := stormLoad * flat.Mpps * 1e6
	if rate <= 0 {
		return failed(res, errors.New("the valid traffic delivered nothing flat out"))
	}
	clean := trial(ctx, x, sink, gen, PhaseStorm, rate, d)
	if clean.Error != "" {
		return failed(res, fmt.Errorf("at %.0f pps: %s", rate, clean.Error))
	}

	b, err := newStormBuilder(ctx, env.TB, &env.Topo, x.keys)
	if err != nil {
		return failed(res, err)
	}
	byKind, err := b.frames(perKind)
	if err != nil {
		return failed(res, err)
	}
	primer, err := b.primer()
	if err != nil {
		return failed(res, err)
	}
	inj, err := newInjector(env.TB, env.Topo.GW1WAN.Dev)
	if err != nil {
		return failed(res, err)
	}
	defer inj.Close()

	// The primer: once gw2 accepted it (its SA's window top is the primer's number) and h2's sink
	// counted it, the replays are left of the window and the sink is known to count what leaks.
	c0, err := x.stormCounters(sink)
	if err != nil {
		return failed(res, err)
	}
	if err := inj.send(primer); err != nil {
		return failed(res, fmt.Errorf("primer: %w", err))
	}
	cp, err := x.waitStorm(ctx, sink, 3*time.Second, func(c stormCounters) bool {
		return c.seq == stormPrimerSeq && c.sink == c0.sink+1
	})
	if err != nil && !errors.Is(err, errNotYet) {
		return failed(res, fmt.Errorf("primer: %w", err))
	}
	// Without the primer at h2 the storm still runs (Check fails on PrimerDelivered); without it
	// accepted by gw2 the replays would not be replays.
	if cp.seq != stormPrimerSeq {
		return failed(res, fmt.Errorf("primer: gw2's storm SA is at sequence number %d, want %d", cp.seq, stormPrimerSeq))
	}

	frames, kinds := interleave(byKind)
	type sent struct {
		n   map[string]uint64
		el  time.Duration
		err error
	}
	done := make(chan sent, 1)
	go func() {
		// The storm starts when the valid traffic runs and ends before it does.
		time.Sleep(d / 10)
		start := time.Now()
		n, err := inj.storm(ctx, frames, kinds, d*8/10)
		done <- sent{n, time.Since(start), err}
	}()
	during := trial(ctx, x, sink, gen, PhaseStorm, rate, d)
	st := <-done
	if during.Error != "" {
		return failed(res, errors.New(during.Error))
	}
	if st.err != nil {
		return failed(res, fmt.Errorf("storm: %w", st.err))
	}
	// Wait until gw2 counted every bad packet (workers may still hold some), or 2 s.
	delta := func(c stormCounters, reason string) uint64 {
		if name, ok := strings.CutPrefix(reason, "sa:"); ok {
			return c.sa[workerErrIndex[name]] - cp.sa[workerErrIndex[name]]
		}
		return c.card[reason] - cp.card[reason]
	}
	c1, err := x.waitStorm(ctx, sink, 2*time.Second, func(c stormCounters) bool {
		for _, k := range StormKinds {
			for _, reason := range stormReasons[k] {
				if delta(c, reason) < st.n[k] {
					return false
				}
			}
		}
		return true
	})
	if err != nil && !errors.Is(err, errNotYet) {
		return failed(res, err)
	}

	res = during
	res.Frame = "64"
	res.ReplayErrors = c1.validReplay - cp.validReplay
	s := &Storm{FlatOutMpps: flat.Mpps, RatePPS: rate, CleanOfferedMpps: clean.OfferedMpps,
		CleanMpps: clean.Mpps, CleanLoss: clean.Loss,
		PrimerDelivered: cp.sink - c0.sink, ReachedH2: c1.sink - cp.sink,
		WireRingFull: c1.ringFull - cp.ringFull, WireFillEmpty: c1.fillEmpty - cp.fillEmpty,
		CleanWireRingFull:  clean.Counters["gw2_wire_rx_ring_full"],
		CleanWireFillEmpty: clean.Counters["gw2_wire_fill_ring_empty"], CleanReplayErrors: clean.ReplayErrors,
		Handed: c1.handed - cp.handed}
	var counted uint64
	for i := range c1.sa {
		counted += c1.sa[i] - cp.sa[i]
	}
	s.LostToWorkers = s.Handed - min(counted, s.Handed)
	var total uint64
	for _, n := range st.n {
		total += n
	}
	if st.el > 0 {
		s.StormPPS = float64(total) / st.el.Seconds()
	}
	claimed := map[string]bool{}
	for _, k := range StormKinds {
		sk := StormKind{Kind: k, Sent: st.n[k], Reasons: stormReasons[k]}
		for _, reason := range sk.Reasons {
			sk.Counted = append(sk.Counted, delta(c1, reason))
			claimed[reason] = true
		}
		s.Kinds = append(s.Kinds, sk)
	}
	for name := range c1.card {
		if d := delta(c1, name); d > 0 && !claimed[name] && !slices.Contains(stormNeutral, name) {
			addUnexpected(s, "gw2 "+name, d)
		}
	}
	for i := range loader.NumWorkerErrors {
		name := "sa:" + loader.WorkerErrorName(uint8(i))
		if d := c1.sa[i] - cp.sa[i]; d > 0 && !claimed[name] {
			addUnexpected(s, "gw2 storm SA "+name, d)
		}
	}
	for _, w := range stormWorkerDrops {
		if d := c1.workers[w] - cp.workers[w]; d > 0 {
			addUnexpected(s, "gw2 worker "+w, d)
		}
	}
	res.Storm = s
	return res
}

func addUnexpected(s *Storm, name string, n uint64) {
	if s.Unexpected == nil {
		s.Unexpected = map[string]uint64{}
	}
	s.Unexpected[name] = n
}

// stormWorkerDrops are gw2's worker counters of packets a worker could not place (no SA, wrong
// direction, bad metadata, failed policy check): a storm packet there was misclassified.
var stormWorkerDrops = []string{"bad_meta", "wrong_dir", "no_sa", "policy_mismatch"}

// workerErrIndex maps the workers' error names to their slots.
var workerErrIndex = func() map[string]int {
	m := map[string]int{}
	for i := range loader.NumWorkerErrors {
		m[loader.WorkerErrorName(uint8(i))] = i
	}
	return m
}()

// stormCounters is what the storm's accounting reads at gw2 and h2.
type stormCounters struct {
	card        map[string]uint64              // the card's reasons
	sa          [loader.NumWorkerErrors]uint64 // the storm SA's worker errors
	seq         uint64                         // the storm SA's window top
	handed      uint64                         // the storm SA's packets the card handed to workers
	workers     map[string]uint64              // the workers' counters
	ringFull    uint64                         // wire-side receive ring full
	fillEmpty   uint64                         // wire-side fill ring empty
	validReplay uint64                         // replay drops of the other inbound SAs
	sink        uint64                         // the sink's storm count
}

func (x *xdpsec) stormCounters(sink *Sink) (stormCounters, error) {
	var c stormCounters
	if x.gws == nil {
		return c, errors.New("xdpsec not running")
	}
	gw2 := x.gws.GW2
	var err error
	if c.card, err = gw2.Card().ReasonCounts(); err != nil {
		return c, err
	}
	found := false
	for _, sa := range gw2.SAs() {
		if sa.Dir != "in" {
			continue
		}
		if sa.SPI != spiStorm {
			c.validReplay += sa.ReplayErrors
			continue
		}
		found = true
		c.seq = sa.Seq
		c.sa = gw2.Card().WorkerStats().Read(sa.Index).Errors
		st, err := gw2.Card().SAStats(sa.Index)
		if err != nil {
			return c, err
		}
		c.handed = st.Packets
	}
	if !found {
		return c, errors.New("gw2 holds no inbound storm SA")
	}
	c.workers = gw2.WorkerStats()
	wire := gw2.SocketStats()["wire"]
	c.ringFull, c.fillEmpty = wire.RXRingFull, wire.RXFillRingEmpty
	c.sink, err = sink.stormCount()
	return c, err
}

var errNotYet = errors.New("not yet")

// waitStorm reads the storm's counters until done says so or d passes; it returns the last
// counters read (with errNotYet when d passed).
func (x *xdpsec) waitStorm(ctx context.Context, sink *Sink, d time.Duration, done func(stormCounters) bool) (stormCounters, error) {
	deadline := time.Now().Add(d)
	for {
		c, err := x.stormCounters(sink)
		if err != nil {
			return c, err
		}
		if done(c) {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return c, fmt.Errorf("%w after %v: window top %d, storm packets at h2 %d", errNotYet, d, c.seq, c.sink)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stormCount is what the sink counted on the storm's port or as ESP.
func (s *Sink) stormCount() (uint64, error) {
	var per []bench.BenchSinkCount
	if err := s.objs.SinkCounts.Lookup(uint32(1), &per); err != nil {
		return 0, fmt.Errorf("sink: read storm counters: %w", err)
	}
	var n uint64
	for _, c := range per {
		n += c.Packets
	}
	return n, nil
}

// newStormBuilder builds the storm's frames for the testbed: from gw1's wire interface to gw2's,
// with keys, the storm SA's.
func newStormBuilder(ctx context.Context, tb *testbed.Testbed, t *testbed.Topology, keys *Keys) (*stormBuilder, error) {
	if keys == nil || keys.SPI != spiStorm {
		return nil, errors.New("storm: the gateways have no storm SA")
	}
	dmac, err := tb.MAC(ctx, testbed.GW2, t.GW2WAN.Dev)
	if err != nil {
		return nil, err
	}
	smac, err := tb.MAC(ctx, testbed.GW1, t.GW1WAN.Dev)
	if err != nil {
		return nil, err
	}
	return &stormBuilder{dmac: dmac, smac: smac, outerSrc: t.GW1WAN.Addr(false), outerDst: t.GW2WAN.Addr(false),
		innerSrc: t.H1.Addr(false), innerDst: t.H2.Addr(false), keys: *keys, innerPayload: 18}, nil
}

// injector sends frames on gw1's wire interface with a packet socket: they bypass gw1's card and
// workers and reach gw2's wire interface (and its card) as gw1's own would.
type injector struct {
	fd int
	to unix.SockaddrLinklayer
}

func newInjector(tb *testbed.Testbed, dev string) (*injector, error) {
	in := &injector{fd: -1}
	err := tb.InNS(testbed.GW1, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		// Protocol 0: the socket sends and receives nothing.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		in.fd = fd
		in.to = unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(unix.ETH_P_IP)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storm: packet socket on %s: %w", dev, err)
	}
	return in, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// send transmits one frame. A full transmit path (ENOBUFS: the veth's peer queue is full) is
// retried for up to 100 ms, so that every frame sent reaches gw2's card.
func (in *injector) send(f []byte) error {
	for try := 0; ; try++ {
		err := unix.Sendto(in.fd, f, 0, &in.to)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) || try == 1000 {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// storm sends frames evenly over d and returns how many of each kind it sent.
func (in *injector) storm(ctx context.Context, frames [][]byte, kinds []string, d time.Duration) (map[string]uint64, error) {
	sent := map[string]uint64{}
	start := time.Now()
	per := d / time.Duration(max(len(frames), 1))
	for i, f := range frames {
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
		if ahead := time.Duration(i)*per - time.Since(start); ahead > 50*time.Microsecond {
			time.Sleep(ahead)
		}
		if err := in.send(f); err != nil {
			return sent, err
		}
		sent[kinds[i]]++
	}
	return sent, nil
}

func (in *injector) Close() {
	if in.fd >= 0 {
		unix.Close(in.fd)
		in.fd = -1
	}
}
