// Package bench holds the XDP programs of the load-test harness (internal/bench, `xdpsec bench`): a
// traffic generator run through BPF_PROG_TEST_RUN with live frames, a counting sink for the receiving
// host, and the bare AF_XDP forwarder's redirect program. None of them is part of the card.
package bench

// Regenerate with `go generate ./bpf/...` (make generate); the output is committed and checked by
// hack/bpf-fresh.sh like the card's.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I/usr/include/x86_64-linux-gnu" -target bpfel -type sink_count Bench bench.c
