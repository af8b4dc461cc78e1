#!/usr/bin/env bash
# Update cost of filesystem-aware chunking (issue 6, item 4): builds ext4, erofs and
# squashfs images of the Debian roots v1 and v2 with `nowhere pack --from-dir` (cached in
# .cache/images-fs/), then runs bench/update-cost.go over them.
# Usage: bench/update-cost.sh   (after scripts/mkroot-debian.sh v2 and make build)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cache=.cache/images-fs
nowhere=${NOWHERE:-bin/nowhere}
[ -x "$nowhere" ] || { echo "update-cost: build $nowhere first (make build)" >&2; exit 1; }
for v in v1 v2; do
  [ -d ".cache/roots/bookworm-$v" ] || { echo "update-cost: run scripts/mkroot-debian.sh v2 first" >&2; exit 1; }
done
mkdir -p "$cache/trees"

# The trees the images are made of: the roots without apt's package caches
# (var/cache/apt/*.bin, var/lib/apt/lists/*_Translation-*), which `apt-get update` in v2
# leaves behind (110 MB that are not part of the OS and would dominate the diff).
for v in v1 v2; do
  t="$cache/trees/bookworm-$v"
  if [ ! -d "$t" ]; then
    rm -rf "$t.tmp"
    cp -a ".cache/roots/bookworm-$v" "$t.tmp"
    rm -f "$t.tmp"/var/cache/apt/*.bin "$t.tmp"/var/lib/apt/lists/*_Translation-*
    mv "$t.tmp" "$t"
  fi
done

args=()
for fs in ext4 squashfs erofs; do
  for v in v1 v2; do
    img="$cache/bookworm-$v.$fs"
    if [ ! -f "$img" ]; then
      echo "update-cost: building $img" >&2
      st=$(mktemp -d)
      "$nowhere" pack --from-dir "$cache/trees/bookworm-$v" --fs "$fs" --save-image "$img" \
        --store "$st" --name bookworm --progress never >/dev/null
      rm -rf "$st"
    fi
  done
  args+=(-image "$fs,$cache/bookworm-v1.$fs,$cache/bookworm-v2.$fs")
done
# For comparison: squashfs as mksquashfs makes it by default (small files packed into
# shared fragment blocks), otherwise with the same flags as --fs squashfs.
for v in v1 v2; do
  img="$cache/bookworm-$v.frag.squashfs"
  if [ ! -f "$img" ]; then
    mksquashfs "$cache/trees/bookworm-$v" "$img.tmp" -noappend -quiet -no-progress \
      -comp zstd -b 128K -reproducible -mkfs-time 0 >/dev/null
    mv "$img.tmp" "$img"
  fi
done
args+=(-image "squashfs with fragments,$cache/bookworm-v1.frag.squashfs,$cache/bookworm-v2.frag.squashfs")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%F), command: bench/update-cost.sh"
go run bench/update-cost.go -rounds "${ROUNDS:-5}" -tree1 "$cache/trees/bookworm-v1" -tree2 "$cache/trees/bookworm-v2" "${args[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
