#!/usr/bin/env bash
# The full-batch solvers (optim.optimizer = lbfgs, newton; docs/solvers.md):
#  1. scikit-learn's optimum (tests/ref/sklearn_logreg.txt, made by tests/ref/sklearn_logreg.py):
#     binary and multinomial logistic regression, with and without class weights, both
#     solvers at P = 1, 2, 3: the objective and the coefficients within 1e-6 relative, and the
#     closing line says why the solver stopped;
#  2. optim.weight_decay = 1 / (C n) reaches the optimum of optim.C = C;
#  3. the reproducible mode: the same model.h5 and metrics, bit for bit, at P = 1, 2, 3;
#  4. exact resume: 3 iterations + resume to 7 == 7 straight (metrics rows, model.h5, the
#     solver's state), for both; and a SIGTERM in the middle of an iteration: exit 75, the
#     resumed run equals the straight one;
#  5. streamed training rows give the in-memory model bit for bit;
#  6. lbfgs trains the MLP; validation rows per iteration; eval and predict read the model;
#  7. what a full-batch solver cannot take is refused with the fix (exit 2);
#  8. multi-label and probability-row targets: lbfgs and newton reach the same optimum.
# Usage: solver.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
xt_begin "$@"
fixture=$here/../ref/sklearn_logreg.txt
py=/usr/bin/python3

$py - "$fixture" <<'PY' || { fail "writing the fixture's data (python3-h5py)"; finish; exit 1; }
import sys, h5py, numpy as np
rows = {}
for l in open(sys.argv[1]):
    if l.startswith("row "):
        f = l.split()
        rows.setdefault(f[1], []).append(f[2:])
for name, rs in rows.items():
    with h5py.File(name + ".h5", "w") as f:
        f["train/y"] = np.array([int(r[0]) for r in rs], dtype=np.int32)
        f["train/X"] = np.array([[float(v) for v in r[1:]] for r in rs], dtype=np.float32)
PY

# compare.py CASE RUN_DIR: max relative difference of the coefficients and of the objective
cat > compare.py <<'PY'
import csv, sys, h5py, numpy as np
fixture, case, run = sys.argv[1:4]
lines = open(fixture).read().splitlines()
i = lines.index(next(l for l in lines if l.startswith("case %s " % case)))
f_ref = float(lines[i + 1].split()[1])
coef = np.array([float(v) for v in lines[i + 2].split()[1:]])
icpt = np.array([float(v) for v in lines[i + 3].split()[1:]])
with h5py.File(run + "/model.h5") as m:
    W = m["model/layer1/W"][()].astype(np.float64).ravel()
    b = m["model/layer1/b"][()].astype(np.float64)
if len(b) > 1:
    b = b - b.mean()  # the softmax's intercepts up to a common shift (sklearn_logreg.py)
ref = np.concatenate([coef, icpt])
got = np.concatenate([W, b])
rows = list(csv.DictReader(open(run + "/metrics.csv")))
f = float(rows[-1]["objective"])
print("%.3g %.3g" % (np.abs(got - ref).max() / np.abs(ref).max(), abs(f - f_ref) / f_ref))
PY

write_ini base.ini data.normalize=none model.init=zeros optim.tol=1e-9 optim.ftol=0 \
  checkpoint.every=0 train.progress=false

