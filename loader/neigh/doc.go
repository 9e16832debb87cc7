// Package neigh tells the crypto workers where to send a packet next: for a destination address
// it gives the egress interface and the source and destination MAC addresses, from the kernel's
// routing and neighbour tables.
//
// The inbound path needs it because the card cannot: the inner destination of an ESP packet is
// only known after decryption, in the worker, which then writes the Ethernet header itself and
// transmits on the protected side over AF_XDP, bypassing the kernel's neighbour layer. The
// outbound path asks it only when the card's bpf_fib_lookup found no neighbour entry for the
// tunnel peer.
//
// # Design
//
// A Cache keeps, per destination asked for, the resolved next hop in an immutable map behind an
// atomic pointer. NextHop is one atomic load and one map lookup: it never blocks, never takes a
// lock, never allocates, and never makes a system call. When the destination is unknown or its
// neighbour unresolved, NextHop returns ok=false at once and posts the destination to a bounded
// queue (dropping the request if the queue is full); per destination a retry interval limits how
// often that happens, so a packet flood towards an unresolvable host costs one time check per
// packet.
//
// One goroutine owns everything else. It subscribes to the namespace's route, neighbour and link
// events over netlink, answers queued destinations with a route lookup (RTM_GETROUTE, so policy
// routing and every table apply exactly as the kernel's forwarding would), finds the gateway's or
// the destination's neighbour entry, and when there is none (or it is FAILED/INCOMPLETE) asks the
// kernel to resolve it with an RTM_NEWNEIGH carrying NTF_USE — the kernel then sends the ARP
// request or neighbour solicitation itself, with its usual retransmissions. When the answer
// arrives as a neighbour event, the entries waiting for it are published in a new map. Route and
// link events make it look every cached destination up again — once per batch of events, so a
// routing daemon's burst of thousands of updates costs one pass, not thousands. Entries are also refreshed periodically with NTF_USE: the kernel never sees the traffic
// the workers send, so without it a neighbour would go STALE and be garbage-collected while in use.
//
// The cache is bounded (Options.MaxEntries); past the bound, unresolved entries are evicted first.
//
// # The first packet to a host
//
// A destination nobody asked for is unknown, so the first decrypted packet to it is dropped (the
// worker counts no_next_hop_in) while the kernel resolves it; the sender's retransmission finds
// it. Options.LearnOn shortens that for the common case: on the protected interface, every host
// the kernel holds a usable neighbour entry for — any host that ARPed or solicited the gateway,
// as one that uses it as its router does — becomes a resolved destination at once, from the
// start-up dump or the neighbour event. A host that never spoke to the gateway still costs its
// first packet: queueing it would hold a frame in the worker for the resolution's duration, and
// resolving every address of a protected prefix in advance would scan the LAN.
//
// Everything is done in the network namespace given in Options (the gateway's), while the
// caller's goroutines may run anywhere.
package neigh
