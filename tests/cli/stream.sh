#!/usr/bin/env bash
# Training data larger than memory (issue 16): data.stream, data.memory_budget, block shuffle.
# Every streamed run is compared with the in-memory run of the same config at the same P
# (data.stream = false, a budget of 1G): byte-identical metrics.csv loss columns and
# identical datasets in model.h5.
#  a. contiguous float32 X, class ids, a 64K budget (a few steps of rows) at P = 1, 2, 3;
#     the closing "stream totals:" line has all its fields;
#  b. chunked uncompressed X; c. gzip + shuffle filter X in chunks that split the columns
#     (64 x 3 of 16 columns, partial chunks at both edges); d. X big-endian float64, y int16,
#     and class ids stored as whole-number floats;
#  e. dense (N, K) targets (multilabel), also with y gzip-chunked; f. uint8 X kept compact:
#     b, c and e at P = 1, 2 and 3, d and f at 1 and 3;
#  g. data.stream = auto: a tiny budget streams (and equals in memory), the default budget
#     keeps the data in memory;
#  h. data.stream = false with a shard over the budget, and a budget too small for one
#     step: refused (exit 2) naming the key, no model.h5;
#  i. the validation split (larger than the budget) streamed too: the same val_loss, with
#     rank-0 and with distributed validation;
#  j. train.reproducible with streaming at P = 1 and 3: the in-memory P = 1 model;
#  k. train.shuffle = block: P = 1, 2, 3 streamed and in memory identical, and not the
#     row-shuffled model (so the comparisons can fail);
#  l. eval and predict with --memory-budget 4K: the same report and predictions as without;
#  m. a filter the streaming reader cannot undo (fletcher32): refused with data.stream =
#     true (exit 2, the filter named), read by HDF5 in memory with data.stream = auto;
#  n. a streamed run signalled mid-epoch resumes (streamed) to the uninterrupted model.
# Skipped (saying so) without python3-h5py.
# Usage: stream.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
XT_TIMEOUT=60
/usr/bin/python3 -c 'import h5py' 2>/dev/null || { echo "SKIP: python3-h5py is needed to write the layouts"; exit 77; }
# the columns that must match: epoch, train_loss, val_loss, val_accuracy, step, lr, val_f1,
# best, train_accuracy
cols() { cut -d, -f1-6,13,18,19 "$1"; }
# same_run A B: metrics columns and model.h5
same_run() { cmp -s <(cols "$1/metrics.csv") <(cols "$2/metrics.csv") && same_h5 "$1/model.h5" "$2/model.h5"; }
# says LOG PATTERN: a line of the log other than the settings dump ("[data] train=...") and
# the stream totals matches PATTERN, case-insensitively
says() { grep -v -E '^ +\[[a-z_]+\]|stream totals:' "$1" | grep -qi -- "$2"; }
streamed() { grep -q 'stream totals: bytes_read=[0-9]' "$1" && says "$1" stream; }
in_memory() { says "$1" "in memory" && ! grep -q 'stream totals:' "$1"; }
# run NAME NP [--set ...]: trains c.ini into run dir NAME (log NAME.log)
run() { local name=$1 np=$2; shift 2; xt "$np" train c.ini --set run.dir="$name" "$@" >"$name.log" 2>&1; }
MEM=(--set data.stream=false --set data.memory_budget=1G)
# pair NAME REF NP BUDGET [--set ...]: the streamed run NAME.NP against the in-memory run
# REF.NP (run first, with the same settings, unless it exists); what went wrong goes to $bad
pair() {
  local name=$1 ref=$2 np=$3 budget=$4; shift 4
  if [ ! -e "$ref.$np/metrics.csv" ]; then
    run "$ref.$np" "$np" "$@" "${MEM[@]}" || { bad="$bad P=$np(in-memory run: exit $?)"; return; }
  fi
  run "$name.$np" "$np" "$@" --set data.stream=true --set data.memory_budget="$budget" ||
    { bad="$bad P=$np(exit $?)"; return; }
  streamed "$name.$np.log" || { bad="$bad P=$np(no 'stream totals' line)"; return; }
  same_run "$ref.$np" "$name.$np" >/dev/null || bad="$bad P=$np(differs)"
}
# verdict TEXT NAME REF NP: pass, or fail with what $bad says and the first differing rows
verdict() {
  if [ -z "$bad" ]; then pass "$1"; return; fi
  fail "$1:$bad"
  diff <(cols "$3.$4/metrics.csv" 2>&1) <(cols "$2.$4/metrics.csv" 2>&1) | head -4
  grep -i 'error' "$2.$4.log" 2>/dev/null | head -2
}

