package esp

import (
	"runtime"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

// TestZeroAllocs checks the hot path allocates nothing per packet in steady
// state, for every suite, mode and encapsulation.
func TestZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		testutil.Skip(t, "coverage and race instrumentation allocate: the -race run cannot count the hot path's allocations")
	}
	for _, c := range allCases() {
		if c.esn && c.udp == false && c.mode == ipsec.ModeTransport {
			continue // covered by the other ESN rows; keeps the test short
		}
		out, in := c.pair(t)
		inner6 := c.inner6
		if c.mode == ipsec.ModeTransport {
			inner6 = c.outer6
		}
		r := newRand()
		pkt := innerPacket(r, inner6, 1400, 0)
		buf := make([]byte, Headroom+len(pkt)+Tailroom)
		wire := make([]byte, Headroom+len(pkt)+Tailroom+MaxOverhead)
		var s, e int
		encap := func() {
			copy(buf[Headroom:], pkt)
			var err error
			s, e, err = out.Encap(buf, Headroom, len(pkt))
			if err != nil {
				t.Fatal(err)
			}
		}
		decap := func() {
			n := copy(wire[Headroom:], buf[s:e])
			if _, _, err := in.Decap(wire, Headroom, n); err != nil {
				t.Fatal(err)
			}
		}
		for range 70 { // warm the pools and pass one CBC IV batch refill
			encap()
			decap()
		}
		// testing.AllocsPerRun rounds down; count every allocation too (CBC
		// refills its IV batch every 64 packets: that must not allocate).
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		a := testing.AllocsPerRun(200, func() { encap(); decap() })
		runtime.ReadMemStats(&after)
		// A few stray allocations may come from the runtime itself
		// (ReadMemStats; crypto/rand's per-thread vDSO getrandom state when
		// the goroutine lands on a new thread), never one per packet.
		if a != 0 || after.Mallocs-before.Mallocs > 8 {
			t.Errorf("%v: %.1f allocations per encap+decap, %d in all", c, a, after.Mallocs-before.Mallocs)
		}
	}
}
