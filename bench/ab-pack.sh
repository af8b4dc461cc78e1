#!/usr/bin/env bash
# Before/after comparison of two nowhere binaries on pack, interleaved run by run so that
# the load of a shared machine hits both alike:
#   bench/ab-pack.sh OLD_BINARY NEW_BINARY        (BENCH_RUNS, default 7, runs of each;
#                                                  BENCH_PACK_FLAGS, e.g. --chunking cdc:16K:64K:256K)
# Prints per image the median and best wall time and the median CPU time (user+system)
# of each binary, and NEW/OLD.
source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || die "usage: bench/ab-pack.sh OLD_BINARY NEW_BINARY"
old=$1 new=$2
RUNS=${BENCH_RUNS:-7}

echo "## pack before/after: $old vs $new, $RUNS interleaved runs each"
machine
printf '%-22s %-4s %10s %10s %10s\n' image bin "wall med" "wall best" "cpu med"
for name in bookworm-v1.ext4 bookworm-v1.squashfs bookworm-v1.erofs bookworm-v2-1g.ext4; do
  img=$(images "$name")
  cat "$img" >/dev/null
  : >"$work/old" ; : >"$work/new"
  for i in $(seq "$RUNS"); do
    for b in old new; do
      bin=$old; [ $b = new ] && bin=$new
      s=$(mktemp -d "$work/store-XXXXXX") # kept until the end: see pack.sh
      sync
      t=$(seconds "$bin" pack "$img" --store "$s" --name ab --progress never ${BENCH_PACK_FLAGS:-})
      echo "$t $(last_cpu)" >>"$work/$b"
    done
  done
  for b in old new; do
    wm=$(cut -d' ' -f1 "$work/$b" | median)
    wb=$(cut -d' ' -f1 "$work/$b" | sort -g | head -1)
    cm=$(cut -d' ' -f2 "$work/$b" | median)
    printf '%-22s %-4s %9ss %9ss %9ss\n' "$name" "$b" "$wm" "$wb" "$cm"
    eval "${b}_wm=$wm ${b}_cm=$cm"
  done
  echo "$name: new/old wall $(ratio "$new_wm" "$old_wm")x, cpu $(ratio "$new_cm" "$old_cm")x"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
