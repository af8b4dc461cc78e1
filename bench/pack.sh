#!/usr/bin/env bash
# Benchmark 1: pack time.
#  a) `nowhere pack` of the v1 ext4, squashfs and erofs images vs the baseline
#     `zstd -T0 -3` plus `sha256sum` of the same file (about the work pack must do); goal <= 1.3x.
#  b) zeros nearly free: pack of a sparse 1 GiB ext4 image (~250 MiB used) vs pack of a
#     file holding just its non-zero blocks, and vs the baseline on that file.
# Images are read from the page cache (read once first); stores and zstd output go to
# $TMPDIR, a fresh store for every run; `sync` before each timed run so no run pays for an
# earlier one's writeback. Stores are deleted only at the end: deleting a store's ~5,000
# files and directories just before the next run makes ext4's inode allocator step over
# the recently deleted inodes (perf: recently_deleted, find_inode_bit), which tripled the
# system time of creating the next store's files (1.5 s instead of 0.4 s for 2,800 chunks).
source "$(dirname "$0")/lib.sh"

pack_once() { # pack_once IMAGE [FLAGS...]: prints seconds (runs in a subshell: no counters here)
  local s img=$1
  shift
  s=$(mktemp -d "$work/store-XXXXXX")
  sync
  seconds "$NOWHERE" pack "$img" --store "$s" --name bench --progress never "$@"
}
zstd_once() { rm -f "$work/out.zst"; sync; seconds zstd -T0 -3 -q -f "$1" -o "$work/out.zst"; }
sha_once() { seconds sha256sum "$1"; }

# measure IMAGE [PACK FLAGS...]: sets p (pack), z (zstd), h (sha256sum), b (z+h), medians
# of $RUNS wall times, and pc/bc, the median CPU seconds (user+system) of pack and the
# baseline.
measure() {
  local img=$1 i ps=() zs=() hs=() pcs=() bcs=() zc
  shift
  cat "$img" >/dev/null
  for i in $(seq "$RUNS"); do
    ps+=("$(pack_once "$img" "$@")"); pcs+=("$(last_cpu)")
    zs+=("$(zstd_once "$img")"); zc=$(last_cpu)
    hs+=("$(sha_once "$img")"); bcs+=("$(sum "$zc" "$(last_cpu)")")
  done
  p=$(printf '%s\n' "${ps[@]}" | median)
  z=$(printf '%s\n' "${zs[@]}" | median)
  h=$(printf '%s\n' "${hs[@]}" | median)
  b=$(sum "$z" "$h")
  pc=$(printf '%s\n' "${pcs[@]}" | median)
  bc=$(printf '%s\n' "${bcs[@]}" | median)
  log "$(basename "$img"): pack ${ps[*]} (cpu ${pcs[*]}) / zstd ${zs[*]} / sha256sum ${hs[*]} (baseline cpu ${bcs[*]})"
}

echo "## pack time (default chunking) vs zstd -T0 -3 + sha256sum (median of $RUNS)"
machine
printf '%-22s %9s %9s %9s %9s %9s %7s %-8s %9s %9s\n' image size pack zstd sha256sum baseline ratio "<=1.3" "pack cpu" "base cpu"
for name in bookworm-v1.ext4 bookworm-v1.squashfs bookworm-v1.erofs; do
  img=$(images "$name")
  measure "$img"
  size=$(stat -c %s "$img")
  r=$(ratio "$p" "$b")
  printf '%-22s %6s MiB %8ss %8ss %8ss %8ss %6sx %-8s %8ss %8ss\n' "$name" $((size >> 20)) "$p" "$z" "$h" "$b" "$r" \
    "$(awk -v r="$r" 'BEGIN {print (r <= 1.3) ? "met" : "NOT met"}')" "$pc" "$bc"
done

echo
echo "## zeros nearly free: sparse 1 GiB ext4 vs its data alone, --chunking cdc:16K:64K:256K (median of $RUNS)"
sparse=$(images bookworm-v2-1g.ext4)
dense="$work/dense.img"
used=$(benchtool nonzero "$sparse" "$dense")
# Both with the content-defined chunker: the file of blocks is no filesystem, and the
# filesystem-aware default would cut the ext4 image into 2.4x more chunks (files to create).
cdc=(--chunking cdc:16K:64K:256K)
measure "$sparse" "${cdc[@]}"; sp=$p; sb=$b; spc=$pc; sbc=$bc
measure "$dense" "${cdc[@]}"; dp=$p; db=$b; dpc=$pc; dbc=$bc
printf '%-40s %9s %9s %9s %9s\n' input pack baseline "pack cpu" "base cpu"
printf '%-40s %8ss %8ss %8ss %8ss\n' "sparse 1 GiB ext4 ($((used >> 20)) MiB non-zero)" "$sp" "$sb" "$spc" "$sbc"
printf '%-40s %8ss %8ss %8ss %8ss\n' "its $((used >> 20)) MiB of data alone" "$dp" "$db" "$dpc" "$dbc"
echo "pack of the sparse image / pack of its data alone: $(ratio "$sp" "$dp")x wall, $(ratio "$spc" "$dpc")x CPU (goal: about 1)"
echo "pack of the sparse image / baseline on its data alone: $(ratio "$sp" "$db")x wall"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
