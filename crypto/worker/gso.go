//go:build linux

package worker

import (
	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// Multi-buffer packets (descriptor chains) and software segmentation.
//
// With sockets bound multi-buffer (xsk.SocketConfig.SG) behind a card loaded
// frags-aware, a packet larger than a frame's room arrives as a chain of
// descriptors (xsk.PktContd). On the protected side that is, in practice, a
// host's GSO super-packet (up to 64 KiB, TCP, its checksum left
// CHECKSUM_PARTIAL) — the host kept TSO on because the card did not make
// its veth peer drop it. The worker cuts it into segments that fit the SA
// (software TSO, as the kernel's tcp_gso_segment does), each in a frame of
// its own from the pool, sealed in place and queued for the wire.
//
// The segment size. AF_XDP does not carry the skb's gso_size, so the
// worker chooses it: the SA's inner MTU minus the IP and TCP headers of the
// super-packet. That is right because TCP's own limit is the path MTU the
// host learnt, and the path of a tunnelled flow goes through this SA: the
// host's MSS is at most the inner MTU minus its headers once it has heard
// the worker's ICMP frag-needed/Packet Too Big (sent for any too-big
// single-frame packet, which is how a flow starts), and segments of the
// inner-MTU size are what the host's own GSO would then cut. A segment
// never exceeds what the tunnel carries, so no ICMP is needed for super-
// packets; if the host's MSS is smaller (a peer's MSS option), the worker's
// segments are larger than the host's would be but still fit the path —
// TCP accepts any segment within the window, as with GRO/LRO-merged
// packets that a router re-segments.
//
// Small GSO packets (two or three segments) fit one frame and arrive as
// ordinary descriptors: a TCP packet longer than the protected link's MTU
// (Config.ProtectedMTU) cannot be anything else, so it is segmented the
// same way (gsoOut) — answering it with an ICMP error would be wrong, since
// the host's MSS is already right and it would resend the same GSO packet
// forever. A packet between the inner MTU and the link MTU is a real
// too-big packet and gets the ICMP error as before.
//
// A limit: the segment size ignores what the host learnt beyond the
// tunnel. If the far end advertised a smaller MSS, or a link behind the
// peer gateway has a smaller MTU (the host hears an ICMP error and lowers
// its gso_size), the worker still cuts at the inner MTU, and those
// segments are too big there — for super-packets only; single packets pass
// as the host sized them. A fixed dataplane.mss_clamp (Config.MSSClamp > 0)
// caps the segments too, which is the remedy for such paths; learning
// per-destination limits from inbound ICMP errors is left for later.
//
// Other multi-buffer packets: a UDP one may be a UDP GSO super-packet whose
// datagram boundaries (gso_size) the worker cannot know, and cutting at
// other places would merge or split the application's datagrams, so it is
// dropped and counted (ChainDrops; hosts should keep tx-udp-segmentation
// off on the veth facing the card). Anything else over the inner MTU takes
// the PMTU path of single-frame packets: IPv4 without DF is fragmented
// (from the chain, each fragment in its own frame), IPv4 with DF and IPv6
// get the ICMP error, quoting what the first frame holds. Inbound chains
// (ESP larger than a frame: jumbo wire MTU) are dropped and counted; the
// wire MTU is 1500 in every set-up the daemon supports.

// maxChain bounds the descriptors of one packet: a 64 KiB IP packet over
// 2 KiB frames (1,792 bytes of room) takes 37.
const maxChain = 64

// link adds d to the side's chain and reports whether the chain is a
// complete packet now. An over-long chain is dropped whole, counted once.
func (w *Worker) link(side int, d xsk.Desc) bool {
	c := w.chain[side]
	if len(c) == cap(c) || w.chainOver[side] {
		w.chainOver[side] = true
		w.free(d.Addr)
	} else {
		w.chain[side] = append(c, d)
	}
	if d.Options&xsk.PktContd != 0 {
		return false
	}
	if w.chainOver[side] {
		w.chainOver[side] = false
		w.stats.Chains.Add(1)
		w.stats.ChainDrops.Add(1)
		w.freeChain(w.chain[side])
		w.chain[side] = w.chain[side][:0]
		return false
	}
	return true
}

func (w *Worker) freeChain(c []xsk.Desc) {
	for _, d := range c {
		w.free(d.Addr)
	}
}

// handleChain processes the side's complete chain and empties it.
func (w *Worker) handleChain(side int) {
	c := w.chain[side]
	w.chain[side] = c[:0]
	if len(c) == 1 {
		// A chain of one is an ordinary packet.
		if side == sideProtected {
			w.handleOut(c[0])
		} else {
			w.handleIn(c[0])
		}
		return
	}
	w.stats.Chains.Add(1)
	if side != sideProtected {
		w.stats.ChainDrops.Add(1)
		w.freeChain(c)
		return
	}
	w.handleOutChain(c)
}

// chainReader copies a chain's bytes out in order.
type chainReader struct {
	w     *Worker
	descs []xsk.Desc
	i     int // current descriptor
	off   int // bytes of it already read
}

// read fills dst from the chain and returns how many bytes it copied.
func (r *chainReader) read(dst []byte) int {
	n := 0
	for n < len(dst) && r.i < len(r.descs) {
		d := r.descs[r.i]
		src := r.w.umem.Bytes(d.Addr, d.Len)[r.off:]
		k := copy(dst[n:], src)
		n += k
		r.off += k
		if r.off == int(d.Len) {
			r.i++
			r.off = 0
		}
	}
	return n
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

// handleOutChain protects a multi-buffer packet from the protected side:
// TCP is segmented, other protocols go the PMTU way (see above). Every
// frame of the chain goes back to the pool (or, for an ICMP error, out).
func (w *Worker) handleOutChain(c []xsk.Desc) {
	d := c[0]
	frame, off := w.frameOf(d)
	n := int(d.Len)
	var m bpf.CardXdpsecMeta
	l3, ok := w.readMeta(frame, off, n, ipsec.DirOut, &m)
	if !ok {
		w.freeChain(c)
		return
	}
	sa := m.SaIndex
	e, smac, dmac, ok := w.outSA(&m)
	if !ok {
		w.freeChain(c)
		return
	}
	total := -(l3 - off)
	for _, x := range c {
		total += int(x.Len)
	}
	head := frame[l3 : off+n] // the part of the IP packet in the first frame
	var ipLen, hl, l4 int     // IP length, IP+L4 header length, L4 offset
	var proto uint8
	var frag bool
	switch {
	case len(head) >= 20 && head[0]>>4 == 4:
		ihl := int(head[0]&0xf) * 4
		ipLen, l4, proto = int(be.Uint16(head[2:])), ihl, head[9]
		frag = be.Uint16(head[6:])&0x3fff != 0
		ok = ihl >= 20 && ipLen >= ihl && ihl <= len(head)
	case len(head) >= 40 && head[0]>>4 == 6:
		// Extension headers are not walked: such packets take the PMTU path.
		ipLen, l4, proto = int(be.Uint16(head[4:]))+40, 40, head[6]
		ok = true
	default:
		ok = false
	}
	if !ok || ipLen > total || ipLen < l4 {
		w.badHeader(sa)
		w.freeChain(c)
		return
	}
	route := !e.Transport
	if route && ttlExpired(head) {
		w.stats.TTLExpired.Add(1)
		w.freeChain(c)
		return
	}
	switch {
	case proto == 6 && !frag:
		if hl, ok = tcpEnd(head, l4); !ok || ipLen < hl {
			w.badHeader(sa)
			w.freeChain(c)
			return
		}
		if route {
			decTTL(head)
		}
		w.split(c, l3, head[:hl], l4, ipLen, true, e, sa, &smac, &dmac)
		w.freeChain(c)
	case proto == 17:
		// Possibly UDP GSO: its datagram boundaries are unknown here.
		w.stats.ChainDrops.Add(1)
		w.saStats.AddError(sa, ReasonPMTU, 1)
		w.freeChain(c)
	case ipLen <= e.innerMTU:
		// Fits the tunnel after all (a jumbo frame's small packet in
		// pieces cannot happen: the first frame holds more than an MTU):
		// count and drop rather than linearise.
		w.stats.ChainDrops.Add(1)
		w.freeChain(c)
	case head[0]>>4 == 4 && be.Uint16(head[6:])&0x4000 == 0:
		w.stats.TooBig.Add(1)
		if w.pmtu == nil || l4 != 20 {
			// No hook, or IP options (which fragments copy selectively): drop.
			w.saStats.AddError(sa, ReasonPMTU, 1)
			w.freeChain(c)
			return
		}
		if route {
			decTTL(head)
		}
		w.split(c, l3, head[:20], 20, ipLen, false, e, sa, &smac, &dmac)
		w.freeChain(c)
	default:
		w.stats.TooBig.Add(1)
		w.saStats.AddError(sa, ReasonPMTU, 1)
		w.freeChain(c[1:])
		if w.pmtu == nil {
			w.free(d.Addr)
			return
		}
		// The ICMP error quotes the start of the packet: make the first
		// frame's part a consistent (truncated) packet for the responder.
		q := len(head)
		if head[0]>>4 == 4 {
			be.PutUint16(head[2:], uint16(q))
			be.PutUint16(head[10:], 0)
			be.PutUint16(head[10:], ^inetsum.Fold(inetsum.Sum(head[:l4], 0)))
		} else {
			be.PutUint16(head[4:], uint16(q-40))
		}
		var sender, us [6]byte
		copy(sender[:], frame[off+6:off+12])
		copy(us[:], frame[off:off+6])
		start, end, ok := w.pmtu.PacketTooBig(frame, l3, q, e.innerMTU)
		if !ok || start < ethLen || end > len(frame) || start >= end {
			w.free(d.Addr)
			return
		}
		w.queue(sideProtected, sa, w.putEth(d, frame, start, end, &sender, &us, frame[start]>>4 == 6))
		w.stats.PTBSent.Add(1)
	}
}

// tcpEnd returns the end of the TCP header that starts at l4 of head.
func tcpEnd(head []byte, l4 int) (int, bool) {
	if l4+20 > len(head) {
		return 0, false
	}
	thl := int(head[l4+12]>>4) * 4
	return l4 + thl, thl >= 20 && l4+thl <= len(head)
}

// gsoOut handles a single-frame packet longer than the protected link's
// MTU and the tunnel's: a host's GSO packet small enough to fit one frame
// (two or three segments). TCP is segmented; it reports false for
// anything else, which takes the ordinary PMTU path. pkt is the IP packet at frame offset l3, exactly ipLen long.
func (w *Worker) gsoOut(d xsk.Desc, l3 int, pkt []byte, e *Entry, sa uint32, smac, dmac *[6]byte) bool {
	var l4 int
	var proto uint8
	switch pkt[0] >> 4 {
	case 4:
		if be.Uint16(pkt[6:])&0x3fff != 0 {
			return false
		}
		l4, proto = int(pkt[0]&0xf)*4, pkt[9]
	case 6:
		l4, proto = 40, pkt[6]
	}
	switch proto {
	case 6:
		hl, ok := tcpEnd(pkt, l4)
		if !ok {
			return false
		}
		if !e.Transport {
			if ttlExpired(pkt) {
				w.stats.TTLExpired.Add(1)
				w.free(d.Addr)
				return true
			}
			decTTL(pkt)
		}
		w.stats.GSOFrames.Add(1)
		w.one[0] = d
		w.split(w.one[:1], l3, pkt[:hl], l4, len(pkt), true, e, sa, smac, dmac)
		w.free(d.Addr)
		return true
	}
	// UDP takes the PMTU path: a UDP GSO packet this small cannot be told
	// from a datagram the host means to be fragmented (no DF) or answered.
	return false
}

// split cuts the chain's IP packet (IP length ipLen, starting at l3 of the
// first frame) into packets that fit the SA's inner MTU, each in a fresh
// frame: hdr (the IP header, and for tcp the TCP header; l4 is the L4
// offset) is copied in front of every piece and fixed up, then the piece is
// sealed and queued for the wire. tcp=false makes IPv4 fragments.
func (w *Worker) split(c []xsk.Desc, l3 int, hdr []byte, l4, ipLen int, tcp bool, e *Entry, sa uint32, smac, dmac *[6]byte) {
	hl := len(hdr)
	unit := e.innerMTU - hl
	if !tcp {
		unit &^= 7
	} else if c := w.cfg.MSSClamp - (hl - l4 - 20); w.cfg.MSSClamp > 0 && c > 0 && c < unit {
		// A fixed mss_clamp also caps the segments: the operator's way to
		// honour a smaller MSS or path MTU beyond the tunnel (see above).
		// The MSS excludes TCP options (RFC 6691), so they come off it.
		unit = c
	}
	dataOff := int(w.umem.RXOffset()) + ethLen
	if unit < 8 || dataOff+e.innerMTU+esp.Tailroom > int(w.umem.FrameSize()) {
		w.saStats.AddError(sa, ReasonPMTU, 1)
		return
	}
	r := chainReader{w: w, descs: c, off: l3 - int(c[0].Addr-w.umem.FrameBase(c[0].Addr)) + hl}
	payload := ipLen - hl
	v4 := hdr[0]>>4 == 4
	id := be.Uint16(hdr[4:])
	seq := uint32(0)
	fragOff, fragMF := 0, false
	if tcp {
		seq = be.Uint32(hdr[l4+4:])
	} else {
		fo := be.Uint16(hdr[6:])
		fragOff, fragMF = int(fo&0x1fff)*8, fo&0x2000 != 0
	}
	for done, i := 0, 0; done < payload || i == 0; i++ {
		seg := min(unit, payload-done)
		first, last := done == 0, done+seg >= payload
		if len(w.tx[sideWire]) == cap(w.tx[sideWire]) {
			w.flush(sideWire)
			if len(w.tx[sideWire]) == cap(w.tx[sideWire]) {
				w.stats.TXRingFull.Add(1)
				w.saStats.AddError(sa, ReasonTXFull, 1)
				return
			}
		}
		addr, ok := w.pool.Get()
		if !ok {
			w.flush(sideWire)
			if addr, ok = w.pool.Get(); !ok {
				w.stats.NoFrame.Add(1)
				w.saStats.AddError(sa, ReasonTXFull, 1)
				return
			}
		}
		frame := w.umem.Frame(addr)
		p := frame[dataOff : dataOff+hl+seg]
		copy(p, hdr)
		if r.read(p[hl:]) != seg {
			w.free(addr) // cannot happen: ipLen <= the chain's bytes
			return
		}
		if v4 {
			be.PutUint16(p[2:], uint16(hl+seg))
			if tcp {
				be.PutUint16(p[4:], id+uint16(i))
			} else {
				fo := uint16((fragOff + done) / 8)
				if !last || fragMF {
					fo |= 0x2000
				}
				be.PutUint16(p[6:], fo)
			}
			be.PutUint16(p[10:], 0)
			be.PutUint16(p[10:], ^inetsum.Fold(inetsum.Sum(p[:l4], 0)))
		} else {
			be.PutUint16(p[4:], uint16(hl-40+seg))
		}
		if tcp {
			t := p[l4:]
			be.PutUint32(t[4:], seq+uint32(done))
			flags := t[13]
			if !last {
				flags &^= tcpFIN | tcpPSH
			}
			if !first {
				flags &^= tcpCWR
			}
			t[13] = flags
			be.PutUint16(t[16:], 0)
			var acc uint64
			if v4 {
				acc = inetsum.Sum(p[12:20], 0)
			} else {
				acc = inetsum.Sum(p[8:40], 0)
			}
			acc = inetsum.Add(acc, 6+uint64(len(t)))
			be.PutUint16(t[16:], ^inetsum.Fold(inetsum.Sum(t, acc)))
		}
		start, end, err := e.SA.Encap(frame, dataOff, len(p))
		if err != nil {
			w.cryptoErr(sa, err)
			w.free(addr)
			return
		}
		w.queue(sideWire, sa, w.putEth(xsk.Desc{Addr: addr}, frame, start, end, dmac, smac, frame[start]>>4 == 6))
		if tcp {
			w.stats.Segments.Add(1)
		} else {
			w.stats.Fragments.Add(1)
		}
		w.stats.Sealed.Add(1)
		w.saStats.Add(sa, 1, uint64(len(p)))
		done += seg
	}
}

const (
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80
)

// flush puts what is queued for a side on its TX ring mid-batch (a
// super-packet makes dozens of frames), kicks, and reaps completions, so
// that the batch and the pool have room again. A kick error comes back
// from the next Step's transmit.
func (w *Worker) flush(side int) {
	_ = w.transmit(side)
	w.reap(side)
}
