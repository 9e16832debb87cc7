package esp

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// TestTwoWorkersOneSA runs two goroutines on one outbound SA and two on one
// inbound SA (run it with -race): every sequence number is used once, every
// packet is accepted once, and the second delivery of each is a replay.
func TestTwoWorkersOneSA(t *testing.T) {
	n := 4000
	if testing.Short() {
		n = 1000
	}
	for _, s := range []suiteCase{suites[0], suites[4]} {
		c := saCase{suite: s, mode: ipsec.ModeTunnel, esn: true, window: 4096}
		out, in := c.pair(t)
		wires := make([][][]byte, 2)
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pkt := innerPacketFixed(100)
				buf := make([]byte, Headroom+len(pkt)+Tailroom)
				for range n {
					copy(buf[Headroom:], pkt)
					st, e, err := out.Encap(buf, Headroom, len(pkt))
					if err != nil {
						t.Error(err)
						return
					}
					wires[g] = append(wires[g], append([]byte(nil), buf[st:e]...))
				}
			}()
		}
		wg.Wait()
		seen := map[uint32]bool{}
		for g := range 2 {
			for _, w := range wires[g] {
				seq := binary.BigEndian.Uint32(w[24:])
				if seen[seq] {
					t.Fatalf("%s: sequence number %d used twice", s.name, seq)
				}
				seen[seq] = true
			}
		}
		if len(seen) != 2*n || out.NextSeq() != uint64(2*n+1) {
			t.Fatalf("%s: %d numbers, next %d", s.name, len(seen), out.NextSeq())
		}
		if c := out.Counters(); c.OutPackets != uint64(2*n) || c.OutBytes != uint64(2*n*len(innerPacketFixed(100))) {
			t.Fatalf("%s: counted %d packets, %d bytes", s.name, c.OutPackets, c.OutBytes)
		}
		// Both workers deliver every packet in sequence order, the second
		// with neighbours swapped: each packet is accepted exactly once in
		// total. The later copy is a replay — or, when the other worker ran
		// more than a window ahead, fails the ICV because ESN inference
		// (RFC 4303 Appendix A) puts a number below the window in the next
		// high-half epoch.
		var mu sync.Mutex
		okCount, replays := 0, 0
		all := make([][]byte, 2*n)
		for _, w := range append(append([][]byte(nil), wires[0]...), wires[1]...) {
			all[binary.BigEndian.Uint32(w[24:])-1] = w
		}
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, Headroom+2048)
				ok, rep := 0, 0
				for i := range all {
					w := all[i]
					if g == 1 {
						w = all[i^1]
					}
					copy(buf[Headroom:], w)
					_, _, err := in.Decap(buf, Headroom, len(w))
					switch {
					case err == nil:
						ok++
					case errors.Is(err, ErrReplay), errors.Is(err, ErrICV):
						rep++
					default:
						t.Error(err)
						return
					}
				}
				mu.Lock()
				okCount += ok
				replays += rep
				mu.Unlock()
			}()
		}
		wg.Wait()
		if okCount != 2*n || replays != 2*n {
			t.Fatalf("%s: accepted %d, replays %d, want %d each", s.name, okCount, replays, 2*n)
		}
		cs := in.Counters()
		if cs.InPackets != uint64(2*n) || cs.Errors[ReasonReplay]+cs.Errors[ReasonICV] != uint64(2*n) {
			t.Fatalf("%s: counters %+v", s.name, cs)
		}
	}
}