# 6000 rows x 16 float32 features: /train 3600 rows (230 KB), /val 1800 (115 KB), /test 600;
# every budget below is smaller than a rank's shard at P = 1, 2 and 3 and than /val
"$bin" gen spirals --rows 6000 --features 16 --classes 3 --val-fraction 0.3 --test-fraction 0.1 \
  --seed 7 --out d.h5 >/dev/null || exit 1
"$bin" gen spirals --rows 6000 --features 16 --classes 3 --val-fraction 0.3 --test-fraction 0.1 \
  --seed 7 --dtype uint8 --out u8.h5 >/dev/null || exit 1
"$bin" gen multilabel --rows 6000 --features 16 --classes 5 --val-fraction 0.3 --test-fraction 0.1 \
  --seed 7 --out ml.h5 >/dev/null || exit 1
# the same values in other layouts, written by h5py (attributes kept)
/usr/bin/python3 - <<'PY' || { fail "h5py fixtures"; finish; exit 1; }
import shutil, h5py
def rewrite(src, dst, x=None, y=None):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as f:
        for g in ("train", "val", "test"):
            for name, kw in (("X", x), ("y", y)):
                if kw is None:
                    continue
                kw = dict(kw)
                dtype = kw.pop("dtype", None)
                old = f[g][name]
                data, attrs = old[()], dict(old.attrs)
                del f[g][name]
                new = f[g].create_dataset(name, data=data if dtype is None else data.astype(dtype), **kw)
                for k, v in attrs.items():
                    new.attrs[k] = v
rewrite("d.h5", "chunked.h5", x=dict(chunks=(100, 16)))
rewrite("d.h5", "gzip.h5", x=dict(chunks=(64, 3), compression="gzip", shuffle=True))
rewrite("d.h5", "be64.h5", x=dict(dtype=">f8"), y=dict(dtype="i2"))
rewrite("d.h5", "yfloat.h5", y=dict(dtype="f4"))
rewrite("ml.h5", "mlgz.h5", y=dict(chunks=(100, 5), compression="gzip"))
rewrite("d.h5", "fletcher.h5", x=dict(chunks=(100, 16), fletcher32=True))
PY
write_ini c.ini data.train=d.h5:/train data.val=d.h5:/val data.virtual_shards=12 model.type=mlp \
  model.hidden=16,8 optim.lr=0.05 optim.momentum=0.9 train.epochs=3 train.batch_size=96 \
  train.progress=false checkpoint.every=0
on() { echo --set "data.train=$1.h5:/train" --set "data.val=$1.h5:/val"; }
SOFTMAX=(--set model.type=softmax --set model.hidden=)

# a. contiguous float32 X, a 64K budget, P = 1, 2, 3 (mlp.mem.P: the in-memory references)
bad=""
for np in 1 2 3; do pair a mlp.mem "$np" 64K; done
verdict "a. contiguous float32 X, 64K budget: P = 1, 2, 3 streamed identical to in memory (metrics, model.h5)" a mlp.mem 3
tot='stream totals: bytes_read=[0-9]+ bytes_needed=[0-9]+ io_s=[0-9.eE+-]+ wait_s=[0-9.eE+-]+ hidden=[0-9.eE+-]+ amplification=[0-9.eE+-]+'
if grep -Eq "$tot" a.3.log 2>/dev/null && ! grep -Eq 'bytes_(read|needed)=0 ' a.3.log; then
  pass "a. $(grep -Eo "$tot" a.3.log | head -1)"
else fail "a. no complete 'stream totals:' line in a.3.log"; grep 'stream totals' a.3.log; fi

# b-f. other layouts and types (chunked, gzip and (N, K) at P = 1, 2, 3; the others at 1 and
# 3); b, c and e's gzip y hold the same values as
# their contiguous files, so their in-memory references are those files' runs
# shellcheck disable=SC2046
{
bad=""; for np in 1 2 3; do pair b mlp.mem $np 128K $(on chunked); done
verdict "b. chunked X (100 x 16, uncompressed): P = 1, 2, 3 streamed identical to in memory" b mlp.mem 3
bad=""; for np in 1 2 3; do pair c mlp.mem $np 128K $(on gzip); done
verdict "c. gzip + shuffle X in 64 x 3 chunks (columns split, partial edge chunks): P = 1, 2, 3 identical to in memory" c mlp.mem 3
bad=""; for np in 1 3; do pair d d.mem $np 64K $(on be64) "${SOFTMAX[@]}"; done
verdict "d. X big-endian float64, y int16 (softmax): P = 1, 3 streamed identical to in memory" d d.mem 3
bad=""; for np in 1 3; do pair d2 mlp.mem $np 64K $(on yfloat); done
verdict "d. class ids stored as whole-number float32: P = 1, 3 streamed identical to in memory" d2 mlp.mem 3
bad=""
for np in 1 2 3; do
  pair e ml.mem $np 128K $(on ml) --set model.type=multilabel --set model.hidden=
  pair egz ml.mem $np 128K $(on mlgz) --set model.type=multilabel --set model.hidden=
done
verdict "e. dense (N, 5) targets (multilabel), y contiguous and gzip-chunked: P = 1, 2, 3 identical to in memory" e ml.mem 3
bad=""; for np in 1 3; do pair f u8.mem $np 48K $(on u8) "${SOFTMAX[@]}"; done
verdict "f. uint8 X (data.compact), 48K budget: P = 1, 3 streamed identical to in memory" f u8.mem 3
}

