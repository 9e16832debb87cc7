package bench

import (
	"fmt"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plots writes the run's figures as SVG into dir: throughput by frame size per system, the latency
// CDF per system at half load, and xdpsec's scaling by SAs, flows and workers. A plot without
// data is left out.
func (r *Report) Plots(dir string) error {
	type series struct {
		name string
		xy   plotter.XYs
	}
	draw := func(file, title, xl, yl string, logX bool, ss []series) error {
		var args []any
		for _, s := range ss {
			if len(s.xy) > 0 {
				args = append(args, s.name, s.xy)
			}
		}
		if len(args) == 0 {
			return nil
		}
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, xl, yl
		if logX {
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		p.Legend.Top = true
		if err := plotutil.AddLinePoints(p, args...); err != nil {
			return err
		}
		return p.Save(7*vg.Inch, 4*vg.Inch, filepath.Join(dir, file))
	}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	var thr []series
	for _, s := range r.Systems {
		var xy plotter.XYs
		for _, f := range []int{64, 512, 1400} {
			if v := r.udp(s.Name, fmt.Sprint(f)); v > 0 {
				xy = append(xy, plotter.XY{X: float64(f), Y: v})
			}
		}
		thr = append(thr, series{s.Name, xy})
	}
	check(draw("bench-frames.svg", "UDP through both gateways by frame size", "Ethernet frame bytes", "Mpps delivered", false, thr))

	var cdf []series
	for _, s := range r.Systems {
		for _, x := range r.Results {
			if x.Phase == PhaseLatency && x.System == s.Name && x.Error == "" && x.Latency != nil && x.LoadFraction == 0.5 {
				var xy plotter.XYs
				for p, v := range x.Latency.CDF {
					xy = append(xy, plotter.XY{X: math.Max(v, 1), Y: float64(p)})
				}
				cdf = append(cdf, series{s.Name, xy})
				break
			}
		}
	}
	check(draw("bench-latency-cdf.svg", "One-way latency at half the RFC 2544 rate (64 B load)", "µs", "percentile", true, cdf))

	scale := func(file, title, xl, phase string, key func(Result) int) {
		var xy plotter.XYs
		for _, x := range r.Results {
			if x.Phase == phase && x.Error == "" && x.Mpps > 0 {
				xy = append(xy, plotter.XY{X: float64(key(x)), Y: x.Mpps})
			}
		}
		check(draw(file, title, xl, "Mpps delivered (64 B)", phase != PhaseWorkers, []series{{"xdpsec", xy}}))
	}
	scale("bench-sas.svg", "xdpsec by SAs and policies", "SA/policy pairs", PhaseSAs, func(x Result) int { return x.SAs })
	scale("bench-flows.svg", "xdpsec by flows", "flows", PhaseFlows, func(x Result) int { return x.Flows })
	scale("bench-workers.svg", "xdpsec by workers per gateway", "workers", PhaseWorkers, func(x Result) int { return x.Workers })
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
