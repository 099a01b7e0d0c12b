#!/usr/bin/env bash
# Early signals (issue 32 item 5): SIGUSR1/SIGTERM/SIGINT before xentrain's handlers would be
# installed, and to scripts/xt-mpirun before its trap, must end the job with 75 (never 138,
# never a lost signal):
#  a. a rank signalled during MPI_Init (before today's handler) holds the signal from main's
#     first instruction: checkpoint after step 1, exit 75, and the run resumes from it;
#  b. scripts/xt-mpirun signalled while its set-up runs (an `id` that takes 0.3 s, the
#     command its set-up ran before its trap): exit 75, before the launch or after a
#     checkpoint;
#  c. scripts/xt-mpirun signalled at a sweep of moments from its start through mpirun's
#     launch of the ranks (mpirun drops a signal that comes before the ranks exist, or dies
#     of one that comes before its own handler): every time exit 75, with a checkpoint
#     whenever the ranks had started.
# Usage: faults_signals.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
launcher=$mpiexec # under MPICH the tests launch through xt-mpirun already (XT_MPIRUN is set)
[ "$(basename "$mpiexec")" = xt-mpirun ] && launcher=${XT_MPIRUN:-mpirun}

"$bin" gen blobs --rows 4000 --features 20 --classes 3 --seed 1 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val model.type=mlp model.hidden=16 \
  train.epochs=20 train.batch_size=32 train.progress=false

# Helpers with builtins only (past one pgrep): a fork takes 10-20 ms here, and the moments
# that matter are that short.
# sigcgt PID: the process's caught-signal mask (hex, no 0x), "" when it is gone
sigcgt() {
  local k v
  while read -r k v; do [ "$k" = SigCgt: ] && { echo "$v"; return; }; done < "/proc/$1/status" 2>/dev/null
}
# caught PID: the process has a SIGUSR1 handler (SigCgt bit 10)
caught() { local m; m=$(sigcgt "$1"); [ -n "$m" ] && (( 0x$m & 0x200 )); }
# wrapper_up PID: PID runs scripts/xt-mpirun (exec'ed: before that it is a copy of this
# shell, whose own handlers would take the signal) and holds SIGUSR1
wrapper_up() {
  local c
  mapfile -d '' c < "/proc/$1/cmdline" 2>/dev/null || return 1
  [[ " ${c[*]} " == *xt-mpirun* ]] && caught "$1"
}
# early_rank MARKER RANK: the pid of that rank of `$bin train ... MARKER`
early_rank() {
  local p e
  for p in $(pgrep -f -- "^$bin train .*$1"); do
    mapfile -d '' e < "/proc/$p/environ" 2>/dev/null || continue
    case " ${e[*]} " in
      *" OMPI_COMM_WORLD_RANK=$2 "* | *" PMI_RANK=$2 "* | *" PMIX_RANK=$2 "*) echo "$p"; return ;;
    esac
  done
}
# a background job of a non-interactive shell ignores SIGINT (POSIX) unless job control is on
bg_start() { set -m; "$@" & job=$!; set +m; }

