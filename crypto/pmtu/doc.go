// Package pmtu answers packets that do not fit the tunnel: it builds the ICMPv4 "fragmentation
// needed" (RFC 792, RFC 1191) and ICMPv6 Packet Too Big (RFC 4443 §3.2) messages that a gateway
// sends back to an inner sender, and fragments inner IPv4 packets that allow it (RFC 791).
//
// Everything writes into buffers the caller owns (a UMEM frame in the crypto worker) and allocates
// nothing, so the worker can call it on its hot path for the rare oversize packet.
//
// # Which packets get which answer
//
// The worker knows, per SA, the largest inner packet that still fits the wire MTU once ESP is
// added (MaxInner). An inner packet larger than that is:
//
//   - IPv4 with DF set: dropped, and FragNeeded tells its sender the next-hop MTU, so TCP lowers
//     its segment size (path MTU discovery, RFC 1191). This is what makes TCP through the tunnel
//     work with 1500-byte MTUs everywhere and no MSS clamping.
//   - IPv6: dropped, and PacketTooBig tells its sender the MTU (RFC 8201). IPv6 routers never
//     fragment.
//   - IPv4 without DF: fragmented here, before encryption, by a Fragmenter; each fragment then
//     becomes its own ESP packet.
//
// # Fragmenting before encryption
//
// RFC 4301 §8.1 lets a tunnel-mode implementation fragment either the inner packet before ESP
// ("pre-fragmentation") or the outer packet after it, and RFC 4459 §3 weighs the two: fragments
// of the outer packet must be reassembled by the peer gateway before it can even find the SA,
// which costs it memory, exposes it to reassembly attacks and, for xdpsec, is impossible on the
// card: only the first outer fragment carries the SPI, so the XDP classifier could not steer the
// others to a worker. Fragmenting the inner packet keeps every outer packet a whole ESP packet
// the peer's card classifies and decrypts on its own; reassembly happens at the inner destination,
// the one host that has to do it anyway. The cost is one more ESP header and ICV per fragment.
//
// # What is never answered
//
// As RFC 1122 §3.2.2, RFC 1812 §4.3.2.7 and RFC 4443 §2.4(e) require, no ICMP error is built for
// an ICMP error, for a non-first fragment, or for a packet whose source is not a unicast address
// (unspecified, loopback, multicast, broadcast, reserved); those calls return ErrNoReply and the
// caller drops the packet silently (and counts it).
//
// # Quoting
//
// The ICMPv4 message quotes as much of the offending datagram as keeps the whole reply within 576
// bytes (RFC 1812 §4.3.2.3); the ICMPv6 message as much as keeps it within the IPv6 minimum MTU
// of 1280 bytes (RFC 4443 §2.4(c)). The reply's source address is the gateway's address on the
// protected side, so that the sender's stack and traceroute see the gateway as the hop that
// could not forward.
package pmtu
