package pmtu

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
)

// Sentinel errors; callers count drops by them.
var (
	// ErrNoReply: the offending packet must not be answered with an ICMP error (see the package
	// documentation); drop it silently.
	ErrNoReply = errors.New("packet must not be answered with an ICMP error")
	// ErrMalformed: the packet is not a well-formed IPv4 / IPv6 packet of the expected version.
	ErrMalformed = errors.New("malformed IP packet")
	// ErrShortBuffer: the output buffer cannot hold the result.
	ErrShortBuffer = errors.New("output buffer too short")
	// ErrMTU: the MTU is below what the IP version allows (68 for IPv4, RFC 791; 1280 for IPv6,
	// RFC 8200 §5), or too small to carry a fragment.
	ErrMTU = errors.New("mtu too small")
	// ErrDontFragment: the IPv4 packet has DF set and must not be fragmented.
	ErrDontFragment = errors.New("packet has DF set")
	// ErrSource: the reply's source address is not a unicast address of the right family.
	ErrSource = errors.New("invalid source address for the reply")
)

const (
	// MaxReply4 bounds an ICMPv4 error message, IP header included (RFC 1812 §4.3.2.3).
	MaxReply4 = 576
	// MaxReply6 bounds an ICMPv6 error message, IPv6 header included (RFC 4443 §2.4(c)).
	MaxReply6 = 1280
	// MinMTU4 and MinMTU6 are the smallest MTUs of the two IP versions (RFC 791, RFC 8200 §5).
	MinMTU4 = 68
	MinMTU6 = 1280

	// ttl is the hop limit of the replies, Linux's default.
	ttl = 64

	protoICMP   = 1
	protoICMPv6 = 58
)

var be = binary.BigEndian

// FragNeeded writes into dst an IPv4 packet carrying an ICMP Destination Unreachable,
// "fragmentation needed and DF set" (type 3, code 4, RFC 792) whose next-hop MTU field (RFC 1191
// §4) is mtu, addressed from src to the source of orig, the offending IPv4 packet. It returns the
// reply's length. orig is quoted as far as MaxReply4 allows; bytes of orig beyond its IP total
// length (Ethernet padding) are ignored.
func FragNeeded(dst []byte, src netip.Addr, orig []byte, mtu int) (int, error) {
	if !src.Is4() || !unicast(src) {
		return 0, ErrSource
	}
	if mtu < MinMTU4 || mtu > 0xffff {
		return 0, ErrMTU
	}
	if len(orig) < 20 || orig[0]>>4 != 4 {
		return 0, ErrMalformed
	}
	ihl := int(orig[0]&0x0f) * 4
	total := int(be.Uint16(orig[2:]))
	if ihl < 20 || total < ihl || total > len(orig) {
		return 0, ErrMalformed
	}
	orig = orig[:total]
	osrc := netip.AddrFrom4([4]byte(orig[12:16]))
	odst := netip.AddrFrom4([4]byte(orig[16:20]))
	// RFC 1812 §4.3.2.7: not for non-first fragments, nor for packets from or to addresses that
	// do not name one host.
	if be.Uint16(orig[6:])&0x1fff != 0 || !unicast(osrc) || odst.IsMulticast() || odst == bcast4 {
		return 0, ErrNoReply
	}
	if orig[9] == protoICMP && icmp4Error(orig[ihl:]) {
		return 0, ErrNoReply
	}
	quote := min(len(orig), MaxReply4-20-8)
	n := 20 + 8 + quote
	if len(dst) < n {
		return 0, ErrShortBuffer
	}
	h := dst[:20]
	h[0] = 0x45
	// RFC 1812 §4.3.2.5: ICMP errors travel with precedence 6, "internetwork control".
	h[1] = 0xc0
	be.PutUint16(h[2:], uint16(n))
	// An atomic datagram (DF set) may carry ID 0 (RFC 6864 §4.1); the reply is at most 576 bytes,
	// which every IPv4 path carries.
	be.PutUint16(h[4:], 0)
	be.PutUint16(h[6:], 0x4000)
	h[8] = ttl
	h[9] = protoICMP
	be.PutUint16(h[10:], 0)
	s4, d4 := src.As4(), osrc.As4()
	copy(h[12:16], s4[:])
	copy(h[16:20], d4[:])
	be.PutUint16(h[10:], ^inetsum.Fold(inetsum.Sum(h, 0)))

	m := dst[20:n]
	m[0], m[1] = 3, 4
	be.PutUint16(m[2:], 0)
	be.PutUint16(m[4:], 0) // unused
	be.PutUint16(m[6:], uint16(mtu))
	copy(m[8:], orig[:quote])
	be.PutUint16(m[2:], ^inetsum.Fold(inetsum.Sum(m, 0)))
	return n, nil
}

