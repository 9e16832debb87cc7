package events

// The backlog: streams that must not lose events (an IKE daemon's: a lost soft expiry is a lost
// rekey) read the bus's last events by sequence number instead of holding a queue of their own.
// Publishing stays non-blocking: it overwrites the oldest event in a ring. A reader that resumes
// after an event still in the ring misses nothing; one that fell further behind learns it (Read's
// oldest) and re-reads the state instead (a resync).

// DefaultBacklog is how many events a bus keeps for streams (daemon.event_backlog).
const DefaultBacklog = 4096

type backlog struct {
	ring []Event
	seq  uint64        // the highest sequence number given out; 0: none yet
	wake chan struct{} // closed at the next add
}

func newBacklog(n int) backlog {
	return backlog{ring: make([]Event, max(n, 1)), wake: make(chan struct{})}
}

// add numbers ev, keeps it and wakes the readers.
func (b *backlog) add(ev Event) uint64 {
	b.seq++
	ev.Seq = b.seq
	b.ring[b.seq%uint64(len(b.ring))] = ev
	close(b.wake)
	b.wake = make(chan struct{})
	return b.seq
}

// oldest is the sequence number of the oldest event held (seq+1 when none is).
func (b *backlog) oldest() uint64 {
	if n := uint64(len(b.ring)); b.seq > n {
		return b.seq - n + 1
	}
	return 1
}

// Position is where the bus's numbering stands.
type Position struct {
	Seq    uint64 // the highest sequence number published (0: none)
	Oldest uint64 // the oldest one still in the backlog (Seq+1 when it is empty)
}

// Position returns the bus's numbering now.
func (b *Bus) Position() Position {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Position{Seq: b.log.seq, Oldest: b.log.oldest()}
}

// Read appends to buf (up to its capacity, at least one) the events with sequence numbers after since
// that the backlog still holds, in order, and returns them with the position and a channel closed
// when the next event is published. When events after since are no longer held (since < Oldest-1),
// the first event returned is the oldest one held: the caller compares.
func (b *Bus) Read(since uint64, buf []Event) ([]Event, Position, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pos := Position{Seq: b.log.seq, Oldest: b.log.oldest()}
	next := max(since+1, pos.Oldest)
	room := max(cap(buf)-len(buf), 1)
	for s := next; s <= pos.Seq && room > 0; s++ {
		buf = append(buf, b.log.ring[s%uint64(len(b.log.ring))])
		room--
	}
	return buf, pos, b.log.wake
}
