# Shared helpers for the benchmark scripts (sourced, not run).
# Every benchmark measures its baseline in the same run, repeats each measurement
# $BENCH_RUNS times (default 3) and reports the median. Mounts, loop devices and servers
# it starts are tracked and removed on exit, even on failure or Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NOWHERE=${NOWHERE:-$top/bin/nowhere}
RUNS=${BENCH_RUNS:-3}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-600} # seconds any single step may take

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (loop mounts, FUSE, dropping the page cache)"
[ -x "$NOWHERE" ] || die "$NOWHERE missing: run make build"

work=$(mktemp -d "${TMPDIR:-/tmp}/nowhere-bench-XXXXXX")
mounts=() # mountpoints to unmount on exit, in order of mounting
pids=()   # processes to stop on exit

cleanup() {
  set +e
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    mountpoint -q "${mounts[i]}" && { umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"; }
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# step runs a command with the step time limit.
step() { timeout "$STEP_TIMEOUT" "$@"; }

# seconds CMD... runs CMD (with the step limit) and prints its wall time in seconds. The
# CPU time it used (user + system, all threads) is appended to $work/cpu, one line a run.
seconds() {
  local t TIMEFORMAT='%R %U %S'
  t=$({ time step "$@" >/dev/null; } 2>&1 | tail -1)
  read -r real user sys <<<"$t"
  awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f\n", u + s}' >>"$work/cpu"
  printf '%.3f\n' "$real"
}

# last_cpu prints the CPU seconds of the last `seconds` run.
last_cpu() { tail -1 "$work/cpu"; }

# median of numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# ratio A B prints A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f\n", a / b}'; }

# mib_s BYTES SECONDS prints MiB/s.
mib_s() { awk -v n="$1" -v s="$2" 'BEGIN {printf "%.0f\n", n / 1048576 / s}'; }

# sum A B prints A+B.
sum() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", a + b}'; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# mount_loop IMAGE DIR: read-only loop mount, undone on exit.
mount_loop() {
  mkdir -p "$2"
  mount -o loop,ro "$1" "$2"
  mounts+=("$2")
}

umount_tracked() { # umount_tracked DIR (retries for 20 s: a loop device detaches asynchronously, slowly on a loaded machine)
  local i
  for i in $(seq 200); do
    umount "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  umount "$1"
}

# serve_store DIR: starts `nowhere serve` on a free loopback port; sets $url.
serve_store() {
  local out="$work/serve.out"
  "$NOWHERE" serve "$1" --listen 127.0.0.1:0 --quiet >"$out" 2>&1 &
  pids+=($!)
  local i
  for i in $(seq 100); do
    url=$(sed -n 's/^serving .* on \(http:\/\/[0-9.:]*\)$/\1/p' "$out")
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  die "nowhere serve did not start: $(cat "$out")"
}

# fuse_mount SOURCE DIR [FLAGS...]: `nowhere mount --daemon`, undone on exit.
fuse_mount() {
  local src=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  local out
  local kf
  mapfile -t kf < <(mount_key_flags "$NOWHERE")
  out=$(step "$NOWHERE" mount "$src" "$dir" --daemon --log "$work/mount.log" "${kf[@]}" "$@")
  mounts+=("$dir")
  fuse_pid=$(sed -n 's/^running in the background as pid \([0-9]*\)$/\1/p' <<<"$out")
  [ -n "$fuse_pid" ] || die "nowhere mount: $out"
  pids+=("$fuse_pid")
}

# fuse_umount DIR: unmounts the last fuse_mount and waits for its process to exit.
fuse_umount() {
  umount_tracked "$1"
  local i
  for i in $(seq 100); do
    kill -0 "$fuse_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$fuse_pid" 2>/dev/null && die "nowhere mount (pid $fuse_pid) still running after unmount"
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$fuse_pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# benchtool ARGS...: the Go helper in bench/benchtool, built once per run.
benchtool() {
  [ -x "$work/benchtool" ] || (cd "$top" && step go build -o "$work/benchtool" ./bench/benchtool)
  "$work/benchtool" "$@"
}

# Images are signed like a publisher's (nowhere mount refuses unsigned ones without
# --insecure). Binaries from before signing existed get neither flag.
signs() { # (not `| grep -q`: with pipefail, grep quitting early fails the pipeline)
  case "$("$1" pack --help 2>&1)" in *--key* | *--sign-key*) return 0 ;; esac
  return 1
}
# pack_key_flags BINARY / mount_key_flags BINARY: print the flags, one per line.
pack_key_flags() {
  signs "$1" || return 0
  [ -f "$work/bench.key" ] || "$1" keygen --secret "$work/bench.key" --public "$work/bench.pub" --no-password >/dev/null
  # Binaries before --sign-key sign with pack --key (now its deprecated alias).
  case "$("$1" pack --help 2>&1)" in
    *--sign-key*) printf '%s\n' --sign-key "$work/bench.key" ;;
    *) printf '%s\n' --key "$work/bench.key" ;;
  esac
}
mount_key_flags() {
  signs "$1" || return 0
  printf '%s\n' --key "$work/bench.pub"
}

# images NAME...: builds (once) and prints the paths of benchmark images.
images() { step "$top/bench/mkimages.sh" "$@"; }

machine() {
  echo "machine: $(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem/ {print $2}') GiB RAM, kernel $(uname -r), $(go version 2>/dev/null | cut -d' ' -f3)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
}
