// Package loader is the driver side of the card (package bpf): it loads the XDP programs with capacities
// from configuration, attaches them, pins everything for bpftool and restarts, and offers the typed API
// the control plane drives — the "driver interface" of FreeBSD's ipsec_offload.
//
// # Lifecycle
//
//	c, err := loader.Load(loader.Config{Instance: "gw1", Defaults: ipsec.Defaults{}})
//	mode, err := c.Attach(loader.SideProtected, "gw1-lan", loader.XDPAuto) // xdpsec_out
//	mode, err = c.Attach(loader.SideWire, "gw1-wan", loader.XDPAuto)       // xdpsec_in
//	...
//	c.Destroy() // detach, unpin, close — or c.Close() to leave the card running for the next Load
//
// With an Instance, every map is pinned under /sys/fs/bpf/xdpsec/<instance>/<map> (names in package
// bpf's doc) and the links as link_protected and link_wire. Load on an existing instance reuses the
// pinned maps — cilium/ebpf checks each against the embedded spec and the configured capacities, and a
// mismatch is ErrIncompatiblePin — rebuilds its view of the SPD from the live tuple space, and swaps the
// new programs into the pinned links (BPF_LINK_UPDATE): traffic never stops across a restart. The
// instance directory is flock'ed while a Card holds it.
//
// Attach uses bpf_link (link.AttachXDP): native mode first, generic only when asked (XDPGeneric) or when
// the driver refuses native (XDPAuto); it returns and logs the mode obtained. Errors name the problem:
// ErrNotRoot (Load checks the effective capabilities, not the user id: CAP_BPF or CAP_SYS_ADMIN, and
// CAP_NET_ADMIN, and names the missing ones), ErrNoInterface, ErrXDPBusy (with the attached program's name and id), ErrVerifier (with
// the verifier's whole log), ErrKernelTooOld (with the missing feature), ErrNotBPFFS.
//
// # The driver API
//
//   - PutSA/DeleteSA/GetSA/SAs: the SA table, indexed by the SA index the control plane allocates
//     (capacity Config.SAs, default 65,536). An inbound SA is also keyed by (SPI, destination, ESP).
//     Put writes the table before the key; Delete removes the key before the table entry. No key
//     material: SA holds SPI, outer addresses, mode, UDP encapsulation ports, reqid, the policy served,
//     and Larval.
//   - PutPolicies/DeletePolicies/ReplaceSPD/Policies: the SPD, as ipsec.Policy values (IDs below
//     Config.Policies, default 16,384, at most 65,535). Each call is one atomic SPD change: table entries
//     first, then the idle buffer of each direction touched is brought up to date and made live by one
//     generation bump, which also invalidates that direction's flow cache. Deletion clears table
//     entries after the switch. The loader compiles each direction and family into a tuple space
//     (tss.go: tuples, buckets, a Bloom filter; see package bpf) kept up to date policy by policy, and
//     knows what each of the card's buffers holds, so only the buckets and filter words that differ
//     are written (spd_buckets in one batch, the arrays through mmap): about 12–15 µs per change at any
//     SPD size (BenchmarkPutPolicy). Batch many changes into one call when you can: each call is one
//     SPD generation.
//     Make-before-break rekey: PutSA(new), then PutPolicies(policy with SA=new) (outbound switches at
//     once), then DeleteSA(old).
//   - DumpSPD: the SPD the card is actually using, read back from its live buckets and policy table
//     (for consistency checks such as `xdpsec check`); Policies is the loader's copy.
//   - SetDefaults: the actions for packets no policy matches (bypass or discard).
//   - Reasons/ReasonCounts, SAStats, EachSAStats (the whole table in a few batch reads), PolicyStats:
//     per-CPU counters summed. Reason names follow
//     /proc/net/xfrm_stat (InNoStates, InNoPols, InPolBlock, InTmplMismatch, OutNoStates, OutPolBlock, …)
//     plus the card's own (Parse*, OutNoSocket/InNoSocket, Fib*, FragAmbiguous, …).
//   - NewAcquireReader: ACQUIRE records (policy, SA, the packet's selector tuple) from the ring buffer,
//     at most one per policy per Config.AcquireInterval.
//   - WorkerStats: the workers' per-SA counters (packets, bytes, errors by crypto/esp.Reason) in an
//     mmap'ed BPF array: workers call Add/AddError (atomic adds, no syscall), the control plane Read, and
//     bpftool map dump pinned …/worker_stats shows the same numbers.
//   - RegisterSocket/UnregisterSocket(side, queue, fd): the XSKMAPs; one AF_XDP socket per (side, rx
//     queue).
//
// # Configuration beyond capacities
//
// Config.Defaults (bypass unless discard), InNoSocketPass (inbound ESP with no worker socket goes to the
// kernel instead of being dropped), AcquireInterval (default 1 s), EncapPort (ESP-in-UDP port, default
// 4500), Frags (load multi-buffer aware: jumbo frames and GRO aggregates reach the card; the workers'
// sockets then need XDP_USE_SG).
//
// # Testing notes
//
// BPF_PROG_TEST_RUN runs in the caller's network namespace (bpf_fib_lookup included), so the tests run it
// on a thread inside a namespace they create with a fixed route and neighbour. With an AF_XDP socket
// bound on the queue a test run returns XDP_REDIRECT but delivers nothing; the veth tests bind real
// sockets (loader/xsk) and read the metadata in the UMEM frames.
//
// # Design points (shared with the worker and the control plane)
//
// The metadata contract (bpf.CardXdpsecMeta, bpf.DecodeMeta), the SPD semantics (package ipsec) and the
// counters' meaning are documented in package bpf. Counter semantics for lifetimes: sa_stats counts what
// the card handed to workers (outbound: the plaintext IP length; inbound: the ESP packet's IP length);
// worker_stats counts what the workers completed (plaintext IP length both ways). First use is
// CLOCK_MONOTONIC.
package loader
