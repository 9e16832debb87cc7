package bench

import (
	"fmt"
	"slices"
	"strings"
)

// pick returns the figures f of the successful results that match, in report order.
func (r *Report) pick(match func(Result) bool, f func(Result) float64) []float64 {
	var out []float64
	for _, x := range r.Results {
		if x.Error == "" && match(x) {
			out = append(out, f(x))
		}
	}
	return out
}

// med is the median over rounds of a system's figure in a phase (0 when there is none).
func (r *Report) med(phase, system string, match func(Result) bool, f func(Result) float64) float64 {
	return median(r.pick(func(x Result) bool { return x.Phase == phase && x.System == system && (match == nil || match(x)) }, f))
}

func (r *Report) tcp(system string, streams int) float64 {
	return r.med(PhaseTCP, system, func(x Result) bool { return x.Streams == streams }, func(x Result) float64 { return x.Gbps })
}

func (r *Report) udp(system, frame string) float64 {
	return r.med(PhaseUDP, system, func(x Result) bool { return x.Frame == frame }, func(x Result) float64 { return x.Mpps })
}

func (r *Report) encap(suite string, n int) float64 {
	return median(r.pick(func(x Result) bool {
		return x.Phase == PhaseEncap && x.Encap != nil && x.Encap.Suite == suite && x.Encap.Bytes == n
	}, func(x Result) float64 { return x.Encap.Ratio }))
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// goals evaluates the goals on the report's figures (medians over rounds; every ratio is
// between figures of this one run). A goal whose figures are missing is not met, and says so.
func goals(r *Report) []Goal {
	const wg, fwd = "wireguard-go", "xsfwd"
	aes, cc := "xdpsec/aes-gcm-128", "xdpsec/chacha20-poly1305"
	var out []Goal
	add := func(name, want string, v float64, unit string, met bool, detail string) {
		out = append(out, Goal{Name: name, Want: want, Value: v, Unit: unit, Met: met, Detail: detail})
	}
	vs := func(name, sys string, streams int, want float64) {
		a, b := r.tcp(sys, streams), r.tcp(wg, streams)
		v := ratio(a, b)
		add(name, fmt.Sprintf("≥ %.1f× wireguard-go", want), v, "×", v >= want,
			fmt.Sprintf("%s %.2f Gbit/s, wireguard-go %.2f Gbit/s", sys, a, b))
	}
	vs("TCP 1 stream, ChaCha20-Poly1305", cc, 1, 1.2)
	vs("TCP 1 stream, AES-GCM-128", aes, 1, 1.5)
	vs("TCP 4 streams, ChaCha20-Poly1305", cc, 4, 1.2)
	vs("TCP 4 streams, AES-GCM-128", aes, 4, 1.2)

	// Both cores: the TCP 4-stream results of xdpsec with one worker per queue.
	spread := r.pick(func(x Result) bool {
		return x.Phase == PhaseTCP && x.Streams == 4 && strings.HasPrefix(x.System, "xdpsec/")
	},
		func(x Result) float64 {
			if len(x.WorkerSpread) < 2 {
				return 0
			}
			return slices.Min(x.WorkerSpread)
		})
	replays := r.pick(func(x Result) bool { return x.Phase == PhaseTCP && strings.HasPrefix(x.System, "xdpsec/") },
		func(x Result) float64 { return float64(x.ReplayErrors) })
	mins, rep := median(spread), 0.0
	for _, v := range replays {
		rep += v
	}
	add("TCP 4 streams over both workers", "> 1 worker, each ≥ 10 % of the packets, no replay drops", mins, "min share",
		r.Host.Queues > 1 && mins >= 0.1 && rep == 0,
		fmt.Sprintf("%d queues; smallest worker's share of gw1's sealed packets (median over xdpsec's 4-stream runs); %.0f replay drops at gw2", r.Host.Queues, rep))

	for _, sys := range []string{aes, cc} {
		m, f := r.udp(sys, "64"), r.udp(fwd, "64")
		add("64 B through both gateways, "+strings.TrimPrefix(sys, "xdpsec/"), "≥ 0.5 Mpps and ≥ 70 % of xsfwd", m, "Mpps",
			m >= 0.5 && m >= 0.7*f, fmt.Sprintf("%.3f Mpps, xsfwd %.3f Mpps: %.0f %%", m, f, 100*ratio(m, f)))
	}
	for _, s := range []string{"aes-gcm-128", "chacha20-poly1305"} {
		v := r.encap(s, 64)
		add("Encap at 64 B, "+s, "≤ 1.2× Seal", v, "×", v > 0 && v <= 1.2, "median of per-round ratios of 64-op blocks")
	}
	return out
}

// Markdown renders the report as the tables BENCHMARKS.md takes.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# xdpsec bench, %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	p("Command: `%s`. Kernel %s, %d CPUs, %s, %d queue(s) per veth, load average %.2f at the start and %.2f at the end; %d round(s), medians over rounds.\n\n",
		r.Command, r.Host.Kernel, r.Host.CPUs, r.Host.Go, r.Host.Queues, r.Host.LoadStart[0], r.Host.LoadEnd[0], r.Rounds)
	for _, s := range r.Host.Settings {
		p("- %s\n", s)
	}
	p("\n## Systems\n\n")
	for _, s := range r.Systems {
		p("- **%s**: %s\n", s.Name, s.Description)
	}
	frames := []string{"64", "512", "1400", "imix"}
	p("\n## Throughput\n\n| system | TCP 1 stream Gbit/s | TCP 4 streams Gbit/s |")
	for _, f := range frames {
		p(" UDP %s Mpps |", f)
	}
	p(" RFC 2544 64 B Mpps | p50 / p99 / p99.9 µs idle | at 50 %% load |\n|---|---|---|")
	for range frames {
		p("---|")
	}
	p("---|---|---|\n")
	for _, s := range r.Systems {
		if r.med(PhaseTCP, s.Name, nil, func(x Result) float64 { return 1 }) == 0 &&
			r.med(PhaseUDP, s.Name, nil, func(x Result) float64 { return 1 }) == 0 {
			continue // a scaling point, in its own table
		}
		p("| %s | %s | %s |", s.Name, num(r.tcp(s.Name, 1), 2), num(r.tcp(s.Name, 4), 2))
		for _, f := range frames {
			p(" %s |", num(r.udp(s.Name, f), 3))
		}
		p(" %s |", num(r.med(PhaseRFC2544, s.Name, nil, func(x Result) float64 { return x.Mpps }), 3))
		for _, load := range []float64{0, 0.5} {
			p(" %s |", r.latencyCell(s.Name, load))
		}
		p("\n")
	}
	p("\n## Goals (ratios within this run)\n\n| goal | wanted | measured | met | figures |\n|---|---|---|---|---|\n")
	for _, g := range r.Goals {
		met := "no"
		if g.Met {
			met = "yes"
		}
		p("| %s | %s | %.2f %s | %s | %s |\n", g.Name, g.Want, g.Value, g.Unit, met, g.Detail)
	}
	scale := func(title, phase, col string, key func(Result) int) {
		rows := r.pick(func(x Result) bool { return x.Phase == phase }, func(x Result) float64 { return 0 })
		if len(rows) == 0 {
			return
		}
		p("\n## %s\n\n| %s | TCP 4 streams Gbit/s | 64 B Mpps | loss | worker shares gw1 (sealed) / gw2 (opened) | replay drops, other drops by cause |\n|---|---|---|---|---|---|\n", title, col)
		for _, x := range r.Results {
			if x.Phase != phase {
				continue
			}
			if x.Error != "" {
				p("| %d | failed: %s | | | | |\n", key(x), x.Error)
				continue
			}
			var shares []string
			for _, s := range x.WorkerSpread {
				shares = append(shares, fmt.Sprintf("%.2f", s))
			}
			if len(x.WorkerSpreadIn) > 0 {
				shares = append(shares, "/ gw2")
				for _, s := range x.WorkerSpreadIn {
					shares = append(shares, fmt.Sprintf("%.2f", s))
				}
			}
			var drops []string
			for k, v := range x.Counters {
				drops = append(drops, fmt.Sprintf("%s %d", k, v))
			}
			slices.Sort(drops)
			p("| %d | %s | %s | %.2f %% | %s | %d; %s |\n", key(x), num(x.Gbps, 2), num(x.Mpps, 3), 100*x.Loss,
				strings.Join(shares, " "), x.ReplayErrors, strings.Join(drops, ", "))
		}
	}
	scale("Scaling by workers (xdpsec)", PhaseWorkers, "workers", func(x Result) int { return x.Workers })
	scale("Scaling by SAs and policies (xdpsec)", PhaseSAs, "SAs", func(x Result) int { return x.SAs })
	scale("Scaling by flows (xdpsec)", PhaseFlows, "flows", func(x Result) int { return x.Flows })
	b.WriteString(r.stormMarkdown())
	if rows := r.pick(func(x Result) bool { return x.Phase == PhaseEncap }, func(Result) float64 { return 0 }); len(rows) > 0 {
		p("\n## Encap against the raw Seal (crypto/esp, in the bench's process)\n\n| suite | inner bytes | Encap ns | Seal ns | Encap/Seal | Seal of the ESP bytes ns | Encap/that |\n|---|---|---|---|---|---|---|\n")
		for _, x := range r.Results {
			if x.Phase == PhaseEncap && x.Encap != nil {
				p("| %s | %d | %.0f | %.0f | %.2f | %.0f (%d B) | %.2f |\n", x.Encap.Suite, x.Encap.Bytes, x.Encap.EncapNS, x.Encap.SealNS, x.Encap.Ratio,
					x.Encap.SealESPNS, x.Encap.ESPBytes, x.Encap.RatioESP)
			}
		}
	}
	var failures []string
	for _, x := range r.Results {
		if x.Error != "" {
			failures = append(failures, fmt.Sprintf("- %s %s round %d: %s", x.Phase, x.System, x.Round, x.Error))
		}
	}
	if len(failures) > 0 || len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		for _, f := range failures {
			p("%s\n", f)
		}
	}
	return b.String()
}

func (r *Report) latencyCell(system string, load float64) string {
	var p50, p99, p999 []float64
	for _, x := range r.Results {
		if x.Phase != PhaseLatency || x.System != system || x.Error != "" || x.Latency == nil {
			continue
		}
		if x.LoadFraction != load {
			continue
		}
		p50, p99, p999 = append(p50, x.Latency.P50), append(p99, x.Latency.P99), append(p999, x.Latency.P999)
	}
	if len(p50) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f / %.0f / %.0f", median(p50), median(p99), median(p999))
}

func num(v float64, prec int) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, v)
}
