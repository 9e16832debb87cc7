// Package events is the control plane's event stream, the equivalent of ip xfrm monitor: ACQUIRE, SA
// added/updated/deleted/soft-expired/hard-expired, offload acked/nacked.
//
// Publish never blocks: each subscriber has a bounded queue, and an event that does not fit is dropped
// for that subscriber and counted (Sub.Dropped, Bus.Dropped). A slow `xdpsec monitor` can therefore never
// stall the offload engine or the lifetime poller.
package events

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Type is the kind of an event. The names are stable: they are the JSON "type" values.
type Type string

const (
	Acquire      Type = "acquire"    // a packet matched a PROTECT policy with no usable SA
	SAAdded      Type = "sa-added"   // ip xfrm monitor: "newsa"
	SAUpdated    Type = "sa-updated" // "updsa"
	SADeleted    Type = "sa-deleted" // "delsa"
	SASoftExpire Type = "sa-soft-expired"
	SAHardExpire Type = "sa-hard-expired"
	OffloadAck   Type = "offload-acked"
	OffloadNack  Type = "offload-nacked"
	PolicyAdded  Type = "sp-added"
	PolicyDel    Type = "sp-deleted"
	PolicyUpdate Type = "sp-updated"
)

// Event is one thing that happened. Fields that do not apply are empty.
type Event struct {
	// Seq numbers the bus's events 1, 2, 3, … in publishing order (stream.go).
	Seq  uint64    `json:"seq,omitempty"`
	Time time.Time `json:"time"`
	Type Type      `json:"type"`
	// Owner is the owner of the SA or policy the event is about (an ACQUIRE's: its policy's).
	Owner string `json:"owner,omitempty"`
	SA    string `json:"sa,omitempty"`    // the SA's name, if it has one
	SPI   uint32 `json:"spi,omitempty"`   // the SA's SPI
	Dst   string `json:"dst,omitempty"`   // the SA's destination
	Index uint32 `json:"index,omitempty"` // the card's SA index
	Reqid uint32 `json:"reqid,omitempty"`
	// Policy is the policy's name or, without one, its direction and selector.
	Policy   string `json:"policy,omitempty"`
	PolicyID uint32 `json:"policy_id,omitempty"`
	Iface    string `json:"iface,omitempty"`
	// Reason says why: the nack reason, or the limit that expired the SA (bytes, packets, add, use, seq).
	Reason string `json:"reason,omitempty"`
	// Src is the SA's source; for ACQUIRE, Src, Dst and Proto are the packet's.
	Src   string      `json:"src,omitempty"`
	Proto ipsec.Proto `json:"proto,omitempty"`
	// Sport and Dport are an ACQUIRE's packet's ports (TCP, UDP, SCTP; absent otherwise).
	Sport uint16 `json:"sport,omitempty"`
	Dport uint16 `json:"dport,omitempty"`
	// Detail is the driver's explanation of a nack (which limit, which algorithm).
	Detail string `json:"detail,omitempty"`
}

// ForSA is an event of type t about SA sa: its identity as ip xfrm monitor prints it, its name and index.
func ForSA(t Type, sa *sadb.SAEntry) Event {
	return Event{Type: t, Owner: sa.Owner.String(), SA: sa.Name, SPI: sa.SPI, Src: sa.Src.String(), Dst: sa.Dst.String(),
		Index: sa.Index, Reqid: sa.Reqid}
}

// ForPolicy is an event of type t about policy p: its label (name, or direction and selector) and id.
func ForPolicy(t Type, p *sadb.PolicyEntry) Event {
	return Event{Type: t, Owner: p.Owner.String(), Policy: p.Label(), PolicyID: p.ID}
}

// Bus fans events out to subscribers, and keeps the last ones in a backlog that streams read at their
// own pace (stream.go).
type Bus struct {
	mu      sync.Mutex
	subs    map[*Sub]struct{}
	now     func() time.Time
	dropped atomic.Uint64
	sent    atomic.Uint64
	log     backlog // guarded by mu
}

// NewBus returns a bus with the default backlog; now stamps events that carry no time (nil: time.Now).
func NewBus(now func() time.Time) *Bus { return NewBusBacklog(now, DefaultBacklog) }

// NewBusBacklog returns a bus that keeps the last n events (at least 1) for streams.
func NewBusBacklog(now func() time.Time, n int) *Bus {
	if now == nil {
		now = time.Now
	}
	return &Bus{subs: map[*Sub]struct{}{}, now: now, log: newBacklog(n)}
}

// Sub is one subscriber's queue.
type Sub struct {
	c       chan Event
	bus     *Bus
	dropped atomic.Uint64
	once    sync.Once
}

// C is where the subscriber reads events; it is closed by Close.
func (s *Sub) C() <-chan Event { return s.c }

// Dropped is how many events this subscriber lost because its queue was full.
func (s *Sub) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C.
func (s *Sub) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		close(s.c)
		s.bus.mu.Unlock()
	})
}

// Subscribe returns a subscriber with a queue of size buf (at least 1).
func (b *Bus) Subscribe(buf int) *Sub {
	s := &Sub{c: make(chan Event, max(buf, 1)), bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish sends ev to every subscriber without blocking.
func (b *Bus) Publish(ev Event) {
	if b == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = b.now()
	}
	b.sent.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	ev.Seq = b.log.add(ev)
	for s := range b.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
}

// Dropped is the number of (event, subscriber) deliveries lost to full queues.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Published is the number of events published.
func (b *Bus) Published() uint64 { return b.sent.Load() }

// Limiter rate-limits an event per key (ACQUIRE per policy): at most one per interval.
type Limiter struct {
	mu       sync.Mutex
	interval time.Duration
	last     map[uint32]time.Time
	now      func() time.Time
	limited  atomic.Uint64
}

// NewLimiter allows one event per key per interval.
func NewLimiter(interval time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{interval: interval, last: map[uint32]time.Time{}, now: now}
}

// Allow reports whether an event for key may be sent now, and if so records it.
func (l *Limiter) Allow(key uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		l.limited.Add(1)
		return false
	}
	l.last[key] = now
	if len(l.last) > 1<<16 {
		// Forget old keys so a churning SPD cannot grow the map without bound.
		for k, t := range l.last {
			if now.Sub(t) >= l.interval {
				delete(l.last, k)
			}
		}
	}
	return true
}

// Limited is how many events Allow refused.
func (l *Limiter) Limited() uint64 { return l.limited.Load() }
