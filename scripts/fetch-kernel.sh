#!/usr/bin/env bash
# Usage: scripts/fetch-kernel.sh [amd64|arm64]   (default amd64)
# Downloads Debian's signed kernel package for ARCH (never installs it into the host's
# /boot), unpacks it under .cache/kernel/VERSION, runs depmod (the .deb ships no
# modules.dep). amd64: also extracts the uncompressed PVH vmlinux (boots ~4 s faster than
# bzImage under TCG). arm64 (a foreign architecture here, through dpkg --add-architecture):
# also unpacks that architecture's boot loaders and busybox into the same tree (x/usr/lib/
# shim/shimaa64.efi.signed, x/usr/lib/grub/arm64-efi-signed/, x/usr/lib/systemd/boot/efi/
# linuxaa64.efi.stub, x/bin/busybox), where nowhere bootdisk/uki/serve --pxe --arch arm64
# and the tests find them. Prints the kernel directory. Idempotent: does nothing when done.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-amd64}
case "$arch" in
  amd64|arm64) ;;
  *) echo "fetch-kernel: architecture $arch: want amd64 or arm64" >&2; exit 2 ;;
esac
kver=${NOWHERE_KVER:-6.1.0-56-$arch}
case "$kver" in
  *-"$arch") ;;
  *) echo "fetch-kernel: NOWHERE_KVER=$kver is not an $arch kernel" >&2; exit 2 ;;
esac
dir="$top/.cache/kernel/$kver"
if [ -f "$dir/done" ]; then echo "$dir"; exit 0; fi
command -v depmod >/dev/null || { echo "fetch-kernel: depmod missing (apt-get install kmod)" >&2; exit 1; }
pkgs=("linux-image-$kver")
host=$(dpkg --print-architecture)
if [ "$arch" != "$host" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    echo "fetch-kernel: dpkg --add-architecture $arch (to download $arch packages; nothing of it is installed)" >&2
    dpkg --add-architecture "$arch"
    apt-get update -q >&2
  fi
  loaders=(shim-signed shim-helpers-"$arch"-signed systemd-boot-efi busybox-static)
  case "$arch" in arm64) loaders+=(grub-efi-arm64-signed) ;; esac
  for p in "${loaders[@]}"; do pkgs+=("$p:$arch"); done
  pkgs[0]="linux-image-$kver:$arch"
fi
mkdir -p "$dir.tmp"
cd "$dir.tmp"
if [ ! -f downloaded ]; then
  # apt-get download runs as _apt where it can; the cache may not be theirs to write.
  apt-get download "${pkgs[@]}" >&2 || { apt-get update -q >&2 && apt-get download "${pkgs[@]}" >&2; }
  touch downloaded
fi
rm -rf x && for deb in ./*.deb; do dpkg -x "$deb" x; done
depmod -b x "$kver"
# Debian's arm64 vmlinuz is already an uncompressed EFI-stub Image: qemu -kernel and UEFI
# both start it as it is. amd64's bzImage holds an xz-compressed ELF vmlinux.
[ "$arch" = arm64 ] || python3 - "x/boot/vmlinuz-$kver" vmlinux <<'PY'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
i = data.find(b'\xfd7zXZ\x00')
if i < 0:
    sys.exit("fetch-kernel: no xz payload in " + sys.argv[1])
d = lzma.LZMADecompressor()
out = d.decompress(data[i:])
if out[:4] != b'\x7fELF':
    sys.exit("fetch-kernel: xz payload is not an ELF vmlinux")
open(sys.argv[2], 'wb').write(out)
PY
cp "x/boot/vmlinuz-$kver" vmlinuz
ln -sfn "x/lib/modules/$kver" modules
touch done
cd "$top"
rm -rf "$dir" && mv "$dir.tmp" "$dir"
echo "$dir"
