#!/usr/bin/env bash
# Installs the Debian packages nowhere's build, tests and demo need, only those missing.
# Usage: scripts/install-deps.sh [test|demo|bench|arm64]...   (arm64: what make demo ARCH=arm64
# needs beyond demo: the arm64 machine and firmware, qemu-user-static for the arm64 root)
set -euo pipefail
want=("$@"); [ ${#want[@]} -gt 0 ] || want=(test)
"$(dirname "$0")/check-go.sh" # Go >= go.mod's, bootstrapped into .cache/go when missing (Debian 12 has 1.19)

pkgs=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || pkgs+=("$2")
}
need_static() { # need_static COMMAND PACKAGE: COMMAND on PATH must be statically linked
  # (the boot tests copy it into VM roots that have no libc). ldd exits non-zero on a static binary.
  local p
  p=$(command -v "$1" 2>/dev/null) && [ -x "$p" ] && ! ldd "$p" >/dev/null 2>&1 || pkgs+=("$2")
}
for w in "${want[@]}"; do
  case "$w" in
    test|demo|bench)
      need fusermount3 fuse3
      need mkfs.ext4 e2fsprogs
      need mksquashfs squashfs-tools
      need mkfs.erofs erofs-utils
      # Only the tests and benchmarks serve through nginx, a squid proxy and minisign keys; the demo does not.
      if [ "$w" != demo ]; then
        need nginx nginx-light
        need squid squid   # caching proxy for the mirror/proxy tests (started by the tests, not as a service)
        need minisign minisign
      fi
      need zstd zstd
      need sha256sum coreutils
      need cpio cpio
      need depmod kmod
      need qemu-system-x86_64 qemu-system-x86
      need_static busybox busybox-static   # Debian's busybox package is dynamically linked
      # The NICs' iPXE ROMs (efi-virtio.rom) for network boots (nowhere vm --netboot, TestNetBootMenu).
      [ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || [ -e /usr/share/qemu/efi-virtio.rom ] || pkgs+=(ipxe-qemu)
      need debootstrap debootstrap
      need systemd-nspawn systemd-container   # pack --profile-boot, profile record --container: boots in a container
      need python3 python3
      need ip iproute2
      need curl curl
      # Real-PC boots (bootdisk, uki, serve --pxe) and their firmware tests: loaders and firmware come from
      # Debian's packages, never built here.
      [ -e /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ] || pkgs+=(ovmf)
      [ -e /usr/lib/shim/shimx64.efi.signed ] || pkgs+=(shim-signed)
      [ -e /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed ] || pkgs+=(grub-efi-amd64-signed)
      [ -e /usr/lib/systemd/boot/efi/linuxx64.efi.stub ] || pkgs+=(systemd-boot-efi)
      [ -e /usr/lib/ipxe/undionly.kpxe ] && [ -e /usr/lib/ipxe/ipxe.efi ] || pkgs+=(ipxe)
      [ -e /usr/lib/SYSLINUX/gptmbr.bin ] || pkgs+=(syslinux)
      [ -d /usr/lib/syslinux/modules/bios ] || pkgs+=(syslinux-common)
      [ -e /usr/lib/ISOLINUX/isolinux.bin ] || pkgs+=(isolinux)
      need grub-script-check grub-common   # checks the generated grub.cfg in the unit tests
      need sbsign sbsigntool
      need objcopy binutils
      need openssl openssl
      need xorriso xorriso
      need mcopy mtools
      need mkfs.vfat dosfstools
      need sfdisk fdisk
      need dnsmasq dnsmasq-base   # the LAN's own DHCP server in the PXE tests
      # The native-boot benchmark's no-chunking alternatives (bench/native-boot.sh): the raw image by HTTP
      # Range requests through nbdkit's curl plugin and cache filter (both in Debian 12's nbdkit), attached
      # with nbdfuse (this kernel has no nbd driver), and through httpfs2.
      if [ "$w" = bench ]; then
        need nbdkit nbdkit
        need nbdfuse libnbd-bin
        need httpfs2 httpfs2
      fi
      # arm64 machines: qemu-system-aarch64 and AAVMF (arm64 UEFI, also with Secure Boot keys). The arm64
      # kernel and loaders are foreign-architecture packages that scripts/fetch-kernel.sh arm64 downloads
      # and unpacks under .cache, never installs.
      need qemu-system-aarch64 qemu-system-arm
      [ -e /usr/share/AAVMF/AAVMF_CODE.ms.fd ] || pkgs+=(qemu-efi-aarch64)
      need aarch64-linux-gnu-objcopy binutils-aarch64-linux-gnu   # writes arm64 PE images: nowhere uki --arch arm64
      ;;
    arm64)
      need qemu-system-aarch64 qemu-system-arm
      [ -e /usr/share/AAVMF/AAVMF_CODE.ms.fd ] || pkgs+=(qemu-efi-aarch64)
      [ -e /usr/bin/qemu-aarch64-static ] || pkgs+=(qemu-user-static)   # runs the arm64 root's maintainer scripts
      need aarch64-linux-gnu-objcopy binutils-aarch64-linux-gnu
      need debootstrap debootstrap
      ;;
    *) echo "install-deps: unknown set '$w' (want test, demo, bench or arm64)" >&2; exit 2 ;;
  esac
done
[ -e /etc/ssl/certs/ca-certificates.crt ] || pkgs+=(ca-certificates)
if [ ${#pkgs[@]} -eq 0 ]; then exit 0; fi
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
echo "install-deps: installing ${pkgs[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2
# Packages that start a system service on install (nginx, squid) must not hold ports the tests use:
# tests start their own instances with their own configs on loopback. Stop and disable the
# services of the packages installed just now (a service that was there before is left alone).
for p in "${pkgs[@]}"; do
  case "$p" in nginx*) svc=nginx ;; squid) svc=squid ;; *) continue ;; esac
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$svc" >&2 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    $sudo "/etc/init.d/$svc" stop >&2 || true
    $sudo update-rc.d "$svc" disable >&2 || true
  fi
done
