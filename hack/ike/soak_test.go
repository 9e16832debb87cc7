//go:build ike

package ike

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/hack/ike/ikebed"
	"github.com/xdpsec/xdpsec/internal/testbed"
)

// soakDuration is how long TestSoak runs: XDPSEC_SOAK (a Go duration; `make soak` sets 10m), else
// 2 minutes (CI).
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("XDPSEC_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute {
			t.Fatalf("XDPSEC_SOAK=%q: want a duration of at least 1m", s)
		}
		return d
	}
	return 2 * time.Minute
}

type memSample struct {
	at        time.Duration
	heap, rss uint64
}

func sampleMem(t0 time.Time) memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{at: time.Since(t0), heap: ms.HeapInuse}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				s.rss = kb << 10
			}
		}
	}
	return s
}

// slope is the least-squares growth of ys over xs, per hour.
func slope(s []memSample, y func(memSample) float64) float64 {
	var sx, sy, sxx, sxy float64
	for _, m := range s {
		x := m.at.Hours()
		sx, sy, sxx, sxy = sx+x, sy+y(m), sxx+x*x, sxy+x*y(m)
	}
	n := float64(len(s))
	if d := n*sxx - sx*sx; d != 0 {
		return (n*sxy - sx*sy) / d
	}
	return 0
}

