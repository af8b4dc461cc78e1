#!/usr/bin/env bash
# Mirror set benchmark: throughput with three mirrors vs one, with one of three 10x slower
# vs all fast, and p99 chunk fetch time with and without hedging. The mirrors are real
# HTTP servers on loopback behind simulated links (latency + a shared uplink limit), since
# loopback alone has neither. Prints the figures and the ratios; see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
go test -run '^$' -bench '^BenchmarkMirrors$' -benchtime 1x -count "${COUNT:-1}" ./internal/store |
  grep -E '^(Benchmark|    mirrorset_bench_test)' | sed 's/^    mirrorset_bench_test.go:[0-9]*: //'
