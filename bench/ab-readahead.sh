#!/usr/bin/env bash
# Before/after comparison of two nowhere binaries' read-ahead on cold sequential reads over
# loopback, interleaved run by run so that the load of a shared machine hits both alike:
#   bench/ab-readahead.sh OLD_BINARY NEW_BINARY IMAGE   (BENCH_RUNS, default 5; IMAGE: a
#                                                         squashfs, ext4 or erofs image)
# Each binary packs, serves and mounts with itself (default --readahead). Per run, with the
# page cache dropped and a fresh mount each time: `dd bs=1M iflag=direct` of the whole image
# file (a long sequential read), and a loop mount of it with `tar -cf - . | wc -c` (the
# cold read of the tree). Prints median seconds and the median bytes each mount fetched
# (nowhere_mirror_bytes_total), per binary, and NEW/OLD.
source "$(dirname "$0")/lib.sh"
[ $# -eq 3 ] && [ -x "$1" ] && [ -x "$2" ] && [ -f "$3" ] || die "usage: bench/ab-readahead.sh OLD_BINARY NEW_BINARY IMAGE"
RUNS=${BENCH_RUNS:-5}
declare -A bins=([old]=$1 [new]=$2)
img=$3

# fetched PORT: bytes the mount with metrics on PORT fetched from its mirrors.
fetched() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^nowhere_mirror_bytes_total/ {s += $2} END {printf "%d\n", s}'; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "## read-ahead before/after: $1 vs $2 on $(basename "$img") ($(stat -c %s "$img") bytes), $RUNS interleaved runs each"
machine
declare -A url_of=()
for b in old new; do
  NOWHERE=${bins[$b]}
  mapfile -t kf < <(pack_key_flags "$NOWHERE")
  step "$NOWHERE" pack "$img" --store "$work/store-$b" --name ra --progress never "${kf[@]}" >/dev/null
  serve_store "$work/store-$b"
  url_of[$b]=$url
done
for b in old new; do : >"$work/dd-$b"; : >"$work/tar-$b"; done
for i in $(seq "$RUNS"); do
  for b in old new; do
    NOWHERE=${bins[$b]}
    p=$(port)
    fuse_mount "${url_of[$b]}/images/ra" "$work/fuse" --metrics "127.0.0.1:$p"
    drop_caches
    t=$(seconds dd if="$work/fuse/ra.img" of=/dev/null bs=1M iflag=direct status=none)
    echo "$t $(fetched "$p")" >>"$work/dd-$b"
    fuse_umount "$work/fuse"
    p=$(port)
    fuse_mount "${url_of[$b]}/images/ra" "$work/fuse" --metrics "127.0.0.1:$p"
    mount_loop "$work/fuse/ra.img" "$work/mnt"
    drop_caches
    t=$(seconds bash -c "tar -cf - -C '$work/mnt' . | wc -c")
    echo "$t $(fetched "$p")" >>"$work/tar-$b"
    umount_tracked "$work/mnt"
    fuse_umount "$work/fuse"
  done
done
printf '%-5s %-4s %10s %14s\n' read bin "seconds" "bytes fetched"
for r in dd tar; do
  for b in old new; do
    tm=$(cut -d' ' -f1 "$work/$r-$b" | median)
    bm=$(cut -d' ' -f2 "$work/$r-$b" | median)
    printf '%-5s %-4s %10s %14s\n' "$r" "$b" "$tm" "$bm"
    eval "${b}_t=$tm ${b}_b=$bm"
    log "$r $b: $(cut -d' ' -f1 "$work/$r-$b" | tr '\n' ' ')"
  done
  echo "$r: new/old time $(ratio "$new_t" "$old_t")x, bytes $(ratio "$new_b" "$old_b")x"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
