package loader

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// TestSPDChurnUnderTraffic rewrites the SPD continuously (adding and removing policies that do not
// match the flow, which changes the tuple space and bumps the generation) while one flow's packets run
// through the card. The flow's PROTECT policy never changes, so every packet must get exactly its SA:
// the double-buffered tuple space and the sequence lock never show a torn SPD — a packet is classified
// against the old or the new SPD, or dropped as SPDBusy, never bypassed.
func TestSPDChurnUnderTraffic(t *testing.T) {
	c := verdictCard(t, Config{})
	r := runner(t)
	flow := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(5000, 6000, 10)).build()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	churns := 0
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load() && i < 2000; i++ {
			// Higher priority than the flow's policy, so the flow's rule moves in the list.
			var ps []ipsec.Policy
			for j := 0; j < 1+i%50; j++ {
				src := netip.AddrFrom4([4]byte{198, 19, byte(j), byte(i)})
				ps = append(ps, ipsec.Policy{ID: uint32(200 + j), Dir: ipsec.DirOut, Priority: uint32(j % 3),
					Selector: anySel(netip.PrefixFrom(src, 32).String(), "0.0.0.0/0"), Action: ipsec.ActionBypass})
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

// TestConcurrentAPI drives every table method from several goroutines at once (run it with -race) and
// checks that the card ends holding exactly the loader's view.
func TestConcurrentAPI(t *testing.T) {
	c := newTestCard(t, Config{Policies: 256, SAs: 256})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				idx := uint32(w*64 + i%64)
				sa := SA{Dir: ipsec.Dir(i % 2), SPI: uint32(w<<16 | i), Src: ip("198.18.0.1"), Dst: ip("198.18.0.2"), Mode: ipsec.ModeTunnel, PolicyID: NoPolicy}
				if err := c.PutSA(idx, sa); err != nil {
					t.Error(err)
					return
				}
				p := ipsec.Policy{ID: idx, Dir: ipsec.Dir(i % 2), Priority: uint32(i % 7), Selector: anySel("198.18.0.0/16", "198.18.0.0/16"), Action: ipsec.ActionProtect, SA: idx}
				if err := c.PutPolicies(p); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if err := c.DeletePolicies(idx); err != nil {
						t.Error(err)
					}
					if err := c.DeleteSA(idx); err != nil {
						t.Error(err)
					}
				}
				c.WorkerStats().Add(idx, 1, 100)
				if _, err := c.SAStats(idx); err != nil {
					t.Error(err)
				}
				if _, err := c.Reasons(); err != nil {
					t.Error(err)
				}
				_ = c.Policies()
			}
		}(w)
	}
	wg.Wait()
	got, err := c.DumpSPD()
	if err != nil {
		t.Fatal(err)
	}
	want := c.Policies()
	if len(got) != len(want) {
		t.Fatalf("card holds %d policies, loader %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("policy %d: card %+v, loader %+v", i, got[i], want[i])
		}
	}
}
