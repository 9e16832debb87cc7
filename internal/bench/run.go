//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/version"
)

// Options configure a run.
type Options struct {
	// Quick is the short run (about two minutes): one round, short measurements, fewer points.
	Quick bool
	// Rounds overrides the number of rounds (each round runs every system once, in a rotated order).
	Rounds int
	// Systems limits the run to these systems (names or prefixes: "kernel", "xsfwd", "xdpsec",
	// "xdpsec/chacha20-poly1305", "wireguard-go"); empty runs all.
	Systems []string
	// Phases limits the run to these phases (AllPhases); empty runs all.
	Phases []string
	// WireguardGo is the wireguard-go binary; empty looks for build/wireguard-go and then $PATH,
	// and leaves wireguard-go out (with a note) when there is none.
	WireguardGo string
	// Suites are the xdpsec suites measured in the comparison (default aes-gcm-128 and
	// chacha20-poly1305).
	Suites []string
	// Queues is the number of queues of every veth the bench builds (default: the CPUs). On an
	// adopted topology it sets the queues of every interface of the path for the run (restored at
	// the end); 0 keeps the ones it has.
	Queues int
	// StormPackets is the storm's bad packets of each kind (default 5,000, 2,000 with Quick).
	StormPackets int
	// Topology, if set, is an existing topology to run on (testbed.TopologyFromNames) instead of
	// building the testbed: the bench adopts it (testbed.Adopt), never removes it, and restores
	// every setting it changes.
	Topology *testbed.Topology
	// OutDir receives bench.json, bench.md and the plots (default build/bench).
	OutDir string
	// Progress receives the progress bars (a terminal) or lines (anything else); nil for none.
	Progress io.Writer
	// CPUProfile, if set, is where a CPU profile of the whole run goes (the in-process gateways,
	// forwarders and generator).
	CPUProfile string
	// Command is the command line, recorded in the report.
	Command string
	Log     *slog.Logger
}

// plan is what a run measures and for how long.
type plan struct {
	rounds    int
	tcpDur    time.Duration
	streams   []int
	udpDur    time.Duration
	sizes     []int
	rfcIters  int
	rfcDur    time.Duration
	latDur    time.Duration
	latLoads  []float64 // fractions of the system's RFC 2544 rate
	probeRate int
	workers   []int
	sas       []int
	flows     []int
	encap     int // rounds of the encap comparison
	// stormPerKind is the storm's bad packets of each kind (its trials last udpDur).
	stormPerKind int
}

func planFor(o Options, queues int) plan {
	p := plan{rounds: 3, tcpDur: 5 * time.Second, streams: []int{1, 4}, udpDur: 1500 * time.Millisecond,
		sizes: []int{64, 512, 1400, IMIX}, rfcIters: 7, rfcDur: time.Second, latDur: 2 * time.Second,
		latLoads: []float64{0, 0.5, 0.9}, probeRate: 5000, workers: []int{1, queues},
		sas: []int{1, 64, 1024, 16384, 65520}, flows: []int{1, 1024, 65536, 1 << 20},
		encap: 200, stormPerKind: 5000}
	if o.Quick {
		p = plan{rounds: 1, tcpDur: 3 * time.Second, streams: []int{1, 4}, udpDur: time.Second,
			sizes: []int{64, IMIX}, rfcIters: 4, rfcDur: 500 * time.Millisecond, latDur: time.Second,
			latLoads: []float64{0, 0.5}, probeRate: 2000, workers: []int{1, queues}, sas: []int{1, 1024},
			flows: []int{1, 65536}, encap: 50, stormPerKind: 2000}
	}
	if queues <= 1 {
		p.workers = []int{1}
	}
	if o.Rounds > 0 {
		p.rounds = o.Rounds
	}
	if o.StormPackets > 0 {
		p.stormPerKind = o.StormPackets
	}
	return p
}

// maxPolicies is the most policies a gateway's configuration may hold (capacities.policies).
const maxPolicies = 65535

// The SA points go to 65,520 (a policy each, plus the tunnel's and IKE's, within capacities.policies'
// 65,535). Three costs that grew with the square of the port policies kept the 16,384 and 65,528
// points from starting on 2026-12-03 and are fixed: each SPD change rewrote the fragment bucket all
// port policies shared (loader/tssfrag.go), each pass looked for the overlapping policies of each
// inbound SA among all policies between the same two prefixes (ipsec.CheckIndex now also indexes
// by port), and the lifetime poll read each SA's card counters with a syscall of its own (now one
// batched walk). BENCHMARKS.md section 9 has the figures.

