package offload_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// benchSPD fills a store with n outbound policies, each protected by its own SA (by name).
func benchSPD(b testing.TB, n int) (*sadb.Store, *offload.Engine) {
	b.Helper()
	store := sadb.New(sadb.Options{})
	eng := offload.New(store, fakecard.New("lan0", "wan0"), offload.Options{Logger: slog.New(slog.DiscardHandler)})
	for i := range n {
		name := fmt.Sprintf("sa%d", i)
		if _, err := store.AddSA(mkSA(name, uint32(0x10000+i), uint32(i+1))); err != nil {
			b.Fatal(err)
		}
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 32)
		p := sadb.Policy{Name: name, Dir: ipsec.DirOut, Priority: 100, Action: ipsec.ActionProtect,
			Sel: ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: dst}, Tmpl: &sadb.Tmpl{SA: name}}
		if _, err := store.AddPolicy(p); err != nil {
			b.Fatal(err)
		}
	}
	return store, eng
}

// settledSPD is benchSPD with the engine started and the card in step; it stops when b ends.
func settledSPD(b *testing.B, n int) (context.Context, *sadb.Store, *offload.Engine) {
	return settled(b, benchSPD, n)
}

// settled starts the engine on what spd filled and waits for the card; it stops when b ends.
func settled(b *testing.B, spd func(testing.TB, int) (*sadb.Store, *offload.Engine), n int) (context.Context, *sadb.Store, *offload.Engine) {
	store, eng := spd(b, n)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	eng.Start(ctx)
	b.Cleanup(eng.Stop)
	if err := eng.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	return ctx, store, eng
}

// BenchmarkInitialOffload: the engine offloads n SAs and n policies to two interfaces from scratch.
func BenchmarkInitialOffload(b *testing.B) { initialOffload(b, benchSPD) }

// initialOffload times the first pass over the store spd fills, for n = 1,024 and 16,384.
func initialOffload(b *testing.B, spd func(testing.TB, int) (*sadb.Store, *offload.Engine)) {
	for _, n := range []int{1024, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				_, eng := spd(b, n)
				ctx, cancel := context.WithCancel(context.Background())
				b.StartTimer()
				eng.Start(ctx)
				if err := eng.Sync(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				eng.Stop()
				cancel()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sa")
		})
	}
}

// BenchmarkChangeLatency: one SA update (a new offload list) on a loaded SPD/SAD, until the card
// follows: the cost of one API call's pass at that size.
func BenchmarkChangeLatency(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx, store, eng := settledSPD(b, n)
			sa := mkSA("sa0", 0x10000, 1)
			lists := [][]string{{"wan0"}, nil}
			i := 0
			for b.Loop() {
				sa.Offload = lists[i%2]
				i++
				if _, err := store.UpdateSA(sa); err != nil {
					b.Fatal(err)
				}
				if err := eng.Sync(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddSA: the SAD's add (validation by the ESP engine, copies, index allocation).
func BenchmarkAddSA(b *testing.B) {
	store := sadb.New(sadb.Options{})
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.AddSA(mkSA("", uint32(0x10000+i), 1)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCheck: `xdpsec check` on a loaded, settled SPD/SAD: a pass, the card's read-back and the
// independent policy→SA derivation.
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx, _, eng := settledSPD(b, n)
			for b.Loop() {
				rep, err := eng.Check(ctx)
				if err != nil || !rep.OK {
					b.Fatalf("%+v %v", rep, err)
				}
			}
		})
	}
}

// inboundSPD fills a store with n inbound SAs of a hub, each serving its own inbound PROTECT
// policy (a remote /32 to one local prefix) behind one broad higher-priority bypass: every SA has a
// post-decryption check list of two entries.
func inboundSPD(b testing.TB, n int) (*sadb.Store, *offload.Engine) {
	b.Helper()
	store := sadb.New(sadb.Options{})
	eng := offload.New(store, fakecard.New("lan0", "wan0"), offload.Options{Logger: slog.New(slog.DiscardHandler)})
	if _, err := store.AddPolicy(sadb.Policy{Name: "ike", Dir: ipsec.DirIn, Priority: 10, Action: ipsec.ActionBypass,
		Sel: ipsec.Selector{Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0"),
			Proto: ipsec.ProtoUDP, DstPorts: ipsec.Port(500)}}); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("sa%d", i)
		sa := mkSA(name, uint32(0x10000+i), uint32(i+1))
		sa.Dir = new(ipsec.DirIn)
		if _, err := store.AddSA(sa); err != nil {
			b.Fatal(err)
		}
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 32)
		p := sadb.Policy{Name: name, Dir: ipsec.DirIn, Priority: 100, Action: ipsec.ActionProtect,
			Sel: ipsec.Selector{Src: src, Dst: netip.MustParsePrefix("198.18.1.0/24")}, Tmpl: &sadb.Tmpl{SA: name}}
		if _, err := store.AddPolicy(p); err != nil {
			b.Fatal(err)
		}
	}
	return store, eng
}

// BenchmarkInitialOffloadInbound: BenchmarkInitialOffload with inboundSPD: the pass also builds n
// check lists.
func BenchmarkInitialOffloadInbound(b *testing.B) { initialOffload(b, inboundSPD) }

// BenchmarkChangeLatencyInbound: BenchmarkChangeLatency on inboundSPD, alternating a change that
// leaves the inbound SPD alone (an SA's offload list: the check lists come from the cache) and one
// that changes it (a policy's priority: every list is built again).
func BenchmarkChangeLatencyInbound(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		for _, kind := range []string{"sa", "policy"} {
			b.Run(fmt.Sprintf("%d/%s", n, kind), func(b *testing.B) {
				ctx, store, eng := settled(b, inboundSPD, n)
				sa := mkSA("sa0", 0x10000, 1)
				sa.Dir = new(ipsec.DirIn)
				pol, err := store.GetPolicy(sadb.PolicyRef{Name: "sa0"})
				if err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					i++
					if kind == "sa" {
						sa.Offload = [][]string{nil, {"wan0"}}[i%2] // the first one changes it
						_, err = store.UpdateSA(sa)
					} else {
						pol.Priority = uint32(100 + i%2)
						_, err = store.UpdatePolicy(pol.Policy)
					}
					if err != nil {
						b.Fatal(err)
					}
					if err := eng.Sync(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
