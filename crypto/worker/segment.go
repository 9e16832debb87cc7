//go:build linux

package worker

import (
	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
	"github.com/xdpsec/xdpsec/crypto/internal/packet"
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
	if route && packet.TTLExpired(head) {
		w.stats.TTLExpired.Add(1)
		w.freeChain(c)
		return
	}
	switch {
	case proto == 6 && !frag:
		if hl, ok = packet.TCPEnd(head, l4); !ok || ipLen < hl {
			w.badHeader(sa)
			w.freeChain(c)
			return
		}
		if route {
			packet.DecTTL(head)
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
			packet.DecTTL(head)
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
		w.sendTooBig(d, frame, off, l3, q, e, sa)
	}
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
		hl, ok := packet.TCPEnd(pkt, l4)
		if !ok {
			return false
		}
		if !e.Transport {
			if packet.TTLExpired(pkt) {
				w.stats.TTLExpired.Add(1)
				w.free(d.Addr)
				return true
			}
			packet.DecTTL(pkt)
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
// offset) is copied in front of every piece and fixed up (packet.Cut), then
// the piece is sealed and queued for the wire. tcp=false makes IPv4
// fragments.
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
	cut := packet.NewCut(hdr, l4, tcp)
	for done, i := 0, 0; done < payload || i == 0; i++ {
		seg := min(unit, payload-done)
		addr, ok := w.txFrame(sideWire, sa)
		if !ok {
			return
		}
		frame := w.umem.Frame(addr)
		p := frame[dataOff : dataOff+hl+seg]
		copy(p, hdr)
		if r.read(p[hl:]) != seg {
			w.free(addr) // cannot happen: ipLen <= the chain's bytes
			return
		}
		cut.Fix(p, i, done, done+seg >= payload)
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
