package metrics

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

type fakeSource struct{ cardErr error }

func (fakeSource) ListSAs(bool) []api.SAView {
	e := sadb.SAEntry{SA: sadb.SA{Name: "a", SPI: 0x1001, Dst: netip.MustParseAddr("198.19.0.1")}, Index: 3,
		State: sadb.StateDying, Cur: sadb.Current{Bytes: 1500, Packets: 3, IntegrityErrors: 2}}
	return []api.SAView{{SAEntry: e, Direction: new(ipsec.DirIn), OffloadState: []offload.IfaceState{
		{Iface: "wan0", Status: offload.StatusRefused, Reason: offload.ReasonTableFull}}}}
}
func (fakeSource) ListPolicies() []api.PolicyView { return nil }
func (f fakeSource) GlobalCounters(context.Context) (map[string]uint64, error) {
	if f.cardErr != nil {
		return nil, f.cardErr
	}
	return map[string]uint64{"InNoStates": 4}, nil
}
func (fakeSource) EngineStats() offload.Stats { return offload.Stats{SANacks: 1} }
func (fakeSource) EventStats() api.EventStats { return api.EventStats{Published: 9, Dropped: 1} }

// gather registers c on a pedantic registry (which checks descriptions and label consistency) and
// returns every sample as "name{label=value,…} value" lines.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
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

func TestCollector(t *testing.T) {
	got := gather(t, NewCollector(fakeSource{}, nil))
	sa := "dir=in,dst=198.19.0.1,index=3,sa=a,spi=0x00001001"
	for name, want := range map[string]float64{
		"xdpsec_sa_bytes_total{" + sa + "}":            1500,
		"xdpsec_sa_packets_total{" + sa + "}":          3,
		"xdpsec_sa_integrity_errors_total{" + sa + "}": 2,
		"xdpsec_sa_offload{dir=in,dst=198.19.0.1,iface=wan0,index=3,reason=table_full,sa=a,spi=0x00001001,status=refused}": 1,
		"xdpsec_sa_state{" + sa + ",state=dying}":     1,
		"xdpsec_drops_total{reason=InNoStates}":       4,
		"xdpsec_card_up{}":                            1,
		"xdpsec_offload_operations_total{op=sa_nack}": 1,
		"xdpsec_events_total{kind=dropped}":           1,
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
	down := gather(t, NewCollector(fakeSource{cardErr: errors.New("closed")}, nil))
	if down["xdpsec_card_up{}"] != 0 {
		t.Fatal("card_up is not 0 when the counters cannot be read")
	}
}
