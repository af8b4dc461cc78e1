#!/usr/bin/env bash
# Before/after comparison of two nowhere binaries on pack, interleaved run by run so that
# the load of a shared machine hits both alike:
#   bench/ab-pack.sh OLD_BINARY NEW_BINARY        (BENCH_RUNS, default 7, runs of each;
#                                                  BENCH_PACK_FLAGS, e.g. --fs-hint ...;
#                                                  BENCH_IMAGES: names for mkimages.sh or
#                                                  paths, default the four v1/v2 images;
#                                                  BENCH_CHUNKINGS, e.g. "auto cdc:16K:64K:256K",
#                                                  default: pack's default)
# Prints per image and chunking the median and best wall time and the median CPU time
# (user+system) of each binary, and NEW/OLD. With two chunkings, also each binary's
# throughput with the first relative to the second (issue 6: auto vs cdc, goal >= 0.5).
# Stores stay on disk (under TMPDIR) until the end: deleting thousands of chunk files just
# before the next pack slows ext4's inode allocation for it (docs/benchmarks.md).
source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || die "usage: bench/ab-pack.sh OLD_BINARY NEW_BINARY"
old=$1 new=$2
RUNS=${BENCH_RUNS:-7}
chunkings=(${BENCH_CHUNKINGS:-default})

echo "## pack before/after: $old vs $new, $RUNS interleaved runs each"
machine
printf '%-26s %-18s %-4s %10s %10s %10s\n' image chunking bin "wall med" "wall best" "cpu med"
for name in ${BENCH_IMAGES:-bookworm-v1.ext4 bookworm-v1.squashfs bookworm-v1.erofs bookworm-v2-1g.ext4}; do
  case $name in */*) img=$name ;; *) img=$(images "$name") ;; esac
  cat "$img" >/dev/null
  declare -A med=()
  for c in "${chunkings[@]}"; do
    cflags=()
    [ "$c" = default ] || cflags=(--chunking "$c")
    : >"$work/old" ; : >"$work/new"
    for i in $(seq "$RUNS"); do
      for b in old new; do
        bin=$old; [ $b = new ] && bin=$new
        s=$(mktemp -d "$work/store-XXXXXX") # kept until the end (see above)
        sync
        t=$(seconds "$bin" pack "$img" --store "$s" --name ab --progress never "${cflags[@]}" ${BENCH_PACK_FLAGS:-})
        echo "$t $(last_cpu)" >>"$work/$b"
      done
    done
    for b in old new; do
      wm=$(cut -d' ' -f1 "$work/$b" | median)
      wb=$(cut -d' ' -f1 "$work/$b" | sort -g | head -1)
      cm=$(cut -d' ' -f2 "$work/$b" | median)
      printf '%-26s %-18s %-4s %9ss %9ss %9ss\n' "$(basename "$name")" "$c" "$b" "$wm" "$wb" "$cm"
      eval "${b}_wm=$wm ${b}_cm=$cm"
      med[$b,$c]=$wm
      log "$name $c $b: $(cut -d' ' -f1 "$work/$b" | tr '\n' ' ')"
    done
    echo "$(basename "$name") $c: new/old wall $(ratio "$new_wm" "$old_wm")x, cpu $(ratio "$new_cm" "$old_cm")x"
  done
  if [ ${#chunkings[@]} -eq 2 ]; then
    a=${chunkings[0]} z=${chunkings[1]}
    echo "$(basename "$name"): throughput $a vs $z: old $(ratio "${med[old,$z]}" "${med[old,$a]}"), new $(ratio "${med[new,$z]}" "${med[new,$a]}")"
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
