#!/usr/bin/env bash
# Boot benchmark over emulated WAN links (issue 8): Debian booted in qemu (TCG, 2 vCPUs)
# from a store behind an emulated link (internal/testnet: network namespaces, tbf, a delaying
# proxy), power-on to login prompt, for
#   profile    nowhere with a recorded boot profile in the index (prefetched at start)
#   noprofile  nowhere, same image, no profile
#   2005       fixed 64 KiB chunks, one request at a time, no read-ahead (HTTP-FUSE KNOPPIX)
#   fetch      the whole image with one plain HTTP GET first (dracut root=live:http)
# on the scenarios local (no limits), 1gbit-2ms and 100mbit-40ms. Needs root.
# Usage: bench/wan-boot.sh          RUNS=3 SCENARIOS=100mbit-40ms MODES=profile,fetch bench/wan-boot.sh
# WORK=DIR reuses a work directory (stores, initramfs, recorded profile) from an earlier run;
# SUMMARY=1 WORK=DIR boots nothing and summarizes every boot recorded there (several runs).
# REPLAY=1 WORK=DIR boots nothing: it replays a recorded boot's reads against nowhere mount
# behind each link (the network's part alone, without TCG's CPU time; suite boot-replay).
# PREFETCH=N: the profile's prefetch parallelism (default 16, as nowhere.prefetch).
# The medians are appended to bench/results/wanboot-DATE.csv (RESULTS=FILE to change), the
# shared format date,suite,scenario,method,n,metric,value,unit (suite boot; methods profile,
# noprofile, 2005, download, limit; metrics login s, bytes B, requests 1). The physical limit
# needs the local scenario in the same run (the boot's own time without a network).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
make -s build
kdir=$(scripts/fetch-kernel.sh)
img=$(scripts/mkimage-debian.sh v1)
exec go run ./bench/wanboot -bin "$top/bin/nowhere" -kernel "$kdir/vmlinux" -modules "$kdir/modules" -image "$img" \
  -runs "${RUNS:-3}" -scenarios "${SCENARIOS:-local,1gbit-2ms,100mbit-40ms}" -modes "${MODES:-profile,noprofile,2005,fetch}" \
  ${WORK:+-work "$WORK"} -record-boots "${RECORD_BOOTS:-2}" ${SUMMARY:+-summary} ${REPLAY:+-replay} -prefetch "${PREFETCH:-16}" \
  -csv "${RESULTS:-$top/bench/results/wanboot-$(date -u +%F).csv}"