// PacketTooBig writes into dst an IPv6 packet carrying an ICMPv6 Packet Too Big (type 2, code 0,
// RFC 4443 §3.2) with MTU mtu, addressed from src to the source of orig, the offending IPv6
// packet, and returns its length. orig is quoted as far as MaxReply6 allows.
func PacketTooBig(dst []byte, src netip.Addr, orig []byte, mtu int) (int, error) {
	if !src.Is6() || src.Is4In6() || !unicast(src) {
		return 0, ErrSource
	}
	if mtu < MinMTU6 {
		return 0, ErrMTU
	}
	if len(orig) < 40 || orig[0]>>4 != 6 {
		return 0, ErrMalformed
	}
	total := 40 + int(be.Uint16(orig[4:]))
	// A jumbogram (payload length 0, RFC 2675) never reaches a 1500-byte link; treat the
	// packet's bytes as its length rather than reject it.
	if total == 40 {
		total = len(orig)
	}
	if total > len(orig) {
		return 0, ErrMalformed
	}
	orig = orig[:total]
	osrc := netip.AddrFrom16([16]byte(orig[8:24]))
	// RFC 4443 §2.4(e): Packet Too Big is the one error that is sent even for a multicast
	// destination (e.3), but never to a source that does not name one node, nor for an ICMPv6
	// error message (e.1).
	if !unicast(osrc) {
		return 0, ErrNoReply
	}
	if icmp6Error(orig) {
		return 0, ErrNoReply
	}
	quote := min(len(orig), MaxReply6-40-8)
	n := 40 + 8 + quote
	if len(dst) < n {
		return 0, ErrShortBuffer
	}
	h := dst[:40]
	be.PutUint32(h[0:], 6<<28)
	be.PutUint16(h[4:], uint16(8+quote))
	h[6] = protoICMPv6
	h[7] = ttl
	s16, d16 := src.As16(), osrc.As16()
	copy(h[8:24], s16[:])
	copy(h[24:40], d16[:])

	m := dst[40:n]
	m[0], m[1] = 2, 0
	be.PutUint16(m[2:], 0)
	be.PutUint32(m[4:], uint32(mtu))
	copy(m[8:], orig[:quote])
	// RFC 4443 §2.3: the checksum covers the RFC 8200 §8.1 pseudo-header.
	acc := inetsum.Sum(h[8:40], 0)
	acc = inetsum.Add(acc, uint64(len(m))+protoICMPv6)
	be.PutUint16(m[2:], ^inetsum.Fold(inetsum.Sum(m, acc)))
	return n, nil
}

var bcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// unicast reports whether a names one host: not unspecified, loopback, multicast, limited
// broadcast or (IPv4) the reserved 240.0.0.0/4 and 0.0.0.0/8.
func unicast(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
		return false
	}
	if a.Is4() {
		b := a.As4()
		return b[0] != 0 && b[0] < 240
	}
	return true
}

// icmp4Error reports whether the ICMP message m is an error message (RFC 1122 §3.2.2: never
// answer one with another). Unknown types count as errors, which errs on the side of silence.
func icmp4Error(m []byte) bool {
	if len(m) < 1 {
		return true
	}
	switch m[0] {
	case 0, 8, 13, 14, 15, 16, 17, 18: // echo reply/request, timestamp, info, address mask
		return false
	}
	return true
}

// icmp6Error walks the IPv6 packet's extension headers (a bounded number) and reports whether
// its upper layer is an ICMPv6 error message (types below 128, RFC 4443 §2.1) or may be one: a
// non-first fragment of an ICMPv6 message, or a chain too long or truncated. In doubt, stay
// silent; a non-first fragment of anything else is answered, since its sender needs the MTU too.
func icmp6Error(pkt []byte) bool {
	nh := pkt[6]
	off := 40
	for i := 0; i < 8; i++ {
		switch nh {
		case protoICMPv6:
			return off >= len(pkt) || pkt[off] < 128
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+2 > len(pkt) {
				return true
			}
			nh, off = pkt[off], off+8+int(pkt[off+1])*8
		case 44: // fragment
			if off+8 > len(pkt) {
				return true
			}
			if be.Uint16(pkt[off+2:])&0xfff8 != 0 {
				// The upper-layer header is in the first fragment only.
				return pkt[off] == protoICMPv6
			}
			nh, off = pkt[off], off+8
		default:
			return false
		}
	}
	return true
}
