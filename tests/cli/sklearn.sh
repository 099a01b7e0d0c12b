#!/usr/bin/env bash
# Users' own data, with the defaults: scikit-learn's bundled CSVs (breast_cancer, digits)
# converted by `xentrain convert csv` (split by the converter: stratified, fixed seed),
# trained with no normalisation setting (data.normalize = auto standardises them), reach
# test accuracy within 1 point of scikit-learn's LogisticRegression (after StandardScaler,
# its documented practice) on the same rows, at P = 1 and 2; the same data written by
# sklearn.datasets.dump_svmlight_file and converted with `convert libsvm` give the same D
# and the same accuracy. Skipped, saying so, when python3-sklearn or python3-h5py is absent.
# Usage: sklearn.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
py=/usr/bin/python3
if ! $py -c 'import sklearn, h5py' 2>/dev/null; then
  echo "SKIP: python3-sklearn and python3-h5py are needed for the comparison"; exit 77
fi
data=$($py -c 'import os, sklearn.datasets as d; print(os.path.join(os.path.dirname(d.__file__), "data"))')
write_ini base.ini
split="--val-fraction 0.15 --test-fraction 0.25 --stratify --seed 1"
"$bin" convert csv --input "$data/breast_cancer.csv" --skip-rows 1 $split --out bc.h5 >bc.conv.log 2>&1 &&
  "$bin" convert csv --input "$data/digits.csv.gz" $split --out digits.h5 >dg.conv.log 2>&1 ||
  { fail "convert csv"; cat bc.conv.log dg.conv.log; finish; exit 1; }

# the same rows in svmlight format, as scikit-learn writes them (zero-based indices)
$py - <<'PY' || { fail "dump_svmlight_file"; finish; exit 1; }
import numpy as np, sklearn.datasets as d
from sklearn.datasets import dump_svmlight_file
X, y = d.load_breast_cancer(return_X_y=True)
dump_svmlight_file(X, y, "bc.svm")
X, y = d.load_digits(return_X_y=True)
dump_svmlight_file(X, y, "digits.svm")
PY
"$bin" convert libsvm --input bc.svm --zero-based $split --out bc_svm.h5 >bcs.conv.log 2>&1 &&
  "$bin" convert libsvm --input digits.svm --zero-based $split --out digits_svm.h5 >dgs.conv.log 2>&1 ||
  { fail "convert libsvm"; cat bcs.conv.log dgs.conv.log; }

# without a base the converter cannot know: it says so, and the result is one-based
"$bin" convert libsvm --input digits.svm $split --out digits_guess.h5 >guess.log 2>&1
if grep -q "no index 0 occurs, so indices are taken as one-based" guess.log; then
  pass "libsvm without --zero-based/--one-based: the guess is printed with its reason"
else fail "libsvm base guess was silent"; cat guess.log; fi

# scikit-learn on the same rows
$py - <<'PY' >sk.txt || fail "scikit-learn reference"
import h5py
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
for name in ("bc", "digits"):
    with h5py.File(name + ".h5") as f:
        Xtr, ytr, Xte, yte = (f[k][:] for k in ("train/X", "train/y", "test/X", "test/y"))
    m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(Xtr, ytr)
    print(name, m.score(Xte, yte), Xtr.shape[1])
PY

within() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.01) }'; }
for name in bc digits; do
  type=$([ $name = bc ] && echo logistic || echo softmax)
  read -r _ sk d_sk < <(grep "^$name " sk.txt)
  for src in $name ${name}_svm; do
    [ -s $src.h5 ] || continue
    d=$(h5ls $src.h5/train/X 2>/dev/null | sed -n 's/.*{[0-9]*, \([0-9]*\)}.*/\1/p')
    if [ $src = ${name}_svm ]; then
      if [ "$d" = "$d_sk" ]; then pass "$name via LIBSVM: D = $d, as the CSV"; else fail "$name via LIBSVM: D = $d, CSV $d_sk"; fi
    fi
    for np in 1 2; do
      xt $np train base.ini --set data.train=$src.h5:/train --set data.val=$src.h5:/val \
        --set data.test=$src.h5:/test --set model.type=$type --set train.epochs=50 \
        --set train.batch_size=32 --set train.progress=false --set run.dir=runs/$src.$np \
        >$src.$np.log 2>&1
      acc=$(awk '/^accuracy/ { print $2 }' $src.$np.log)
      if [ -n "$acc" ] && within "$acc" "$sk"; then
        pass "$src at P=$np: test accuracy $acc, scikit-learn $(printf %.4f "$sk") (within 1 point)"
      else fail "$src at P=$np: test accuracy '${acc}', scikit-learn $sk"; tail -3 $src.$np.log; fi
    done
  done
done
finish
