package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/lifetime"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/control/seqstate"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// cardReasons are the names the loader gives the card's reasons, in enum order.
func cardReasons() []string {
	out := make([]string, loader.NumReasons)
	for i := range out {
		out[i] = loader.ReasonName(loader.Reason(i))
	}
	return out
}

// workerCounters are the names the daemon gives the workers' counters (control/daemon.workerCounters).
var workerCounters = []string{"WorkerRxPackets", "WorkerTxPackets", "WorkerSealed", "WorkerOpened", "WorkerBadMeta",
	"WorkerWrongDir", "WorkerNoSa", "WorkerCryptoErrors", "WorkerPolicyMismatch", "WorkerTtlExpired", "WorkerNoNeighOut",
	"WorkerNoNextHopIn", "WorkerWrongEgress", "WorkerTooBig", "WorkerPtbSent", "WorkerFragments", "WorkerNoFrame",
	"WorkerTxRingFull", "WorkerFrameErrors", "WorkerChecksumsCompleted", "WorkerChains", "WorkerSegments",
	"WorkerChainDrops", "WorkerGsoFrames", "WorkerMssClamped", "WorkerSeqUnreserved"}

const testSPI = 0x1001

type fakeSource struct {
	cardErr  error
	counters map[string]uint64
	bus      *events.Bus
	noState  bool // the daemon runs without a state directory
}

func newFake() *fakeSource {
	f := &fakeSource{counters: map[string]uint64{}, bus: events.NewBus(nil)}
	// Every counter gets its own value, so a sample tells which counter it came from.
	for i, n := range append(cardReasons(), workerCounters...) {
		f.counters[n] = uint64(1000 + i)
	}
	return f
}

func (*fakeSource) ListSAs(bool) []api.SAView {
	e := sadb.SAEntry{SA: sadb.SA{Name: "a", SPI: testSPI, Dst: netip.MustParseAddr("198.19.0.1")}, Index: 3,
		State: sadb.StateDying, Cur: sadb.Current{Bytes: 1500, Packets: 3, IntegrityErrors: 2, Seq: 0xabcdef}}
	return []api.SAView{{SAEntry: e, Direction: new(ipsec.DirIn), OffloadState: []offload.IfaceState{
		{Iface: "wan0", Status: offload.StatusRefused, Reason: offload.ReasonTableFull}}}}
}
func (*fakeSource) ListPolicies() []api.PolicyView { return nil }
func (f *fakeSource) GlobalCounters(context.Context) (map[string]uint64, error) {
	if f.cardErr != nil {
		return nil, f.cardErr
	}
	return f.counters, nil
}
func (*fakeSource) EngineStats() offload.Stats { return offload.Stats{SANacks: 1} }
func (*fakeSource) EventStats() api.EventStats { return api.EventStats{Published: 9, Dropped: 1} }
func (f *fakeSource) StateStats() (seqstate.Stats, bool) {
	return seqstate.Stats{Entries: 4, Tombstones: 2, Blocked: 1, Writes: 12, WriteErrors: 3}, !f.noState
}
func (f *fakeSource) Subscribe(buf int) *events.Sub { return f.bus.Subscribe(buf) }

