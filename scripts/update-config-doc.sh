#!/usr/bin/env bash
# Regenerates the key table in docs/configuration.md from `xentrain --help-config=md` (the
# same table that drives parsing, --help and the start-up banner); tests/cli/readme.sh checks
# that the committed page matches the binary.
# Usage: scripts/update-config-doc.sh [XENTRAIN]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-"$root/build/xentrain"}
doc=$root/docs/configuration.md
table=$("$bin" --help-config=md)
awk -v table="$table" '
  /<!-- config-table:begin/ { print; print table; skip = 1; next }
  /<!-- config-table:end -->/ { skip = 0 }
  !skip { print }' "$doc" > "$doc.tmp"
mv "$doc.tmp" "$doc"
echo "docs/configuration.md: key table updated"
