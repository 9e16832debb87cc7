package lifetime_test

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/lifetime"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type rig struct {
	clk    *clock
	store  *sadb.Store
	card   *fakecard.Card
	engine *offload.Engine
	poller *lifetime.Poller
	sub    *events.Sub
}

func newRig(t *testing.T) *rig {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	r := &rig{clk: clk, store: sadb.New(sadb.Options{Now: clk.now}), card: fakecard.New("wan0")}
	bus := events.NewBus(clk.now)
	r.sub = bus.Subscribe(100)
	log := slog.New(slog.DiscardHandler)
	r.engine = offload.New(r.store, r.card, offload.Options{Events: bus, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	r.engine.Start(ctx)
	t.Cleanup(func() { r.engine.Stop(); cancel() })
	r.poller = lifetime.New(r.store, r.engine, lifetime.Options{Now: clk.now, Events: bus, Logger: log})
	return r
}

func (r *rig) add(t *testing.T, l sadb.Lifetime, esn bool) sadb.SAEntry {
	t.Helper()
	e, err := r.store.AddSA(sadb.SA{Name: "a", SPI: 0x1001, Reqid: 1, ESN: esn,
		Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.19.0.1"),
		AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: make(sadb.Key, 20)}, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	r.sync(t)
	return e
}

func (r *rig) sync(t *testing.T) {
	t.Helper()
	if err := r.engine.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) poll(t *testing.T) {
	t.Helper()
	if err := r.poller.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.sync(t)
}

// expiries drains the event queue and counts soft and hard expiries with their reasons.
func (r *rig) expiries() (soft, hard []string) {
	for len(r.sub.C()) > 0 {
		ev := <-r.sub.C()
		switch ev.Type {
		case events.SASoftExpire:
			soft = append(soft, ev.Reason)
		case events.SAHardExpire:
			hard = append(hard, ev.Reason)
		}
	}
	return soft, hard
}

func TestByteLimits(t *testing.T) {
	r := newRig(t)
	e := r.add(t, sadb.Lifetime{SoftBytes: 1000, HardBytes: 2000}, false)
	r.card.Traffic(e.Index, 5, 999, r.clk.now())
	r.poll(t)
	if s, h := r.expiries(); len(s)+len(h) != 0 {
		t.Fatalf("expired below the limit: %v %v", s, h)
	}
	got, _ := r.store.GetSA(sadb.Ref{Name: "a"}, false)
	if got.Cur.Bytes != 999 || got.Cur.Packets != 5 || got.UseTime.IsZero() {
		t.Fatalf("current lifetime not taken from counters: %+v", got.Cur)
	}
	r.card.Traffic(e.Index, 1, 1, r.clk.now())
	r.poll(t)
	r.card.Traffic(e.Index, 1, 500, r.clk.now())
	r.poll(t)
	s, h := r.expiries()
	if len(s) != 1 || s[0] != "bytes" || len(h) != 0 {
		t.Fatalf("soft expiry must fire exactly once: soft %v hard %v", s, h)
	}
	got, _ = r.store.GetSA(sadb.Ref{Name: "a"}, false)
	if got.State != sadb.StateDying {
		t.Fatalf("state %s, want dying", got.State)
	}
	r.card.Traffic(e.Index, 1, 600, r.clk.now())
	r.poll(t)
	if _, h := r.expiries(); len(h) != 1 || h[0] != "bytes" {
		t.Fatalf("hard expiry: %v", h)
	}
	if _, err := r.store.GetSA(sadb.Ref{Name: "a"}, false); err == nil {
		t.Fatal("hard-expired SA still in the SAD")
	}
	if _, ok := r.card.SA("wan0", e.Index); ok {
		t.Fatal("hard-expired SA still in the card")
	}
	if len(r.card.Wiped()) != 1 {
		t.Fatal("hard-expired SA's key not wiped by the card")
	}
}

func TestPacketLimits(t *testing.T) {
	r := newRig(t)
	e := r.add(t, sadb.Lifetime{SoftPackets: 10, HardPackets: 10}, false)
	r.card.Traffic(e.Index, 10, 100, r.clk.now())
	r.poll(t)
	// Both reached in one poll: hard wins, the SA goes.
	if _, h := r.expiries(); len(h) != 1 || h[0] != "packets" {
		t.Fatalf("hard: %v", h)
	}
}

func TestAddTimeLimits(t *testing.T) {
	r := newRig(t)
	r.add(t, sadb.Lifetime{SoftAddSeconds: 10, HardAddSeconds: 20}, false)
	r.clk.advance(9 * time.Second)
	r.poll(t)
	if s, _ := r.expiries(); len(s) != 0 {
		t.Fatal("soft too early")
	}
	r.clk.advance(time.Second)
	r.poll(t)
	r.clk.advance(time.Second)
	r.poll(t)
	if s, h := r.expiries(); len(s) != 1 || s[0] != "add-time" || len(h) != 0 {
		t.Fatalf("soft %v hard %v", s, h)
	}
	r.clk.advance(9 * time.Second)
	r.poll(t)
	if _, h := r.expiries(); len(h) != 1 || h[0] != "add-time" {
		t.Fatalf("hard %v", h)
	}
}

func TestUseTimeCountsFromFirstUse(t *testing.T) {
	r := newRig(t)
	e := r.add(t, sadb.Lifetime{HardUseSeconds: 5}, false)
	r.clk.advance(time.Hour) // unused: the use clock has not started
	r.poll(t)
	if _, h := r.expiries(); len(h) != 0 {
		t.Fatal("use-time expiry before first use")
	}
	r.card.Traffic(e.Index, 1, 100, r.clk.now())
	r.poll(t)
	r.clk.advance(4 * time.Second)
	r.poll(t)
	if _, h := r.expiries(); len(h) != 0 {
		t.Fatal("use-time expiry too early")
	}
	r.clk.advance(time.Second)
	r.poll(t)
	if _, h := r.expiries(); len(h) != 1 || h[0] != "use-time" {
		t.Fatalf("hard %v", h)
	}
}

func TestSeqExhaustionIsHardExpiry(t *testing.T) {
	r := newRig(t)
	e := r.add(t, sadb.Lifetime{}, false)
	r.card.SetCounters(e.Index, offload.SACounters{Packets: 1, Seq: 1<<32 - 1})
	r.poll(t)
	if _, h := r.expiries(); len(h) != 1 || h[0] != "seq-exhausted" {
		t.Fatalf("hard %v", h)
	}
	// With ESN the same number is nothing special; the engine's own flag still is.
	r2 := newRig(t)
	e2 := r2.add(t, sadb.Lifetime{}, true)
	r2.card.SetCounters(e2.Index, offload.SACounters{Packets: 1, Seq: 1<<32 - 1})
	r2.poll(t)
	if _, h := r2.expiries(); len(h) != 0 {
		t.Fatalf("ESN SA expired at 2^32-1: %v", h)
	}
	r2.card.SetCounters(e2.Index, offload.SACounters{Packets: 2, Seq: 1 << 40, SeqExhausted: true})
	r2.poll(t)
	if _, h := r2.expiries(); len(h) != 1 {
		t.Fatal("SeqExhausted did not expire the SA")
	}
}
