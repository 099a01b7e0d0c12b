#!/usr/bin/env bash
# The performance benchmark of issue 7, in ONE run so that ratios are fair on a noisy
# machine: xentrain vs PyTorch (single process and DDP/gloo on 2 processes) vs the
# hardware limits (single-thread sgemm at the model's shapes, raw MPI_Allreduce, file
# read bandwidth), for softmax regression 784-10 and the MLP 784-256-128-10 on
# Fashion-MNIST at 128 rows per rank, one BLAS thread per rank. Every measurement is
# repeated REPS times, interleaved, and the medians are reported. Then the optimisers'
# update cost (bench/optim.sh), train.reproducible against the default mode
# (bench/reproducible.sh) and streamed training data against data in memory
# (bench/stream.sh; its part 2, data larger than memory in a memory cgroup, with
# STREAM_BENCH_BIG=1), the step's reductions through MPI and shared memory (bench/reduce.c),
# and, as root, overlap's exposed communication across two network namespaces
# (bench/overlap.sh), each side by side in its own interleaved run.
# Usage: bench/run.sh [REPS] [OUT_DIR]      (defaults: 3, bench/out)
# Writes OUT_DIR/raw.csv (every measurement), OUT_DIR/results.csv and prints the table.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=${1:-3}
out=${2:-"$root/bench/out"}
mkdir -p "$out"
cd "$root"

scripts/install-deps.sh --with-data --with-tools
need=()
for p in python3-torch python3-h5py; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]} for the PyTorch comparison (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
BUILD_TYPE=Release scripts/build.sh "$root/build-release" >/dev/null
bin="$root/build-release/xentrain"
data="$root/data/fashion-mnist.h5"
scripts/prepare-fashion-mnist.sh "$bin" "$data" >/dev/null
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mpi() { scripts/xt-mpirun --bind-to core "$@"; }
raw="$out/raw.csv"
echo "rep,what,model,P,metric,value" > "$raw"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# xentrain: 3 epochs, no validation; epochs 2-3 are timed (epoch 1 warms up)
xt_run() { # rep model P batch_args...
  local rep=$1 model=$2 np=$3; shift 3
  local cfg=configs/fashion-mnist-$model.ini tag="xentrain_$model"
  local dir="$tmp/run"
  mpi -np "$np" "$bin" train "$cfg" --set data.val= --set data.test= --set early_stopping.enabled=false \
    --set train.epochs=3 --set train.resume=never --set run.dir="$dir" --set train.progress=false "$@" > "$tmp/log" 2>&1
  local label=$tag
  case "$*" in *batch_size=256*) label="${tag}_b256" ;; esac
  # steps per epoch from the step column; per-step times in ms
  awk -F, -v rep="$rep" -v w="$label" -v m="$model" -v P="$np" '
    NR == 2 { prev = $5 } NR > 2 { steps = $5 - prev; prev = $5;
      printf "%s,%s,%s,%s,samples_per_s,%s\n", rep, w, m, P, $7
      printf "%s,%s,%s,%s,forward_ms,%.5f\n", rep, w, m, P, $14 / steps * 1e3
      printf "%s,%s,%s,%s,loss_ms,%.5f\n", rep, w, m, P, $15 / steps * 1e3
      printf "%s,%s,%s,%s,backward_ms,%.5f\n", rep, w, m, P, $16 / steps * 1e3
      printf "%s,%s,%s,%s,allreduce_ms,%.5f\n", rep, w, m, P, $9 / steps * 1e3
      printf "%s,%s,%s,%s,optimizer_ms,%.5f\n", rep, w, m, P, $17 / steps * 1e3
      printf "%s,%s,%s,%s,gather_ms,%.5f\n", rep, w, m, P, $10 / steps * 1e3
      printf "%s,%s,%s,%s,step_ms,%.5f\n", rep, w, m, P, ($8 + $9 + $10) / steps * 1e3 }' \
    "$dir/metrics.csv" >> "$raw"
  local su
  su=$(sed -n 's/^start-up took \([0-9.]*\) s.*/\1/p' "$tmp/log")  # MPI init included
  echo "$rep,$label,$model,$np,startup_s,$su" >> "$raw"
}

for rep in $(seq 1 "$reps"); do
  echo "bench: repetition $rep of $reps"
  for model in mlp softmax; do
    hidden=0
    [ "$model" = mlp ] && hidden=256,128
    xt_run "$rep" "$model" 1 --set train.batch_size=128
    xt_run "$rep" "$model" 2 --set train.batch_per_rank=128
    [ "$model" = mlp ] && xt_run "$rep" "$model" 1 --set train.batch_size=256
    v=$(/usr/bin/python3 bench/torch_bench.py --data "$data" --model "$model" | awk '{ print $2 }')
    echo "$rep,torch_$model,$model,1,samples_per_s,$v" >> "$raw"
    v=$(/usr/bin/python3 bench/torch_bench.py --data "$data" --model "$model" --ddp --port $((29500 + rep)) | awk '{ print $2 }')
    echo "$rep,torch_ddp_$model,$model,2,samples_per_s,$v" >> "$raw"
    mpi -np 2 "$root/build-release/bench/xt_bench_limits" "$data:/train" 128 "$hidden" 200 > "$tmp/lim"
    awk -v rep="$rep" -v m="$model" '{ printf "%s,limits,%s,2,%s,%s\n", rep, m, $1, $2 }' "$tmp/lim" >> "$raw"
  done
done

# peak memory per rank (bench/memory.sh: softmax, P = 1 and 2)
bench/memory.sh "$bin" "$data" | tee "$tmp/mem"
awk '/largest rank peak RSS/ { w = ($1 ~ /true/) ? "memory_compact" : "memory_float";
       print "1," w ",softmax,1,peak_rss_mib," $7; print "1," w ",softmax,2,peak_rss_mib," $10 }' "$tmp/mem" >> "$raw"

/usr/bin/python3 bench/summarize.py "$raw" "$out/results.csv"
# the optimisers' update cost per step, side by side (bench/optim.sh)
bench/optim.sh "$bin" "$data" "$reps" "$out/optimizers.csv"
# the reproducible mode against the default, side by side (bench/reproducible.sh): global
# batch 128 with 2 and 8 micro-batches, and 1024 with 8 (128 rows per micro-batch)
bench/reproducible.sh "$bin" "$data" "$reps" "$out/reproducible-b128.csv" 128 "2 8"
bench/reproducible.sh "$bin" "$data" "$reps" "$out/reproducible-b1024.csv" 1024 "8"
# streamed against in memory (bench/stream.sh): writes stream.csv; part 2 (a file larger
# than a memory cgroup's limit) only with STREAM_BENCH_BIG=1
bench/stream.sh "$bin" "$data" "$reps" "$out"
# the step's reductions (issue 19): MPI against the node's shared memory, interleaved call by
# call, results consumed, with the node's triad bandwidth in the same run (bench/reduce.c)
mpi -np 2 "$root/build-release/bench/xt_bench_reduce" 300 235152 8 65536 1048576 4194304 |
  tee "$out/reduce.csv"
# overlap (issue 19): exposed communication of a 4-layer MLP across two network namespaces at
# 1 Gbit/s, with and without comm.overlap (needs root)
if [ "$(id -u)" -eq 0 ]; then bench/overlap.sh "$bin" "$data" "$reps" "$out"
else echo "bench: overlap.sh skipped (network namespaces need root)"; fi
