package packet

import "github.com/xdpsec/xdpsec/crypto/internal/inetsum"

// MSS clamping (the worker's Config.MSSClamp): the worker lowers the MSS option of TCP
// SYNs (and SYN-ACKs) that go into the tunnel, so that both ends of a
// connection send segments that fit the SA's inner MTU from the first
// segment on, instead of learning it from an ICMP error a firewall may
// drop. This is what `iptables -j TCPMSS --clamp-mss-to-pmtu` does on a
// Linux IPsec gateway. With both gateways clamping, each direction's SYN
// carries an MSS that fits the tunnel.

// ClampMSS lowers the MSS option of a TCP SYN in the IP packet pkt (exactly
// its IP length) to at most mss, with the TCP checksum updated
// incrementally (RFC 1624, eqn. 3); the checksum must be complete. It
// reports whether it changed the packet. IPv6 packets with extension
// headers and fragments are left alone.
func ClampMSS(pkt []byte, mss int) bool {
	var l4 int
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		if pkt[9] != 6 || be.Uint16(pkt[6:])&0x3fff != 0 {
			return false
		}
		l4 = int(pkt[0]&0xf) * 4
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		if pkt[6] != 6 {
			return false
		}
		l4 = 40
	default:
		return false
	}
	if l4+20 > len(pkt) {
		return false
	}
	tcp := pkt[l4:]
	if tcp[13]&0x02 == 0 { // not a SYN
		return false
	}
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || doff > len(tcp) {
		return false
	}
	for i := 20; i < doff; {
		switch kind := tcp[i]; kind {
		case 0: // end of options
			return false
		case 1: // no-operation
			i++
			continue
		}
		if i+1 >= doff {
			return false
		}
		n := int(tcp[i+1])
		if n < 2 || i+n > doff {
			return false
		}
		if tcp[i] == 2 && n == 4 {
			old := int(be.Uint16(tcp[i+2:]))
			if old <= mss {
				return false
			}
			// The checksum covers 16-bit words from the header's start: the
			// two value bytes at offset i+2 span one word (even offset) or
			// two (odd offset). Take the sum of the aligned words out,
			// write, put the new sum in.
			lo, hi := (i+2)&^1, (i+4+1)&^1
			before := inetsum.Sum(tcp[lo:hi], 0)
			be.PutUint16(tcp[i+2:], uint16(mss))
			after := inetsum.Sum(tcp[lo:hi], 0)
			c := ^be.Uint16(tcp[16:])
			s := inetsum.Add(inetsum.Add(uint64(c), uint64(^inetsum.Fold(before))), uint64(inetsum.Fold(after)))
			be.PutUint16(tcp[16:], ^inetsum.Fold(s))
			return true
		}
		i += n
	}
	return false
}
