package seqstate

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
)

// TestRestartContinuesAboveReservation runs an outbound SA through several
// lives that each end in a crash (kill -9: nothing flushed, the page cache
// lost). Each life sends a different amount with Steps in between; the next
// life must continue strictly above every number the previous lives sent,
// with the same IV mask, so no sequence number and no IV repeats.
func TestRestartContinuesAboveReservation(t *testing.T) {
	c := newClock()
	m := newMemFS()
	p := saParams(0x1001, 1, false)
	seqs := map[uint32]int{}
	ivs := map[uint64]int{}
	var mask uint64
	for life, n := range []int{200, 2500, 0, 1, 4000} {
		s := openMem(t, m, testOptions(c))
		h, sa := newOutbound(t, s, p)
		if life > 0 && h.IVMask() != mask {
			t.Fatalf("life %d: mask %x, previous %x", life, h.IVMask(), mask)
		}
		mask = h.IVMask()
		if sa.IVMask() != mask || sa.Ceiling() != h.Ceiling() {
			t.Fatalf("life %d: the sa did not take the mask or the ceiling", life)
		}
		for i := range n {
			if i%500 == 0 {
				if err := s.Step(c.add(100 * time.Millisecond)); err != nil {
					t.Fatal(err)
				}
			}
			pk, err := encap(sa)
			if err != nil {
				t.Fatalf("life %d packet %d: %v", life, i, err)
			}
			if l, dup := seqs[pk.seq]; dup {
				t.Fatalf("life %d repeats sequence number %d of life %d", life, pk.seq, l)
			}
			if l, dup := ivs[pk.iv]; dup {
				t.Fatalf("life %d repeats iv %x of life %d", life, pk.iv, l)
			}
			seqs[pk.seq], ivs[pk.iv] = life, life
		}
		m.crash()
	}
	// State lost: the same key starts again at 1 — with a fresh mask.
	s := openMem(t, newMemFS(), testOptions(c))
	h, sa := newOutbound(t, s, p)
	if h.Seq() != 0 || h.IVMask() == mask {
		t.Fatalf("without state: seq %d, mask %x (old %x)", h.Seq(), h.IVMask(), mask)
	}
	for i := range 100 {
		pk, err := encap(sa)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := seqs[pk.seq]; !dup || pk.seq != uint32(i+1) {
			t.Fatalf("seq %d: the lost state did not restart the counter", pk.seq)
		}
		if _, dup := ivs[pk.iv]; dup {
			t.Fatalf("without state: iv %x repeated", pk.iv)
		}
	}
}

