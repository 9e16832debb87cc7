#!/usr/bin/env bash
# Builds, tests and installs charon's kernel-xdpsec plugin (ike/strongswan) against the source of the
# strongSwan that is INSTALLED, configured as Debian configured it, so that struct layouts and config.h
# match the charon that loads the plugin.
#
#   hack/strongswan-plugin.sh build      build/strongswan/libstrongswan-kernel-xdpsec.so (default)
#   hack/strongswan-plugin.sh test       the plugin's unit tests (C, against a fake daemon)
#   hack/strongswan-plugin.sh install    into $DESTDIR/usr/lib/ipsec/plugins and $DESTDIR/etc/strongswan.d
#   hack/strongswan-plugin.sh deps       only install the Debian packages the build needs
#
# Idempotent and cached: the source is fetched and configured once per strongSwan version
# (build/strongswan/src/<version>/); later runs only recompile what changed.
# Environment: STRONGSWAN_EXACT_SOURCE=1 refuses the fallback described at fetch_source.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/build/strongswan

# charon and its tools as Debian ships them: what the plugin runs in, and what the tests drive.
runtime_pkgs=(strongswan-charon charon-systemd strongswan-swanctl libcharon-extra-plugins
  libstrongswan-standard-plugins libjson-c5)
# What compiling the plugin needs, plus what strongSwan's configure checks for with Debian's options
# (debian/control's Build-Depends without the packaging tools: debhelper, dh-apparmor, po-debconf, systemd).
build_pkgs=(gcc make pkg-config dpkg-dev python3 libjson-c-dev bison flex gperf libiptc-dev libcap-dev
  libcurl4-openssl-dev libgcrypt20-dev libgmp3-dev libldap2-dev libnm-dev libpam0g-dev libssl-dev
  libsystemd-dev libtss2-dev)

log() { echo "strongswan-plugin: $*" >&2; }
die() { log "$*"; exit 1; }

install_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages ${missing[*]}; run as root or install them"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# deb-src entries for the configured Debian archives, with the archive keyring: a copy of each
# "Types: deb" stanza of debian.sources that is signed by debian-archive-keyring.gpg.
enable_deb_src() {
  local list=/etc/apt/sources.list.d/xdpsec-deb-src.sources
  # (grep without -q: reading all of apt-cache's output spares it a SIGPIPE that pipefail would count)
  if apt-cache showsrc strongswan 2>/dev/null | grep '^Package: strongswan$' >/dev/null; then
    return 0
  fi
  [ -f /etc/apt/sources.list.d/debian.sources ] || die "no /etc/apt/sources.list.d/debian.sources to derive deb-src entries from"
  log "enabling deb-src in $list"
  awk 'BEGIN{RS="";ORS="\n\n"}
    /Signed-By: \/usr\/share\/keyrings\/debian-archive-keyring.gpg/ && /(^|\n)Types: deb(\n|$)/ {
      sub(/^Types: deb\n/, "Types: deb-src\n"); sub(/\nTypes: deb\n/, "\nTypes: deb-src\n"); print }' \
    /etc/apt/sources.list.d/debian.sources >"$list.tmp"
  grep -q '^Types: deb-src$' "$list.tmp" || { rm -f "$list.tmp"; die "no Debian archive entry signed by the archive keyring in debian.sources"; }
  mv "$list.tmp" "$list"
  apt-get update -qq
}

# Fetches Debian's source package of the installed version into $1. The mirror this machine reaches
# does not always hold every version's source: when the exact one is missing, the newest source of the
# same upstream version it does hold is used (the Debian revisions differ in backported security fixes),
# said loudly and recorded in build/strongswan/SOURCE; STRONGSWAN_EXACT_SOURCE=1 refuses that.
fetch_source() {
  local dir=$1 want=$2 got upstream
  enable_deb_src
  mkdir -p "$dir"
  if (cd "$dir" && apt-get source -qq "strongswan=$want" >apt-source.log 2>&1); then
    got=$want
  else
    [ "${STRONGSWAN_EXACT_SOURCE:-0}" = 1 ] && die "the source of strongswan $want is not on the mirror (see $dir/apt-source.log)"
    upstream=${want%-*}
    got=$(apt-cache showsrc strongswan | sed -n 's/^Version: //p' | grep -F "$upstream-" | grep -vxF "$want" |
      sort -V -r | head -1)
    [ -n "$got" ] || die "no source of strongswan $upstream on the mirror (see $dir/apt-source.log)"
    log "WARNING: the mirror lacks the source of the installed strongswan $want; building against $got"
    log "WARNING: (same upstream version, Debian revisions differ; set STRONGSWAN_EXACT_SOURCE=1 to refuse)"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && apt-get source -qq "strongswan=$got" >apt-source.log 2>&1) ||
      die "apt-get source strongswan=$got failed (see $dir/apt-source.log)"
  fi
  echo "$got" >"$dir/.source-version"
}

