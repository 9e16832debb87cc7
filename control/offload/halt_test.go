package offload_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// TestStopDuringLongPass: Stop does not wait for a pass to offer every SA. A first pass over a large
// SAD on a slow card (here 400 SAs at 5 ms a call: 2 s) stops between two driver calls; the card keeps
// what it was given, and nothing is removed.
func TestStopDuringLongPass(t *testing.T) {
	const n, perCall = 400, 5 * time.Millisecond
	card := fakecard.New("wan0")
	var calls atomic.Int64
	card.Fail = func(op, _ string, _ uint32) error {
		calls.Add(1)
		time.Sleep(perCall)
		if op != "install-sa" {
			return fmt.Errorf("unexpected %s while the engine stops", op)
		}
		return nil
	}
	store := sadb.New(sadb.Options{})
	for i := range n {
		sa := mkSA(fmt.Sprintf("sa%d", i), 0x1000+uint32(i), 1)
		binary.BigEndian.PutUint32(sa.AEAD.Key, uint32(i)) // a key of its own
		if _, err := store.AddSA(sa); err != nil {
			t.Fatal(err)
		}
	}
	e := offload.New(store, card, offload.Options{Events: events.NewBus(nil), Logger: slog.New(slog.DiscardHandler)})
	e.Start(context.Background())
	if !testutil.Eventually(10*time.Second, func() bool { return calls.Load() >= 10 }) {
		t.Fatalf("the first pass made %d driver calls in 10 s", calls.Load())
	}
	start := time.Now()
	e.Stop()
	took := time.Since(start)
	got := calls.Load()
	if got >= n {
		t.Fatalf("the pass made all %d calls before stopping", got)
	}
	// Stop waits for the call in progress, not for the rest of the pass (n*perCall).
	if took > n*perCall/4 {
		t.Fatalf("Stop took %v; the whole pass would take %v", took, n*perCall)
	}
	// Every call was an install that the card kept: the stop removed nothing.
	st, err := card.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if installed := int64(len(st.SAs["wan0"])); installed != got {
		t.Fatalf("%d SAs on the card after %d install calls", installed, got)
	}
}
