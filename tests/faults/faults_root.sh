#!/usr/bin/env bash
# Faults that need root (label faults; issue 32 items 1 and 3):
#  1. a full disk (a real 300 KiB tmpfs as run.dir): the checkpoint write fails with a message
#     naming the file and "No space left on device", the run ends with exit 1 (not 139: HDF5
#     1.10.8 used to crash in MPI_Finalize after the failed close), no temporary is left,
#     the previous checkpoint resumes once there is room; predict --out onto a full disk
#     ends with exit 1 and leaves nothing, as does export in either format;
#  2. the whole job frozen with the cgroup freezer (as Slurm's scontrol suspend does) for
#     longer than comm.timeout_s: thawed, it goes on and ends normally (the watchdog counts
#     only time the job ran);
#  3. a model too large for a 3 GB memory cgroup: refused before it is allocated (exit 2),
#     naming model.hidden and the limit.
# Usage: faults_root.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (tmpfs mounts, the cgroup freezer)"; exit 77; fi
mnt=$tmp/small
fz=/sys/fs/cgroup/freezer/xt-faults-$$ mem=/sys/fs/cgroup/memory/xt-faults-$$
# cgroups made here are emptied (their processes back to the root group) and removed
drop_cgroup() {
  [ -d "$1" ] || return 0
  [ -f "$1/freezer.state" ] && echo THAWED > "$1/freezer.state" 2>/dev/null
  for p in $(cat "$1/cgroup.procs" 2>/dev/null); do echo "$p" > "$(dirname "$1")/cgroup.procs" 2>/dev/null; done
  rmdir "$1" 2>/dev/null
}
cleanup() {
  umount "$mnt" 2>/dev/null
  drop_cgroup "$fz"
  drop_cgroup "$mem"
}
trap cleanup EXIT
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=300k tmpfs "$mnt"; then echo "SKIP: cannot mount a tmpfs here"; exit 77; fi

"$bin" gen blobs --rows 4000 --features 200 --classes 10 --seed 1 --out d.h5 >/dev/null || exit 1
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val model.type=mlp model.hidden=64 \
  train.epochs=3 train.batch_size=32 train.progress=false

# 1. a full disk
xt 2 train c.ini --set run.dir="$mnt/run" >full.log 2>&1
code=$?
left=$(ls "$mnt/run" | grep -c '\.tmp')
# (model.h5 or checkpoint.h5, whichever write meets the full disk first)
if [ "$code" -eq 1 ] && grep -Eq "(model|checkpoint)\.h5: cannot flush \(HDF5: file write failed: No space left on device\)" full.log &&
   ! grep -qiE "segmentation|signal 11" full.log && [ "$left" -eq 0 ]; then
  pass "1. checkpoint onto a full disk: exit 1 (not 139), the message names the file and the disk, no temporary left"
else fail "1. full disk: exit $code, $left temporaries"; grep -iE "error|signal" full.log | head -5; fi
mount -o remount,size=4m "$mnt"
xt 2 train c.ini --set run.dir="$mnt/run" >full2.log 2>&1
code=$?
if [ "$code" -eq 0 ] && grep -q "resume: $mnt/run/checkpoint.h5, epoch 2 step 0" full2.log; then
  pass "1. with room again the kept checkpoint resumed (epoch 2) and the run finished"
else fail "1. resume after the full disk: exit $code"; tail -3 full2.log; fi
mount -o remount,size=300k "$mnt"
head -c 290k /dev/zero > "$mnt/filler" 2>/dev/null
xt 2 predict --model "$mnt/run/model.h5" --data d.h5:/test --out "$mnt/pred.h5" >pred.log 2>&1
code=$?
if [ "$code" -eq 1 ] && grep -q "No space left on device" pred.log && ! ls "$mnt" | grep -q pred; then
  pass "1. predict --out onto a full disk: exit 1, nothing left"
else fail "1. predict onto a full disk: exit $code, $(ls "$mnt" | tr '\n' ' ')"; tail -3 pred.log; fi
for fmt in onnx safetensors; do
  "$bin" export --model "$mnt/run/model.h5" --format $fmt --out "$mnt/m.$fmt" >exp$fmt.log 2>&1
  code=$?
  if [ "$code" -eq 1 ] && grep -q "No space left on device" exp$fmt.log && ! ls "$mnt" | grep -q "^m\."; then
    pass "1. export --format $fmt onto a full disk: exit 1, nothing left"
  else fail "1. export $fmt onto a full disk: exit $code, $(ls "$mnt" | tr '\n' ' ')"; tail -3 exp$fmt.log; fi
done
rm -f "$mnt/filler"

# 2. the cgroup freezer: the whole job frozen for 6 s with comm.timeout_s = 2 (rank 0 sleeps
#    40 ms per step, so rank 1 waits inside the step's collective nearly all the time)
write_ini f.ini data.train=d.h5:/train data.val=d.h5:/val model.type=mlp model.hidden=16 \
  train.epochs=2 train.batch_size=64 train.progress=false comm.timeout_s=2
if mkdir "$fz" 2>/dev/null; then
  ( echo "$BASHPID" > "$fz/cgroup.procs" &&
    XT_TEST_STEP_DELAY_MS=40 XT_TEST_STEP_DELAY_RANK=0 xt 2 train f.ini --set run.dir=frozen ) \
    >freeze.log 2>&1 &
  job=$!
  for i in $(seq 1 200); do grep -q "start-up took" freeze.log && break; sleep 0.05; done
  sleep 1
  echo FROZEN > "$fz/freezer.state"
  for i in $(seq 1 100); do [ "$(cat "$fz/freezer.state")" = FROZEN ] && break; sleep 0.05; done
  state=$(cat "$fz/freezer.state")
  sleep 6
  echo THAWED > "$fz/freezer.state"
  wait $job
  code=$?
  if [ "$state" = FROZEN ] && [ "$code" -eq 0 ] && ! grep -q watchdog freeze.log && grep -q "finished 2 epochs" freeze.log; then
    pass "2. the job frozen 6 s by the cgroup freezer (comm.timeout_s = 2), then thawed: it finished (exit 0, no watchdog)"
  else fail "2. frozen job: state $state, exit $code"; grep -E "watchdog|error" freeze.log | head -3; fi
else
  echo "SKIP: no cgroup v1 freezer at /sys/fs/cgroup/freezer"; exit 77
fi

# 3. a model far larger than a 3 GB memory cgroup: refused before it is allocated, naming
#    model.hidden and the limit (it used to be killed by the kernel: exit 137, no word)
if mkdir "$mem" 2>/dev/null; then
  echo $((3 * 1024 * 1024 * 1024)) > "$mem/memory.limit_in_bytes"
  ( echo "$BASHPID" > "$mem/cgroup.procs" &&
    xt 2 train f.ini --set run.dir=huge --set model.hidden=65536,65536 ) >mem.log 2>&1
  code=$?
  peak=$(cat "$mem/memory.max_usage_in_bytes")
  if [ "$code" -eq 2 ] && grep -q "lower model.hidden" mem.log && grep -q "memory cgroup limit" mem.log &&
     [ "$peak" -lt $((1024 * 1024 * 1024)) ]; then
    pass "3. model.hidden = 65536,65536 under a 3 GB cgroup: refused (exit 2) naming model.hidden and the limit; peak $((peak / 1048576)) MiB"
  else fail "3. huge model under a 3 GB cgroup: exit $code, peak $((peak / 1048576)) MiB"; grep -i error mem.log | head -2; fi
else
  echo "SKIP: no cgroup v1 memory controller at /sys/fs/cgroup/memory"; exit 77
fi

finish