// TestReserveBeforeFirstUse: Outbound returns only once its reservation is
// on disk (a crash right after keeps it), and the SA cannot pass it before
// Step has made a renewal durable.
func TestReserveBeforeFirstUse(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	p := saParams(0x2002, 2, true)
	p.Seq = 77 // the configuration's seq: the first packet carries 78
	h, sa := newOutbound(t, s, p)
	if h.Seq() != 77 || h.Ceiling() != 77+1000 {
		t.Fatalf("seq %d ceiling %d", h.Seq(), h.Ceiling())
	}
	m.crash()
	s2 := openMem(t, m, testOptions(c))
	e := s2.shards[h.ID().shard()].entries[entryKey{h.ID(), Out}]
	if e == nil || e.durable != 1077 || e.mask != h.IVMask() {
		t.Fatalf("after a crash right after Outbound: %+v", e)
	}
	for range 1000 {
		if _, err := encap(sa); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := encap(sa); !errors.Is(err, esp.ErrSeqUnreserved) {
		t.Fatalf("beyond the first reservation without a Step: %v", err)
	}
	if err := s.Step(c.add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if sa.Ceiling() <= 1077 {
		t.Fatalf("Step did not renew a used-up reservation: ceiling %d", sa.Ceiling())
	}
	if pk, err := encap(sa); err != nil || pk.seq != 1078 {
		t.Fatalf("after the renewal: seq %d err %v", pk.seq, err)
	}
	if st := s.Stats(); st.Blocked != 1 || st.Claimed != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v: the Step saw the sa blocked at its ceiling", st)
	}
}

// TestReservationSizing drives a fake SA at known rates with one Step a
// second: a reservation is renewed once less than half of ReserveAhead
// (10 s) at the observed (peak-held) rate is left, then covers 10 s at that
// rate from the numbers used, at least MinReservation (1000 here); an SA
// whose demand jumps is held back only until the reservations catch up; a
// reservation never passes the SA's last number.
func TestReservationSizing(t *testing.T) {
	c := newClock()
	s := openMem(t, newMemFS(), testOptions(c))
	h, err := s.Outbound(saParams(0x3003, 3, false))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSender{limit: math.MaxUint32}
	if err := h.Attach(f); err != nil {
		t.Fatal(err)
	}
	if f.ceiling.Load() != 1000 {
		t.Fatalf("attach raised the ceiling to %d, want the reservation 1000", f.ceiling.Load())
	}
	step := func() {
		t.Helper()
		if err := s.Step(c.add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// 100/s: 10 s is below the floor of 1000; renew when < 500 are left.
	for i := range 5 {
		f.send(100)
		step()
		if f.ceiling.Load() != 1000 {
			t.Fatalf("step %d: renewed with %d of 1000 left: %d", i, 1000-f.last.Load(), f.ceiling.Load())
		}
	}
	f.send(100)
	step()
	if got := f.ceiling.Load(); got != 600+1000 {
		t.Fatalf("ceiling %d, want used 600 + the floor 1000", got)
	}
	// Demand jumps to 20,000/s: the SA is held at its ceiling, the next
	// reservation covers 10 s of what it managed to send, and within three
	// steps it sends its full demand.
	got := f.send(20000)
	if got != 1000 {
		t.Fatalf("sent %d beyond the ceiling", got)
	}
	step()
	if c := f.ceiling.Load(); c != 1600+10*1000 {
		t.Fatalf("ceiling %d, want 1600 + 10 s at 1000/s", c)
	}
	full := 0
	for range 5 {
		if f.send(20000) == 20000 {
			full++
		}
		step()
		if left := f.ceiling.Load() - f.last.Load(); full > 0 && left < 20000*10/2 {
			t.Fatalf("only %d left at 20,000/s", left)
		}
	}
	if full < 3 {
		t.Fatalf("held back in %d of 5 seconds at a steady 20,000/s", 5-full)
	}
	// Near the end of the 32-bit space the reservation stops at 2^32-1.
	f.last.Store(math.MaxUint32 - 10)
	f.RaiseCeiling(math.MaxUint32 - 10)
	step()
	if f.ceiling.Load() != math.MaxUint32 {
		t.Fatalf("ceiling %d beyond or short of the last number", f.ceiling.Load())
	}
	w := s.Stats().Writes
	step()
	if s.Stats().Writes != w {
		t.Fatal("a reservation up to the last number was renewed again")
	}
}

// TestDiskFullStopsSA: while writes fail (ENOSPC, then EIO), Step reports
// the error, the SA sends up to its durable ceiling and then drops with
// seq_unreserved (counted), never beyond; the directory holds the last good
// state; once writes succeed again the SA resumes without a gap.
func TestDiskFullStopsSA(t *testing.T) {
	for _, fault := range []error{errDiskFull, errIO} {
		c := newClock()
		m := newMemFS()
		s := openMem(t, m, testOptions(c))
		h, sa := newOutbound(t, s, saParams(0x4004, 4, false))
		ceiling := h.Ceiling()
		m.fail = failWrites(fault)
		sent, dropped, failed := 0, 0, 0
		for i := range 3000 {
			if i%100 == 0 {
				// A Step writes once something changed: from the first
				// renewal on, every Step fails.
				if err := s.Step(c.add(100 * time.Millisecond)); err != nil {
					if !errors.Is(err, fault) {
						t.Fatalf("%v: Step: %v", fault, err)
					}
					failed++
				}
			}
			_, err := encap(sa)
			switch {
			case err == nil:
				sent++
			case errors.Is(err, esp.ErrSeqUnreserved):
				dropped++
			default:
				t.Fatal(err)
			}
		}
		if uint64(sent) != ceiling || sa.Ceiling() != ceiling || sa.NextSeq() != ceiling+1 {
			t.Fatalf("%v: sent %d, ceiling %d (durable %d), next %d", fault, sent, sa.Ceiling(), ceiling, sa.NextSeq())
		}
		if got := sa.Counters().Errors[esp.ReasonSeqUnreserved]; got != uint64(dropped) || dropped != 3000-sent {
			t.Fatalf("%v: %d drops counted, %d dropped", fault, got, dropped)
		}
		st := s.Stats()
		if failed < 20 || st.WriteErrors != uint64(failed) || !strings.Contains(st.LastError, fault.Error()) || st.Blocked != 1 {
			t.Fatalf("%v: stats %+v", fault, st)
		}
		// The directory still holds the reservation of Outbound and no
		// leftover temporary file.
		m2 := &memFS{names: m.durable, durable: m.durable}
		s2 := openMem(t, m2, testOptions(c))
		if e := s2.shards[h.ID().shard()].entries[entryKey{h.ID(), Out}]; e == nil || e.durable != ceiling {
			t.Fatalf("%v: on disk %+v, want ceiling %d", fault, e, ceiling)
		}
		for n := range m.names {
			if strings.HasSuffix(n, tmpSuffix) {
				t.Fatalf("%v: %s left behind", fault, n)
			}
		}
		m.fail = nil
		if err := s.Step(c.add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if pk, err := encap(sa); err != nil || uint64(pk.seq) != ceiling+1 {
			t.Fatalf("%v: after recovery: seq %d, %v", fault, pk.seq, err)
		}
	}
}

// TestCrashAtEachWriteStep injects a crash at every step of a renewal's
// write protocol (create the temporary file, write, fsync, close, rename,
// fsync the directory) and restarts: the state read back is the old
// reservation when the crash came before the directory fsync completed and
// the new one after, never anything the SA could have exceeded. The SA's
// ceiling rises only after the directory fsync.
func TestCrashAtEachWriteStep(t *testing.T) {
	steps := []string{"create", "write", "sync", "close", "rename", "syncdir", ""}
	for _, at := range steps {
		t.Run("crash at "+at, func(t *testing.T) {
			c := newClock()
			m := newMemFS()
			s := openMem(t, m, testOptions(c))
			h, sa := newOutbound(t, s, saParams(0x5005, 5, true))
			old := h.Ceiling()
			for range 900 {
				if _, err := encap(sa); err != nil {
					t.Fatal(err)
				}
			}
			m.ops = nil
			m.fail = func(op, _ string) error {
				if op == at {
					return errInjected
				}
				return nil
			}
			err := s.Step(c.add(time.Second))
			if at == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, errInjected) {
				t.Fatalf("Step: %v", err)
			}
			raised := sa.Ceiling()
			if (at == "") != (raised > old) {
				t.Fatalf("ceiling %d (was %d) after a failure at %q", raised, old, at)
			}
			m.fail = nil
			m.crash()
			s2 := openMem(t, m, testOptions(c))
			e := s2.shards[h.ID().shard()].entries[entryKey{h.ID(), Out}]
			if e == nil || e.durable < raised {
				t.Fatalf("after the crash the state holds %+v; the sa could send up to %d", e, raised)
			}
			if at != "" && e.durable != old {
				t.Fatalf("after a crash at %q: ceiling %d, want the old %d", at, e.durable, old)
			}
			// The next life continues above whatever the SA could have sent.
			h2, sa2 := newOutbound(t, s2, saParams(0x5005, 5, true))
			if h2.Seq() < raised || h2.IVMask() != h.IVMask() {
				t.Fatalf("next life starts at %d, the previous one could reach %d", h2.Seq(), raised)
			}
			if pk, err := encap(sa2); err != nil || uint64(pk.seq) <= raised {
				t.Fatalf("next life sent %d, %v", pk.seq, err)
			}
		})
	}
}

// TestWriteProtocolOrder records the operations of one commit: each file is
// written under a temporary name and fsynced before any rename, and one
// directory fsync ends it.
func TestWriteProtocolOrder(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	var hs []*Outbound
	for i := range 3 {
		h, err := s.Outbound(saParams(0x6000+uint32(i), byte(10+i), false))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	for _, h := range hs {
		f := &fakeSender{limit: math.MaxUint32}
		_ = h.Attach(f)
		f.send(900)
	}
	m.ops = nil
	if err := s.Step(c.add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var creates, renames int
	lastSync := -1
	for i, op := range m.ops {
		verb, name, _ := strings.Cut(op, " ")
		switch verb {
		case "create", "write", "sync", "close":
			if !strings.HasSuffix(name, tmpSuffix) || renames > 0 {
				t.Fatalf("op %d %q: not a temporary file, or after a rename: %v", i, op, m.ops)
			}
			if verb == "create" {
				creates++
			}
			if verb == "sync" {
				lastSync = i
			}
		case "rename":
			if lastSync > i {
				t.Fatalf("rename before the fsync: %v", m.ops)
			}
			renames++
		case "syncdir":
			if i != len(m.ops)-1 {
				t.Fatalf("directory fsync is not last: %v", m.ops)
			}
		default:
			t.Fatalf("unexpected %q", op)
		}
	}
	shards := map[int]bool{}
	for _, h := range hs {
		shards[h.ID().shard()] = true
	}
	if creates != len(shards) || renames != len(shards) || m.ops[len(m.ops)-1] != "syncdir " {
		t.Fatalf("%d shards, ops %v", len(shards), m.ops)
	}
}

// TestInboundRestore: an inbound SA's high-water mark is persisted by Step
// (every InboundEvery) and restored after a crash: the new SA drops every
// number at or below it and accepts the next.
func TestInboundRestore(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	p := saParams(0x7007, 7, false)
	sender, err := esp.New(p)
	if err != nil {
		t.Fatal(err)
	}
	var wires [][]byte
	for range 300 {
		pk, err := encap(sender)
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, pk.wire)
	}
	ih, err := s.Inbound(p)
	if err != nil {
		t.Fatal(err)
	}
	if ih.Top() != 0 {
		t.Fatalf("new inbound sa restored at %d", ih.Top())
	}
	in, err := esp.New(p)
	if err != nil {
		t.Fatal(err)
	}
	_ = ih.Attach(in)
	for _, w := range wires[:200] {
		if err := decap(in, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Step(c.add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// Accepted after the last persist: may be accepted again after a crash
	// (at most InboundEvery of traffic).
	for _, w := range wires[200:250] {
		if err := decap(in, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Step(c.add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	m.crash()

	s2 := openMem(t, m, testOptions(c))
	ih2, err := s2.Inbound(p)
	if err != nil {
		t.Fatal(err)
	}
	if ih2.Top() != 200 {
		t.Fatalf("restored top %d, want 200 (the last persisted)", ih2.Top())
	}
	p.Seq = ih2.Top()
	in2, err := esp.New(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range wires[:200] {
		if err := decap(in2, w); !errors.Is(err, esp.ErrReplay) {
			t.Fatalf("seq %d at or below the restored top: %v", i+1, err)
		}
	}
	if err := decap(in2, wires[200]); err != nil {
		t.Fatalf("seq 201: %v", err)
	}

	// A clean shutdown persists the latest mark.
	_ = ih2.Attach(in2)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openMem(t, m, testOptions(c))
	if ih3, err := s3.Inbound(p); err != nil || ih3.Top() != 201 {
		t.Fatalf("after Close: %v top %d", err, ih3.Top())
	}
}

// TestTombstoneRefusesReAdd: Retire records a tombstone for the key; the
// same key is refused under its SPI and any other, inbound and outbound,
// in this life and after a restart, naming the reason.
func TestTombstoneRefusesReAdd(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	p := saParams(0x8008, 8, false)
	h, _ := newOutbound(t, s, p)
	if err := h.Retire("Hard expired"); err == nil {
		t.Fatal("a reason with a space and capitals accepted")
	}
	if err := h.Retire("hard-expired"); err != nil {
		t.Fatal(err)
	}
	if err := h.Retire("hard-expired"); !errors.Is(err, ErrStale) {
		t.Fatalf("second Retire: %v", err)
	}
	m.crash() // Retire returned: the tombstone is durable
	for life, st := range []*Store{s, openMem(t, m, testOptions(c))} {
		other := p
		other.SPI = 0x9009
		for _, q := range []esp.Params{p, other} {
			_, errOut := st.Outbound(q)
			_, errIn := st.Inbound(q)
			for _, err := range []error{errOut, errIn} {
				if !errors.Is(err, ErrRetired) || !strings.Contains(err.Error(), "hard-expired") ||
					!strings.Contains(err.Error(), "new key") {
					t.Fatalf("life %d spi %#x: %v", life, q.SPI, err)
				}
			}
		}
		// Admit says the same without claiming anything.
		for _, q := range []esp.Params{p, other} {
			if err := st.Admit(q); !errors.Is(err, ErrRetired) || !strings.Contains(err.Error(), "hard-expired") {
				t.Fatalf("life %d spi %#x: Admit: %v", life, q.SPI, err)
			}
		}
		if err := st.Admit(saParams(0x8008, 9, false)); err != nil {
			t.Fatalf("life %d: Admit refuses a new key: %v", life, err)
		}
		// Another key under the same SPI is fine.
		if _, err := st.Outbound(saParams(0x8008, 9, false)); err != nil {
			t.Fatalf("life %d: a new key refused: %v", life, err)
		}
	}
}

// TestExhaustedRefused: an SA whose last durable reservation reached its
// last number cannot come back (it would have nothing to send).
func TestExhaustedRefused(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	p := saParams(0xa00a, 10, false)
	p.Seq = math.MaxUint32 - 500
	h, sa := newOutbound(t, s, p)
	if h.Ceiling() != math.MaxUint32 {
		t.Fatalf("ceiling %d", h.Ceiling())
	}
	for range 500 {
		if _, err := encap(sa); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := encap(sa); !errors.Is(err, esp.ErrSeqExhausted) {
		t.Fatalf("%v", err)
	}
	m.crash()
	s2 := openMem(t, m, testOptions(c))
	p.Seq = 0
	if _, err := s2.Outbound(p); !errors.Is(err, ErrExhausted) {
		t.Fatalf("re-add of an exhausted sa: %v", err)
	}
	if err := s2.Admit(p); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Admit of an exhausted sa: %v", err)
	}
}

// TestReleaseGraceAndBounds: a released entry is kept for the grace period
// (a re-add continues above its reservation), then pruned; beyond
// MaxReleased the oldest released entries go first; beyond MaxTombstones the
// oldest tombstones (at the prune, every gcEvery).
func TestReleaseGraceAndBounds(t *testing.T) {
	c := newClock()
	m := newMemFS()
	o := testOptions(c)
	o.Grace, o.MaxReleased, o.MaxTombstones = time.Hour, 3, 2
	s := openMem(t, m, o)
	p := saParams(0xb00b, 11, false)
	h, _ := newOutbound(t, s, p)
	first := h.Ceiling()
	h.Release()
	h.Release() // idempotent
	if err := h.Attach(&fakeSender{}); !errors.Is(err, ErrStale) {
		t.Fatalf("attach after release: %v", err)
	}
	c.add(59 * time.Minute)
	h2, err := s.Outbound(p)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Seq() != first || h2.IVMask() != h.IVMask() {
		t.Fatalf("re-add within the grace period: seq %d mask %x, want %d %x", h2.Seq(), h2.IVMask(), first, h.IVMask())
	}
	h.Release() // stale: must not release h2's claim
	if _, err := s.Outbound(p); !errors.Is(err, ErrClaimed) {
		t.Fatalf("a stale handle released the new claim: %v", err)
	}
	h2.Release()
	if err := s.Step(c.add(61 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Entries != 0 {
		t.Fatalf("released entry not pruned after the grace period: %+v", st)
	}
	m.crash()
	if st := openMem(t, m, o); len(st.shards[h.ID().shard()].entries) != 0 {
		t.Fatal("the prune did not reach the disk")
	}

	// Bounds: 5 released entries, 3 kept (the newest); 3 tombstones, 2 kept.
	var ids []ID
	for i := range 5 {
		h, err := s.Outbound(saParams(0xc000+uint32(i), byte(20+i), false))
		if err != nil {
			t.Fatal(err)
		}
		c.add(time.Second)
		h.Release()
		ids = append(ids, h.ID())
	}
	var tombs []ID
	for i := range 3 {
		h, err := s.Outbound(saParams(0xd000+uint32(i), byte(40+i), false))
		if err != nil {
			t.Fatal(err)
		}
		c.add(time.Second)
		if err := h.Retire("seq-exhausted"); err != nil {
			t.Fatal(err)
		}
		tombs = append(tombs, h.ID())
	}
	if err := s.Step(c.add(gcEvery)); err != nil { // the bounds are enforced by the next prune
		t.Fatal(err)
	}
	m.crash()
	s2 := openMem(t, m, o)
	for i, id := range ids {
		_, kept := s2.shards[id.shard()].entries[entryKey{id, Out}]
		if kept != (i >= 2) {
			t.Fatalf("released entry %d kept=%v", i, kept)
		}
	}
	for i, id := range tombs {
		_, kept := s2.shards[id.shard()].tombs[id.Key]
		if kept != (i >= 1) {
			t.Fatalf("tombstone %d kept=%v", i, kept)
		}
	}
}

// TestContinueReattach: an SA updated in place (esp.Continue) is attached to
// the same handle; renewals keep raising the ceiling both SAs share.
func TestContinueReattach(t *testing.T) {
	c := newClock()
	s := openMem(t, newMemFS(), testOptions(c))
	p := saParams(0xe00e, 12, false)
	h, old := newOutbound(t, s, p)
	for range 600 {
		if _, err := encap(old); err != nil {
			t.Fatal(err)
		}
	}
	q := p
	q.TTL = 7
	nu, err := esp.Continue(old, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Attach(nu); err != nil {
		t.Fatal(err)
	}
	old.Wipe()
	if err := s.Step(c.add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if nu.Ceiling() <= h.Ceiling() {
		t.Fatal("no renewal for the continued sa")
	}
	if pk, err := encap(nu); err != nil || pk.seq != 601 {
		t.Fatalf("seq %d %v", pk.seq, err)
	}
}

// TestConcurrentEncapAndStep: workers Encap on an attached SA while Step
// runs (run with -race). Every number goes out once, and none above what the
// disk holds when the run ends.
func TestConcurrentEncapAndStep(t *testing.T) {
	c := newClock()
	m := newMemFS()
	o := testOptions(c)
	o.MinReservation = 200
	s := openMem(t, m, o)
	h, sa := newOutbound(t, s, saParams(0xf00f, 13, true))
	var mu sync.Mutex
	seen := map[uint32]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				pk, err := encap(sa)
				if errors.Is(err, esp.ErrSeqUnreserved) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[pk.seq] {
					t.Errorf("seq %d twice", pk.seq)
				}
				seen[pk.seq] = true
				mu.Unlock()
			}
		})
	}
	var steps sync.WaitGroup
	steps.Go(func() {
		for i := range 200 {
			if err := s.Step(c.now().Add(time.Duration(i) * 50 * time.Millisecond)); err != nil {
				t.Error(err)
			}
		}
	})
	steps.Wait()
	close(stop)
	wg.Wait()
	m.crash()
	s2 := openMem(t, m, o)
	e := s2.shards[h.ID().shard()].entries[entryKey{h.ID(), Out}]
	if last := sa.NextSeq() - 1; e == nil || e.durable < last || uint64(len(seen)) != last {
		t.Fatalf("sent %d (last %d), durable %+v", len(seen), last, e)
	}
}

// TestClosedStore: a closed store refuses work.
func TestClosedStore(t *testing.T) {
	c := newClock()
	s := openMem(t, newMemFS(), testOptions(c))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := s.Outbound(saParams(0x100, 1, false))
	if !errors.Is(err, ErrClosed) || !errors.Is(s.Step(c.now()), ErrClosed) {
		t.Fatalf("%v", err)
	}
}

// TestManySAsOneShardFile: entries share shard files; each SA keeps its own
// numbers and mask through a restart.
func TestManySAsOneShardFile(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	type sa struct {
		h    *Outbound
		sent uint64
	}
	var sas []sa
	for i := range 300 {
		h, err := s.Outbound(saParams(0x10000+uint32(i), byte(i), i%2 == 0))
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeSender{limit: math.MaxUint32}
		_ = h.Attach(f)
		sas = append(sas, sa{h, f.send(uint64(i * 7))})
	}
	if err := s.Step(c.add(time.Second)); err != nil {
		t.Fatal(err)
	}
	m.crash()
	s2 := openMem(t, m, testOptions(c))
	for i, x := range sas {
		h2, err := s2.Outbound(saParams(0x10000+uint32(i), byte(i), i%2 == 0))
		if err != nil {
			t.Fatal(err)
		}
		if h2.Seq() < x.sent || h2.IVMask() != x.h.IVMask() {
			t.Fatalf("sa %d: restarts at %d after sending %d", i, h2.Seq(), x.sent)
		}
	}
	files := 0
	for n := range m.durable {
		if _, ok := isShardName(n); ok {
			files++
		}
	}
	if files > numShards || files < numShards/2 {
		t.Fatalf("%d shard files for 300 sas", files)
	}
}

// TestPrepare: one write reserves for many outbound SAs; Outbound then
// claims each without a write of its own, continuing above the previous
// life; a retired key is skipped by Prepare and refused by Outbound; a
// failed Prepare leaves Outbound to write for itself.
func TestPrepare(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	var ps []esp.Params
	for i := range 200 {
		ps = append(ps, saParams(0x20000+uint32(i), byte(i), i%3 == 0))
	}
	// Life 1: the first 100 used for a while, one retired.
	sent := map[uint32]uint64{}
	for i, p := range ps[:100] {
		h, sa := newOutbound(t, s, p)
		for range i {
			if _, err := encap(sa); err != nil {
				t.Fatal(err)
			}
		}
		sent[p.SPI] = sa.NextSeq() - 1
		if i == 7 {
			if err := h.Retire("hard-expired"); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.crash()

	s2 := openMem(t, m, testOptions(c))
	w := s2.Stats().Writes
	if err := s2.Prepare(ps); err != nil {
		t.Fatal(err)
	}
	if got := s2.Stats().Writes; got != w+1 {
		t.Fatalf("Prepare took %d writes", got-w)
	}
	for i, p := range ps {
		h, err := s2.Outbound(p)
		if i == 7 {
			if !errors.Is(err, ErrRetired) {
				t.Fatalf("retired key: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Seq() < sent[p.SPI] || (i >= 100 && h.Seq() != 0) || h.Ceiling() < h.Seq()+500 {
			t.Fatalf("sa %d: seq %d ceiling %d, previous life sent %d", i, h.Seq(), h.Ceiling(), sent[p.SPI])
		}
	}
	if got := s2.Stats().Writes; got != w+1 {
		t.Fatalf("Outbound after Prepare wrote %d times", got-w-1)
	}

	// A failed Prepare: Outbound writes for itself.
	s3 := openMem(t, newMemFS(), testOptions(c))
	s3.fs.(*memFS).fail = failWrites(errDiskFull)
	if err := s3.Prepare(ps[:10]); !errors.Is(err, errDiskFull) {
		t.Fatalf("Prepare on a full disk: %v", err)
	}
	if _, err := s3.Outbound(ps[0]); !errors.Is(err, errDiskFull) {
		t.Fatalf("Outbound without a durable reservation on a full disk: %v", err)
	}
	s3.fs.(*memFS).fail = nil
	if h, err := s3.Outbound(ps[0]); err != nil || h.Ceiling() == 0 {
		t.Fatalf("after the disk recovered: %v", err)
	}
}

// TestStoreRetire: retiring by parameters (the lifetime poller has no
// handle) tombstones the key, stales the handle, and stops renewing its SA:
// it stops at its ceiling.
func TestStoreRetire(t *testing.T) {
	c := newClock()
	m := newMemFS()
	s := openMem(t, m, testOptions(c))
	p := saParams(0x3030, 30, false)
	h, sa := newOutbound(t, s, p)
	if err := s.Retire(p, "seq-exhausted"); err != nil {
		t.Fatal(err)
	}
	if err := h.Attach(sa); !errors.Is(err, ErrStale) {
		t.Fatalf("attach after Store.Retire: %v", err)
	}
	for range 1000 {
		if _, err := encap(sa); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Step(c.add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := encap(sa); !errors.Is(err, esp.ErrSeqUnreserved) {
		t.Fatalf("a retired sa was renewed: %v", err)
	}
	m.crash()
	if _, err := openMem(t, m, testOptions(c)).Outbound(p); !errors.Is(err, ErrRetired) || !strings.Contains(err.Error(), "seq-exhausted") {
		t.Fatalf("after a restart: %v", err)
	}
	if err := s.Retire(p, "bad reason"); err == nil {
		t.Fatal("a reason with a space accepted")
	}
}
