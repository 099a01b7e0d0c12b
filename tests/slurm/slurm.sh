#!/usr/bin/env bash
# The Slurm batch scripts against a real Slurm 22.05 (slurmctld + slurmd + munged started here, one
# node, generated config, everything in a temporary directory, stopped by PID on exit even when a
# check fails):
#  - scripts/slurm/xentrain-srun.sbatch (srun --mpi=pmix) and xentrain-mpirun.sbatch (mpirun in the
#    allocation) each train a small config on 2 ranks: job COMPLETED, model.h5 and metrics.csv there,
#    the start-up banner names the Slurm job;
#  - a job signalled mid-run checkpoints (exit 75), requeues itself, resumes in its second attempt
#    and ends with the uninterrupted job's model.h5 (h5diff) and metrics rows. srun script: SIGUSR1
#    to the job steps (`scancel --signal=USR1 JOB`, what `--signal=USR1@N` does before the time limit);
#    mpirun script: SIGUSR1 to the batch shell (`scancel --signal=USR1 --batch JOB`, what
#    `--signal=B:USR1@N` does), which forwards it to mpirun;
#  - shrink restart (XT_SHRINK=1, --no-kill): one task of a reproducible 3-rank job is killed
#    (SIGKILL) after its first checkpoint; the script relaunches on 2 ranks from the checkpoint,
#    the job COMPLETES, and model.h5, checkpoint.h5 and the metrics rows equal an uninterrupted
#    run's, bit for bit.
# Installs slurmctld slurmd slurm-client munge when missing. Needs root (exit 77 = skipped otherwise).
# Usage: slurm.sh XENTRAIN SCRATCH_DIR SOURCE_DIR
set -u
bin=$1 tmp=$2 src=$3
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
t_start=$(date +%s)
rm -rf "$tmp" && mkdir -p "$tmp" && cd "$tmp" || exit 1
. "$src/tests/lib.sh"
core() { metrics_core "$1"; }

