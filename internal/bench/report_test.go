package bench

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goodReport is a small report that passes Check: two systems, each carrying what reached h2.
func goodReport() *Report {
	t0 := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	lat := &Latency{Samples: 100, P50: 50, P99: 90, P999: 99, Max: 100, CDF: make([]float64, 101)}
	return &Report{Schema: SchemaVersion, Started: t0, Finished: t0.Add(time.Minute), Rounds: 1,
		Host:    Host{Kernel: "6.18", CPUs: 2, Queues: 2, Testbed: "xs-bench-0123"},
		Systems: []SystemInfo{{"kernel", "forwarding"}, {"xdpsec/aes-gcm-128", "gateways"}},
		Results: []Result{
			{Phase: PhaseTCP, System: "kernel", Streams: 1, Seconds: 3, Gbps: 5, Delivered: Carried{Bytes: 1 << 30}, Carried: Carried{Packets: 1e6, Bytes: 1<<30 + 1<<24}},
			{Phase: PhaseUDP, System: "xdpsec/aes-gcm-128", Frame: "64", Seconds: 1, Mpps: 0.2, Offered: 300000,
				Delivered: Carried{Packets: 200000, Bytes: 9200000}, Carried: Carried{Packets: 200000, Bytes: 9200000}},
			{Phase: PhaseLatency, System: "kernel", Seconds: 1, Latency: lat},
			{Phase: PhaseEncap, System: "crypto/esp", Seconds: 1, Encap: &Encap{Suite: "aes-gcm-128", Bytes: 64, Ratio: 1.3}},
			{Phase: PhaseStorm, System: "xdpsec/aes-gcm-128", Frame: "64", Seconds: 1, Mpps: 0.05, Offered: 60000,
				Delivered: Carried{Packets: 50000, Bytes: 2300000}, Carried: Carried{Packets: 50000, Bytes: 2300000},
				Storm: goodStorm()},
		}}
}

// stormKind is the report's storm kind named k.
func stormKind(r *Report, k string) *StormKind {
	for i := range r.Results[4].Storm.Kinds {
		if r.Results[4].Storm.Kinds[i].Kind == k {
			return &r.Results[4].Storm.Kinds[i]
		}
	}
	panic("no storm kind " + k)
}

// goodStorm is a storm whose every bad packet gw2 counted where it belongs.
func goodStorm() *Storm {
	s := &Storm{FlatOutMpps: 0.1, RatePPS: 50000, CleanMpps: 0.05, StormPPS: 10000, PrimerDelivered: 1}
	for _, k := range StormKinds {
		sk := StormKind{Kind: k, Sent: 100, Reasons: stormReasons[k]}
		for range sk.Reasons {
			sk.Counted = append(sk.Counted, 100)
		}
		s.Kinds = append(s.Kinds, sk)
	}
	return s
}

