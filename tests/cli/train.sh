#!/usr/bin/env bash
# The trainer through its command line, at P = 1..4:
#  - per-epoch train and validation losses equal within 1e-5 relative for P = 1, 2, 3, 4
#    (N not divisible by P), and the same stopping epoch;
#  - a corrupted replica is caught by the parameter checksum;
#  - an overfitting run stops at the epoch its patience implies and model.h5 holds the
#    best epoch (eval of model.h5 on /val gives the best val_loss);
#  - a rank-0-only failure (run.dir unusable) ends every rank with an error, no hang;
#  - a diverging run exits 3; eval/predict agree across rank counts.
# Usage: train.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"

"$bin" gen blobs --rows 1430 --features 8 --classes 3 --noise 2.0 --val-fraction 0.15 \
  --test-fraction 0.15 --seed 3 --out blobs.h5 >/dev/null || { echo "gen failed"; exit 1; }
write_ini inv.ini data.train=blobs.h5:/train data.val=blobs.h5:/val data.normalize=standardize \
  data.virtual_shards=12 model.type=mlp model.hidden=16,8 model.activation=tanh optim.lr=0.1 \
  optim.momentum=0.9 train.epochs=12 train.batch_size=50 train.check_every=1 \
  train.progress=false early_stopping.enabled=true early_stopping.patience=2

# 1. rank-count invariance
for np in 1 2 3 4; do
  if xt "$np" train inv.ini --set run.dir=inv$np >inv$np.log 2>&1; then pass "train at P=$np"
  else fail "train at P=$np (exit $?; see $tmp/inv$np.log)"; fi
done
rows1=$(wc -l < inv1/metrics.csv)
for np in 2 3 4; do
  r=$(metrics_maxrel inv1/metrics.csv inv$np/metrics.csv)
  rows=$(wc -l < inv$np/metrics.csv)
  if [ "$rows" = "$rows1" ] && awk -v r="$r" 'BEGIN { exit !(r < 1e-5) }'; then
    pass "P=$np vs P=1: $((rows - 1)) epochs, losses max rel diff $r"
  else
    fail "P=$np vs P=1: rows $rows vs $rows1, losses max rel diff $r"
  fi
done

# 2. a corrupted replica is detected by the checksum
if XT_FAULT_CORRUPT_PARAMS=1:5 xt 2 train inv.ini --set run.dir=corrupt >corrupt.log 2>&1; then
  fail "corrupted replica not detected"
elif grep -q "replica check failed at step 5" corrupt.log; then pass "corrupted replica detected at step 5"
else fail "corrupted replica: wrong message"; cat corrupt.log; fi

# 3. overfitting: early stopping at best + patience, model.h5 = best epoch
"$bin" gen blobs --rows 2000 --features 40 --classes 3 --noise 15 --val-fraction 0.45 \
  --test-fraction 0.45 --seed 7 --out overfit.h5 >/dev/null
write_ini overfit.ini data.train=overfit.h5:/train data.val=overfit.h5:/val \
  data.normalize=standardize model.type=mlp model.hidden=128,128 model.init=he optim.lr=0.005 \
  optim.momentum=0.9 train.epochs=200 train.batch_size=20 train.progress=false \
  early_stopping.enabled=true early_stopping.monitor=val_loss early_stopping.patience=4 \
  early_stopping.restore_best=true run.dir=overfit
if xt 2 train overfit.ini >overfit.log 2>&1; then
  best=$(awk -F, 'NR > 1 { if (b == "" || $3 < v) { v = $3; b = $1 } } END { print b }' overfit/metrics.csv)
  bestv=$(awk -F, -v b="$best" 'NR > 1 && $1 == b { print $3 }' overfit/metrics.csv)
  last=$(tail -n 1 overfit/metrics.csv | cut -d, -f1)
  if [ "$last" -eq $((best + 4)) ] && [ "$last" -lt 200 ]; then
    pass "overfit run stopped at epoch $last = best epoch $best + patience 4"
  else fail "overfit run stopped at $last, best epoch $best"; fi
  if xt 2 eval --model overfit/model.h5 --data overfit.h5:/val --json ev.json >ev.log 2>&1; then
    got=$(sed -n 's/.*"loss": \([^,]*\),.*/\1/p' ev.json)
    if awk -v a="$got" -v b="$bestv" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d / b < 1e-5) }'; then
      pass "eval of model.h5 on /val gives the best val_loss ($got vs $bestv)"
    else fail "eval of model.h5 gives $got, best val_loss was $bestv"; fi
  else fail "eval of overfit model failed"; cat ev.log; fi
