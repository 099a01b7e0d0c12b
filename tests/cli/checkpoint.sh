#!/usr/bin/env bash
# Checkpoints, exact resume, signals and faults, through the command line:
#  - straight E epochs == k epochs + resume to E: identical metrics rows (losses, step, lr)
#    and a bit-identical model.h5 (same P);
#  - a checkpoint written at P = 2 resumes at P = 3 and P = 1 within the rank-count tolerance;
#  - SIGUSR1 to ONE rank mid-epoch: checkpoint, exit 75 on all ranks; resuming gives the
#    straight run's result bit for bit;
#  - a rank killed with SIGKILL ends the job within seconds; the checkpoint is intact and
#    resuming completes the run;
#  - a checkpoint write that fails half-way leaves the previous checkpoint untouched;
#  - an incompatible checkpoint is refused naming the keys; the watchdog turns a hang into
#    an error naming the collective and step.
# Usage: checkpoint.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
core() { metrics_core "$1"; }

"$bin" gen blobs --rows 12000 --features 30 --classes 4 --noise 4 --seed 5 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val data.normalize=standardize \
  model.type=mlp model.hidden=64,32 optim.lr=0.02 optim.momentum=0.9 train.epochs=6 \
  train.batch_size=32 train.progress=false checkpoint.every=1

# 1. straight vs stop-and-resume, same P
xt 2 train c.ini --set run.dir=straight >straight.log 2>&1 || fail "straight run"
xt 2 train c.ini --set run.dir=split --set train.epochs=3 >split1.log 2>&1 || fail "first 3 epochs"
cp split/checkpoint.h5 ck3.h5
xt 2 train c.ini --set run.dir=split >split2.log 2>&1 || fail "resume to 6"
if grep -q "resume: split/checkpoint.h5, epoch 4 step 0" split2.log &&
   cmp -s <(core straight/metrics.csv) <(core split/metrics.csv) &&
   h5diff straight/model.h5 split/model.h5 >/dev/null; then
  pass "3 epochs + resume to 6 == 6 straight: identical metrics rows and model.h5"
else fail "stop-and-resume differs from the straight run"; diff <(core straight/metrics.csv) <(core split/metrics.csv) | head; fi

# 1b. model.h5 is the kept epoch's only copy: a checkpoint's /best is a copy of it, and a run
#     resumed into a new run.dir writes it from the checkpoint's /best, before any epoch (here
#     none improves: min_delta 100), so that it holds the best epoch at the end
if h5diff split/checkpoint.h5 split/model.h5 /best /model >/dev/null; then
  xt 2 train c.ini --set run.dir=moved --set train.resume=ck3.h5 --set train.epochs=4 \
    --set early_stopping.min_delta=100 >moved.log 2>&1
  code=$?
  best=$(h5dump -a /best/epoch ck3.h5 | sed -n 's/.*(0): *\([0-9]*\).*/\1/p')
  if [ "$code" -eq 0 ] && [ -n "$best" ] && h5diff ck3.h5 moved/model.h5 /best /model >/dev/null &&
     grep -q "wrote moved/model.h5 (epoch $best, the best validation epoch)" moved.log &&
     [ -f moved/model-last.h5 ]; then
    pass "checkpoint /best == model.h5; resumed into a new run.dir, model.h5 = the checkpoint's /best (epoch $best)"
  else fail "model.h5 from /best after a resume into a new run.dir: exit $code"; grep -i "error\|wrote" moved.log | head -3; fi
else fail "checkpoint /best is not a copy of model.h5's /model"; fi

# 2. resume at a different P
for np in 3 1; do
  rm -rf p$np && mkdir p$np && cp split/metrics.csv p$np/ && cp -r split p2src$np
  xt 2 train c.ini --set run.dir=p$np --set train.epochs=3 >p${np}a.log 2>&1
  xt "$np" train c.ini --set run.dir=p$np >p${np}b.log 2>&1 || fail "resume at P=$np"
  r=$(metrics_maxrel straight/metrics.csv p$np/metrics.csv)
  if [ "$(wc -l < p$np/metrics.csv)" = "$(wc -l < straight/metrics.csv)" ] &&
     awk -v r="$r" 'BEGIN { exit !(r < 1e-5) }'; then
    pass "checkpoint from P=2 resumed at P=$np: losses within $r of the straight run"
  else fail "resume at P=$np: max rel diff $r"; fi
done

