#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian 12 machine: the BPF toolchain
# (for regenerating the committed objects), bpftool, and the traffic tools the end-to-end tests drive.
# Idempotent: it installs only what is missing.
set -euo pipefail
pkgs=(clang llvm libbpf-dev bpftool iperf3 tcpdump iproute2 iputils-ping ethtool bash-completion)
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
# Go modules come from the module proxy.
go mod download
