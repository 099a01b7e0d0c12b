#!/usr/bin/env bash
# Every valid configuration trains, validates, evaluates and predicts; every other one is
# refused before any work. The matrix: model type (logistic, softmax, multilabel, mlp with
# a softmax head, mlp with a sigmoid head) x target kind (binary class ids, class ids,
# probability rows, multi-hot rows) x loss option (none, class weights, label smoothing,
# ignore_index, pos_weight), each with train/val/test splits, on P = 1 or 2 ranks and with
# validation on rank 0 or distributed (the four settings rotate over the cases, so each
# appears about equally). A case either
#   - trains (exit 0), writes model.h5 and metrics.csv with a validation column, and then
#     `eval` on /test and `predict` on /test exit 0, or
#   - is refused with exit 2, an error message, and no model.h5 (before any work).
# Any other exit code (a crash, a signal, 1) fails. The closing line counts both kinds.
# Usage: matrix.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
XT_TIMEOUT=60

g="--rows 400 --features 5 --seed 3 --val-fraction 0.25 --test-fraction 0.25"
"$bin" gen blobs --classes 2 $g --out binary.h5 >/dev/null &&
  "$bin" gen blobs --classes 3 $g --out ids.h5 >/dev/null &&
  "$bin" gen blobs --classes 3 --soft --noise 2 $g --out probs.h5 >/dev/null &&
  "$bin" gen multilabel --classes 3 $g --out multihot.h5 >/dev/null || { echo "gen failed"; exit 1; }

write_ini base.ini train.epochs=2

# run_case NAME NP DIST TARGET ARGS...: writes NAME.result (trained, refused, or FAIL ...)
run_case() {
  local name=$1 np=$2 dist=$3 target=$4; shift 4
  local where="P=$np, distributed validation $dist"
  xt $np train base.ini --set data.train=$target.h5:/train --set data.val=$target.h5:/val \
    --set data.test=$target.h5:/test --set data.normalize=standardize \
    --set train.batch_size=32 --set train.progress=false \
    --set eval.distributed=$dist --set run.dir=runs/$name "$@" >$name.log 2>&1
  local code=$?
  if [ $code -eq 0 ]; then
    if [ -s runs/$name/model.h5 ] && [ "$(awk -F, 'NR == 2 { print $3 }' runs/$name/metrics.csv)" != "" ] &&
       xt $np eval --model runs/$name/model.h5 --data $target.h5:/test >$name.eval.log 2>&1 &&
       xt $np predict --model runs/$name/model.h5 --data $target.h5:/test --out $name.pred.h5 >$name.pred.log 2>&1; then
      echo "trained: trained, validated, eval and predict ($where)" >$name.result
    else
      echo "FAIL trained but model.h5, validation, eval or predict failed ($where; see $tmp/$name*.log)" >$name.result
    fi
  elif [ $code -eq 2 ] && grep -q "error" $name.log && [ ! -e runs/$name/model.h5 ]; then
    echo "refused: $(grep -m1 -o 'error: .*' $name.log | cut -c8-160)" >$name.result
  else
    echo "FAIL exit $code ($where; see $tmp/$name.log)" >$name.result
  fi
}

models=("logistic" "softmax" "multilabel" "mlp-softmax" "mlp-sigmoid")
targets=("binary" "ids" "probs" "multihot")
options=("none" "class_weights" "label_smoothing" "ignore_index" "pos_weight")
names=() case=0
for model in "${models[@]}"; do
  for target in "${targets[@]}"; do
    for option in "${options[@]}"; do
      case=$((case + 1))
      np=$(( (case % 2) + 1 ))
      dist=$([ $(( (case / 2) % 2 )) -eq 1 ] && echo true || echo false)
      name="$model.$target.$option"
      k=3; [ "$target" = binary ] && k=2
      args=(--set model.type=${model%%-*})
      case $model in
        mlp-softmax) args+=(--set model.hidden=8 --set model.head=softmax) ;;
        mlp-sigmoid) args+=(--set model.hidden=8 --set model.head=sigmoid) ;;
      esac
      case $option in
        class_weights) args+=(--set loss.class_weights=$([ "$k" = 2 ] && echo "1,2" || echo "1,2,0.5")) ;;
        label_smoothing) args+=(--set loss.label_smoothing=0.1) ;;
        ignore_index) args+=(--set loss.ignore_index=1) ;;
        pos_weight) args+=(--set loss.pos_weight=2) ;;
      esac
      while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done # two cases at a time
      run_case "$name" $np $dist $target "${args[@]}" &
      names+=("$name")
    done
  done
done
wait
trained=0 refused=0
for name in "${names[@]}"; do
  r=$(cat $name.result 2>/dev/null || echo "FAIL no result")
  case $r in
    trained*) trained=$((trained + 1)); pass "$name: ${r#trained: }" ;;
    refused*) refused=$((refused + 1)); pass "$name: $r" ;;
    *) fail "$name: ${r#FAIL }"; tail -3 $name.log ;;
  esac
done
echo "matrix: $case combinations: $trained trained (eval and predict ran on each), $refused refused with exit 2"
[ "$trained" -gt 0 ] && [ "$refused" -gt 0 ] || fail "the matrix should both train and refuse"
finish
