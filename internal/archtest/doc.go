// Package archtest holds the test that keeps imports pointing down the layers ARCHITECTURE.md draws:
//
//	cmd/        the binary
//	control/    the control plane (the "kernel side")
//	loader/, crypto/, bpf/   the card and its workers
//	ipsec/      the vocabulary: the standard library only
//
// hack/ (scripts, the end-to-end test, benchmarks) may import anything; internal/testbed builds the
// demo's namespaces and imports nothing above the card, internal/testbed/pair starts gateways (the
// daemon) for the demo and the tests. TestLogKeys holds the tree's log calls to one attribute key
// per concept (docs/operations.md, "Logging"). There is no non-test code here.
package archtest
