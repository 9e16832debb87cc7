// Package ipsec is xdpsec's vocabulary: the words of RFC 4301 and ip xfrm that every layer of the
// gateway speaks — direction, action, mode, IP protocol with its one port rule, port range, traffic
// selector, the policy as the card holds it, the SPD order, and the reference classifier whose
// answer the card must equal for every packet. It sits at the bottom of the tree and imports only
// the standard library, so the card's loader, the crypto workers, the control plane, the config and
// the API all use these types and values, and none of them converts between its own.
//
// The numbers are the card's: Dir, Action and Mode have the values of bpf/xdpsec.h's enums, NoSA is
// its XDPSEC_NONE_U32, and HasPorts is its proto_has_ports; a test reads the C source and fails on
// any difference.
//
// Text forms are ip xfrm's: "out", "in", "fwd"; "bypass", "protect", "discard" (and ip xfrm's "allow",
// "block" when parsing); "tunnel", "transport"; protocol names as /etc/protocols spells them ("tcp",
// "ipv6-icmp"); port ranges "any", "80", "1000-2000". Dir, Action, Mode and PortRange marshal as text,
// so JSON and YAML carry the words; a PortRange marshals to JSON as {"lo": N, "hi": N}, and Proto as a
// number, as the daemon's API always has.
//
// Classification semantics, shared by the reference classifier and the card:
//   - A policy has a direction (out: packets from the protected side; in: plaintext packets arriving on
//     the wire side), a priority where the lower number wins (as in ip xfrm), and a selector. Among the
//     matching policies of the packet's direction the one with the lowest priority wins; equal
//     priorities resolve to the lower policy ID. The order is total, so the outcome never depends on
//     insertion order or map layout.
//   - A selector matches one address family: the family of its prefixes. An IPv4 packet never matches
//     an IPv6 selector and the other way round (no IPv4-mapped addresses).
//   - Proto 0 means any next-layer protocol. Port ranges may only constrain protocols that carry ports
//     (HasPorts: TCP, UDP, SCTP, UDP-Lite, DCCP); for ICMP and ICMPv6 the source range selects the
//     ICMP type and the destination range the code, as Linux's xfrm_selector does.
//   - Non-first fragments (RFC 4301 §7) carry no ports. They are matched as if their ports were
//     OPAQUE: a selector that constrains ports (or ICMP type/code) cannot be decided for them. The
//     lookup walks the policies in order; the first policy whose addresses and protocol match decides:
//     if it does not constrain ports, it wins as usual; if it does, the fragment is ambiguous — it may
//     belong to that policy's traffic — and is discarded (Decision.Ambiguous). This is the stateless
//     handling of §7.1 made safe: a non-first fragment is never sent along a path its first fragment
//     would not take.
//   - A packet that matches no policy gets the direction's default action: bypass unless configured
//     to discard (Linux's default).
package ipsec
