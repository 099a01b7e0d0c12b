#!/usr/bin/env bash
# optim.shard and comm.allreduce (issue 19).
#  - reproducible mode: the sharded update (reduce-scatter, slice update, allgather) gives the
#    unsharded P = 1 run's bits at P = 2, 3, 4 through MPI and through shared memory, for
#    sgd (momentum, Nesterov, clipping), adamw with clipping, lars and lamb with clipping:
#    norms are summed over fixed blocks, so they too are the same at any P;
#  - the multi-node shared-memory path (one slice owner per node allreducing over MPI), as two
#    pretend nodes of two ranks (XT_TEST_NODE_RANKS), gives the same bits;
#  - default mode: sharded and unsharded, shm and mpi agree within the rank-count tolerance (1e-5, DESIGN.md's bar) at
#    P = 2, 3, 4 (float sums in another order), and the comparison can fail;
#  - exact resume: a sharded run stopped after epoch 2 and resumed at P = 3 sharded, at P = 2
#    unsharded through MPI, and after a signal mid-epoch, ends with the straight run's model;
#    the checkpoint holds the whole optimiser state (its arrays have n_params values);
#  - comm.overlap: the layer-by-layer ring reduction during backward agrees with the reduction after
#    it (micro-steps, a rank without rows), the watchdog names it, conflicts are refused;
#  - comm.allreduce = shm on one rank falls back to MPI and says why;
#  - comm.allreduce = auto decides by placement (shared memory with a CPU per rank, MPI when
#    ranks share CPUs), never by a timing, so repeated runs take the same path.
# Usage: shard.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
cols() { cut -d, -f1-6,13,18,19 "$1"; }
same_run() {
  cmp -s <(cols "$1/metrics.csv") <(cols "$2/metrics.csv") && same_h5 "$1/model.h5" "$2/model.h5"
}

"$bin" gen spirals --rows 2503 --features 6 --classes 3 --seed 7 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val data.virtual_shards=37 model.type=mlp \
  model.hidden=40,24 optim.lr=0.05 optim.momentum=0.9 train.epochs=2 train.batch_size=96 \
  train.reproducible=true train.micro_batches=12 train.progress=false checkpoint.every=1