// TestSoak: traffic through a tunnel whose CHILD_SA charon rekeys every 30 s, for XDPSEC_SOAK (2 min
// by default, `make soak`: 10 min). The daemons' memory (both run in this process: heap after GC, and
// RSS) stays flat, no echo of a 10/s ping is lost, every TCP transfer arrives intact, no sequence
// number or IV repeats on the wire for any SPI, and when the daemons stop every AF_XDP frame is
// accounted for.
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+10*time.Minute)
	defer cancel()
	child := ikebed.LAN("lan")
	child.RekeyTime, child.LifeTime = 30*time.Second, 10*time.Minute
	g := startTwoGateways(ctx, t, child, func(c1, c2 *ikebed.Conn) {
		c2.Children[0].RekeyTime, c2.Children[0].LifeTime = time.Hour, 2*time.Hour // gw1 rekeys
	})
	if out, err := g.c1.Swanctl(ctx, "--initiate", "--child", "lan"); err != nil {
		t.Fatalf("initiate: %v\n%s", err, out)
	}
	waitFor(t, "a ping through the tunnel", 30*time.Second, func() (bool, string) {
		lost, out, _ := pingLoss(ctx, g.tb, testbed.H2Addr4, 1, 200*time.Millisecond)
		return lost == 0, out
	})
	capFile := filepath.Join(g.dir, "soak.pcap")
	c := startCaptureSnap(ctx, t, g.tb, capFile, 96) // headers: ESP's SPI, sequence number, IV

	t0 := time.Now()
	var wg sync.WaitGroup
	var pingLost int
	var pingOut string
	var pingErr error
	wg.Go(func() {
		pingLost, pingOut, pingErr = pingLoss(ctx, g.tb, testbed.H2Addr4, int(dur/(100*time.Millisecond)), 100*time.Millisecond)
	})
	var mu sync.Mutex
	var transfers, bad int
	var mem []memSample
	outSPIs := map[uint32]bool{}
	for time.Since(t0) < dur {
		sent, got, err := transfer(ctx, g.tb, testbed.H2Addr4, 4<<20)
		mu.Lock()
		transfers++
		if err != nil || sent != got {
			bad++
			t.Logf("transfer %d: %v", transfers, err)
		}
		mu.Unlock()
		for _, sa := range ikeSAs(t, g.gw1) {
			if sa.Dir != nil && sa.Dir.String() == "out" {
				outSPIs[sa.SPI] = true
			}
		}
		mem = append(mem, sampleMem(t0))
		time.Sleep(3 * time.Second)
	}
	wg.Wait()
	if missed := c.Stop(); missed > 0 {
		t.Logf("tcpdump missed %d packets", missed)
	}
	if pingErr != nil {
		t.Fatal(pingErr)
	}
	rekeys := len(outSPIs) - 1

	// Memory: the samples after the first quarter (warm-up), by linear fit and by their spread.
	warm := mem[len(mem)/4:]
	first, last := warm[0], warm[len(warm)-1]
	heapSlope := slope(warm, func(m memSample) float64 { return float64(m.heap) })
	rssSlope := slope(warm, func(m memSample) float64 { return float64(m.rss) })
	maxHeap := slices.MaxFunc(warm, func(a, b memSample) int { return int(a.heap>>10) - int(b.heap>>10) }).heap
	t.Logf("soak %s: %d rekeys, %d TCP transfers of 4 MiB (%d bad), %d/%d echoes lost; heap in use %.1f → %.1f MiB (max %.1f, fit %+.1f MiB/h), RSS %.1f → %.1f MiB (fit %+.1f MiB/h)",
		dur, rekeys, transfers, bad, pingLost, int(dur/(100*time.Millisecond)),
		mib(first.heap), mib(last.heap), mib(maxHeap), heapSlope/(1<<20), mib(first.rss), mib(last.rss), rssSlope/(1<<20))
	if want := int(dur/(30*time.Second)) - 1; rekeys < want {
		t.Errorf("%d rekeys in %s, want at least %d", rekeys, dur, want)
	}
	if bad > 0 {
		t.Errorf("%d of %d transfers failed", bad, transfers)
	}
	if pingLost > 0 {
		t.Errorf("%d echoes lost across %d rekeys:\n%s", pingLost, rekeys, pingOut)
	}
	// Flat: the heap grows by no more than 8 MiB over the run by its fit, and its last sample is
	// within 25 % (+4 MiB) of the warm-up's largest.
	runHours := (last.at - first.at).Hours()
	if heapSlope*runHours > 8<<20 || float64(last.heap) > 1.25*float64(slices.MaxFunc(warm[:max(1, len(warm)/3)],
		func(a, b memSample) int { return int(a.heap>>10) - int(b.heap>>10) }).heap)+4<<20 {
		t.Errorf("the daemons' heap grew: %s", memText(warm))
	}
	if rssSlope*runHours > 32<<20 {
		t.Errorf("the process's RSS grew: %s", memText(warm))
	}

	// The wire: only ESP and IKE, and per SPI no sequence number or IV twice.
	w := readWire(t, capFile)
	if len(w.plain) > 0 || w.marker > 0 {
		t.Errorf("plaintext on the wire: %v, %d markers", w.plain[:min(len(w.plain), 10)], w.marker)
	}
	if len(w.repeats) > 0 {
		t.Errorf("repeats on the wire: %v", w.repeats[:min(len(w.repeats), 10)])
	}
	if len(w.perSPI) < 2*(rekeys+1) {
		t.Errorf("%d SPIs on the wire, want the %d of %d CHILD_SAs", len(w.perSPI), 2*(rekeys+1), rekeys+1)
	}
	t.Logf("wire: %d ESP packets over %d SPIs, %d IKE packets, no repeats", w.esp, len(w.perSPI), w.ike)

	// Frames: stop the daemons (charons first, so nothing is re-added), then every frame is back.
	for _, ch := range []*ikebed.Charon{g.c1, g.c2} {
		_ = ch.Stop()
	}
	for i, gw := range []*ikebed.Gateway{g.gw1, g.gw2} {
		if err := gw.Close(); err != nil {
			t.Fatal(err)
		}
		acc, errs := gw.FrameAccounts()
		for j, a := range acc {
			if !a.Balanced() || errs != 0 {
				t.Errorf("gw%d worker %d: frames %+v, %d frame errors", i+1, j, a, errs)
			}
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func memText(s []memSample) string {
	var b strings.Builder
	for _, m := range s {
		fmt.Fprintf(&b, " %s: heap %.1f rss %.1f;", m.at.Round(time.Second), mib(m.heap), mib(m.rss))
	}
	return b.String()
}
