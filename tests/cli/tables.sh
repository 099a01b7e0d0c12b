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
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
/usr/bin/python3 -c 'import h5py' 2>/dev/null || { echo "SKIP: python3-h5py is needed to write the layouts"; exit 77; }
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
write_ini g.ini data.train=g.h5:/train data.val=g.h5:/val model.type=mlp model.hidden=256 \
  train.epochs=2 train.batch_size=64 train.progress=false run.dir=runs/g
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

# ---- HDF5 layouts of other tools (h5py) ------------------------------------------------------------
py - <<'PY' || { fail "h5py layouts"; finish; exit 1; }
import h5py, numpy as np
r = np.random.RandomState(1)
names = np.array(["cat", "dog", "eel"])
def make(n, k=3):
    y = r.randint(0, k, n); X = (r.randn(n, 4) + y[:, None] * 2.0).astype("f4"); return X, y
Xt, yt = make(300); Xv, yv = make(90); Xs, ys = make(60)
ys[:] = np.where(ys == 0, 1, ys)             # /test lacks "cat": its ids must still agree
with h5py.File("str.h5", "w") as f:
    f["train/X"] = Xt; f["train/y"] = names[yt].astype(object)         # variable-length
    f["val/X"] = Xv; f["val/y"] = names[yv].astype("S3")               # fixed-length
    f["test/X"] = Xs; f["test/y"] = names[ys].astype(object)
with h5py.File("ad.h5ad", "w") as f:                                   # AnnData's layout
    f["X"] = np.concatenate([Xt, Xv]); obs = f.create_group("obs")
    obs.attrs["_index"] = "cell"
    g = obs.create_group("cell_type"); g.attrs["encoding-type"] = "categorical"
    g["codes"] = np.concatenate([yt, yv]).astype("i1")
    g["categories"] = np.array(["B", "NK", "T"], dtype=object)
    f["obs/n_genes"] = np.arange(390)
with h5py.File("pm1.h5", "w") as f:                                    # LIBSVM's -1/+1
    f["train/X"] = Xt; f["train/y"] = np.where(yt > 0, 1, -1)
with h5py.File("u64.h5", "w") as f:                                    # ids beyond int32
    f["train/X"] = Xt; f["train/y"] = (yt.astype("u8") + (1 << 33))
with h5py.File("gap.h5", "w") as f:                                    # /train lacks class 3
    yy = np.where(yt == 2, 1, yt)
    f["train/X"] = Xt; f["train/y"] = yy; f["train"].attrs["label_values"] = ["1", "2", "5", "7"]
    f["val/X"] = Xv; f["val/y"] = np.where(yv == 2, 3, yv)
    f["test/X"] = Xs; f["test/y"] = np.full(60, 9)                      # outside K
with h5py.File("imb.h5", "w") as f:                                    # imbalanced classes
    yi = np.repeat([0, 1, 2], [240, 40, 20]); f["train/X"] = Xt; f["train/y"] = yi
PY
base=(model.type=softmax train.epochs=3 train.progress=false)
write_ini str.ini data.train=str.h5:/train data.val=str.h5:/val data.test=str.h5:/test \
  "${base[@]}" run.dir=runs/str
if xt 2 train str.ini >str.log 2>&1; then
  grep -q "y (300,) string: class names" str.log && pass "string labels (variable length) train; the banner says how they are read" ||
    { fail "string label banner"; grep "data " str.log; }
  grep -Eq "^ +0 cat +0 +0 +0" str.log && grep -Eq "^ +1 dog +[1-9]" str.log &&
    pass "fixed-length string labels in /val and a /test without one class agree on the ids" || { fail "string ids across splits"; grep -A5 confusion str.log; }
else fail "train on string labels"; tail -5 str.log; fi
if xt 2 eval --model runs/str/model.h5 --data 'ad.h5ad:/?X=X&y=obs/cell_type' >ad.log 2>&1; then fail "AnnData with other categories was not refused"
else grep -q "its labels are the classes 'B', 'NK', 'T' but the model runs/str/model.h5 has 'cat', 'dog', 'eel'" ad.log &&
  pass "eval refuses labels whose class names differ from the model's" || { fail "class name mismatch"; cat ad.log; }; fi
write_ini ad.ini 'data.train=ad.h5ad:/?X=X&y=obs/cell_type' "${base[@]}" run.dir=runs/ad
if xt 1 train ad.ini >ad-train.log 2>&1 && xt 1 eval --model runs/ad/model.h5 --data 'ad.h5ad:/?X=X&y=obs/cell_type' >ad-eval.log 2>&1; then
  grep -q "category codes (the categories name them)" ad-train.log && grep -q "  1 NK" ad-eval.log &&
    pass "AnnData's /obs/<column> codes and categories, named by a path in the spec" || { fail "AnnData names"; grep -E "data |NK" ad-train.log ad-eval.log; }
