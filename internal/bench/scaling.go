//go:build linux

package bench

import (
	"context"
	"fmt"
	"math/bits"
)

// scaling runs xdpsec's scaling phases with base's suite: by workers (TCP with 4 streams and 64-byte
// packets of 64 flows, with one worker and with one per queue), by SAs and policies (each flow of
// the generator matches its own port policy and SA) and by flows (one tunnel, the flows spread
// over source addresses and ports).
func (r *runner) scaling(ctx context.Context, base GatewayConfig) {
	if r.want(PhaseWorkers) {
		for _, w := range r.p.workers {
			// The daemon runs min(workers, queues) workers, and a queue without one loses its
			// packets: a point with fewer workers has as few queues.
			if err := r.setQueues(ctx, w); err != nil {
				r.add(failed(Result{Phase: PhaseWorkers, System: "xdpsec", Workers: w}, err), 1, "")
				continue
			}
			x := &xdpsec{cfg: GatewayConfig{Suite: base.Suite}}
			r.point(ctx, x, PhaseWorkers, Workload{Size: 64, Flows: 64}, true, func(res *Result) { res.Workers = w })
		}
		if err := r.setQueues(ctx, r.rep.Host.Queues); err != nil {
			r.o.Log.Warn("bench: restore queues", "err", err)
		}
	}
	if r.want(PhaseSAs) {
		for _, n := range r.p.sas {
			x := &xdpsec{cfg: GatewayConfig{Suite: base.Suite, PortSAs: n}}
			wl := Workload{Size: 64, Flows: 1 << bits.Len(uint(n-1)), PerPolicy: true, PortBase: portBase}
			r.point(ctx, x, PhaseSAs, wl, false, func(res *Result) { res.SAs = n })
		}
	}
	if r.want(PhaseFlows) {
		for _, n := range r.p.flows {
			x := &xdpsec{cfg: GatewayConfig{Suite: base.Suite}}
			r.point(ctx, x, PhaseFlows, Workload{Size: 64, Flows: n}, false, func(res *Result) { res.Flows = n })
		}
	}
}

// setQueues sets the queues of every interface of the path to n, for the systems started next.
func (r *runner) setQueues(ctx context.Context, n int) error {
	if err := setQueues(ctx, r.env.TB, &r.env.Topo, n); err != nil {
		return err
	}
	r.env.Queues = n
	return nil
}

// point starts x, runs the workload flat out (and iperf3 with 4 streams when tcp is set), records
// the results under phase and stops x.
func (r *runner) point(ctx context.Context, x *xdpsec, phase string, wl Workload, tcp bool, label func(*Result)) {
	r.register(x)
	add := func(res Result, what string) {
		res.Phase = phase
		label(&res)
		r.add(res, 1, what)
	}
	fail := func(err error) {
		add(failed(Result{System: x.Name()}, err), "")
		if tcp {
			add(failed(Result{System: x.Name()}, err), "")
		}
	}
	if err := x.Start(ctx, r.env); err != nil {
		fail(fmt.Errorf("start: %w", err))
		return
	}
	defer func() {
		if err := x.Stop(); err != nil {
			r.o.Log.Warn("bench: stop system", "system", x.Name(), "err", err)
		}
	}()
	if tcp {
		res := measureTCP(ctx, r.env, x, 4, r.p.tcpDur)
		add(res, fmt.Sprintf("4 streams: %.2f Gbit/s, spread %.2f", res.Gbps, res.WorkerSpread))
	}
	sink, err := AttachSink(r.env.TB)
	if err != nil {
		add(failed(Result{System: x.Name()}, err), "")
		return
	}
	defer sink.Close()
	gen, err := NewGenerator(ctx, r.env.TB, wl, r.env.Queues)
	if err != nil {
		add(failed(Result{System: x.Name()}, err), "")
		return
	}
	defer gen.Close()
	res := trial(ctx, x, sink, gen, phase, 0, r.p.udpDur)
	res.Frame = "64"
	add(res, fmt.Sprintf("64 B, %d flows: %.3f Mpps", wl.Flows, res.Mpps))
}
