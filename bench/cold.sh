#!/usr/bin/env bash
# Benchmark 2: cold read of the whole tree.
#   nowhere: `nowhere serve` on 127.0.0.1, `nowhere mount` of the image over HTTP (a fresh
#            process: empty memory cache, no disk cache), loop mount of NAME.img, then
#            `tar -cf - -C MNT . | wc -c`
#   baseline: loop mount of the raw image file, the same tar
# The page cache is dropped before every timed tar (the server's chunk files and the raw
# image both come from disk). Goal: nowhere <= 2x the local time. ext4, squashfs, erofs.
source "$(dirname "$0")/lib.sh"

tar_bytes() { tar -cf - -C "$1" . | wc -c; }

# time_tar DIR: drops caches, prints "seconds bytes".
time_tar() {
  drop_caches
  local t0 t1 n
  t0=$(date +%s.%N)
  n=$(step bash -c "tar -cf - -C '$1' . | wc -c")
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN {printf "%.3f %d\n", b - a, n}'
}

# Each image is packed with each chunking: pack's default (auto: file-data boundaries of
# ext4, erofs and squashfs) and the content-defined cdc:16K:64K:256K, which cuts 2-2.6x
# fewer chunks (requests) from these images.
chunkings=(${BENCH_CHUNKINGS:-auto cdc:16K:64K:256K})
store="$work/store"
for fs in ${BENCH_FS:-ext4 squashfs erofs}; do
  img=$(images "bookworm-v1.$fs")
  for c in "${!chunkings[@]}"; do
    mapfile -t kf < <(pack_key_flags "$NOWHERE")
    step "$NOWHERE" pack "$img" --store "$store" --name "v1-$fs-$c" --chunking "${chunkings[c]}" \
      --progress never "${kf[@]}" >/dev/null
  done
done
serve_store "$store"

echo "## cold read of the whole tree: tar through nowhere mount over loopback HTTP vs local loop mount (median of $RUNS)"
machine
printf '%-9s %-18s %12s %10s %10s %7s %s\n' fs chunking tree local nowhere ratio "goal <=2"
for fs in ${BENCH_FS:-ext4 squashfs erofs}; do
  img=$(images "bookworm-v1.$fs")
  for c in "${!chunkings[@]}"; do
    name="v1-$fs-$c"
    locals=() remotes=() lbytes="" rbytes=""
    for i in $(seq "$RUNS"); do
      mount_loop "$img" "$work/local"
      read -r t lbytes < <(time_tar "$work/local")
      locals+=("$t")
      umount_tracked "$work/local"

      fuse_mount "$url/images/$name" "$work/fuse"
      mount_loop "$work/fuse/$name.img" "$work/remote"
      read -r t rbytes < <(time_tar "$work/remote")
      remotes+=("$t")
      umount_tracked "$work/remote"
      fuse_umount "$work/fuse"
      [ "$lbytes" = "$rbytes" ] || die "$fs: tar of the local mount gave $lbytes bytes, through nowhere $rbytes"
    done
    l=$(printf '%s\n' "${locals[@]}" | median)
    r=$(printf '%s\n' "${remotes[@]}" | median)
    q=$(ratio "$r" "$l")
    log "$fs ${chunkings[c]}: local ${locals[*]} / nowhere ${remotes[*]}"
    printf '%-9s %-18s %8s MiB %9ss %9ss %6sx %s\n' "$fs" "${chunkings[c]}" $((lbytes >> 20)) "$l" "$r" "$q" \
      "$(awk -v r="$q" 'BEGIN {print (r <= 2) ? "met" : "NOT met"}')"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