# early_rank MARKER RANK: rank_pid (lib.sh) looking only at the processes of this binary
early_rank() {
  local p
  for p in $(pgrep -f -- "^$bin train .*$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null |
      grep -Eqx "(OMPI_COMM_WORLD_RANK|PMI_RANK|PMIX_RANK)=$2" && { echo "$p"; return; }
  done
}

# a. SIGUSR1 to rank 1 as soon as it has its handler, or 30 ms after it exists (today's code
#    installs it only after MPI_Init, 0.2 s or more later: the default action ends the rank)
for sig in USR1 TERM; do
  XT_TEST_STEP_DELAY_MS=2 xt 2 train c.ini --set run.dir=init$sig \
    >init$sig.log 2>&1 &
  job=$!
  t0=$EPOCHREALTIME pid=
  for i in $(seq 1 3000); do pid=$(early_rank "run.dir=init$sig" 1); [ -n "$pid" ] && break; done
  # until main has run (SIGUSR1 held from its first instruction) or MPI_Init has begun
  # (Open MPI's SIGSEGV handler, bit 10 of the mask): the moment today's code dies
  for i in $(seq 1 20000); do m=$(sigcgt "$pid"); [ -n "$m" ] && (( 0x$m & 0x600 )) && break; done
  init_done=$(grep -c 'start-up took' init$sig.log)
  [ -n "$pid" ] && kill -$sig "$pid"
  echo "note - rank 1 signalled $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }') s after the launch"
  wait $job
  code=$?
  if [ -n "$pid" ] && [ "$init_done" = 0 ] && [ "$code" -eq 75 ] &&
     grep -q "signal received: writing a checkpoint at epoch 1 step 1" init$sig.log; then
    pass "a. SIG$sig to rank 1 during start-up: held, checkpoint after step 1, exit 75"
  else fail "a. SIG$sig to rank 1 during start-up: exit $code (pid '$pid', start-up done: $init_done)"; tail -3 init$sig.log; fi
done
if xt 2 train c.ini --set run.dir=initUSR1 >resume.log 2>&1 &&
   grep -q "resume: initUSR1/checkpoint.h5, epoch 1 step 1" resume.log; then
  pass "a. the run resumes from that checkpoint (epoch 1 step 1) and completes"
else fail "a. resume after the early signal"; tail -3 resume.log; fi

# b. scripts/xt-mpirun signalled during its set-up: an `id` that takes 0.3 s widens the
#    moments before the trap of a wrapper that runs it first
mkdir -p slowbin
printf '#!/bin/sh\nsleep 0.3\nexec /usr/bin/id "$@"\n' > slowbin/id && chmod +x slowbin/id
for sig in USR1 TERM INT; do
  rm -rf pre$sig
  PATH="$tmp/slowbin:$PATH" XT_MPIRUN=$launcher bg_start "$root/scripts/xt-mpirun" -np 2 "$bin" train \
    c.ini --set run.dir=pre$sig >pre$sig.log 2>&1
  for i in $(seq 1 75); do wrapper_up "$job" && break; sleep 0.002; done
  kill -$sig "$job"
  wait $job
  code=$?
  if grep -q "stopped by a signal before the launch" pre$sig.log; then what="before the launch, nothing ran"
  elif [ -s pre$sig/checkpoint.h5 ] && grep -q "signal received" pre$sig.log; then what="checkpoint written"
  else what=none; fi
  if [ "$code" -eq 75 ] && [ "$what" != none ]; then
    pass "b. SIG$sig to xt-mpirun as it starts: exit 75 ($what)"
  else fail "b. SIG$sig to xt-mpirun as it starts: exit $code ($what)"; tail -3 pre$sig.log; fi
done

# c. a sweep of moments after xt-mpirun has started (its trap is its first command)
bad=0 list=
for d in 0 0.01 0.02 0.04 0.06 0.08 0.1 0.15 0.2 0.3 0.5; do
  rm -rf sw
  XT_MPIRUN=$launcher XT_TEST_STEP_DELAY_MS=2 bg_start "$root/scripts/xt-mpirun" -np 2 "$bin" train \
    c.ini --set run.dir=sw >sw.log 2>&1
  for i in $(seq 1 500); do wrapper_up "$job" && break; sleep 0.002; done
  sleep "$d"
  kill -USR1 "$job"
  wait $job
  code=$?
  what=launch
  [ -e sw ] && what=$([ -s sw/checkpoint.h5 ] && grep -q "signal received" sw.log && echo checkpoint || echo none)
  list="$list $d:$code:$what"
  if [ "$code" -ne 75 ] || [ "$what" = none ]; then bad=$((bad + 1)); tail -3 sw.log; fi
done
if [ "$bad" -eq 0 ]; then pass "c. SIGUSR1 to xt-mpirun at 11 moments of its start: always exit 75 (delay:exit:what$list)"
else fail "c. SIGUSR1 to xt-mpirun during its start: $bad of 11 wrong (delay:exit:what$list)"; fi

finish
