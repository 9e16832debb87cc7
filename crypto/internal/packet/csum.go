package packet

import "github.com/xdpsec/xdpsec/crypto/internal/inetsum"

// Checksum completion for packets a host sent with transmit checksum
// offload (CHECKSUM_PARTIAL).
//
// A Linux host that transmits TCP or UDP through a device with checksum
// offload (a veth has it on by default) leaves the L4 checksum to "the
// hardware": the checksum field holds only the folded sum of the
// pseudo-header (~csum_tcpudp_magic(…, 0), ~csum_ipv6_magic(…, 0)), and the
// device is expected to add the sum of the L4 header and payload. On a veth
// nobody ever does — the receiving stack trusts the skb's CHECKSUM_PARTIAL
// state — but the card copies the bytes to AF_XDP as they are, so a tunnel
// would deliver the packet with a wrong checksum on the far side. The
// worker therefore does the device's part for outbound packets:
//
//   - cheap test first: only a TCP or UDP packet (not a fragment) whose
//     checksum field equals the folded pseudo-header sum is a candidate;
//   - a candidate whose full checksum verifies is left alone (a complete
//     checksum can equal the pseudo-header sum by chance: 1 in 65,536);
//   - otherwise the field is replaced by the complete checksum (RFC 793,
//     RFC 768, RFC 8200 §8.1), computed in the same pass as the check.
//
// Every other packet is never touched. A packet that really was corrupted
// in a way that left exactly the pseudo-header sum in its checksum field
// would be "repaired" — the same thing a NIC doing checksum offload would
// do with it, and Ethernet's FCS already stands between the wire and the
// card.

// CompleteChecksum finishes the L4 checksum of an IP packet (exactly its
// IP length) that carries the CHECKSUM_PARTIAL pattern and does not verify;
// it reports whether it wrote one. IPv6 packets with extension headers are
// left as they are (Linux hosts put them before TCP/UDP rarely, and the
// check needs the last header's offset).
func CompleteChecksum(pkt []byte) bool {
	var l4 []byte
	var acc uint64
	var proto uint8
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ihl := int(pkt[0]&0xf) * 4
		// A fragment (MF set or an offset) never carries a partial
		// checksum: the kernel completes it before fragmenting.
		if ihl < 20 || len(pkt) < ihl || be.Uint16(pkt[6:])&0x3fff != 0 {
			return false
		}
		proto, l4 = pkt[9], pkt[ihl:]
		acc = inetsum.Sum(pkt[12:20], 0)
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		proto, l4 = pkt[6], pkt[40:]
		acc = inetsum.Sum(pkt[8:40], 0)
	default:
		return false
	}
	var at int
	switch proto {
	case 6: // TCP
		if len(l4) < 20 {
			return false
		}
		at = 16
	case 17: // UDP
		if len(l4) < 8 || int(be.Uint16(l4[4:])) != len(l4) {
			return false
		}
		at = 6
	default:
		return false
	}
	acc = inetsum.Add(acc, uint64(proto)+uint64(len(l4)))
	field := be.Uint16(l4[at:])
	if field != inetsum.Fold(acc) {
		return false
	}
	sum := inetsum.Sum(l4, acc)
	if inetsum.Fold(sum) == 0xffff {
		return false // the checksum verifies: not ours to touch
	}
	// sum includes the field; taking it out (one's-complement subtraction
	// is adding the complement) leaves pseudo-header + L4 with a zero field.
	c := ^inetsum.Fold(inetsum.Add(sum, uint64(^field)))
	if c == 0 && proto == 17 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	be.PutUint16(l4[at:], c)
	return true
}