// Run builds (or adopts) the testbed, measures every system and phase, and writes the report,
// the Markdown summary and the plots to o.OutDir. It returns the report also when some
// measurements failed (their results say why).
func Run(ctx context.Context, o Options) (_ *Report, err error) {
	if os.Geteuid() != 0 {
		return nil, testbed.ErrNotRoot
	}
	for _, tool := range []string{"ip", "ethtool", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("bench needs %s: %w", tool, err)
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("build", "bench")
	}
	if len(o.Suites) == 0 {
		o.Suites = []string{"aes-gcm-128", "chacha20-poly1305"}
	}
	for _, s := range o.Suites {
		if _, ok := suites[s]; !ok {
			return nil, fmt.Errorf("unknown suite %q", s)
		}
	}
	if o.StormPackets < 0 || o.StormPackets > MaxStormPackets {
		return nil, fmt.Errorf("storm packets %d: want 1 to %d per kind (0: the default)", o.StormPackets, MaxStormPackets)
	}
	for _, ph := range o.Phases {
		if !slices.Contains(AllPhases, ph) {
			return nil, fmt.Errorf("unknown phase %q (have %s)", ph, strings.Join(AllPhases, ", "))
		}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	queues := o.Queues
	if queues <= 0 {
		queues = min(runtime.NumCPU(), 8)
	}
	rep := &Report{Schema: SchemaVersion, Command: o.Command, Started: time.Now(), Quick: o.Quick,
		Host: Host{CPUs: runtime.NumCPU(), Go: runtime.Version(), Xdpsec: buildString(),
			LoadStart: loadAvg(), Queues: queues}}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		rep.Host.Kernel = unix.ByteSliceToString(uts.Release[:])
	}

	var tb *testbed.Testbed
	if o.Topology != nil {
		tb, err = testbed.Adopt(ctx, *o.Topology, testbed.Options{Tag: "bench", Log: o.Log})
	} else {
		tb, err = testbed.New(ctx, testbed.Options{Tag: "bench", Queues: queues, Log: o.Log})
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := tb.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	topo := tb.Topology()
	rep.Host.Testbed = tb.Prefix
	rep.Host.Topology = &topo
	found, err := snapshot(ctx, tb, &topo)
	if err != nil {
		return nil, err
	}
	restored := false
	restore := func() error {
		if restored {
			return nil
		}
		restored = true
		return found.restore(tb)
	}
	defer func() {
		if rerr := restore(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore the interfaces' settings: %w", rerr))
		}
	}()
	if topo.Adopted {
		if o.Queues > 0 {
			err = setQueues(ctx, tb, &topo, queues)
		} else {
			queues, err = found.gatewayQueues()
		}
		if err != nil {
			return nil, err
		}
		rep.Host.Queues = queues
	}
	settings, err := hostSettings(ctx, tb, &topo)
	if err != nil {
		return nil, err
	}
	rep.Host.Settings = settings
	env := &Env{TB: tb, Topo: topo, Queues: queues, Log: o.Log}

	r := &runner{o: o, p: planFor(o, queues), env: env, rep: rep}
	r.systems, rep.Notes = r.pickSystems()
	if !genSourcesFit(&topo) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("h1's network %s does not hold the generator's source addresses %s: its flows vary the ports instead",
			topo.LAN1(false), genSources))
	}
	r.prog = newProgress(o.Progress, r.totals(), AllPhases)
	r.run(ctx)
	r.prog.finish()
	if rerr := restore(); rerr != nil {
		rep.Notes = append(rep.Notes, "restoring the interfaces' settings failed: "+rerr.Error())
		err = fmt.Errorf("restore the interfaces' settings: %w", rerr)
	}

	rep.Finished = time.Now()
	rep.Host.LoadEnd = loadAvg()
	rep.Rounds = r.p.rounds
	rep.Goals = goals(rep)
	if werr := rep.Write(filepath.Join(o.OutDir, "bench.json")); werr != nil {
		return rep, errors.Join(err, werr)
	}
	if werr := os.WriteFile(filepath.Join(o.OutDir, "bench.md"), []byte(rep.Markdown()), 0o644); werr != nil {
		return rep, errors.Join(err, werr)
	}
	if perr := rep.Plots(o.OutDir); perr != nil {
		return rep, errors.Join(err, fmt.Errorf("plots: %w", perr))
	}
	return rep, errors.Join(err, ctx.Err())
}

