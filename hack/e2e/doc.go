// Package e2e is the end-to-end test of the data path (issue 4): two xdpsec gateways in network
// namespaces h1 — gw1 — [sw] — gw2 — h2, tunnels over IPv4 (AES-GCM) and IPv6
// (ChaCha20-Poly1305), real kernel traffic through them. `go test ./hack/e2e` runs it as root
// and skips otherwise; it takes well under a minute.
//
// What it shows, in order:
//   - ping over IPv4 and IPv6, h1 → h2 and h2 → h1, every echo answered after a warm-up whose
//     first-packet loss is counted and bounded (testbed.WarmUp), and 3000-byte IPv4 echoes without
//     DF, which the gateways fragment before encryption (exactly 24 fragments);
//   - a 128 MiB TCP transfer h1 → h2 over IPv4 and a 16 MiB one over IPv6 whose SHA-256 matches,
//     with 1500-byte MTUs everywhere, no MSS clamping, and the hosts' default offloads (their
//     segments reach gw1 with CHECKSUM_PARTIAL checksums, which its worker completes): the
//     sender's path MTU must come down to exactly the SA's inner MTU through the gateway's ICMP
//     "fragmentation needed" / Packet Too Big, and the largest ESP packet on the wire must be
//     exactly the wire MTU;
//   - a capture on the wire (at the bridge "sw" in its middle: AF_XDP transmits skip the
//     gateways' own packet taps) holding nothing but ESP, ARP and neighbour discovery, no byte
//     of the payload's plaintext marker, and strictly increasing sequence numbers per SPI;
//   - a capture that cannot pass empty: it must hold at least the IPv4 transfer's segments;
//   - per-SA counters: what gw1 sealed = what the capture saw (within tcpdump's own drops) = what
//     gw2 opened (within its AF_XDP socket's drops), per SPI, both directions; equal plaintext
//     bytes at both ends; the transfers' bytes within the gw1→gw2 SAs' byte counters;
//   - ESP with an unknown SPI, a flipped ICV bit and a replayed sequence number injected towards
//     gw2 while a ping runs: each dropped and counted exactly under its reason, all 40 echoes answered;
//   - afterwards no namespace, pin or XDP program is left, and no process or open handle keeps a
//     deleted namespace (and with it its links) alive (testbed.Leftovers).
//
// seqstate_test.go proves issue 8's promise that no nonce and no sequence number is used twice
// under one key, with a capture on the gw1–gw2 link in which every ESP packet is decrypted
// independently with the configuration's keys: reloads that change non-key settings of the SAs of
// both gateways under a 20 ms ping (updated in place, not an echo lost, the new TTLs on the wire
// in order), and gw1 run as `xdpsec run` stopped with SIGTERM and killed with SIGKILL, each time
// started again with the same configuration (echoes back within 10 s, gw2 never rekeyed and
// counting no replay).
//
// failclosed_test.go proves issue 8's fail-closed promises: gw1 stopped with on_exit: guard (under a
// 10 ms ping: no plaintext ICMP on the wire across the stop), then killed with SIGKILL, drops the
// UDP the SPD protects in both directions (counted exactly under OutGuard/InGuard,
// OutNoSocket/InNoSocket; nothing at the other host, no plaintext and no ESP of gw1 on the wire)
// while udp/500, which it bypasses, arrives whole; the next start adopts the card with the same
// links and the tunnel works again; a start after the kill with the SAs in the opposite order
// (every index and inbound (SPI, destination) held by a stale SA) and a policy fewer ends with the
// card equal to the SAD and SPD; loader.Remove (xdpsec down) leaves nothing; forged UDP/4500,
// unknown-SPI ESP and plaintext from the wire never reach the protected host.
package e2e
