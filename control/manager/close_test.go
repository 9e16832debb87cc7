package manager

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
)

// Close stops everything the manager started — engine, poller, ACQUIRE reader, API server with a live
// monitor stream, metrics server — and the monitor client sees its stream end.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	m, err := New(loadConfig(t, "testdata/gw.yaml"), fakecard.New("lan0", "wan0"), Options{
		Socket: filepath.Join(t.TempDir(), "api.sock"), Metrics: "127.0.0.1:0", PollInterval: time.Millisecond,
		Acquires: make(chanAcquires), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cl := api.NewClient(m.opts.Socket)
	streaming := make(chan struct{})
	monitorDone := make(chan error, 1)
	go func() {
		monitorDone <- cl.Monitor(context.Background(), func(ev events.Event) error {
			select {
			case <-streaming:
			default:
				close(streaming)
			}
			return nil
		})
	}()
	if _, err := cl.Check(ctx); err != nil { // an event on the stream, and the API in use
		t.Fatal(err)
	}
	// Publish until the stream, which subscribes asynchronously, has delivered one.
	for deadline := time.Now().Add(5 * time.Second); ; {
		m.Events().Publish(events.Event{Type: events.SAAdded, SA: "x"})
		select {
		case <-streaming:
		case <-time.After(10 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("monitor stream did not start")
			}
			continue
		}
		break
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-monitorDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("monitor ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the monitor stream outlived Close")
	}
	cl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			var ours []string
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "xdpsec/control") {
					ours = append(ours, g)
				}
			}
			t.Fatalf("%d goroutines before, %d after Close; control-plane ones:\n%s", before, runtime.NumGoroutine(),
				strings.Join(ours, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