else fail "overfit training failed"; tail overfit.log; fi

# 4. rank 0 alone cannot create the run directory: every rank ends, non-zero, no hang
touch notadir
start=$(date +%s)
xt 3 train inv.ini --set run.dir=notadir/run >r0fail.log 2>&1
code=$?
if [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && grep -q "notadir" r0fail.log; then
  pass "unwritable run directory: exit $code in $(( $(date +%s) - start )) s, message names it"
else fail "unwritable run directory: exit $code"; cat r0fail.log; fi

# 5. divergence: features of magnitude 1e30 without normalisation overflow float
#    logits after one step: exit code 3 and a message naming epoch and step
awk 'BEGIN { srand(5); print "f1,f2,f3,label"; for (i = 0; i < 200; i++) {
       c = i % 2; printf "%.3e,%.3e,%.3e,%d\n", (rand() + c) * 1e30, rand() * 1e30, -rand() * 1e30, c } }' > huge.csv
"$bin" convert csv --input huge.csv --label-column label --header --val-fraction 0.2 --out huge.h5 >/dev/null \
  || fail "convert of huge.csv"
xt 2 train inv.ini --set run.dir=div --set data.train=huge.h5:/train --set data.val=huge.h5:/val \
  --set data.normalize=none --set model.type=softmax --set model.hidden= --set model.init=zeros \
  --set optim.lr=1 >div.log 2>&1
code=$?
if [ "$code" -eq 3 ] && grep -q "diverged.*epoch" div.log; then pass "diverging run exits 3"
else fail "diverging run: exit $code"; tail -5 div.log; fi

# 6. eval and predict agree across rank counts
for np in 1 3; do
  xt "$np" eval --model inv1/model.h5 --data blobs.h5:/test --json e$np.json >e$np.log 2>&1 || fail "eval at P=$np"
  xt "$np" predict --model inv1/model.h5 --data blobs.h5:/test --out p$np.h5 >p$np.log 2>&1 || fail "predict at P=$np"
done
# accuracy and confusion matrix identical; the loss is summed in another order: 1e-6
l1=$(sed -n 's/.*"loss": \([^,]*\),.*/\1/p' e1.json)
l3=$(sed -n 's/.*"loss": \([^,]*\),.*/\1/p' e3.json)
if [ -s e1.json ] && cmp -s <(grep -v '"model"\|"loss"' e1.json) <(grep -v '"model"\|"loss"' e3.json) &&
   awk -v a="$l1" -v b="$l3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * b) }'; then
  pass "eval at P=1 and P=3: same accuracy and confusion matrix, loss $l1 vs $l3"
else fail "eval differs between P=1 and P=3"; diff e1.json e3.json; fi
if [ -s p1.h5 ] && [ -s p3.h5 ] && h5diff -d 1e-6 p1.h5 p3.h5 >/dev/null; then
  pass "predict at P=1 and P=3 write the same predictions (h5diff -d 1e-6)"
else fail "predict outputs differ"; h5diff -d 1e-6 p1.h5 p3.h5 | head; fi

# 7. a config error is reported once, exit 2, on every rank
xt 2 train inv.ini --set optim.lrr=0.1 >badkey.log 2>&1
code=$?
if [ "$code" -eq 2 ] && grep -q "optim.lr" badkey.log; then pass "unknown key: exit 2 with a suggestion"
else fail "unknown key: exit $code"; cat badkey.log; fi

finish
