//go:build linux

package worker

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// TestWorkersShareTables runs two workers (two queues) on one UMEM, one SA
// table and one counters table, while the control plane installs and
// removes another SA: the shared SA's counters add up, every ESP sequence
// number is used once, and each worker's frames are all accounted for.
func TestWorkersShareTables(t *testing.T) {
	u, err := xsk.NewUMEM(xsk.UMEMConfig{FrameCount: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pools, _ := u.Pools(2)
	sas, _ := NewSATable(16, 1500)
	if err := sas.Install(outIdx, &Entry{SA: newSA(t, spiOut, outerSrc, outerDst, 0), Dir: ipsec.DirOut}); err != nil {
		t.Fatal(err)
	}
	stats := NewStatsTable(16)
	res := &staticResolver{prefix: netip.MustParsePrefix("198.18.2.0/24")}
	type q struct {
		w          *Worker
		prot, wire *xsk.MemKernel
	}
	var qs []q
	sc := xsk.SocketConfig{FillSize: 32, CompletionSize: 32, RXSize: 32, TXSize: 32}
	for i := range 2 {
		ps, pk, _ := u.NewMemSocket(sc)
		ws, wk, _ := u.NewMemSocket(sc)
		defer ps.Close()
		defer ws.Close()
		pk.SetNeedWakeup(false, true)
		wk.SetNeedWakeup(false, true)
		w, err := New(Config{Protected: ps, Wire: ws, Pool: pools[i], SAs: sas, SAStats: stats, Resolver: res,
			ProtectedIfindex: protIf, WireIfindex: wireIf, BusyPoll: true, CPU: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		qs = append(qs, q{w, pk, wk})
	}
	var runs, feeders sync.WaitGroup
	for _, x := range qs {
		runs.Go(func() {
			if err := x.w.Run(); err != nil {
				t.Error(err)
			}
		})
	}
	const per = 300
	seqs := make([][]uint32, len(qs))
	for i, x := range qs {
		feeders.Go(func() {
			sent, done := 0, 0
			for deadline := time.Now().Add(10 * time.Second); done+int(x.w.stats.TXRingFull.Load()) < per && time.Now().Before(deadline); {
				if sent < per && x.prot.Receive(outMeta(), outFrame(ipv4UDP(200, innerSrc, innerDst, 1, 2, true, 64))) {
					sent++
				}
				done += x.wire.Transmit(0, func(d xsk.Desc, pkt []byte) {
					seqs[i] = append(seqs[i], uint32(pkt[14+24])<<24|uint32(pkt[14+25])<<16|uint32(pkt[14+26])<<8|uint32(pkt[14+27]))
				})
			}
		})
	}
	// The control plane churns another index meanwhile.
	churn := newSA(t, 0x3000, outerSrc, outerDst, 0)
	for range 200 {
		if err := sas.Install(5, &Entry{SA: churn, Dir: ipsec.DirOut}); err != nil {
			t.Fatal(err)
		}
		sas.Remove(5)
	}
	feeders.Wait()
	for _, x := range qs {
		x.w.Stop()
	}
	runs.Wait()

	seen := map[uint32]bool{}
	total := 0
	for i, x := range qs {
		x.wire.Transmit(0, nil)
		x.w.reap(sideWire)
		if a := x.w.Frames(); !a.Balanced() {
			t.Fatalf("worker %d: frames %+v", i, a)
		}
		for _, s := range seqs[i] {
			if seen[s] {
				t.Fatalf("sequence number %d used twice", s)
			}
			seen[s] = true
		}
		total += int(x.w.stats.Sealed.Load())
	}
	if got := stats.SA(outIdx).Packets.Load(); got != uint64(total) || total < per {
		t.Fatalf("shared SA counted %d packets, workers sealed %d", got, total)
	}
}
