package replay

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
)

// model is the obvious window: a set of accepted numbers and the top.
type model struct {
	size uint64
	top  uint64
	seen map[uint64]bool
}

func (m *model) accept(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if m.size != 0 {
		if seq <= m.top && m.top-seq >= m.size {
			return false
		}
		if m.seen[seq] {
			return false
		}
	}
	m.seen[seq] = true
	if seq > m.top {
		m.top = seq
	}
	return true
}

func TestWindowEdges(t *testing.T) {
	for _, size := range []uint32{32, 64, 65, 128, 1000, 4096} {
		w := New(size, 0)
		top := uint64(10_000)
		if !w.Accept(top) {
			t.Fatalf("size %d: first packet refused", size)
		}
		// The oldest number still inside the window: top-size+1.
		edge := top - uint64(size) + 1
		if !w.Check(edge) || !w.Accept(edge) {
			t.Fatalf("size %d: %d (left edge) refused", size, edge)
		}
		if w.Accept(edge) {
			t.Fatalf("size %d: duplicate of the left edge accepted", size)
		}
		if w.Check(edge-1) || w.Accept(edge-1) {
			t.Fatalf("size %d: %d (just left of the window) accepted", size, edge-1)
		}
		if w.Accept(top) {
			t.Fatalf("size %d: duplicate top accepted", size)
		}
		if !w.Accept(top + 1) {
			t.Fatalf("size %d: top+1 refused", size)
		}
		// Sliding by one pushes the old edge out.
		if w.Check(edge) {
			t.Fatalf("size %d: old edge still inside after the slide", size)
		}
		// A huge jump empties the window.
		far := top + 1<<40
		if !w.Accept(far) || w.Check(far) {
			t.Fatalf("size %d: jump", size)
		}
		if !w.Accept(far-1) || !w.Accept(far-uint64(size)+1) || w.Accept(far-uint64(size)) {
			t.Fatalf("size %d: after jump", size)
		}
		if w.Top() != far {
			t.Fatalf("size %d: top %d want %d", size, w.Top(), far)
		}
	}
}

func TestZeroIsNeverAccepted(t *testing.T) {
	for _, size := range []uint32{0, 64} {
		if New(size, 0).Accept(0) {
			t.Fatalf("size %d: accepted 0", size)
		}
	}
}

func TestDisabledWindowTracksTop(t *testing.T) {
	w := New(0, 5)
	for _, s := range []uint64{3, 3, 9, 1, 9} {
		if !w.Accept(s) {
			t.Fatalf("disabled window refused %d", s)
		}
	}
	if w.Top() != 9 {
		t.Fatalf("top %d", w.Top())
	}
}

func TestRestoredTopCountsAsSeen(t *testing.T) {
	w := New(64, 1000)
	for s := uint64(937); s <= 1000; s++ {
		if w.Check(s) {
			t.Fatalf("%d at or below the restored top accepted", s)
		}
	}
	// Numbers above the restored top in its own block are new.
	if !w.Accept(1003) || !w.Accept(1001) || !w.Accept(1002) {
		t.Fatal("numbers above the restored top refused")
	}
}

// TestAgainstModel feeds random, reordered and duplicated sequences to the
// ring and to the obvious model.
func TestAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	n := 50_000
	if testing.Short() {
		n = 10_000
	}
	for _, size := range []uint32{32, 100, 1024, 4096} {
		w := New(size, 0)
		m := &model{size: uint64(size), seen: map[uint64]bool{}}
		next := uint64(1)
		for i := range n {
			var seq uint64
			switch r.IntN(10) {
			case 0: // duplicate or old
				seq = next - uint64(r.IntN(int(size)*2+2))
				if seq > next {
					seq = 0
				}
			case 1: // jump ahead
				next += uint64(r.IntN(int(size) * 3))
				seq = next
			default: // reorder a little
				next++
				seq = next - uint64(r.IntN(int(size)/2+1))
			}
			if got, want := w.Accept(seq), m.accept(seq); got != want {
				t.Fatalf("size %d step %d: Accept(%d) = %v, model says %v (top %d)", size, i, seq, got, want, m.top)
			}
		}
	}
}

// TestConcurrentAccept: two goroutines race on the same numbers (run with
// -race); every number is accepted exactly once.
func TestConcurrentAccept(t *testing.T) {
	w := New(4096, 0)
	const n = 50_000
	var wg sync.WaitGroup
	counts := make([][]bool, 2)
	for g := range 2 {
		counts[g] = make([]bool, n+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := uint64(1); s <= n; s++ {
				w.Check(s) // lock-free read racing the other goroutine's Accept
				counts[g][s] = w.Accept(s)
			}
		}()
	}
	wg.Wait()
	for s := 1; s <= n; s++ {
		if counts[0][s] == counts[1][s] {
			t.Fatalf("%d accepted %v/%v: want exactly once", s, counts[0][s], counts[1][s])
		}
	}
}

func BenchmarkAccept(b *testing.B) {
	for _, size := range []uint32{64, 4096} {
		b.Run(sizeName(size), func(b *testing.B) {
			w := New(size, 0)
			b.ReportAllocs()
			for i := range b.N {
				w.Accept(uint64(i) + 1)
			}
		})
	}
}

func BenchmarkAcceptParallel(b *testing.B) {
	w := New(4096, 0)
	var ctr struct {
		sync.Mutex
		n uint64
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctr.Lock()
			ctr.n++
			s := ctr.n
			ctr.Unlock()
			w.Accept(s)
		}
	})
}

func sizeName(s uint32) string { return "w" + strconv.Itoa(int(s)) }
