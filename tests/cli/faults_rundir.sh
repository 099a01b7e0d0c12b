#!/usr/bin/env bash
# The run directory (issue 32 items 4, 8, 10):
#  a. two jobs on one run.dir: the second is refused at once (exit 2) naming the first's
#     host and pid; the first ends normally with every metrics row;
#  b. a temporary that a killed run left is removed when the next run takes the directory;
#  c. run.dir purged mid-run (deleted and recreated): the run stops with an error naming
#     metrics.csv (exit 1), never "wrote metrics.csv" with its rows gone;
#  d. a torn last metrics.csv row (a kill in the middle of a write) is dropped on resume,
#     not glued to the next row;
#  e. a run.dir that cannot be a directory is a config error (exit 2) naming run.dir.
# Usage: faults_rundir.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
"$bin" gen blobs --rows 4000 --features 20 --classes 3 --seed 1 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val model.type=mlp model.hidden=16 \
  train.epochs=8 train.batch_size=32 train.progress=false
rows() { [ -f "$1" ] && tail -n +2 "$1" | wc -l || echo 0; }
wait_rows() { for i in $(seq 1 600); do [ "$(rows "$1")" -ge "$2" ] && return 0; sleep 0.05; done; return 1; }

# a. two jobs, one run.dir
XT_TEST_STEP_DELAY_MS=3 xt 2 train c.ini --set run.dir=shared >a1.log 2>&1 &
job=$!
wait_rows shared/metrics.csv 1
pid0=$(rank_pid "run.dir=shared" 0)
t0=$(date +%s)
xt 2 train c.ini --set run.dir=shared --set optim.lr=0.5 >a2.log 2>&1
code=$?
dt=$(( $(date +%s) - t0 ))
wait $job
code1=$?
if [ "$code" -eq 2 ] && grep -q "run.dir = shared is in use by another xentrain run (host $(hostname), pid $pid0," a2.log &&
   [ "$dt" -le 20 ]; then
  pass "a. a second job on the same run.dir refused in $dt s (exit 2), naming host $(hostname) and pid $pid0"
else fail "a. second job on the same run.dir: exit $code after $dt s"; grep -i error a2.log | head -3; fi
if [ "$code1" -eq 0 ] && [ "$(rows shared/metrics.csv)" -eq 8 ] && ! grep -q "lr.*0.5" shared/config.ini; then
  pass "a. the first job ended normally with all 8 metrics rows and its own config.ini"
else fail "a. the first job: exit $code1, $(rows shared/metrics.csv) rows"; fi

# b. a leftover temporary of a killed run goes when the next run takes the directory
touch shared/checkpoint.h5.tmp.0123456789ab shared/model.h5.tmp.4711
xt 2 train c.ini --set run.dir=shared --set train.epochs=9 >b.log 2>&1
code=$?
if [ "$code" -eq 0 ] && [ ! -e shared/checkpoint.h5.tmp.0123456789ab ] && [ ! -e shared/model.h5.tmp.4711 ] &&
   grep -q "removed shared/checkpoint.h5.tmp.0123456789ab" b.log; then
  pass "b. temporaries left by a killed run were removed (and said so)"
else fail "b. leftover temporaries: exit $code, $(ls shared | tr '\n' ' ')"; fi

# c. run.dir purged while the run writes it
XT_TEST_STEP_DELAY_MS=3 xt 2 train c.ini --set run.dir=purged >c.log 2>&1 &
job=$!
wait_rows purged/metrics.csv 1
rm -rf purged && mkdir purged
wait $job
code=$?
if [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && grep -q "purged/metrics.csv was deleted while this run was writing it" c.log &&
   ! grep -q "wrote .*metrics.csv" c.log; then
  pass "c. run.dir purged mid-run: stopped with exit $code, naming metrics.csv"
else fail "c. run.dir purged mid-run: exit $code"; tail -3 c.log; fi

# d. a torn last row: "1" of a row "1x,..." whose write was cut short
xt 2 train c.ini --set run.dir=straight --set train.epochs=4 >d0.log 2>&1 || fail "d. straight run"
xt 2 train c.ini --set run.dir=torn --set train.epochs=2 >d1.log 2>&1 || fail "d. 2 epochs"
printf '1' >> torn/metrics.csv
xt 2 train c.ini --set run.dir=torn --set train.epochs=4 >d2.log 2>&1
code=$?
if [ "$code" -eq 0 ] && cmp -s <(metrics_core straight/metrics.csv) <(metrics_core torn/metrics.csv); then
  pass "d. a torn last metrics row was dropped on resume: rows 1-4 as the straight run's"
else fail "d. torn metrics row: exit $code"; cut -d, -f1 torn/metrics.csv | tr '\n' ' '; echo; fi

# e. run.dir in the way of a file
echo x > afile
xt 2 train c.ini --set run.dir=afile/run >e.log 2>&1
code=$?
if [ "$code" -eq 2 ] && grep -q "run.dir = afile/run: cannot create the directory afile/run" e.log; then
  pass "e. a run.dir that cannot be created: exit 2, naming run.dir"
else fail "e. run.dir that cannot be created: exit $code"; grep -i error e.log | head -2; fi

finish