// gatherFamilies registers c on a pedantic registry (which checks descriptions and label
// consistency) and gathers.
func gatherFamilies(t *testing.T, c prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// gather returns every sample as "name{label=value,…}" → value.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range gatherFamilies(t, c) {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

func newCollector(t *testing.T, f *fakeSource) *Collector {
	c := NewCollector(f, nil)
	t.Cleanup(c.Close)
	return c
}

func TestCollector(t *testing.T) {
	f := newFake()
	got := gather(t, newCollector(t, f))
	sa := "dir=in,index=3,sa=a"
	for name, want := range map[string]float64{
		"xdpsec_sa_bytes_total{" + sa + "}":                                                  1500,
		"xdpsec_sa_packets_total{" + sa + "}":                                                3,
		"xdpsec_sa_integrity_errors_total{" + sa + "}":                                       2,
		"xdpsec_sa_offload{dir=in,iface=wan0,index=3,reason=table_full,sa=a,status=refused}": 1,
		"xdpsec_sa_state{" + sa + ",state=dying}":                                            1,
		"xdpsec_drops_total{reason=InNoPols}":                                                float64(f.counters["InNoPols"]),
		"xdpsec_drops_total{reason=WorkerNoNextHopIn}":                                       float64(f.counters["WorkerNoNextHopIn"]),
		"xdpsec_card_verdicts_total{verdict=OutProtect}":                                     float64(f.counters["OutProtect"]),
		"xdpsec_card_events_total{event=InNoStates}":                                         float64(f.counters["InNoStates"]),
		"xdpsec_card_events_total{event=AcquireLost}":                                        float64(f.counters["AcquireLost"]),
		"xdpsec_worker_packets_total{counter=WorkerSealed}":                                  float64(f.counters["WorkerSealed"]),
		"xdpsec_worker_operations_total{counter=WorkerTooBig}":                               float64(f.counters["WorkerTooBig"]),
		"xdpsec_sa_expiries_total{kind=hard,limit=bytes}":                                    0,
		"xdpsec_card_up{}": 1,
		"xdpsec_offload_operations_total{op=sa_nack}": 1,
		"xdpsec_events_total{kind=dropped}":           1,
		"xdpsec_state_writes_total{}":                 12,
		"xdpsec_state_write_errors_total{}":           3,
		"xdpsec_state_blocked_sas{}":                  1,
		"xdpsec_state_entries{kind=sa}":               4,
		"xdpsec_state_entries{kind=tombstone}":        2,
		"xdpsec_sas{}":                                1,
	} {
		v, ok := got[name]
		if !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if t.Failed() {
		for k, v := range got {
			t.Log(k, v)
		}
	}
	// A card that cannot be read says so instead of failing the scrape.
	down := newFake()
	down.cardErr = errors.New("closed")
	if gather(t, newCollector(t, down))["xdpsec_card_up{}"] != 0 {
		t.Fatal("card_up is not 0 when the counters cannot be read")
	}
	// Without a state directory there are no state series (rather than zeros that look healthy).
	stateless := newFake()
	stateless.noState = true
	for name := range gather(t, newCollector(t, stateless)) {
		if strings.HasPrefix(name, "xdpsec_state_") {
			t.Errorf("%s present without a state directory", name)
		}
	}
}

// Drops count drops only: what went through (issue 11 saw OutProtect, OutBypass, InOffload, InBypass
// and AcquireSent among the drop reasons) is never in xdpsec_drops_total, and every counter appears
// exactly once, under one metric.
func TestDropsAreDropsOnly(t *testing.T) {
	f := newFake()
	seen := map[string]string{}
	for _, mf := range gatherFamilies(t, newCollector(t, f)) {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch mf.GetName() {
				case "xdpsec_drops_total", "xdpsec_card_verdicts_total", "xdpsec_card_events_total",
					"xdpsec_worker_packets_total", "xdpsec_worker_operations_total", "xdpsec_counters_unclassified_total":
					if prev, dup := seen[l.GetValue()]; dup {
						t.Errorf("%s in %s and %s", l.GetValue(), prev, mf.GetName())
					}
					seen[l.GetValue()] = mf.GetName()
					if m.GetCounter().GetValue() != float64(f.counters[l.GetValue()]) {
						t.Errorf("%s{%s} = %v, the source says %d", mf.GetName(), l.GetValue(), m.GetCounter().GetValue(), f.counters[l.GetValue()])
					}
				}
			}
		}
	}
	for _, through := range []string{"OutProtect", "OutBypass", "InOffload", "InBypass", "AcquireSent", "InNoStates",
		"NonIP", "FibNoNeigh", "WorkerSealed", "WorkerOpened", "WorkerRxPackets", "WorkerTooBig", "WorkerFragments"} {
		if seen[through] == "xdpsec_drops_total" {
			t.Errorf("%s is counted as a drop", through)
		}
	}
	if len(seen) != len(f.counters) {
		t.Errorf("%d counters exported, the source has %d", len(seen), len(f.counters))
	}
}