# 1. scikit-learn's optimum, both solvers, P = 1, 2, 3
while read -r tag name data C cw; do
  [ "$tag" = case ] || continue
  data=${data#data=} C=${C#C=} cw=${cw#class_weights=}
  type=$([ "$data" = binary ] && echo logistic || echo softmax)
  args=(--set data.train=$data.h5 --set model.type=$type --set optim.C=$C)
  [ "$cw" = - ] || args+=(--set loss.class_weights=$cw)
  for opt in lbfgs newton; do
    for np in 1 2 3; do
      run=sk-$name-$opt-$np
      if xt $np train base.ini "${args[@]}" --set optim.optimizer=$opt --set run.dir=$run \
           >$run.log 2>&1 </dev/null; then  # mpirun would read the fixture from stdin
        read -r dw df < <($py compare.py "$fixture" "$name" "$run")
        why=$(grep -E '^converged' $run.log | tail -1 | cut -c1-90) # not "stopped: ... not converged"
        if awk -v a="$dw" -v b="$df" 'BEGIN { exit !(a <= 1e-6 && b <= 1e-6) }' && [ -n "$why" ]; then
          pass "$name $opt P=$np: coefficients within $dw, objective within $df of scikit-learn ($why)"
        else fail "$name $opt P=$np: coefficients $dw, objective $df (bar 1e-6); '$why'"; tail -2 $run.log; fi
      else fail "$name $opt P=$np: training failed"; tail -3 $run.log; fi
    done
  done
done < "$fixture"
[ "$(ls sk-*/model.h5 2>/dev/null | wc -l)" -eq 24 ] || fail "expected 4 cases x 2 solvers x 3 rank counts"

# 2. optim.weight_decay = 1 / (C n): binary, n = 240 rows, C = 1
xt 2 train base.ini --set data.train=binary.h5 --set model.type=logistic \
  --set optim.weight_decay=$(awk 'BEGIN { printf "%.17g", 1 / 240 }') --set optim.optimizer=lbfgs \
  --set run.dir=wd >wd.log 2>&1 || fail "weight_decay run"
read -r dw df < <($py compare.py "$fixture" binary_c1 wd)
if awk -v a="$dw" -v b="$df" 'BEGIN { exit !(a <= 1e-6 && b <= 1e-6) }'; then
  pass "optim.weight_decay = 1/(C n) reaches the optim.C = C optimum (coefficients within $dw)"
else fail "weight_decay mapping: coefficients $dw, objective $df"; fi

# 3. the reproducible mode: bit for bit at P = 1, 2, 3
"$bin" gen blobs --classes 3 --rows 3000 --features 12 --noise 4 --seed 3 --val-fraction 0.2 \
  --out g.h5 >/dev/null || fail "gen"
write_ini r.ini data.train=g.h5:/train data.val=g.h5:/val model.type=softmax optim.tol=1e-7 \
  train.reproducible=true train.micro_batches=6 train.progress=false checkpoint.every=0
objcols() { cut -d, -f1-6,21,22 "$1"; }
for opt in lbfgs newton; do
  for np in 1 2 3; do
    xt $np train r.ini --set optim.optimizer=$opt --set run.dir=rep-$opt-$np >rep-$opt-$np.log 2>&1 ||
      fail "reproducible $opt at P=$np"
  done
  if [ -s rep-$opt-1/model.h5 ] &&
     cmp -s <(objcols rep-$opt-1/metrics.csv) <(objcols rep-$opt-2/metrics.csv) &&
     cmp -s <(objcols rep-$opt-1/metrics.csv) <(objcols rep-$opt-3/metrics.csv) &&
     h5diff rep-$opt-1/model.h5 rep-$opt-2/model.h5 >/dev/null &&
     h5diff rep-$opt-1/model.h5 rep-$opt-3/model.h5 >/dev/null; then
    pass "reproducible $opt: P = 1, 2, 3 bit for bit ($(($(wc -l < rep-$opt-1/metrics.csv) - 1)) iterations, $(tail -1 rep-$opt-1/metrics.csv | cut -d, -f5) passes)"
  else fail "reproducible $opt: the rank counts differ"; fi
done

# 4. exact resume: 3 + 4 iterations == 7, and after a SIGTERM in the middle of an iteration
write_ini c.ini data.train=g.h5:/train data.val=g.h5:/val model.type=softmax optim.tol=1e-12 \
  optim.ftol=0 train.progress=false train.epochs=7
for opt in lbfgs newton; do
  xt 2 train c.ini --set optim.optimizer=$opt --set run.dir=s-$opt >s-$opt.log 2>&1 || fail "$opt straight"
  xt 2 train c.ini --set optim.optimizer=$opt --set run.dir=r-$opt --set train.epochs=3 >r1-$opt.log 2>&1 &&
    xt 2 train c.ini --set optim.optimizer=$opt --set run.dir=r-$opt >r2-$opt.log 2>&1 || fail "$opt resumed"
  if grep -q "^resume: " r2-$opt.log && cmp -s <(objcols s-$opt/metrics.csv) <(objcols r-$opt/metrics.csv) &&
     [ "$(wc -l < s-$opt/metrics.csv)" -eq 8 ] && h5diff s-$opt/model.h5 r-$opt/model.h5 >/dev/null &&
     h5diff s-$opt/checkpoint.h5 r-$opt/checkpoint.h5 /optimizer /optimizer >/dev/null; then
    pass "$opt: 3 iterations + resume to 7 == 7 straight (metrics, model.h5, solver state /optimizer)"
  else fail "$opt: the resumed run differs"; diff <(objcols s-$opt/metrics.csv) <(objcols r-$opt/metrics.csv) | head -4; fi
done
XT_TEST_STEP_DELAY_MS=150 xt 2 train c.ini --set optim.optimizer=lbfgs --set run.dir=sig >sig.log 2>&1 &
job=$!
for i in $(seq 1 300); do [ -s sig/metrics.csv ] && [ "$(wc -l < sig/metrics.csv)" -ge 3 ] && break; sleep 0.1; done
sleep 0.2 # inside an iteration: its passes take 150 ms each
pid=$(rank_pid "run.dir=sig" 1)
[ -n "$pid" ] && kill -TERM "$pid"
wait $job
code=$?
xt 2 train c.ini --set optim.optimizer=lbfgs --set run.dir=sig >sig2.log 2>&1 || fail "resume after the signal"
if [ "$code" -eq 75 ] && grep -q "signal received" sig.log &&
   cmp -s <(objcols s-lbfgs/metrics.csv) <(objcols sig/metrics.csv) && h5diff s-lbfgs/model.h5 sig/model.h5 >/dev/null; then
  pass "SIGTERM during an iteration: exit 75, checkpoint at its start; resumed ($(grep -o 'epoch [0-9]* step [0-9]*' sig2.log | head -1)) == straight"
else fail "signal: exit $code, or the resumed run differs"; tail -3 sig.log; fi

# 5. streamed rows == rows in memory
for opt in lbfgs newton; do
  xt 2 train c.ini --set optim.optimizer=$opt --set data.stream=true --set run.dir=st-$opt >st-$opt.log 2>&1 ||
    fail "$opt streamed"
  if grep -q "streamed from the file" st-$opt.log && cmp -s <(objcols s-$opt/metrics.csv) <(objcols st-$opt/metrics.csv) &&
     h5diff s-$opt/model.h5 st-$opt/model.h5 >/dev/null; then
    pass "$opt with data.stream = true: each pass streams; the in-memory model bit for bit"
  else fail "$opt streamed differs from in memory"; fi
done

# 6. the MLP with lbfgs; validation rows; eval and predict
xt 2 train c.ini --set optim.optimizer=lbfgs --set model.type=mlp --set model.hidden=16 \
  --set train.epochs=30 --set run.dir=mlp >mlp.log 2>&1 || fail "lbfgs mlp"
first=$(awk -F, 'NR == 2 { print $2 }' mlp/metrics.csv) last=$(awk -F, 'END { print $2 }' mlp/metrics.csv)
if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.8 * a) }' &&
   [ "$(awk -F, 'NR > 1 && $3 != "" { n++ } END { print n }' mlp/metrics.csv)" -eq 30 ]; then
  pass "lbfgs trains the MLP: train loss $first -> $last over 30 iterations, a validation row each"
