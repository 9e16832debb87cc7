// Package bpf is the card: the XDP programs that play an inline IPsec NIC, their maps, and the Go bindings
// bpf2go generates from the C definitions (xdpsec.h holds every type shared with Go; card_bpfel.go and
// card_bpfel.o are generated and committed; `go generate ./bpf/...` rebuilds them with Debian's clang).
//
// # Programs
//
// One collection, two XDP programs sharing all maps:
//
//   - xdpsec_out, attached to the PROTECTED-side interface, classifies every IP packet against the
//     outbound SPD. BYPASS → XDP_PASS; DISCARD → XDP_DROP (OutPolBlock); PROTECT → the policy's SA from
//     sa_table; an absent or invalid SA → XDP_DROP (OutNoStates) plus an ACQUIRE record in acquire_ring,
//     at most one per policy per acquire interval; a usable SA → bpf_fib_lookup on the SA's outer
//     destination, metadata, and bpf_redirect_map into xsks_out[rx queue]. No matching policy → the
//     configured default (bypass unless set to discard; OutNoPols). Protected plaintext never reaches
//     the kernel: an unresolved neighbour (BPF_FIB_LKUP_RET_NO_NEIGH) still goes to the worker with
//     MetaNoNeigh set; any other FIB failure or a missing worker socket drops. bpf_fib_lookup checks that
//     forwarding is enabled on the ingress (protected) interface, as for any router; if it is not, the
//     packets are dropped and counted as FibFwdDisabled.
//   - xdpsec_in, attached to the WIRE-side interface: ESP (IP protocol 50) and ESP-in-UDP (UDP to port
//     4500 of one of the gateway's own addresses, local_addrs, RFC 3948) are looked up by (SPI,
//     destination, 50) in sa_in_lookup. UDP/4500 to a gateway address whose first word is zero (IKE's
//     non-ESP marker) or a one-byte 0xff payload (a NAT-keepalive) goes to the gateway's stack (InIKE);
//     UDP/4500 to any other address is plain UDP. Not found → counted (InNoStates) and classified by
//     the inbound SPD like any packet (a forged SPI must not carry anything past an inbound PROTECT
//     policy; a BYPASS policy for ESP lets SAs the card does not hold reach the kernel, as FreeBSD's
//     ipsec_accel falls back); found in guard state → drop (InGuard); found but not valid → drop
//     (InStateInvalid); encapsulation not the SA's → drop (InStateMismatch); otherwise metadata and
//     bpf_redirect_map into xsks_in[rx queue]. Fragmented ESP to a gateway address is passed to its stack
//     (InESPFragment) — workers see whole packets only; to another host it is classified. Plaintext is
//     checked against the inbound SPD: PROTECT → drop (InTmplMismatch, RFC 4301 §5.2), DISCARD → drop
//     (InPolBlock), BYPASS → pass, no match → the configured default (InNoPols when discard).
//
// Guard state (card_config.guard; docs/security.md, "Failing closed"): set while no worker serves the
// card — a daemon starting or reconciling, or stopped with on_exit: guard — it drops PROTECT traffic
// (OutGuard, no ACQUIRE) and ESP of the SAs the card holds (InGuard); BYPASS, DISCARD and the default
// verdicts work as always.
//
// When no AF_XDP socket is bound on the packet's queue (the XSKMAP lookup fails) the card counts
// OutNoSocket/InNoSocket; outbound it always drops, inbound it applies the configured verdict (drop by
// default, or pass to the kernel).
//
// # Metadata
//
// struct xdpsec_meta (CardXdpsecMeta, MetaSize = 32 bytes, the kernel's maximum) sits right in front of the
// packet (bpf_xdp_adjust_meta), in host byte order: magic 0x5853 and version 1 (check both: DecodeMeta),
// direction, SA index, policy ID, L3 and L4 offsets and protocol, flags (IPv6, UDP encapsulation, VLAN,
// no neighbour, outer IPv6), and for outbound the FIB result: egress ifindex, source and destination MAC.
// AF_XDP copies the metadata area into the UMEM frame in copy mode too: it is the MetaSize bytes before
// the RX descriptor's address.
//
// # Parsing
//
// Ethernet; up to two 802.1Q/802.1ad tags (a third is ParseVLANDepth); IPv4 with options (IHL, total
// length and version checked); IPv6 with up to 8 extension headers (hop-by-hop, routing, destination
// options, fragment; AH and ESP are upper-layer protocols, as selectors name them), the L4 header within
// the first 1024 bytes; ports of TCP, UDP, SCTP, UDP-Lite and DCCP (4 bytes needed), ICMP/ICMPv6 type
// and code (2 bytes needed), ESP SPI and sequence number (8 bytes), always within both the frame and the
// IP length (Ethernet padding is never read as a header). A non-first IPv6 fragment's protocol is its
// fragment header's Next Header; nothing after it is walked. Every truncation or inconsistency
// ends in XDP_DROP with a Parse* reason; non-IP frames (ARP, …) pass (NonIP). Headers are read from the
// linear part of the frame; IP lengths are checked against the whole frame (bpf_xdp_get_buff_len), so
// the programs also work loaded multi-buffer aware (loader.Config.Frags, BPF_F_XDP_HAS_FRAGS) for jumbo
// frames and GRO aggregates.
//
// # SPD lookup
//
// Semantics are package ipsec's (the Go reference classifier; an equivalence test compares the two): SPD order is
// (priority ascending, policy ID ascending), the first match wins, a selector matches one family, ports
// apply to port-carrying protocols and to ICMP type/code. Non-first fragments have OPAQUE ports (RFC 4301
// §7): the first policy matching their addresses and protocol decides; if it constrains ports the fragment
// is ambiguous and dropped (FragAmbiguous), so a fragment never takes a path its first fragment would not.
//
// Structure: an LRU flow cache (flow_cache, keyed by direction, family, addresses, protocol, ports and the
// non-first-fragment bit) in front of a tuple-space search. A cache entry holds the outcome, the policy ID
// and the SPD generation it was computed under; the action and SA are read from policy_table on every
// packet, so a rekey (a policy's SA changing) takes effect at once without invalidating the cache. An
// established flow costs one hash lookup and two array lookups whatever the SPD's size.
//
// A first packet (or any packet after an SPD change) searches the tuple space of its direction and family
// (xdpsec.h). The loader groups policies into tuples by what their selectors fix: source and destination
// prefix lengths, the protocol or any, each port (or ICMP type, code) exact or not; port ranges are not
// hashed. Each tuple's policies are hashed by those fields, masked, into buckets (spd_buckets); a bucket
// holds the tuple's policies with exactly those fields, in SPD order: the first inline, the others in a
// chain of spd_chain (8-rule blocks). The card probes each tuple once (bpf_loop: build the masked key,
// test its bit in the list's one-hash Bloom filter spd_filter, and only if set look the bucket up) and
// checks the bucket's rules in full (ranges; prefixes longer than the tuple's) until one matches; the best
// match over the tuples wins. Tuples come sorted by their best policy, so the search stops at the first
// tuple whose best cannot beat the match in hand. Non-first fragments probe a tuple that hashes ports
// through its fragment entries (frag = 1: the tuple's policies by addresses and protocol only), and the
// winner decides as in the reference: ambiguous if it constrains ports. A list holds at most
// XDPSEC_MAX_TUPLES (64) tuples: with more shapes than that, the loader merges shapes into coarser tuples
// (a deterministic greedy merge that gives up the fewest prefix bits), which lengthens buckets but keeps
// the probes bounded; one tuple of everything would be the old linear scan.
//
// Cost (BENCHMARKS.md, section 2): independent of the SPD's size except through long buckets. A first
// packet measured the benchmark's way (caches cold after the syscalls between runs) costs 0.65–1 µs at
// 1,024 to 65,535 policies (bypass), 1.4–1.9 µs when all 64 tuples must be probed; warm (a flood of new
// flows) ≈ 0.17 µs and ≈ 0.75 µs. A probe costs ≈ 10 ns warm when the filter answers, ≈ 25 ns (≈ 45 ns
// cold) when the bucket is looked up; a bucket's rules beyond the first ≈ 1.8 ns each (the old linear
// scan's cost per rule). The weak spot is many port ranges on one selector: one bucket, walked linearly.
//
// Each (direction, family) has two buffers: two tuple lists in spd_tuples, and the keys of its buckets
// carry the buffer; spd_chain and spd_filter have a region per buffer. spd_state[dir].gen says which is
// live (gen & 1). The loader writes the idle buffer (only the buckets and filter words that changed since
// it last wrote that buffer; the arrays through mmap), then bumps gen; the card reads gen before and
// after a lookup (the closing read is atomic) and looks up once more if it moved — a sequence lock — so a
// half-written SPD is never used, and entries cached under an older generation are ignored. Two changes
// during two lookups in a row drop the packet (SPDBusy), which policy updates at human rates never cause.
//
// # Tables and counters (pinned under /sys/fs/bpf/xdpsec/<instance>/)
//
//	sa_table      array, SA index → struct xdpsec_sa (SPI, outer addresses, mode, encap ports, flags, policy; no keys)
//	sa_in_lookup  hash, struct xdpsec_sa_key (SPI, dst, family, proto) → SA index
//	policy_table  array, policy ID → struct xdpsec_policy (action, SA, priority, dir)
//	spd_tuples    array, the tuple lists per (direction, buffer, family); spd_state: generation per direction
//	spd_buckets   hash, struct xdpsec_bucket_key (masked fields, tuple, list) → rule count, first rule, chain
//	spd_chain     array of 8-rule blocks: the further rules of buckets, a region per (dir, buffer)
//	spd_filter    array of 64-bit words: per list, a one-hash Bloom filter of its bucket keys
//	card_config   defaults per direction, no-socket verdict, ACQUIRE interval
//	flow_cache    LRU hash of classified flows
//	sa_stats      per-CPU array per SA: packets, bytes, first and last use (CLOCK_MONOTONIC ns)
//	policy_stats  per-CPU array per policy: packets, bytes, last match (CLOCK_MONOTONIC ns)
//	reasons       per-CPU array per enum xdpsec_reason
//	worker_stats  mmap-able array per SA, written by the workers: packets, bytes, errors by crypto/esp.Reason
//	acquire_ring  ring buffer of struct xdpsec_acquire; acquire_last: rate limit per policy
//	xsks_out, xsks_in  XSKMAPs keyed by rx queue, one per side
//
// Key material never enters any of them.
//
// # Inspecting with bpftool
//
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/sa_table       # SAs (non-zero entries are installed)
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/sa_in_lookup   # inbound (SPI, dst) → SA index
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/policy_table   # action, SA, priority per policy ID
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/spd_state      # generation (low bit: live buffer)
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/reasons        # global counters per CPU (enum order)
//	bpftool map lookup pinned /sys/fs/bpf/xdpsec/<instance>/sa_stats key 5 0 0 0   # SA 5, per CPU
//	bpftool map lookup pinned /sys/fs/bpf/xdpsec/<instance>/worker_stats key 5 0 0 0
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/flow_cache     # classified flows
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/policy_stats   # hits per policy, per CPU
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/spd_tuples     # tuples per (dir, buffer, family)
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/spd_buckets    # buckets: masked fields → first rule
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/spd_chain      # further rules of long buckets
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/spd_filter     # per list, bits of keys present
//	bpftool map dump pinned /sys/fs/bpf/xdpsec/<instance>/card_config    # default actions, no-socket verdict
//	bpftool link show; bpftool net show                                  # what is attached where
//
// Arrays dump every slot (zeros included); bpftool prints each value as a struct with field names (BTF).
// Addresses and SPIs are stored in network byte order, so bpftool shows them as the decimal value of
// those bytes read little-endian (198.18.0.1 as 16782022); `xdpsec sa list` prints them readably.
// loader's TestPinsReopenAndDestroy runs each of these dumps and checks the field names.
package bpf
