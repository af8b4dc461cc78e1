#!/usr/bin/env bash
# Fleet benchmark (issue 8, item 4): N machines boot the Debian image at the same moment,
# each replaying the reads of a recorded real boot (bench/fleet-trace.sh) through
# nowhere's read path with a cache of its own, against one origin behind a slow link
# (tc tbf in a network namespace, and a delay per request), directly, through squid on
# the LAN, and as LAN peers. Prints the table and appends the figures to
# bench/results/fleet-DATE.csv (bench/results/README.md). Needs root (namespaces).
# Usage: bench/fleet.sh      NS=1,10,50 MODES=direct,peers RATE=100mbit DELAY=40ms PER_PROCESS=25 bench/fleet.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
dir=$(bench/fleet-trace.sh)
CGO_ENABLED=0 go build -o bin/nowhere-fleet ./bench/fleet
mkdir -p bench/results
exec bin/nowhere-fleet run --store "$dir/store" --image debian --key "$dir/fleet.pub" --trace "$dir/trace.txt" \
  --n "${NS:-1,10,50,200}" --modes "${MODES:-direct,proxy,peers}" --rate "${RATE:-100mbit}" --delay "${DELAY:-40ms}" \
  --per-process "${PER_PROCESS:-25}" --results "bench/results/fleet-$(date -u +%Y%m%d-%H%M).csv"
