#!/usr/bin/env bash
# The full-batch solvers (issue 28) against scikit-learn and LIBLINEAR, side by side in ONE
# run, REPS times interleaved, medians reported: passes over the data and seconds to reach
# the objective scikit-learn's LogisticRegression (lbfgs, its default tol 1e-4, max_iter
# raised so that its tolerance, not the cap, ends it) stops at, and to each tool's own stop.
#   fm2   Fashion-MNIST T-shirt vs shirt (10 800 rows, 784 pixels / 255, float32): binary
#         logistic regression; scikit-learn lbfgs (1 and 2 BLAS threads), liblinear-train
#         -s 0 (Debian's liblinear-tools: trust-region Newton, one thread; its default -e
#         0.01 and -e 0.0001), xentrain lbfgs and newton at P = 1 and 2;
#   fm10  the first 12 000 training rows, 10 classes: softmax regression; scikit-learn lbfgs and
#         xentrain (LIBLINEAR's -s 0 is one-vs-rest for several classes: another objective).
# C = 1 everywhere (scikit-learn's default); xentrain's objective is scikit-learn's divided
# by C n (docs/solvers.md). LIBLINEAR penalises its bias feature (-B 1), so its optimum
# differs slightly: its solution is evaluated in xentrain's objective. Seconds are training
# seconds: scikit-learn's fit(), xentrain's epochs (metrics.csv epoch_s; start-up and data
# loading excluded), LIBLINEAR's wall time minus that of a run stopped at its first check
# (-e 1e9: reading the text file and one evaluation). A solver "reaches" scikit-learn's
# objective F* at the first iteration whose objective is <= F* (1 + 1e-8), the precision
# of an objective evaluated from float32 logits. One BLAS thread per rank.
# Usage: bench/solver.sh [REPS] [OUT_DIR]      (defaults: 3, bench/out)
# Writes OUT_DIR/solver-raw.csv and OUT_DIR/solver.md (the table, with the date).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=${1:-3}
out=${2:-"$root/bench/out"}
mkdir -p "$out"
cd "$root"
scripts/install-deps.sh --with-data --with-tools --with-bench
BUILD_TYPE=Release scripts/build.sh "$root/build-release" >/dev/null
bin="$root/build-release/xentrain"
data="$root/data/fashion-mnist.h5"
scripts/prepare-fashion-mnist.sh "$bin" "$data" >/dev/null
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$py bench/solver_ref.py prep "$data" "$tmp"
: > "$tmp/empty.ini"
C=1
raw="$out/solver-raw.csv"
echo "rep,data,tool,P,metric,value" > "$raw"
emit() { echo "$1,$2,$3,$4,$5,$6" >> "$raw"; }
declare -A target

sk_run() { # rep set threads
  local fit nfev f
  read -r fit nfev f < <($py bench/solver_ref.py sklearn "$tmp/$2.h5" $C "$3")
  local tool="scikit-learn lbfgs"
  [ "$3" -gt 1 ] && tool="scikit-learn lbfgs ($3 BLAS threads)"  # no comma: a CSV field
  for m in "passes $nfev" "seconds $fit" "objective $f"; do emit "$1" "$2" "$tool" 1 $m; done
  # the one-thread run defines the target; another reaches it only if its objective does
  if [ "$3" -eq 1 ] || awk -v f="$f" -v t="${target[$2]}" 'BEGIN { exit !(f <= t * (1 + 1e-8)) }'; then
    emit "$1" "$2" "$tool" 1 passes_to_target "$nfev"
    emit "$1" "$2" "$tool" 1 seconds_to_target "$fit"
  fi
  [ "$3" -eq 1 ] && target[$2]=$f # the target: the one-thread run's objective
  return 0
}

ll_run() { # rep eps
  local t0 t1 passes f
  t0=$( { /usr/bin/time -f %e liblinear-train -s 0 -c $C -B 1 -e 1e9 "$tmp/fm2.svm" "$tmp/ll0.model" >/dev/null; } 2>&1 | tail -1)
  t1=$( { /usr/bin/time -f %e liblinear-train -s 0 -c $C -B 1 -e "$2" "$tmp/fm2.svm" "$tmp/ll.model" >"$tmp/ll.log"; } 2>&1 | tail -1)
  read -r passes f < <($py bench/solver_ref.py liblinear "$tmp/ll.model" "$tmp/fm2.h5" $C "$tmp/ll.log")
  local tool="liblinear-train -s 0 -e $2" s
  s=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
  for m in "passes $passes" "seconds $s" "objective $f"; do emit "$1" fm2 "$tool" 1 $m; done
  if awk -v f="$f" -v t="${target[fm2]}" 'BEGIN { exit !(f <= t * (1 + 1e-8)) }'; then
    emit "$1" fm2 "$tool" 1 passes_to_target "$passes"
    emit "$1" fm2 "$tool" 1 seconds_to_target "$s"
  fi
}

xt_run() { # rep set opt P
  local dir="$tmp/xt" type=logistic
  [ "$2" = fm10 ] && type=softmax
  rm -rf "$dir"
  scripts/xt-mpirun --bind-to core -np "$4" "$bin" train "$tmp/empty.ini" --set data.train="$tmp/$2.h5" \
    --set data.normalize=none --set model.type=$type --set model.init=zeros \
    --set optim.optimizer="$3" --set optim.C=$C --set checkpoint.every=0 \
    --set train.progress=false --set run.dir="$dir" >"$tmp/xt.log" 2>&1
  # passes and seconds to the target and to the end; the last objective
  awk -F, -v t="${target[$2]}" -v rep="$1" -v d="$2" -v tool="xentrain $3" -v P="$4" '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { s += $c["epoch_s"]; last = $c["objective"]; passes = $c["step"]
      if (!hit && $c["objective"] <= t * (1 + 1e-8)) { hit = 1; hp = passes; hs = s } }
    END { printf "%s,%s,%s,%s,passes,%d\n", rep, d, tool, P, passes
          printf "%s,%s,%s,%s,seconds,%.4f\n", rep, d, tool, P, s
          printf "%s,%s,%s,%s,objective,%.15g\n", rep, d, tool, P, last
          if (hit) { printf "%s,%s,%s,%s,passes_to_target,%d\n", rep, d, tool, P, hp
                     printf "%s,%s,%s,%s,seconds_to_target,%.4f\n", rep, d, tool, P, hs } }' \
    "$dir/metrics.csv" >> "$raw"
  grep -o 'converged.*\|stopped.*' "$tmp/xt.log" | tail -1 | sed "s/^/  $2 $3 P=$4: /"
}

for rep in $(seq 1 "$reps"); do
  echo "bench: repetition $rep of $reps"
  for set in fm2 fm10; do
    sk_run "$rep" $set 1
    sk_run "$rep" $set 2
    if [ $set = fm2 ]; then ll_run "$rep" 0.01; ll_run "$rep" 0.0001; fi
    for opt in lbfgs newton; do
      for np in 1 2; do xt_run "$rep" $set $opt $np; done
    done
  done
done
{
  echo "bench/solver.sh, $(date -u +%Y-%m-%d), $reps repetitions (medians), $(getconf _NPROCESSORS_ONLN) CPUs (nproc would obey OMP_NUM_THREADS), one BLAS thread per rank"
  echo
  $py bench/solver_ref.py summary "$raw"
} | tee "$out/solver.md"
