#!/usr/bin/env bash
# `make bench`: runs the benchmarks named in SUITES (default: fleet), then bench/plot,
# which writes the charts (docs/img/*.png) and the tables in docs/benchmarks.md from
# everything in bench/results.
# Usage: bench/run.sh      SUITES="fleet boot mirrors" bench/run.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
for s in ${SUITES:-fleet}; do
  case "$s" in
    fleet) bench/fleet.sh ;;
    boot) bench/boot.sh ;;
    mirrors) bench/mirrors.sh ;;
    *) echo "bench/run.sh: unknown suite $s (fleet, boot, mirrors)" >&2; exit 2 ;;
  esac
done
(cd bench/plot && go run . -results ../results -img ../../docs/img -doc ../../docs/benchmarks.md)
