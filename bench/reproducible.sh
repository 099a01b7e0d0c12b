#!/usr/bin/env bash
# train.reproducible against the default mode, side by side in one run: the Fashion-MNIST
# MLP (784-256-128-10) and softmax regression at P = 1 and 2, global batch B (default 128;
# also try 1024), one BLAS thread per rank, for micro_batches G in GS (default "2 8": 2 is
# the smallest that allows P = 2, 8 the auto value at B = 128). 3 epochs, epochs 2-3 timed,
# REPS repetitions interleaved, medians. Prints samples/s, the ratio to the default mode at
# the same P, and where each step's time goes (ms per step).
# Usage: bench/reproducible.sh XENTRAIN DATA.h5 [REPS] [OUT.csv] [B] [GS]  (bench/run.sh calls it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$1 data=$2 reps=${3:-3} out=${4:-/dev/null} batch=${5:-128} gs=${6:-"2 8"}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
raw=$tmp/raw.csv
: > "$raw"
for rep in $(seq 1 "$reps"); do
  for model in mlp softmax; do
    for np in 1 2; do
      for mode in default $gs; do
        a=()
        [ "$mode" = default ] || a=(--set train.reproducible=true --set train.micro_batches=$mode)
        "$root/scripts/xt-mpirun" --bind-to core -np $np "$bin" train "$root/configs/fashion-mnist-$model.ini" \
          --set data.train="$data:/train" --set data.val= --set data.test= \
          --set early_stopping.enabled=false --set train.epochs=3 --set train.resume=never \
          --set train.batch_size="$batch" --set train.progress=false --set run.dir="$tmp/run" \
          "${a[@]}" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
        # columns: samples/s, then ms per step of forward, loss, backward, reduce (the exact
        # conversions), allreduce (waiting included), optimiser, gathering rows, whole step
        awk -F, -v m="$model" -v P="$np" -v mode="$mode" 'NR == 2 { prev = $5 } NR > 2 { s = $5 - prev; prev = $5
          printf "%s,%s,%s,%s,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f\n", m, P, mode, $7,
            $14 / s * 1e3, $15 / s * 1e3, $16 / s * 1e3, $20 / s * 1e3, $9 / s * 1e3,
            $17 / s * 1e3, $10 / s * 1e3, ($8 + $9 + $10) / s * 1e3 }' "$tmp/run/metrics.csv" >> "$raw"
      done
    done
  done
done
/usr/bin/python3 - "$raw" "$out" "$batch" <<'PY'
import statistics, sys
from collections import defaultdict
cols = ["samples_per_s", "forward", "loss", "backward", "reduce", "allreduce", "optim", "gather", "step"]
runs = defaultdict(list)
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    runs[(f[0], int(f[1]), f[2])].append([float(x) for x in f[3:]])
med = {k: [statistics.median(c) for c in zip(*v)] for k, v in runs.items()}
print("reproducible vs default, Fashion-MNIST, global batch %s, one BLAS thread per rank "
      "(medians of %d; ms per step)" % (sys.argv[3], len(next(iter(runs.values())))))
print("%-8s %2s %-9s %10s %6s %8s %6s %8s %7s %9s %6s %6s %7s" % (
    "model", "P", "mode", "samples/s", "ratio", "forward", "loss", "backward", "reduce",
    "allreduce", "optim", "gather", "step"))
rows = ["model,P,mode,samples_per_s,ratio_to_default," + ",".join(c + "_ms" for c in cols[1:])]
for (m, P, mode), v in sorted(med.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "default", kv[0][2])):
    base = med[(m, P, "default")][0]
    label = mode if mode == "default" else "G=" + mode
    print("%-8s %2d %-9s %10.0f %6.2f %8.3f %6.3f %8.3f %7.3f %9.3f %6.3f %6.3f %7.3f" % (
        (m, P, label, v[0], v[0] / base) + tuple(v[1:])))
    rows.append("%s,%d,%s,%.1f,%.4f,%s" % (m, P, label, v[0], v[0] / base,
                                          ",".join("%.5f" % x for x in v[1:])))
if sys.argv[2] != "/dev/null":
    open(sys.argv[2], "w").write("\n".join(rows) + "\n")
PY
