package manager

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
)

type chanAcquires chan offload.Acquire

func (c chanAcquires) ReadAcquire(ctx context.Context) (offload.Acquire, error) {
	select {
	case a := <-c:
		return a, nil
	case <-ctx.Done():
		return offload.Acquire{}, ctx.Err()
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAcquireEventsRateLimited(t *testing.T) {
	acq := make(chanAcquires)
	clk := &fakeClock{t: time.Unix(5000, 0)}
	m := startManager(t, loadConfig(t, "testdata/gw.yaml"), fakecard.New("lan0", "wan0"),
		Options{NoPoller: true, NoAPI: true, Acquires: acq, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	sub := m.Events().Subscribe(100)
	pol, _ := m.Store().GetPolicy(sadb.PolicyRef{Name: "lan-out"})
	a := offload.Acquire{PolicyID: pol.ID, Iface: "lan0", Src: netip.MustParseAddr("198.18.1.5"),
		Dst: netip.MustParseAddr("198.18.2.5"), Proto: 6}
	for range 5 {
		acq <- a // a burst from one policy: one event
	}
	// The reader is sequential: once another policy's event is out, the burst has been handled.
	acq <- offload.Acquire{PolicyID: pol.ID + 100}
	var got []events.Event
	deadline := time.After(5 * time.Second)
	waitFor := func(n int) { // n ACQUIRE events in all
		for len(got) < n {
			select {
			case ev := <-sub.C():
				if ev.Type == events.Acquire {
					got = append(got, ev)
				}
			case <-deadline:
				t.Fatalf("acquire events: %+v", got)
			}
		}
	}
	waitFor(2)
	clk.add(time.Second)
	acq <- a // the next interval: another
	waitFor(3)
	if got[0].Policy != "lan-out" || got[0].SA != "gw1-to-gw2" || got[0].Src != "198.18.1.5" || got[0].Proto != 6 {
		t.Fatalf("first acquire: %+v", got[0])
	}
	if got[1].PolicyID != pol.ID+100 || got[2].PolicyID != pol.ID {
		t.Fatalf("rate limiting: %+v", got)
	}
	select {
	case ev := <-sub.C():
		if ev.Type == events.Acquire {
			t.Fatalf("an extra acquire: %+v", ev)
		}
	case <-time.After(50 * time.Millisecond):
	}
}
