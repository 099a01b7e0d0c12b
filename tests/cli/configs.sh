#!/usr/bin/env bash
# Every shipped config runs as documented: its data are made by the command in its
# header comment ("# Data: ..."), it trains for 2 epochs on 2 ranks (the overfitting one
# runs to its early stop), and the overfitting config stops where its patience says,
# keeping the best epoch. Also: eval.distributed gives the same validation curve as
# rank-0 validation.
# Usage: configs.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
XT_TIMEOUT=180
mkdir -p data || exit 1

for cfg in "$root"/configs/*.ini; do
  name=$(basename "$cfg" .ini)
  # the data command: "# Data: xentrain gen ..." possibly continued on "#   ..." lines
  cmd=$(awk '/^# Data:/ { on = 1; sub(/^# Data: */, ""); printf "%s", $0; next }
             on && /^#   / { sub(/^# */, " "); printf "%s", $0; next } { on = 0 }' "$cfg")
  case "$cmd" in
    xentrain\ gen*) eval "\"$bin\" ${cmd#xentrain }" >"$name.gen.log" 2>&1 || { fail "$name: data command failed: $cmd"; continue; } ;;
    scripts/prepare-fashion-mnist.sh*)
      if [ ! -d /usr/share/datasets/fashion-mnist ]; then echo "skip - $name: Fashion-MNIST not installed"; continue; fi
      [ -s data/fashion-mnist.h5 ] || "$root/scripts/prepare-fashion-mnist.sh" "$bin" "$tmp/data/fashion-mnist.h5" >/dev/null ;;
    *) fail "$name: no '# Data:' command in its header"; continue ;;
  esac
  extra=(--set train.epochs=2)
  [ "$name" = overfit-early-stop ] && extra=()
  if xt 2 train "$cfg" --set run.dir="runs/$name" --set train.progress=false "${extra[@]}" >"$name.log" 2>&1; then
    rows=$(($(wc -l < "runs/$name/metrics.csv") - 1))
    test_acc=$(awk '/^accuracy/ { print $2 }' "$name.log")
    pass "$name: trained $rows epochs on 2 ranks${test_acc:+, test accuracy $test_acc}"
  else
    fail "$name: training failed (see $tmp/$name.log)"; tail -3 "$name.log"
  fi
done

# the overfitting config: stop at best epoch + patience, model.h5 = the best epoch
m=runs/overfit-early-stop/metrics.csv
if [ -s "$m" ]; then
  patience=$(awk -F' *= *' '/^patience/ { print $2 }' "$root/configs/overfit-early-stop.ini")
  best=$(awk -F, 'NR > 1 { if (b == "" || $3 < v) { v = $3; b = $1 } } END { print b }' "$m")
  bestv=$(awk -F, -v b="$best" 'NR > 1 && $1 == b { print $3 }' "$m")
  last=$(tail -n 1 "$m" | cut -d, -f1)
  if [ "$last" -eq $((best + patience)) ] && grep -q "early stop after epoch $last" overfit-early-stop.log; then
    pass "overfit-early-stop: validation loss bottomed at epoch $best, stopped at $last (patience $patience)"
  else fail "overfit-early-stop: best $best, last $last, patience $patience"; fi
  if xt 2 eval --model runs/overfit-early-stop/model.h5 --data data/overfit.h5:/val --json ov.json >ov.log 2>&1; then
    got=$(sed -n 's/.*"loss": \([^,]*\),.*/\1/p' ov.json)
    if awk -v a="$got" -v b="$bestv" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d / b < 1e-5) }'; then
      pass "overfit-early-stop: model.h5 on /val gives the best epoch's val_loss ($got)"
    else fail "overfit-early-stop: model.h5 gives $got, best was $bestv"; fi
  else fail "overfit-early-stop: eval failed"; fi
fi

# eval.distributed: the same validation curve as validation on rank 0 alone
if [ -s data/overfit.h5 ]; then
  xt 3 train "$root/configs/overfit-early-stop.ini" --set run.dir=runs/dist --set eval.distributed=true \
    --set train.progress=false >dist.log 2>&1 || fail "eval.distributed run"
  r=$(metrics_maxrel "$m" runs/dist/metrics.csv 3 3)
  if [ "$(wc -l < runs/dist/metrics.csv)" = "$(wc -l < "$m")" ] && awk -v r="$r" 'BEGIN { exit !(r < 1e-5) }'; then
    pass "eval.distributed at P=3: validation losses within $r of rank-0 validation at P=2"
  else fail "eval.distributed: max rel diff $r"; fi
fi

finish
