package manager

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
)

// The event stream of docs/ike-api.md: GET /v1/events, NDJSON with a sequence number per event, a
// bounded backlog read at each stream's pace, resume with ?since=, resync when events were lost.

type line struct {
	events.Event
	Epoch  string `json:"epoch"`
	Oldest uint64 `json:"oldest"`
}

type stream struct {
	c  net.Conn
	sc *bufio.Scanner
}

func openStream(t *testing.T, sock, query string) *stream {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req, _ := http.NewRequest("GET", "http://xdpsec/v1/events"+query, nil)
	req.Close = true
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || resp.Header.Get(api.EpochHeader) == "" {
		t.Fatalf("stream: %s %v", resp.Status, resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &stream{c: c, sc: sc}
}

func (s *stream) next(t *testing.T) line {
	t.Helper()
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if !s.sc.Scan() {
		t.Fatalf("stream ended: %v", s.sc.Err())
	}
	var l line
	if err := json.Unmarshal(s.sc.Bytes(), &l); err != nil {
		t.Fatalf("line %s: %v", s.sc.Bytes(), err)
	}
	return l
}

func publishN(m *Manager, n int, typ events.Type, owner string) {
	for i := range n {
		m.Events().Publish(events.Event{Type: typ, Owner: owner, SPI: uint32(0x1000 + i), Dst: "198.19.0.1"})
	}
}

func eventRig(t *testing.T, backlog int, opts Options) *Manager {
	t.Helper()
	cfg := loadConfig(t, "testdata/gw.yaml")
	cfg.Daemon.EventBacklog = backlog
	opts.NoPoller = true
	return startManager(t, cfg, fakecard.New("lan0", "wan0"), opts)
}

func TestEventStreamResume(t *testing.T) {
	m := eventRig(t, 4096, Options{})
	base := m.Events().Position().Seq // the configuration's own events
	publishN(m, 10, events.SASoftExpire, "ike")
	s := openStream(t, m.opts.Socket, "?owner=ike")
	start := s.next(t)
	if start.Type != api.StreamStart || start.Epoch != m.Epoch() || start.Seq != base+10 || start.Oldest != 1 {
		t.Fatalf("start %+v", start)
	}
	var last uint64
	for i := range 5 {
		ev := s.next(t)
		if ev.Seq != base+uint64(i)+1 || ev.Type != events.SASoftExpire {
			t.Fatalf("event %d: %+v", i, ev)
		}
		last = ev.Seq
	}
	s.c.Close()
	publishN(m, 3, events.SAHardExpire, "ike")
	s = openStream(t, m.opts.Socket, fmt.Sprintf("?since=%d&epoch=%s&owner=ike", last, m.Epoch()))
	s.next(t)
	for want := last + 1; want <= base+13; want++ {
		if ev := s.next(t); ev.Seq != want {
			t.Fatalf("after resuming at %d: seq %d, want %d", last, ev.Seq, want)
		}
	}
	// New events arrive as they happen.
	publishN(m, 1, events.Acquire, "ike")
	if ev := s.next(t); ev.Seq != base+14 || ev.Type != events.Acquire {
		t.Fatalf("live event %+v", ev)
	}
	// Another epoch's position means nothing here: from the start.
	s = openStream(t, m.opts.Socket, fmt.Sprintf("?since=%d&epoch=0123456789abcdef", base+10))
	s.next(t)
	if ev := s.next(t); ev.Seq != 1 {
		t.Fatalf("with another epoch: first seq %d, want 1", ev.Seq)
	}
}

func TestEventStreamFilters(t *testing.T) {
	m := eventRig(t, 4096, Options{})
	base := m.Events().Position().Seq
	publishN(m, 2, events.SAAdded, "ike")
	publishN(m, 2, events.SASoftExpire, "cli")
	publishN(m, 1, events.SASoftExpire, "ike")
	publishN(m, 1, events.Acquire, "ike")
	s := openStream(t, m.opts.Socket, "?owner=ike&type=sa-soft-expired,acquire")
	s.next(t)
	for _, want := range []struct {
		seq uint64
		typ events.Type
	}{{base + 5, events.SASoftExpire}, {base + 6, events.Acquire}} {
		if ev := s.next(t); ev.Seq != want.seq || ev.Type != want.typ || ev.Owner != "ike" {
			t.Fatalf("filtered %+v, want seq %d %s", ev, want.seq, want.typ)
		}
	}
}

// TestEventStreamResync: a reader behind the backlog, at connection or later, gets a resync line
// and then the oldest events still held, in order.
func TestEventStreamResync(t *testing.T) {
	m := eventRig(t, 8, Options{})
	publishN(m, 20, events.SASoftExpire, "ike")
	pos := m.Events().Position()
	s := openStream(t, m.opts.Socket, fmt.Sprintf("?since=2&epoch=%s", m.Epoch()))
	if st := s.next(t); st.Oldest != pos.Oldest || st.Seq != pos.Seq || pos.Oldest != pos.Seq-7 {
		t.Fatalf("start %+v, position %+v", st, pos)
	}
	if l := s.next(t); l.Type != api.Resync || l.Seq != pos.Seq {
		t.Fatalf("want resync, got %+v", l)
	}
	for want := pos.Oldest; want <= pos.Seq; want++ {
		if ev := s.next(t); ev.Seq != want {
			t.Fatalf("after resync: %d, want %d", ev.Seq, want)
		}
	}
	// Caught up, then not reading while far more than the backlog is published: the stream says so
	// when it is read again, and every event it delivers is in order.
	stop := m.Events().Position().Seq + 6000
	publishN(m, 6000, events.SASoftExpire, "ike")
	var prev uint64
	resyncs := 0
	for prev != stop {
		l := s.next(t)
		switch {
		case l.Type == api.Resync:
			resyncs++
			prev = 0
		case prev != 0 && l.Seq != prev+1:
			t.Fatalf("gap without resync: %d after %d", l.Seq, prev)
		default:
			prev = l.Seq
		}
	}
	if resyncs == 0 {
		t.Fatal("6000 events through a backlog of 8 and a stalled reader, and no resync")
	}
}

// TestEventStreamSlowReader: a reader slower than the publisher loses nothing while it stays within
// the backlog.
func TestEventStreamSlowReader(t *testing.T) {
	m := eventRig(t, 4096, Options{})
	base := m.Events().Position().Seq
	s := openStream(t, m.opts.Socket, fmt.Sprintf("?since=%d&epoch=%s", base, m.Epoch()))
	s.next(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 30 {
			publishN(m, 100, events.SAAdded, "ike")
			time.Sleep(time.Millisecond)
		}
	})
	for want := base + 1; want <= base+3000; want++ {
		l := s.next(t)
		if l.Type == api.Resync || l.Seq != want {
			t.Fatalf("slow reader: %+v, want seq %d", l, want)
		}
		if want%300 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	wg.Wait()
}

func TestEventStreamKeepalive(t *testing.T) {
	m := eventRig(t, 16, Options{EventKeepalive: 50 * time.Millisecond})
	s := openStream(t, m.opts.Socket, fmt.Sprintf("?since=%d&epoch=%s", m.Events().Position().Seq, m.Epoch()))
	s.next(t)
	t0 := time.Now()
	if l := s.next(t); l.Type != api.Keepalive || l.Seq != m.Events().Position().Seq {
		t.Fatalf("want a keepalive, got %+v", l)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("keepalive after %s", d)
	}
}

// TestSoftExpiryOnce: an SA's soft expiry is published once however often the poller runs and
// whatever happens to the SA after, so charon rekeys it once.
func TestSoftExpiryOnce(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := newIKERig(t, Options{Now: clock})
	if a := r.do(t, "POST", "/v1/sa", fmt.Sprintf(ikeSAIn, 0x6201, 4, 10)); a.status != 201 {
		t.Fatalf("add: %d %s", a.status, a.body)
	}
	r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "in", 100, 4))
	r.m.sync(t)
	s := openStream(t, r.sock, fmt.Sprintf("?since=%d&epoch=%s&type=sa-soft-expired", r.m.Events().Position().Seq, r.m.Epoch()))
	s.next(t)
	for i := range 5 {
		mu.Lock()
		now = now.Add(5 * time.Second)
		mu.Unlock()
		if err := r.m.Poller().Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			r.do(t, "POST", "/v1/sa/migrate", `{"id":{"spi":25089,"dst":"198.19.0.1","proto":50},"src":"198.19.0.3","dst":"198.19.0.1","encap":null}`)
		}
	}
	ev := s.next(t)
	if ev.Type != events.SASoftExpire || ev.SPI != 0x6201 || ev.Owner != "ike" || ev.Reason != "add-time" {
		t.Fatalf("soft expiry %+v", ev)
	}
	r.m.Events().Publish(events.Event{Type: events.SASoftExpire, SPI: 1}) // a marker after the polls
	if ev := s.next(t); ev.SPI != 1 {
		t.Fatalf("a second soft expiry of the SA: %+v", ev)
	}
}
