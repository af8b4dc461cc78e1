#!/usr/bin/env bash
# The headline benchmark (issue 17 item 1): the Debian image booted with systemd-nspawn -b
# (native speed) to multi-user.target behind emulated lines (internal/testnet), from the
# start of the mount or download to the container's READY=1, for
#   local     the image on the local disk (no line): the baseline
#   download  curl the whole image, then loop-mount it (download-first)
#   nowhere   nowhere mount, defaults        profile  the version packed with --profile-boot
#   2005      fixed 64 KiB chunks, --parallel 1, --readahead 0, --prefetch 0
#   nbdkit    the raw image by HTTP Range: nbdkit curl plugin + cache filter, nbdfuse
#   httpfs2   the raw image by HTTP Range through httpfs2
#   desync    desync mount-index, when desync is on the PATH (else the row says 'not run')
# Rounds interleave the methods; page caches are dropped before each boot. It prints every
# boot, then the medians with bytes over the line and the ratios against download-first and
# against the physical limit (max(local boot, working set / bandwidth + 1 RTT)).
# Needs root (namespaces, FUSE, loop devices, nspawn), systemd-container, nbdkit, libnbd-bin,
# httpfs2 (scripts/install-deps.sh bench). Usage:
#   bench/native-boot.sh     RUNS=3 SCENARIOS=100mbit-40ms METHODS=local,download,profile bench/native-boot.sh
# WORK=DIR keeps the stores between runs (default .cache/nativeboot).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
make -s build
img=$(scripts/mkimage-debian.sh v1)
exec go run ./bench/nativeboot -bin "$top/bin/nowhere" -image "$img" -work "${WORK:-$top/.cache/nativeboot}" \
  -runs "${RUNS:-3}" -scenarios "${SCENARIOS:-100mbit-40ms,1gbit-2ms,20mbit-100ms}" \
  -methods "${METHODS:-local,download,nowhere,profile,2005,nbdkit,httpfs2,desync}"
