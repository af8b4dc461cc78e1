#!/usr/bin/env bash
# Records what a real boot reads, for the fleet benchmark (bench/fleet.sh): Debian
# bookworm (scripts/mkimage-debian.sh v1) booted in qemu to the login prompt from a
# `nowhere serve` with its access log on; the log's chunk requests up to the login prompt
# become the trace (bench/fleet: nowhere-fleet trace). Keeps the store, its key pair and
# the trace in DIR (default .cache/bench/fleet), and does nothing when they are there.
# Usage: bench/fleet-trace.sh [DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=${1:-$top/.cache/bench/fleet}
if [ -s "$out/trace.txt" ] && [ -d "$out/store" ]; then echo "$out"; exit 0; fi
make -s build
bin="$top/bin/nowhere"
CGO_ENABLED=0 go build -o "$top/bin/nowhere-fleet" ./bench/fleet
kdir=$(scripts/fetch-kernel.sh)
img=$(scripts/mkimage-debian.sh v1)
mkdir -p "$out"
work=$(mktemp -d)
serve_pid=
vm_pid=
cleanup() {
  [ -n "$vm_pid" ] && kill "$vm_pid" 2>/dev/null
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$out/store"
"$bin" keygen --secret "$out/fleet.key" --public "$out/fleet.pub" --no-password --force >/dev/null
"$bin" pack "$img" --store "$out/store" --name debian --progress never --sign-key "$out/fleet.key" >/dev/null
"$bin" initramfs -o "$work/initrd.img" --modules "$kdir/modules" --key "$out/fleet.pub" >/dev/null
"$bin" serve "$out/store" --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/access.log" &
serve_pid=$!
for _ in $(seq 100); do grep -q 'serving' "$work/serve.out" && break; sleep 0.1; done
addr=$(sed -n 's/.* on http:\/\/\(.*\)$/\1/p' "$work/serve.out")
echo "fleet-trace: booting Debian from $addr to record what it reads" >&2
"$bin" vm --kernel "$kdir/vmlinux" --initrd "$work/initrd.img" --forward "$addr" \
  --append "nowhere.image=http://10.0.2.100/images/debian loglevel=4 demo.poweroff" \
  --expect 'login: *$' --quiet --log "$work/console" --timeout 10m 2>"$work/vm.log" &
vm_pid=$!
# The trace ends at the login prompt: what the shutdown reads after it is not the boot.
until=
while kill -0 "$vm_pid" 2>/dev/null; do
  if [ -z "$until" ] && grep -q 'nowhere vm: /login' "$work/vm.log"; then
    until=$(date +'%Y/%m/%d %H:%M:%S.%6N')
  fi
  sleep 0.05
done
wait "$vm_pid" || true
vm_pid=
[ -n "$until" ] || { echo "fleet-trace: the boot never reached the login prompt" >&2; tail -20 "$work/console" >&2; exit 1; }
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=
cp "$work/access.log" "$out/access.log"
"$top/bin/nowhere-fleet" trace --log "$out/access.log" --until "$until" --store "$out/store" --image debian -o "$out/trace.txt" >&2
echo "$out"
