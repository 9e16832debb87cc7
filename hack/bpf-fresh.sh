#!/usr/bin/env bash
# Checks that bpf/'s generated files (bpf2go's *_bpfel.go and *_bpfel.o) are what `go generate ./bpf/...`
# builds from the C sources now, with the bpf2go pinned in go.mod and this machine's clang: a C change
# committed without `make generate` fails here. It needs no git (CI's clean clone and a copied tree
# work alike) and leaves the tree as it found it.
# Usage: hack/bpf-fresh.sh [MODULE-ROOT]   (default: this script's module)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
shopt -s nullglob
generated() { printf '%s\n' bpf/*_bpfel.go bpf/*_bpfel.o bpf/*/*_bpfel.go bpf/*/*_bpfel.o | sort; }
before=$(generated)
if [ -z "$before" ]; then
  echo "bpf-fresh: no generated files under $(pwd)/bpf: nothing to compare" >&2
  exit 1
fi
saved=$(mktemp -d)
restore() {
  # Put back what was there: the check reports, it does not regenerate (make generate does).
  while read -r f; do cp -p "$saved/$f" "$f"; done <<<"$before"
  for f in $(comm -13 <(echo "$before") <(generated)); do rm -f "$f"; done
  rm -rf "$saved"
}
while read -r f; do mkdir -p "$saved/$(dirname "$f")" && cp -p "$f" "$saved/$f"; done <<<"$before"
trap restore EXIT
go generate ./bpf/...
stale=0
while read -r f; do
  if ! cmp -s "$f" "$saved/$f"; then
    echo "bpf-fresh: $f differs from what go generate builds" >&2; stale=1
  fi
done <<<"$before"
for f in $(comm -13 <(echo "$before") <(generated)); do
  echo "bpf-fresh: go generate makes $f, which is not in the tree" >&2; stale=1
done
if [ $stale -ne 0 ]; then
  echo "bpf-fresh: the generated BPF files are stale: run 'make generate' and commit them with the C change" >&2
  exit 1
fi
echo "bpf-fresh: $(echo "$before" | wc -l) generated files match their sources"
