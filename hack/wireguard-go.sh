#!/usr/bin/env bash
# Builds wireguard-go (the userspace WireGuard, golang.zx2c4.com/wireguard) from the Go module proxy
# into build/wireguard-go, where `xdpsec bench` looks for it. Not committed: build/ is ignored.
# Usage: hack/wireguard-go.sh [VERSION]   (default: the proxy's latest)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-latest}
mkdir -p build
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" CGO_ENABLED=0 go install "golang.zx2c4.com/wireguard@$version"
mv "$tmp/wireguard" build/wireguard-go
build/wireguard-go --version
