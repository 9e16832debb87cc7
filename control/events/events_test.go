package events

import (
	"testing"
	"time"
)

func TestFanOutAndDrop(t *testing.T) {
	b := NewBus(nil)
	fast := b.Subscribe(10)
	slow := b.Subscribe(1)
	for i := range 5 {
		b.Publish(Event{Type: SAAdded, SPI: uint32(i)})
	}
	if got := len(fast.C()); got != 5 {
		t.Fatalf("fast subscriber got %d events, want 5", got)
	}
	if slow.Dropped() != 4 || b.Dropped() != 4 {
		t.Fatalf("dropped: slow %d bus %d, want 4 4", slow.Dropped(), b.Dropped())
	}
	if ev := <-slow.C(); ev.SPI != 0 || ev.Time.IsZero() {
		t.Fatalf("slow subscriber got %+v, want the first event, time-stamped", ev)
	}
	slow.Close()
	slow.Close()
	b.Publish(Event{Type: SADeleted})
	if _, ok := <-slow.C(); ok {
		t.Fatal("closed subscriber still receives")
	}
	if len(fast.C()) != 6 {
		t.Fatal("fast subscriber missed an event")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(time.Second, func() time.Time { return now })
	if !l.Allow(1) || l.Allow(1) || !l.Allow(2) {
		t.Fatal("first per key must pass, second within the interval must not")
	}
	now = now.Add(time.Second)
	if !l.Allow(1) {
		t.Fatal("after the interval the key must pass again")
	}
	if l.Limited() != 1 {
		t.Fatalf("limited = %d", l.Limited())
	}
}
