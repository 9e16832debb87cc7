#!/usr/bin/env bash
# Two real charons negotiate through kernel-xdpsec, each against a fake xdpsec daemon
# (ike/strongswan/tests/fake_xdpsecd.py, the API of docs/ike-api.md without a data plane), in two network
# namespaces joined by a veth pair. It shows that charon loads the plugin and uses its kernel-ipsec instead
# of kernel-netlink's, and checks what charon makes of the API:
#   - at start: bypass policies for the IKE sockets, trap policies of start_action=trap;
#   - IKE_AUTH: two SAs on each side with crossing SPIs, in/fwd/out policies;
#   - a rekey (swanctl --rekey), a soft expiry raised by the daemon, an acquire raised by the daemon:
#     new SAs, the old ones gone;
#   - one daemon killed and started again (empty, a new epoch): charon's policies installed again and
#     its CHILD_SAs rekeyed into it;
#   - swanctl --terminate and stopping charon: nothing of charon's left in the daemons.
# The API calls each daemon received are kept in build/strongswan/charon-test/ (the order charon makes them).
#
#   hack/strongswan-charon-test.sh [--keep]     as root; --keep leaves the namespaces and logs for a look
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
keep=0
[ "${1:-}" = --keep ] && keep=1
[ "$(id -u)" -eq 0 ] || { echo "strongswan-charon-test: needs root (network namespaces, mounts)" >&2; exit 1; }

out=$root/build/strongswan/charon-test
tmp=$(mktemp -d /tmp/xs-charon.XXXXXX)
id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
pids=()
declare -A fakepid charonpid

