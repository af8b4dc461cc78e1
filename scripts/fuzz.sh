#!/usr/bin/env bash
# Runs every Go fuzz target of the module (each `func FuzzX` in a _test.go file) for
# FUZZTIME each (default 10s), starting from its committed corpus (testdata/fuzz/FuzzX).
# `make fuzz` runs it; `make test` runs it briefly. `go test -fuzz` takes one target per
# run, hence one run per target. A failing input is written to testdata/fuzz/FuzzX and the
# script stops with go test's report.
# FUZZTIME is a duration (30s) or an execution count (20000x). `make test` uses a count: Go
# 1.26's fuzz coordinator can report "context deadline exceeded" when a duration budget ends
# while a worker is mid-call (golang/go#75804, fixed in Go 1.27), a failure with no failing
# input. With a duration, such a bare deadline failure is checked by replaying the target's
# corpus; only a failing input or a failing replay fails the run.
# Usage: FUZZTIME=30s scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
fuzztime=${FUZZTIME:-10s}

mapfile -t targets < <(grep -rHo --include='*_test.go' --exclude-dir=.cache --exclude-dir=.git \
  '^func Fuzz[A-Za-z0-9_]*' . | sed 's/:func /:/' | sort)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
start=$SECONDS
for t in "${targets[@]}"; do
  dir=$(dirname "${t%%:*}") name=${t##*:}
  echo "fuzz: $name ($dir), $fuzztime" >&2
  log=$(mktemp)
  if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir" 2>&1 | tee "$log"; then
    rm -f "$log"
    continue
  fi
  # A real finding writes its input, panics or reports from a test line (x_test.go:N:).
  if grep -q 'context deadline exceeded' "$log" \
    && ! grep -qE 'Failing input written|panic:|^\s+[A-Za-z0-9_]+\.go:[0-9]+:' "$log"; then
    echo "fuzz: $name: bare 'context deadline exceeded' at the end of the budget (golang/go#75804), no failing input; replaying the corpus" >&2
    rm -f "$log"
    "$GO" test -count=1 -run "^${name}\$" "$dir"
    continue
  fi
  rm -f "$log"
  echo "fuzz: $name failed; see above" >&2
  exit 1
done
echo "fuzz: ${#targets[@]} targets, $fuzztime each, no failure ($((SECONDS - start)) s)" >&2
