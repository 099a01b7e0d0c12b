#!/usr/bin/env bash
# The optimisers (optim.optimizer) and gradient accumulation (train.accumulate):
#  - Adam and AdamW follow torch.optim 1.13: full-batch softmax regression from zero init on
#    the fixture's data, at P = 1 and 2; train_loss per epoch equals PyTorch's float64
#    trajectory (tests/ref/torch_optim.txt, from tests/ref/torch_optim.py) to 1e-5 relative;
#  - every optimiser resumes exactly: 3 epochs + resume to 6 == 6 straight (metrics rows and
#    model.h5 bit for bit), and a checkpoint of one optimiser is refused by another;
#  - train.accumulate = 4 with batch_size 64 trains the batch-256 model (float order aside).
# Usage: optimizers.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
fixture=$here/../ref/torch_optim.txt
py=/usr/bin/python3

# 1. PyTorch's Adam and AdamW trajectories
$py - "$fixture" ref.h5 <<'PY' || { fail "writing the fixture's data (python3-h5py)"; finish; exit 1; }
import sys, h5py, numpy as np
rows = [l.split()[1:] for l in open(sys.argv[1]) if l.startswith("row ")]
y = np.array([int(r[0]) for r in rows], dtype=np.int32)
X = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32)
with h5py.File(sys.argv[2], "w") as f:
    f["train/X"] = X
    f["train/y"] = y
PY
write_ini ref.ini data.train=ref.h5:/train data.normalize=none model.type=softmax \
  model.init=zeros train.epochs=25 train.batch_size=0 train.progress=false
while read -r tag name rest; do
  [ "$tag" = case ] || continue
  read -r _ losses
  args=()
  for kv in $rest; do args+=(--set "optim.$kv"); done
  printf '%s\n' $losses > $name.want
  for np in 1 2; do
    if xt $np train ref.ini "${args[@]}" --set run.dir=ref-$name-$np </dev/null >ref-$name-$np.log 2>&1; then
      awk -F, 'NR > 1 { print $2 }' ref-$name-$np/metrics.csv > $name-$np.got
      worst=$(paste $name.want $name-$np.got | awk '{ d = $1 - $2; if (d < 0) d = -d; r = d / $1
                if (r > m) m = r; n++ } END { if (n != 25) m = 1; printf "%.2g", m }')
      if awk -v w="$worst" 'BEGIN { exit !(w <= 1e-5) }'; then
        pass "$name ($rest) at P=$np: 25 full-batch steps, worst relative difference to PyTorch $worst"
      else fail "$name at P=$np: relative difference to PyTorch $worst (bar 1e-5)"
        paste $name.want $name-$np.got | head -5; fi
    else fail "$name at P=$np: training failed"; tail -3 ref-$name-$np.log; fi
  done
done < "$fixture"
[ "$(grep -c '^case ' "$fixture")" -eq 4 ] && [ "$(ls ref-*-*/metrics.csv 2>/dev/null | wc -l)" -eq 8 ] ||
  fail "expected 4 fixture cases at 2 rank counts"

# 2. exact resume for every optimiser, and the optimiser named in the checkpoint
"$bin" gen blobs --classes 3 --rows 1200 --features 6 --noise 3 --seed 5 --val-fraction 0.2 \
  --out d.h5 >/dev/null || fail "gen"
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val model.type=mlp model.hidden=12 \
  train.epochs=6 train.batch_size=32 train.progress=false
for opt in sgd adam adamw lars lamb; do
  a=(--set optim.optimizer=$opt)
  case $opt in
    sgd) a+=(--set optim.momentum=0.9 --set optim.lr=0.05) ;;
    lars) a+=(--set optim.momentum=0.9 --set optim.lr=2 --set optim.weight_decay=1e-4) ;;
    *) a+=(--set optim.lr=0.01 --set optim.weight_decay=0.01) ;;
  esac
  xt 2 train c.ini "${a[@]}" --set run.dir=s-$opt >s-$opt.log 2>&1 || fail "$opt straight run"
  xt 2 train c.ini "${a[@]}" --set run.dir=r-$opt --set train.epochs=3 >r1-$opt.log 2>&1 &&
    xt 2 train c.ini "${a[@]}" --set run.dir=r-$opt >r2-$opt.log 2>&1 || fail "$opt resumed run"
  if grep -q "^resume: " r2-$opt.log && [ -s r-$opt/model.h5 ] &&
     cmp -s <(metrics_core s-$opt/metrics.csv) <(metrics_core r-$opt/metrics.csv) &&
     h5diff s-$opt/model.h5 r-$opt/model.h5 >/dev/null &&
     h5diff s-$opt/checkpoint.h5 r-$opt/checkpoint.h5 /optimizer /optimizer >/dev/null; then
    pass "$opt: 3 epochs + resume to 6 == 6 straight (metrics rows, model.h5, optimiser state); val_loss $(awk -F, 'END { print $3 }' s-$opt/metrics.csv)"
  else fail "$opt: resumed run differs from the straight run"; fi
done
xt 2 train c.ini --set optim.optimizer=lamb --set optim.lr=0.01 --set run.dir=r-adam \
  --set optim.weight_decay=0.01 --set train.epochs=8 >mix.log 2>&1
code=$?
if [ $code -eq 2 ] && grep -q "optim.optimizer" mix.log; then
  pass "an adam checkpoint resumed with optimizer = lamb: refused (exit 2): $(grep -m1 -o 'error: .*' mix.log | cut -c8-140)"
else fail "adam checkpoint with lamb: exit $code"; tail -3 mix.log; fi

# 3. gradient accumulation: 4 micro-steps of 64 rows == one step of 256 rows
for np in 1 2; do
  xt $np train c.ini --set train.batch_size=256 --set run.dir=big-$np >big-$np.log 2>&1 &&
    xt $np train c.ini --set train.batch_size=64 --set train.accumulate=4 \
      --set run.dir=acc-$np >acc-$np.log 2>&1 || fail "accumulation runs at P=$np"
  d=$(metrics_maxrel big-$np/metrics.csv acc-$np/metrics.csv)
  if grep -q "global 256 rows per update .*in 4 micro-steps" acc-$np.log &&
     awk -v d="$d" 'BEGIN { exit !(d <= 1e-5) }'; then
    pass "P=$np: batch 64 x accumulate 4 == batch 256 (losses within $d, float order)"
  else fail "P=$np: accumulation differs from the large batch ($d)"; fi
done
finish
