#!/usr/bin/env bash
# Corrupt state and changed data (issue 32 items 6, 7, 9):
#  a. a flipped bit inside a stored array of checkpoint.h5 (parameters, optimiser state) or
#     model.h5: the resume or eval is refused (exit 2) naming the dataset, the file untouched;
#  b. the training data regenerated between a run and its resume: refused (exit 2) naming
#     data.train; a copy of the original data (another mtime) resumes; so with labels
#     stored as strings or as AnnData's categories;
#  c. streamed data changed in place during the run (labels out of range, NaN): the run
#     stops (exit 2) saying the file changed, naming the row (not "diverged", no assertion);
#  d. eval.batch_size = 2147483647: validation passes are capped by the split's rows (the
#     run used to end with exit 1 and no word);
#  e. an allocation that fails under an address-space limit names the buffer.
# Usage: faults_state.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
py=/usr/bin/python3
"$bin" gen blobs --rows 4000 --features 20 --classes 3 --seed 1 --out d.h5 >/dev/null || exit 1
cp d.h5 orig.h5
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val model.type=mlp model.hidden=16 \
  optim.momentum=0.9 train.epochs=4 train.batch_size=32 train.progress=false
# flip FILE DATASET: one bit of the dataset's 3rd value, in place (h5py gives its offset)
flip() {
  "$py" - "$1" "$2" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    off = f[sys.argv[2]].id.get_offset()
with open(sys.argv[1], "r+b") as fp:
    fp.seek(off + 9); b = fp.read(1); fp.seek(off + 9); fp.write(bytes([b[0] ^ 0x04]))
PY
}

# a. flipped bits
xt 2 train c.ini --set run.dir=run --set train.epochs=2 >a0.log 2>&1 || fail "a. 2 epochs"
for ds in /model/layer1/W /optimizer/velocity /best/layer2/b; do
  cp run/checkpoint.h5 keep.h5
  flip run/checkpoint.h5 "$ds"
  sum=$(md5sum < run/checkpoint.h5)
  xt 2 train c.ini --set run.dir=run >a1.log 2>&1
  code=$?
  if [ "$code" -eq 2 ] && grep -q "run/checkpoint.h5:$ds: checksum mismatch" a1.log &&
     [ "$sum" = "$(md5sum < run/checkpoint.h5)" ]; then
    pass "a. a flipped bit in checkpoint.h5:$ds: resume refused (exit 2) naming it, file untouched"
  else fail "a. flipped bit in $ds: exit $code"; grep -i error a1.log | head -2; fi
  cp keep.h5 run/checkpoint.h5
done
cp run/model.h5 m.h5 && flip m.h5 /model/layer2/W
xt 1 eval --model m.h5 --data d.h5:/val >a2.log 2>&1
code=$?
if [ "$code" -eq 2 ] && grep -q "m.h5:/model/layer2/W: checksum mismatch" a2.log; then
  pass "a. a flipped bit in model.h5: eval refused (exit 2) naming /model/layer2/W"
else fail "a. flipped bit in model.h5: exit $code"; tail -2 a2.log; fi

# b. the data regenerated between the run and its resume; then a copy of the original
"$bin" gen blobs --rows 4000 --features 20 --classes 3 --seed 2 --out d.h5 >/dev/null || exit 1
xt 2 train c.ini --set run.dir=run >b1.log 2>&1
code=$?
if [ "$code" -eq 2 ] && grep -q "data.train = d.h5:/train is not the data run/checkpoint.h5 was trained on" b1.log; then
  pass "b. regenerated training data: resume refused (exit 2) naming data.train"
else fail "b. regenerated data: exit $code"; grep -i error b1.log | head -2; fi
sleep 1 && cp orig.h5 d.h5 # a copy: another mtime, the same data
xt 2 train c.ini --set run.dir=run >b2.log 2>&1
code=$?
if [ "$code" -eq 0 ] && grep -q "resume: run/checkpoint.h5, epoch 3 step 0" b2.log; then
  pass "b. a copy of the original data (new mtime) resumes"
else fail "b. resume on a copy of the data: exit $code"; grep -i error b2.log | head -2; fi
# the fingerprint of labels stored as strings (h5py, variable length) and as AnnData's
# categories (codes + categories, X and y named by paths): a resume on the same file
# resumes, the file with its labels swapped is refused
"$py" - <<'PY' || fail "b. h5py label layouts"
import h5py, numpy as np
r = np.random.RandomState(3)
y = r.randint(0, 3, 600); X = (r.randn(600, 4) + y[:, None]).astype("f4")
names = np.array(["cat", "dog", "eel"])
for swap in (0, 1):
    with h5py.File("str%d.h5" % swap, "w") as f:
        f["train/X"] = X; f["train/y"] = names[(y + swap) % 3].astype(object)
    with h5py.File("ad%d.h5ad" % swap, "w") as f:
        f["X"] = X; g = f.create_group("obs/cell_type")
        g["codes"] = ((y + swap) % 3).astype("i1"); g["categories"] = np.array([b"B", b"NK", b"T"])
