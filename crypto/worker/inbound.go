//go:build linux

package worker

import (
	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/internal/packet"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// Inbound: the wire side to the protected side.

// handleIn opens one frame received on the wire side: it decrypts the ESP
// packet in place with the SA the card found, checks the inner packet
// against the SA's post-decryption check list (first match over the inbound SPD), and queues it for the
// protected side with the Ethernet header of the inner destination's next
// hop.
func (w *Worker) handleIn(d xsk.Desc) {
	frame, off := w.frameOf(d)
	n := int(d.Len)
	var m bpf.CardXdpsecMeta
	l3, ok := w.readMeta(frame, off, n, ipsec.DirIn, &m)
	if !ok {
		w.free(d.Addr)
		return
	}
	e := w.lookup(m.SaIndex, ipsec.DirIn)
	sa := m.SaIndex
	if e == nil {
		w.free(d.Addr)
		return
	}
	start, end, err := e.SA.Decap(frame, l3, off+n-l3)
	if err != nil {
		w.cryptoErr(sa, err)
		w.free(d.Addr)
		return
	}
	inner := frame[start:end]
	var t ipsec.Tuple
	if !packet.Tuple(inner, &t) {
		w.badHeader(sa)
		w.free(d.Addr)
		return
	}
	if !e.Check.Accepts(&t) {
		w.saStats.AddError(sa, uint8(ReasonPolicyMismatch), 1)
		w.stats.PolicyMismatch.Add(1)
		w.free(d.Addr)
		return
	}
	route := !e.Transport
	if route && packet.TTLExpired(inner) {
		w.stats.TTLExpired.Add(1)
		w.free(d.Addr)
		return
	}
	ifindex, src, dst, ok := w.resolver.NextHop(t.Dst)
	if !ok {
		w.stats.NoNextHopIn.Add(1)
		w.saStats.AddError(sa, ReasonNoNeigh, 1)
		w.free(d.Addr)
		return
	}
	if w.protIfindex != 0 && ifindex != w.protIfindex {
		w.stats.WrongEgress.Add(1)
		w.free(d.Addr)
		return
	}
	if route {
		packet.DecTTL(inner)
	}
	w.queue(sideProtected, sa, w.putEth(d, frame, start, end, &dst, &src, inner[0]>>4 == 6))
	w.stats.Opened.Add(1)
	w.saStats.Add(sa, 1, uint64(end-start))
}
