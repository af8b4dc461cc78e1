#!/usr/bin/env bash
# Mirror set benchmark: throughput with three mirrors vs one, with one of three 10x slower
# vs all fast, and p99 chunk fetch time with and without hedging. The mirrors are real
# HTTP servers on loopback behind simulated links (latency + a shared uplink limit), since
# loopback alone has neither. Then one honest mirror among ten tarpits (mirrors that answer
# probes and stall on chunks) against that mirror alone. Prints the figures and the ratios;
# see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
go test -run '^$' -bench '^Benchmark(Mirrors|Tarpits)$' -benchtime 1x -count "${COUNT:-1}" ./internal/store |
  grep -E '^(Benchmark|    (mirrorset|tarpit)_bench_test)' | sed -E 's/^    (mirrorset|tarpit)_bench_test.go:[0-9]*: //'
