#!/usr/bin/env bash
# Runs every Go fuzz target of the module (each `func FuzzX` in a _test.go file) for
# FUZZTIME each (default 10s), starting from its committed corpus (testdata/fuzz/FuzzX).
# `make fuzz` runs it; `make test` runs it briefly. `go test -fuzz` takes one target per
# run, hence one run per target. A failing input is written to testdata/fuzz/FuzzX and the
# script stops with go test's report.
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
  "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir"
done
echo "fuzz: ${#targets[@]} targets, $fuzztime each, no failure ($((SECONDS - start)) s)" >&2
