// Package worker is xdpsec's crypto worker: the goroutines that do ESP on
// the packets the card (the XDP program in bpf/) hands over AF_XDP, and
// transmit the result on the other interface.
//
// # One worker per receive queue
//
// A Worker owns two sockets opened on one UMEM (loader/xsk): queue q of the
// protected-side interface and queue q of the wire-side interface, plus its
// own FramePool, cut from the shared UMEM. A frame received on one socket is
// processed in place and transmitted on the other, so frames never leave
// the worker that owns them and no ring, pool or batch is shared between
// goroutines. The daemon starts one worker per queue index. One SA's packets
// may reach several workers (the peer sends them on several queues), which
// open them out of order: the SA's replay window, shared by all workers, must
// be wide enough for that (the daemon's dataplane.min_replay_window).
//
// Run loops: reap completions, top up both fill rings, take one batch
// (default 64) off each RX ring and process it (first loading the headers
// of every frame of the batch, so that their cache misses overlap), put the results on the TX
// rings and kick the kernel when need-wakeup asks; it repeats while packets
// come and, once both RX rings are empty, sleeps in poll(2) on both sockets
// and a stop eventfd (xsk.Stopper). Busy polling (Config.BusyPoll) spins
// instead. LockOSThread and CPU pinning are options, off by default: on this
// 2-core machine, where veth runs the receiver's XDP on the sender's CPU,
// there is no core to give a worker, and no measurement has shown a gain yet.
//
// # Outbound (protected side → wire)
//
// The card's metadata (bpf.DecodeMeta: magic, version, direction, SA index,
// L3 offset, and its bpf_fib_lookup result for the SA's outer destination)
// sits right before the packet. The worker checks it, loads the SA from the
// SATable (one atomic load), drops packets whose TTL would expire, sends an
// ICMP error or fragments when the packet is too big for the tunnel (below),
// decrements the TTL (tunnel mode: the worker is a router hop), encrypts in
// place (esp.Encap, which uses the frame's headroom and tailroom), writes
// the outer Ethernet header from the metadata's MACs and queues the frame on
// the wire socket. When the card flags the neighbour as unresolved, the
// worker asks the NextHopResolver for the SA's outer destination (which
// also starts resolution) and drops and counts the packet if it has no
// answer.
//
// Before encrypting, the worker completes TCP/UDP checksums that a host left
// for "the hardware" (CHECKSUM_PARTIAL: a Linux host transmitting through a
// veth with checksum offload on, the default, puts only the pseudo-header
// sum in the field). Only packets whose checksum field equals the folded
// pseudo-header sum AND whose checksum does not verify are rewritten, in
// one pass over the L4 bytes (~100 ns for 1400 bytes); every other packet
// costs a ~7 ns test and is never touched (crypto/internal/packet/csum.go, Stats.ChecksumsCompleted).
// Config.NoChecksumCompletion turns it off; hosts must then turn their
// transmit checksum offload off (ethtool -K dev tx off).
//
// The worker writes a fresh Ethernet header in front of the result, so VLAN
// tags of the received frame are not carried over (the wire side and the
// replies to the protected side go out untagged).
//
// # Inbound (wire → protected side)
//
// esp.Decap does anti-replay, ICV and decryption in place. The inner packet
// must then pass the post-decryption policy check (RFC 4301 §5.2): the first
// inbound policy it matches, in SPD order, must be a PROTECT policy the SA
// serves. The control plane gives each inbound SA that answer as a short
// list (Entry.Check, ipsec.CheckList: the policies the SA serves and the
// earlier ones that may overlap them), and the first entry the packet matches
// decides (a non-first fragment meeting an entry that constrains ports is
// rejected, as the SPD does); a rejected packet is dropped and counted (error
// slot ReasonPolicyMismatch). An empty list rejects everything. The NextHopResolver — which must never block, and
// starts resolution itself for unknown neighbours — gives the Ethernet
// addresses for the inner destination; without an answer the packet is
// dropped and counted. The frame is queued on the protected socket.
//
// # Path MTU
//
// Each outbound SA's inner MTU is the largest packet whose encapsulation
// fits the wire MTU (computed at Install). A bigger inner packet goes to the
// PMTU hook: IPv4 without DF is fragmented before encryption (each fragment
// in a frame of its own from the pool, encrypted on its own, so the peer's
// card sees whole ESP packets); IPv4 with DF gets ICMP "fragmentation
// needed" and IPv6 gets Packet Too Big, built in place and sent back out of
// the protected side to the sender's MAC. crypto/pmtu's Responder implements
// the hook (rate-limited, stateless, shared by all workers).
//
// # GSO super-packets (multi-buffer)
//
// With sockets bound multi-buffer (xsk.SocketConfig.SG, the daemon's
// dataplane.multi_buffer) a packet larger than a frame arrives as a chain
// of descriptors flagged xsk.PktContd; chains may straddle RX batches and
// are held (FrameAccount.Held) until their last descriptor. On the
// protected side they are hosts' GSO super-packets, up to 64 KiB: TCP is
// cut into segments of the SA's inner MTU (software TSO, segment.go): the IP
// and TCP headers copied in front of each piece in a fresh frame from the
// pool, IPv4 total length, ID (+1 per segment) and header checksum, IPv6
// payload length, sequence numbers, FIN/PSH on the last and CWR on the
// first segment only, and a complete TCP checksum (the host left it
// CHECKSUM_PARTIAL); each segment is sealed in place and queued, the batch
// flushed to the TX ring when it fills. AF_XDP carries no gso_size: the
// segment size is the inner MTU minus the headers, which is what the
// host's own GSO would use once it knows the tunnel's path MTU (segment.go has
// the reasoning). A TCP packet longer than the protected link's MTU
// (Config.ProtectedMTU) that fits one frame is a small GSO packet and is
// segmented the same way. UDP chains (possibly UDP GSO, whose datagram
// boundaries are unknown) are dropped and counted (Stats.ChainDrops);
// other protocols take the PMTU path (IPv4 without DF fragmented from the
// chain, else the ICMP error); inbound chains are dropped. Zero
// allocations per super-packet (TestZeroAllocsChain).
//
// # SA table and key lifetime
//
// The control plane installs an Entry (the *esp.SA, its direction, the
// selectors for inbound SAs) at the SA index the card uses, and removes it.
// Remove does not wipe keys, because a worker may be using the SA it loaded
// just before: the control plane first deletes the SA from the card, then
// removes it here, then calls (*esp.SA).Wipe; a worker still holding it
// fails with esp.ErrWiped at worst.
//
// # Counters
//
// Per SA: packets, bytes (plaintext IP length) and errors by reason — the
// esp.Reason values, then the worker's own (ReasonPolicyMismatch,
// ReasonNoNeigh, ReasonTXFull, ReasonPMTU) — through SACounters, with the
// slots of the card's struct xdpsec_worker_stats. In the daemon that is the
// card's mmap'd BPF_F_MMAPABLE worker_stats map (loader.WorkerStats, the one
// view of it), so bpftool and the control plane read what the workers add
// with atomic adds; StatsTable is the Go-memory table for tests. Per worker:
// ring and drop counters by reason (Stats). The engine keeps its own per-SA
// counters too (esp.SA.Counters).
//
// # Frames
//
// Every frame a worker takes off an RX ring is either queued for TX (and
// returns to the pool from the completion ring) or put back into the pool at
// once. Run's shutdown returns unprocessed RX frames and waits up to a
// second for the kernel to complete transmissions; afterwards Frames()
// shows every frame in the pool or on a fill ring. Remove the sockets from
// the card's XSKMAPs before stopping the workers.
//
// # Cost
//
// Per packet there are no heap allocations (TestZeroAllocs); the work is the
// engine's Encap/Decap plus a few dozen nanoseconds of metadata, lookup and
// header writing (BenchmarkHandleOut/In beside BenchmarkEncapOnly). On veth
// in copy mode a worker spends ~70 % of its time in the sendto that
// transmits (which also runs the receiving side's XDP and copy), ~20 % in
// AES-GCM and ~5 % in its own bookkeeping: BENCHMARKS.md (section 6) has the
// profile, the levers measured, and internal/testbed/pair's BenchmarkTestbedTCP/PPS,
// which run both gateways of the testbed in one process so -cpuprofile sees them.
//
// # Files
//
// worker.go: Config, New, Run and Step; ring.go: the rings (completions,
// fill, one RX batch per side, the TX batches, TX slot reservation,
// shutdown); frame.go: metadata, SA lookup, Ethernet header; outbound.go and
// inbound.go: the two directions; chain.go: multi-buffer receive;
// segment.go: chains and GSO packets outbound (software TSO); table.go,
// stats.go, hooks.go. What is done to the packet's bytes — lengths, selector
// tuple, TTL, checksum completion, MSS clamping, segment headers — is in
// crypto/internal/packet.
package worker