# 3. a signal to one rank: checkpoint, exit 75 everywhere, then an exact resume
XT_TEST_STEP_DELAY_MS=3 xt 2 train c.ini --set run.dir=sig --set train.epochs=6 >sig.log 2>&1 &
job=$!
for i in $(seq 1 300); do [ -s sig/metrics.csv ] && [ "$(wc -l < sig/metrics.csv)" -ge 2 ] && break; sleep 0.1; done
sleep 0.4 # into epoch 2
pid=$(rank_pid "run.dir=sig" 1)
pid0=$(rank_pid "run.dir=sig" 0)
[ -n "$pid" ] && kill -USR1 "$pid"
# a second signal while rank 0 is writing the checkpoint must not corrupt anything
for d in 0.002 0.004 0.006 0.008; do sleep $d; [ -n "$pid0" ] && kill -TERM "$pid0" 2>/dev/null; done
wait $job
code=$?
if [ -n "$pid" ] && [ "$code" -eq 75 ] && grep -q "signal received: writing a checkpoint" sig.log; then
  pass "SIGUSR1 to rank 1 only (then SIGTERMs to rank 0 during the write): checkpoint written, exit 75"
else fail "signal: exit $code, pid '$pid'"; tail -5 sig.log; fi
xt 2 train c.ini --set run.dir=sig >sig2.log 2>&1 || fail "resume after the signal"
if cmp -s <(core straight/metrics.csv) <(core sig/metrics.csv) && h5diff straight/model.h5 sig/model.h5 >/dev/null; then
  pass "resumed after the signal ($(grep -o 'epoch [0-9]* step [0-9]*' sig2.log | head -1)): identical to the straight run"
else fail "resume after the signal differs"; diff <(core straight/metrics.csv) <(core sig/metrics.csv) | head -5; fi

# 3b. Ctrl-C and SIGTERM to the LAUNCHER: under scripts/xt-mpirun the job checkpoints and
# exits 75, and resuming gives the straight run; a bare mpirun forwards the signal but ends
# the job itself (its exit code is 1, see the README)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
launcher=$mpiexec # under MPICH the tests already launch through xt-mpirun (XT_MPIRUN is set)
[ "$(basename "$mpiexec")" = xt-mpirun ] && launcher=${XT_MPIRUN:-mpirun}
for sig in INT TERM; do
  XT_MPIRUN=$launcher XT_TEST_STEP_DELAY_MS=3 timeout -k 5 120 "$root/scripts/xt-mpirun" -np 2 \
    "$bin" train c.ini --set run.dir=launch$sig --set train.epochs=6 >launch$sig.log 2>&1 &
  job=$!
  for i in $(seq 1 300); do [ -s launch$sig/metrics.csv ] && [ "$(wc -l < launch$sig/metrics.csv)" -ge 2 ] && break; sleep 0.1; done
  sleep 0.4
  # signal the wrapper, not `timeout`: timeout would forward it and then SIGKILL the job
  # 5 s later (its -k timer starts at a forwarded signal), before a slow checkpoint ends
  wrapper=$(pgrep -P $job -f xt-mpirun | head -1)
  kill -$sig "${wrapper:-$job}"
  wait $job
  code=$?
  if [ "$code" -eq 75 ] && [ -s launch$sig/checkpoint.h5 ] && grep -q "signal received" launch$sig.log; then
    pass "SIG$sig to scripts/xt-mpirun: checkpoint written, exit 75"
  else fail "SIG$sig to xt-mpirun: exit $code"; tail -5 launch$sig.log; fi
  xt 2 train c.ini --set run.dir=launch$sig >launch${sig}2.log 2>&1 || fail "resume after SIG$sig"
  if cmp -s <(core straight/metrics.csv) <(core launch$sig/metrics.csv) &&
     h5diff straight/model.h5 launch$sig/model.h5 >/dev/null; then
    pass "resumed after SIG$sig to the launcher: identical to the straight run"
  else fail "resume after SIG$sig to the launcher differs"; fi
done
if "$mpiexec" --version 2>&1 | grep -qE "Open MPI|OpenRTE"; then
  XT_TEST_STEP_DELAY_MS=3 xt 2 train c.ini --set run.dir=bare --set train.epochs=6 >bare.log 2>&1 &
  job=$!
  for i in $(seq 1 300); do [ -s bare/metrics.csv ] && [ "$(wc -l < bare/metrics.csv)" -ge 2 ] && break; sleep 0.1; done
  sleep 0.4
  mpid=$(pgrep -f -n "$(basename "$mpiexec") -np 2 $bin train c.ini --set run.dir=bare")
  [ -n "$mpid" ] && kill -INT "$mpid"
  wait $job
  code=$?
  if [ -n "$mpid" ] && [ "$code" -ne 0 ] && [ "$code" -ne 75 ]; then
    pass "Ctrl-C to a bare Open MPI mpirun: it ends the job itself (exit $code, not 75; checkpoint $( [ -s bare/checkpoint.h5 ] && echo written || echo missing))"
  else fail "Ctrl-C to a bare mpirun: exit $code, pid '$mpid'"; fi
