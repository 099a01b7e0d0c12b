#!/usr/bin/env bash
# Large global batches on Fashion-MNIST (issue 18): the MLP of the main job trained with a
# global batch of 4096 (what 128 rows per rank gives at P = 32), on this machine's 2 ranks,
# for the main job's epoch budget (20 epochs, the same early stopping), with
#   - SGD + momentum, the linear scaling rule (lr x 32) and warm-up (Goyal et al.),
#   - LARS (momentum 0.9, trust coefficient 0.001, warm-up),
#   - LAMB (warm-up, decoupled decay 0.01),
# against the batch-128 main job, and AdamW at batch 128. Each setting is tried at a few
# learning rates; the best by validation loss is reported (the test split is only read by
# eval at the end). Writes OUT_DIR/large-batch.csv (every run), OUT_DIR/curves.dat
# (validation loss per epoch of each setting's chosen run) and OUT_DIR/large-batch.png,
# and prints the Markdown table and a text plot used in docs/large-batch.md.
# Usage: scripts/large-batch.sh [OUT_DIR]        (default runs/large-batch; about 5 minutes)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-"$root/runs/large-batch"}
cd "$root"
scripts/install-deps.sh --with-data --with-tools >/dev/null
BUILD_TYPE=Release scripts/build.sh "$root/build-release" >/dev/null
bin=$root/build-release/xentrain
data=$root/data/fashion-mnist.h5
scripts/prepare-fashion-mnist.sh "$bin" "$data" >/dev/null
mkdir -p "$out"
csv=$out/large-batch.csv
echo "setting,batch,optimizer,lr,warmup_epochs,epochs_run,best_epoch,best_val_loss,test_accuracy,seconds" > "$csv"
cfg=configs/fashion-mnist-mlp.ini

# run NAME BATCH LR ARGS...: train at P = 2, evaluate model.h5 on /test, append a CSV row
run() {
  local name=$1 batch=$2 lr=$3; shift 3
  local dir=$out/$name-lr$lr t0
  t0=$(date +%s.%N)
  scripts/xt-mpirun -np 2 "$bin" train "$cfg" --set data.train="$data:/train" \
    --set data.val="$data:/val" --set data.test= --set train.batch_size="$batch" \
    --set optim.lr="$lr" --set run.dir="$dir" --set train.resume=never \
    --set train.progress=false "$@" > "$dir.log" 2>&1 || { tail -5 "$dir.log"; return 1; }
  local secs acc
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  acc=$("$bin" eval --model "$dir/model.h5" --data "$data:/test" | awk '/^accuracy/ { print $2 }')
  awk -F, -v n="$name" -v b="$batch" -v lr="$lr" -v acc="$acc" -v s="$secs" -v args="$*" '
    NR > 1 && $18 == 1 { be = $1; bl = $3 } NR > 1 { last = $1 }
    END { o = "sgd"; if (match(args, /optimizer=[a-z]+/)) o = substr(args, RSTART + 10, RLENGTH - 10)
          w = 0; if (match(args, /warmup_epochs=[0-9.]+/)) w = substr(args, RSTART + 14, RLENGTH - 14)
          printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", n, b, o, lr, w, last, be, bl, acc, s }' \
    "$dir/metrics.csv" >> "$csv"
  echo "large-batch: $name lr $lr: test accuracy $acc ($secs s)"
}

run base-sgd-128 128 0.05
for lr in 0.0005 0.001 0.002; do
  run adamw-128 128 $lr --set optim.optimizer=adamw --set optim.momentum=0 --set optim.weight_decay=0.01
done
for lr in 0.2 0.4 0.8 1.6; do   # linear scaling: 0.05 x 32 = 1.6; square-root scaling: 0.28
  run sgd-linear-4096 4096 $lr --set optim.warmup_epochs=3
done
for lr in 5 10 20; do
  run lars-4096 4096 $lr --set optim.optimizer=lars --set optim.warmup_epochs=3
done
for lr in 0.01 0.015 0.02 0.04; do
  run lamb-4096 4096 $lr --set optim.optimizer=lamb --set optim.momentum=0 \
    --set optim.weight_decay=0.01 --set optim.warmup_epochs=3
done

# each setting's run with the best validation loss; its curve
/usr/bin/python3 - "$csv" "$out" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
best = {}
for r in rows:
    k = r["setting"]
    if k not in best or float(r["best_val_loss"]) < float(best[k]["best_val_loss"]):
        best[k] = r
base = float(best["base-sgd-128"]["test_accuracy"])
print("| setting | global batch | optimizer | lr (tried) | warm-up | epochs run (best) | best val loss | test accuracy | vs batch 128 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for k, r in best.items():
    tried = ", ".join(x["lr"] for x in rows if x["setting"] == k)
    print("| %s | %s | %s | **%s** (%s) | %s | %s (%s) | %.4f | %.4f | %+.2f points |" % (
        k, r["batch"], r["optimizer"], r["lr"], tried, r["warmup_epochs"], r["epochs_run"],
        r["best_epoch"], float(r["best_val_loss"]), float(r["test_accuracy"]),
        100 * (float(r["test_accuracy"]) - base)))
with open(sys.argv[2] + "/chosen.txt", "w") as f:
    for k, r in best.items():
        f.write("%s %s/%s-lr%s/metrics.csv\n" % (k, sys.argv[2], k, r["lr"]))
PY
# validation loss per epoch of the chosen runs, one column per setting
cols=() names=()
while read -r name file; do names+=("$name"); cols+=("$file"); done < "$out/chosen.txt"
{
  for e in $(seq 1 20); do
    line=$e
    for f in "${cols[@]}"; do
      line="$line $(awk -F, -v e="$e" 'NR > 1 && $1 == e { v = $3 } END { print (v == "" ? "NaN" : v) }' "$f")"
    done
    echo "$line"
  done
} > "$out/curves.dat"
plot=""
for i in "${!names[@]}"; do
  plot="$plot${plot:+, }'$out/curves.dat' using 1:$((i + 2)) with lines title '${names[$i]}'"
done
gnuplot -e "set terminal pngcairo size 900,500; set output '$out/large-batch.png';
  set title 'Fashion-MNIST MLP: validation loss per epoch'; set xlabel 'epoch';
  set ylabel 'validation loss'; set yrange [0.25:0.6]; set key top right; plot $plot" 2>/dev/null || true
gnuplot -e "set terminal dumb size 100,30; set title 'validation loss per epoch';
  set xlabel 'epoch'; set yrange [0.25:0.6]; set key top right; plot $plot" 2>/dev/null || true
echo "large-batch: $csv, $out/large-batch.png"
