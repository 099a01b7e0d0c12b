#!/usr/bin/env bash
# The code's shape, checked on every test run (STYLE.md): no function in src/ longer than
# 80 lines. A definition starts at column 0 with a line holding '(' and no '=' before its end
# and not ending in ';'; its body opens with '{' at column 0 or at the end of that line and
# ends with '}' at column 0 (the project's clang-format style).
# Usage: scripts/check-code-shape.sh [LIMIT]   (exit 1, naming each function, when one is longer)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
limit=${1:-80}
long=$(awk -v lim="$limit" '
  FNR == 1 { infn = 0; sig = "" }
  !infn && /^[A-Za-z_].*\(/ && !/;[ \t]*$/ && !/^(typedef|struct|enum|union|#)/ && index($0, "=") == 0 {
    sig = $0; sigline = FNR }
  !infn && sig != "" && (/^\{/ || (/\{[ \t]*$/ && FNR == sigline)) { infn = 1; start = sigline; name = sig }
  infn && /^\}/ {
    len = FNR - start + 1
    if (len > lim) printf "%s:%d: %d lines: %s\n", FILENAME, start, len, name
    infn = 0; sig = "" }' "$root"/src/*.c)
if [ -n "$long" ]; then
  echo "functions longer than $limit lines (split them):"
  echo "$long"
  exit 1
fi
echo "ok: every function in src/*.c is at most $limit lines ($(ls "$root"/src/*.c | wc -l) files)"
