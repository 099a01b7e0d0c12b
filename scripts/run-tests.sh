#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, mpi, cli).
# Usage: scripts/run-tests.sh [ctest args...]   e.g. -L unit
# Environment: XT_WERROR=ON, XT_SANITIZE=ON, BUILD_DIR=...
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/install-deps.sh --with-data --with-tools --with-tests
build=${BUILD_DIR:-"$root/build"}
scripts/build.sh "$build"
cd "$build"
ctest --output-on-failure --timeout 600 -j "${CTEST_JOBS:-2}" "$@"
