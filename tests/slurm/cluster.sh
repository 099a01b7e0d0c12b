#!/usr/bin/env bash
# A real 3-node Slurm cluster in network namespaces (scripts/slurm/netns-slurm-cluster.sh: one
# slurmd per namespace, slurmctld, munge; data links shaped to 5gbit) and the batch scripts
# across its nodes, all in train.reproducible mode, where any P gives the same bits:
#  1. xentrain-srun.sbatch and xentrain-mpirun.sbatch with `sbatch -N 3 --ntasks-per-node=1` and
#     `--ntasks-per-node=2` (6 ranks on this 2-core machine: oversubscribed) COMPLETE, the banner
#     shows the placement, and model.h5 equals the same job's on one node (`sbatch -N 1 -n 1`)
#     dataset by dataset, byte for byte; the MPI traffic went over the data network (a node's
#     xtnet0 received more than 10x what its management link did);
#  2. Slurm's own warning before a time limit (`--time=1 --signal=USR1@20` for the srun script,
#     `--signal=B:USR1@20` for the mpirun script; Slurm's 30-second check sends it 10-40 s after
#     the start, while the training, slowed to 90 ms a step, needs about 55 s): the job
#     checkpoints, exits 75, requeues itself, and attempt 2 resumes and ends with the one-node
#     model. The test raises the job's time limit as soon as attempt 1 has the warning, so that
#     attempt 2 runs to the end (with the same 1-minute limit it would be warned again,
#     checkpoint and requeue again: correct, but slow and of unknown length);
#  3. a scaling sweep under `salloc -N 3 --ntasks-per-node=2` (scripts/scaling.sh --slurm):
#     a row for every placement (1, 2, 3 nodes x 1, 2 ranks per node) with its ranks per node,
#     binding, transport and link rate, the alpha-beta fit per transport (shm, tcp:xtnet0 at
#     P = 2 and 3), and the plots;
#  4. a node lost mid-run (`netns-slurm-cluster.sh fail`: its links cut, then its slurmd,
#     slurmstepd and ranks SIGKILLed, as a power failure) under each script in turn, with
#     XT_SHRINK=1 and --no-kill: the watchdog names the collective, epoch and step within
#     comm.timeout_s (+ 5 s), the script finds the 2 nodes that still answer and relaunches on
#     them from the last checkpoint (a shrink restart: the allocation and its place are kept;
#     a requeue would need Slurm to notice the node first, SlurmdTimeout, and to find 3 nodes
#     again), the job COMPLETES, and model.h5, checkpoint.h5 and the metrics equal the one-node
#     job's, bit for bit;
#  5. `stop` leaves no daemon, namespace or process behind (and a failing or interrupted run
#     stops the cluster too: the EXIT trap, and a deadline of the test's own before ctest's).
# Needs root (exit 77 = skipped otherwise). Under an MPICH build (XT_MPIRUN names MPICH's
# mpiexec) only the mpirun script runs (Debian's MPICH has no PMIx for srun), and the sweep
# (srun --mpi=pmix), the data-network check (MPICH's UCX cannot see the namespaces' interfaces)
# and the node failure (MPICH 4.0.2's mpiexec waits for a lost node's proxy) are left out, each
# with a note.
# Usage: cluster.sh XENTRAIN SCRATCH_DIR SOURCE_DIR
set -u
bin=$1 tmp=$2 src=$3
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
t_start=$(date +%s)
rm -rf "$tmp" && mkdir -p "$tmp" && cd "$tmp" || exit 1
# shellcheck source=tests/lib.sh
. "$src/tests/lib.sh"
cl=$src/scripts/slurm/netns-slurm-cluster.sh

