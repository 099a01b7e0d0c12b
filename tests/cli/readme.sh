#!/usr/bin/env bash
# What the README and docs/configuration.md claim, checked against the program:
#  - docs/configuration.md's key table is the one the binary prints (no drift);
#  - the README's tutorial (the commands between its tutorial markers) runs as written, from
#    a scratch copy of the repository's scripts, with this build's binary: it converts,
#    trains on 2 ranks, evaluates, predicts and plots, and leaves what the README says.
# Usage: readme.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
bin=$1 tmp=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/tests/lib.sh"
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1

want=$("$bin" --help-config=md)
got=$(awk '/<!-- config-table:begin/ { on = 1; next } /<!-- config-table:end -->/ { on = 0 } on' \
      "$root/docs/configuration.md")
if [ "$want" = "$got" ]; then pass "docs/configuration.md's key table matches xentrain --help-config=md"
else
  fail "docs/configuration.md's key table is stale: run scripts/update-config-doc.sh"
  diff <(echo "$want") <(echo "$got") | head -20
fi

# The tutorial: its shell block, with build/xentrain standing for this build's binary (and
# Debian's python3 first in PATH, as on the machines the README is for).
awk '/<!-- tutorial:begin/ { on = 1; next } /<!-- tutorial:end -->/ { on = 0 } on' "$root/README.md" |
  sed -e '/^```/d' > "$tmp/tutorial.sh"
mkdir -p "$tmp/repo/build" && cp -r "$root/scripts" "$tmp/repo/" && ln -s "$bin" "$tmp/repo/build/xentrain"
if [ ! -r /usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv ]; then
  fail "the tutorial's CSV is missing (python3-sklearn: scripts/install-deps.sh --with-tests)"
elif (cd "$tmp/repo" && PATH=/usr/bin:$PATH XT_MPIRUN=${XT_MPIRUN:-mpirun} bash -e "$tmp/tutorial.sh") >"$tmp/tutorial.log" 2>&1; then
  run="$tmp/repo/runs/breast_cancer"
  acc=$(sed -n 's/^accuracy *//p' "$tmp/tutorial.log" | tail -1)
  if [ -s "$run/model.h5" ] && [ -s "$run/metrics.csv" ] && [ -s "$run/config.ini" ] &&
     [ -s "$run/checkpoint.h5" ] && [ -s "$run/loss.png" ] && [ -s "$tmp/repo/predictions.csv" ] &&
     [ -s "$tmp/repo/breast_cancer.onnx" ] && [ -s "$tmp/repo/probabilities.npy" ] &&
     awk -v a="$acc" 'BEGIN { exit !(a > 0.9) }'; then
    pass "the README's tutorial runs as written (test accuracy $acc; model, metrics, config, checkpoint, plot, predictions, ONNX, PyTorch probabilities)"
  else
    fail "the README's tutorial ran but left something out (accuracy '$acc'; see $tmp/tutorial.log)"
    ls "$run" "$tmp/repo"
  fi
else
  fail "the README's tutorial failed (see $tmp/tutorial.log)"; tail -15 "$tmp/tutorial.log"
fi
finish
