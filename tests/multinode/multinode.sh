#!/usr/bin/env bash
# Training across "hosts" that are network namespaces (scripts/netns/netns-cluster.sh): separate
# network stacks, MPI over TCP on veth links through a bridge, Open MPI's daemons started in each
# namespace by the rsh agent.
#  - P = 2 over 2 namespaces equals P = 2 in one namespace (shared memory) within 1e-5 relative;
#  - a model whose layers form 2 buckets: comm.overlap = auto turns the overlapped ring
#    allreduce on across the namespaces (and says why), and the run agrees within 1e-5 with
#    P = 2 in one namespace, where auto leaves it off;
#  - sparse (CSR) data: the sparse exchange of W_1's touched columns serves the steps across
#    the namespaces, and the run agrees within 1e-5 with P = 2 in one namespace;
#  (P = 3 over 3 namespaces is not run here: Open MPI 4.1.4's launch of 3 ranks over the rsh
#  agent hung before any rank started in 2 of about 10 CI runs; run it by hand with
#  scripts/netns/netns-cluster.sh --hosts 3 run -- -np 3 ...)
#  - a data link taken down mid-run (`ip link set ... down`): the collective watchdog
#    (comm.timeout_s = 5) turns the silent hang into a non-zero exit, within a bounded time, with a
#    message naming the watchdog, the collective, epoch and step;
#  - no namespace is left behind (also on failure: trap EXIT).
# Needs root (exit 77 = skipped otherwise).
# Usage: multinode.sh XENTRAIN SCRATCH_DIR SOURCE_DIR MPIEXEC
set -u
bin=$1 tmp=$2 src=$3 mpiexec=$4
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
command -v ip >/dev/null || { echo "skipped: no ip (iproute2)"; exit 77; }
# scripts/netns/netns-cluster.sh drives Open MPI's rsh launcher (plm_rsh_agent, mca options)
"$mpiexec" --version 2>&1 | grep -qE "Open MPI|OpenRTE" ||
  { echo "skipped: the namespace launcher needs Open MPI's mpirun; $mpiexec is another MPI"; exit 77; }
t_start=$(date +%s)
rm -rf "$tmp" && mkdir -p "$tmp" && cd "$tmp" || exit 1
. "$src/tests/lib.sh"
netns=$src/scripts/netns/netns-cluster.sh
base=xm$(($$ % 100000))
cleanup() {
  local s
  for s in a d c; do "$netns" --hosts 3 --name "$base$s" down; done
}
# run_ns NAME RETRY_NAME HOSTS LOG MPIRUN_ARGS...: one job across namespaces (names are at
# most 8 characters). Open MPI 4.1.4's launch
# over the rsh agent occasionally never completes its wire-up here (no rank ever starts
# xentrain, so xentrain's own watchdog cannot help): when no rank has printed the start-up
# banner after 40 s, that launch is torn down and tried once more under a fresh name.
run_ns() {
  local name=$1 retry=$2 hosts=$3 log=$4 try pid
  shift 4
  for try in 1 2; do
    timeout -k 5 120 "$netns" --hosts "$hosts" --name "$name" run -- "$@" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 400); do
      grep -q "^launch   P = " "$log" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if grep -q "^launch   P = " "$log" || ! kill -0 "$pid" 2>/dev/null || [ "$try" -eq 2 ]; then
      wait "$pid"
      return $?
    fi
    echo "note - $name: the Open MPI launch did not start any rank in 40 s; retrying once"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    "$netns" --hosts "$hosts" --name "$name" down >/dev/null 2>&1
    name=$retry
  done
}
trap cleanup EXIT
maxrel() { metrics_maxrel "$1" "$2" 2 4; } # train_loss, val_loss, val_accuracy
rows() { echo $(($(wc -l < "$1") - 1)); }
within() { awk -v r="$1" 'BEGIN { exit !(r < 1e-5) }'; }
# one_and_two NAME TRAIN_ARGS...: the run at P = 2 in one namespace (NAME1) and over 2
# namespaces (NAME2); sets code (the second's exit) and r (their metrics' max rel diff)
one_and_two() {
  local n=$1
  shift
  timeout -k 5 120 "$mpiexec" -np 2 --oversubscribe "$bin" train c.ini --set run.dir=${n}1 "$@" \
    >${n}1.log 2>&1 || fail "$n: the reference in one namespace"
  run_ns ${base}a ${base}d 2 ${n}2.log -np 2 "$bin" train c.ini --set run.dir=${n}2 "$@"
  code=$?
  r=$(maxrel ${n}1/metrics.csv ${n}2/metrics.csv 2>/dev/null || echo 1)
}

"$bin" gen blobs --rows 8000 --features 40 --classes 5 --noise 4 --seed 11 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val data.normalize=standardize \
  model.type=mlp model.hidden=64,32 optim.lr=0.05 optim.momentum=0.9 train.epochs=3 \
  train.batch_size=64 train.progress=false

