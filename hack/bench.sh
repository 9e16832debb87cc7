#!/usr/bin/env bash
# The data path's first figures (make bench), on the four-namespace testbed h1 — gw1 — gw2 — h2:
#   - TCP throughput h1 → h2 with iperf3, 1 and 4 streams: plain kernel forwarding (with default
#     offloads, and with the hosts' transmit checksum offload off as the tunnel needs), then
#     through xdpsec's IPv4 and IPv6 tunnels (AES-GCM-128);
#   - 64-byte UDP packets per second through the IPv4 tunnel, offered by a BPF_PROG_TEST_RUN
#     live-frames generator on h1 (iperf3 tops out near 0.3 Mpps on this machine).
# Needs root. Arguments go to hack/xsbench: -t SECONDS per iperf3 run (default 5),
# -runs N per figure (default 3, median reported), -only plain,tunnel,pps, -busy-poll,
# -umem-frames N.
# Results: a Markdown table on stdout (BENCHMARKS.md, section 5, records them).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root (network namespaces, XDP, AF_XDP)" >&2
  exit 1
fi
if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi
go build -o bin/xsbench ./hack/xsbench
# xsbench removes its namespaces itself, also on Ctrl-C (SIGINT/SIGTERM).
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs"
bin/xsbench "$@"