log() { echo "charon-test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $keep = 1 ]; then
    log "kept $tmp and namespaces xs-$id-a, xs-$id-b"
  else
    ip netns del "xs-$id-a" 2>/dev/null || true
    ip netns del "xs-$id-b" 2>/dev/null || true
    rm -rf "$tmp"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

DESTDIR=$tmp/root ./hack/strongswan-plugin.sh install
# charon looks for plugins only in /usr/lib/ipsec/plugins: Debian's plus ours, bind-mounted there in
# charon's own mount namespace, so that nothing is installed on this machine
mkdir -p "$tmp/plugins"
cp -a /usr/lib/ipsec/plugins/. "$tmp/plugins/"
cp "$tmp/root/usr/lib/ipsec/plugins/libstrongswan-kernel-xdpsec.so" "$tmp/plugins/"

ip netns add "xs-$id-a"
ip netns add "xs-$id-b"
ip link add "xs-$id-a" type veth peer name "xs-$id-b"
ip link set "xs-$id-a" netns "xs-$id-a"
ip link set "xs-$id-b" netns "xs-$id-b"
ip -n "xs-$id-a" addr add 198.19.0.1/24 dev "xs-$id-a"
ip -n "xs-$id-b" addr add 198.19.0.2/24 dev "xs-$id-b"
for s in a b; do
  ip -n "xs-$id-$s" link set lo up
  ip -n "xs-$id-$s" link set "xs-$id-$s" up
done

python=/usr/bin/python3
[ -x $python ] || python=python3

start_fake() {
  $python ike/strongswan/tests/fake_xdpsecd.py --socket "$tmp/$1/xdpsec.sock" --keepalive 5 2>>"$tmp/$1/fake.log" &
  fakepid[$1]=$!
  pids+=($!)
}

start_side() {
  local s=$1 me=$2 peer=$3 lnet=$4 rnet=$5 lweb=$6 rweb=$7 dir=$tmp/$1
  mkdir -p "$dir"
  start_fake $s
  cat >"$dir/strongswan.conf" <<EOF
charon {
  load_modular = yes
  plugins {
    include /etc/strongswan.d/charon/*.conf
    include $tmp/root/etc/strongswan.d/charon/kernel-xdpsec.conf
    kernel-xdpsec {
      socket = $dir/xdpsec.sock
    }
    vici {
      socket = unix://$dir/charon.vici
    }
  }
  filelog {
    log {
      path = $dir/charon.log
      time_format = %T
      default = 1
      knl = 2
      lib = 2
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
EOF
  cat >"$dir/swanctl.conf" <<EOF
connections {
  gw {
    local_addrs = $me
    remote_addrs = $peer
    proposals = aes128-sha256-x25519
    local {
      auth = psk
      id = gw-$s
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = $lnet
        remote_ts = $rnet
        esp_proposals = aes128gcm16
      }
      web {
        local_ts = $lnet[$lweb]
        remote_ts = $rnet[$rweb]
        esp_proposals = aes256gcm16
        start_action = trap
      }
    }
  }
}
secrets {
  ike-gw {
    id-a = gw-a
    id-b = gw-b
    secret = 0x6b65726e656c2d78647073656320746573742070736b
  }
}
EOF
  # /run is a tmpfs of its own: charon's pid file does not meet the other charon's
  ip netns exec "xs-$id-$s" unshare -m --propagation private sh -c \
    "mount -t tmpfs none /run && mount --bind '$tmp/plugins' /usr/lib/ipsec/plugins && \
     STRONGSWAN_CONF='$dir/strongswan.conf' exec /usr/lib/ipsec/charon" >"$dir/charon.out" 2>&1 &
  charonpid[$s]=$!
  pids+=($!)
}

api() { # side method path [body]
  if [ $# -ge 4 ]; then
    curl -s --unix-socket "$tmp/$1/xdpsec.sock" -X "$2" -d "$4" "http://xdpsec$3"
  else
    curl -s --unix-socket "$tmp/$1/xdpsec.sock" -X "$2" "http://xdpsec$3"
  fi
}
state() { api "$1" GET /_fake/state; }
# (swanctl's own plugin loading complains about Debian's optional plugins on stderr)
swanctl_() { local s=$1; shift; swanctl "$@" --uri "unix://$tmp/$s/charon.vici" 2>>"$tmp/swanctl.err"; }
# jq is not needed: python reads the state
q() { # side python-expression over st (the daemon's state)
  state "$1" | $python -c "import json,sys; st=json.load(sys.stdin); print($2)"
}
wait_for() { # description seconds command...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
    sleep 0.2
  done
}
is() { [ "$(eval "$1")" = "$2" ]; }

command -v curl >/dev/null || fail "curl is needed"
# "web": a's clients reach b's web servers
start_side a 198.19.0.1 198.19.0.2 198.18.1.0/24 198.18.2.0/24 tcp tcp/80
start_side b 198.19.0.2 198.19.0.1 198.18.2.0/24 198.18.1.0/24 tcp/80 tcp
for s in a b; do
  wait_for "charon $s's vici socket" 30 test -S "$tmp/$s/charon.vici"
  wait_for "charon $s to load its config" 20 swanctl_ $s --load-all --file "$tmp/$s/swanctl.conf"
done

# 1. charon loaded the plugin and took its kernel-ipsec
for s in a b; do
  grep -q "loaded plugins: .* kernel-xdpsec" "$tmp/$s/charon.log" || fail "charon $s did not load kernel-xdpsec"
  grep -q "feature CUSTOM:kernel-ipsec in plugin 'kernel-netlink' failed to load" "$tmp/$s/charon.log" ||
    fail "charon $s: kernel-netlink's kernel-ipsec was not refused"
  swanctl_ $s --stats | grep -q "kernel-xdpsec" || fail "swanctl --stats on $s does not list kernel-xdpsec"
done
log "both charons loaded kernel-xdpsec; kernel-netlink's kernel-ipsec did not register"
swanctl_ a --stats | grep -A1 'loaded plugins' | head -2 >"$tmp/a/stats.txt"

# 2. at start: the IKE sockets' bypass policies (UDP 500 and 4500, IPv4 and IPv6, in and out) and the
#    trap policies of "web" (in, fwd, out)
bypasses='sum(1 for p in st["policies"] if p["priority"] == 1 and p["action"] == "bypass")'
traps='sum(1 for p in st["policies"] if p["action"] == "protect")'
for s in a b; do
  wait_for "bypass policies on $s" 20 is "q $s '$bypasses'" 8
  wait_for "trap policies on $s" 20 is "q $s '$traps'" 3
done
log "start: 8 IKE bypass policies and 3 trap policies on each side"

# 3. IKE_AUTH: both sides' SAs with crossing SPIs, and the CHILD_SA's policies
swanctl_ a --initiate --child net >"$tmp/a/initiate.out" 2>&1 || { cat "$tmp/a/initiate.out"; fail "initiate"; }
spis() { q "$1" "' '.join(sorted('%s:%08x' % (sa['dir'], sa['spi']) for sa in st['sas']))"; }
for s in a b; do wait_for "2 SAs on $s" 20 is "q $s 'len(st[\"sas\"])'" 2; done
a_in=$(q a "[sa['spi'] for sa in st['sas'] if sa['dir'] == 'in'][0]")
a_out=$(q a "[sa['spi'] for sa in st['sas'] if sa['dir'] == 'out'][0]")
b_in=$(q b "[sa['spi'] for sa in st['sas'] if sa['dir'] == 'in'][0]")
b_out=$(q b "[sa['spi'] for sa in st['sas'] if sa['dir'] == 'out'][0]")
[ "$a_in" = "$b_out" ] && [ "$a_out" = "$b_in" ] || fail "SPIs do not cross: a $(spis a), b $(spis b)"
[ "$(q a "len([p for p in st['policies'] if p['action'] == 'protect'])")" = 6 ] || fail "a: want 6 protect policies"
swanctl_ a --list-sas >"$tmp/a/list-sas.txt"
grep -q "INSTALLED, TUNNEL" "$tmp/a/list-sas.txt" || fail "swanctl --list-sas shows no installed CHILD_SA"
grep -qi "$(printf '%08x' "$a_in")" "$tmp/a/list-sas.txt" || fail "swanctl --list-sas does not show xdpsec's SPI"
log "IKE_AUTH: SPIs a in/out $(printf '%08x/%08x' "$a_in" "$a_out") = b out/in; in, fwd, out policies"

# 4. a rekey: new SAs on both sides, the old ones gone
swanctl_ a --rekey --child net >/dev/null
for s in a b; do
  wait_for "the rekeyed SAs on $s" 20 is "q $s 'len(st[\"sas\"]) == 2 and $a_in not in [sa[\"spi\"] for sa in st[\"sas\"]] and $a_out not in [sa[\"spi\"] for sa in st[\"sas\"]]'" True
done
[ "$(q a "len([p for p in st['policies'] if p['action'] == 'protect'])")" = 6 ] || fail "a: want 6 protect policies after the rekey"
log "rekey: new SPIs $(spis a) on a, old ones deleted on both sides"

# 5. the daemon raises a soft expiry of a's inbound SA: charon rekeys
old_in=$(q a "[sa['spi'] for sa in st['sas'] if sa['dir'] == 'in'][0]")
api a POST /_fake/event "{\"type\":\"sa-soft-expired\",\"owner\":\"ike\",\"spi\":$old_in,\"dst\":\"198.19.0.1\",\"reason\":\"bytes\"}" >/dev/null
for s in a b; do
  wait_for "the SAs after the soft expiry on $s" 20 is "q $s 'len(st[\"sas\"]) == 2 and $old_in not in [sa[\"spi\"] for sa in st[\"sas\"]]'" True
done
log "soft expiry from the daemon: charon rekeyed, SPIs now $(spis a) on a"

# 6. the daemon raises an acquire for the trap policy: charon negotiates "web"
reqid=$(q a "[p['tmpl']['reqid'] for p in st['policies'] if p['action'] == 'protect' and p['sel'].get('dport')][0]")
api a POST /_fake/event "{\"type\":\"acquire\",\"owner\":\"ike\",\"reqid\":$reqid,\"src\":\"198.18.1.5\",\"dst\":\"198.18.2.5\",\"proto\":6,\"dport\":80}" >/dev/null
for s in a b; do wait_for "the trap's SAs on $s" 20 is "q $s 'len(st[\"sas\"])'" 4; done
swanctl_ a --list-sas | grep -q "web: .*INSTALLED" || fail "the acquire did not bring web up"
log "acquire from the daemon: charon negotiated the trap's CHILD_SA (reqid $reqid)"

# 7. a's daemon dies and comes back empty (a new epoch): the plugin installs charon's policies again and
#    charon rekeys both CHILD_SAs into it
mkdir -p "$out"
api a GET /_fake/requests >"$out/requests-a-before-restart.json"
old_b=$(q b "sorted(sa['spi'] for sa in st['sas'])")
kill -9 "${fakepid[a]}"
wait "${fakepid[a]}" 2>/dev/null || true
start_fake a
wait_for "a's new daemon" 20 test -S "$tmp/a/xdpsec.sock"
wait_for "charon's policies in a's new daemon" 30 is "q a 'len(st[\"policies\"])'" 17
wait_for "the rekeyed SAs in a's new daemon" 30 is "q a 'len(st[\"sas\"])'" 4
wait_for "the rekeyed SAs on b" 30 is "q b 'len(st[\"sas\"]) == 4 and not set(sorted(sa[\"spi\"] for sa in st[\"sas\"])) & set($old_b)'" True
grep -q "xdpsec restarted" "$tmp/a/charon.log" || fail "charon a did not log the daemon's restart"
log "a's daemon restarted: 17 policies installed again, both CHILD_SAs rekeyed into it"

# 8. swanctl --terminate leaves only the trap and bypass policies; stopping charon leaves nothing
swanctl_ a --terminate --ike gw >/dev/null
for s in a b; do
  wait_for "no SAs on $s" 20 is "q $s 'len(st[\"sas\"])'" 0
  wait_for "only bypass and trap policies on $s" 20 is "q $s 'len(st[\"policies\"])'" 11
done
log "terminate: no SAs left, only the 8 bypass and 3 trap policies"
for s in a b; do
  swanctl_ $s --stats >/dev/null
done
kill "${charonpid[a]}" "${charonpid[b]}"
wait "${charonpid[a]}" "${charonpid[b]}" 2>/dev/null || true
for s in a b; do
  [ "$(q $s 'len(st["policies"]) + len(st["sas"]) + len(st["larvals"])')" = 0 ] ||
    fail "charon $s stopped but left $(state $s)"
done
log "charon stopped: both daemons are empty"

for s in a b; do
  api $s GET /_fake/requests | $python -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["method"], r["path"], r["body"].replace("\n", " "))' >"$out/requests-$s.txt"
  cp "$tmp/$s/charon.log" "$out/charon-$s.log"
done
cp "$tmp/a/list-sas.txt" "$tmp/a/stats.txt" "$out/"
log "PASS (API calls in $out/requests-{a,b}.txt, charon logs next to them)"
