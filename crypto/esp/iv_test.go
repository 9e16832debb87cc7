package esp

import (
	"crypto/rand"
	"runtime"
	"sync"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// TestCBCIVsUnique encapsulates from several goroutines at once on one CBC
// SA, and on a second SA with the same keys, and checks that no IV repeats
// and none is zero across many batches.
func TestCBCIVsUnique(t *testing.T) {
	const workers, perWorker = 4, 4000
	c := saCase{suite: suites[4], mode: ipsec.ModeTunnel}
	out1, _ := c.pair(t)
	out2, _ := c.pair(t) // same keys: its IVs must still differ
	ivs := make([][][16]byte, 2*workers)
	var wg sync.WaitGroup
	for w := range 2 * workers {
		out := out1
		if w >= workers {
			out = out2
		}
		wg.Go(func() {
			pkt := innerPacketFixed(100)
			buf := make([]byte, Headroom+len(pkt)+Tailroom)
			for range perWorker {
				copy(buf[Headroom:], pkt)
				s, _, err := out.Encap(buf, Headroom, len(pkt))
				if err != nil {
					t.Error(err)
					return
				}
				ivs[w] = append(ivs[w], [16]byte(buf[s+20+8:s+20+8+16]))
			}
		})
	}
	wg.Wait()
	seen := make(map[[16]byte]bool, 2*workers*perWorker)
	for _, l := range ivs {
		for _, iv := range l {
			if iv == [16]byte{} || seen[iv] {
				t.Fatalf("iv %x repeated or zero", iv)
			}
			seen[iv] = true
		}
	}
	if len(seen) != 2*workers*perWorker {
		t.Fatalf("%d ivs, want %d", len(seen), 2*workers*perWorker)
	}
}

// TestCBCIVGenerator checks the generator's life cycle on one state: keyed
// on first use, a used IV is wiped from the batch, and after ivRekeyBatches
// batches it takes a fresh key (the stream changes and stays unique).
func TestCBCIVGenerator(t *testing.T) {
	out, _ := saCase{suite: suites[5], mode: ipsec.ModeTunnel}.pair(t)
	st := out.st.Load()
	es := st.pool.get()
	defer st.pool.put(es)
	if es.ivGen != nil {
		t.Fatal("generator keyed before the first IV")
	}
	seen := map[[16]byte]bool{}
	var iv [16]byte
	draw := func(n int) {
		for range n {
			es.nextIV(iv[:])
			if iv == [16]byte{} || seen[iv] {
				t.Fatalf("iv %x repeated or zero", iv)
			}
			seen[iv] = true
			if used := es.ivs[(es.ivNext-1)*16 : es.ivNext*16]; [16]byte(used) != [16]byte{} {
				t.Fatal("a used iv stays in the batch")
			}
		}
	}
	draw(3*ivBatch + 5)
	gen := es.ivGen
	if gen == nil || es.ivBatches != 4 {
		t.Fatalf("generator %v, %d batches", gen, es.ivBatches)
	}
	es.ivBatches = ivRekeyBatches // as if 2^32 IVs had been drawn
	es.ivNext = ivBatch
	draw(2 * ivBatch)
	if es.ivGen == gen || es.ivBatches != 2 {
		t.Fatalf("not rekeyed after %d batches", ivRekeyBatches)
	}
}

// BenchmarkCBCIV is the cost of one CBC IV: "drbg" as Encap draws it now,
// "getrandom" as before (a 1 KiB batch from crypto/rand every ivBatch IVs,
// in the call that ran out).
//
//	go test -run='^$' -bench=BenchmarkCBCIV -count=5 ./crypto/esp/
func BenchmarkCBCIV(b *testing.B) {
	b.Run("drbg", func(b *testing.B) {
		out, _ := saCase{suite: suites[4], mode: ipsec.ModeTunnel}.pair(b)
		st := out.st.Load()
		es := st.pool.get()
		defer st.pool.put(es)
		var iv [16]byte
		b.ReportAllocs()
		for range b.N {
			es.nextIV(iv[:])
		}
	})
	b.Run("getrandom", func(b *testing.B) {
		var ivs [ivBatch * 16]byte
		next := ivBatch
		var iv [16]byte
		b.ReportAllocs()
		for range b.N {
			if next >= ivBatch {
				rand.Read(ivs[:])
				next = 0
			}
			copy(iv[:], ivs[next*16:])
			clear(ivs[next*16 : (next+1)*16])
			next++
		}
	})
}

// TestETMPoolSize checks that the encrypt-then-MAC pool keeps a state for
// every goroutine that can hold one at once (2 × GOMAXPROCS): with more
// concurrent workers than slots, each call beyond them allocated a state
// (HMAC, CBC, IV generator) per packet.
func TestETMPoolSize(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	out, _ := saCase{suite: suites[4], mode: ipsec.ModeTunnel}.pair(t)
	st := out.st.Load()
	n := 2 * runtime.GOMAXPROCS(0)
	held := make([]*etmState, n)
	for i := range held {
		held[i] = st.pool.get()
	}
	for _, s := range held {
		st.pool.put(s)
	}
	kept := map[*etmState]bool{}
	for range n {
		kept[st.pool.get()] = true
	}
	for _, s := range held {
		if !kept[s] {
			t.Fatalf("%d concurrent holders: the pool dropped a state", n)
		}
	}
}
