//go:build linux

package worker

import (
	"encoding/binary"
	"net/netip"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

var be = binary.BigEndian

const (
	ethLen       = 14
	etherTypeIP  = 0x0800
	etherTypeIP6 = 0x86dd
)

// side names the socket a frame leaves on.
const (
	sideProtected = 0
	sideWire      = 1
)

// frameOf returns the whole UMEM frame of d and the packet's offset in it.
func (w *Worker) frameOf(d xsk.Desc) (frame []byte, off int) {
	return w.umem.Frame(d.Addr), int(d.Addr - w.umem.FrameBase(d.Addr))
}

// readMeta decodes the card's metadata in front of the packet at
// frame[off:off+n] and checks it names a direction and an IP header inside
// the packet. It returns the IP header's offset in frame.
func (w *Worker) readMeta(frame []byte, off, n int, want ipsec.Dir, m *bpf.CardXdpsecMeta) (l3 int, ok bool) {
	if off < bpf.MetaSize || off+n > len(frame) || bpf.DecodeMeta(frame[off-bpf.MetaSize:off], m) != nil {
		w.stats.BadMeta.Add(1)
		return 0, false
	}
	if ipsec.Dir(m.Dir) != want {
		w.stats.WrongDir.Add(1)
		return 0, false
	}
	if m.L3Off < ethLen || int(m.L3Off)+20 > n {
		w.stats.BadMeta.Add(1)
		return 0, false
	}
	return off + int(m.L3Off), true
}

// lookup finds the SA the metadata names and checks its direction.
func (w *Worker) lookup(index uint32, want ipsec.Dir) *Entry {
	e := w.sas.Lookup(index)
	if e == nil {
		w.stats.NoSA.Add(1)
		return nil
	}
	if e.Dir != want {
		w.stats.WrongDir.Add(1)
		return nil
	}
	return e
}

// putEth writes an Ethernet header in the 14 bytes before frame[start] and
// returns the TX descriptor of the frame from there to end.
func (w *Worker) putEth(d xsk.Desc, frame []byte, start, end int, dst, src *[6]byte, ipv6 bool) xsk.Desc {
	h := frame[start-ethLen : start]
	copy(h[0:6], dst[:])
	copy(h[6:12], src[:])
	if ipv6 {
		be.PutUint16(h[12:], etherTypeIP6)
	} else {
		be.PutUint16(h[12:], etherTypeIP)
	}
	return xsk.Desc{Addr: w.umem.FrameBase(d.Addr) + uint64(start-ethLen), Len: uint32(end - start + ethLen)}
}

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
	ipLen, ok := ipLength(pkt)
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
	if w.completeCsum && completeChecksum(pkt) {
		w.stats.ChecksumsCompleted.Add(1)
	}
	if w.cfg.MSSClamp != 0 && clampMSS(pkt, w.mssFor(e, pkt[0]>>4 == 6)) {
		w.stats.MSSClamped.Add(1)
	}
	// As a router would (Linux ip_forward): TTL first, then the MTU, then
	// the decrement.
	route := !e.Transport
	if route && ttlExpired(pkt) {
		w.stats.TTLExpired.Add(1)
		w.free(d.Addr)
		return
	}
	if ipLen > e.innerMTU {
		w.tooBig(d, frame, off, l3, ipLen, e, sa, &smac, &dmac)
		return
	}
	if route {
		decTTL(pkt)
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
			decTTL(pkt)
		}
		w.fragment(pkt, e, sa, smac, dmac)
		w.free(d.Addr)
		return
	}
	// The sender is the frame's Ethernet source; we are its destination.
	var sender, us [6]byte
	copy(sender[:], frame[off+6:off+12])
	copy(us[:], frame[off:off+6])
	w.saStats.AddError(sa, ReasonPMTU, 1)
	start, end, ok := w.pmtu.PacketTooBig(frame, l3, ipLen, e.innerMTU)
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
		if len(w.tx[sideWire]) == cap(w.tx[sideWire]) {
			w.stats.TXRingFull.Add(1)
			w.saStats.AddError(sa, ReasonTXFull, 1)
			return
		}
		addr, ok := w.pool.Get()
		if !ok {
			w.stats.NoFrame.Add(1)
			w.saStats.AddError(sa, ReasonTXFull, 1)
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

// handleIn opens one frame received on the wire side: it decrypts the ESP
// packet in place with the SA the card found, checks the inner packet
// against the selectors of the policy the SA serves, and queues it for the
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
	if !innerTuple(inner, &t) {
		w.badHeader(sa)
		w.free(d.Addr)
		return
	}
	if !selectorsMatch(e.Selectors, &t) {
		w.saStats.AddError(sa, uint8(ReasonPolicyMismatch), 1)
		w.stats.PolicyMismatch.Add(1)
		w.free(d.Addr)
		return
	}
	route := !e.Transport
	if route && ttlExpired(inner) {
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
		decTTL(inner)
	}
	w.queue(sideProtected, sa, w.putEth(d, frame, start, end, &dst, &src, inner[0]>>4 == 6))
	w.stats.Opened.Add(1)
	w.saStats.Add(sa, 1, uint64(end-start))
}