# Configures the tree as Debian's build does: debian/rules' CONFIGUREARGS after dh_auto_configure's
# standard arguments, with dpkg-buildflags' hardening flags. Then checks the result against the
# installed charon: its compiled-in plugin list must be exactly what this configuration builds.
configure_tree() {
  local tree=$1 args
  args=$(cd "$tree" && make -s -f debian/rules -f - print-configureargs <<'EOF'
print-configureargs:
	@echo $(CONFIGUREARGS)
EOF
  )
  [ -n "$args" ] || die "could not read CONFIGUREARGS from debian/rules"
  log "configuring strongSwan as Debian does (this takes a minute)"
  (
    cd "$tree"
    eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all DEB_LDFLAGS_MAINT_APPEND=-Wl,-O1 dpkg-buildflags --export=sh)"
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    gnutype=$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)
    # shellcheck disable=SC2086 # args is a list of options
    ./configure --build="$gnutype" --prefix=/usr --includedir='${prefix}/include' \
      --mandir='${prefix}/share/man' --infodir='${prefix}/share/info' --sysconfdir=/etc \
      --localstatedir=/var --disable-option-checking --disable-silent-rules \
      --libdir="\${prefix}/lib/$multiarch" --runstatedir=/run --disable-maintainer-mode \
      --disable-dependency-tracking $args >configure.log 2>&1
  ) || die "configure failed: see $tree/configure.log"
}

check_tree() {
  local tree=$1 configured installed
  configured=$(sed -n 's/^charon_plugins = *//p' "$tree/src/charon/Makefile")
  installed=$(strings /usr/lib/ipsec/charon | grep -xF "$configured" || true)
  [ -n "$configured" ] && [ "$configured" = "$installed" ] ||
    die "the configured tree's plugin list differs from the installed charon's; configuration does not match Debian's"
}

# The compiler flags a plugin of this tree gets (from kernel-netlink's generated Makefile), with
# strongSwan's headers as system headers so that our -Wextra applies to our code only, and without
# the -Wno-* options strongSwan builds its own code with: ike/strongswan is held to all of -Wall -Wextra.
write_flags() {
  local tree=$1 flags
  flags=$(make -s -C "$tree/src/libcharon/plugins/kernel_netlink" -f Makefile -f - print-flags <<'EOF'
print-flags:
	@echo 'SS_CPPFLAGS := $(DEFS) $(CPPFLAGS)'
	@echo 'SS_CFLAGS := $(CFLAGS)'
	@echo 'SS_LDFLAGS := $(LDFLAGS)'
EOF
  )
  {
    echo "# written by hack/strongswan-plugin.sh from $tree"
    echo "$flags" | sed -e "s|^SS_CPPFLAGS := |SS_CPPFLAGS := -isystem $tree/src/libstrongswan -isystem $tree/src/libcharon |" \
      -e '/^SS_CFLAGS/s/ -Wno-[a-z-]*//g' -e '/^SS_CFLAGS/s/:= -Wno-[a-z-]* /:= /' 
  } >"$out/flags.mk.tmp"
  if ! cmp -s "$out/flags.mk.tmp" "$out/flags.mk" 2>/dev/null; then
    mv "$out/flags.mk.tmp" "$out/flags.mk"
  else
    rm -f "$out/flags.mk.tmp"
  fi
}

prepare() {
  install_pkgs "${runtime_pkgs[@]}" "${build_pkgs[@]}"
  local version dir tree
  version=$(dpkg-query -W -f='${Version}' libstrongswan)
  dir=$out/src/$version
  tree=$dir/strongswan-${version%-*}
  if [ ! -f "$dir/.configured" ]; then
    [ -f "$dir/.source-version" ] && [ -d "$tree" ] || fetch_source "$dir" "$version"
    configure_tree "$tree"
    check_tree "$tree"
    touch "$dir/.configured"
  fi
  mkdir -p "$out"
  echo "installed strongswan $version; built against the source of $(cat "$dir/.source-version")" >"$out/SOURCE"
  write_flags "$tree"
}

build() {
  prepare
  make -s -C ike/strongswan OUT="$out"
  log "built $out/libstrongswan-kernel-xdpsec.so ($(cat "$out/SOURCE"))"
}

run_tests() {
  prepare
  make -s -C ike/strongswan OUT="$out" test
}

install_plugin() {
  build
  local dest=${DESTDIR:-}
  install -D -m 0644 "$out/libstrongswan-kernel-xdpsec.so" "$dest/usr/lib/ipsec/plugins/libstrongswan-kernel-xdpsec.so"
  install -D -m 0644 ike/strongswan/kernel-xdpsec.conf "$dest/etc/strongswan.d/charon/kernel-xdpsec.conf"
  log "installed into ${dest}/usr/lib/ipsec/plugins and ${dest}/etc/strongswan.d/charon"
}

case "${1:-build}" in
  build) build ;;
  test) run_tests ;;
  install) install_plugin ;;
  deps) install_pkgs "${runtime_pkgs[@]}" "${build_pkgs[@]}" ;;
  *) die "usage: $0 [build|test|install|deps]" ;;
esac
