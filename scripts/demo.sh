#!/usr/bin/env bash
# `make demo`: boots Debian bookworm (systemd) in a VM whose root filesystem is fetched
# over plain HTTP, on demand, from a store served on this machine's loopback.
#   1. the Debian kernel (downloaded once into .cache, never installed in /boot)
#   2. the Debian root (debootstrap, once) made into a squashfs image with a demo unit
#   3. nowhere pack: the image cut into chunks in a store, signed with a demo key
#   4. nowhere initramfs: /init = nowhere, the kernel modules the boot needs, and the
#      demo key's public half (the boot refuses images it cannot verify)
#   5. nowhere vm: qemu boots it; the guest reaches only http://10.0.2.100/ = the store
# The VM powers off by itself once the login prompt is up. To log in (root, no password):
#   make demo DEMO_INTERACTIVE=1      (quit qemu with Ctrl-A X)
# As a diskless machine (no -kernel: qemu's iPXE fetches the boot menu /boot.ipxe, whose
# default entry fetches the kernel and initramfs over HTTP too):
#   make demo DEMO_NETBOOT=1
# Like a real PC, from the USB stick `nowhere bootdisk` writes, through the firmware's own boot
# (bios: SeaBIOS -> SYSLINUX; uefi: OVMF -> shim -> GRUB; secureboot: the same with Secure Boot
# enforced under Microsoft's keys, as PCs are sold):
#   make demo DEMO_FIRMWARE=uefi        (or bios, secureboot)
# An arm64 machine (qemu's virt machine, TCG here) booting Debian's arm64 kernel into the
# arm64 Debian image (debootstrapped once through qemu-user-static), directly or through
# AAVMF and the arm64 USB stick (DEMO_FIRMWARE=uefi or secureboot):
#   make demo ARCH=arm64
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
interactive=${DEMO_INTERACTIVE:-0}
netboot=${DEMO_NETBOOT:-0}
firmware=${DEMO_FIRMWARE:-}
arch=${DEMO_ARCH:-amd64}
case "$firmware" in ""|bios|uefi|secureboot) ;; *) echo "demo: DEMO_FIRMWARE=$firmware: want bios, uefi or secureboot" >&2; exit 2 ;; esac
case "$arch" in amd64|arm64) ;; *) echo "demo: ARCH=$arch: want amd64 or arm64" >&2; exit 2 ;; esac
if [ "$arch" = arm64 ] && { [ "$netboot" = 1 ] || [ "$firmware" = bios ]; }; then
  echo "demo: ARCH=arm64 has no BIOS and no iPXE netboot: leave out DEMO_NETBOOT, or DEMO_FIRMWARE=uefi or secureboot" >&2; exit 2
fi
[ "${1:-}" = "--interactive" ] && interactive=1
if [ "$arch" = arm64 ]; then scripts/install-deps.sh demo arm64; else scripts/install-deps.sh demo; fi
[ -x bin/nowhere ] && [ -x bin/nowhere-arm64 ] || make -s build
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "kernel"
kdir=$(scripts/fetch-kernel.sh "$arch")
say "Debian $arch root and image (built once, cached in .cache)"
img=$(scripts/mkimage-debian.sh v1 "$arch")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "pack $(du -h "$img" | cut -f1) image into a chunk store, signed"
bin/nowhere keygen --secret "$work/demo.key" --public "$work/demo.pub" --no-password >/dev/null
bin/nowhere pack "$img" --store "$work/store" --name debian --arch "$arch" --progress never --sign-key "$work/demo.key"
say "initramfs"
bin/nowhere initramfs -o "$work/initrd.img" --modules "$kdir/modules" --key "$work/demo.pub"
say "boot: qemu, the root streamed from the store over HTTP"
args=(--kernel "$kdir/vmlinux" --initrd "$work/initrd.img" --store "$work/store" --image debian
      --expect 'login: *$')
if [ "$arch" = arm64 ]; then
  # One vCPU: under TCG a second one only competes for the host's cores.
  args=(--arch arm64 --smp 1 --kernel "$kdir/vmlinuz" --initrd "$work/initrd.img" --store "$work/store" --image debian
        --expect 'login: *$')
fi
if [ "$netboot" = 1 ]; then
  say "network boot: iPXE -> http://10.0.2.100/boot.ipxe -> kernel, initramfs, root over HTTP"
  args=(--netboot --kernel "$kdir/vmlinuz" --initrd "$work/initrd.img" --store "$work/store" --image debian
        --expect 'login: *$')
fi
if [ -n "$firmware" ]; then
  say "boot media: nowhere bootdisk (shim, GRUB, SYSLINUX, the signed kernel, the initramfs with the key)"
  extra="loglevel=4"; [ "$interactive" = 1 ] || extra="$extra demo.poweroff"
  console="console=tty0 console=ttyS0,115200"; [ "$arch" = arm64 ] && console="console=ttyAMA0,115200"
  bin/nowhere bootdisk -o "$work/usb.img" --arch "$arch" --kernel "$kdir/vmlinuz" --modules "$kdir/modules" \
    --image "http://10.0.2.100/images/debian" --key "$work/demo.pub" --timeout 2s \
    --append "$console $extra"
  say "boot: $firmware firmware -> the USB stick -> the root streamed from the store over HTTP"
  args=(--firmware "$firmware" --usb "$work/usb.img" --store "$work/store" --image debian --expect 'login: *$')
  [ "$arch" = arm64 ] && args=(--arch arm64 --smp 1 "${args[@]}")
fi
if [ "$interactive" = 1 ]; then
  bin/nowhere vm "${args[@]}" --append "loglevel=4" --interactive --timeout 0
else
  bin/nowhere vm "${args[@]}" --append "loglevel=4 demo.poweroff" --timeout 15m
fi