// badHeader counts a packet of SA sa dropped because its IP header is
// malformed, as the engine's own ReasonBadHeader errors are counted.
func (w *Worker) badHeader(sa uint32) {
	w.saStats.AddError(sa, uint8(esp.ReasonBadHeader), 1)
	w.stats.CryptoErrors.Add(1)
}

func (w *Worker) cryptoErr(sa uint32, err error) {
	w.stats.CryptoErrors.Add(1)
	// The engine returns its sentinels unwrapped: a type assertion finds
	// the reason without errors.As's allocation-free but slower walk.
	if e, ok := err.(*esp.Error); ok {
		w.saStats.AddError(sa, uint8(e.Reason), 1)
	}
}

// ipLength returns the IP packet's own length (IPv4 total length, IPv6
// payload length + 40), which excludes Ethernet padding.
func ipLength(p []byte) (int, bool) {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		l := int(be.Uint16(p[2:]))
		return l, l >= int(p[0]&0xf)*4 && l >= 20 && l <= len(p)
	case len(p) >= 40 && p[0]>>4 == 6:
		l := int(be.Uint16(p[4:])) + 40
		return l, l <= len(p)
	}
	return 0, false
}

func ttlExpired(p []byte) bool {
	if p[0]>>4 == 4 {
		return p[8] <= 1
	}
	return p[7] <= 1
}

// decTTL decrements the TTL (IPv4, with the checksum updated incrementally
// as Linux's ip_decrease_ttl does, RFC 1624) or the hop limit (IPv6).
func decTTL(p []byte) {
	if p[0]>>4 == 6 {
		p[7]--
		return
	}
	c := uint32(be.Uint16(p[10:])) + 0x0100
	if c >= 0xffff {
		c++
	}
	be.PutUint16(p[10:], uint16(c))
	p[8]--
}

// innerTuple reads the selector fields of a decrypted IP packet.
func innerTuple(p []byte, t *ipsec.Tuple) bool {
	*t = ipsec.Tuple{}
	var l4 []byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		ihl := int(p[0]&0xf) * 4
		if ihl < 20 || len(p) < ihl {
			return false
		}
		t.Src = netip.AddrFrom4([4]byte(p[12:16]))
		t.Dst = netip.AddrFrom4([4]byte(p[16:20]))
		t.Proto = ipsec.Proto(p[9])
		if be.Uint16(p[6:])&0x1fff != 0 {
			t.NonFirstFragment = true
			return true
		}
		l4 = p[ihl:]
	case len(p) >= 40 && p[0]>>4 == 6:
		t.Src = netip.AddrFrom16([16]byte(p[8:24]))
		t.Dst = netip.AddrFrom16([16]byte(p[24:40]))
		nh, rest := p[6], p[40:]
		for range 8 {
			var hl int
			switch nh {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(rest) < 8 {
					return false
				}
				hl = (int(rest[1]) + 1) * 8
			case 51: // AH
				if len(rest) < 8 {
					return false
				}
				hl = (int(rest[1]) + 2) * 4
			case 44: // fragment
				if len(rest) < 8 {
					return false
				}
				if be.Uint16(rest[2:])&^7 != 0 {
					t.Proto = ipsec.Proto(rest[0])
					t.NonFirstFragment = true
					return true
				}
				hl = 8
			default:
				goto done
			}
			if len(rest) < hl {
				return false
			}
			nh, rest = rest[0], rest[hl:]
		}
		return false // deeper than the card accepts either
	done:
		t.Proto = ipsec.Proto(nh)
		l4 = rest
	default:
		return false
	}
	switch {
	case t.Proto.HasPorts():
		if len(l4) < 4 {
			return false
		}
		t.SrcPort, t.DstPort = be.Uint16(l4[0:]), be.Uint16(l4[2:])
	case t.Proto.IsICMP():
		if len(l4) < 2 {
			return false
		}
		t.SrcPort, t.DstPort = uint16(l4[0]), uint16(l4[1])
	}
	return true
}

// selectorsMatch is the post-decryption check (RFC 4301 §5.2): the inner
// packet must be one the policy the SA serves would have protected. A
// non-first fragment carries no ports, so it matches only selectors that do
// not constrain them (ipsec.Selector.Matches, the SPD's rule for fragments).
func selectorsMatch(sels []ipsec.Selector, t *ipsec.Tuple) bool {
	for i := range sels {
		if sels[i].Matches(t) {
			return true
		}
	}
	return false
}
