package worker

import (
	"net/netip"

	"github.com/xdpsec/xdpsec/crypto/pmtu"
)

// PMTUResponder is the PMTU hook built on crypto/pmtu: ICMP "fragmentation
// needed" / ICMPv6 Packet Too Big written in place in front of the quoted
// packet, and IPv4 fragmentation before encryption. It keeps fragmenting
// state, so each worker needs its own.
type PMTUResponder struct {
	// Src4 and Src6 are the gateway's protected-side addresses: the
	// sources of the ICMP errors. Without one, packets of that family are
	// dropped without an answer.
	Src4, Src6 netip.Addr

	frag pmtu.Fragmenter
}

// PacketTooBig implements PMTU. The reply's IP and ICMP headers (28 bytes
// for IPv4, 48 for IPv6) go right before the packet, which becomes the
// quoted part, so nothing is copied.
func (p *PMTUResponder) PacketTooBig(buf []byte, off, n, mtu int) (start, end int, ok bool) {
	if n < 1 || off+n > len(buf) {
		return 0, 0, false
	}
	var l int
	var err error
	switch buf[off] >> 4 {
	case 4:
		if start = off - 28; start < 0 || !p.Src4.IsValid() {
			return 0, 0, false
		}
		l, err = pmtu.FragNeeded(buf[start:], p.Src4, buf[off:off+n], mtu)
	case 6:
		if start = off - 48; start < 0 || !p.Src6.IsValid() {
			return 0, 0, false
		}
		l, err = pmtu.PacketTooBig(buf[start:], p.Src6, buf[off:off+n], max(mtu, pmtu.MinMTU6))
	default:
		return 0, 0, false
	}
	if err != nil {
		return 0, 0, false
	}
	return start, start + l, true
}

// FragmentIPv4 implements PMTU: offset 0 starts a packet, later calls
// continue it (the worker calls it in sequence for one packet at a time).
func (p *PMTUResponder) FragmentIPv4(dst, pkt []byte, mtu, offset int) (n, next int) {
	if offset == 0 {
		if err := p.frag.Reset(pkt, mtu); err != nil {
			return 0, 0
		}
	}
	n, err := p.frag.Next(dst)
	if err != nil || n == 0 {
		return 0, 0
	}
	if p.frag.Done() {
		return n, 0
	}
	return n, offset + n
}
