package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

// SchemaVersion is the version of the JSON report; it changes when a field changes meaning.
const SchemaVersion = 2 // 2: the storm phase (Result.Storm)

// Phases, in the order a run takes them.
const (
	PhaseTCP     = "tcp"     // iperf3, h1 → h2, 1 and N streams
	PhaseUDP     = "udp"     // the generator flat out, by frame size: what reaches h2
	PhaseRFC2544 = "rfc2544" // the highest offered rate with loss ≤ 0.1 %
	PhaseLatency = "latency" // one-way latency of timestamped probes at fixed loads
	PhaseWorkers = "workers" // xdpsec with 1 … N workers
	PhaseSAs     = "sas"     // xdpsec with 1 … 64k SAs and policies
	PhaseFlows   = "flows"   // xdpsec with 1 … 1M flows
	PhaseStorm   = "storm"   // xdpsec's valid traffic with and without a storm of bad packets, each counted by reason
	PhaseEncap   = "encap"   // crypto/esp Encap against the raw AEAD Seal, in this process
)

// AllPhases lists every phase.
var AllPhases = []string{PhaseTCP, PhaseUDP, PhaseRFC2544, PhaseLatency, PhaseWorkers, PhaseSAs, PhaseFlows, PhaseStorm, PhaseEncap}

// Report is what a run produced: the JSON written to bench.json.
type Report struct {
	Schema   int          `json:"schema"`
	Command  string       `json:"command"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Quick    bool         `json:"quick"`
	Rounds   int          `json:"rounds"`
	Host     Host         `json:"host"`
	Systems  []SystemInfo `json:"systems"`
	Results  []Result     `json:"results"`
	Goals    []Goal       `json:"goals"`
	Notes    []string     `json:"notes,omitempty"`
}

// Host describes the machine and the testbed's settings.
type Host struct {
	Kernel    string     `json:"kernel"`
	CPUs      int        `json:"cpus"`
	Go        string     `json:"go"`
	Xdpsec    string     `json:"xdpsec"`
	LoadStart [3]float64 `json:"load_start"`
	LoadEnd   [3]float64 `json:"load_end"`
	Queues    int        `json:"queues"`   // receive/transmit queues of every veth
	Testbed   string     `json:"testbed"`  // the testbed's prefix: its namespaces (when built), instances and pins
	Settings  []string   `json:"settings"` // what the bench set on the hosts, equally for every system
	// Topology is the path measured: namespaces, interfaces, addresses, and whether the bench
	// adopted it (an existing topology, `xdpsec bench --netns`) or built it.
	Topology *testbed.Topology `json:"topology,omitempty"`
}

// SystemInfo names a system of the run.
type SystemInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Result is one measurement.
type Result struct {
	Phase  string `json:"phase"`
	System string `json:"system"`
	Round  int    `json:"round"`

	// What was measured (zero when the phase does not vary it).
	Streams int     `json:"streams,omitempty"`
	Frame   string  `json:"frame,omitempty"` // Ethernet frame size with FCS ("64") or "imix"
	Flows   int     `json:"flows,omitempty"`
	SAs     int     `json:"sas,omitempty"`
	Workers int     `json:"workers,omitempty"`
	LoadPPS float64 `json:"load_pps,omitempty"` // latency: the background load offered
	// LoadFraction is LoadPPS as a fraction of the system's RFC 2544 rate (latency).
	LoadFraction float64 `json:"load_fraction,omitempty"`
	Seconds      float64 `json:"seconds"`

	// Figures.
	Gbps        float64  `json:"gbps,omitempty"`
	Mpps        float64  `json:"mpps,omitempty"` // delivered to h2
	OfferedMpps float64  `json:"offered_mpps,omitempty"`
	Loss        float64  `json:"loss"`
	Retransmits int64    `json:"retransmits,omitempty"`
	Latency     *Latency `json:"latency,omitempty"`
	Encap       *Encap   `json:"encap,omitempty"`
	// Storm, the storm phase: the bad packets sent and where gw2 counted them; the result's own
	// figures are the valid traffic's during the storm.
	Storm *Storm `json:"storm,omitempty"`
	// WorkerSpread, xdpsec with several workers: each worker's share of the packets gw1 sealed.
	WorkerSpread []float64 `json:"worker_spread,omitempty"`
	// WorkerSpreadIn: each of gw2's workers' share of the packets gw2 opened.
	WorkerSpreadIn []float64 `json:"worker_spread_in,omitempty"`
	// ReplayErrors counts packets gw2's inbound SAs rejected as replays during the measurement
	// (reordering beyond the window would show here).
	ReplayErrors uint64 `json:"replay_errors"`

	// The evidence: what was offered, what reached h2 (iperf3's received payload bytes, or the
	// sink's packets and IP bytes), and what the system itself says it carried over the same
	// time. Check compares them.
	Offered   uint64   `json:"offered,omitempty"`
	Delivered Carried  `json:"delivered"`
	Carried   Carried  `json:"carried"`
	CPU       CPUSplit `json:"cpu"`
	// Extra counters a phase reports (xdpsec: seq_unreserved, chain_drops, …).
	Counters map[string]uint64 `json:"counters,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// Latency is a latency distribution in microseconds.
type Latency struct {
	Samples int     `json:"samples"`
	Lost    int     `json:"lost"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	P999    float64 `json:"p999_us"`
	Max     float64 `json:"max_us"`
	// CDF holds the 0th, 1st, …, 100th percentile, for plots.
	CDF []float64 `json:"cdf_us"`
}

// Encap compares the ESP engine's Encap with the raw AEAD Seal of the same bytes.
type Encap struct {
	Suite   string  `json:"suite"`
	Bytes   int     `json:"bytes"`
	EncapNS float64 `json:"encap_ns"`
	SealNS  float64 `json:"seal_ns"`
	Ratio   float64 `json:"ratio"` // median of per-round ratios
	// ESPBytes is what Encap encrypts (packet, padding, pad length, next header); SealESPNS the
	// raw Seal of that many bytes, RatioESP Encap over it: the engine's framing alone.
	ESPBytes  int     `json:"esp_bytes"`
	SealESPNS float64 `json:"seal_esp_ns"`
	RatioESP  float64 `json:"ratio_esp"`
}

// CPUSplit is the machine's CPU time over a measurement, as fractions of all CPUs.
type CPUSplit struct {
	User    float64 `json:"user"`
	Sys     float64 `json:"sys"`
	Softirq float64 `json:"softirq"`
	Idle    float64 `json:"idle"`
	// Self is this process's CPU seconds per second (the in-process gateways and generator).
	Self float64 `json:"self"`
}

// Goal is one of the goals, with the figures of this run.
type Goal struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail"`
}

// Write saves the report as indented JSON.
func (r *Report) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadReport loads a report.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &r, nil
}

