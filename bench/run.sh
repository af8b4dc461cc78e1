#!/usr/bin/env bash
# `make bench`: runs nowhere's benchmarks, keeps their output in .cache/bench/, then runs
# bench/plot, which writes the charts (docs/img/*.png) and the tables in docs/benchmarks.md
# from everything in bench/results (bench/results/README.md).
#   bench/run.sh [pack|cold|warm|update|fleet|boot|mirrors|nativeboot|plot]...
# Default: pack cold warm update (issue 2), fleet (issue 8), then plot. plot always runs
# last, also when not named. boot (qemu, slow), mirrors and nativeboot (systemd-nspawn boots
# over emulated lines, bench/native-boot.sh) run only when named.
# Needs root (loop mounts, FUSE, drop_caches, network namespaces), bin/nowhere (make build),
# zstd, the mkfs tools, squid and the Debian roots (scripts/mkroot-debian.sh; built on first
# use). Each benchmark cleans up its mounts, servers and temporary stores, even when
# interrupted. BENCH_RUNS (default 3) sets the issue 2 repeats; the median is reported.
# The fleet suite takes NS, MODES, RATE, DELAY (bench/fleet.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=(pack cold warm update fleet)
for b in "${want[@]}"; do
  case "$b" in
    pack|cold|warm|update|fleet|boot|mirrors|nativeboot|plot) ;;
    *) echo "bench: unknown benchmark '$b' (want pack, cold, warm, update, fleet, boot, mirrors, nativeboot or plot)" >&2; exit 2 ;;
  esac
done
mkdir -p "$top/.cache/bench"
out="$top/.cache/bench/results-$(date +%Y%m%d-%H%M%S).txt"
for b in "${want[@]}"; do
  case "$b" in pack|cold|warm|update) "$top/bench/mkimages.sh" >/dev/null; break ;; esac
done
for b in "${want[@]}"; do
  [ "$b" != plot ] || continue
  echo "# $b, $(date -Is), commit $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
  case "$b" in
    nativeboot) "$top/bench/native-boot.sh" ;;
    *) "$top/bench/$b.sh" ;;
  esac
  echo
done 2>&1 | tee "$out"
echo "bench: results in $out" >&2
cd "$top/bench/plot"
go run . -results ../results -img ../../docs/img -doc ../../docs/benchmarks.md
