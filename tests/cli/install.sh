#!/usr/bin/env bash
# `cmake --install` into a scratch prefix gives a working xentrain: the installed programs,
# sbatch templates and example configs are there, the installed xentrain runs from PATH with
# no build tree (ldd finds every library), and trains, evaluates and predicts with an
# installed example config through the installed xt-mpirun at P = 2.
# Usage: install.sh BUILD_DIR SCRATCH_DIR MPIEXEC
set -u
build=$1
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$build/xentrain" "$2" "$3"
prefix=$tmp/prefix
if cmake --install "$build" --prefix "$prefix" >install.log 2>&1; then
  pass "cmake --install --prefix $prefix"
else fail "cmake --install"; tail -5 install.log; finish; exit 1; fi
missing=""
for f in bin/xentrain bin/xt-mpirun bin/plot_metrics.sh share/xentrain/slurm/xentrain-srun.sbatch \
         share/xentrain/slurm/xentrain-mpirun.sbatch share/xentrain/configs/blobs-logistic.ini \
         share/xentrain/configs/fashion-mnist-mlp.ini; do
  [ -e "$prefix/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && pass "installed: programs, sbatch templates, example configs" || fail "missing:$missing"
[ -x "$prefix/bin/xt-mpirun" ] && [ -x "$prefix/bin/xentrain" ] || fail "installed programs not executable"
if ldd "$prefix/bin/xentrain" | grep -q "not found"; then fail "ldd: $(ldd "$prefix/bin/xentrain" | grep 'not found')"
else pass "ldd finds every library of the installed xentrain"; fi

export PATH=$prefix/bin:/usr/bin:/bin
# the launcher: MPICH builds name theirs (XT_MPIRUN is set); Open MPI's is mpiexec
if [ "$(basename "$mpiexec")" != xt-mpirun ]; then export XT_MPIRUN=$mpiexec; fi
version=$(xentrain --version)
grep -q "MPI:" <<<"$version" && grep -q "BLAS:" <<<"$version" && grep -q "HDF5:" <<<"$version" &&
  pass "installed xentrain --version names MPI, HDF5 and BLAS" || fail "--version: $version"
mkdir -p data
xentrain gen blobs --rows 4000 --features 8 --classes 2 --seed 1 --out data/blobs2.h5 >gen.log 2>&1 ||
  fail "gen"
if xt-mpirun -np 2 xentrain train "$prefix/share/xentrain/configs/blobs-logistic.ini" \
     --set run.dir=run --set train.progress=false >train.log 2>&1 && [ -s run/model.h5 ]; then
  pass "installed xt-mpirun -np 2 xentrain train share/xentrain/configs/blobs-logistic.ini"
else fail "training with the installed programs"; tail -5 train.log; fi
acc=$(xt-mpirun -np 2 xentrain eval --model run/model.h5 --data data/blobs2.h5:/test 2>&1 |
      awk '/^accuracy/ { print $2 }')
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a >= 0.95) }'; then
  pass "installed eval: test accuracy $acc"
else fail "installed eval: accuracy '$acc'"; fi
xentrain predict --model run/model.h5 --data data/blobs2.h5:/test --out pred.csv >pred.log 2>&1 &&
  [ "$(wc -l < pred.csv)" -eq 401 ] && pass "installed predict wrote 400 rows of CSV" || fail "predict"
finish
