#!/usr/bin/env bash
# What a booting machine fetches when its image is updated (issue 7, items 8-9): Debian
# bookworm v1, then v2 (v1 + apt-get install python3 curl vim-tiny), booted in qemu to the
# login prompt with the same cache disk (nowhere.cache=/dev/vda), against a cold boot of
# v2 with an empty cache disk, a full download of v2 and `nowhere diff v1 v2`.
# The roots are those `make demo` boots (scripts/mkimage-debian.sh: the debootstrap roots
# plus the demo's units), without apt's package caches (as in bench/update-cost.sh), built
# into images by `nowhere pack --from-dir --fs squashfs|ext4` (the default, filesystem-
# aware chunking), one store per format, served by `nowhere vm --store` on 127.0.0.1; the
# guest's fetches are counted by that server ("booted from HTTP: fetched ..." when the
# login prompt shows).
# Usage: bench/boot-update.sh   (as root)   FORMATS="squashfs" bench/boot-update.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
formats=${FORMATS:-"squashfs ext4"}
make -s build
bin="$top/bin/nowhere"
kdir=$(scripts/fetch-kernel.sh)
work=$(mktemp -d /var/tmp/nowhere-bench-boot-update.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin" keygen --secret "$work/bench.key" --public "$work/bench.pub" --no-password >/dev/null
"$bin" initramfs -o "$work/initrd.img" --modules "$kdir/modules" --key "$work/bench.pub" >/dev/null
for v in v1 v2; do
  img=$(scripts/mkimage-debian.sh "$v")
  unsquashfs -q -n -d "$work/tree-$v" "$img" >/dev/null
  rm -f "$work/tree-$v"/var/cache/apt/*.bin "$work/tree-$v"/var/lib/apt/lists/*_Translation-*
done

# boot FS LABEL CACHEDISK: boot the store's latest debian to the login prompt; prints
# "MiB requests seconds".
boot() {
  local log="$work/$1-$2.log"
  "$bin" vm --kernel "$kdir/vmlinux" --initrd "$work/initrd.img" --store "$work/store-$1" --image debian \
    --cache-disk "$3" --cache-size 1G --append "loglevel=4 demo.poweroff" --expect 'login: *$' \
    --quiet --log "$work/$1-$2.console" --timeout 12m 2>"$log" || true
  local line
  line=$(grep -m1 '^booted from HTTP' "$log" || true)
  if [ -z "$line" ]; then
    echo "bench/boot-update.sh: $1 $2 never reached the login prompt:" >&2
    tail -n 30 "$work/$1-$2.console" >&2
    exit 1
  fi
  sed -E 's/.*fetched ([0-9.]+) MiB of [0-9.]+ MiB in ([0-9.]+) s \(([0-9]+) requests\).*/\1 \3 \2/' <<<"$line"
}
pack() { # FS VERSION
  "$bin" pack --from-dir "$work/tree-$2" --fs "$1" --store "$work/store-$1" --name debian \
    --sign-key "$work/bench.key" --progress never >/dev/null
}

echo "# boot update benchmark $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs, command: bench/boot-update.sh"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
rows=()
for fs in $formats; do
  pack "$fs" v1
  read -r b1 r1 s1 < <(boot "$fs" v1 "$work/cache-$fs.img")
  pack "$fs" v2
  read -r dc db < <("$bin" diff "$work/store-$fs/images/debian/1" "$work/store-$fs/images/debian/2" --key "$work/bench.pub" --json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["fetch_chunks"], d["fetch_bytes"])')
  read -r b2 r2 s2 < <(boot "$fs" v2-after-v1 "$work/cache-$fs.img")
  read -r bc rc sc < <(boot "$fs" v2-cold "$work/cache-cold-$fs.img")
  read -r full size < <("$bin" ls "$work/store-$fs/images/debian/2" --json --key "$work/bench.pub" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["versions"][0]["stored"], d["versions"][0]["size"])')
  row() { rows+=("| $fs | $1 | $2 MiB | $3 | $4 s | $(awk -v a="$2" -v b="$bc" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="$2" -v b="$full" 'BEGIN{printf "%.1f%%", 100*a*1048576/b}') |"); }
  row "v1, empty cache disk" "$b1" "$r1" "$s1"
  row "v2, cache disk from the v1 boot" "$b2" "$r2" "$s2"
  row "v2, empty cache disk" "$bc" "$rc" "$sc"
  rows+=("| $fs | diff v1 v2: every chunk of v2 that v1 lacks | $(awk -v b="$db" 'BEGIN{printf "%.1f", b/1048576}') MiB | $dc | | | $(awk -v a="$db" -v b="$full" 'BEGIN{printf "%.1f%%", 100*a/b}') |")
  rows+=("| $fs | full download of v2 (image $(awk -v b="$size" 'BEGIN{printf "%.0f", b/1048576}') MiB) | $(awk -v b="$full" 'BEGIN{printf "%.1f", b/1048576}') MiB | | | | 100% |")
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| image | boot | fetched | requests | to login | vs cold boot of v2 | vs full download of v2 |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
