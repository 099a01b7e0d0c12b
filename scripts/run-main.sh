#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is missing, build, convert
# Fashion-MNIST, train the MLP on 2 ranks, evaluate on the test split, plot the curves.
# Usage: scripts/run-main.sh [NP]   (default 2 ranks)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
np=${1:-2}
scripts/install-deps.sh --with-data --with-tools
BUILD_TYPE=Release scripts/build.sh "$root/build-release"
bin="$root/build-release/xentrain"
scripts/prepare-fashion-mnist.sh "$bin"
start=$(date +%s)
scripts/xt-mpirun -np "$np" --bind-to core "$bin" train configs/fashion-mnist-mlp.ini
echo "main job: training and test evaluation took $(( $(date +%s) - start )) s"
scripts/plot_metrics.sh runs/fashion-mnist-mlp