# g. data.stream = auto (the default): streams exactly when the shard does not fit
run g.tiny 1 --set data.memory_budget=64K
code=$?
if [ $code -eq 0 ] && streamed g.tiny.log && says g.tiny.log streaming && same_run mlp.mem.1 g.tiny >/dev/null; then
  pass "g. auto with a 64K budget: the banner says streaming; identical to in memory"
else fail "g. auto with a 64K budget: exit $code, or not streamed, or differs"; grep -i 'stream' g.tiny.log | grep -v '^ *\[' | head -3; fi
run g.default 1
code=$?
if [ $code -eq 0 ] && in_memory g.default.log && same_run mlp.mem.1 g.default >/dev/null; then
  pass "g. auto with the default budget: the banner says in memory"
else fail "g. auto with the default budget: exit $code, or not in memory"; grep -i 'memory\|stream' g.default.log | grep -v '^ *\[' | head -3; fi

# h. refusals: exit 2, the key named, no model
run h.false 2 --set data.stream=false --set data.memory_budget=64K
code=$?
if [ $code -eq 2 ] && grep -q "data.stream" h.false.log && [ ! -e h.false/model.h5 ]; then
  pass "h. data.stream = false, shard over a 64K budget (P = 2): refused (exit 2) naming data.stream, no model.h5"
else fail "h. data.stream = false over budget: exit $code"; tail -3 h.false.log; fi
run h.tiny 1 --set data.stream=true --set data.memory_budget=1K
code=$?
if [ $code -eq 2 ] && grep -q "data.memory_budget" h.tiny.log && [ ! -e h.tiny/model.h5 ]; then
  pass "h. a 1K budget (less than one step): refused (exit 2) naming data.memory_budget, no model.h5"
else fail "h. 1K budget: exit $code"; tail -3 h.tiny.log; fi

# i. /val (1800 rows, 115 KB) is larger than the budget: validated in bounded blocks, on
# rank 0 (case a) and sharded over ranks
bad=""
pair i ival.mem 2 64K --set eval.distributed=true
for np in 1 2 3; do
  cmp -s <(cut -d, -f3,4 mlp.mem.$np/metrics.csv) <(cut -d, -f3,4 a.$np/metrics.csv) 2>/dev/null || bad="$bad a.$np(val columns)"
done
verdict "i. validation split over the budget: val_loss and val_accuracy identical (rank 0 at P = 1, 2, 3; distributed at P = 2)" i ival.mem 2

# j. the reproducible mode streamed: P = 1 and 3 give the in-memory P = 1 model
REPRO=(--set train.reproducible=true --set train.micro_batches=6)
bad=""
run repro.mem.1 1 "${REPRO[@]}" "${MEM[@]}" || bad="$bad in-memory(exit $?)"
for np in 1 3; do
  run j.$np $np "${REPRO[@]}" --set data.stream=true --set data.memory_budget=64K || { bad="$bad P=$np(exit $?)"; continue; }
  streamed j.$np.log || bad="$bad P=$np(not streamed)"
  same_run repro.mem.1 j.$np >/dev/null || bad="$bad P=$np(differs)"
done
verdict "j. train.reproducible (6 micro-batches) streamed at P = 1 and 3: identical to in memory at P = 1" j repro.mem 1

# k. block shuffle (blocks of 50 rows; 300 rows per virtual shard): rank-count invariant,
# streamed = in memory, and another trajectory than the row shuffle
BLOCK=("${REPRO[@]}" --set train.shuffle=block --set train.shuffle_block=50)
bad=""
run block.mem.1 1 "${BLOCK[@]}" "${MEM[@]}" || bad="$bad in-memory(exit $?)"
for np in 1 2 3; do
  run k.$np $np "${BLOCK[@]}" --set data.stream=true --set data.memory_budget=64K || { bad="$bad P=$np(exit $?)"; continue; }
  streamed k.$np.log || bad="$bad P=$np(not streamed)"
  same_run block.mem.1 k.$np >/dev/null || bad="$bad P=$np(differs)"