"$src/scripts/slurm/local-cluster.sh" install || { echo "FAIL - installing Slurm"; exit 1; }
# short path: the munge socket path must fit in 108 bytes
cluster=$(mktemp -d -p /tmp)
export SLURM_CONF=$cluster/slurm.conf
jobs=()
cleanup() {
  [ ${#jobs[@]} -gt 0 ] && scancel "${jobs[@]}" 2>/dev/null
  for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  "$src/scripts/slurm/local-cluster.sh" stop "$cluster"
  if [ "$failures" -ne 0 ]; then echo "--- slurmctld.log (tail)"; tail -15 "$cluster/log/slurmctld.log"; fi
  rm -rf "$cluster"
}
trap cleanup EXIT
t0=$(date +%s.%N)
"$src/scripts/slurm/local-cluster.sh" start "$cluster" >/dev/null || { fail "starting the cluster"; exit 1; }
pass "munged, slurmctld, slurmd up, node idle in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

export XENTRAIN=$bin
"$bin" gen blobs --rows 6000 --features 20 --classes 4 --noise 4 --seed 3 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val data.normalize=standardize \
  model.type=mlp model.hidden=32 optim.lr=0.02 optim.momentum=0.9 train.epochs=4 \
  train.batch_size=32 train.progress=false

submit() { # submit SCRIPT LOG ARGS...: prints the job id
  local script=$1 log=$2; shift 2
  local jid
  jid=$(sbatch --parsable --ntasks=2 --time=5 -o "$log" "$src/scripts/slurm/$script" c.ini "$@") || return 1
  jobs+=("$jid")
  echo "$jid"
}
wait_job() { # wait_job JOBID SECONDS: until it has left the queue
  local i
  for i in $(seq $(($2 * 5))); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  return 1
}
job_field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_rows() { # wait_rows FILE N: until metrics.csv has N epoch rows
  local i
  for i in $(seq 300); do
    [ -s "$1" ] && [ "$(($(wc -l < "$1") - 1))" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# Under an MPICH build (XT_MPIRUN names MPICH's mpiexec) only the mpiexec script runs: Debian's
# MPICH has no PMIx for `srun --mpi=pmix`.
kinds="srun mpirun"
if [ -n "${XT_MPIRUN:-}" ] && "$XT_MPIRUN" --version 2>&1 | grep -q HYDRA; then
  kinds="mpirun"
  echo "note - MPICH build: xentrain-mpirun.sbatch with XT_MPIRUN=$XT_MPIRUN; the srun script needs PMIx (Open MPI builds)"
fi
ref=${kinds%% *}

# 1. straight runs through the scripts
for kind in $kinds; do
  t0=$(date +%s)
  jid=$(submit "xentrain-$kind.sbatch" "$kind.out" --set run.dir=$kind) || { fail "sbatch ($kind)"; continue; }
  wait_job "$jid" 60 || fail "$kind job $jid still queued after 60 s"
  state=$(job_field "$jid" JobState) code=$(job_field "$jid" ExitCode)
  if [ "$state" = COMPLETED ] && [ "$code" = 0:0 ] && [ -s $kind/model.h5 ] &&
     [ "$(wc -l < $kind/metrics.csv)" -eq 5 ] && grep -q "slurm    job $jid, nodes" $kind.out &&
     grep -q "launch   P = 2 ranks" $kind.out; then
    pass "xentrain-$kind.sbatch: job $jid COMPLETED in $(( $(date +%s) - t0 )) s, model.h5 and 4 metrics rows"
  else
    fail "xentrain-$kind.sbatch: job $jid $state exit $code"; tail -20 $kind.out
  fi
done
if [ "$kinds" = "srun mpirun" ]; then
  if [ -s srun/metrics.csv ] && cmp -s <(core srun/metrics.csv) <(core mpirun/metrics.csv) &&
     h5diff srun/model.h5 mpirun/model.h5 >/dev/null; then
    pass "srun and mpirun launches give the same metrics rows and model.h5"
  else fail "srun and mpirun launches differ"; fi
fi

# 2. signalled mid-run: checkpoint, exit 75, requeue, resume, same result as the straight run
for kind in $kinds; do
  if [ $kind = srun ]; then how="scancel --signal=USR1"; else how="scancel --signal=USR1 --batch"; fi
  t0=$(date +%s)
  jid=$(XT_TEST_STEP_DELAY_MS=4 submit "xentrain-$kind.sbatch" "sig-$kind.out" --set run.dir=sig-$kind) ||
    { fail "sbatch (signal, $kind)"; continue; }
  wait_rows sig-$kind/metrics.csv 1 || fail "$kind: no epoch finished within 30 s"
  $how "$jid"
  t1=$(date +%s)
  wait_job "$jid" 90 || fail "$kind job $jid still queued 90 s after the signal"
  state=$(job_field "$jid" JobState) restarts=$(job_field "$jid" Restarts)
  at=$(grep -o "writing a checkpoint at epoch [0-9]* step [0-9]*" sig-$kind.out | head -1)
  if [ "$state" = COMPLETED ] && [ "$restarts" = 1 ] && [ -n "$at" ] &&
     grep -q "exited with code 75" sig-$kind.out && grep -q "attempt 2" sig-$kind.out &&
     grep -q "^resume: sig-$kind/checkpoint.h5" sig-$kind.out; then
    pass "$kind: '$how' -> ${at#writing a }, exit 75, requeued, attempt 2 resumed and COMPLETED ($(( $(date +%s) - t1 )) s after the signal)"
  else
    fail "$kind signal: job $jid $state, restarts '$restarts', checkpoint '$at'"; grep -v '^ ' sig-$kind.out | tail -30
  fi
  if [ -s sig-$kind/model.h5 ] && h5diff $ref/model.h5 sig-$kind/model.h5 >/dev/null &&
     cmp -s <(core $ref/metrics.csv) <(core sig-$kind/metrics.csv); then
    pass "$kind: interrupted + requeued job == uninterrupted job (h5diff model.h5, metrics rows)"
  else fail "$kind: the requeued job's result differs from the uninterrupted one"
    diff <(core $ref/metrics.csv) <(core sig-$kind/metrics.csv) | head -6
  fi
done

# 3. shrink restart: a task dies, the job goes on with one rank fewer and ends exactly
{ cat c.ini; printf 'reproducible = true\nmicro_batches = 6\n'; } > r.ini # c.ini ends in [train]
"$bin" train r.ini --set run.dir=ref-repro >ref-repro.log 2>&1 || fail "reference reproducible run"
for kind in $kinds; do
  t0=$(date +%s)
  jid=$(XT_SHRINK=1 XT_TEST_STEP_DELAY_MS=4 sbatch --parsable --ntasks=3 --overcommit --no-kill --time=5 \
        -o shrink-$kind.out "$src/scripts/slurm/xentrain-$kind.sbatch" r.ini --set run.dir=shrink-$kind) ||
    { fail "sbatch (shrink, $kind)"; continue; }
  jobs+=("$jid")
  wait_rows shrink-$kind/metrics.csv 1 || fail "$kind shrink: no epoch finished within 30 s"
  sleep 0.3
  victim=$(rank_pid run.dir=shrink-$kind 1)
  [ -n "$victim" ] && kill -KILL "$victim"
  wait_job "$jid" 120 || fail "$kind shrink job $jid still queued 120 s after the kill"
  state=$(job_field "$jid" JobState)
  if [ -n "$victim" ] && [ "$state" = COMPLETED ] &&
     grep -q "shrink restart 1, relaunching on 2 ranks" shrink-$kind.out &&
     grep -q "written by 3 rank(s), continuing on 2" shrink-$kind.out; then
    pass "$kind: a task SIGKILLed after epoch 1 (XT_SHRINK=1): relaunched on 2 ranks from the checkpoint, COMPLETED in $(( $(date +%s) - t0 )) s"
  else
    fail "$kind shrink: job $jid $state, victim '$victim'"; grep -v '^ ' shrink-$kind.out | tail -20
  fi
  if [ -s shrink-$kind/model.h5 ] && same_h5 ref-repro/model.h5 shrink-$kind/model.h5 &&
     same_h5 ref-repro/checkpoint.h5 shrink-$kind/checkpoint.h5 &&
     cmp -s <(cut -d, -f1-6,13,18,19 ref-repro/metrics.csv) <(cut -d, -f1-6,13,18,19 shrink-$kind/metrics.csv); then
    pass "$kind: the shrunk job (3 -> 2 ranks) ends with the uninterrupted run's model.h5, checkpoint.h5 and metrics, bit for bit"
  else fail "$kind: the shrunk job's result differs from the uninterrupted reproducible run"; fi
done

echo "$passes passed, $failures failed in $(( $(date +%s) - t_start )) s"
[ "$failures" -eq 0 ]
