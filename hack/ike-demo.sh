#!/usr/bin/env bash
# Two gateways negotiating with strongSwan's charon through kernel-xdpsec and carrying traffic through
# xdpsec (hack/ike/demo; docs/strongswan.md). Root. Builds the plugin against the installed strongSwan
# (installing Debian's strongSwan and the build dependencies when missing).
#   hack/ike-demo.sh [--hold] [--duration SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "ike-demo: needs root (namespaces, XDP, AF_XDP, charon)" >&2; exit 1; }
./hack/deps.sh >/dev/null
go run ./hack/ike/demo "$@"
