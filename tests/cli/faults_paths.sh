#!/usr/bin/env bash
# Long paths (issue 32 item 2): a run.dir and data paths of 1,000 characters (ten nested
# directories, each name under NAME_MAX) train, checkpoint and RESUME (the configuration
# stored in checkpoint.h5 and config.ini reads back), in a user's config file on one line,
# streamed or in memory, at P = 2 (MPI-IO opens), with the test split, eval and predict.
# Usage: faults_paths.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"

# $tmp/ + ten components of 99 characters: the data directory is over 1,000 characters
long=$tmp
for i in 0 1 2 3 4 5 6 7 8 9; do long="$long/d$i$(printf '%097d' 0 | tr 0 x)"; done
mkdir -p "$long" || exit 1
run="$long/run"
"$bin" gen blobs --rows 3000 --features 12 --classes 3 --seed 4 --out "$long/data.h5" >/dev/null || exit 1
echo "note - data directory: ${#long} characters, run.dir ${#run}"

# a user's config with the long values on one line each (one with an inline comment)
cat > c.ini <<INI
[data]
train = $long/data.h5:/train   ; the cluster's project space
val = $long/data.h5:/val
test = $long/data.h5:/test
[model]
type = mlp
hidden = 16
[optim]
momentum = 0.9
[train]
epochs = 4
batch_size = 32
progress = false
[run]
dir = $run
INI

xt 2 train c.ini --set run.dir=straight >straight.log 2>&1 || fail "a straight run (short run.dir) from the long data path"
xt 2 train c.ini --set train.epochs=2 >a.log 2>&1
code=$?
if [ "$code" -eq 0 ] && [ -s "$run/checkpoint.h5" ]; then pass "2 epochs into the long run.dir (exit 0)"
else fail "2 epochs into the long run.dir: exit $code"; grep -v '^\[' a.log | tail -3 | cut -c1-300; fi
xt 2 train c.ini >b.log 2>&1
code=$?
if [ "$code" -eq 0 ] && grep -q "resume: $run/checkpoint.h5, epoch 3 step 0" b.log &&
   cmp -s <(metrics_core straight/metrics.csv) <(metrics_core "$run/metrics.csv") &&
   h5diff straight/model.h5 "$run/model.h5" >/dev/null; then
  pass "resumed to 4 epochs from the long run.dir: the straight run's metrics and model.h5"
else fail "resume from the long run.dir: exit $code"; grep -v '^\[' b.log | tail -3 | cut -c1-300; fi
if grep -q "test loss" b.log || grep -q -- "---- test split ----" b.log; then pass "the test split at the long path was evaluated"
else fail "no test evaluation"; fi

# what was written reads back: the run's own config.ini as a config, and streamed data
xt 2 train "$run/config.ini" --set run.dir=again --set data.stream=true >c.log 2>&1
code=$?
if [ "$code" -eq 0 ] && h5diff straight/model.h5 again/model.h5 >/dev/null; then
  pass "the run's config.ini (1,000-character values) is a valid config; streamed from the long path: the same model"
else fail "config.ini of the long run: exit $code"; grep -v '^\[' c.log | tail -3 | cut -c1-300; fi

# eval and predict: the model, the data and the output at the long path, on 2 ranks
xt 2 eval --model "$run/model.h5" --data "$long/data.h5:/test" >e.log 2>&1
code=$?
xt 2 predict --model "$run/model.h5" --data "$long/data.h5:/test" --out "$long/pred.h5" >p.log 2>&1
pcode=$?
if [ "$code" -eq 0 ] && [ "$pcode" -eq 0 ] && grep -q accuracy e.log && [ -s "$long/pred.h5" ]; then
  pass "eval and predict with the model, data and output at the long path"
else fail "eval (exit $code) / predict (exit $pcode) at the long path"; tail -2 e.log p.log | cut -c1-300; fi

finish
