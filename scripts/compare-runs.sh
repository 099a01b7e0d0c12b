#!/usr/bin/env bash
# Compares two xentrain builds on the same work, for refactors that must not change
# results: runs every tests/cli/*.sh script (together they train every shipped config and
# every CLI case: invariance, early stopping, checkpoints and resume, signals, data
# errors) once with each binary, then requires, for every run directory that both
# produced:
#   - metrics.csv: identical epoch, train_loss, val_loss, val_accuracy, step and lr
#     columns (found by name, so columns added later do not matter);
#   - model.h5, model-last.h5 and checkpoint.h5's /model: identical datasets (h5diff,
#     exact; attributes such as the version string may differ).
# The scripts' own pass/fail lines are ignored: only the outputs are compared.
# Usage: scripts/compare-runs.sh OLD_XENTRAIN NEW_XENTRAIN [WORKDIR]
#   (both binaries should be test builds when the old one read the XT_FAULT_* variables)
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
old=$(readlink -f "$1") new=$(readlink -f "$2")
work=${3:-/tmp/xt-compare}
mpiexec=${MPIEXEC:-$(command -v mpirun.openmpi || command -v mpirun)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
  OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo \
  OPENBLAS_NUM_THREADS=1
command -v h5diff >/dev/null || { echo "compare-runs: needs h5diff (hdf5-tools)"; exit 2; }
rm -rf "$work" && mkdir -p "$work"

for s in "$root"/tests/cli/*.sh; do
  name=$(basename "$s" .sh)
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    echo "compare-runs: $name with the $side binary"
    bash "$s" "$bin" "$work/$side/$name" "$mpiexec" >"$work/$side-$name.log" 2>&1
  done
done

# the columns that must not change, by header name
core() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
           { print $c["epoch"] "," $c["train_loss"] "," $c["val_loss"] "," $c["val_accuracy"] "," $c["step"] "," $c["lr"] }' "$1"
}

same=0 differ=0
check() { # check WHAT OK
  if [ "$2" = 0 ]; then same=$((same + 1)); else differ=$((differ + 1)); echo "DIFFERS: $1"; fi
}
cd "$work/old" || exit 1
while IFS= read -r f; do
  [ -e "$work/new/$f" ] || { check "$f (missing in the new run)" 1; continue; }
  case "$f" in
    */metrics.csv) cmp -s <(core "$f") <(core "$work/new/$f"); check "$f" $? ;;
    */checkpoint.h5) h5diff -q "$f" "$work/new/$f" /model /model >/dev/null 2>&1; check "$f" $? ;;
    *) h5diff -q "$f" "$work/new/$f" >/dev/null 2>&1; check "$f" $? ;;
  esac
done < <(find . \( -name metrics.csv -o -name 'model*.h5' -o -name checkpoint.h5 \) | sort)
echo "compare-runs: $same outputs identical, $differ differ (work in $work)"
[ "$differ" -eq 0 ] && [ "$same" -gt 0 ]