else fail "lbfgs mlp: train loss $first -> $last"; fi
xt 1 eval --model s-newton/model.h5 --data g.h5:/val >ev.log 2>&1 &&
  xt 1 predict --model s-newton/model.h5 --data g.h5:/val --out p.h5 >pr.log 2>&1
acc=$(awk '/^accuracy/ { print $2 }' ev.log)
vacc=$(awk -F, 'END { print $4 }' s-newton/metrics.csv)
if [ -s p.h5 ] && [ -n "$acc" ] && awk -v a="$acc" -v b="$vacc" 'BEGIN { d = a - b; exit !(d <= 5e-5 && d >= -5e-5) }'; then
  pass "eval and predict read the solver's model.h5 (accuracy $acc, its last validation row's $vacc to eval's 4 digits)"
else fail "eval/predict of the solver's model: accuracy '$acc', metrics '$vacc'"; fi

# 8. the losses without a scikit-learn fixture: multi-label (one sigmoid per label) and softmax
#    on probability rows; lbfgs and newton, two different algorithms, end at the same optimum:
#    the objective of each model.h5 evaluated here in double within 1e-9 relative (the
#    objectives the runs report come from float32 logits, precise to about 1e-8 relative on
#    these small objectives, so they are only checked against it to 1e-7); every coefficient
#    within 1e-4 of the largest (two float32 runs, on data with weakly determined directions)
"$bin" gen multilabel --classes 4 --rows 1500 --features 8 --seed 5 --out ml.h5 >/dev/null &&
  "$bin" gen blobs --classes 3 --rows 1500 --features 6 --noise 2 --soft --seed 6 --out soft.h5 >/dev/null ||
  fail "gen multilabel, soft blobs"