# 1. reproducible mode: every path gives the P = 1 bits
declare -A cases=(
  [sgd]="--set optim.nesterov=true --set optim.clip_norm=0.5 --set optim.weight_decay=0.001"
  [adamw]="--set optim.optimizer=adamw --set optim.momentum=0 --set optim.lr=0.01 --set optim.clip_norm=0.3 --set optim.weight_decay=0.01"
  [lars]="--set optim.optimizer=lars --set optim.trust_coefficient=0.02 --set optim.weight_decay=0.001"
  [lamb]="--set optim.optimizer=lamb --set optim.momentum=0 --set optim.lr=0.01 --set optim.clip_norm=0.5 --set optim.weight_decay=0.01"
)
for name in sgd adamw lars lamb; do
  bad=""
  # shellcheck disable=SC2086
  xt 1 train c.ini --set run.dir=$name.ref --set optim.shard=false ${cases[$name]} >$name.ref.log 2>&1 || bad="P=1(exit $?)"
  for np in 2 3 4; do
    for path in true:shm true:mpi false:shm; do
      sh=${path%%:*} impl=${path#*:}
      [ "$sh" = false ] && [ $np != 3 ] && continue
      rd=$name.$np.$sh.$impl
      # shellcheck disable=SC2086
      xt $np train c.ini --set run.dir=$rd --set optim.shard=$sh --set comm.allreduce=$impl \
        ${cases[$name]} >$rd.log 2>&1 || { bad="$bad $rd(exit $?)"; continue; }
      same_run $name.ref $rd || bad="$bad $rd"
      if [ "$sh" = true ] && ! grep -q "sharded update (optim.shard = true)" $rd.log; then bad="$bad $rd(banner)"; fi
      if [ "$impl" = shm ] && ! grep -q "^reduce   shared-memory" $rd.log; then bad="$bad $rd(not shm)"; fi
    done
  done
  if [ -z "$bad" ] && [ "$(wc -l < $name.ref/metrics.csv)" -eq 3 ]; then
    pass "$name: sharded/unsharded, shm/mpi at P = 2, 3, 4 give the P = 1 model and metrics bit for bit"
  else fail "$name:$bad"; fi
done

# 2. two pretend nodes of two ranks: the hierarchical path
XT_TEST_NODE_RANKS=2 xt 4 train c.ini --set run.dir=nodes --set comm.allreduce=shm ${cases[lamb]} >nodes.log 2>&1
code=$?
if [ $code -eq 0 ] && grep -q "2 ranks per node, then one slice owner per node over MPI" nodes.log && same_run lamb.ref nodes; then
  pass "two nodes of two ranks through shared memory + MPI between them: the P = 1 bits"
else fail "pretend nodes: exit $code"; grep -E "^reduce|error" nodes.log; fi
XT_TEST_NODE_RANKS=2 xt 4 train c.ini --set run.dir=nodes-rep --set comm.allreduce=shm --set optim.shard=false \
  ${cases[sgd]} >nodes-rep.log 2>&1 && same_run sgd.ref nodes-rep &&
  pass "two pretend nodes, unsharded allreduce: the P = 1 bits" || fail "pretend nodes, unsharded"
XT_TEST_NODE_RANKS=1 xt 3 train c.ini --set run.dir=nodes1 --set comm.allreduce=shm >nodes1.log 2>&1
if grep -q "comm.allreduce = shm: one rank per node: nothing to share; using MPI" nodes1.log &&
   grep -q "^reduce   MPI reduce-scatter + allgather" nodes1.log; then
  pass "one rank per node: comm.allreduce = shm falls back to MPI and says why"
else fail "one rank per node"; grep -E "^reduce|warn" nodes1.log; fi

# 3. default mode: agreement within the rank-count tolerance
def="--set train.reproducible=false --set train.micro_batches=0 --set train.epochs=3"
# shellcheck disable=SC2086
xt 1 train c.ini --set run.dir=f.ref $def >f.ref.log 2>&1 || fail "default mode P = 1"
worst=0 bad=""
for np in 2 3 4; do
  for path in true:shm true:mpi false:shm false:mpi; do
    sh=${path%%:*} impl=${path#*:} rd=f.$np.${path/:/.}
    # shellcheck disable=SC2086
    xt $np train c.ini --set run.dir=$rd --set optim.shard=$sh --set comm.allreduce=$impl $def >$rd.log 2>&1 ||
      { bad="$bad $rd(exit $?)"; continue; }
    d=$(metrics_maxrel f.ref/metrics.csv $rd/metrics.csv 2 4)
    awk -v d="$d" 'BEGIN { exit !(d < 1e-5) }' || bad="$bad $rd($d)"
    worst=$(awk -v a="$worst" -v b="$d" 'BEGIN { print (b > a ? b : a) }')
  done
done
[ -z "$bad" ] && pass "default mode: every path at P = 2, 3, 4 within 1e-5 of P = 1 (DESIGN.md's bar) (largest relative difference $worst)" ||
  fail "default mode:$bad"
# the tolerance check can fail: another learning rate is far outside it
# shellcheck disable=SC2086
xt 2 train c.ini --set run.dir=f.other $def --set optim.lr=0.07 >f.other.log 2>&1
d=$(metrics_maxrel f.ref/metrics.csv f.other/metrics.csv 2 4)
awk -v d="$d" 'BEGIN { exit !(d >= 1e-5) }' && pass "the comparison fails for another lr ($d)" ||
  fail "the comparison cannot tell another lr apart ($d)"

# 3a. comm.allreduce = auto: by placement. A CPU per rank -> shared memory; two ranks
#     confined to one CPU (taskset, unbound) -> MPI; the banner says which and why.
if [ "$(nproc)" -ge 2 ]; then
  # shellcheck disable=SC2086
  xt 2 train c.ini --set run.dir=auto2 $def >auto2.log 2>&1 &&
    grep -q "^reduce   shared-memory .*(comm.allreduce = auto: a CPU per rank, 2 ranks on [0-9]* CPUs)" auto2.log &&
    pass "comm.allreduce = auto, 2 ranks with a CPU each: shared memory, and the banner says why" ||
    fail "auto at P = 2: $(grep "^reduce" auto2.log)"
else echo "note - one CPU: the shared-memory side of auto is not checked"; fi
bindnone=""
"$mpiexec" --version 2>&1 | grep -qE "Open MPI|OpenRTE" && bindnone="--bind-to none"
# shellcheck disable=SC2086
timeout -k 5 120 taskset -c 0 "$mpiexec" $bindnone -np 2 "$bin" train c.ini --set run.dir=auto1 $def >auto1.log 2>&1 &&
  grep -q "^reduce   MPI .*(comm.allreduce = auto: 2 ranks share 1 CPU(s) on a node" auto1.log &&
  same_run auto1 f.2.true.mpi &&
  pass "comm.allreduce = auto, 2 ranks on one CPU: MPI (says why), the same model as comm.allreduce = mpi" ||
  fail "auto on one CPU: $(grep "^reduce" auto1.log)"

# 3b. comm.overlap: layer buckets ring-allreduced while backward runs agree too,
#     with micro-steps, and when a rank has no rows in a step (batch 2 over 3 ranks)
bad=""
for v in "2:" "3:" "3:--set train.accumulate=2" "3:--set train.batch_size=2 --set train.epochs=1"; do
  np=${v%%:*} extra=${v#*:} rd=ov.$np.$(echo "$extra" | tr -dc 'a-z0-9')
  # shellcheck disable=SC2086
  xt $np train c.ini --set run.dir=$rd --set comm.overlap=true $def $extra >$rd.log 2>&1 || { bad="$bad $rd(exit $?)"; continue; }
  grep -q "^reduce   ring allreduce layer by layer, moved on between pieces of backward" $rd.log &&
    grep -q "^overlap totals: inflight_s=" $rd.log || bad="$bad $rd(banner)"
  # shellcheck disable=SC2086
  xt $np train c.ini --set run.dir=$rd.off --set comm.overlap=false --set optim.shard=false $def $extra >$rd.off.log 2>&1 ||
    { bad="$bad $rd.off(exit $?)"; continue; }
  d=$(metrics_maxrel $rd.off/metrics.csv $rd/metrics.csv 2 4)
  awk -v d="$d" 'BEGIN { exit !(d < 1e-5) }' || bad="$bad $rd($d)"
done
[ -z "$bad" ] && pass "comm.overlap = true at P = 2, 3 (micro-steps; ranks without rows) agrees with the reduction after backward" ||
  fail "overlap:$bad"
XT_FAULT_HANG=1:5 xt 2 train c.ini --set run.dir=ovhang --set comm.overlap=true --set comm.timeout_s=2 $def >ovhang.log 2>&1
code=$?
if [ $code -ne 0 ] && grep -q "watchdog: ring allreduce (layer by layer, overlapped with backward) did not complete within 2 s (epoch 1, step 5)" ovhang.log; then
  # the hung rank had started step 5's buckets, but nothing moves them on while it hangs
  pass "watchdog with overlap: names the layer-by-layer ring allreduce and the hung rank's step"
else fail "watchdog with overlap: exit $code"; grep watchdog ovhang.log; fi
xt 2 train c.ini --set run.dir=ovbad --set comm.overlap=true --set optim.shard=true >ovbad.log 2>&1
code=$?
[ $code -eq 2 ] && grep -q "comm.overlap=true: overlap .* cannot be combined with train.reproducible = true" ovbad.log &&
  pass "comm.overlap = true with train.reproducible refused (exit 2), naming both" || { fail "overlap + reproducible: exit $code"; tail -2 ovbad.log; }
grep -q "reduced after backward, not overlapped (comm.overlap = auto: off with train.reproducible = true)" sgd.3.true.shm.log &&
  pass "comm.overlap = auto says why it is off" || fail "overlap auto reason"

# 4. exact resume across paths (reproducible mode: bit for bit)
# shellcheck disable=SC2086
xt 3 train c.ini --set run.dir=straight --set train.epochs=4 ${cases[adamw]} >straight.log 2>&1 || fail "straight run"
for how in "3 true shm" "2 false mpi"; do
  set -- $how
  rd=resumed.$1.$2.$3
  # shellcheck disable=SC2086
  xt 3 train c.ini --set run.dir=$rd --set train.epochs=2 --set optim.shard=true --set comm.allreduce=shm ${cases[adamw]} >$rd.a.log 2>&1 &&
  xt "$1" train c.ini --set run.dir=$rd --set train.epochs=4 --set optim.shard="$2" --set comm.allreduce="$3" ${cases[adamw]} >$rd.b.log 2>&1
  code=$?
  if [ $code -eq 0 ] && grep -q "resume: " $rd.b.log && same_run straight $rd; then
    pass "sharded checkpoint after epoch 2, resumed at P = $1 (optim.shard = $2, $3): the straight run's model"
  else fail "resume at P = $1 ($2, $3): exit $code"; fi
done
n=$(/usr/bin/python3 -c '
import h5py
with h5py.File("straight/checkpoint.h5", "r") as f:
    print(f["optimizer/exp_avg"].shape[0], f["model/params"].shape[0] if "model/params" in f else -1)' 2>/dev/null)
np_=$(sed -n 's/.* \([0-9]*\) parameters.*/\1/p' straight.log | head -1)
[ "${n%% *}" = "$np_" ] && pass "a sharded run's checkpoint holds the whole optimiser state ($np_ values per array)" ||
  fail "checkpoint optimiser state: '$n' for $np_ parameters"

# a signal mid-epoch: rank 0 gathers the slices and writes; the resumed run ends the same
# shellcheck disable=SC2086
XT_TEST_STEP_DELAY_MS=20 xt 3 train c.ini --set run.dir=sig --set train.epochs=4 --set comm.allreduce=shm ${cases[adamw]} >sig.a.log 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "^ *1," sig/metrics.csv 2>/dev/null && break; sleep 0.1; done
p0=$(rank_pid "run.dir=sig" 0)
[ -n "$p0" ] && kill -TERM "$p0"
wait $pid
# shellcheck disable=SC2086
xt 4 train c.ini --set run.dir=sig --set train.epochs=4 ${cases[adamw]} >sig.b.log 2>&1
code=$?
if grep -q "signal received: writing a checkpoint at epoch 2" sig.a.log && [ $code -eq 0 ] && same_run straight sig; then
  pass "SIGTERM mid-epoch 2 of a sharded shm run, resumed at P = 4: the straight run's model"
else fail "signal resume: exit $code"; grep -E "signal|resume|error" sig.a.log sig.b.log | head; fi

finish
