#!/usr/bin/env bash
# Regenerates the configuration table in README.md from `xentrain --help-config=md`
# (the same table that drives parsing, --help and the start-up banner).
# Usage: scripts/update-readme-config.sh [XENTRAIN]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-"$root/build/xentrain"}
table=$("$bin" --help-config=md)
awk -v table="$table" '
  /<!-- config-table:begin/ { print; print table; skip = 1; next }
  /<!-- config-table:end -->/ { skip = 0 }
  !skip { print }' "$root/README.md" > "$root/README.md.tmp"
mv "$root/README.md.tmp" "$root/README.md"
echo "README.md: configuration table updated"