PY
for kind in str ad; do
  if [ $kind = str ]; then spec=lab.h5:/train; ext=h5; else spec='lab.h5:/?X=X&y=obs/cell_type'; ext=h5ad; fi
  cp $kind"0.$ext" lab.h5
  xt 2 train c.ini --set "data.train=$spec" --set data.val= --set run.dir=$kind --set train.epochs=2 >b3.log 2>&1 &&
    xt 2 train c.ini --set "data.train=$spec" --set data.val= --set run.dir=$kind >b4.log 2>&1
  code=$?
  cp $kind"1.$ext" lab.h5
  xt 2 train c.ini --set "data.train=$spec" --set data.val= --set run.dir=$kind --set train.epochs=6 >b5.log 2>&1
  code2=$?
  if [ "$code" -eq 0 ] && grep -q "resume: $kind/checkpoint.h5, epoch 3 step 0" b4.log && [ "$code2" -eq 2 ] &&
     grep -q "is not the data $kind/checkpoint.h5 was trained on" b5.log; then
    pass "b. labels as $kind: the same file resumes, its labels swapped is refused"
  else fail "b. labels as $kind: exit $code then $code2"; grep -ih error b4.log b5.log | head -2; fi
done

# c. streamed data changed in place mid-run
for what in label nan; do
  cp orig.h5 s.h5
  XT_TEST_STEP_DELAY_MS=3 xt 2 train c.ini --set data.train=s.h5:/train --set data.val= \
    --set data.stream=true --set train.epochs=6 --set run.dir=stream$what >c$what.log 2>&1 &
  job=$!
  for i in $(seq 1 300); do grep -q "start-up took" c$what.log && break; sleep 0.05; done
  "$py" - s.h5 "$what" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    if sys.argv[2] == "label": f["/train/y"][...] = 99
    else: f["/train/X"][...] = np.nan
PY
  wait $job
  code=$?
  case $what in label) want="has label 99, outside \[0, 3)" ;; nan) want="holds NaN in X column" ;; esac
  if [ "$code" -eq 2 ] && grep -q "s.h5:/train: row [0-9]* (read for epoch [0-9]*) $want" c$what.log &&
     grep -q "the file was changed during the run" c$what.log && ! grep -q "diverged" c$what.log; then
    pass "c. streamed data changed in place ($what): stopped (exit 2), the file changed, naming the row"
  else fail "c. streamed data changed in place ($what): exit $code"; grep -iE "error|diverged|assert" c$what.log | head -3; fi
done

# d. eval.batch_size at its maximum
cp orig.h5 d.h5
xt 2 train c.ini --set run.dir=evbig --set train.epochs=1 --set eval.batch_size=2147483647 >d.log 2>&1
code=$?
if [ "$code" -eq 0 ] && [ "$(tail -n +2 evbig/metrics.csv | wc -l)" -eq 1 ]; then
  pass "d. eval.batch_size = 2147483647: the run trains and validates (exit 0)"
else fail "d. eval.batch_size = 2147483647: exit $code"; tail -3 d.log; fi

# e. an allocation that fails although the estimate fits (here an address-space limit, as
#    Slurm propagates `ulimit -v` from the submitting shell): the run says which buffer
#    (it used to end with exit 1 and no word of its own); a small run under the same limit
#    shows the limit leaves room for MPI and HDF5
"$bin" gen blobs --rows 30000 --features 20 --classes 3 --seed 1 --out big.h5 >/dev/null || exit 1
(ulimit -v 500000 && xt 1 train c.ini --set run.dir=small --set train.epochs=1) >e0.log 2>&1 ||
  fail "e. a small run under ulimit -v 500000 (exit $?): the limit is too small for MPI here"
(ulimit -v 500000 && xt 1 train c.ini --set data.train=big.h5:/train --set data.val=big.h5:/val \
  --set run.dir=act --set model.hidden=4096 --set train.batch_size=16384) >e1.log 2>&1
code=$?
if [ "$code" -eq 1 ] && grep -q "error: out of memory for the model's activations (98307 parameters, passes of" e1.log; then
  pass "e. an allocation that fails (ulimit -v): exit 1 naming the model's activations"
else fail "e. a failed allocation: exit $code"; grep -v '^ ' e1.log | tail -3; fi

finish
