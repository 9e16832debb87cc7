package daemon

import (
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// TestReplayWindowFloor: one worker needs no floor; more need queues × 2 × ring, rounded up to what
// the window's bitmap holds anyway, at most esp.MaxReplayWindow.
func TestReplayWindowFloor(t *testing.T) {
	for _, c := range []struct {
		queues, ring int
		want         uint32
	}{
		{1, 2048, 0}, {0, 2048, 0}, {2, 0, 0},
		{2, 1024, 8128},  // 4,096 needs 65 blocks: 128 blocks hold 127 × 64
		{2, 2048, 16320}, // 8,192: 129 → 256 blocks
		{4, 256, 4032},   // 2,048: 33 → 64 blocks
		{8, 4096, esp.MaxReplayWindow},
	} {
		if got := ReplayWindowFloor(c.queues, c.ring); got != c.want {
			t.Errorf("ReplayWindowFloor(%d, %d) = %d, want %d", c.queues, c.ring, got, c.want)
		}
	}
}

// TestSocketRing: the fill and TX rings of a worker's two sockets fit its frames.
func TestSocketRing(t *testing.T) {
	for frames, want := range map[int]uint32{4: 1, 8: 2, 16: 4, 8192: 2048, 16384: 4096, 65536: 4096, 1 << 20: 4096} {
		if got := socketRing(frames); got != want {
			t.Errorf("socketRing(%d) = %d, want %d", frames, got, want)
		}
	}
}

// TestReplayWindowOnlyWidensInbound: an inbound SA's window rises to the floor, a larger one stays,
// 0 (replay checking off) stays off, and outbound SAs keep what they asked for.
func TestReplayWindowOnlyWidensInbound(t *testing.T) {
	for _, c := range []struct {
		dir      ipsec.Dir
		w, floor uint32
		want     uint32
	}{
		{ipsec.DirIn, 128, 8128, 8128}, {ipsec.DirIn, 10000, 8128, 10000}, {ipsec.DirIn, 0, 8128, 0},
		{ipsec.DirIn, 128, 0, 128}, {ipsec.DirOut, 128, 8128, 128},
	} {
		if got := replayWindow(c.dir, c.w, c.floor); got != c.want {
			t.Errorf("replayWindow(%s, %d, %d) = %d, want %d", c.dir, c.w, c.floor, got, c.want)
		}
	}
}
