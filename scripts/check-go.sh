#!/usr/bin/env bash
# Makes sure a Go of at least the version go.mod asks for is there, and with --print prints
# the path of its go binary (the Makefile's GO). Looks on the PATH, in /usr/local/go/bin, then
# in .cache/go (a toolchain bootstrapped here before). When none is new enough it bootstraps
# one: Debian's golang-go (1.19; apt-get installed when there is no go at all) downloads the
# official toolchain module golang.org/toolchain@v0.0.1-go<version>.linux-<arch> (what
# GOTOOLCHAIN fetches) from the Go module proxy, checksum-verified against sum.golang.org,
# and it is unpacked into .cache/go. Chatter goes to .cache/logs/check-go.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
print=false; [ "${1:-}" = --print ] && print=true
want=$(awk '$1 == "go" { print $2; exit }' go.mod)

version_of() { "$1" version 2>/dev/null | awk '{ sub(/^go/, "", $3); print $3 }'; }
new_enough() { # new_enough GO: GO is at least $want (sort -V puts the older first)
  local have; have=$(version_of "$1")
  [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" = "$want" ]
}
found() { if $print; then echo "$1"; fi; exit 0; }

cands=()
p=$(command -v go 2>/dev/null) && cands+=("$p")
cands+=(/usr/local/go/bin/go "$root/.cache/go/go$want/bin/go")
for g in "${cands[@]}"; do
  [ -x "$g" ] && new_enough "$g" && found "$g"
done

# Bootstrap.
mkdir -p .cache/logs
log=$root/.cache/logs/check-go.log
echo "check-go: no Go >= $want here; fetching go$want from the Go module proxy (log: .cache/logs/check-go.log)" >&2
boot=""
for g in "${cands[@]}" /usr/lib/go/bin/go /usr/lib/go-1.*/bin/go; do
  [ -x "$g" ] && { boot=$g; break; }
done
if [ -z "$boot" ]; then
  echo "check-go: installing Debian's golang-go to bootstrap" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends golang-go ca-certificates; } >>"$log" 2>&1 ||
    { echo "check-go: apt-get install golang-go failed: see $log" >&2; exit 1; }
  boot=/usr/lib/go/bin/go
fi
case "$(uname -m)" in
  x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;;
  *) echo "check-go: no Go toolchain for $(uname -m); install Go >= $want from go.dev" >&2; exit 1 ;;
esac
mod=golang.org/toolchain@v0.0.1-go$want.linux-$arch
# A module cache of our own, so the bootstrap neither needs nor touches the user's; GOFLAGS
# cleared so -mod settings do not get in the way; GONOSUMDB/GONOSUMCHECK/GOFLAGS from the
# environment otherwise apply, and by default sum.golang.org verifies the download.
export GOMODCACHE=$root/.cache/go/modcache GOFLAGS=-modcacherw GOTOOLCHAIN=local GO111MODULE=on
dir=$(cd /tmp && "$boot" mod download -json "$mod" 2>>"$log" | awk -F'"' '$2 == "Dir" { print $4 }') || true
if [ -z "$dir" ] || [ ! -f "$dir/bin/go" ]; then
  echo "check-go: $boot mod download $mod failed: see $log" >&2
  exit 1
fi
dest=$root/.cache/go/go$want
rm -rf "$dest.tmp"
cp -a "$dir" "$dest.tmp"
chmod -R u+w "$dest.tmp"
# The module zip drops the executable bits of the tools go runs (compile, link, ...).
find "$dest.tmp/bin" "$dest.tmp/pkg/tool" -type f -exec chmod +x {} +
rm -rf "$dest"; mv "$dest.tmp" "$dest"
new_enough "$dest/bin/go" || { echo "check-go: $dest/bin/go does not run: see $log" >&2; exit 1; }
echo "check-go: using $dest/bin/go ($(version_of "$dest/bin/go"))" >&2
found "$dest/bin/go"
