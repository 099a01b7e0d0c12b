#!/usr/bin/env bash
# Right by default (issue 29): on scikit-learn's bundled data sets (iris, wine, breast_cancer,
# digits; a stratified 60/20/20 split with a fixed seed), a config that names only the splits
# and the model type (and model.hidden = 100 for the MLP, scikit-learn's width) reaches, on
# 2 ranks, the test accuracy of scikit-learn's defaults on the same training rows
# (StandardScaler + LogisticRegression(), StandardScaler + MLPClassifier()) within 1 point.
# bench/defaults.py does the work (it also makes the fuller table of docs/performance.md).
# Usage: defaults.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
py=/usr/bin/python3
$py -c 'import sklearn, h5py' 2>/dev/null ||
  { fail "python3-sklearn and python3-h5py are needed: run scripts/install-deps.sh --with-tests"; finish; exit 1; }
if [ "$(basename "$mpiexec")" != xt-mpirun ]; then export XT_MPIRUN=$mpiexec; fi
XT_TIMEOUT=600
if ! timeout -k 5 "$XT_TIMEOUT" $py "$root/bench/defaults.py" "$bin" "$tmp/runs" >table.csv 2>err.log; then
  fail "bench/defaults.py failed"; cat err.log; finish; exit 1
fi
cat table.csv
# every (data set, model): xentrain >= scikit-learn - 0.01
while IFS=, read -r data model sk xt; do
  if awk -v s="$sk" -v x="$xt" 'BEGIN { exit !(x != "failed" && x + 0 >= s - 0.01) }'; then
    pass "$data $model: xentrain $xt, scikit-learn $sk"
  else fail "$data $model: xentrain $xt, scikit-learn $sk (more than 1 point below)"; fi
done < <(awk -F, 'NR > 1 { key = $1 "," $5; if ($6 == "scikit-learn") sk[key] = $7; else xt[key] = $7; order[key] = NR }
                  END { for (k in order) print k "," sk[k] "," xt[k] }' table.csv | sort)
finish
