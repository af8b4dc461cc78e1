#!/usr/bin/env bash
# Makes the Debian image that `make demo`, the boot benchmark and the systemd boot test
# boot: the bookworm root from scripts/mkroot-debian.sh plus a few units, as a squashfs
# (zstd). The units act only when the kernel command line asks:
#   demo.poweroff  power off a few seconds after the login prompt is up (demo, benchmark)
#   e2e.check      after multi-user.target: check the root daemon, print E2E-SYSTEMD-OK,
#                  power off (tests)
# The root account has no password (log in on the console of your own VM).
# Usage: scripts/mkimage-debian.sh [v1|v2] [amd64|arm64]   Prints the image's path. Cached in
# .cache/images, rebuilt when this script or the root changes.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=${1:-v1}
arch=${2:-amd64}
root=$("$top/scripts/mkroot-debian.sh" "$want" "$arch")
suffix=""; [ "$arch" = amd64 ] || suffix="-$arch"
out="$top/.cache/images/debian-$want$suffix.squashfs"
mkdir -p "$top/.cache/images"
exec 9>"$out.lock"
flock 9 # one builder at a time (a test and the demo may ask at once)
stamp="$(sha256sum "$0" | cut -c1-16)-$(stat -c %Y "$root.done")"
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then echo "$out"; exit 0; fi
command -v mksquashfs >/dev/null || { echo "mkimage: mksquashfs missing (apt-get install squashfs-tools)" >&2; exit 1; }
work=$(mktemp -d "$top/.cache/images/.debian-$want$suffix.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "mkimage: copying $root" >&2
cp -a "$root" "$work/root"
r="$work/root"

echo nowhere > "$r/etc/hostname"
sed -i 's/^root:[^:]*:/root::/' "$r/etc/shadow"   # demo VM: log in as root without a password
units="$r/etc/systemd/system"
mkdir -p "$units/multi-user.target.wants"

# Console output from a unit: /dev/console, never /dev/ttyS0, which agetty hangs up.
cat > "$units/nowhere-demo-poweroff.service" <<'EOF'
[Unit]
Description=Power off once the login prompt is up (nowhere demo)
ConditionKernelCommandLine=demo.poweroff
After=multi-user.target

[Service]
Type=simple
StandardOutput=tty
TTYPath=/dev/console
TTYReset=no
TTYVHangup=no
ExecStart=/bin/sh -c 'while ! pgrep -x agetty >/dev/null; do sleep 0.5; done; sleep 3; echo; echo "nowhere demo: the login prompt is up; powering off (boot with --interactive to log in as root, no password)"; systemctl --no-block poweroff'

[Install]
WantedBy=multi-user.target
EOF

cat > "$units/nowhere-e2e.service" <<'EOF'
[Unit]
Description=nowhere end-to-end check: the root daemon serves, then a clean power-off
ConditionKernelCommandLine=e2e.check
After=multi-user.target

[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/console
TTYReset=no
TTYVHangup=no
ExecStart=/bin/sh -c 'pid=$(pgrep -x nowhere-root); echo "E2E-SYSTEMD-OK daemon=$pid root=$(findmnt -no FSTYPE /) state=$(systemctl is-system-running)"; kill -USR1 $pid; sleep 1'
ExecStartPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
EOF
ln -sf ../nowhere-demo-poweroff.service "$units/multi-user.target.wants/"
ln -sf ../nowhere-e2e.service "$units/multi-user.target.wants/"

echo "mkimage: mksquashfs (zstd) -> $out" >&2
mksquashfs "$r" "$work/image.squashfs" -quiet -noappend -comp zstd -no-xattrs >&2
mv "$work/image.squashfs" "$out"
echo "$stamp" > "$out.stamp"
echo "$out"
