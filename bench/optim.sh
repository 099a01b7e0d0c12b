#!/usr/bin/env bash
# The optimiser update's cost per step, side by side in one run: the Fashion-MNIST MLP
# (784-256-128-10, 235 146 parameters) at P = 1, batch 128, one BLAS thread, for each
# optim.optimizer; 3 epochs, epochs 2-3 timed, REPS repetitions interleaved, medians.
# Prints optimizer ms per step, the whole step's ms, the update's share of the step, and
# the update time relative to SGD with momentum.
# Usage: bench/optim.sh XENTRAIN DATA.h5 [REPS] [OUT.csv]     (bench/run.sh calls it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$1 data=$2 reps=${3:-3} out=${4:-/dev/null}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
raw=$tmp/raw.csv
: > "$raw"
for rep in $(seq 1 "$reps"); do
  for opt in sgd adam adamw lars lamb; do
    a=(--set optim.optimizer=$opt --set optim.momentum=0 --set optim.lr=0.001)
    case $opt in sgd|lars) a=(--set optim.optimizer=$opt --set optim.momentum=0.9) ;; esac
    "$root/scripts/xt-mpirun" --bind-to core -np 1 "$bin" train "$root/configs/fashion-mnist-mlp.ini" \
      --set data.train="$data:/train" --set data.val= --set data.test= \
      --set early_stopping.enabled=false --set train.epochs=3 --set train.resume=never \
      --set train.progress=false --set run.dir="$tmp/run" "${a[@]}" > "$tmp/log" 2>&1 ||
      { cat "$tmp/log"; exit 1; }
    awk -F, -v o="$opt" 'NR == 2 { prev = $5 } NR > 2 { s = $5 - prev; prev = $5
      printf "%s,%.5f,%.5f\n", o, $17 / s * 1e3, ($8 + $9 + $10) / s * 1e3 }' \
      "$tmp/run/metrics.csv" >> "$raw"
  done
done
/usr/bin/python3 - "$raw" "$out" <<'PY'
import statistics, sys
from collections import defaultdict
upd, step = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    o, u, s = line.strip().split(",")
    upd[o].append(float(u)); step[o].append(float(s))
order = ["sgd", "adam", "adamw", "lars", "lamb"]
base = statistics.median(upd["sgd"])
rows = ["optimizer,update_ms_per_step,step_ms,update_share,update_vs_sgd_momentum,samples"]
print("optimiser update per step, MLP 784-256-128-10 at P = 1, batch 128 (medians of %d)"
      % len(upd["sgd"]))
print("%-22s %10s %9s %7s %8s" % ("optimizer", "update ms", "step ms", "share", "vs sgd"))
for o in order:
    u, s = statistics.median(upd[o]), statistics.median(step[o])
    name = o + (" (momentum 0.9)" if o in ("sgd", "lars") else "")
    print("%-22s %10.3f %9.3f %7.3f %8.2f" % (name, u, s, u / s, u / base))
    rows.append("%s,%.5f,%.5f,%.4f,%.3f,%d" % (o, u, s, u / s, u / base, len(upd[o])))
if sys.argv[2] != "/dev/null":
    open(sys.argv[2], "w").write("\n".join(rows) + "\n")
PY
