package loader

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/control/spd"
)

// TestSPDChurnUnderTraffic rewrites the SPD continuously (adding and removing policies that do not
// match the flow, which moves the rule lists and bumps the generation) while one flow's packets run
// through the card. The flow's PROTECT policy never changes, so every packet must get exactly its SA:
// the double-buffered rule lists and the sequence lock never show a torn SPD — a packet is classified
// against the old or the new SPD, or dropped as SPDBusy, never bypassed.
func TestSPDChurnUnderTraffic(t *testing.T) {
	c := verdictCard(t, Config{})
	r := runner(t)
	flow := v4("198.18.1.1", "198.18.2.1", spd.ProtoUDP, ports(5000, 6000, 10)).build()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	churns := 0
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load() && i < 2000; i++ {
			// Higher priority than the flow's policy, so the flow's rule moves in the list.
			var ps []spd.Policy
			for j := 0; j < 1+i%50; j++ {
				src := netip.AddrFrom4([4]byte{198, 19, byte(j), byte(i)})
				ps = append(ps, spd.Policy{ID: uint32(200 + j), Dir: spd.DirOut, Priority: uint32(j % 3),
					Selector: anySel(netip.PrefixFrom(src, 32).String(), "0.0.0.0/0"), Action: spd.ActionBypass})
			}
			if err := c.PutPolicies(ps...); err != nil {
				t.Error(err)
				return
			}
			ids := make([]uint32, len(ps))
			for j := range ps {
				ids[j] = ps[j].ID
			}
			if err := c.DeletePolicies(ids...); err != nil {
				t.Error(err)
				return
			}
			churns++
		}
	}()
	bad, noMeta, runs := 0, uint64(0), 0
	for runs = 0; runs < 20000 && bad < 5; runs++ {
		v, out := r.run(t, c.program(SideProtected), flow)
		if v != xdpDrop {
			bad++
			t.Errorf("run %d: verdict %s", runs, verdictName(v))
			continue
		}
		var m bpf.CardXdpsecMeta
		if err := bpf.DecodeMeta(out, &m); err != nil {
			noMeta++ // must be an SPDBusy drop
			continue
		}
		if m.SaIndex != saOut {
			bad++
			t.Errorf("run %d: SA %d, want %d", runs, m.SaIndex, saOut)
		}
	}
	stop.Store(true)
	wg.Wait()
	counts, _ := c.ReasonCounts()
	busy := counts["SPDBusy"]
	t.Logf("%d packets during %d SPD changes; SPDBusy %d", runs, 2*churns, busy)
	if noMeta != busy {
		t.Errorf("%d drops without metadata, %d counted as SPDBusy", noMeta, busy)
	}
	if counts["OutBypass"] != 0 {
		t.Errorf("%d packets of the protected flow were bypassed", counts["OutBypass"])
	}
}
