#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian 12 machine: the BPF toolchain
# (for regenerating the committed objects), bpftool, and the tools the tests drive. A test that needs a
# tool fails when it is missing (internal/testutil.RequireTools): add the tool here, not a skip.
# Idempotent: it installs only what is missing.
set -euo pipefail
pkgs=(
  clang llvm libbpf-dev # make generate, hack/bpf-fresh.sh and its test
  bpftool               # the pinned tables as structs (loader, the demo)
  iproute2 iputils-ping ethtool iperf3 tcpdump # the testbeds, the demo, the end-to-end test's capture
  util-linux            # setpriv and nsenter: tests that drop capabilities (loader, dist)
  strace systemd make man-db # dist: the unit verified and run under its filters, make install
  bash-completion zsh fish   # cmd/xdpsec: each shell checks its completion script
  python3               # control/api: /usr/bin/python3 as another user's client
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# promtool checks and unit-tests dist/prometheus's alert rules (control/metrics' tests). Debian ships it
# only in the prometheus package, which would also install and start a Prometheus server: take the one
# binary out of the package instead (a 19 MB download, once).
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: no promtool; run as root to install it to /usr/local/bin" >&2
    exit 1
  fi
  echo "deps: installing promtool from Debian's prometheus package"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus)
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -O ./usr/bin/promtool >"$tmp/promtool"
  install -m 755 "$tmp/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
fi
# Go modules come from the module proxy.
go mod download
