#!/usr/bin/env bash
# What an updating client really fetches (issue 7, item 9): Debian v1 -> v2 (v2 = v1 +
# apt-get install python3 curl vim-tiny) as ext4 and squashfs, packed with the default
# (filesystem-aware) chunking into one store per format and served by `nowhere serve` on
# 127.0.0.1. For each format, counted from the server's access log:
#   - full download:      extract v2 with nothing local
#   - extract --seed v1:  extract v2 with the v1 image file as seed
#   - mount --seed v1:    FUSE mount of v2 with the v1 image as seed, whole file read
#   - diff's prediction:  nowhere diff v1 v2 (distinct chunks of v2 that v1 lacks)
# against the floor: the files that changed between the trees, through zstd (level 3).
# Usage: bench/updates.sh (as root, after bench/update-cost.sh built .cache/images-fs/ and
# make build)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
nowhere=${NOWHERE:-$top/bin/nowhere}
cache=.cache/images-fs
[ -x "$nowhere" ] || { echo "updates: build $nowhere first (make build)" >&2; exit 1; }
for f in ext4 squashfs; do for v in v1 v2; do
  [ -f "$cache/bookworm-$v.$f" ] || { echo "updates: run bench/update-cost.sh first ($cache/bookworm-$v.$f)" >&2; exit 1; }
done; done

work=$(mktemp -d /var/tmp/nowhere-bench-updates.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  rm -rf "$work"
}
trap cleanup EXIT

# floor: every regular file of v2 that v1 lacks or holds with other content, in path
# order, as one zstd stream.
floor=$(python3 - "$cache/trees/bookworm-v1" "$cache/trees/bookworm-v2" <<'EOF'
import os, subprocess, sys
t1, t2 = sys.argv[1], sys.argv[2]
changed = []
for d, _, files in os.walk(t2):
    for n in files:
        p = os.path.join(d, n)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        rel = os.path.relpath(p, t2)
        q = os.path.join(t1, rel)
        b = open(p, 'rb').read()
        if os.path.isfile(q) and not os.path.islink(q) and open(q, 'rb').read() == b:
            continue
        changed.append(rel)
changed.sort()
z = subprocess.Popen(['zstd', '-3', '-q', '-c'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
raw = 0
import threading
out = []
t = threading.Thread(target=lambda: out.append(len(z.stdout.read())))
t.start()
for rel in changed:
    b = open(os.path.join(t2, rel), 'rb').read()
    raw += len(b)
    z.stdin.write(b)
z.stdin.close(); t.join(); z.wait()
print(len(changed), raw, out[0])
EOF
)
read -r floor_files floor_raw floor_z <<<"$floor"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
# count FROM_LINE LOG: chunk GETs, body bytes of them, all requests, all body bytes since
# line FROM_LINE of the access log.
count() {
  tail -n +"$1" "$2" | awk '$4 == "GET" || $4 == "HEAD" {
      n++; b += $7; if ($5 ~ /^\/chunks\//) { c++; cb += $7 } }
    END { printf "%d %d %d %d\n", c, cb, n, b }'
}
lines() { wc -l <"$1"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%F), command: bench/updates.sh"
echo "floor: $floor_files changed or added files, $(mib "$floor_raw") raw, $(mib "$floor_z") through zstd -3"
echo
echo "| image | client | chunk requests | chunk bytes | all requests | all bytes | x floor | vs full download | time |"
echo "|---|---|---|---|---|---|---|---|---|"
for f in ext4 squashfs; do
  v1="$cache/bookworm-v1.$f"; v2="$cache/bookworm-v2.$f"
  st="$work/store-$f"
  "$nowhere" pack "$v1" --store "$st" --name debian --progress never >/dev/null
  "$nowhere" pack "$v2" --store "$st" --name debian --progress never >/dev/null
  log="$work/serve-$f.log"
  "$nowhere" serve "$st" --listen 127.0.0.1:0 >"$work/serve-$f.out" 2>"$log" &
  pids+=($!)
  for _ in $(seq 100); do grep -qs 'http://127' "$work/serve-$f.out" && break; sleep 0.1; done
  url=$(grep -o 'http://127[0-9.:]*' "$work/serve-$f.out" | head -1)
  src="$url/images/debian/2"

  read -r pc pb < <("$nowhere" diff "$url/images/debian/1" "$src" --insecure --json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["fetch_chunks"], d["fetch_bytes"])')

  run() { # LABEL CMD...: run a client, print its row
    local label=$1; shift
    local from; from=$(( $(lines "$log") + 1 ))
    local t0 t1; t0=$(date +%s.%N)
    "$@" >"$work/client.out" 2>&1 || { cat "$work/client.out" >&2; exit 1; }
    t1=$(date +%s.%N)
    sleep 0.2 # the access log line follows the response
    read -r c cb n b < <(count "$from" "$log")
    [ "$label" = "full download" ] && full_b=$b
    echo "| $f | $label | $c | $(mib "$cb") | $n | $(mib "$b") | $(awk -v a="$b" -v z="$floor_z" 'BEGIN{printf "%.2f", a/z}') | $(awk -v a="$b" -v z="${full_b:-$b}" 'BEGIN{printf "%.1f%%", 100*a/z}') | $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f s", b-a}') |"
  }
  full_b=
  run "full download" "$nowhere" extract "$src" "$work/out.img" --insecure --progress never
  rm -f "$work/out.img"
  run "extract --seed v1" "$nowhere" extract "$src" "$work/out.img" --insecure --progress never --seed "$v1"
  cmp "$work/out.img" "$v2"
  rm -f "$work/out.img"
  mkdir -p "$work/mnt"
  mountrun() {
    "$nowhere" mount "$src" "$work/mnt" --insecure --seed "$v1" --cache "$work/cache-$f" --daemon --log "$work/mount.log" >/dev/null
    cmp "$work/mnt/debian.img" "$v2"
    "$nowhere" umount "$work/mnt"
  }
  run "mount --seed v1 --cache, whole file read" mountrun
  echo "| $f | diff v1 v2 (prediction) | $pc | $(mib "$pb") | | | | | |"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
