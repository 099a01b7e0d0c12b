#!/usr/bin/env bash
# Early signals to the Slurm batch scripts (issue 32 item 5): SIGUSR1 or SIGTERM reaching
# scripts/slurm/xentrain-{srun,mpirun}.sbatch while its set-up runs (here a `date` that takes
# 0.5 s, the first command it runs) must not end the batch shell with 138 or 143, which no
# one requeues: the script launches nothing, says so and requeues the job (exit 75 path).
# srun, mpirun and scontrol are stand-ins (this test needs no Slurm: the slurm label runs the
# scripts under a real one); scontrol's requeue ends the attempt as Slurm does (SIGTERM to
# the batch shell shortly after).
# Usage: faults_sbatch.sh XENTRAIN SCRATCH_DIR [MPIEXEC]
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"

mkdir fakes
cat > fakes/date <<'SH'
#!/bin/sh
: > "$XT_FAKE_DIR/in-date"
sleep 0.5
exec /bin/date "$@"
SH
cat > fakes/srun <<'SH'
#!/bin/sh
echo "$*" >> "$XT_FAKE_DIR/launched"
SH
cp fakes/srun fakes/mpirun
cat > fakes/scontrol <<'SH'
#!/bin/sh
echo "$*" >> "$XT_FAKE_DIR/scontrol.log"
[ "$1" = requeue ] && { (sleep 0.3; kill -TERM "$PPID") >/dev/null 2>&1 & }
exit 0
SH
chmod +x fakes/*
write_ini c.ini data.train=d.h5:/train

for script in srun mpirun; do
  for sig in USR1 TERM; do
    d=$tmp/$script$sig && mkdir -p "$d"
    XT_FAKE_DIR=$d PATH="$tmp/fakes:$PATH" XENTRAIN=$bin SLURM_JOB_ID=4242 SLURM_NTASKS=2 \
      timeout -k 5 "$XT_TIMEOUT" bash "$root/scripts/slurm/xentrain-$script.sbatch" c.ini \
      > "$d/log" 2>&1 &
    job=$!
    for i in $(seq 1 200); do [ -e "$d/in-date" ] && break; sleep 0.02; done
    pid=$(pgrep -P "$job" -f "xentrain-$script.sbatch" | head -1)
    [ -n "$pid" ] && kill -s "$sig" "$pid"
    wait "$job"
    code=$?
    if [ -n "$pid" ] && [ "$code" -eq 0 ] && [ ! -e "$d/launched" ] &&
       grep -qx "requeue 4242" "$d/scontrol.log" 2>/dev/null &&
       grep -q "signalled before the launch: nothing ran" "$d/log"; then
      pass "xentrain-$script.sbatch signalled (SIG$sig) during its set-up: no launch, job requeued"
    else
      fail "xentrain-$script.sbatch signalled (SIG$sig) during its set-up: exit $code, pid '$pid', launched: $([ -e "$d/launched" ] && echo yes || echo no)"
      tail -3 "$d/log"
    fi
  done
done
finish
