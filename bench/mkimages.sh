#!/usr/bin/env bash
# Builds filesystem images of the Debian bookworm roots (scripts/mkroot-debian.sh) for the
# benchmarks, once each, into .cache/images/ (git-ignored, shared):
#   bookworm-{v1,v2}.ext4      mkfs.ext4 -b 4096 -d, 320 MiB (NOWHERE_EXT4_SIZE), same size
#                              for both versions, as an update within one partition would be
#   bookworm-v2-1g.ext4        the v2 tree in a sparse 1 GiB ext4 (most of the image is zeros)
#   bookworm-{v1,v2}.squashfs  mksquashfs -comp zstd
#   bookworm-{v1,v2}.erofs     mkfs.erofs -zlz4hc
# Images are reproducible where the tools allow: fixed UUIDs, hash seed and mkfs times, so
# v1 and v2 differ only where their trees do.
#
# Usage: bench/mkimages.sh [IMAGE...]   (default: all). Prints the path of each image.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/.cache/images"
roots="$top/.cache/roots"
ext4_size=${NOWHERE_EXT4_SIZE:-320M}
uuid=6e6f7768-6572-6500-0000-000000000001 # fixed: ext4 seeds metadata checksums with it
epoch=1700000000                          # fixed mkfs time (2023-11-14)
log() { echo "mkimages: $*" >&2; }

all=(bookworm-v1.ext4 bookworm-v2.ext4 bookworm-v1.squashfs bookworm-v2.squashfs
     bookworm-v1.erofs bookworm-v2.erofs bookworm-v2-1g.ext4)
want=("$@"); [ ${#want[@]} -gt 0 ] || want=("${all[@]}")

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9 # one builder at a time: other helpers share this cache

stage="" tmp=""
cleanup() { [ -z "$stage" ] || rm -rf "$stage"; [ -z "$tmp" ] || rm -f "$tmp"; }
trap cleanup EXIT

# stage_root copies a root and drops the apt caches left by `apt-get update` in the chroot
# (pkgcache.bin, srcpkgcache.bin, Translation lists: ~110 MB in v2 that are not part of the
# installed system; mkroot-debian.sh strips them too in roots built after it learned to).
# The copy keeps modes, owners, times, hard links and xattrs.
stage_root() { # stage_root VERSION -> sets $stage
  local src="$roots/bookworm-$1"
  if [ ! -f "$src.done" ]; then
    "$top/scripts/mkroot-debian.sh" "$1" >/dev/null
  fi
  stage=$(mktemp -d "$out/.stage-bookworm-$1-XXXXXX")
  cp -a "$src/." "$stage/"
  rm -f "$stage"/var/cache/apt/*.bin "$stage"/var/lib/apt/lists/*_Translation-*
}

build() { # build NAME
  local name=$1 dst="$out/$1" ver fs size=$ext4_size
  [ -s "$dst" ] && { echo "$dst"; return 0; }
  case "$name" in
    bookworm-v1.*) ver=v1 ;;
    bookworm-v2.*|bookworm-v2-1g.*) ver=v2 ;;
    *) log "unknown image '$name' (known: ${all[*]})"; exit 2 ;;
  esac
  fs=${name##*.}
  [ "$name" = bookworm-v2-1g.ext4 ] && size=1G
  stage_root "$ver"
  tmp="$out/.tmp-$name-$$"
  rm -f "$tmp"
  local t0=$SECONDS
  case "$fs" in
    ext4)
      truncate -s "$size" "$tmp"
      E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -F -t ext4 -b 4096 -L bookworm -U "$uuid" \
        -E hash_seed=$uuid,nodiscard -d "$stage" "$tmp" ;;
    squashfs)
      # squashfs cannot store POSIX ACLs (systemd puts some on /var/log/journal): mksquashfs
      # says so once per kind, which is expected here.
      mksquashfs "$stage" "$tmp" -comp zstd -noappend -quiet -no-progress -mkfs-time $epoch \
        2> >(grep -v '^Unrecognised xattr prefix system.posix_acl' >&2) >/dev/null ;;
    erofs)
      mkfs.erofs --quiet -zlz4hc -U "$uuid" "$tmp" "$stage" ;;
    *) log "unknown filesystem '$fs'"; exit 2 ;;
  esac
  mv "$tmp" "$dst"; tmp=""
  rm -rf "$stage"; stage=""
  log "built $dst ($(du -h --apparent-size "$dst" | cut -f1) apparent, $(du -h "$dst" | cut -f1) allocated) in $((SECONDS - t0)) s"
  echo "$dst"
}

for n in "${want[@]}"; do build "$n"; done
