#!/usr/bin/env bash
# Peak resident memory per rank when training on Fashion-MNIST at P = 1 and P = 2:
# each rank holds only its shard, so the largest rank at P = 2 should need about half
# the data memory of P = 1. Runs one epoch of softmax regression (small model, so the
# data dominate), validation sharded over ranks, and reads "Maximum resident set size"
# from /usr/bin/time -v for every rank. Measured twice: with the pixels as float32 in
# memory (data.compact = false: the data dominate, so the ratio shows the sharding) and
# as stored, uint8 (the default: 4x less data memory; the fixed per-process overhead of
# Open MPI, HDF5 and OpenBLAS then weighs more in the ratio).
# Usage: bench/memory.sh [XENTRAIN] [DATA.h5]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-"$root/build-release/xentrain"}
data=${2:-"$root/data/fashion-mnist.h5"}
[ -x "$bin" ] || { echo "memory.sh: build first (scripts/build.sh $root/build-release)" >&2; exit 1; }
[ -s "$data" ] || "$root/scripts/prepare-fashion-mnist.sh" "$bin" "$data"
[ -x /usr/bin/time ] || { echo "memory.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A peak
# one /usr/bin/time per rank, each writing its own report
cat > "$tmp/wrap.sh" <<'W'
#!/bin/sh
exec /usr/bin/time -v -o "$XT_TIME_DIR/time.$OMPI_COMM_WORLD_RANK.$XT_NP" "$@"
W
chmod +x "$tmp/wrap.sh"
for compact in false true; do
for np in 1 2; do
  XT_TIME_DIR=$tmp XT_NP=$np "$root/scripts/xt-mpirun" -np "$np" -x XT_TIME_DIR -x XT_NP \
    "$tmp/wrap.sh" "$bin" train "$root/configs/fashion-mnist-softmax.ini" --set train.epochs=1 \
    --set data.test= --set eval.distributed=true --set run.dir="$tmp/run$np$compact" \
    --set data.compact=$compact --set train.resume=never >/dev/null
  max=0
  for f in "$tmp"/time.*."$np"; do
    kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$f")
    r=${f#"$tmp"/time.}
    echo "data.compact=$compact P=$np rank ${r%."$np"}: peak RSS $((kb / 1024)) MiB"
    [ "$kb" -gt "$max" ] && max=$kb
  done
  peak[$np]=$max
  rm -f "$tmp"/time.*
done
if [ "$compact" = false ]; then bpp=4; else bpp=1; fi
shard1=$(( 54000 * 784 * bpp / 1048576 ))
echo "data.compact=$compact: training pixels in memory: P=1 $shard1 MiB, P=2 $(( shard1 / 2 )) MiB per rank"
awk -v a="${peak[1]}" -v b="${peak[2]}" -v c="$compact" 'BEGIN { printf "data.compact=%s: largest rank peak RSS: P=1 %.0f MiB, P=2 %.0f MiB, ratio %.3f\n", c, a / 1024, b / 1024, b / a }'
done
