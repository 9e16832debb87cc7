package seqstate

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
)

// Benchmarks at 65,536 SAs (half outbound, half inbound, spread over the
// shards as real fingerprints are), on the real file system (with fsync) in
// a temporary directory, or in $SEQSTATE_BENCH_DIR:
//
//	go test -run='^$' -bench=. -benchtime=20x ./control/seqstate/
//
//	full-persist   every shard changed: write, fsync and rename 64 files,
//	               one directory fsync (what a Step costs when every inbound
//	               SA moved in the last second)
//	renewal-burst  every outbound SA used up its reservation at once: one
//	               Step renews all 32,768 and writes every shard
//	encode-all     the CPU part of full-persist: encoding every shard
//	idle-step      a Step with nothing to write (the scan over all SAs)
//	reserve-one    Outbound for one more SA: its shard (~1,000 entries)
//	               written before it returns, then Release
//	prepare-32768  Prepare for 32,768 more outbound SAs: one write for all
//	               (after which Outbound claims each without writing)
//	open           loading the 64 files (a restart)

const benchSAs = 1 << 16

// fakeReceiver is an inbound SA reduced to its high-water mark.
type fakeReceiver struct{ top atomic.Uint64 }

func (f *fakeReceiver) ReplayTop() uint64 { return f.top.Load() }

type benchStore struct {
	s    *Store
	dir  string
	c    *clock
	outs []*fakeSender
	ins  []*fakeReceiver
}

// writes reads the commit count without Stats, which walks every entry.
func (bs *benchStore) writes() uint64 {
	bs.s.mu.Lock()
	defer bs.s.mu.Unlock()
	return bs.s.stats.Writes
}

func benchID(i int) ID {
	h := sha256.Sum256(binary.BigEndian.AppendUint32(nil, uint32(i)))
	var fp Fingerprint
	copy(fp[:], h[:])
	return ID{SPI: 0x1000 + uint32(i), Dst: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Key: fp}
}

// newBenchStore fills a store with benchSAs claimed and attached entries
// (directly: reserving them one by one would take a write each) and writes
// them once.
func newBenchStore(b *testing.B) *benchStore {
	dir := os.Getenv("SEQSTATE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	dir = filepath.Join(dir, "state")
	os.RemoveAll(dir)
	b.Cleanup(func() { os.RemoveAll(dir) })
	c := newClock()
	o := testOptions(c)
	o.Dir = dir
	s, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	bs := &benchStore{s: s, dir: dir, c: c}
	s.mu.Lock()
	for i := range benchSAs {
		id := benchID(i)
		e := &entry{key: entryKey{id, In}}
		if i%2 == 0 {
			f := &fakeSender{limit: math.MaxUint32}
			f.last.Store(uint64(i) * 1000)
			e.key.dir, e.mask, e.ceiling, e.durable, e.out = Out, uint64(i)*0x9e3779b97f4a7c15, f.last.Load()+1000, f.last.Load(), f
			e.lastUsed, e.lastAt = f.last.Load(), c.now()
			bs.outs = append(bs.outs, f)
		} else {
			r := &fakeReceiver{}
			r.top.Store(uint64(i) * 1000)
			e.in = r
			bs.ins = append(bs.ins, r)
		}
		s.claims++
		e.claim = s.claims
		sh := &s.shards[id.shard()]
		sh.entries[e.key] = e
		sh.dirty = true
		s.attachLocked(e)
	}
	s.mu.Unlock()
	if err := s.Step(c.add(time.Second)); err != nil {
		b.Fatal(err)
	}
	return bs
}

func BenchmarkStore65536(b *testing.B) {
	b.Run("full-persist", func(b *testing.B) {
		bs := newBenchStore(b)
		b.ResetTimer()
		for range b.N {
			for _, r := range bs.ins {
				r.top.Add(1)
			}
			if err := bs.s.Step(bs.c.add(time.Second)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportShardBytes(b, bs.dir)
	})
	b.Run("renewal-burst", func(b *testing.B) {
		bs := newBenchStore(b)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			for _, f := range bs.outs {
				f.send(1 << 20) // up to the ceiling
			}
			b.StartTimer()
			w := bs.writes()
			// One ReserveAhead later: the observed rate is the reservation
			// over 10 s, so each renewal is as big as the last.
			if err := bs.s.Step(bs.c.add(10 * time.Second)); err != nil {
				b.Fatal(err)
			}
			if bs.writes() != w+1 {
				b.Fatal("no renewal written")
			}
		}
		b.StopTimer()
		for _, f := range bs.outs {
			if f.ceiling.Load() <= f.last.Load() {
				b.Fatal("an sa was not renewed")
			}
		}
	})
	b.Run("encode-all", func(b *testing.B) {
		bs := newBenchStore(b)
		b.ResetTimer()
		for range b.N {
			bs.s.mu.Lock()
			for i := range bs.s.shards {
				bs.s.shards[i].dirty = true
			}
			snap := bs.s.snapshotLocked(allShards)
			bs.s.mu.Unlock()
			if len(snap.files) != numShards {
				b.Fatal(len(snap.files))
			}
		}
	})
	b.Run("idle-step", func(b *testing.B) {
		bs := newBenchStore(b)
		b.ResetTimer()
		for range b.N {
			w := bs.writes()
			if err := bs.s.Step(bs.c.add(100 * time.Millisecond)); err != nil {
				b.Fatal(err)
			}
			if bs.writes() != w {
				b.Fatal("an idle step wrote")
			}
		}
	})
	b.Run("reserve-one", func(b *testing.B) {
		bs := newBenchStore(b)
		p := saParams(0xabcd, 1, false)
		b.ResetTimer()
		for range b.N {
			h, err := bs.s.Outbound(p)
			if err != nil {
				b.Fatal(err)
			}
			h.Release()
		}
	})
	b.Run("prepare-32768", func(b *testing.B) {
		bs := newBenchStore(b)
		var ps []esp.Params
		for i := range benchSAs / 2 {
			p := saParams(0x100000+uint32(i), byte(i), false)
			p.AEAD.Key[5], p.AEAD.Key[6] = byte(i>>8), byte(i) // distinct keys
			ps = append(ps, p)
		}
		b.ResetTimer()
		for range b.N {
			// Every SA was released by a previous round: Prepare reserves
			// above what it may have sent, for all at once.
			if err := bs.s.Prepare(ps); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			w := bs.writes()
			for _, p := range ps {
				h, err := bs.s.Outbound(p)
				if err != nil {
					b.Fatal(err)
				}
				h.Release()
			}
			if bs.writes() != w {
				b.Fatal("Outbound wrote after Prepare")
			}
			b.StartTimer()
		}
	})
	b.Run("open", func(b *testing.B) {
		bs := newBenchStore(b)
		bs.s.Close()
		o := testOptions(newClock())
		o.Dir = bs.dir
		b.ResetTimer()
		for range b.N {
			s, err := Open(o)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := s.Stats().Entries; n != benchSAs {
				b.Fatalf("%d entries loaded", n)
			}
			s.closed = true // no Flush: it would rewrite every shard (released times)
			s.closer()
			b.StartTimer()
		}
	})
}

func reportShardBytes(b *testing.B, dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, "seq-*.state"))
	var n int64
	for _, name := range names {
		if fi, err := os.Stat(name); err == nil {
			n += fi.Size()
		}
	}
	b.ReportMetric(float64(n), "state-bytes")
	b.ReportMetric(float64(len(names)), "files")
}
