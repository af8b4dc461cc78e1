#!/usr/bin/env bash
# Benchmark 3: sequential read of the mounted image file with dd bs=1M.
#   baseline: the raw image file from the page cache
#   warm:     MNT/NAME.img after a first full read (the kernel keeps its pages: KEEP_CACHE)
#   FUSE:     page cache dropped, nowhere's memory cache warm: every byte crosses FUSE
#             (the path a reader that fetches and copies one chunk per request takes at ~180 MB/s)
# Goal: warm >= 1 GB/s. The image is mounted over loopback HTTP with a memory cache larger
# than the image, so the FUSE row measures nowhere itself, not the network.
source "$(dirname "$0")/lib.sh"

# dd_rate FILE [drop]: reads FILE with dd bs=1M enough times for 512 MiB (small images
# finish in tens of milliseconds, too short to time alone) and prints the rate in MB/s
# (10^6 bytes/s, as dd prints) from dd's own byte counts and times. With drop, the page
# cache is dropped before every pass (not timed).
dd_rate() {
  local size passes i out bytes=0 secs=0
  size=$(stat -c %s "$1")
  passes=$(((512 * 1048576 + size - 1) / size))
  for i in $(seq "$passes"); do
    [ "${2:-}" = drop ] && drop_caches
    # "335544320 bytes (336 MB, 320 MiB) copied, 0.2 s, 1.7 GB/s"
    out=$(step dd if="$1" of=/dev/null bs=1M 2>&1 | tail -1)
    read -r bytes secs < <(awk -v b="$bytes" -v s="$secs" '{print b + $1, s + $(NF-3)}' <<<"$out")
  done
  awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.0f\n", b / s / 1e6}'
}

# rate_median FILE [drop]: median of $RUNS dd_rate measurements.
rate_median() {
  local i rates=()
  for i in $(seq "$RUNS"); do
    rates+=("$(dd_rate "$@")")
  done
  log "$(basename "$1") ${2:-}: ${rates[*]} MB/s"
  printf '%s\n' "${rates[@]}" | median
}

store="$work/store"
echo "## sequential read through the FUSE file, dd bs=1M, MB/s (median of $RUNS)"
machine
printf '%-22s %9s %9s %9s %9s %s\n' image raw-cached first-read warm fuse-path "goal warm >= 1000 MB/s"
for fs in ${BENCH_FS:-ext4 squashfs erofs}; do
  img=$(images "bookworm-v1.$fs")
  size=$(stat -c %s "$img")
  mapfile -t kf < <(pack_key_flags "$NOWHERE")
  step "$NOWHERE" pack "$img" --store "$store" --name "v1-$fs" --progress never "${kf[@]}" >/dev/null
  [ -n "${url:-}" ] || serve_store "$store"

  cat "$img" >/dev/null
  raw=$(rate_median "$img")

  fuse_mount "$url/images/v1-$fs" "$work/fuse" --mem-cache $((size * 2 + (64 << 20)))
  f="$work/fuse/v1-$fs.img"
  drop_caches
  out=$(step dd if="$f" of=/dev/null bs=1M 2>&1 | tail -1)
  first=$(awk '{printf "%.0f\n", $1 / $(NF-3) / 1e6}' <<<"$out")
  warm=$(rate_median "$f")
  path=$(rate_median "$f" drop)
  fuse_umount "$work/fuse"
  printf '%-22s %9s %9s %9s %9s %s\n' "bookworm-v1.$fs" "$raw" "$first" "$warm" "$path" \
    "$(awk -v r="$warm" 'BEGIN {print (r >= 1000) ? "met" : "NOT met"}')"
done
echo "(first-read: the first dd after mounting, chunks fetched over loopback HTTP; page cache dropped before it)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
