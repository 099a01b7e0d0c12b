#!/usr/bin/env bash
# Suspension and the watchdog (issue 32 items 1 and 10):
#  a. the whole job stopped (SIGSTOP of mpirun and the ranks, as Ctrl-Z or Slurm's suspend
#     without the freezer do) for 6 s with comm.timeout_s = 2, then continued: the run
#     ends normally (exit 0); the watchdog counts only time the job ran;
#  b. rank 0 writing a checkpoint for longer than comm.timeout_s: the watchdog names that
#     phase ("while rank 0 was writing ... checkpoint.h5") instead of blaming "a rank or a
#     link";
#  c. rank 0 alone stopped: the watchdog of rank 1 ends the job naming the collective; the
#     stopped rank, continued to be ended, prints no watchdog line of its own.
# Usage: faults_suspend.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
"$bin" gen blobs --rows 4000 --features 20 --classes 3 --seed 1 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val model.type=mlp model.hidden=16 \
  train.epochs=2 train.batch_size=32 train.progress=false comm.timeout_s=2
# tree PID: PID and every process under it (the launcher and the ranks it started)
tree() { local c; echo "$1"; for c in $(pgrep -P "$1"); do tree "$c"; done; }
wait_rows() { for i in $(seq 1 600); do [ -s "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && return 0; sleep 0.05; done; return 1; }

# a. the whole job stopped for 6 s (3 x comm.timeout_s) in epoch 1; rank 0 sleeps 40 ms per
#    step, so rank 1 waits for it inside the step's collective nearly all the time
XT_TEST_STEP_DELAY_MS=40 XT_TEST_STEP_DELAY_RANK=0 xt 2 train c.ini --set run.dir=stop >a.log 2>&1 &
job=$!
for i in $(seq 1 200); do grep -q "start-up took" a.log && break; sleep 0.05; done
sleep 1
pids=$(tree $job | tr '\n' ' ')
r1=$(rank_pid "run.dir=stop" 1)
kill -STOP $pids
sleep 6
kill -CONT $pids
wait $job
code=$?
if [[ " $pids " == *" $r1 "* ]] && [ "$code" -eq 0 ] && ! grep -q watchdog a.log && grep -q "finished 2 epochs" a.log; then
  pass "a. job stopped for 6 s with comm.timeout_s = 2, then continued: it finished (exit 0, no watchdog)"
else fail "a. stopped job: exit $code (pids: $pids)"; grep -E "watchdog|error" a.log | head -3; fi

# b. a checkpoint write of 5 s: the watchdog names the phase rank 1 waits for
XT_TEST_CHECKPOINT_DELAY_MS=5000 xt 2 train c.ini --set run.dir=slowck >b.log 2>&1
code=$?
if [ "$code" -ne 0 ] && grep -q "while rank 0 was writing model.h5, metrics.csv and checkpoint.h5" b.log &&
   grep -q "raise comm.timeout_s" b.log && ! grep -q "watchdog.*a rank or a link is gone or stuck" b.log; then
  pass "b. a slow checkpoint write: the watchdog names it (exit $code): $(grep -o 'watchdog: [A-Za-z_]* did not complete' b.log | head -1)"
else fail "b. slow checkpoint write: exit $code"; grep watchdog b.log | head -2; fi

# c. rank 0 alone stopped while rank 1 waits in the step's collective (rank 1 sleeps 40 ms
#    per step, so rank 0 waits for it inside the collective, stopped there)
unset OMPI_MCA_odls_base_sigkill_timeout # Open MPI's default: SIGCONT + SIGTERM, SIGKILL 1 s later
#    (comm.timeout_s = 4: continued at teardown, rank 0 would need 4 s more of waiting to
#    print a line of its own, far more than mpirun takes to end it)
XT_TEST_STEP_DELAY_MS=40 XT_TEST_STEP_DELAY_RANK=1 xt 2 train c.ini --set run.dir=stop0 \
  --set comm.timeout_s=4 >c.log 2>&1 &
job=$!
for i in $(seq 1 200); do grep -q "start-up took" c.log && break; sleep 0.05; done
sleep 1
pid0=$(rank_pid "run.dir=stop0" 0)
[ -n "$pid0" ] && kill -STOP "$pid0"
wait $job
code=$?
lines=$(grep -c "watchdog:" c.log)
if [ -n "$pid0" ] && [ "$code" -ne 0 ] && [ "$lines" -eq 1 ] &&
   grep -q "\[rank 1\] watchdog: .* did not complete within 4 s .* a rank or a link is gone or stuck" c.log; then
  pass "c. rank 0 stopped: rank 1's watchdog ended the job (exit $code), one watchdog line"
else fail "c. rank 0 stopped: exit $code, $lines watchdog lines"; grep watchdog c.log | head -3; fi
[ -n "$pid0" ] && kill -CONT "$pid0" 2>/dev/null

finish
