# Shared helpers of the shell tests; source it. Each check prints "ok   - ..." or
# "FAIL - ..." and the script ends with `finish`, which prints the "N passed, M failed" line
# CTest's readers look for and returns non-zero when anything failed.
#
# Every shell test starts with `xt_begin "$@"`, launches xentrain only through `xt` (or
# `xt_launch` for another command on the ranks) and writes its configs with `write_ini`.
passes=0 failures=0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# xt_begin XENTRAIN SCRATCH_DIR [MPIEXEC]: the tests' prologue: $bin, $tmp and $mpiexec set
# (tests/CMakeLists.txt passes them; MPIEXEC defaults to mpirun), the scratch directory
# emptied and entered.
xt_begin() {
  bin=$1 tmp=$2 mpiexec=${3:-mpirun}
  case $tmp in /*) ;; *) tmp=$PWD/$tmp ;; esac
  rm -rf "$tmp" && mkdir -p "$tmp" && cd "$tmp" || exit 1
}

# xt_launch NP COMMAND...: COMMAND on NP ranks through $mpiexec, killed after XT_TIMEOUT
# seconds (default 120; a test whose runs are longer sets it). More ranks than cores is fine:
# the tests' environment sets Open MPI's oversubscription (MPICH needs nothing).
XT_TIMEOUT=${XT_TIMEOUT:-120}
xt_launch() { local np=$1; shift; timeout -k 5 "$XT_TIMEOUT" "$mpiexec" -np "$np" "$@"; }
# xt NP ARGS...: xentrain ARGS on NP ranks.
xt() { local np=$1; shift; xt_launch "$np" "$bin" "$@"; }

# write_ini FILE section.key=value...: FILE as an INI config: one [section] per section, in
# the order the keys first name it, each key = value line in the order given.
write_ini() {
  local file=$1; shift
  if [ $# -eq 0 ]; then : > "$file"; return; fi
  printf '%s\n' "$@" | awk '{
      eq = index($0, "="); key = substr($0, 1, eq - 1); val = substr($0, eq + 1)
      dot = index(key, "."); sec = substr(key, 1, dot - 1); name = substr(key, dot + 1)
      if (!(sec in seen)) { seen[sec] = ++ns; order[ns] = sec }
      lines[sec] = lines[sec] name " = " val "\n" }
    END { for (i = 1; i <= ns; i++) printf "[%s]\n%s", order[i], lines[order[i]] }' > "$file"
}
# The test's own Open MPI session directory (tests/CMakeLists.txt), made before the first
# mpirun: two mpiruns started together would race creating its parents.
if [ -n "${OMPI_MCA_orte_tmpdir_base:-}" ]; then mkdir -p "$OMPI_MCA_orte_tmpdir_base" || exit 1; fi
pass() { echo "ok   - $1"; passes=$((passes + 1)); }
fail() { echo "FAIL - $1"; failures=$((failures + 1)); }
finish() { echo "$passes passed, $failures failed${1:+ $1}"; [ "$failures" -eq 0 ]; }

# metrics_core FILE: the metrics.csv columns that do not depend on timing (epoch..lr)
metrics_core() { cut -d, -f1-6 "$1"; }

# metrics_maxrel A B [FIRST LAST]: the largest relative difference between two metrics.csv
# files over columns FIRST..LAST (default 2..3: train_loss, val_loss), row by row; 1 when B
# has no data rows (so an empty run never passes for "equal").
metrics_maxrel() {
  awk -F, -v c0="${3:-2}" -v c1="${4:-3}" '
    NR == FNR { if (FNR > 1) for (c = c0; c <= c1; c++) a[FNR, c] = $c; next }
    FNR > 1 { n++; for (c = c0; c <= c1; c++) { d = a[FNR, c] - $c; if (d < 0) d = -d
                s = ($c < 0 ? -$c : $c); if (s < 1e-12) s = 1e-12; if (d / s > m) m = d / s } }
    END { if (n == 0) m = 1; printf "%.3g\n", m + 0 }' "$1" "$2"
}

# rank_pid MARKER RANK: the pid of that MPI rank of a running `$bin train` whose command line
# contains MARKER (the rank as Open MPI, MPICH or Slurm's PMIx tell it); needs $bin
rank_pid() {
  local p
  for p in $(pgrep -f "$bin train"); do
    if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -Eqx "(OMPI_COMM_WORLD_RANK|PMI_RANK|PMIX_RANK)=$2" &&
       tr '\0' ' ' < /proc/$p/cmdline | grep -q "$1"; then echo "$p"; return; fi
  done
}

# same_h5 A B: every dataset of two HDF5 files, byte for byte (attributes such as the writer's
# rank count may differ); fails when they differ or A has none
same_h5() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py
def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()].tobytes()) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = datasets(sys.argv[1]), datasets(sys.argv[2])
bad = sorted(set(a) ^ set(b)) + [k for k in a if k in b and a[k] != b[k]]
if bad: print("differ:", " ".join(bad[:6]))
sys.exit(1 if bad or not a else 0)
PY
}