"$src/scripts/slurm/local-cluster.sh" install || { echo "FAIL - installing Slurm"; exit 1; }
cluster=$(mktemp -d -p /tmp) # short (/tmp/tmp.*): the munge socket path must fit in 108 bytes
watchers=() deadline_pid=
cleanup() {
  [ ${#watchers[@]} -eq 0 ] || kill "${watchers[@]}" 2>/dev/null
  [ -z "$deadline_pid" ] || kill "$deadline_pid" 2>/dev/null
  "$cl" stop "$cluster"
  rm -rf "$cluster"
}
trap cleanup EXIT
# ctest SIGKILLs a test at its TIMEOUT (720 s), and no trap survives that: the test stops itself
# first (XT_CLUSTER_DEADLINE, default 600 s; a passing run takes about 300), so that the cleanup
# above always runs. Its sleep is killed with it, so that nothing holds ctest's pipe open.
trap 'fail "stopped by its own deadline (${XT_CLUSTER_DEADLINE:-600} s) or a signal: cleaning up"; exit 1' TERM INT HUP
( trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "${XT_CLUSTER_DEADLINE:-600}" & s=$!
  wait "$s" && kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
deadline_pid=$!
C() { "$cl" exec "$cluster" "$@"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(date +%s.%N)
if ! "$cl" start "$cluster" 3 --cpus 4 --rate 5gbit 2>start.log; then
  cat start.log; fail "starting the 3-node cluster"; exit 1
fi
# shellcheck disable=SC1091 # written by start: ID, N, ...
. "$cluster/cluster.env"
pass "3 nodes (namespaces $ID-n0..n2, slurmd each), slurmctld, munged up, nodes idle in $(since "$t0") s"

export XENTRAIN=$bin
"$bin" gen blobs --rows 6000 --features 20 --classes 4 --noise 4 --seed 3 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val data.normalize=standardize \
  model.type=mlp model.hidden=32 optim.lr=0.02 optim.momentum=0.9 train.epochs=4 \
  train.batch_size=32 train.progress=false train.reproducible=true train.micro_batches=6

kinds="srun mpirun" mpich=0
if [ -n "${XT_MPIRUN:-}" ] && "$XT_MPIRUN" --version 2>&1 | grep -q HYDRA; then
  kinds="mpirun" mpich=1
  echo "note - MPICH build: xentrain-mpirun.sbatch with XT_MPIRUN=$XT_MPIRUN only (srun --mpi=pmix needs Open MPI)"
fi
# Every job and the salloc run one at a time (one name, --dependency=singleton): with several
# jobs starting together on this 2-core machine, Open MPI's own start-up failed now and then
# (2026-12-07, 48 jobs started 6 at a time under srun: a rank crashed inside MPI_Init_thread, a
# call to NULL from the TCP BTL's receive handler, in 3 and in 8 jobs; under mpirun "An ORTE
# daemon has unexpectedly failed" in 1; none in 20 jobs started one at a time; and once in CI,
# when a requeued attempt 2 started beside another job). The test is about the scripts, not that.
one_at_a_time=(-J xt-cluster-test --dependency=singleton)
submit() { # submit LOG SCRIPT SBATCH_OPTIONS... -- TRAIN_ARGS...: prints the job id
  local log=$1 script=$2 opts=() jid
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  jid=$(C sbatch --parsable --time=5 "${one_at_a_time[@]}" -o "$log" "${opts[@]}" "$src/scripts/slurm/$script" c.ini "$@") || return 1
  echo "$jid"
}
wait_gone() { # wait_gone SECONDS JOBID...: until they have left the queue
  for _ in $(seq $(($1 * 4))); do
    [ -z "$(C squeue -h -j "$(IFS=,; echo "${*:2}")" 2>/dev/null)" ] && return 0
    sleep 0.25
  done
  return 1
}
job_field() { C scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
rx() { # rx I IFACE: bytes node I received on IFACE
  "$cl" node "$cluster" "$1" sed 's/:/ /' /proc/net/dev | awk -v i="$2" '$1 == i { print $2 }'
}
wait_rows() { # wait_rows FILE N: until metrics.csv has N epoch rows (60 s at most)
  for _ in $(seq 600); do
    [ -s "$1" ] && [ "$(($(wc -l < "$1") - 1))" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
same_run() { # same_run DIR: model.h5 and the metrics rows equal the one-node job's
  [ -s "$1/model.h5" ] && same_h5 one/model.h5 "$1/model.h5" &&
    cmp -s <(cut -d, -f1-6,13,18,19 one/metrics.csv) <(cut -d, -f1-6,13,18,19 "$1/metrics.csv")
}

# --- 1 and 2: the time-limit jobs first (attempt 1 waits for Slurm's warning), then the straight ones
net0=$(rx 1 xtnet0) mgt0=$(rx 1 xtmgt0)
declare -A tl=()
extend() { # extend KIND JOBID: once attempt 1 has the warning, raise the limit for attempt 2
  for _ in $(seq 1200); do
    if grep -q "signal received: writing a checkpoint" "tl-$1.out" 2>/dev/null; then
      C scontrol update JobId="$2" TimeLimit=5 && date +%s > "tl-$1.extended"
      return
    fi
    sleep 0.25
  done
}
for kind in $kinds; do
  if [ "$kind" = srun ]; then sig=USR1@20; else sig=B:USR1@20; fi
  tl[$kind]=$(XT_TEST_STEP_DELAY_MS=90 submit "tl-$kind.out" "xentrain-$kind.sbatch" -N 3 --ntasks-per-node=1 \
              --time=1 --signal="$sig" -- --set run.dir="tl-$kind") || fail "sbatch (time limit, $kind)"
  extend "$kind" "${tl[$kind]}" &
  watchers+=($!)
done
declare -A straight=()
run_one() { # run_one KEY LOG SCRIPT SBATCH_OPTIONS... -- TRAIN_ARGS...: submit, wait until it has left the queue
  local key=$1 jid
  shift
  jid=$(submit "$@") || { fail "sbatch ($key)"; return; }
  straight[$key]=$jid
  wait_gone 300 "$jid" || fail "job $jid ($key) still queued after 300 s"
}
run_one one one.out "xentrain-${kinds%% *}.sbatch" -N 1 -n 1 -- --set run.dir=one
ref=${straight[one]:-}
for kind in $kinds; do
  for per in 1 2; do
    run_one "$kind-$per" "$kind-$per.out" "xentrain-$kind.sbatch" -N 3 --ntasks-per-node=$per -- --set run.dir="$kind-$per"
  done
done
if [ "$(job_field "$ref" JobState)" = COMPLETED ] && [ -s one/model.h5 ]; then
  pass "the job on one node (sbatch -N 1 -n 1) COMPLETED"
else fail "the one-node job $ref: $(job_field "$ref" JobState)"; tail -20 one.out; fi
for kind in $kinds; do
  for per in 1 2; do
    jid=${straight[$kind-$per]}
    state=$(job_field "$jid" JobState) code=$(job_field "$jid" ExitCode)
    if [ "$state" = COMPLETED ] && [ "$code" = 0:0 ] &&
       grep -q "^launch   P = $((3 * per)) ranks on 3 node(s), $per per node" "$kind-$per.out" &&
       grep -q "^slurm    job $jid, nodes n\[0-2\], tasks per node" "$kind-$per.out" &&
       same_run "$kind-$per"; then
      pass "xentrain-$kind.sbatch -N 3 --ntasks-per-node=$per: $((3 * per)) ranks on n[0-2], COMPLETED, model.h5 and metrics == the one-node job's, bit for bit"
    else
      fail "xentrain-$kind.sbatch -N 3 --ntasks-per-node=$per: job $jid $state $code"; grep -v '^ ' "$kind-$per.out" | tail -20
    fi
  done
done
dnet=$(( $(rx 1 xtnet0) - net0 )) dmgt=$(( $(rx 1 xtmgt0) - mgt0 ))
if [ "$mpich" -eq 1 ]; then
  # UCX finds no xtnet0 (it reads /sys/class/net, the root namespace's here) and the ranks of
  # this one machine reach each other through shared memory
  echo "note - MPICH (ch4:ucx): the data-network check is Open MPI's (node n1: $dnet bytes on xtnet0, $dmgt on xtmgt0)"
elif [ "$dnet" -gt 1000000 ] && [ "$dnet" -gt $((10 * dmgt)) ]; then
  pass "MPI traffic on the data network: node n1 received $dnet bytes on xtnet0, $dmgt on its management link"
else fail "node n1 received $dnet bytes on xtnet0 and $dmgt on xtmgt0: MPI traffic not on the data network"; fi

# --- 3. a scaling sweep under salloc
if [[ " $kinds " == *" srun "* ]]; then
  t0=$(date +%s.%N)
  C salloc -N 3 --ntasks-per-node=2 --time=5 "${one_at_a_time[@]}" "$src/scripts/scaling.sh" --slurm --gen --gen-rows 2000 \
    --models softmax --modes strong --reduce mpi --reps 1 --epochs 2 --xentrain "$bin" --out "$tmp/sweep" \
    > sweep.log 2>&1
  code=$?
  csv=sweep/scaling.csv
  # placement columns: P (4), hosts (5), ranks_per_node (19), binding (20), transport (21), link_rate (22)
  got=$(awk -F, 'NR > 1 && $10 > 0 { printf "%s:%s:%s:%s:%s ", $5, $19, $21, $22, ($20 != "" ? "b" : "-") }' "$csv" 2>/dev/null)
  want="1:1:none:-:b 1:2:shm:-:b 2:1:tcp:xtnet0:5Gbit:b 2:2:shm+tcp:xtnet0:5Gbit:b 3:1:tcp:xtnet0:5Gbit:b 3:2:shm+tcp:xtnet0:5Gbit:b "
  fits=$(awk -F, 'NR > 1 && $3 > 0 && $4 > 0 { printf "%s@%s ", $1, $2 }' sweep/allreduce-fit.csv 2>/dev/null)
  if [ "$code" -eq 0 ] && [ "$got" = "$want" ] && [ "$fits" = "shm@2 tcp:xtnet0@2 tcp:xtnet0@3 " ] &&
     [ -s sweep/speedup.png ] && [ -s sweep/efficiency.png ] && [ -s sweep/scaling-wide.csv ]; then
    pass "scaling sweep under salloc -N 3 --ntasks-per-node=2 ($(since "$t0") s): 6 placements with nodes, ranks per node, binding, transport, link rate; alpha-beta fits: $(tr '\n' ';' < sweep/allreduce-fit.txt | sed 's/allreduce fit //g')"
  else
    fail "scaling sweep: exit $code, placements '$got' (want '$want'), fits '$fits'"; tail -25 sweep.log
  fi
fi

# --- 2 (continued): the warning came, attempt 1 checkpointed, the limit was raised at once
wait "${watchers[@]}"
watchers=()
for kind in $kinds; do [ -s "tl-$kind.extended" ] || fail "$kind: no time-limit warning within 5 minutes"; done
wait_gone 150 "${tl[@]}" || fail "the time-limit jobs are still queued"
for kind in $kinds; do
  jid=${tl[$kind]}
  state=$(job_field "$jid" JobState) restarts=$(job_field "$jid" Restarts)
  at=$(grep -o "writing a checkpoint at epoch [0-9]* step [0-9]*" "tl-$kind.out" | head -1)
  if [ "$kind" = mpirun ]; then how="SIGUSR1 received by the batch script"; else how="signal received"; fi
  if [ "$state" = COMPLETED ] && [ "$restarts" = 1 ] && [ -n "$at" ] && grep -q "$how" "tl-$kind.out" &&
     grep -q "exited with code 75" "tl-$kind.out" && grep -q "attempt 2" "tl-$kind.out" &&
     grep -q "^resume: tl-$kind/checkpoint.h5" "tl-$kind.out" && same_run "tl-$kind"; then
    pass "$kind: Slurm's warning before the 1-minute limit -> ${at#writing a }, exit 75, requeued; attempt 2 resumed, COMPLETED with the one-node model"
  else
    fail "$kind time limit: job $jid $state, restarts '$restarts', checkpoint '$at'"; grep -v '^ ' "tl-$kind.out" | tail -30
  fi
done

# --- 4. a node lost mid-run, under each script in turn (one at a time: with two jobs failing
# together Slurm sometimes marked the node down before the scripts looked, which would hide a
# script that trusts Slurm's view alone), the node restored between them
re="watchdog: MPI_[A-Za-z_]* did not complete within 5 s (epoch [0-9]*, step [0-9]*)"
if [ "$mpich" -eq 1 ]; then
  # MPICH 4.0.2's mpiexec waits for the lost node's proxy after the surviving ranks have left
  # (it was still waiting 3 minutes later, until the job's own signal): docs/clusters.md
  echo "note - MPICH: no node-failure run (hydra's mpiexec does not return when a node is lost)"
  kinds_fail=
else kinds_fail=$kinds; fi
for kind in $kinds_fail; do
  jid=$(XT_SHRINK=1 XT_TEST_STEP_DELAY_MS=4 submit "f-$kind.out" "xentrain-$kind.sbatch" -N 3 \
        --ntasks-per-node=1 --no-kill -- --set run.dir="f-$kind" --set comm.timeout_s=5) ||
    { fail "sbatch (node failure, $kind)"; continue; }
  wait_rows "f-$kind/metrics.csv" 1 || fail "$kind: no epoch within 60 s"
  sleep 0.3
  t_cut=$(date +%s.%N)
  "$cl" fail "$cluster" 2 || fail "could not take node n2 down"
  seen=
  for _ in $(seq 200); do
    grep -q "$re" "f-$kind.out" && { seen=$(since "$t_cut"); break; }
    sleep 0.1
  done
  wait_gone 150 "$jid" || fail "$kind: the node-failure job is still queued 150 s after the failure"
  done_after=$(since "$t_cut")
  state=$(job_field "$jid" JobState)
  msg=$(grep -o "$re" "f-$kind.out" | head -1)
  if [ -n "$seen" ] && awk -v d="$seen" 'BEGIN { exit !(d <= 10) }' && [ "$state" = COMPLETED ] &&
     grep -q "shrink restart 1, relaunching on 2 ranks (2 healthy node(s): n0 n1)" "f-$kind.out" &&
     grep -q "written by 3 rank(s), continuing on 2" "f-$kind.out"; then
    pass "$kind: node n2 lost: '$msg' $seen s after the cut; shrink restart on n0 n1 from the checkpoint, COMPLETED $done_after s after the cut"
  else
    fail "$kind node failure: job $jid $state, watchdog after '${seen:-never}' s"; grep -v '^ ' "f-$kind.out" | tail -25
  fi
  if same_run "f-$kind" && same_h5 one/checkpoint.h5 "f-$kind/checkpoint.h5"; then
    pass "$kind: after the node failure (3 -> 2 ranks) model.h5, checkpoint.h5 and metrics == the uninterrupted one-node job's, bit for bit"
  else fail "$kind: the recovered job's result differs from the one-node job's"; fi
  "$cl" recover "$cluster" 2 || fail "could not restore node n2"
  for _ in $(seq 240); do [ "$(C sinfo -h -n n2 -o %T)" = idle ] && break; sleep 0.25; done
  [ "$(C sinfo -h -n n2 -o %T)" = idle ] || fail "node n2 not idle 60 s after its restoration"
done

# --- 5. nothing left behind
cleanup
trap - EXIT
left_ns=$(ip netns list | grep -c "^$ID-" || true)
left_p=$(pgrep -f "$cluster" | wc -l)
if [ "$left_ns" -eq 0 ] && [ "$left_p" -eq 0 ] && [ ! -e "$cluster" ]; then
  pass "stop: no namespace, daemon or job process left"
else fail "left behind: $left_ns namespaces, $left_p processes naming $cluster"; fi

finish "in $(( $(date +%s) - t_start )) s"