func TestCheckAcceptsAConsistentReport(t *testing.T) {
	r := goodReport()
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	// And after a round trip through the file.
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := r.Write(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Check(); err != nil {
		t.Fatalf("after reading back: %v", err)
	}
}

// TestCheckAcceptsStormLossAtTheSockets: worker-bound storm packets the workers did not count pass
// the check when they are exactly the ones gw2's card handed over and its sockets dropped (the
// kernel counted ring-full drops): each bad packet is accounted for once.
func TestCheckAcceptsStormLossAtTheSockets(t *testing.T) {
	r := goodReport()
	s := r.Results[4].Storm
	stormKind(r, StormBadICV).Counted[0] = 98
	stormKind(r, StormReplay).Counted[0] = 99
	s.Handed, s.LostToWorkers, s.WireRingFull = 300, 3, 4
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsWhatIsWrong(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Report)
		want string
	}{
		{"schema", func(r *Report) { r.Schema = 99 }, "schema 99"},
		{"carried less than delivered", func(r *Report) { r.Results[1].Carried.Bytes = 100 }, "system carried 100 IP bytes"},
		{"tcp carried less", func(r *Report) { r.Results[0].Carried.Bytes = 1 }, "carried 1 IP bytes"},
		{"tcp carried far more", func(r *Report) { r.Results[0].Carried.Bytes = 1 << 40 }, "IP bytes for"},
		{"delivered more than offered", func(r *Report) { r.Results[1].Offered = 10 }, "delivered 200000 > offered 10"},
		{"system without traffic", func(r *Report) {
			r.Results[1].Delivered = Carried{}
			r.Results[4].Delivered = Carried{}
		}, "system xdpsec/aes-gcm-128 carried no traffic"},
		{"failed measurement", func(r *Report) { r.Results[2].Error = "boom" }, "failed: boom"},
		{"unknown system", func(r *Report) { r.Results[0].System = "nope" }, "system not listed"},
		{"no latency", func(r *Report) { r.Results[2].Latency = nil }, "no latency samples"},
		{"no encap", func(r *Report) { r.Results[3].Encap.Ratio = 0 }, "no encap figures"},
		{"nan", func(r *Report) { r.Results[1].Loss = -1 }, "figure -1"},
		{"storm without accounting", func(r *Report) { r.Results[4].Storm = nil }, "no storm accounting"},
		{"storm packet counted nowhere", func(r *Report) { stormKind(r, StormReplay).Counted[0] = 99 },
			"storm kind replay: sent 100, gw2 counted 99 under sa:replay"},
		{"storm packet counted twice", func(r *Report) { stormKind(r, StormUnknownSPI).Counted[1] = 101 },
			"storm kind unknown-spi: sent 100, gw2 counted 101 under InTmplMismatch"},
		{"storm packet under the wrong reason", func(r *Report) {
			stormKind(r, StormTruncated).Counted[0] = 90
			r.Results[4].Storm.Unexpected = map[string]uint64{"gw2 storm SA sa:icv": 10}
		}, "gw2 counted drops no storm kind explains: gw2 storm SA sa:icv 10"},
		{"storm kind under other counters", func(r *Report) { stormKind(r, StormGarbage).Reasons = []string{"NonIP"} },
			"storm kind garbage: counted under [NonIP]"},
		{"storm kind missing", func(r *Report) { r.Results[4].Storm.Kinds = r.Results[4].Storm.Kinds[2:] }, "storm kind truncated missing"},
		{"storm kind not sent", func(r *Report) {
			k := stormKind(r, StormBadICV)
			k.Sent, k.Counted[0] = 0, 0
		}, "storm kind bad-icv: none sent"},
		{"storm packets reached h2", func(r *Report) { r.Results[4].Storm.ReachedH2 = 3 }, "3 storm packets reached h2"},
		{"storm leak count unproven", func(r *Report) { r.Results[4].Storm.PrimerDelivered = 0 }, "primer reached h2 0 times"},
		{"storm packets lost on full rings, more than the workers miss", func(r *Report) {
			s := r.Results[4].Storm
			stormKind(r, StormBadICV).Counted[0] = 97
			s.Handed, s.LostToWorkers, s.WireRingFull, s.WireFillEmpty = 300, 2, 7, 5
		}, "handed 300 packets of the storm's SA to its workers, which counted 2 fewer: dropped by the AF_XDP sockets between them, which found their receive ring full 7 times and their fill ring empty 5 times"},
		{"storm packets lost on full rings, sockets dropped nothing", func(r *Report) {
			s := r.Results[4].Storm
			stormKind(r, StormBadICV).Counted[0] = 98
			s.Handed, s.LostToWorkers = 300, 2
		}, "storm kind bad-icv: sent 100, gw2 counted 98 under sa:icv"},
		{"storm packets lost on full rings, a card kind short too", func(r *Report) {
			s := r.Results[4].Storm
			stormKind(r, StormBadICV).Counted[0] = 98
			stormKind(r, StormGarbage).Counted[0] = 99
			s.Handed, s.LostToWorkers, s.WireRingFull = 300, 2, 7
		}, "storm kind garbage: sent 100, gw2 counted 99 under ParseIPv4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := goodReport()
			c.edit(r)
			err := r.Check()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestGoalsUseTheRunsRatios(t *testing.T) {
	r := &Report{Host: Host{Queues: 2}, Results: []Result{
		{Phase: PhaseTCP, System: "xdpsec/chacha20-poly1305", Streams: 1, Gbps: 3},
		{Phase: PhaseTCP, System: "wireguard-go", Streams: 1, Gbps: 2},
		{Phase: PhaseTCP, System: "xdpsec/aes-gcm-128", Streams: 1, Gbps: 2.9},
		{Phase: PhaseEncap, Encap: &Encap{Suite: "aes-gcm-128", Bytes: 64, Ratio: 1.1}},
		{Phase: PhaseEncap, Encap: &Encap{Suite: "chacha20-poly1305", Bytes: 64, Ratio: 1.3}},
	}}
	got := map[string]Goal{}
	for _, g := range goals(r) {
		got[g.Name] = g
	}
	for name, want := range map[string]struct {
		v   float64
		met bool
	}{
		"TCP 1 stream, ChaCha20-Poly1305":  {1.5, true},
		"TCP 1 stream, AES-GCM-128":        {1.45, false},
		"Encap at 64 B, aes-gcm-128":       {1.1, true},
		"Encap at 64 B, chacha20-poly1305": {1.3, false},
		"TCP 4 streams, AES-GCM-128":       {0, false}, // no figures: not met
	} {
		g, ok := got[name]
		if !ok {
			t.Errorf("goal %q missing", name)
			continue
		}
		if d := g.Value - want.v; d > 1e-9 || d < -1e-9 || g.Met != want.met {
			t.Errorf("%s: %.3f met %v, want %.3f met %v", name, g.Value, g.Met, want.v, want.met)
		}
	}
}

func TestMarkdownShowsTheStormByKind(t *testing.T) {
	r := goodReport()
	stormKind(r, StormUnknownSPI).Counted[1] = 97
	md := r.Markdown()
	for _, want := range []string{
		"## Malformed-traffic storm",
		"| replay | 100 | sa:replay | 100 | yes |",
		"| unknown-spi | 100 | InNoStates, InTmplMismatch | 100, 97 | **no** |",
		"Storm packets that reached h2: 0",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}
