#!/usr/bin/env bash
# Before/after diagnosis of the cold read (benchmark 2) at the reader: how often a FUSE
# read had to wait for a fetch, and for how long in all. Two benchtool binaries built from
# the two versions of the code mount the image (benchtool mountstats: the reader, mirror
# set and FUSE layer of `nowhere mount`) from one `nowhere serve`; runs interleave:
#   bench/ab-misses.sh OLD_BENCHTOOL NEW_BENCHTOOL   (BENCH_RUNS, default 3; BENCH_FS,
#                                                     default "ext4 erofs"; BENCH_CHUNKING,
#                                                     default auto)
# Build each with `go build -o X ./bench/benchtool` in a checkout of that version.
# Prints per run: tar time, reads that waited more than 1 ms and their summed wait,
# chunks fetched, reads that found their chunk missing (misses) and prefetches; then
# the medians.
source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || die "usage: bench/ab-misses.sh OLD_BENCHTOOL NEW_BENCHTOOL"
RUNS=${BENCH_RUNS:-3}
declare -A bins=([old]=$1 [new]=$2)

echo "## cold read at the reader, before/after: $1 vs $2, $RUNS interleaved runs each"
machine
for fs in ${BENCH_FS:-ext4 erofs}; do
  img=$(images "bookworm-v1.$fs")
  step "$NOWHERE" pack "$img" --store "$work/store-$fs" --name v1 --progress never \
    --chunking "${BENCH_CHUNKING:-auto}" >/dev/null
  serve_store "$work/store-$fs"
  : >"$work/old"; : >"$work/new"
  for i in $(seq "$RUNS"); do
    for b in old new; do
      mkdir -p "$work/fuse" "$work/mnt"
      BENCH_TRACE="$work/trace" "${bins[$b]}" mountstats "$url/images/v1" "$work/fuse" >"$work/ms.out" 2>&1 &
      ms=$!
      pids+=("$ms")
      for _ in $(seq 100); do grep -q '^mounted' "$work/ms.out" && break; sleep 0.1; done
      grep -q '^mounted' "$work/ms.out" || die "mountstats: $(cat "$work/ms.out")"
      mounts+=("$work/fuse")
      mount_loop "$work/fuse/v1.img" "$work/mnt"
      drop_caches
      t=$(seconds bash -c "tar -cf - -C '$work/mnt' . | wc -c")
      umount_tracked "$work/mnt"
      kill "$ms"
      wait "$ms" || true
      keep=()
      for p in "${pids[@]}"; do [ "$p" = "$ms" ] || keep+=("$p"); done
      pids=("${keep[@]}")
      mountpoint -q "$work/fuse" && umount_tracked "$work/fuse"
      # trace lines: start_us offset length latency_us
      slow=$(awk '$4 > 1000 {n++; s += $4} END {printf "%d %.3f", n, s / 1e6}' "$work/trace")
      st=$(sed -n 's/^reads .*fetches \([0-9]*\) .*misses \([0-9]*\), prefetches \([0-9]*\).*/\1 \2 \3/p' "$work/ms.out")
      echo "$t $slow $st" >>"$work/$b"
      printf '%-6s %-4s tar %6ss  waited >1ms: %4d reads, %6ss  fetches/misses/prefetches: %s\n' \
        "$fs" "$b" "$t" $slow "$st"
    done
  done
  for b in old new; do
    printf '%-6s %-4s median: tar %ss, slow reads %s, waited %ss, fetches %s, misses %s, prefetches %s\n' "$fs" "$b" \
      "$(cut -d' ' -f1 "$work/$b" | median)" "$(cut -d' ' -f2 "$work/$b" | median)" \
      "$(cut -d' ' -f3 "$work/$b" | median)" "$(cut -d' ' -f4 "$work/$b" | median)" \
      "$(cut -d' ' -f5 "$work/$b" | median)" "$(cut -d' ' -f6 "$work/$b" | median)"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
