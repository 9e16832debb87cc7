// Package daemon assembles a running gateway from a configuration: what `xdpsec run` does, and
// what the end-to-end test and `xdpsec demo` start in-process inside the testbed's namespaces.
//
// # Start, in order
//
//  1. Inspect both interfaces (index, addresses, wire MTU) and count the receive queues in use
//     (ETHTOOL_GCHANNELS; a veth allocates a queue per CPU but uses one). Open the durable sequence
//     state in the configuration's state_dir (control/seqstate: checked, locked, loaded) and start
//     its background step (reservation renewals, inbound high-water marks): a state directory that
//     is unsafe, damaged or held by another daemon stops the start here, before anything is loaded.
//  2. Load the card (loader.Load) with the configuration's capacities, pinned under
//     /sys/fs/bpf/xdpsec/<instance>/. The workers' per-SA counters are the card's mmap-able
//     worker_stats map, through loader.WorkerStats (mapped by the loader), so bpftool and the
//     control plane read what workers add.
//  3. Start the neighbour cache (loader/neigh), learning the hosts of the protected side that
//     already spoke to the gateway (so a first decrypted packet to them is not dropped for want
//     of a next hop), and the ICMP responder (crypto/pmtu), whose replies come from the
//     protected interface's first IPv4 and global IPv6 address.
//  4. Per queue, open one AF_XDP socket on each interface, all on one UMEM (the first socket
//     registers it, the others share it with XDP_SHARED_UMEM), register them in the card's
//     XSKMAPs, and make one crypto worker. Ring sizes follow the worker's share of the frames
//     (fill + TX of both sockets ≤ its pool), so RX can never starve TX.
//  5. Attach the card to both interfaces (native XDP, falling back to generic where the
//     configuration says auto) — after the sockets, so the first packet already finds a worker —
//     and start the workers.
//  6. Start the control plane (control/manager) on an offload driver that joins the card's
//     tables, the workers' SA table and the sequence state: every SA is put in the workers' table
//     (keys) before the card may name it, and taken out of the card before its keys are wiped; an
//     outbound SA only once its first sequence reservation is on disk (with the IV mask and the
//     numbers of its earlier lives), an inbound SA with its persisted replay high-water mark. The
//     driver also answers the manager's questions about keys (retired ones are refused) and about
//     updates in place (esp.Continue). Wait until the card
//     holds the configuration, then ask the neighbour cache for every tunnel peer, so that the
//     card's FIB lookups find their neighbours from the first packet on.
//  7. With Options.LeastPrivilege (xdpsec run), drop every capability but RunningCapabilities
//     (CAP_NET_ADMIN, for next-hop resolution) from every thread's permitted, effective,
//     inheritable, ambient and bounding sets, set no_new_privs, and check each thread in
//     /proc/self/task (privileges.go; docs/security.md says how the kept set was found). Nothing a
//     running gateway does creates a map, loads a program or opens a socket: those are all above.
//
// With dataplane.multi_buffer the card is loaded frags-aware (loader.Config.Frags) and the sockets
// bound with XDP_USE_SG, so packets larger than a frame reach the workers as descriptor chains,
// and the workers segment TCP super-packets (crypto/worker, segment.go). On a veth the protected side
// should then also be attached in generic mode (dataplane.protected_xdp_mode: generic): a native
// XDP program on a veth — frags-aware or not — makes the kernel turn TSO off on the veth's peer
// (veth_fix_features), so the host sends MTU-sized packets anyway; a generic-mode program leaves
// the peer's TSO on (TestMultiBufferKeepsTSO checks it with ethtool -k). Generic mode without
// multi_buffer is a trap on a veth: the host's TSO stays on, and GSO packets larger than a frame
// cannot be delivered to a socket without SG (Start warns).
//
// The card is loaded in guard state and the guard lifted only once the workers run and the card
// holds the configuration. A card an earlier run left pinned (stopped with on_exit: guard, or
// killed) is adopted: the same links get the new programs (no detach), and the driver and the
// offload engine start from what the card holds (driver.adopt, offload's Dump at start), so its
// stale SAs and policies are removed under the guard. localaddrs.go keeps the card's set of the
// gateway's own addresses (where ESP-in-UDP and IKE end) from netlink address events.
//
// It logs what it attached and in which XDP and AF_XDP mode. Close, with on_exit: guard (the
// default), sets the guard first and leaves the card attached and pinned; with on_exit: detach it
// detaches first. Then, in reverse: control plane, stop the workers, close the sequence state (the
// last inbound high-water marks persisted, the directory unlocked), wipe keys, close sockets and
// UMEM, and (detach) unpin. Start undoes what it did on any failure: a card it created is detached
// and unpinned, one it adopted is left pinned and guarded.
//
// # Namespaces
//
// Options.NetNS runs the gateway on interfaces inside a network namespace while this process
// stays where it is: the steps that resolve interface names or create sockets run on an OS
// thread that entered the namespace, and the sockets, links and netlink handles keep it. The
// BPF pins and the API socket live in the process's mount namespace, so bpftool on the host
// sees the tables (`ip netns exec` would mount a fresh /sys and hide /sys/fs/bpf).
//
// # Traffic from the gateway host itself
//
// The card sees only what arrives on its protected interface, so the gateway host's own traffic
// reaches it the way any host's does: through a veth pair whose far end is the card's protected
// side. The card's two interfaces go into a namespace of their own, the host's end stays with
// the host's stack (if both ends shared a namespace, the kernel would deliver the host's packets
// to its own address locally, and decrypted replies to the host would route to lo):
//
//	ip netns add gw
//	ip link set eth0 netns gw                          # the wire NIC
//	ip link add host0 type veth peer name gw-lan netns gw
//	ip -n gw addr add 198.18.1.1/24 dev gw-lan         # the gateway's protected-side address
//	ip -n gw link set gw-lan up                        # (+ eth0's address and routes in gw)
//	ip addr add 198.18.1.2/24 dev host0
//	ip link set host0 up
//	ip route add 198.18.2.0/24 via 198.18.1.1          # the host's traffic to the far side
//	xdpsec run --netns gw --config gw.yaml             # interfaces {protected: gw-lan, wire: eth0}
//
// with policies whose selectors cover 198.18.1.2 (or transport-mode SAs whose ends are the host's
// and the peer's addresses). The host's end may keep its offloads: its stack leaves the TCP/UDP
// checksum of what it sends through a veth to "the hardware" (CHECKSUM_PARTIAL), and the worker
// completes such checksums before sealing (crypto/worker, Config.NoChecksumCompletion; without
// completion the host's end needs `ethtool -K host0 tx off`). Traffic that policies let bypass
// the tunnel is the kernel's in gw: turn forwarding on there (sysctl net.ipv4.ip_forward=1)
// and give gw the routes it needs. The testbed is this set-up, with h1 as the host (h1-eth0 = host0,
// gw1 = gw): TestHostOwnTrafficThroughVeth sends TCP from h1 with its offloads on through the
// tunnel, and TestTransportModeKeepsTTL runs transport-mode SAs between h1 and h2.
package daemon
