package manager

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Clients on the socket, the lifetime poller (at 1 ms), monitor streams and the engine, all at once under
// -race; the card ends equal to the SAD/SPD.
func TestConcurrentClients(t *testing.T) {
	card := fakecard.New("lan0", "wan0")
	sock := filepath.Join(t.TempDir(), "api.sock")
	m := startManager(t, loadConfig(t, "testdata/gw.yaml"), card, Options{Socket: sock, PollInterval: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mctx, mcancel := context.WithCancel(ctx)
	var seen sync.WaitGroup
	seen.Go(func() { _ = api.NewClient(sock).Monitor(mctx, func(events.Event) error { return nil }) })
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c := api.NewClient(sock)
			for i := range 50 {
				name := fmt.Sprintf("c%d-%d", w, i%5)
				sa := sadb.SA{Name: name, SPI: uint32(0x10000 + w*100 + i%5), Reqid: uint32(w + 10),
					Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.19.0.1"), Mode: ipsec.ModeTunnel,
					AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: make(sadb.Key, 20), Bits: 128}, ReplayWindow: 64,
					Limits: sadb.Lifetime{HardPackets: 1000}}
				switch i % 4 {
				case 0, 1:
					c.AddSA(ctx, sa)
				case 2:
					c.DeleteSA(ctx, sadb.Ref{Name: name})
				case 3:
					if _, err := c.ListSAs(ctx, false); err != nil {
						t.Error(err)
					}
					if _, err := c.Stats(ctx); err != nil {
						t.Error(err)
					}
				}
				if e, err := m.Store().GetSA(sadb.Ref{Name: name}, false); err == nil {
					card.Traffic(e.Index, 1, 100, time.Now())
				}
			}
		})
	}
	wg.Wait()
	mcancel()
	seen.Wait()
	m.sync(t)
	rep, err := api.NewClient(sock).Check(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("check: %+v %v", rep, err)
	}
	if v := card.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
}