done
verdict "k. train.shuffle = block: P = 1, 2, 3 streamed identical to each other and to in memory" k block.mem 1
if [ -s block.mem.1/model.h5 ] && [ -s repro.mem.1/model.h5 ] && ! same_h5 block.mem.1/model.h5 repro.mem.1/model.h5 >/dev/null &&
   ! cmp -s <(cols block.mem.1/metrics.csv) <(cols repro.mem.1/metrics.csv); then
  pass "k. block shuffle and row shuffle give different models and losses"
else fail "k. block shuffle gave the row shuffle's model (or a run is missing): the comparisons prove nothing"; fi

# l. eval and predict in bounded blocks: the same output as with the split in memory
m=mlp.mem.1/model.h5
# (JSON to files: stdout may carry a line about the blocks)
xt 1 eval --model $m --data d.h5:/test --batch-size 16 --json ev.json >ev.log 2>&1
xt 1 eval --model $m --data d.h5:/test --batch-size 16 --memory-budget 4K --json ev4.json >ev4.log 2>&1
code=$?
if [ $code -eq 0 ] && [ -s ev.json ] && cmp -s ev.json ev4.json; then
  pass "l. eval --memory-budget 4K: byte-identical JSON report"
else fail "l. eval --memory-budget 4K: exit $code, or the report differs"; tail -2 ev4.log; fi
xt 1 predict --model $m --data d.h5:/test --batch-size 16 --out p.h5 >p.log 2>&1
xt 1 predict --model $m --data d.h5:/test --batch-size 16 --memory-budget 4K --out p4.h5 >p4.log 2>&1
code=$?
if [ $code -eq 0 ] && [ -s p.h5 ] && same_h5 p.h5 p4.h5; then
  pass "l. predict --memory-budget 4K: identical predictions"
else fail "l. predict --memory-budget 4K: exit $code, or the predictions differ"; tail -2 p4.log; fi

# n. a streamed run stopped by SIGUSR1 in the middle of epoch 2 (P = 2) checkpoints; resumed
# (streamed, the reader restarting at that step) it ends with the uninterrupted in-memory model
XT_TEST_STEP_DELAY_MS=20 xt 2 train c.ini --set run.dir=n --set data.stream=true \
  --set data.memory_budget=64K >n.log 2>&1 &
job=$!
for _ in $(seq 1 600); do [ -s n/metrics.csv ] && [ "$(wc -l < n/metrics.csv)" -ge 2 ] && break; sleep 0.05; done
sleep 0.2 # into epoch 2
pid=$(rank_pid "run.dir=n" 1)
[ -n "$pid" ] && kill -USR1 "$pid"
wait $job
code=$?
run n 2 --set data.stream=true --set data.memory_budget=64K
code2=$?
where=$(grep -o 'epoch [0-9]* step [0-9]*' n.log | head -1)
if [ "$code" -eq 75 ] && [ "$code2" -eq 0 ] && [ -n "$where" ] && [ "${where##* }" != 0 ] &&
   streamed n.log && same_run mlp.mem.2 n >/dev/null; then
  pass "n. SIGUSR1 mid-epoch in a streamed run (exit 75), resumed from $where: the uninterrupted model"
else fail "n. signal/resume while streaming: exit $code then $code2, resumed from '$where'"; tail -3 n.log; fi

# m. fletcher32: HDF5 undoes it, the streaming reader does not
# shellcheck disable=SC2046
run m.on 1 $(on fletcher) --set data.stream=true --set data.memory_budget=64K
code=$?
if [ $code -eq 2 ] && grep -qi "fletcher32" m.on.log && [ ! -e m.on/model.h5 ]; then
  pass "m. fletcher32-filtered X with data.stream = true: refused (exit 2) naming the filter"
else fail "m. fletcher32 with data.stream = true: exit $code"; tail -3 m.on.log; fi
# shellcheck disable=SC2046
run m.auto 1 $(on fletcher) --set data.memory_budget=1G
code=$?
if [ $code -eq 0 ] && in_memory m.auto.log && same_run mlp.mem.1 m.auto >/dev/null; then
  pass "m. fletcher32-filtered X with data.stream = auto and a large budget: trains in memory (same model)"
else fail "m. fletcher32 with data.stream = auto: exit $code"; tail -3 m.auto.log; fi

finish
