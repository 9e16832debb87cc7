package worker

import "net/netip"

// NextHopResolver gives the Ethernet addresses for a decrypted packet's
// inner destination on the protected side. loader/neigh implements it from
// the kernel's routes and neighbours kept current over netlink.
//
// NextHop must never block and must not allocate in the common case: it is
// called once per inbound packet. When it has no answer (no route, or the
// neighbour is not resolved yet) it returns ok=false and, for an unresolved
// neighbour, starts resolution asynchronously so that later packets find it;
// the worker drops and counts the packet meanwhile.
type NextHopResolver interface {
	NextHop(dst netip.Addr) (ifindex int, srcMAC, dstMAC [6]byte, ok bool)
}

// PMTU handles inner packets too big for the tunnel (their encapsulation
// would exceed the wire MTU). crypto/pmtu.Responder implements it. Both
// methods work on caller-owned buffers, must not allocate or keep them, and
// are called from several workers at once.
type PMTU interface {
	// PacketTooBig turns the inner packet at buf[off:off+n] in place into the
	// ICMP error for its sender — IPv4 "fragmentation needed" (type 3 code 4)
	// or ICMPv6 Packet Too Big — reporting mtu as the next-hop MTU, and
	// returns the new packet at buf[start:end]. buf has esp.Headroom bytes
	// before off for the new IP and ICMP headers. ok=false means send
	// nothing (the packet is itself an ICMP error, rate limited, …).
	PacketTooBig(buf []byte, off, n, mtu int) (start, end int, ok bool)
	// FragmentIPv4 writes into dst the fragment of the IPv4 packet pkt (DF
	// clear) that starts at payload offset offset and is at most mtu bytes
	// long, and returns its length and the next fragment's offset (next == 0
	// after the last fragment; n == 0 if pkt cannot be fragmented). The
	// worker encrypts each fragment on its own: fragmentation happens before
	// encryption, so the peer gateway decrypts whole ESP packets and the end
	// host reassembles, as Linux does for tunnel mode.
	FragmentIPv4(dst, pkt []byte, mtu, offset int) (n, next int)
}
