package lifetime_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/lifetime"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// BenchmarkPoll: one lifetime round (read every SA's counters, update the SAD, check the limits) for n
// offloaded SAs with traffic: the poller's cost per interval.
func BenchmarkPoll(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			store := sadb.New(sadb.Options{})
			card := fakecard.New("wan0")
			log := slog.New(slog.DiscardHandler)
			eng := offload.New(store, card, offload.Options{Logger: log})
			for i := range n {
				_, err := store.AddSA(sadb.SA{SPI: uint32(0x10000 + i), Src: netip.MustParseAddr("198.18.0.1"),
					Dst: netip.MustParseAddr("198.19.0.1"), Mode: ipsec.ModeTunnel, ReplayWindow: 64,
					AEAD:   &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: make(sadb.Key, 20), Bits: 128},
					Limits: sadb.Lifetime{SoftBytes: 1 << 40, HardBytes: 1 << 41, HardAddSeconds: 3600}})
				if err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			eng.Start(ctx)
			defer eng.Stop()
			if err := eng.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				card.Traffic(uint32(i+1), 10, 1000, time.Now())
			}
			p := lifetime.New(store, eng, lifetime.Options{Logger: log})
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sa")
		})
	}
}
