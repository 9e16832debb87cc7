package manager

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
)

func TestMetrics(t *testing.T) {
	card := fakecard.New("lan0", "wan0")
	card.AddGlobal("OutNoStates", 3)
	m := startManager(t, loadConfig(t, "testdata/gw.yaml"), card,
		Options{NoPoller: true, NoAPI: true, Metrics: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	sa, _ := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	card.Traffic(sa.Index, 4, 400, time.Now())
	if err := m.Poller().Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + m.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`xdpsec_sa_bytes_total{dir="out",index="1",sa="gw1-to-gw2"} 400`,
		`xdpsec_sa_packets_total{dir="out",index="1",sa="gw1-to-gw2"} 4`,
		`xdpsec_sa_state{dir="out",index="1",sa="gw1-to-gw2",state="mature"} 1`,
		`xdpsec_sa_offload{dir="out",iface="wan0",index="1",reason="",sa="gw1-to-gw2",status="offloaded"} 1`,
		// The inbound SA has no dir of its own: it is inbound because it serves the inbound policy.
		`xdpsec_sa_packets_total{dir="in",index="2",sa="gw2-to-gw1"} 0`,
		`xdpsec_sa_use_time_seconds{dir="out",index="1",sa="gw1-to-gw2"} `,
		`xdpsec_drops_total{reason="OutNoStates"} 3`,
		`xdpsec_sas 2`, `xdpsec_policies 3`, `xdpsec_card_up 1`,
		`xdpsec_offload_operations_total{op="sa_install"} 4`,
		`xdpsec_sa_expiries_total{kind="hard",limit="bytes"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}
