#!/usr/bin/env bash
# What a booting machine fetches when its image is updated (issue 7, items 8-9): Debian
# bookworm v1, then v2 (v1 + apt-get install python3 curl vim-tiny), booted in qemu to the
# login prompt with the same cache disk (nowhere.cache=/dev/vda), against a cold boot of
# v2 with an empty cache disk and a full download of v2. The images are the squashfs ones
# `make demo` boots (scripts/mkimage-debian.sh), packed as one image name with the default
# chunking and served by `nowhere vm --store` on 127.0.0.1; the guest's fetches are
# counted by that server ("booted from HTTP: fetched ..." at the login prompt).
# Usage: bench/boot-update.sh   (as root)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
make -s build
bin="$top/bin/nowhere"
kdir=$(scripts/fetch-kernel.sh)
v1=$(scripts/mkimage-debian.sh v1)
v2=$(scripts/mkimage-debian.sh v2)
work=$(mktemp -d /var/tmp/nowhere-bench-boot-update.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin" keygen --secret "$work/bench.key" --public "$work/bench.pub" --no-password >/dev/null
"$bin" initramfs -o "$work/initrd.img" --modules "$kdir/modules" --key "$work/bench.pub" >/dev/null

# boot LABEL CACHEDISK: boot the store's latest debian to the login prompt; prints
# "MB requests seconds".
boot() {
  local log="$work/$1.log"
  "$bin" vm --kernel "$kdir/vmlinux" --initrd "$work/initrd.img" --store "$work/store" --image debian \
    --cache-disk "$2" --cache-size 1G --append "loglevel=4 demo.poweroff" --expect 'login: *$' \
    --quiet --log "$work/$1.console" --timeout 12m 2>"$log" || true
  local line
  line=$(grep -m1 '^booted from HTTP' "$log" || true)
  if [ -z "$line" ]; then
    echo "bench/boot-update.sh: $1 never reached the login prompt:" >&2
    tail -n 30 "$work/$1.console" >&2
    exit 1
  fi
  sed -E 's/.*fetched ([0-9.]+) MB of [0-9.]+ MB in ([0-9.]+) s \(([0-9]+) requests\).*/\1 \3 \2/' <<<"$line"
}
pack() { "$bin" pack "$1" --store "$work/store" --name debian --key "$work/bench.key" --progress never >/dev/null; }

echo "# boot update benchmark $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs; v1 $(du -m "$v1" | cut -f1) MB, v2 $(du -m "$v2" | cut -f1) MB squashfs"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
pack "$v1"
read -r b1 r1 s1 < <(boot v1 "$work/cache.img")
pack "$v2"
diffline=$("$bin" diff "$work/store/images/debian/1" "$work/store/images/debian/2" --insecure --json 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["fetch_chunks"], d["fetch_bytes"])')
read -r b2 r2 s2 < <(boot v2-after-v1 "$work/cache.img")
read -r bc rc sc < <(boot v2-cold "$work/cache-cold.img")
full=$("$bin" ls "$work/store/images/debian/2" --json --insecure 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["versions"][0]["stored"])')
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| boot | fetched | requests | to login | vs cold boot of v2 | vs full download of v2 |"
echo "|---|---:|---:|---:|---:|---:|"
row() { echo "| $1 | $2 MB | $3 | $4 s | $(awk -v a="$2" -v b="$bc" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="$2" -v b="$full" 'BEGIN{printf "%.1f%%", 100*a*1e6/b}') |"; }
row "v1, empty cache disk" "$b1" "$r1" "$s1"
row "v2, cache disk from the v1 boot" "$b2" "$r2" "$s2"
row "v2, empty cache disk" "$bc" "$rc" "$sc"
read -r dc db <<<"$diffline"
echo "| full download of v2 (stored chunks) | $(awk -v b="$full" 'BEGIN{printf "%.1f", b/1e6}') MB | | | | 100% |"
echo "| diff v1 v2 (every chunk of v2 v1 lacks) | $(awk -v b="$db" 'BEGIN{printf "%.1f", b/1e6}') MB | $dc | | | |"
