#!/usr/bin/env bash
# The README's configuration table is the one the binary prints (no drift).
# Usage: readme.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
bin=$1
readme=$(dirname "${BASH_SOURCE[0]}")/../../README.md
want=$("$bin" --help-config=md)
got=$(awk '/<!-- config-table:begin/ { on = 1; next } /<!-- config-table:end -->/ { on = 0 } on' "$readme")
if [ "$want" = "$got" ]; then
  echo "ok   - README configuration table matches xentrain --help-config=md"
  echo "1 passed, 0 failed"
else
  echo "FAIL - README configuration table is stale: run scripts/update-readme-config.sh"
  diff <(echo "$want") <(echo "$got") | head -20
  echo "0 passed, 1 failed"
  exit 1
fi
