#!/usr/bin/env bash
# HDF5 layouts users already have, written by h5py: y as (N, 1) integers, as whole-number
# floats or as bools trains (the banner names the conversion); X and y under other names
# work through the spec (f.h5:/g?X=data&y=labels); X stored transposed, labels that start
# at 1, a split without a group on the training file, a missing slash and fractional
# "class ids" are refused with the hint the message promises; predict needs no y; a rerun
# of a finished run with a new optim.lr says the value was not used.
# Skipped (saying so) without python3-h5py.
# Usage: layouts.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
XT_TIMEOUT=60
/usr/bin/python3 -c 'import h5py' 2>/dev/null || { echo "SKIP: python3-h5py is needed to write the layouts"; exit 77; }
/usr/bin/python3 - <<'PY' || { fail "h5py fixtures"; finish; exit 1; }
import h5py, numpy as np
r = np.random.RandomState(1)
X = r.randn(300, 4).astype("f4")
y = (X[:, 0] - X[:, 1] > 0).astype("i8")
def split(f, g, x, yy, **names):
    xn, yn = names.get("xn", "X"), names.get("yn", "y")
    f[g + "/" + xn] = x
    if yy is not None:
        f[g + "/" + yn] = yy
with h5py.File("col.h5", "w") as f:
    split(f, "train", X[:200], y[:200].reshape(-1, 1)); split(f, "val", X[200:], y[200:].reshape(-1, 1))
with h5py.File("float.h5", "w") as f:
    split(f, "train", X[:200], y[:200].astype("f8")); split(f, "val", X[200:], y[200:].astype("f8"))
with h5py.File("bool.h5", "w") as f:
    split(f, "train", X[:200], y[:200].astype(bool)); split(f, "val", X[200:], y[200:].astype(bool))
with h5py.File("names.h5", "w") as f:
    split(f, "train", X[:200], y[:200], xn="data", yn="labels")
    split(f, "val", X[200:], y[200:], xn="data", yn="labels")
    split(f, "unlabeled", X[200:], None, xn="data")
with h5py.File("transposed.h5", "w") as f:
    split(f, "train", X[:200].T.copy(), y[:200])
with h5py.File("from1.h5", "w") as f:
    split(f, "train", X[:200], y[:200] + 1)
with h5py.File("fraction.h5", "w") as f:
    split(f, "train", X[:200], y[:200] + 0.5)
with h5py.File("links.h5", "w") as f:
    split(f, "train", X[:200], y[:200])
    f["hard"] = f["train"]                  # another name for the same group
    f["soft"] = h5py.SoftLink("/train")
    split(f, "val", X[200:], y[200:])
PY
write_ini base.ini
tr() { local np=$1 name=$2; shift 2; xt $np train base.ini --set model.type=logistic --set train.epochs=3 \
  --set train.progress=false --set run.dir=runs/$name "$@" >$name.log 2>&1; }
for f in col float bool; do
  if tr 2 $f --set data.train=$f.h5:/train --set data.val=$f.h5:/val; then
    pass "y stored as $f: trains ($(grep -o 'y ([0-9]*[,0-9 ]*) [a-z0-9]*[^;]*' $f.log | head -1))"
  else fail "y stored as $f"; tail -3 $f.log; fi
done
grep -q "bool: read as class ids 0/1" bool.log && pass "the banner names the bool conversion" || fail "bool conversion not named"
grep -q "whole numbers read as class ids" float.log && pass "the banner names the float conversion" || fail "float conversion not named"
if tr 1 names --set 'data.train=names.h5:/train?X=data&y=labels' --set 'data.val=names.h5:/val?X=data&y=labels'; then
  pass "X and y under other names, through the spec ?X=data&y=labels"
else fail "dataset names in the spec"; tail -3 names.log; fi
refused() { # refused WHAT PATTERN (after a command that should exit 2)
  local code=$? name=$1 pat=$2
  if [ $code -eq 2 ] && grep -q -- "$pat" $name.log; then pass "$name: refused with '$pat'"
  else fail "$name: exit $code, no '$pat'"; tail -3 $name.log; fi
}
tr 1 names_missing --set data.train=names.h5:/train; refused names_missing "it holds: data, labels"
tr 1 transposed --set data.train=transposed.h5:/train; refused transposed "X looks transposed"
tr 1 from1 --set data.train=from1.h5:/train; refused from1 "the class ids start at 1, not 0"
tr 1 fraction --set data.train=fraction.h5:/train; refused fraction "do not convert exactly"
tr 1 nogroup --set data.train=col.h5:/train --set data.val=col.h5; refused nogroup "names the training file without a group"
tr 1 same --set data.train=col.h5:/train --set data.val=col.h5:/train; refused same "is the training split itself"
tr 1 slash --set data.train=col.h5:train; refused slash "did you mean col.h5:/train"
tr 1 hard --set data.train=links.h5:/train --set data.val=links.h5:/hard; refused hard "an HDF5 link"
tr 1 soft --set data.train=links.h5:/train --set data.val=links.h5:/soft; refused soft "an HDF5 link"
tr 1 linkval --set data.train=links.h5:/train --set data.val=links.h5:/val &&
  pass "links.h5:/val (a real split next to the links) is accepted" || fail "links.h5:/val refused"
if xt 2 predict --model runs/names/model.h5 --data 'names.h5:/unlabeled?X=data' --out p.csv >pred.log 2>&1 &&
   [ "$(head -1 p.csv)" = "predicted,p_0,p_1" ] && [ "$(wc -l < p.csv)" -eq 101 ]; then
  pass "predict on rows without y: 100 rows to CSV (predicted, p_0, p_1)"
else fail "predict without y"; tail -3 pred.log; fi
tr 1 names --set 'data.train=names.h5:/train?X=data&y=labels' --set 'data.val=names.h5:/val?X=data&y=labels' --set optim.lr=0.3
if grep -q "nothing to do" names.log && grep -q "optim.lr: '0.1' -> '0.3'" names.log && grep -q "NOT used" names.log; then
  pass "rerun of a finished run: the new optim.lr is named as not used"
else fail "rerun with a new lr"; tail -3 names.log; fi
finish