else
  echo "note - the bare-mpirun Ctrl-C case documents Open MPI's mpirun; $mpiexec is another launcher"
fi

# 4. SIGKILL one rank mid-run: the job ends fast, the checkpoint survives, resume completes
XT_TEST_STEP_DELAY_MS=3 xt 2 train c.ini --set run.dir=kill --set train.epochs=6 >kill.log 2>&1 &
job=$!
for i in $(seq 1 300); do [ -s kill/checkpoint.h5 ] && break; sleep 0.1; done
sleep 0.3
pid=$(rank_pid "run.dir=kill" 1)
t0=$(date +%s.%N)
[ -n "$pid" ] && kill -KILL "$pid"
wait $job
code=$?
dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ -n "$pid" ] && [ "$code" -ne 0 ] && awk -v d="$dt" 'BEGIN { exit !(d < 15) }'; then
  pass "SIGKILL of rank 1: job ended in $dt s (exit $code)"
else fail "SIGKILL: exit $code after $dt s"; fi
if xt 2 train c.ini --set run.dir=kill >kill2.log 2>&1 && grep -q "resume:" kill2.log &&
   cmp -s <(core straight/metrics.csv) <(core kill/metrics.csv); then
  pass "resume after SIGKILL completes with the straight run's metrics"
else fail "resume after SIGKILL"; tail -3 kill2.log; fi

# 5. a checkpoint write failing half-way keeps the previous checkpoint
xt 2 train c.ini --set run.dir=ckfail --set train.epochs=2 >ckf1.log 2>&1
sum1=$(md5sum < ckfail/checkpoint.h5)
XT_FAULT_CHECKPOINT=fail xt 2 train c.ini --set run.dir=ckfail --set train.epochs=4 >ckf2.log 2>&1
code=$?
sum2=$(md5sum < ckfail/checkpoint.h5)
left=$(ls ckfail | grep -c tmp)
if [ "$code" -eq 1 ] && [ "$sum1" = "$sum2" ] && [ "$left" -eq 0 ] && grep -q "injected fault" ckf2.log; then
  pass "failed checkpoint write: exit 1, previous checkpoint byte-identical, no temporary left"
else fail "failed checkpoint write: exit $code, checkpoint changed: $([ "$sum1" = "$sum2" ] && echo no || echo yes), tmp files $left"; fi
if xt 2 train c.ini --set run.dir=ckfail --set train.epochs=4 >ckf3.log 2>&1 && grep -q "epoch 3 step 0" ckf3.log; then
  pass "the kept checkpoint resumes"
else fail "resume from the kept checkpoint"; tail -3 ckf3.log; fi

# 6. an incompatible checkpoint is refused, naming the keys, and the run directory is untouched
before=$(cd straight && md5sum config.ini metrics.csv model.h5 checkpoint.h5)
xt 2 train c.ini --set run.dir=straight --set train.epochs=8 --set model.hidden=16 --set train.seed=9 >incompat.log 2>&1
code=$?
after=$(cd straight && md5sum config.ini metrics.csv model.h5 checkpoint.h5)
if [ "$code" -eq 2 ] && grep -q "model.hidden: '64,32' -> '16'" incompat.log && grep -q "train.seed" incompat.log &&
   [ "$before" = "$after" ]; then
  pass "incompatible checkpoint refused (exit 2), naming model.hidden and train.seed; run directory unchanged"
else fail "incompatible checkpoint: exit $code"; cat incompat.log | tail -3; fi

# 7. the watchdog: a rank that stops taking part makes the others fail, naming the step and
#    the collective, on either reduction path (shared memory spins on a node barrier, MPI waits
#    inside the library)
for path in "shm:true:shared-memory reduce-scatter" "mpi:false:MPI_Allreduce"; do
  IFS=: read -r impl shard op <<<"$path"
  t0=$(date +%s)
  XT_FAULT_HANG=1:20 xt 2 train c.ini --set run.dir=hang-$impl --set comm.timeout_s=2 \
    --set comm.allreduce=$impl --set optim.shard=$shard >hang.log 2>&1
  code=$?
  dt=$(( $(date +%s) - t0 ))
  if [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && grep -q "watchdog: $op did not complete within 2 s (epoch 1, step 20)" hang.log; then
    pass "watchdog ($impl): hang at step 20 became an error naming $op in $dt s"
  else fail "watchdog ($impl): exit $code after $dt s"; grep -i watchdog hang.log; fi
done

finish
