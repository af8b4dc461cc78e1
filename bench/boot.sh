#!/usr/bin/env bash
# Boot benchmark (issue 3, item 7): Debian bookworm with systemd in qemu, from power-on to
# the login prompt on the serial console, with the root filesystem
#   stream    fetched on demand (nowhere's normal boot, no read-ahead)
#   stream-raSIZE  same, read-ahead SIZE (stream-ra0: off)
#   toram     downloaded whole first, then booted from the copy in RAM (nowhere.toram)
# Same kernel, initramfs, image, store and loopback server for all; the guest reaches the
# server through qemu user networking. Prints one line per run and a summary with the
# ratios against the toram baseline measured in the same run.
# Usage: bench/boot.sh            RUNS=3 MODES="stream toram" bench/boot.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-2}
modes=${MODES:-"stream stream-ra2M toram"}
cd "$top"
make -s build
bin="$top/bin/nowhere"
kdir=$(scripts/fetch-kernel.sh)
img=$(scripts/mkimage-debian.sh v1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" keygen --secret "$work/bench.key" --public "$work/bench.pub" --no-password >/dev/null
"$bin" pack "$img" --store "$work/store" --name debian --progress never --sign-key "$work/bench.key" >/dev/null
"$bin" initramfs -o "$work/initrd.img" --modules "$kdir/modules" --key "$work/bench.pub" >/dev/null

echo "# boot benchmark $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs, $(uname -r); image $(du -m "$img" | cut -f1) MiB squashfs"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %3s %14s %12s %9s %10s\n' mode run login_s fetched_MiB requests powered_off
results="$work/results"
for mode in $modes; do
  case "$mode" in
    stream) extra="" ;;
    stream-ra*) extra="nowhere.readahead=${mode#stream-ra}" ;;
    toram) extra="nowhere.toram" ;;
    *) echo "bench/boot.sh: unknown mode $mode" >&2; exit 2 ;;
  esac
  for i in $(seq 1 "$runs"); do
    log="$work/$mode-$i.log"
    "$bin" vm --kernel "$kdir/vmlinux" --initrd "$work/initrd.img" --store "$work/store" --image debian \
      --append "loglevel=4 demo.poweroff $extra" --expect 'login: *$' --quiet --log "$work/$mode-$i.console" \
      --timeout 10m 2>"$log" || true
    line=$(grep -m1 '^booted from HTTP' "$log" || true)
    if [ -z "$line" ]; then
      echo "bench/boot.sh: $mode run $i never reached the login prompt:" >&2
      tail -n 20 "$work/$mode-$i.console" >&2
      exit 1
    fi
    # booted from HTTP: fetched X MiB of Y MiB in Z s (N requests)
    read -r fetched secs reqs < <(sed -E 's/.*fetched ([0-9.]+) MiB of [0-9.]+ MiB in ([0-9.]+) s \(([0-9]+) requests\).*/\1 \2 \3/' <<<"$line")
    off=no; grep -q 'guest powered off' "$log" && off=yes
    printf '%-14s %3s %14s %12s %9s %10s\n' "$mode" "$i" "$secs" "$fetched" "$reqs" "$off"
    echo "$mode $secs $fetched $reqs" >> "$results"
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" <<'PY'
import sys, statistics
rows = {}
for l in open(sys.argv[1]):
    m, s, f, r = l.split()
    rows.setdefault(m, []).append((float(s), float(f), int(r)))
med = {m: tuple(statistics.median(x[i] for x in v) for i in range(3)) for m, v in rows.items()}
print("# medians: " + "; ".join(f"{m} {s:.1f} s, {f:.1f} MiB, {r:.0f} requests" for m, (s, f, r) in med.items()))
if "toram" in med:
    bs, bf, _ = med["toram"]
    for m, (s, f, r) in med.items():
        if m != "toram":
            print(f"# {m} vs toram: time {s/bs:.2f}x, bytes {f/bf:.2f}x")
PY
