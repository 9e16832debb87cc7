package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
)

// syncBuffer is a bytes.Buffer safe to read while the monitor writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestMonitor(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			d := startDaemon(t)
			var out, errOut syncBuffer
			done := make(chan int)
			go func() {
				done <- run([]string{"--socket", d.socket, "-o", format, "monitor"}, strings.NewReader(""), &out, &errOut)
			}()
			// Make events until the stream has shown each kind (the first ones may come before it subscribed).
			seen := func() bool {
				o := out.String()
				return strings.Contains(o, "sa-added") && strings.Contains(o, "offload-acked") && strings.Contains(o, "sa-deleted")
			}
			deadline := time.Now().Add(5 * time.Second)
			for !seen() {
				d.ok(t, strings.Fields("sa add src 198.18.0.1 dst 198.19.0.2 proto esp spi 0x3003 mode tunnel aead rfc4106(gcm(aes)) "+testKey+" 128 name m")...)
				d.sync(t) // the card acks the SA before it goes: offload-acked is among the events
				d.ok(t, "sa", "del", "m")
				if time.Now().After(deadline) {
					t.Fatalf("missing event kinds: %q %q", out.String(), errOut.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The daemon going away ends the stream; the monitor exits cleanly.
			d.m.Close()
			if code := <-done; code != 0 {
				t.Fatalf("monitor exit %d: %s", code, errOut.String())
			}
			first := strings.SplitN(out.String(), "\n", 2)[0]
			if format == "json" {
				var ev events.Event
				if err := json.Unmarshal([]byte(first), &ev); err != nil || ev.Type == "" {
					t.Fatalf("not a JSON event line: %q (%v)", first, err)
				}
			} else if !strings.Contains(out.String(), "sa-added src 198.18.0.1 dst 198.19.0.2 proto esp spi 0x00003003 sa m index ") {
				t.Fatalf("text monitor:\n%s", out.String())
			}
		})
	}
}

// The text lines use ip xfrm's words: SAs as src/dst/proto esp/spi/reqid, ACQUIREs with the packet's
// protocol by name, nacks with their reason and the driver's detail.
func TestPrintEvent(t *testing.T) {
	at := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ev   events.Event
		want string
	}{
		{events.Event{Time: at, Type: events.SAHardExpire, SA: "a", SPI: 0x1001, Src: "198.18.0.1", Dst: "198.19.0.1", Index: 3, Reqid: 1, Reason: "bytes"},
			"2026-11-29T06:00:00Z sa-hard-expired src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x00001001 reqid 1 sa a index 3 reason bytes"},
		{events.Event{Time: at, Type: events.Acquire, Src: "198.18.1.5", Dst: "198.18.2.5", Proto: 1, Policy: "lan-out", PolicyID: 2, Reqid: 1, Iface: "lan0"},
			`2026-11-29T06:00:00Z acquire src 198.18.1.5 dst 198.18.2.5 proto icmp reqid 1 policy "lan-out" policy-id 2 iface lan0`},
		{events.Event{Time: at, Type: events.OffloadNack, SA: "b", SPI: 0x2002, Src: "198.18.0.1", Dst: "198.19.0.1", Index: 9, Iface: "wan0", Reason: "table_full", Detail: "sa index 9 is beyond the card's 8 slots"},
			"2026-11-29T06:00:00Z offload-nacked src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x00002002 sa b index 9 iface wan0 reason table_full (sa index 9 is beyond the card's 8 slots)"},
	} {
		var b bytes.Buffer
		printEvent(&b, &tc.ev)
		if got := strings.TrimSuffix(b.String(), "\n"); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// TestMonitorKindAndReconnect: --kind keeps one kind of event, and --reconnect follows the daemon
// through a restart, saying so.
func TestMonitorKindAndReconnect(t *testing.T) {
	d := startDaemon(t)
	var out, errOut syncBuffer
	a := &App{In: strings.NewReader(""), Out: &out, Err: &errOut, Log: slog.New(slog.DiscardHandler)}
	root := newRoot(a)
	root.SetArgs([]string{"--socket", d.socket, "-o", "json", "monitor", "--kind", "sa", "--reconnect"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("monitor: %v", err)
		}
	}()
	// Events from before the monitor started are not shown: wait until it follows the stream.
	waitOut := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: stdout %q stderr %q", what, out.String(), errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	spi := 0x3100
	// addUntil adds SAs until one added now shows in the output after its first from bytes.
	addUntil := func(d *cliDaemon, from int) {
		waitOut("an sa-added line", func() bool {
			spi++
			// each SA its own key (the SAD refuses two SAs under one AEAD key): the SPI in its first bytes
			key := fmt.Sprintf("0x%08x%s", spi, testKey[10:])
			d.ok(t, strings.Fields(fmt.Sprintf("sa add src 198.18.0.1 dst 198.19.0.2 proto esp spi %#x mode tunnel aead rfc4106(gcm(aes)) %s 128", spi, key))...)
			d.sync(t)
			return strings.Contains(out.String()[from:], fmt.Sprintf(`"spi":%d`, spi))
		})
	}
	addUntil(d, 0)
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev events.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Type != events.SAAdded || ev.Seq == 0 {
			t.Fatalf("with --kind sa: line %q (%v)", l, err)
		}
	}
	d.m.Close()
	d2 := startDaemonAt(t, d.socket)
	waitOut("the restart note", func() bool { return strings.Contains(errOut.String(), "the daemon restarted") })
	addUntil(d2, len(out.String()))
}
