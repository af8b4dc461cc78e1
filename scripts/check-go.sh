#!/usr/bin/env bash
# Fails with one line unless `go` is on the PATH and at least the version go.mod asks for.
# Debian 12 ships Go 1.19, too old: see README.md ("Go") for installing Go from go.dev.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(awk '$1 == "go" { print $2; exit }' go.mod)
PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "nowhere needs Go >= $want: no go on the PATH (nor in /usr/local/go/bin); see README.md, \"Go\"" >&2
  exit 1
fi
have=$(go version 2>/dev/null | awk '{ sub(/^go/, "", $3); print $3 }')
# sort -V orders versions numerically: the older of the two comes first.
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
  echo "nowhere needs Go >= $want, but $(command -v go) is Go ${have:-of an unknown version}; see README.md, \"Go\"" >&2
  exit 1
fi
