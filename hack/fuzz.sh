#!/usr/bin/env bash
# make fuzz: runs every fuzz target in the tree for FUZZTIME each (default 30s; go test's -fuzztime,
# so "1000x" works too), one after another, as root where a target needs it (FuzzCard loads the card).
# New interesting inputs the fuzzer finds (it keeps them in go's cache, which make test never reads)
# are copied into the target's testdata/fuzz/<Target>/, so that plain go test replays them: commit the
# ones you want to keep. A crasher is written there by go test itself, the run fails, and make test
# replays it until it is fixed. Optional: FUZZ=regexp runs only the targets whose name matches.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
only=${FUZZ:-.}
cache=$(go env GOCACHE)/fuzz
module=$(go list -m)

# go test -list prints a package's matching names, then its "ok" line.
targets=()
names=()
while read -r line; do
  case "$line" in
    Fuzz*) names+=("$line") ;;
    "ok "*)
      pkg=$(awk '{print $2}' <<<"$line")
      for n in "${names[@]}"; do
        if [[ "$n" =~ $only ]]; then targets+=("$pkg $n"); fi
      done
      names=() ;;
  esac
done < <(go test -list '^Fuzz' ./... 2>&1)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz target matches FUZZ=$only" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, $fuzztime each"

stamp=$(mktemp)
log=$(mktemp)
trap 'rm -f "$stamp" "$log"' EXIT
failed=()
flaked=()
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  dir=${pkg#"$module"}
  dir=.${dir:-/}
  echo "== $pkg $name"
  touch "$stamp"
  corpus="$dir/testdata/fuzz/$name"
  before=$(ls "$corpus" 2>/dev/null | sort || true)
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
    crashers=$(comm -13 <(echo "$before") <(ls "$corpus" 2>/dev/null | sort || true) | grep . || true)
    if [ -z "$crashers" ] && grep -qx '    context deadline exceeded' "$log" && [ "$(grep -c -- '^--- FAIL' "$log")" -eq 1 ]; then
      # Go 1.26's fuzz coordinator can report the end of a timed run as this error, without an
      # input (golang/go#75804, fixed in Go 1.27): not a crasher.
      flaked+=("$pkg $name")
    else
      failed+=("$pkg $name ${crashers:+(crasher: $corpus/$crashers)}")
    fi
  fi
  # The inputs this run added to the cache become seed corpus entries in testdata.
  new=0
  if [ -d "$cache/$pkg/$name" ]; then
    mkdir -p "$dir/testdata/fuzz/$name"
    while IFS= read -r -d '' f; do
      dst="$dir/testdata/fuzz/$name/$(basename "$f")"
      if [ ! -e "$dst" ]; then cp "$f" "$dst"; new=$((new + 1)); fi
    done < <(find "$cache/$pkg/$name" -type f -newer "$stamp" -print0)
    rmdir --ignore-fail-on-non-empty "$dir/testdata/fuzz/$name" "$dir/testdata/fuzz" "$dir/testdata" 2>/dev/null || true
  fi
  echo "fuzz: $name: $new new corpus entries in $dir/testdata/fuzz/$name"
done
if [ ${#flaked[@]} -gt 0 ]; then
  echo "fuzz: these ended with Go 1.26's 'context deadline exceeded' at the end of -fuzztime and no input (golang/go#75804):"
  printf '  %s\n' "${flaked[@]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed (crashers are under the package's testdata/fuzz/<target>/):" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran $fuzztime each without a crasher"
