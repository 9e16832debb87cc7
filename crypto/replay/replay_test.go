package replay

import (
	"errors"
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

// TestRestoreRejectsAtOrBelowTop restores windows of several sizes at tops on
// and around block boundaries: every number from 1 to top is refused (inside
// the window as a seen bit, further left as too old), top+1 is accepted once,
// and so are the numbers above it that share top's block.
func TestRestoreRejectsAtOrBelowTop(t *testing.T) {
	for _, size := range []uint32{32, 64, 65, 128, 1000, 4096} {
		for _, top := range []uint64{1, 5, 63, 64, 65, 127, 128, 1000, 1<<32 - 1, 1 << 32, 1<<32 + 5, 1<<64 - 3} {
			w := New(size, top)
			if w.Top() != top {
				t.Fatalf("size %d top %d: Top() = %d", size, top, w.Top())
			}
			lo := uint64(1)
			if top > 3*uint64(size) {
				lo = top - 3*uint64(size)
			}
			for s := lo; s <= top; s++ {
				if w.Check(s) || w.Accept(s) {
					t.Fatalf("size %d top %d: %d accepted after the restore", size, top, s)
				}
			}
			if !w.Accept(top+1) || w.Accept(top+1) {
				t.Fatalf("size %d top %d: top+1 not accepted exactly once", size, top)
			}
			// The rest of top's block and the next one are new.
			for s := top + 2; s <= top+66 && s > top; s++ {
				if !w.Accept(s) {
					t.Fatalf("size %d top %d: %d refused", size, top, s)
				}
			}
		}
	}
}

// TestRestoreAgainstModel: a restored window behaves like a model in which
// every number up to the restored top was seen.
func TestRestoreAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, size := range []uint32{32, 100, 1024} {
		for _, top := range []uint64{1, 777, 1 << 40} {
			w := New(size, top)
			m := &model{size: uint64(size), top: top, seen: map[uint64]bool{}}
			for s := top - min(top, uint64(size)) + 1; s <= top; s++ {
				m.seen[s] = true
			}
			next := top
			for i := range 5000 {
				next += uint64(r.IntN(3))
				seq := next - uint64(r.IntN(int(size)+5))
				if got, want := w.Accept(seq), m.accept(seq); got != want {
					t.Fatalf("size %d top %d step %d: Accept(%d) = %v, model %v", size, top, i, seq, got, want)
				}
			}
		}
	}
}

// TestWithSizeSharesState: two views of one window (an SA and its in-place
// update) see each other's accepted numbers and the same top, whatever
// their sizes; a view refuses what is left of its own window.
func TestWithSizeSharesState(t *testing.T) {
	a := New(128, 0)
	if a.Capacity() != 192 {
		t.Fatalf("capacity %d, want 192 (4 blocks, one spare)", a.Capacity())
	}
	b, err := a.WithSize(192)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.WithSize(32)
	if err != nil {
		t.Fatal(err)
	}
	if same, _ := a.WithSize(128); same != a {
		t.Fatal("WithSize of the own size made a new view")
	}
	for s := uint64(1); s <= 1000; s += 2 {
		if !a.Accept(s) {
			t.Fatalf("%d refused", s)
		}
	}
	if b.Top() != 999 || c.Top() != 999 {
		t.Fatalf("tops %d %d", b.Top(), c.Top())
	}
	for s := uint64(999 - 191); s <= 1000; s++ {
		want := s%2 == 0 // odd numbers were accepted through a
		if got := b.Check(s); got != want {
			t.Fatalf("view of 192: Check(%d) = %v, want %v", s, got, want)
		}
	}
	if c.Check(999-33) || !b.Check(999-33) || !a.Check(999-33) {
		t.Fatal("the 32-packet view does not refuse what is left of its window")
	}
	if !b.Accept(850) || a.Accept(850) || c.Accept(1000) == false || a.Accept(1000) {
		t.Fatal("a number accepted through one view is not a replay through the others")
	}
}

// TestWithSizeAgainstModel checks two views of one window against the model
// of the narrower one, over random traffic accepted through both.
func TestWithSizeAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, sizes := range [][2]uint32{{64, 64}, {65, 192}, {1000, 1024 + 960}, {4096, 32}} {
		w := New(sizes[0], 0)
		v, err := w.WithSize(sizes[1])
		if err != nil {
			t.Fatalf("%v: %v", sizes, err)
		}
		narrow, wide := w, v
		if v.Size() < w.Size() {
			narrow, wide = v, w
		}
		m := &model{size: uint64(narrow.Size()), seen: map[uint64]bool{}}
		next := uint64(1)
		for i := range 20000 {
			next += uint64(r.IntN(4))
			seq := next - uint64(r.IntN(int(sizes[1])+10))
			if seq > next {
				seq = 1
			}
			// The wide view takes what the narrow one takes, and more (left
			// of the narrow window): only the former goes through it.
			// The model's seen set holds every accepted number: the wide
			// view must read its own window's bits right too.
			wantWide := seq != 0 && (seq > m.top || m.top-seq < uint64(wide.Size()) && !m.seen[seq])
			if got := wide.Check(seq); got != wantWide {
				t.Fatalf("%v step %d: wide Check(%d) = %v, want %v (top %d)", sizes, i, seq, got, wantWide, m.top)
			}
			via := narrow
			if i%2 == 1 && narrow.Check(seq) {
				via = wide
			}
			if got, want := via.Accept(seq), m.accept(seq); got != want {
				t.Fatalf("%v step %d: Accept(%d) = %v, model %v", sizes, i, seq, got, want)
			}
		}
	}
}

func TestWithSizeRefusals(t *testing.T) {
	for _, c := range []struct {
		from, to uint32
	}{{64, 65}, {128, 193}, {0, 64}, {64, 0}, {32, 1 << 16}} {
		if _, err := New(c.from, 0).WithSize(c.to); !errors.Is(err, ErrResize) {
			t.Errorf("%d -> %d: err %v, want ErrResize", c.from, c.to, err)
		}
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

// TestCapacityFor: a window made with CapacityFor(n) packets costs what a window of n costs (the
// same ring), and is the Capacity New(n) reports.
func TestCapacityFor(t *testing.T) {
	for _, c := range []struct{ size, want uint32 }{
		{0, 0}, {32, 64}, {64, 64}, {65, 192}, {128, 192}, {192, 192}, {193, 448}, {4096, 8128}, {8128, 8128},
		{65536, 131008},
	} {
		if got := CapacityFor(c.size); got != c.want {
			t.Errorf("CapacityFor(%d) = %d, want %d", c.size, got, c.want)
		}
		if got := New(c.size, 0).Capacity(); got != c.want {
			t.Errorf("New(%d).Capacity() = %d, want %d", c.size, got, c.want)
		}
		if c.size > 0 && ringBlocks(c.want) != ringBlocks(c.size) {
			t.Errorf("a window of %d has %d blocks, one of %d has %d", c.want, ringBlocks(c.want), c.size, ringBlocks(c.size))
		}
	}
}