# reference: P = 2 in one namespace (shared memory / loopback)
timeout -k 5 120 "$mpiexec" -np 2 --oversubscribe "$bin" train c.ini --set run.dir=one >one.log 2>&1 ||
  fail "P=2 in one namespace"

# 1. P = 2 over 2 namespaces
t0=$(date +%s)
run_ns ${base}a ${base}d 2 two.log -np 2 "$bin" train c.ini --set run.dir=two
code=$?
r=$(maxrel one/metrics.csv two/metrics.csv 2>/dev/null || echo 1)
if [ "$code" -eq 0 ] && grep -q "P = 2 ranks on 2 node(s), 1 per node" two.log &&
   [ "$(rows two/metrics.csv)" -eq 3 ] && within "$r"; then
  pass "P=2 over 2 namespaces ($(( $(date +%s) - t0 )) s): metrics within $r of P=2 in one namespace"
else fail "P=2 over 2 namespaces: exit $code, max rel diff $r"; tail -15 two.log; fi

# 1b. comm.overlap = auto across nodes: 300 -> 256 -> 256 -> 5 gives buckets of 268 and 308 KiB
"$bin" gen blobs --rows 2000 --features 300 --classes 5 --noise 4 --seed 12 --out w.h5 >/dev/null || exit 1
deep="--set data.train=w.h5:/train --set data.val=w.h5:/val --set model.hidden=256,256 --set train.epochs=2"
# shellcheck disable=SC2086
one_and_two ov $deep
if [ "$code" -eq 0 ] && grep -q "^reduce   ring allreduce layer by layer, moved on between pieces of backward (comm.overlap = auto: 2 buckets of layers on 2 nodes" ov2.log &&
   grep -q "not overlapped (comm.overlap = auto: off, one node" ov1.log && within "$r"; then
  pass "comm.overlap = auto over 2 namespaces: on, says why, metrics within $r of one namespace (off)"
else fail "overlap auto over 2 namespaces: exit $code, max rel diff $r"; grep -E "^reduce|overlap" ov1.log ov2.log | head; fi

# 1c. sparse (CSR) data across nodes: the sparse exchange of W_1's touched columns (plan.c),
# chosen per step by bytes; the run agrees within 1e-5 with P = 2 in one namespace, where the
# dense allreduce serves
"$bin" gen sparse --rows 3000 --features 20000 --classes 8 --nnz 12 --seed 13 --out s.h5 >/dev/null || exit 1
sp="--set data.train=s.h5:/train --set data.val=s.h5:/val --set model.hidden=16 --set data.normalize=auto --set train.epochs=2"
# shellcheck disable=SC2086
one_and_two sp $sp
served=$(grep -o "the sparse exchange served [0-9]* of [0-9]* steps" sp2.log)
if [ "$code" -eq 0 ] && grep -q "^reduce   sparse exchange of W_1's touched columns or MPI allreduce" sp2.log &&
   [ -n "$served" ] && ! grep -q "served 0 of" sp2.log && ! grep -q "sparse exchange" sp1.log && within "$r"; then
  pass "CSR data over 2 namespaces: $served, metrics within $r of one namespace (dense allreduce)"
else fail "sparse exchange over 2 namespaces: exit $code, max rel diff $r"; grep -E "^reduce|exchange" sp1.log sp2.log | head; tail -5 sp2.log; fi

# 3. a data link cut mid-run: the watchdog ends the job and names the step
t0=$(date +%s)
XT_TEST_STEP_DELAY_MS=3 timeout -k 5 90 "$netns" --hosts 2 --name ${base}c run -- -np 2 \
  "$bin" train c.ini --set run.dir=cut --set train.epochs=50 --set comm.timeout_s=5 >cut.log 2>&1 &
job=$!
for _ in $(seq 300); do [ -s cut/metrics.csv ] && [ "$(rows cut/metrics.csv)" -ge 1 ] && break; sleep 0.1; done
sleep 0.3
if ip -n ${base}c-sw link set h1 down; then
  t1=$(date +%s.%N)
  wait $job
  code=$?
  dt=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  msg=$(grep -o "watchdog: \(MPI_[A-Za-z_]*\|ring allreduce (layer by layer, overlapped with backward)\) did not complete within 5 s (epoch [0-9]*, step [0-9]*)" cut.log | head -1)
  if [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && [ -n "$msg" ] && awk -v d="$dt" 'BEGIN { exit !(d < 30) }'; then
    pass "link h1 down mid-run: exit $code after $dt s with '$msg'"
  else fail "link down: exit $code after $dt s, message '$msg'"; grep -v '^ ' cut.log | tail -15; fi
else
  fail "could not take the link down"; wait $job
fi

# 4. nothing left behind
cleanup
left=$(ip netns list | grep -c "^$base" || true)
if [ "$left" -eq 0 ]; then pass "no namespace left behind"; else fail "$left namespaces left behind"; fi

finish "in $(( $(date +%s) - t_start )) s"