// runner carries a run's state.
type runner struct {
	o       Options
	p       plan
	env     *Env
	rep     *Report
	systems []System
	prog    *progress
}

func (r *runner) want(phase string) bool {
	return len(r.o.Phases) == 0 || slices.Contains(r.o.Phases, phase)
}

func (r *runner) wantSystem(name string) bool {
	if len(r.o.Systems) == 0 {
		return true
	}
	for _, s := range r.o.Systems {
		if name == s || strings.HasPrefix(name, s+"/") {
			return true
		}
	}
	return false
}

// pickSystems lists the compared systems: kernel forwarding, the bare forwarder, xdpsec per suite
// and wireguard-go when there is a binary.
func (r *runner) pickSystems() ([]System, []string) {
	var notes []string
	all := []System{&kernel{}, &bareXSK{}}
	for _, s := range r.o.Suites {
		all = append(all, &xdpsec{cfg: GatewayConfig{Suite: s}})
	}
	if bin, err := findWireguardGo(r.o.WireguardGo); err != nil {
		notes = append(notes, "wireguard-go left out: "+err.Error())
	} else {
		all = append(all, &wireguardGo{bin: bin})
	}
	var out []System
	for _, s := range all {
		if r.wantSystem(s.Name()) {
			out = append(out, s)
		}
	}
	return out, notes
}

func findWireguardGo(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", err
		}
		return path, nil
	}
	for _, p := range []string{filepath.Join("build", "wireguard-go")} {
		if _, err := os.Stat(p); err == nil {
			return filepath.Abs(p)
		}
	}
	if p, err := exec.LookPath("wireguard-go"); err == nil {
		return p, nil
	}
	return "", errors.New("no --wireguard-go binary, none in build/ (hack/wireguard-go.sh builds it) or $PATH")
}

// totals counts the measurements of each phase, for the progress bars.
func (r *runner) totals() map[string]int {
	t := map[string]int{}
	n, x := len(r.systems), 0
	for _, s := range r.systems {
		if _, ok := s.(*xdpsec); ok {
			x++
		}
	}
	if r.want(PhaseTCP) {
		t[PhaseTCP] = r.p.rounds * n * len(r.p.streams)
	}
	if r.want(PhaseUDP) {
		t[PhaseUDP] = r.p.rounds * n * len(r.p.sizes)
	}
	if r.want(PhaseRFC2544) {
		t[PhaseRFC2544] = r.p.rounds * n
	}
	if r.want(PhaseLatency) {
		t[PhaseLatency] = r.p.rounds * n * len(r.p.latLoads)
	}
	if x > 0 {
		if r.want(PhaseWorkers) {
			t[PhaseWorkers] = 2 * len(r.p.workers)
		}
		if r.want(PhaseSAs) {
			t[PhaseSAs] = len(r.p.sas)
		}
		if r.want(PhaseFlows) {
			t[PhaseFlows] = len(r.p.flows)
		}
		if r.want(PhaseStorm) {
			t[PhaseStorm] = 1
		}
	}
	if r.want(PhaseEncap) {
		t[PhaseEncap] = len(encapCases)
	}
	return t
}

func (r *runner) add(res Result, round int, what string) {
	res.Round = round
	if res.Error != "" {
		what = "failed: " + res.Error
		r.o.Log.Warn("bench measurement failed", "phase", res.Phase, "system", res.System, "err", res.Error)
	}
	r.rep.Results = append(r.rep.Results, res)
	r.prog.step(res.Phase, res.System+" "+what)
}

func (r *runner) register(s System) {
	for _, i := range r.rep.Systems {
		if i.Name == s.Name() {
			return
		}
	}
	r.rep.Systems = append(r.rep.Systems, SystemInfo{Name: s.Name(), Description: s.Describe()})
}

// run measures: rounds of every system (in an order rotated each round, so no system always
// follows the same one), then xdpsec's scaling phases, the storm and the engine's own figures.
func (r *runner) run(ctx context.Context) {
	for round := 1; round <= r.p.rounds && ctx.Err() == nil; round++ {
		n := len(r.systems)
		for i := range n {
			s := r.systems[(i+round-1)%n]
			r.register(s)
			r.system(ctx, s, round)
		}
	}
	var base *xdpsec
	for _, s := range r.systems {
		if x, ok := s.(*xdpsec); ok && base == nil {
			base = x
		}
	}
	if base != nil && ctx.Err() == nil {
		r.scaling(ctx, base.cfg)
	}
	if base != nil && r.want(PhaseStorm) && ctx.Err() == nil {
		r.storm(ctx, base.cfg)
	}
	if r.want(PhaseEncap) && ctx.Err() == nil {
		for _, c := range encapCases {
			res := measureEncap(c.suite, c.bytes, r.p.encap)
			r.add(res, 1, fmt.Sprintf("%s %d B: Encap/Seal %.2f", c.suite, c.bytes, ratioOf(res)))
		}
	}
}