else fail "train on AnnData's layout"; tail -3 ad-train.log ad-eval.log; fi
xt 1 eval --model runs/str/model.h5 --data str.h5:/validation >miss.log 2>&1
grep -q "no group '/validation' (in the file, it holds: test, train, val; did you mean /val?)" miss.log &&
  pass "a missing split lists the file's groups with a did-you-mean" || { fail "missing split"; cat miss.log; }
write_ini pm1.ini data.train=pm1.h5:/train model.type=logistic train.epochs=1 run.dir=runs/pm1
xt 2 train pm1.ini >pm1.log 2>&1; grep -q "label -1 at row [0-9]*: class ids are 0..K-1; labels -1/+1 .* mapped to 0/1 by .xentrain convert h5" pm1.log &&
  pass "labels -1/+1: the message names the mapping" || { fail "-1/+1 hint"; grep error pm1.log; }
write_ini u64.ini data.train=u64.h5:/train "${base[@]}" run.dir=runs/u64
xt 1 train u64.ini >u64.log 2>&1; grep -q "integers outside int32's range (class ids go up to 2^31 - 1: relabel" u64.log && ! grep -q "whole numbers" u64.log &&
  pass "uint64 labels beyond 2^31 are named as such" || { fail "uint64 message"; grep error u64.log; }

# ---- K from the file's label values; every split checked before training; balanced weights ---------
write_ini gap.ini data.train=gap.h5:/train data.val=gap.h5:/val "${base[@]}" run.dir=runs/gap
if xt 2 train gap.ini >gap.log 2>&1; then
  grep -q "softmax, softmax head, 20 parameters, K = 4" gap.log && pass "K = 4 from label_values although /train lacks class 3 (val has it)" ||
    { fail "K from label_values"; grep "K =" gap.log; }
  xt 1 eval --model runs/gap/model.h5 --data gap.h5:/val --json gap.json >gap-eval.log 2>&1
  grep -Eq "^ +2 5 +" gap-eval.log && grep -q '"label": "7"' gap.json &&
    pass "eval prints the original label values (5, 7), not only 0..K-1" || { fail "label values in eval"; grep -A6 confusion gap-eval.log; }
  xt 1 predict --model runs/gap/model.h5 --data gap.h5:/val --out gap.csv >/dev/null 2>&1
  head -1 gap.csv | grep -q '^predicted,class_id,p_1,p_2,p_5,p_7$' && cut -d, -f1 gap.csv | sed 1d | sort -u | grep -qx 7 &&
    pass "predict writes the original label values" || { fail "predict label values"; head -3 gap.csv; }
else fail "K from label_values"; grep error gap.log; fi
write_ini gap2.ini data.train=gap.h5:/train data.val=gap.h5:/val data.test=gap.h5:/test \
  "${base[@]}" run.dir=runs/gap2
xt 2 train gap2.ini >gap2.log 2>&1
grep -q "gap.h5:/test/y: label 9 at row 0 is outside \[0, 4)" gap2.log && ! grep -q "^epoch" gap2.log &&
  pass "the test split's labels are checked before training" || { fail "test labels at start-up"; grep -E "error|^epoch" gap2.log; }
write_ini imb.ini data.train=imb.h5:/train loss.class_weights=balanced "${base[@]}" \
  run.dir=runs/imb
if xt 2 train imb.ini >imb.log 2>&1; then
  grep -q "loss.class_weights = balanced: n / (K \* count) over the 300 training rows: 0.416667,2.5,5" imb.log &&
    grep -q "^class_weights = balanced" runs/imb/config.ini &&
    pass "loss.class_weights = balanced: scikit-learn's n / (K * count), counted over both ranks" || { fail "balanced weights"; grep -E "balanced|weights" imb.log runs/imb/config.ini; }
else fail "class_weights = balanced"; grep error imb.log; fi

# ---- convert h5: split one group of a file, stratified, labels to 0..K-1, attributes kept ----------
py - <<'PY' || fail "h5 split fixture"
import h5py, numpy as np
r = np.random.RandomState(5)
y = np.repeat([-1, 1], [150, 50]); X = (r.rand(200, 6) * 255).astype("u1")
with h5py.File("one.h5", "w") as f:
    f["all/X"] = X; f["all/y"] = y; f["all/X"].attrs["scale"] = 1 / 255.0
    f.attrs["feature_names"] = ["f%d" % i for i in range(6)]
