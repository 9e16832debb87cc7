package daemon

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

var replayFloors = flag.String("replayfloor.windows", "0,2048,4096,8192,auto",
	"dataplane.min_replay_window values BenchmarkReplayFloorTCP compares")

// BenchmarkReplayFloorTCP measures what dataplane.min_replay_window does with two queues per veth:
// for each value, a gateway pair with one tunnel carries 16 TCP streams three times for 2 s, and
// the benchmark reports gw2's replay drops and the throughput (BENCHMARKS.md section 9, "Replay
// drops with two workers"). As root:
//
//	go test -run xxx -bench ReplayFloorTCP -benchtime 1x ./control/daemon
func BenchmarkReplayFloorTCP(b *testing.B) {
	needRoot(b)
	for _, w := range strings.Split(*replayFloors, ",") {
		b.Run("floor="+w, func(b *testing.B) {
			for range b.N {
				drops, gbps, window := replayFloorTrial(b, w)
				b.ReportMetric(float64(drops), "replay-drops")
				b.ReportMetric(gbps, "Gbit/s")
				b.ReportMetric(float64(window), "window")
			}
		})
	}
}

// replayFloorTrial runs one pair with gw2's dataplane.min_replay_window set to w and returns gw2's
// replay drops, the median throughput of three iperf3 runs and the floor gw2 applied.
func replayFloorTrial(b *testing.B, w string) (drops uint64, gbps float64, window uint32) {
	tb, _, d2 := startPairWith(b, testbed.DefaultTunnels[:1], testbed.Options{Tag: "dmf", Queues: 2},
		func(y1, y2 string) (string, string) {
			return y1, strings.Replace(y2, "dataplane: {", "dataplane: {min_replay_window: "+w+", ", 1)
		})
	if !strings.Contains(w, "auto") && d2.Info.MinReplayWindow == 0 && w != "0" {
		b.Fatalf("gw2 did not take min_replay_window %s", w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := tb.WarmUp(ctx, testbed.H1, testbed.H2Addr4); err != nil {
		b.Fatal(err)
	}
	var rates []float64
	for range 3 {
		res, err := tb.Iperf3(ctx, testbed.IperfOptions{Dst: testbed.H2Addr4, Streams: 16, Duration: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		rates = append(rates, res.BitsPerSecond/1e9)
	}
	for _, sa := range d2.SAs() {
		if sa.Dir == "in" {
			drops += sa.ReplayErrors
		}
	}
	return drops, median3(rates), d2.Info.MinReplayWindow
}

func median3(v []float64) float64 {
	a, b, c := v[0], v[1], v[2]
	return max(min(a, b), min(max(a, b), c))
}
