#!/usr/bin/env bash
# The whole test suite, as CI runs it (make test). Root-only tests run when this runs as root (CI
# does); as another user they skip with a reason, and under CI (CI set) they fail instead.
# hack/testsum shows go test's usual output, then lists every skip with its reason and every
# package's time, and fails the suite on a failed test or a skip that is not allowed (its doc).
# The JSON of each run stays in build/test/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
  # The card pins its tables here; a fresh VM may not have bpffs mounted yet.
  mount -t bpf bpf /sys/fs/bpf
fi

# What already exists is not ours to report: the leftover check at the end looks only at what
# appeared while the suite ran.
pins_before=$(ls -A /sys/fs/bpf/xdpsec 2>/dev/null | sort || true)
ns_before=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^xs-' | sort || true)
# The daemon's default state_dir (/var/lib/xdpsec/INSTANCE) and socket directory: a test that runs
# a gateway with the default paths must remove what it made there.
state_before=$(find /var/lib/xdpsec /run/xdpsec -mindepth 1 -maxdepth 1 2>/dev/null | sort || true)

out=build/test
rm -rf "$out"
mkdir -p "$out"
go build -o "$out/testsum" ./hack/testsum
status=0

echo "== generated BPF objects are fresh"
./hack/bpf-fresh.sh

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -json -timeout 40m ./... | "$out/testsum" stream -o "$out/main.json" || status=1

# The multi-buffer variant of the end-to-end test (XDPSEC_E2E_MULTIBUF=1 go test ./hack/e2e) is not
# run here: dataplane.multi_buffer is experimental and the variant is not reliable yet. Run 5 times on
# 2026-12-03 (issue 12): 3 passed; one failed because the IPv6 sender's path MTU stayed 1500 (no ICMPv6
# Packet Too Big reached it), one because the IPv6 SA sealed 13 % more plaintext bytes than the 16 MiB
# transfer (retransmissions). Earlier runs also stalled now and then under load.

echo "== go test -race (engine, workers, control plane, loader)"
go test -count=1 -race -json -timeout 30m ./crypto/... ./control/... ./loader/... |
  "$out/testsum" stream -o "$out/race.json" || status=1

echo "== strongSwan's kernel-xdpsec plugin: unit tests (C, against the fake daemon)"
./hack/strongswan-plugin.sh test || status=1

reports=("$out/main.json" "$out/race.json")
if [ "$(id -u)" -eq 0 ]; then
  # charon with the plugin against xdpsec in the testbed (hack/ike: two gateways, a libipsec peer,
  # MOBIKE, a 2-minute soak). One package at a time (-p 1): the tests count lost echoes.
  echo "== charon through kernel-xdpsec (hack/ike)"
  go vet -tags ike ./hack/ike/... || status=1
  XDPSEC_SOAK=2m go test -tags ike -count=1 -p 1 -json -timeout 20m \
    -run 'TestTwoGateways|TestLibipsecPeer|TestMOBIKE|TestSoak' ./hack/ike |
    "$out/testsum" stream -o "$out/ike.json" || status=1
  reports+=("$out/ike.json")
else
  echo "== skipped: the charon tests (hack/ike) need root"
fi

# Only root can leave namespaces or pins behind; as another user the check would only see what other
# users of a shared machine did meanwhile.
if [ "$(id -u)" -eq 0 ]; then
  echo "== leftovers"
  pins_new=$(comm -13 <(echo "$pins_before") <(ls -A /sys/fs/bpf/xdpsec 2>/dev/null | sort || true) | grep . || true)
  if [ -n "$pins_new" ]; then
    echo "pins left under /sys/fs/bpf/xdpsec: $pins_new" >&2; status=1
  fi
  ns_new=$(comm -13 <(echo "$ns_before") <(ip netns list 2>/dev/null | awk '{print $1}' | grep '^xs-' | sort || true) | grep . || true)
  if [ -n "$ns_new" ]; then
    echo "test namespaces left behind: $ns_new" >&2; status=1
  fi
  state_new=$(comm -13 <(echo "$state_before") <(find /var/lib/xdpsec /run/xdpsec -mindepth 1 -maxdepth 1 2>/dev/null | sort || true) | grep . || true)
  if [ -n "$state_new" ]; then
    echo "state directories or sockets left under /var/lib/xdpsec, /run/xdpsec: $state_new" >&2; status=1
  fi
fi

"$out/testsum" report "${reports[@]}" || status=1
exit $status