PY
if xt 1 convert h5 --input one.h5:/all --stratify --val-fraction 0.2 --test-fraction 0.2 --seed 3 --out split.h5 >split.log 2>&1; then
  got=$(py - <<'PY'
import h5py, numpy as np
f = h5py.File("split.h5")
print(",".join("%d/%d" % (int((f[g + "/y"][:] == 1).sum()), len(f[g + "/y"])) for g in ("train", "val", "test")),
      f["train/X"].dtype, round(f["train/X"].attrs["scale"] * 255, 6), list(f["train"].attrs["label_values"]),
      len(f.attrs["feature_names"]))
PY
)
  [ "$got" = "30/120,10/40,10/40 uint8 1.0 ['-1', '1'] 6" ] &&
    pass "convert h5: stratified 60/20/20 split, -1/+1 to 0/1 kept as label_values, uint8 X and its scale, feature_names" ||
    fail "convert h5 split: $got"
else fail "convert h5"; cat split.log; fi
write_ini split.ini data.train=split.h5:/train data.val=split.h5:/val data.test=split.h5:/test \
  model.type=logistic train.epochs=2 train.progress=false run.dir=runs/split
xt 2 train split.ini >split-train.log 2>&1 && grep -Eq "^ +1 1 +[0-9]" split-train.log && grep -Eq "^ +0 -1 +[0-9]" split-train.log &&
  pass "a model trained on it reports the classes as -1 and 1" || { fail "train on the split"; grep -A4 confusion split-train.log; }
xt 1 convert h5 --input 'ad.h5ad:/?X=X&y=obs/cell_type' --out ad-split.h5 >ad-split.log 2>&1 &&
  py -c 'import h5py; f = h5py.File("ad-split.h5"); assert list(f.attrs["class_names"]) == ["B", "NK", "T"]' &&
  pass "convert h5 of AnnData's categories keeps them as class_names" || { fail "convert h5 AnnData"; cat ad-split.log; }

# ---- categories at predict time: the training conversion's, never a new one ----------------------
py - <<'PY'
import numpy as np
r = np.random.RandomState(7)
colors = ["red", "green", "blue"]
with open("cat.csv", "w") as f:
    f.write("color,size,kind\n")
    for i in range(120):
        c = r.randint(0, 3); f.write("%s,%.3f,%s\n" % (colors[c], r.randn() + c, "ab"[c == 2]))
with open("new.csv", "w") as f:                     # rows to predict: no label, other colours
    f.write("size,color\n")
    for i in range(10): f.write("%.3f,%s\n" % (r.randn(), ["red", "teal", "blue"][i % 3]))
with open("new-alone.csv", "w") as f:               # the same rows converted on their own
    f.write("color,size,kind\n")
    for i in range(10): f.write("%s,%.3f,%s\n" % (["red", "teal", "blue"][i % 3], r.randn(), "ab"[i % 2]))
PY
if xt 1 convert csv --input cat.csv --test-input new.csv --out cat.h5 >cat.log 2>&1; then
  grep -q "column 'color' is categorical (3 different words" cat.log &&
    grep -q "no label column 'kind': its rows become /test with X only" cat.log &&
    grep -q "3 row(s) of /test have a category of column 'color' that the training rows lack (e.g. 'teal'" cat.log &&
    pass "rows to predict (no label, an unseen colour) get the training rows' one-hot columns, said" || { fail "categorical messages"; cat cat.log; }
else fail "convert with an unlabelled --test-input"; cat cat.log; fi
write_ini cat.ini data.train=cat.h5:/train data.val=cat.h5:/val model.type=logistic \
  train.epochs=2 train.progress=false run.dir=runs/cat
xt 1 train cat.ini >cat-train.log 2>&1 || { fail "train on categories"; tail -3 cat-train.log; }
xt 2 predict --model runs/cat/model.h5 --data cat.h5:/test --out cat-pred.csv >cat-pred.log 2>&1 &&
  [ "$(sed 1d cat-pred.csv | wc -l)" = 10 ] && head -1 cat-pred.csv | grep -q "^predicted,predicted_name,p_a,p_b$" &&
  pass "predict on the unlabelled /test, in the original labels" || { fail "predict on /test"; cat cat-pred.log; head -2 cat-pred.csv; }
xt 1 convert csv --input new-alone.csv --val-fraction 0 --out alone.h5 >/dev/null 2>&1
if xt 1 predict --model runs/cat/model.h5 --data alone.h5:/train --out alone.csv >alone.log 2>&1; then
  fail "data converted on its own (other categories, same D) was not refused"
else grep -q "feature 0 is 'color=blue' but the model runs/cat/model.h5 was trained on 'color=blue'\|feature 1 is 'color=red' but the model runs/cat/model.h5 was trained on 'color=green'" alone.log &&
  pass "predict refuses features named otherwise than the model's (a separate conversion)" || { fail "feature names check"; cat alone.log; }; fi

finish
