//go:build linux

package worker

import (
	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// Outbound: the protected side to the wire. Multi-buffer packets and GSO packets continue in
// segment.go.

// handleOut protects one frame received on the protected side: it reads
// the card's metadata, encrypts the IP packet in place with the SA it names,
// writes the outer Ethernet header from the card's FIB result, and queues the
// frame for the wire. Frames it does not queue go back to the pool.
func (w *Worker) handleOut(d xsk.Desc) {
	frame, off := w.frameOf(d)
	n := int(d.Len)
	var m bpf.CardXdpsecMeta
	l3, ok := w.readMeta(frame, off, n, ipsec.DirOut, &m)
	if !ok {
		w.free(d.Addr)
		return
	}
	sa := m.SaIndex
	e, smac, dmac, ok := w.outSA(&m)
	if !ok {
		w.free(d.Addr)
		return
	}
	pkt := frame[l3 : off+n]
	ipLen, ok := packet.IPLength(pkt)
	if !ok {
		w.badHeader(sa)
		w.free(d.Addr)
		return
	}
	pkt = pkt[:ipLen]
	if ipLen > w.protMTU && ipLen > e.innerMTU && w.gsoOut(d, l3, pkt, e, sa, &smac, &dmac) {
		return
	}
	// Before anything that could copy the payload (fragmenting) or seal it.
	if w.completeCsum && packet.CompleteChecksum(pkt) {
		w.stats.ChecksumsCompleted.Add(1)
	}
	if w.cfg.MSSClamp != 0 && packet.ClampMSS(pkt, w.mssFor(e, pkt[0]>>4 == 6)) {
		w.stats.MSSClamped.Add(1)
	}
	// As a router would (Linux ip_forward): TTL first, then the MTU, then
	// the decrement.
	route := !e.Transport
	if route && packet.TTLExpired(pkt) {
		w.stats.TTLExpired.Add(1)
		w.free(d.Addr)
		return
	}
	if ipLen > e.innerMTU {
		w.tooBig(d, frame, off, l3, ipLen, e, sa, &smac, &dmac)
		return
	}
	if route {
		packet.DecTTL(pkt)
	}
	start, end, err := e.SA.Encap(frame, l3, ipLen)
	if err != nil {
		w.cryptoErr(sa, err)
		w.free(d.Addr)
		return
	}
	w.queue(sideWire, sa, w.putEth(d, frame, start, end, &dmac, &smac, frame[start]>>4 == 6))
	w.stats.Sealed.Add(1)
	w.saStats.Add(sa, 1, uint64(ipLen))
}

// tooBig handles an inner packet whose encapsulation would exceed the wire
// MTU: IPv4 without DF is fragmented before encryption; anything else gets
// an ICMP frag-needed / Packet Too Big back out of the protected side.
func (w *Worker) tooBig(d xsk.Desc, frame []byte, off, l3, ipLen int, e *Entry, sa uint32, smac, dmac *[6]byte) {
	w.stats.TooBig.Add(1)
	pkt := frame[l3 : l3+ipLen]
	if w.pmtu == nil {
		w.saStats.AddError(sa, ReasonPMTU, 1)
		w.free(d.Addr)
		return
	}
	if pkt[0]>>4 == 4 && be.Uint16(pkt[6:])&0x4000 == 0 {
		if !e.Transport {
			packet.DecTTL(pkt)
		}
		w.fragment(pkt, e, sa, smac, dmac)
		w.free(d.Addr)
		return
	}
	w.saStats.AddError(sa, ReasonPMTU, 1)
	w.sendTooBig(d, frame, off, l3, ipLen, e, sa)
}

// sendTooBig turns the packet at frame[l3:l3+n] (the frame d received at off) into the PMTU hook's
// ICMP error and queues it back out of the protected side to its sender, the frame's Ethernet
// source; the frame goes back to the pool if the hook sends nothing.
func (w *Worker) sendTooBig(d xsk.Desc, frame []byte, off, l3, n int, e *Entry, sa uint32) {
	var sender, us [6]byte
	copy(sender[:], frame[off+6:off+12])
	copy(us[:], frame[off:off+6])
	start, end, ok := w.pmtu.PacketTooBig(frame, l3, n, e.innerMTU)
	if !ok || start < ethLen || end > len(frame) || start >= end {
		w.free(d.Addr)
		return
	}
	w.queue(sideProtected, sa, w.putEth(d, frame, start, end, &sender, &us, frame[start]>>4 == 6))
	w.stats.PTBSent.Add(1)
}

// fragment splits an IPv4 packet into fragments that fit the tunnel, each
// in a frame of its own, and encrypts and queues each for the wire.
func (w *Worker) fragment(pkt []byte, e *Entry, sa uint32, smac, dmac *[6]byte) {
	off := int(w.umem.RXOffset()) + ethLen
	for next := 0; ; {
		addr, ok := w.txFrame(sideWire, sa)
		if !ok {
			return
		}
		frame := w.umem.Frame(addr)
		n, nxt := w.pmtu.FragmentIPv4(frame[off:len(frame)-esp.Tailroom], pkt, e.innerMTU, next)
		if n <= 0 {
			w.free(addr)
			return
		}
		start, end, err := e.SA.Encap(frame, off, n)
		if err != nil {
			w.cryptoErr(sa, err)
			w.free(addr)
			return
		}
		w.queue(sideWire, sa, w.putEth(xsk.Desc{Addr: addr}, frame, start, end, dmac, smac, frame[start]>>4 == 6))
		w.stats.Fragments.Add(1)
		w.stats.Sealed.Add(1)
		w.saStats.Add(sa, 1, uint64(n))
		if nxt == 0 {
			return
		}
		next = nxt
	}
}

// outSA does the outbound checks common to single frames and chains: the
// SA the metadata names, and the wire next hop. On failure it has counted
// and the caller frees the frames.
func (w *Worker) outSA(m *bpf.CardXdpsecMeta) (e *Entry, smac, dmac [6]byte, ok bool) {
	sa := m.SaIndex
	if e = w.lookup(sa, ipsec.DirOut); e == nil {
		return nil, smac, dmac, false
	}
	dmac, smac = m.Dmac, m.Smac
	egress := int(m.EgressIfindex)
	if m.Flags&bpf.MetaNoNeigh != 0 {
		// The card's FIB lookup found no neighbour entry. Asking the resolver
		// also starts resolution, so the flow recovers without the kernel.
		var nhOK bool
		if e.OuterDst.IsValid() && w.resolver != nil {
			egress, smac, dmac, nhOK = w.resolver.NextHop(e.OuterDst)
		}
		if !nhOK {
			w.stats.NoNeighOut.Add(1)
			w.saStats.AddError(sa, ReasonNoNeigh, 1)
			return nil, smac, dmac, false
		}
	}
	if w.wireIfindex != 0 && egress != w.wireIfindex {
		w.stats.WrongEgress.Add(1)
		return nil, smac, dmac, false
	}
	return e, smac, dmac, true
}

// MSSClampAuto in Config.MSSClamp clamps to the SA's inner MTU minus the
// IP and TCP headers without options (40 bytes for IPv4, 60 for IPv6).
const MSSClampAuto = -1

// mssFor is the clamp for an SA: the configured value, or (auto) the inner
// MTU minus the headers of the packet's family.
func (w *Worker) mssFor(e *Entry, ipv6 bool) int {
	if w.cfg.MSSClamp != MSSClampAuto {
		return w.cfg.MSSClamp
	}
	if ipv6 {
		return e.innerMTU - 60
	}
	return e.innerMTU - 40
}
