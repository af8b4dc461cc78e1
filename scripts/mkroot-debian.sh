#!/usr/bin/env bash
# Builds the Debian bookworm root trees used by `make demo` and the benchmarks, once,
# into .cache/roots (git-ignored):
#   v1 = debootstrap --variant=minbase --include=systemd-sysv,udev,iproute2,procps,less
#   v2 = v1 + apt-get install python3 curl vim-tiny (in a chroot)
# Usage: scripts/mkroot-debian.sh [v1|v2] [amd64|arm64]   (v2 implies v1; default amd64).
# Prints the tree's path. arm64 (bookworm-v1-arm64) is debootstrapped with --arch arm64 on
# any machine: its maintainer scripts run under qemu-user-static (apt-get install
# qemu-user-static), through the kernel's binfmt_misc, which this script registers
# from qemu's own /usr/lib/binfmt.d file when it is not (it mounts binfmt_misc if needed).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=${1:-v1}
arch=${2:-amd64}
case "$arch" in amd64|arm64) ;; *) echo "mkroot: architecture $arch: want amd64 or arm64" >&2; exit 2 ;; esac
suffix=""; [ "$arch" = amd64 ] || suffix="-$arch"
mirror=${NOWHERE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
roots="$top/.cache/roots"
mkdir -p "$roots"
# One builder at a time: tests, the demo and benchmarks may ask for a root concurrently.
exec 9>"$roots/.lock"
flock 9
log() { echo "mkroot: $*" >&2; }

# foreign makes the kernel run arch's binaries (the chroot's) through qemu-user-static.
foreign() {
  [ "$arch" = "$(dpkg --print-architecture)" ] && return 0
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f "$conf" ] || { log "qemu-user-static missing: it runs the $arch root's maintainer scripts here (apt-get install qemu-user-static)"; exit 1; }
  [ -f /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    log "registering qemu-aarch64-static with binfmt_misc (as systemd-binfmt would at boot)"
    cat "$conf" > /proc/sys/fs/binfmt_misc/register
  fi
}

build_v1() {
  local out="$roots/bookworm-v1$suffix"
  [ -f "$out.done" ] && return 0
  command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install debootstrap)"; exit 1; }
  foreign
  rm -rf "$out.tmp"
  log "debootstrap bookworm $arch (minbase + systemd) into $out (a few minutes, once; progress in $out.log)"
  # debootstrap prints hundreds of lines: they go to the log, and its end to the terminal on failure.
  if ! debootstrap --arch "$arch" --variant=minbase --include=systemd-sysv,udev,iproute2,procps,less \
    bookworm "$out.tmp" "$mirror" > "$out.log" 2>&1; then
    tail -20 "$out.log" >&2
    log "debootstrap failed (the whole log: $out.log)"
    exit 1
  fi
  # A shared image must not carry one machine's identity; apt caches are not part of the OS.
  : > "$out.tmp/etc/machine-id"
  rm -rf "$out.tmp"/var/cache/apt/archives/*.deb "$out.tmp"/var/cache/apt/*.bin \
    "$out.tmp"/var/lib/apt/lists/*_Packages "$out.tmp"/var/lib/apt/lists/*_Translation-*
  rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out.done"
}

build_v2() {
  [ "$arch" = amd64 ] || { log "v2 is built for amd64 only"; exit 2; }
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
  v1) build_v1; echo "$roots/bookworm-v1$suffix" ;;
  v2) build_v2; echo "$roots/bookworm-v2" ;;
  *) log "unknown root '$want' (want v1 or v2)"; exit 2 ;;
esac
