package main

import (
	"bytes"
	"encoding/json"
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
			// Wait until the stream is subscribed, then make events.
			deadline := time.Now().Add(5 * time.Second)
			for d.m.Events().Published() == 0 || !strings.Contains(out.String(), "sa-added") {
				d.ok(t, strings.Fields("sa add src 198.18.0.1 dst 198.19.0.2 proto esp spi 0x3003 mode tunnel aead rfc4106(gcm(aes)) "+testKey+" 128 name m")...)
				d.ok(t, "sa", "del", "m")
				if time.Now().After(deadline) {
					t.Fatalf("no events seen: %q %q", out.String(), errOut.String())
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
			} else if !strings.Contains(out.String(), "sa-added sa m spi 0x00003003 dst 198.19.0.2") {
				t.Fatalf("text monitor:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "offload-acked") || !strings.Contains(out.String(), "sa-deleted") {
				t.Fatalf("missing event kinds:\n%s", out.String())
			}
		})
	}
}
