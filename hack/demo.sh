#!/usr/bin/env bash
# The offline demo (make demo): build the binary, then run the ESP engine over the shipped sample
# capture — encrypt it with an SA from the sample configuration, then decrypt the result and check
# that the packets came back byte for byte. No root, no network. (`xdpsec demo` will replace this
# with the four-namespace gateway testbed.)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/xdpsec
cfg=cmd/xdpsec/testdata/sample.yaml
sample=cmd/xdpsec/testdata/sample.pcap
[ -x "$bin" ] && [ -z "$(find cmd control crypto -name '*.go' -newer "$bin" -print -quit)" ] ||
  go build -o "$bin" ./cmd/xdpsec

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for sa in gcm-tunnel chacha-tunnel6 cbc-tunnel; do
  echo "== $sa: encrypt the sample"
  "$bin" pcap encrypt --config "$cfg" --sa "$sa" "$sample" "$work/$sa.esp.pcap"
  echo
  echo "== $sa: decrypt it again"
  "$bin" pcap decrypt --config "$cfg" --sa "$sa" "$work/$sa.esp.pcap" "$work/$sa.plain.pcap"
  if cmp -s "$sample" "$work/$sa.plain.pcap"; then
    echo "round trip: the decrypted capture equals the sample byte for byte"
  else
    echo "round trip: the decrypted capture differs from the sample" >&2
    exit 1
  fi
  echo
done

echo "== a tampered capture: one flipped bit in the third packet (expect an ICV failure, exit status 1)"
# Flip one bit inside the ciphertext of the third record. Offsets come from the pcap headers
# (pcapgo writes little-endian): a 24-byte file header, then 16-byte record headers holding the
# captured length at +8.
u32le() { od -An -t u4 --endian=little -j "$2" -N 4 "$1" | tr -d ' '; }
cp "$work/gcm-tunnel.esp.pcap" "$work/tampered.pcap"
off=24
for _ in 1 2; do off=$((off + 16 + $(u32le "$work/tampered.pcap" $((off + 8))))); done
pos=$((off + 16 + $(u32le "$work/tampered.pcap" $((off + 8))) - 30))
byte=$(od -An -t u1 -j "$pos" -N 1 "$work/tampered.pcap" | tr -d ' ')
printf "\\$(printf '%03o' $((byte ^ 0x10)))" | dd of="$work/tampered.pcap" bs=1 seek="$pos" conv=notrunc status=none
if "$bin" pcap decrypt --config "$cfg" --sa gcm-tunnel "$work/tampered.pcap" "$work/tampered.plain.pcap"; then
  echo "the tampered capture decrypted without error" >&2
  exit 1
fi
echo
echo "demo: ok"
