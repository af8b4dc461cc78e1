#!/usr/bin/env bash
# Builds the Debian bookworm root trees used by `make demo` and the benchmarks, once,
# into .cache/roots (git-ignored):
#   v1 = debootstrap --variant=minbase --include=systemd-sysv,udev,iproute2,procps,less
#   v2 = v1 + apt-get install python3 curl vim-tiny (in a chroot)
# Usage: scripts/mkroot-debian.sh [v1|v2]   (v2 implies v1). Prints the tree's path.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=${1:-v1}
mirror=${NOWHERE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
roots="$top/.cache/roots"
mkdir -p "$roots"
# One builder at a time: tests, the demo and benchmarks may ask for a root concurrently.
exec 9>"$roots/.lock"
flock 9
log() { echo "mkroot: $*" >&2; }

build_v1() {
  local out="$roots/bookworm-v1"
  [ -f "$out.done" ] && return 0
  command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install debootstrap)"; exit 1; }
  rm -rf "$out.tmp"
  log "debootstrap bookworm (minbase + systemd) into $out (a few minutes, once)"
  debootstrap --variant=minbase --include=systemd-sysv,udev,iproute2,procps,less \
    bookworm "$out.tmp" "$mirror" >&2
  # A shared image must not carry one machine's identity; apt caches are not part of the OS.
  : > "$out.tmp/etc/machine-id"
  rm -rf "$out.tmp"/var/cache/apt/archives/*.deb "$out.tmp"/var/cache/apt/*.bin \
    "$out.tmp"/var/lib/apt/lists/*_Packages "$out.tmp"/var/lib/apt/lists/*_Translation-*
  rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out.done"
}

build_v2() {
  local out="$roots/bookworm-v2"
  [ -f "$out.done" ] && return 0
  build_v1
  rm -rf "$out.tmp"
  log "v2 = v1 + python3 curl vim-tiny into $out"
  cp -a "$roots/bookworm-v1" "$out.tmp"
  cp /etc/resolv.conf "$out.tmp/etc/resolv.conf" 2>/dev/null || true
  echo "deb $mirror bookworm main" > "$out.tmp/etc/apt/sources.list"
  mount -t proc proc "$out.tmp/proc"
  trap 'umount "$out.tmp/proc" 2>/dev/null || true' EXIT
  chroot "$out.tmp" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 curl vim-tiny' >&2
  umount "$out.tmp/proc"; trap - EXIT
  : > "$out.tmp/etc/machine-id"
  rm -rf "$out.tmp"/var/cache/apt/archives/*.deb "$out.tmp"/var/cache/apt/*.bin \
    "$out.tmp"/var/lib/apt/lists/*_Packages "$out.tmp"/var/lib/apt/lists/*_Translation-*
  rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out.done"
}

case "$want" in
  v1) build_v1; echo "$roots/bookworm-v1" ;;
  v2) build_v2; echo "$roots/bookworm-v2" ;;
  *) log "unknown root '$want' (want v1 or v2)"; exit 2 ;;
esac