// Every reason the card counts and every worker counter is classified, and the table names no
// reason the card does not have.
func TestEveryCounterClassified(t *testing.T) {
	known := append(cardReasons(), workerCounters...)
	for _, n := range known {
		if counterKinds[n] == kindUnclassified {
			t.Errorf("counter %q is not classified in counters.go", n)
		}
	}
	for n := range counterKinds {
		if !slices.Contains(known, n) {
			t.Errorf("counters.go classifies %q, which neither the card nor the workers count", n)
		}
	}
	// A counter added later without a class is exported as unclassified, never as a drop.
	f := newFake()
	f.counters["NewThing"] = 7
	if got := gather(t, newCollector(t, f)); got["xdpsec_counters_unclassified_total{counter=NewThing}"] != 7 {
		t.Error("an unclassified counter is not exported as such")
	}
}

// No series carries an SPI, a destination or a sequence number (issue 8: the endpoint is readable by
// anyone who can connect), and per-SA series are keyed by name, index and direction only.
func TestNoSPIOrSequenceNumber(t *testing.T) {
	for _, mf := range gatherFamilies(t, newCollector(t, newFake())) {
		if strings.Contains(mf.GetName(), "seq") {
			t.Errorf("metric %s exports sequence numbers", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetGauge().GetValue(); v == 0xabcdef {
				t.Errorf("%s carries the SA's sequence number", mf.GetName())
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "spi" || l.GetName() == "dst" || strings.Contains(l.GetValue(), "1001") ||
					strings.Contains(l.GetValue(), "4097") || strings.Contains(l.GetValue(), "198.19.0.1") {
					t.Errorf("%s{%s=%q} names the SA by SPI or address", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// Soft and hard expiries are counted by the limit reached, from the event stream.
func TestExpiries(t *testing.T) {
	f := newFake()
	c := newCollector(t, f)
	for _, ev := range []events.Event{
		{Type: events.SASoftExpire, Reason: string(lifetime.ByBytes)},
		{Type: events.SASoftExpire, Reason: string(lifetime.ByBytes)},
		{Type: events.SAHardExpire, Reason: string(lifetime.BySeq)},
		{Type: events.SAHardExpire, Reason: "something new"},
		{Type: events.SADeleted},
		{Type: events.OffloadNack, Reason: "table_full"},
	} {
		f.bus.Publish(ev)
	}
	want := map[string]float64{
		"xdpsec_sa_expiries_total{kind=soft,limit=bytes}":         2,
		"xdpsec_sa_expiries_total{kind=hard,limit=seq-exhausted}": 1,
		"xdpsec_sa_expiries_total{kind=hard,limit=other}":         1,
		"xdpsec_sa_expiries_total{kind=hard,limit=bytes}":         0,
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gather(t, c)
		n := 0
		for k := range got {
			if strings.HasPrefix(k, "xdpsec_sa_expiries_total") {
				n++
			}
		}
		ok := n == 11 // 2 kinds × 5 limits, and the one "other"
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("expiries after 10 s (%d series): %v", n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every metric's name, type and help pass promlint, as a scraper sees them (with the Go and process
// collectors Serve adds).
func TestPromlint(t *testing.T) {
	f := newFake()
	srv, err := Serve("127.0.0.1:0", f, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	if !strings.Contains(string(body), "xdpsec_drops_total{reason=\"InNoPols\"}") {
		t.Fatalf("the scrape lacks the drops:\n%s", body)
	}
	problems, err := promlint.New(strings.NewReader(string(body))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// An address without a host listens on loopback only.
func TestServeDefaultsToLoopback(t *testing.T) {
	srv, err := Serve(":0", newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if host, _, _ := net.SplitHostPort(srv.Addr()); host != "127.0.0.1" {
		t.Errorf("Serve(\":0\") listens on %s, want 127.0.0.1", srv.Addr())
	}
}