func ratioOf(r Result) float64 {
	if r.Encap == nil {
		return 0
	}
	return r.Encap.Ratio
}

// system runs the per-system phases of one round: TCP, UDP by frame size, the RFC 2544 search at
// 64 bytes and latency under load.
func (r *runner) system(ctx context.Context, s System, round int) {
	if err := s.Start(ctx, r.env); err != nil {
		r.failAll(s, round, fmt.Errorf("start: %w", err))
		return
	}
	defer func() {
		if err := s.Stop(); err != nil {
			r.o.Log.Warn("bench: stop system", "system", s.Name(), "err", err)
		}
	}()
	if _, packetsOnly := s.(interface{ packetsOnly() }); r.want(PhaseTCP) && !packetsOnly {
		for _, st := range r.p.streams {
			res := measureTCP(ctx, r.env, s, st, r.p.tcpDur)
			r.add(res, round, fmt.Sprintf("%d stream(s): %.2f Gbit/s", st, res.Gbps))
		}
	}
	if !r.want(PhaseUDP) && !r.want(PhaseRFC2544) && !r.want(PhaseLatency) {
		return
	}
	sink, err := AttachSink(r.env.TB)
	if err != nil {
		r.failAll(s, round, err)
		return
	}
	defer sink.Close()
	var rate64 float64
	for _, size := range r.p.sizes {
		if !r.want(PhaseUDP) && size != 64 {
			continue
		}
		gen, err := NewGenerator(ctx, r.env.TB, Workload{Size: size}, r.env.Queues)
		if err != nil {
			r.add(failed(Result{Phase: PhaseUDP, System: s.Name(), Frame: frameName(size)}, err), round, "")
			continue
		}
		res := trial(ctx, s, sink, gen, PhaseUDP, 0, r.p.udpDur)
		res.Frame = frameName(size)
		if size == 64 {
			rate64 = res.Mpps * 1e6
		}
		if r.want(PhaseUDP) {
			r.add(res, round, fmt.Sprintf("%s: %.3f Mpps (offered %.2f)", res.Frame, res.Mpps, res.OfferedMpps))
		}
		if size == 64 {
			r.latencyAndSearch(ctx, s, sink, gen, rate64, round)
		}
		gen.Close()
	}
}

func (r *runner) latencyAndSearch(ctx context.Context, s System, sink *Sink, gen *Generator, rate64 float64, round int) {
	nodrop := rate64
	if r.want(PhaseRFC2544) && rate64 > 0 {
		res := rfc2544(ctx, s, sink, gen, rate64, r.p.rfcIters, r.p.rfcDur)
		res.Frame = "64"
		r.add(res, round, fmt.Sprintf("64: %.3f Mpps at ≤ %.1f %% loss", res.Mpps, MaxLoss*100))
		if res.Error == "" && res.Mpps > 0 {
			nodrop = res.Mpps * 1e6
		}
	}
	if !r.want(PhaseLatency) {
		return
	}
	for _, f := range r.p.latLoads {
		res := latency(ctx, r.env, s, gen, f*nodrop, r.p.probeRate, r.p.latDur)
		res.LoadFraction = f
		what := fmt.Sprintf("load %.0f kpps: p50 %.0f µs", f*nodrop/1e3, 0.0)
		if res.Latency != nil {
			what = fmt.Sprintf("load %.0f kpps: p50 %.0f p99 %.0f p99.9 %.0f µs", f*nodrop/1e3, res.Latency.P50, res.Latency.P99, res.Latency.P999)
		}
		r.add(res, round, what)
	}
}

// failAll records a system that could not run in a round.
func (r *runner) failAll(s System, round int, err error) {
	r.add(failed(Result{Phase: PhaseTCP, System: s.Name()}, err), round, "")
}

func frameName(size int) string {
	if size == IMIX {
		return "imix"
	}
	return fmt.Sprint(size)
}

// buildString names the running binary's version and commit.
func buildString() string {
	b := version.ReadBuild()
	s := b.Version
	if b.Commit != "" {
		s += " " + b.Commit[:min(12, len(b.Commit))]
		if b.Dirty {
			s += "+dirty"
		}
	}
	return s
}