// Check validates a report: the schema, and for every measurement that traffic reached h2 and that
// the system's own counters account for it (it carried at least what was delivered, and not
// wildly more). It returns every problem found.
func (r *Report) Check() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if r.Schema != SchemaVersion {
		bad("schema %d, want %d", r.Schema, SchemaVersion)
	}
	if r.Started.IsZero() || r.Finished.Before(r.Started) {
		bad("start/finish times %v / %v", r.Started, r.Finished)
	}
	if r.Host.CPUs <= 0 || r.Host.Kernel == "" || r.Host.Queues <= 0 {
		bad("host %+v incomplete", r.Host)
	}
	if len(r.Systems) == 0 || len(r.Results) == 0 {
		bad("%d systems, %d results", len(r.Systems), len(r.Results))
	}
	names := map[string]bool{}
	for _, s := range r.Systems {
		if s.Name == "" || s.Description == "" || names[s.Name] {
			bad("system %+v: empty or duplicate", s)
		}
		names[s.Name] = true
	}
	measured := map[string]bool{}
	for i, x := range r.Results {
		where := fmt.Sprintf("result %d (%s, %s)", i, x.Phase, x.System)
		if !slices.Contains(AllPhases, x.Phase) {
			bad("%s: unknown phase", where)
		}
		if !names[x.System] && x.Phase != PhaseEncap {
			bad("%s: system not listed", where)
		}
		if x.Error != "" {
			bad("%s: failed: %s", where, x.Error)
			continue
		}
		if x.Seconds <= 0 {
			bad("%s: no duration", where)
		}
		for _, v := range []float64{x.Gbps, x.Mpps, x.OfferedMpps, x.Loss} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				bad("%s: figure %v", where, v)
			}
		}
		kind := x.Phase
		if x.Streams > 0 {
			kind = PhaseTCP // the TCP half of a scaling point
		}
		switch kind {
		case PhaseTCP:
			if x.Gbps <= 0 || x.Delivered.Bytes == 0 {
				bad("%s: no TCP traffic delivered", where)
			}
			// The system carried every byte iperf3 received, with headers and retransmissions on top.
			if x.Carried.Bytes < x.Delivered.Bytes || x.Carried.Bytes > x.Delivered.Bytes*3/2+(1<<20) {
				bad("%s: system carried %d IP bytes for %d received", where, x.Carried.Bytes, x.Delivered.Bytes)
			}
			measured[x.System] = true
		case PhaseUDP, PhaseRFC2544, PhaseWorkers, PhaseSAs, PhaseFlows, PhaseStorm:
			if x.Offered == 0 || x.Delivered.Packets == 0 && x.Phase != PhaseRFC2544 {
				bad("%s: offered %d, delivered %d", where, x.Offered, x.Delivered.Packets)
			}
			if x.Delivered.Packets > x.Offered {
				bad("%s: delivered %d > offered %d", where, x.Delivered.Packets, x.Offered)
			}
			if x.Carried.Bytes < x.Delivered.Bytes {
				bad("%s: system carried %d IP bytes, the sink counted %d", where, x.Carried.Bytes, x.Delivered.Bytes)
			}
			measured[x.System] = measured[x.System] || x.Delivered.Packets > 0
			if x.Phase == PhaseStorm {
				errs = append(errs, x.Storm.check(where)...)
			}
		case PhaseLatency:
			if x.Latency == nil || x.Latency.Samples == 0 || len(x.Latency.CDF) != 101 {
				bad("%s: no latency samples", where)
			}
		case PhaseEncap:
			if x.Encap == nil || x.Encap.Ratio <= 0 {
				bad("%s: no encap figures", where)
			}
		}
	}
	for n := range names {
		if !measured[n] {
			bad("system %s carried no traffic in any measurement", n)
		}
	}
	return errors.Join(errs...)
}
