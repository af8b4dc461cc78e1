#!/usr/bin/env bash
# Runs nowhere's benchmarks (issue 2) and keeps their output in .cache/bench/.
#   bench/run.sh [pack|cold|warm|update]...   (default: all four)
# Needs root (loop mounts, FUSE, drop_caches), bin/nowhere (make build), zstd, the mkfs
# tools and the Debian roots (scripts/mkroot-debian.sh; built on first use). Each benchmark
# cleans up its mounts, servers and temporary stores, even when interrupted.
# BENCH_RUNS (default 3) sets the repeats; the median is reported.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=(pack cold warm update)
for b in "${want[@]}"; do
  case "$b" in
    pack|cold|warm|update) ;;
    *) echo "bench: unknown benchmark '$b' (want pack, cold, warm or update)" >&2; exit 2 ;;
  esac
done
mkdir -p "$top/.cache/bench"
out="$top/.cache/bench/results-$(date +%Y%m%d-%H%M%S).txt"
"$top/bench/mkimages.sh" >/dev/null
for b in "${want[@]}"; do
  echo "# $b, $(date -Is), commit $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
  "$top/bench/$b.sh"
  echo
done 2>&1 | tee "$out"
echo "bench: results in $out" >&2
