// Package testbed builds the four-namespace topology that `xdpsec demo`, the end-to-end test
// (hack/e2e) and hack/bench.sh run on. The demo ships in the binary, so this is product code, kept
// internal; it imports nothing of the control plane (package pair, which starts the gateways, does),
// so tests below control/ may use it too:
//
//	h1 ──veth── gw1 ══veth══ gw2 ──veth── h2
//	   lan link      wire link      lan link
//
// Each node is a network namespace named <prefix>-<role>, where the prefix starts with "xs-" and
// carries a random suffix, so that several tests can build testbeds on one machine at once. The
// interfaces inside the namespaces have fixed names (h1-eth0, gw1-lan, gw1-wan, gw2-wan, gw2-lan,
// h2-eth0): they are created directly inside their namespaces, so they never collide on the host.
//
// Addresses come only from the benchmarking ranges 198.18.0.0/15 and 2001:2::/48:
//
//	h1  lan  198.18.1.10/24  2001:2:0:1::10/64   default via gw1
//	gw1 lan  198.18.1.1/24   2001:2:0:1::1/64
//	gw1 wan  198.18.0.1/24   2001:2::1/64        198.18.2.0/24, 2001:2:0:2::/64 via gw2
//	gw2 wan  198.18.0.2/24   2001:2::2/64        198.18.1.0/24, 2001:2:0:1::/64 via gw1
//	gw2 lan  198.18.2.1/24   2001:2:0:2::1/64
//	h2  lan  198.18.2.10/24  2001:2:0:2::10/64   default via gw2
//
// The gateways forward in the kernel, so before any XDP program is attached the testbed is a plain
// routed path; that is the baseline the data path's figures are compared with. Every MTU is 1500
// and no MSS clamping is configured, so TCP through a tunnel has to rely on path MTU discovery.
//
// IPv6 duplicate address detection is off in every namespace (link-local addresses included), so
// neighbour discovery works from the first packet.
//
// Options.WireTap puts a fifth namespace "sw" with a bridge in the middle of the wire link: a
// gateway's AF_XDP transmissions skip its own interface's packet taps and the peer's XDP program
// takes packets before its taps, so capturing (and injecting) ESP needs a hop in between.
//
// GatewayConfigs writes matching xdpsec configurations for gw1 and gw2 (tunnel-mode SA pairs,
// AES-GCM or ChaCha20-Poly1305, fresh keys, instances named after the testbed); package pair
// starts both gateways in-process; HostChecksumOffloadOff prepares h1 and h2 for them (see its
// documentation). Command hack/xsbench (hack/bench.sh) measures on all of it.
//
// New tears down whatever it created when any step fails; Close is idempotent; Sweep removes
// leftovers of an earlier run that died before it could clean up.
//
// Topology (topology.go) is the path as values: each node's namespace and the six interfaces with
// their addresses. New fills it with the fixed names and addresses above (the constants stay for
// the tests written against them); Adopt takes a topology someone else built (TopologyFromNames:
// `xdpsec bench --netns/--dev`), reads the addresses from its interfaces, checks that the gateways
// forward and that h1 and h2 route to each other through them, and returns a Testbed whose Close
// removes only what the testbed created itself. Code that should run on either takes names and
// addresses from Testbed.Topology.
package testbed
