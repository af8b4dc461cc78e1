#!/usr/bin/env bash
# Before/after comparison of two nowhere binaries on the cold read of benchmark 2 (tar of
# the whole tree through `nowhere serve` + `nowhere mount` + loop mount, page cache
# dropped), interleaved run by run so that the load of a shared machine hits both alike:
#   bench/ab-cold.sh OLD_BINARY NEW_BINARY   (BENCH_RUNS, default 5; BENCH_FS, default ext4;
#                                             BENCH_PACK_FLAGS, e.g. --chunking cdc:16K:64K:256K)
# Each binary serves and mounts with itself. Prints the median tar time and the median CPU
# time of the mount process and of the server (during the tar) per binary, and NEW/OLD.
source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || die "usage: bench/ab-cold.sh OLD_BINARY NEW_BINARY"
RUNS=${BENCH_RUNS:-5}
declare -A bins=([old]=$1 [new]=$2)
declare -A serve_pid=()

# proc_cpu PID: user+system seconds the process has used so far.
proc_cpu() { awk '{printf "%.2f\n", ($14 + $15) / 100}' "/proc/$1/stat"; }

echo "## cold read before/after: $1 vs $2, $RUNS interleaved runs each"
machine
printf '%-9s %-4s %10s %12s %12s\n' fs bin "tar med" "mount cpu" "serve cpu"
for fs in ${BENCH_FS:-ext4}; do
  img=$(images "bookworm-v1.$fs")
  declare -A url_of=()
  for b in old new; do
    NOWHERE=${bins[$b]}
    mapfile -t kf < <(pack_key_flags "$NOWHERE")
    step "$NOWHERE" pack "$img" --store "$work/store-$b" --name "v1-$fs" --progress never \
      ${BENCH_PACK_FLAGS:-} "${kf[@]}" >/dev/null
    serve_store "$work/store-$b"
    url_of[$b]=$url
    serve_pid[$b]=${pids[-1]}
  done
  : >"$work/old"; : >"$work/new"
  for i in $(seq "$RUNS"); do
    for b in old new; do
      NOWHERE=${bins[$b]}
      fuse_mount "${url_of[$b]}/images/v1-$fs" "$work/fuse"
      mount_loop "$work/fuse/v1-$fs.img" "$work/mnt"
      drop_caches
      s0=$(proc_cpu "${serve_pid[$b]}")
      t=$(seconds bash -c "tar -cf - -C '$work/mnt' . | wc -c")
      s1=$(proc_cpu "${serve_pid[$b]}")
      echo "$t $(proc_cpu "$fuse_pid") $(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", b - a}')" >>"$work/$b"
      umount_tracked "$work/mnt"
      fuse_umount "$work/fuse"
    done
  done
  for b in old new; do
    tm=$(cut -d' ' -f1 "$work/$b" | median)
    cm=$(cut -d' ' -f2 "$work/$b" | median)
    sm=$(cut -d' ' -f3 "$work/$b" | median)
    printf '%-9s %-4s %9ss %11ss %11ss\n' "$fs" "$b" "$tm" "$cm" "$sm"
    eval "${b}_t=$tm ${b}_c=$cm ${b}_s=$sm"
    log "$fs $b: $(cut -d' ' -f1 "$work/$b" | tr '\n' ' ')"
  done
  echo "$fs: new/old tar $(ratio "$new_t" "$old_t")x, mount cpu $(ratio "$new_c" "$old_c")x, serve cpu $(ratio "$new_s" "$old_s")x"
done
if [ -s "$work/mount.log" ]; then
  log "messages of the mounts (retries, failures):"
  tail -20 "$work/mount.log" >&2
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
