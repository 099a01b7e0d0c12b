#!/usr/bin/env bash
# Configures and builds xentrain. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# Environment: XT_WERROR=ON (warnings as errors), XT_SANITIZE=ON (ASan+UBSan), JOBS=N.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}
shift || true
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
      -DXT_WERROR="${XT_WERROR:-OFF}" -DXT_SANITIZE="${XT_SANITIZE:-OFF}" "$@" >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
grep -A15 'configure summary' "$build.configure.log" | sed 's/^-- //'
cmake --build "$build" -j "${JOBS:-$(nproc)}"
