#!/usr/bin/env bash
# Converts Debian's Fashion-MNIST (package dataset-fashion-mnist) to data/fashion-mnist.h5:
# /train (54000 rows), /val (the last 6000 training rows), /test (10000), uint8 pixels.
# Usage: scripts/prepare-fashion-mnist.sh [XENTRAIN_BINARY] [OUT.h5]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-"$root/build/xentrain"}
out=${2:-"$root/data/fashion-mnist.h5"}
src=/usr/share/datasets/fashion-mnist
# Fashion-MNIST's classes, in label order (from its README)
classes="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
if [ -s "$out" ]; then
  echo "prepare: $out exists"
  exit 0
fi
mkdir -p "$(dirname "$out")"
"$bin" convert idx --class-names "$classes" \
  --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
  --test-images "$src/t10k-images-idx3-ubyte.gz" --test-labels "$src/t10k-labels-idx1-ubyte.gz" \
  --val-tail 6000 --out "$out"
