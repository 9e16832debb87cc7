//go:build linux

package xsfwd

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/loader/xsk"
)

// queue forwards between the sockets of one receive queue on the two interfaces.
type queue struct {
	umem     *xsk.UMEM
	socks    [2]*xsk.Socket
	pool     *xsk.FramePool
	eth      [2][12]byte // per side transmitted on: destination and source MAC
	rx       []xsk.Desc
	tx       [2][]xsk.Desc
	addrs    []uint64
	txOut    [2]int
	stop     *xsk.Stopper
	poller   *xsk.Poller
	stopping atomic.Bool
	fwd      [2]atomic.Uint64
	bytes    [2]atomic.Uint64 // IP bytes
	drops    atomic.Uint64
	touched  byte // what receive's first loop read, kept so that the loads stay
}

func newQueue(u *xsk.UMEM, socks [2]*xsk.Socket, pool *xsk.FramePool, sides [2]Side, batch int) (*queue, error) {
	stop, err := xsk.NewStopper()
	if err != nil {
		return nil, err
	}
	q := &queue{umem: u, socks: socks, pool: pool, rx: make([]xsk.Desc, batch), addrs: make([]uint64, max(batch, 256)),
		stop: stop, poller: xsk.NewPoller(stop, socks[0], socks[1])}
	for i, s := range sides {
		copy(q.eth[i][0:6], net.HardwareAddr(s.Dst))
		copy(q.eth[i][6:12], net.HardwareAddr(s.Src))
		q.tx[i] = make([]xsk.Desc, 0, batch)
	}
	return q, nil
}

// run loops as crypto/worker's Run does: reap, refill, one RX batch per side, transmit, and sleep in
// poll(2) when both RX rings are empty.
func (q *queue) run() error {
	for !q.stopping.Load() {
		for i := range q.socks {
			q.reap(i)
			if err := q.refill(i); err != nil {
				return err
			}
		}
		n := q.receive(0) + q.receive(1)
		for i := range q.socks {
			if err := q.transmit(i); err != nil {
				return err
			}
		}
		if n > 0 {
			continue
		}
		timeout := -1
		if q.txOut[0] > 0 || q.txOut[1] > 0 {
			timeout = 1
		}
		if _, err := q.poller.Wait(timeout); err != nil {
			return err
		}
	}
	q.drain()
	return nil
}

func (q *queue) reap(side int) {
	for q.txOut[side] > 0 {
		n := q.socks[side].Completion.Consume(q.addrs)
		if n == 0 {
			return
		}
		q.txOut[side] -= n
		for _, a := range q.addrs[:n] {
			q.pool.Put(a)
		}
	}
}

func (q *queue) refill(side int) error {
	s := q.socks[side]
	if free := s.Fill.Free(); free > 0 && q.pool.Len() > 0 {
		n := q.pool.GetN(q.addrs[:min(free, len(q.addrs))])
		p := s.Fill.Produce(q.addrs[:n])
		for _, a := range q.addrs[p:n] {
			q.pool.Put(a)
		}
	}
	_, err := s.WakeRX()
	return err
}

// receive forwards one RX batch of side to the other side's TX batch.
func (q *queue) receive(side int) int {
	n := q.socks[side].RX.Consume(q.rx)
	out := 1 - side
	var bytes uint64
	// As xdpsec's workers do (crypto/worker, touch): load every frame's headers before forwarding
	// any, so that the cache misses on what the kernel just wrote overlap; the pipe is measured
	// with the same trick as the gateway it is compared with.
	var t byte
	for _, d := range q.rx[:n] {
		if p := q.umem.Bytes(d.Addr, d.Len); len(p) >= 14+20 {
			t ^= p[14+8]
		}
	}
	q.touched ^= t
	for _, d := range q.rx[:n] {
		p := q.umem.Bytes(d.Addr, d.Len)
		if len(p) < 14+20 || len(q.tx[out]) == cap(q.tx[out]) {
			q.drops.Add(1)
			q.pool.Put(d.Addr)
			continue
		}
		copy(p[0:12], q.eth[out][:])
		decTTL(p[14:])
		q.tx[out] = append(q.tx[out], d)
		bytes += uint64(d.Len) - 14
	}
	q.fwd[side].Add(uint64(n))
	q.bytes[side].Add(bytes)
	return n
}

func (q *queue) transmit(side int) error {
	s := q.socks[side]
	p := 0
	if len(q.tx[side]) > 0 {
		p = s.TX.Produce(q.tx[side])
		for _, d := range q.tx[side][p:] {
			q.drops.Add(1)
			q.pool.Put(d.Addr)
		}
		q.txOut[side] += p
		q.tx[side] = q.tx[side][:0]
	}
	if p > 0 || (q.txOut[side] > 0 && s.TX.Free() < s.TX.Size()) {
		_, err := s.Kick()
		return err
	}
	return nil
}

// drain gives the kernel up to a second to complete what was transmitted.
func (q *queue) drain() {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		q.reap(0)
		q.reap(1)
		if q.txOut[0] == 0 && q.txOut[1] == 0 {
			return
		}
	}
}

// decTTL decrements an IPv4 TTL (RFC 1624 checksum update) or an IPv6 hop limit, as a router does.
func decTTL(ip []byte) {
	switch ip[0] >> 4 {
	case 4:
		if ip[8] > 1 {
			ip[8]--
			sum := uint32(binary.BigEndian.Uint16(ip[10:])) + 0x100
			binary.BigEndian.PutUint16(ip[10:], uint16(sum+sum>>16))
		}
	case 6:
		if len(ip) >= 40 && ip[7] > 1 {
			ip[7]--
		}
	}
}
