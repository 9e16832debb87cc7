// Package bench is `xdpsec bench`: it measures xdpsec beside what a user would compare it with, in one
// run on one testbed, and writes what it measured with the evidence that the traffic was carried.
//
// Systems (systems.go, wggo.go): plain kernel forwarding on gw1 and gw2 (the ceiling), the bare AF_XDP
// forwarder of internal/xsfwd (xdpsec's pipe without the card's classification and without crypto),
// xdpsec per suite with the daemon's default configuration (the gateway pair of internal/testbed/pair,
// in this process), and wireguard-go when a binary is found. Every system reports what it carried
// towards h2 by its own counters, so that Report.Check can compare it with what reached h2.
//
// Workloads (workloads.go, gen.go, scaling.go, encap.go): iperf3 TCP; UDP from bench_gen (bpf/bench), an
// XDP program run by BPF_PROG_TEST_RUN with live frames on h1's veth, one thread per CPU, counted and
// dropped by bench_sink on h2's veth; an RFC 2544 binary search; timestamped probes for one-way latency
// (one clock: the namespaces share the machine); xdpsec by workers, SAs and flows; the storm (storm.go,
// stormpkt.go: bad packets of known kinds and numbers sent on the wire towards gw2 beside valid
// traffic, each to be counted by gw2 under its reason); crypto/esp's Encap against the raw AEAD Seal.
//
// A run (run.go) builds the testbed with one veth queue per CPU and GRO on (or adopts an existing
// topology, Options.Topology: testbed.Adopt checks it, and host.go restores every setting the run
// changes on it), measures every system once
// per round in a rotated order (so that none always follows the same one on a shared machine), then the
// scaling phases and the storm, and writes bench.json (Report), bench.md (summary.go: the tables and the
// issue's goals, every ratio within the run) and SVG plots (plots.go). Progress goes to a terminal as one
// bar per phase (mpb) or as one line per measurement. All traffic stays in the testbed's namespaces, and
// every load is bounded in time. Names and addresses come only from the testbed's Topology (Env.Topo),
// never from package testbed's constants, so that both kinds of testbed take one code path.
package bench
