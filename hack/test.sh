#!/usr/bin/env bash
# The whole test suite, as CI runs it (make test). Root-only tests run when this runs as root
# (CI does) and skip with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
  # The card pins its tables here; a fresh VM may not have bpffs mounted yet.
  mount -t bpf bpf /sys/fs/bpf
fi

echo "== generated BPF objects are fresh"
if ls bpf/*/gen.go bpf/gen.go >/dev/null 2>&1; then
  go generate ./bpf/...
  if ! git diff --exit-code --stat -- bpf/; then
    echo "the committed BPF objects differ from what go generate builds: run 'make generate' and commit" >&2
    exit 1
  fi
fi

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 40m ./... 2>&1 | tee /tmp/xdpsec-test.log
echo "== go test -race (engine and control plane)"
go test -count=1 -race -timeout 30m ./crypto/... ./control/... 2>&1 | tail -n 30

echo "== leftovers"
left=0
if [ -d /sys/fs/bpf/xdpsec ] && [ -n "$(ls -A /sys/fs/bpf/xdpsec 2>/dev/null)" ]; then
  echo "pins left under /sys/fs/bpf/xdpsec:" >&2; ls -R /sys/fs/bpf/xdpsec >&2; left=1
fi
if ip netns list 2>/dev/null | grep -q '^xs-'; then
  echo "test namespaces left behind:" >&2; ip netns list | grep '^xs-' >&2; left=1
fi
exit $left
