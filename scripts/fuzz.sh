#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang-14, ASan+UBSan) and runs each for a
# bounded time on seed corpora generated on the fly, then replays every regression input
# in tests/fuzz/regressions/. Prints the executions per harness; exits non-zero when a
# harness crashed (the reproducer is left in $BUILD_DIR/fuzz-out/<harness>/crash-*).
#
# usage: scripts/fuzz.sh [SECONDS_PER_HARNESS]     (default 20; CI uses 10)
#        e.g. scripts/fuzz.sh 3600  for a long run
# Environment: BUILD_DIR (build-fuzz), JOBS (2: harnesses run two at a time),
#              FUZZ_SEED (libFuzzer's -seed; 0, the default, picks a random one; CI fixes it
#              so that its bounded run explores the same inputs every time),
#              CC (clang-14 or clang), FUZZ_HARNESSES (default: all six).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${1:-20}
build=${BUILD_DIR:-"$root/build-fuzz"}
jobs=${JOBS:-2}
"$root/scripts/install-deps.sh" --with-fuzz
cc=${CC:-$(command -v clang-14 || command -v clang || true)}
[ -n "$cc" ] || { echo "fuzz.sh: clang not found (apt-get install clang)"; exit 1; }
harnesses=${FUZZ_HARNESSES:-"fuzz_config fuzz_csv fuzz_libsvm fuzz_idx fuzz_h5data fuzz_h5model"}

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DXT_FUZZ=ON -DXT_SANITIZE=ON -DXT_WERROR=OFF >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target xentrain xt_mkfixtures $harnesses >"$build.build.log" 2>&1 \
  || { tail -40 "$build.build.log"; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
# Leaks are reported by libFuzzer per input when detect_leaks=1; HDF5/MPI keep global
# state, so the same narrow suppressions as the test suite apply.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:disable_coredump=1:fast_unwind_on_malloc=0
export LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
out=$build/fuzz-out
rm -rf "$out" && mkdir -p "$out"

# ---- seed corpora ---------------------------------------------------------------------
seeds=$out/seeds
mkdir -p "$seeds"/{fuzz_config,fuzz_csv,fuzz_libsvm,fuzz_idx,fuzz_h5data,fuzz_h5model}
cp "$root"/configs/*.ini "$seeds/fuzz_config/"
printf '[optim]\nlr = 0.1\nmomentum = 0.9\n[model]\ntype = mlp\nhidden = 16,\n  8\n' > "$seeds/fuzz_config/list.ini"
printf 'optim.lr=0.5\n' > "$seeds/fuzz_config/set.txt"
printf '\001a,b,label\n1,2,0\n3.5,-4e3,1\n"5",6,2\n' > "$seeds/fuzz_csv/header.csv"
printf '\000x;y;z\n1;2;cat\n3;4;dog\n' > "$seeds/fuzz_csv/words.csv"
printf '\063label,a,b\n0,1,2\n1,"3,5",4\n' > "$seeds/fuzz_csv/quoted.csv"
printf '\000+1 1:0.5 3:2\n-1 2:1e-3 # comment\n+1 qid:3 1:1\n' > "$seeds/fuzz_libsvm/a.svm"
printf '\003 0 0:1 5:2\n 2 1:3\n' > "$seeds/fuzz_libsvm/zero.svm"
printf '\000\000\000\010\003\000\000\000\003\000\000\000\002\000\000\000\002\001\002\003\004\005\006\007\010\011\012\013\014' > "$seeds/fuzz_idx/images"
printf '\001\000\000\010\001\000\000\000\003\000\001\002' > "$seeds/fuzz_idx/labels"
fx=$out/fixtures
mkdir -p "$fx"
"$build/tests/xt_mkfixtures" "$fx" >/dev/null 2>&1
for f in d_good d_nan d_softbad d_label64 d_scale d_x1d; do cp "$fx/$f.h5" "$seeds/fuzz_h5data/"; done
for f in m_good m_newer m_wshape c_newer; do cp "$fx/$f.h5" "$seeds/fuzz_h5model/"; done
printf '[data]\ntrain = %s/d_good.h5\nval = %s/d_good.h5:/val\nnormalize = standardize\n[train]\nepochs = 1\nprogress = false\n[run]\ndir = %s/run\n' \
  "$fx" "$fx" "$fx" > "$fx/seed.ini"
if "$build/xentrain" train "$fx/seed.ini" >/dev/null 2>&1; then
  cp "$fx/run/model.h5" "$seeds/fuzz_h5model/trained_model.h5"
  cp "$fx/run/checkpoint.h5" "$seeds/fuzz_h5model/trained_checkpoint.h5"
fi

# ---- regressions first: every input that once crashed must pass -------------------------
status=0
for h in $harnesses; do
  reg=$root/tests/fuzz/regressions/$h
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    if "$build/tests/$h" -close_fd_mask=3 "$reg"/* >"$out/$h.regress.log" 2>&1; then
      echo "fuzz: $h: $(ls "$reg" | wc -l) regression inputs pass"
    else
      echo "fuzz: $h: a regression input FAILS (see $out/$h.regress.log)"; status=1
    fi
  fi
done

# ---- bounded runs, $jobs at a time --------------------------------------------------------
# HDF5 1.10.8 itself is not memory-safe on corrupt files (seen within seconds: an
# overlapping memcpy in H5HG_read when reading a variable-length string attribute). The
# HDF5 harnesses therefore run in fork mode and keep going after a crash; afterwards each
# reproducer is replayed and classified: a report whose first non-interceptor frame is in
# libhdf5 is counted as an HDF5 bug (printed, not fatal); any other crash is ours and fails.
run_one() {
  local h=$1 extra=()
  mkdir -p "$out/$h/corpus"
  case $h in
    fuzz_h5*) extra=(-fork=1 -ignore_crashes=1 -ignore_ooms=0 -ignore_timeouts=1 -timeout=5)
              export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan-fuzz.supp:print_suppressions=0 ;;
  esac
  (cd "$out/$h" && timeout -k 10 $((secs + 60)) "$build/tests/$h" -max_total_time="$secs" \
     -close_fd_mask=3 -rss_limit_mb=4096 -malloc_limit_mb=2048 -max_len=65536 -timeout=20 \
     -print_final_stats=1 -seed="${FUZZ_SEED:-0}" "${extra[@]}" corpus "$seeds/$h" >"$out/$h.log" 2>&1)
}
# where FILE's report starts: "hdf5" (first frame with a known module is in libhdf5),
# "ours" (in src/ or tests/), or "none" (does not reproduce when replayed alone)
classify() {
  local h=$1 file=$2 c
  c=$(LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan-fuzz.supp:print_suppressions=0 \
    timeout 60 "$build/tests/$h" -timeout=5 "$file" 2>&1 | awk '/^ +#[0-9]+ / {
      if (/libhdf5/) { print "hdf5"; exit } if (/\/src\/[a-z_0-9]+\.c:|\/tests\/fuzz\/[a-z_0-9]+\.c:/) { print "ours"; exit } }')
  echo "${c:-none}"
}
pids=()
names=()
for h in $harnesses; do
  run_one "$h" & pids+=($!); names+=("$h")
  if [ "${#pids[@]}" -ge "$jobs" ]; then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
wait || true
total=0
for h in $harnesses; do
  # plain mode: "stat::number_of_executed_units: N"; fork mode: "#N DONE ... exec/s"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$h.log" | grep -o '[0-9]*$' | tail -1 || true)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$out/$h.log" | tr -d '#' | sort -n | tail -1 || true)
  crashes=0 hdf5=0
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    case $(classify "$h" "$f") in
      hdf5) hdf5=$((hdf5 + 1)) ;;
      none) echo "fuzz: $h: $f does not reproduce alone (fork-mode state of HDF5?); kept" ;;
      *) crashes=$((crashes + 1)); echo "fuzz: $h: crash in our code: $f" ;;
    esac
  done < <(find "$out/$h" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
  [ "$hdf5" -gt 0 ] && echo "fuzz: $h: $hdf5 reproducers crash inside libhdf5 1.10.8 itself (not ours; kept in $out/$h)"
  case $h in fuzz_h5*) logbad=0 ;; *) logbad=$(grep -c 'ERROR: \(libFuzzer\|AddressSanitizer\|LeakSanitizer\)\|runtime error:' "$out/$h.log" || true) ;; esac
  if [ -z "$execs" ] || [ "$crashes" -gt 0 ] || [ "$logbad" -gt 0 ]; then
    echo "fuzz: $h: FAILED after ${execs:-?} executions ($crashes reproducers in $out/$h; log $out/$h.log)"
    grep -m3 'ERROR\|runtime error' "$out/$h.log" | sed 's/^/    /' || true
    status=1
  else
    echo "fuzz: $h: $execs executions in $secs s, no crash ($(ls "$out/$h/corpus" | wc -l) corpus entries)"
    total=$((total + execs))
  fi
done
echo "fuzz: total $total executions"
exit $status
