#!/usr/bin/env bash
# Benchmark 4: update cost v1 -> v2. For each filesystem and chunking, v1 and v2 are packed
# into one store; the cost of the update is what a client holding v1 must fetch for v2: the
# distinct chunks of v2 that v1 lacks (one HTTP request each) and their compressed bytes,
# next to a full download of v2. The floor is the changed files through zstd (issue 6).
# "default" is pack's default (auto: file-data boundaries of ext4, erofs and squashfs since
# issue 6), cdc:16K:64K:256K the content-defined chunking it uses elsewhere.
# Deterministic: no repeats needed.
source "$(dirname "$0")/lib.sh"

echo "## update cost v1 -> v2: chunks and compressed bytes in v2 that v1 lacks"
machine
printf '%-9s %-30s %9s %11s %9s %11s %7s\n' fs chunking requests "new MiB" "v2 chunks" "v2 MiB" "% of v2"
for fs in ${BENCH_FS:-ext4 squashfs erofs}; do
  v1=$(images "bookworm-v1.$fs")
  v2=$(images "bookworm-v2.$fs")
  for c in fixed:64K fixed:4K cdc:16K:64K:256K default; do
    s="$work/update-$fs-${c/:/-}"
    flag=()
    [ "$c" = default ] || flag=(--chunking "$c")
    step "$NOWHERE" pack "$v1" --store "$s" --name u --progress never "${flag[@]}" >/dev/null
    step "$NOWHERE" pack "$v2" --store "$s" --name u --progress never "${flag[@]}" >/dev/null
    read -r nn nb an ab spec < <(benchtool updatecost "$s/images/u/1.index" "$s/images/u/2.index")
    printf '%-9s %-30s %9d %11.1f %9d %11.1f %6.0f%%\n' "$fs" "$c ($spec)" "$nn" \
      "$(awk -v b="$nb" 'BEGIN {print b / 1048576}')" "$an" "$(awk -v b="$ab" 'BEGIN {print b / 1048576}')" \
      "$(awk -v a="$nb" -v b="$ab" 'BEGIN {print 100 * a / b}')"
    rm -rf "$s"
  done
done
