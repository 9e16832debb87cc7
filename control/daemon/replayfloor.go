package daemon

import (
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/replay"
	"github.com/xdpsec/xdpsec/ipsec"
)

// ReplayWindowFloor is the anti-replay window an inbound SA needs so that the reordering the data
// plane brings itself does not look like replays, with queues workers whose sockets have rings of
// ring descriptors.
//
// With more than one worker, one SA's packets are opened by several workers: on a NIC because
// the peer's workers transmit it on several queues, on a veth because the receiving queue is the
// sending one. A packet can wait behind a full TX ring at the sender and a full RX ring at the
// receiver (beyond that the kernel drops it), and while it waits every other queue can carry as
// many, so the workers pass the window up to queues × 2 × ring numbers apart. The floor is that,
// rounded up to what the window's bitmap holds for the same memory (replay.CapacityFor), at most
// esp.MaxReplayWindow: with the default 16,384 frames and two queues, rings of 2,048 descriptors
// and a window of 16,320 packets, 2 KiB per inbound SA.
// One worker keeps each SA in order: no floor.
func ReplayWindowFloor(queues, ring int) uint32 {
	if queues <= 1 || ring <= 0 {
		return 0
	}
	need := min(uint64(queues)*2*uint64(ring), esp.MaxReplayWindow)
	return min(replay.CapacityFor(uint32(need)), esp.MaxReplayWindow)
}

// socketRing is the size of every ring of a worker's two sockets: the largest power of two (at most
// 4,096) such that the fill and TX rings of both sockets fit the worker's share of the frames.
func socketRing(poolFrames int) uint32 {
	ring := uint32(1)
	for ring*2*4 <= uint32(poolFrames) && ring < 4096 {
		ring *= 2
	}
	return ring
}

// replayWindow is the window the data plane gives an SA that asks for w in direction dir: inbound
// SAs at least the floor, unless w is 0 (replay checking off stays off); outbound SAs do not check.
func replayWindow(dir ipsec.Dir, w, floor uint32) uint32 {
	if dir != ipsec.DirIn || w == 0 {
		return w
	}
	return max(w, floor)
}