cat > same.py <<'PY'
import csv, sys, h5py, numpy as np
data, kind, C, a, b = sys.argv[1:6]
with h5py.File(data) as f:
    X = f["train/X"][()].astype(np.float64)
    T = f["train/y"][()].astype(np.float64)
n, K = X.shape[0], T.shape[1]
def objective(run):  # docs/solvers.md: mean loss + lambda / 2 ||W||^2, lambda = 1 / (C W)
    with h5py.File(run + "/model.h5") as m:
        W = m["model/layer1/W"][()].astype(np.float64)
        bias = m["model/layer1/b"][()].astype(np.float64)
    Z = X @ W.T + bias
    if kind == "softmax":  # W = n: the mean over rows of -sum_k t_k log p_k
        Z -= Z.max(1, keepdims=True)
        loss, weight = -(T * (Z - np.log(np.exp(Z).sum(1, keepdims=True)))).sum(), n
    else:  # one sigmoid per label: W = n K, the mean over every (row, label)
        loss, weight = (np.logaddexp(0.0, Z) - T * Z).sum(), n * K
    f = loss / weight + 0.5 / (float(C) * weight) * (W ** 2).sum()
    said = float(list(csv.DictReader(open(run + "/metrics.csv")))[-1]["objective"])
    return f, abs(said - f) / f, np.concatenate([W.ravel(), bias.ravel()])
fa, sa, pa = objective(a)
fb, sb, pb = objective(b)
print("%.3g %.3g %.3g" % (np.abs(pa - pb).max() / np.abs(pa).max(), abs(fa - fb) / fa, max(sa, sb)))
PY
for set in ml soft; do
  type=$([ $set = ml ] && echo multilabel || echo softmax)
  for opt in lbfgs newton; do
    xt 2 train base.ini --set data.train=$set.h5:/train --set model.type=$type \
      --set optim.optimizer=$opt --set optim.C=0.5 --set run.dir=$set-$opt >$set-$opt.log 2>&1 ||
      fail "$set $opt"
  done
  read -r dw df ds < <($py same.py $set.h5 $type 0.5 $set-lbfgs $set-newton)
  if grep -q '^converged' $set-lbfgs.log && grep -q '^converged' $set-newton.log &&
     awk -v a="$dw" -v b="$df" -v c="$ds" 'BEGIN { exit !(a <= 1e-4 && b <= 1e-9 && c <= 1e-7) }'; then
    pass "$type ($set): lbfgs and newton at the same optimum (coefficients within $dw, objective within $df; reported within $ds of it)"
  else fail "$type ($set): lbfgs and newton differ: coefficients $dw, objective $df (reported within $ds)"; fi
done

# 7. refusals: exit 2 with the fix
refuse() { # refuse LABEL PATTERN --set ...
  local label=$1 pat=$2; shift 2
  xt 1 train base.ini --set data.train=binary.h5 --set model.type=logistic "$@" \
    --set run.dir=ref >ref.log 2>&1
  local code=$?
  if [ $code -eq 2 ] && grep -q -- "$pat" ref.log; then
    pass "refused: $label ($(grep -m1 -o 'error: .*' ref.log | cut -c8-120))"
  else fail "$label: exit $code"; tail -2 ref.log; fi
}
refuse "a batch size" "remove train.batch_size" --set optim.optimizer=lbfgs --set train.batch_size=64
refuse "a schedule" "remove optim.schedule" --set optim.optimizer=newton --set optim.schedule=cosine
refuse "a learning rate" "line search chooses every step" --set optim.optimizer=lbfgs --set optim.lr=0.5
refuse "momentum" "remove optim.momentum" --set optim.optimizer=lbfgs --set optim.momentum=0.9
refuse "newton for the mlp" "use optim.optimizer = lbfgs" --set optim.optimizer=newton \
  --set model.type=mlp --set model.hidden=8 --set model.init=xavier
refuse "C and weight_decay" "not both" --set optim.optimizer=lbfgs --set optim.C=2 --set optim.weight_decay=0.1
refuse "optim.shard = true" "nothing to shard" --set optim.optimizer=lbfgs --set optim.shard=true
refuse "history for newton" "lbfgs only" --set optim.optimizer=newton --set optim.history=5
refuse "optim.C for sgd" "full-batch solvers" --set optim.C=2
finish
