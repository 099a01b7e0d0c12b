#!/usr/bin/env bash
# Streaming CSR splits (issue 27 item 6, docs/sparse.md, docs/streaming.md): a CSR split read
# from the file as training goes gives the in-memory run's results bit for bit.
#  - SGD softmax (data.normalize = auto: the max-abs scale from the streamed rows) and a
#    multi-label model ((N, K) targets), with data.stream = true and with data.stream = auto
#    and a data.memory_budget that forces windows smaller than an epoch: model.h5 and the
#    metrics' losses identical to the in-memory run at P = 1 and 2; the banner says how the
#    rows are held and why;
#  - newton and lbfgs (every row in file order each pass, read in ranges) likewise, P = 1, 2;
#  - train.reproducible (CSR densified per micro-batch) streamed = in memory at P = 2;
#  - eval and predict with a --memory-budget that streams the split print and write what they
#    do in memory;
#  - a budget too small for one step is refused with the sufficient data.memory_budget named,
#    and that budget runs;
#  - bad CSR streamed (a column index out of range in the last rows of rank 1, a NaN, a
#    duplicate column, indptr decreasing) is refused on every rank with the row named, exit 2.
# The file holds rows whose columns are stored unsorted (sorted on read, both ways).
# Usage: sparse_stream.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"

# 700 rows (600 train, 100 val) x 300 features, 1-15 non-zeros per row (long-tailed columns),
# 4 classes and 3 labels from a sparse linear model; every 7th row's columns stored reversed.
/usr/bin/python3 - <<'PY' || exit 1
import h5py, numpy as np, scipy.sparse as sp
rng = np.random.default_rng(5)
N, D = 700, 300
p = 1.0 / np.arange(1, D + 1) ** 1.1; p /= p.sum()
rows, cols, vals = [], [], []
for i in range(N):
    c = np.unique(rng.choice(D, size=rng.integers(1, 16), p=p))
    rows += [i] * len(c); cols += list(c); vals += list(rng.normal(0, 1.5, len(c)))
X = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(N, D))
S = X @ rng.normal(0, 1, (D, 4))
y = S.argmax(1).astype(np.int32); t = (S[:, :3] > 0.3).astype(np.float32)
def csr(f, g, m, ix=None, data=None, ip=None):
    x = f.create_group(g + "/X")
    x.attrs["encoding-type"] = "csr_matrix"; x.attrs["encoding-version"] = "0.1.0"
    x.attrs["shape"] = np.array(m.shape, np.int64)
    ix = m.indices.astype(np.int32) if ix is None else ix
    data = m.data.astype(np.float32) if data is None else data
    ip = m.indptr.astype(np.int32) if ip is None else ip
    for i in range(0, m.shape[0], 7):  # unsorted columns: the same matrix
        a, b = ip[i], ip[i + 1]; ix[a:b] = ix[a:b][::-1].copy(); data[a:b] = data[a:b][::-1].copy()
    x["indices"] = ix; x["data"] = data; x["indptr"] = ip
with h5py.File("s.h5ad", "w") as f:
    for g, lo, hi in (("train", 0, 600), ("val", 600, 700)):
        csr(f, g, X[lo:hi]); f[g + "/y"] = y[lo:hi]; f[g + "/t"] = t[lo:hi]
    m = X[:600]; ip = m.indptr.astype(np.int32)
    def bad(name, ix=None, data=None, ip=None):
        csr(f, name, m, ix, data, ip); f[name + "/y"] = y[:600]
    ix = m.indices.astype(np.int32); ix[ip[599]] = 300; bad("range", ix=ix)        # row 599
    v = m.data.astype(np.float32); v[ip[550]] = np.nan; bad("nan", data=v)           # row 550
    r = next(i for i in range(580, 600) if i % 7 and ip[i + 1] - ip[i] >= 2)
    ix = m.indices.astype(np.int32); ix[ip[r] + 1] = ix[ip[r]]; bad("dup", ix=ix)    # row r
    q = ip.copy(); q[500] = q[499] - 1; bad("indptr", ip=q)                         # row 499
    f.attrs["dup_row"] = r
PY

write_ini c.ini data.train=s.h5ad:/train data.val=s.h5ad:/val data.normalize=auto \
  model.type=softmax optim.lr=0.1 optim.momentum=0.9 train.epochs=3 train.batch_size=64 \
  train.seed=3 train.progress=false
write_ini s.ini data.train=s.h5ad:/train data.val=s.h5ad:/val data.normalize=auto \
  model.type=softmax train.epochs=6 train.progress=false
# a budget that streams and holds a few steps per window (the rows need about 40 KiB a rank
# at P = 1 and 20 KiB at P = 2; a step needs 28 and 18 KiB with the stream's buffers)
budget() { [ "$1" = 1 ] && echo 32K || echo 19K; }

# same_run A B: model.h5 byte for byte in its datasets and metrics.csv's loss and accuracy
# columns as text
same_run() { same_h5 "$1/model.h5" "$2/model.h5" >/dev/null && cmp -s <(metrics_core "$1/metrics.csv") <(metrics_core "$2/metrics.csv"); }

# SGD: softmax and multilabel, streamed two ways, against in memory
for name in softmax multilabel; do
  set --
  [ $name = multilabel ] && set -- --set model.type=multilabel \
    --set data.train=s.h5ad:/train?y=t --set data.val=s.h5ad:/val?y=t
  bad=""
  for np in 1 2; do
    xt $np train c.ini --set run.dir=$name.mem.$np "$@" >$name.mem.$np.log 2>&1 || bad="$bad mem@$np"
    xt $np train c.ini --set run.dir=$name.true.$np --set data.stream=true "$@" \
      >$name.true.$np.log 2>&1 || bad="$bad true@$np"
    xt $np train c.ini --set run.dir=$name.auto.$np --set data.stream=auto \
      --set data.memory_budget=$(budget $np) "$@" >$name.auto.$np.log 2>&1 || bad="$bad auto@$np"
    grep -q "training rows in memory" $name.mem.$np.log || bad="$bad not-in-memory@$np"
    grep -q "training rows streamed from the file (CSR: the indptr slice .*every held row.*(data.stream = true" \
      $name.true.$np.log || bad="$bad banner-true@$np"
    grep -q "training rows streamed from the file (CSR: .*at least [0-9]* whole step.*data.stream = auto: the rows do not fit the budget (CSR: [0-9.]* non-zeros a row" \
      $name.auto.$np.log || bad="$bad banner-auto@$np"
    same_run $name.mem.$np $name.true.$np || bad="$bad true-differs@$np"
    same_run $name.mem.$np $name.auto.$np || bad="$bad auto-differs@$np"
  done
  if [ -z "$bad" ] && [ "$(wc -l < $name.auto.2/metrics.csv)" -eq 4 ]; then
    pass "$name SGD streamed (data.stream = true; auto with windows of a few steps) = in memory, bit for bit, at P = 1 and 2"
  else fail "$name SGD streamed:$bad"; tail -3 $name.auto.2.log; fi
done
grep -q "features divided by their column's max |x|" softmax.auto.2.log ||
  fail "softmax: data.normalize = auto did not pick max-abs"

# the full-batch solvers: every row in file order, read in ranges (train.accumulate = 3: three
# ranges a pass)
bad=""
for o in newton lbfgs; do
  for np in 1 2; do
    set -- --set optim.optimizer=$o --set train.accumulate=3
    xt $np train s.ini --set run.dir=$o.mem.$np "$@" >$o.mem.$np.log 2>&1 || bad="$bad $o:mem@$np"
    xt $np train s.ini --set run.dir=$o.st.$np --set data.stream=auto \
      --set data.memory_budget=$(budget $np) "$@" >$o.st.$np.log 2>&1 || bad="$bad $o:st@$np"
    grep -q "training rows streamed from the file (CSR" $o.st.$np.log || bad="$bad $o:in-memory@$np"
    same_run $o.mem.$np $o.st.$np || bad="$bad $o:differs@$np"
  done
done
if [ -z "$bad" ]; then pass "newton and lbfgs on streamed CSR = in memory, bit for bit, at P = 1 and 2"
else fail "solvers streamed:$bad"; tail -3 newton.st.2.log; fi

# reproducible mode (CSR densified per micro-batch): streamed = in memory
xt 2 train c.ini --set run.dir=rep.mem --set train.reproducible=true >rep.mem.log 2>&1
xt 2 train c.ini --set run.dir=rep.st --set train.reproducible=true --set data.stream=true \
  --set data.memory_budget=20K >rep.st.log 2>&1
if same_run rep.mem rep.st && grep -q "streamed from the file (CSR" rep.st.log &&
   grep -q "batches dense (train.reproducible" rep.st.log; then
  pass "train.reproducible (densified batches) streamed = in memory, bit for bit"
else fail "reproducible streamed"; tail -3 rep.st.log; fi

# eval and predict reading the split from the file in blocks
xt 2 eval --model softmax.mem.2/model.h5 --data s.h5ad:/val >ev.mem 2>&1
xt 2 eval --model softmax.mem.2/model.h5 --data s.h5ad:/val --memory-budget 2K >ev.st 2>&1
xt 2 predict --model softmax.mem.2/model.h5 --data s.h5ad:/val --out pm.h5 >pm.log 2>&1
xt 2 predict --model softmax.mem.2/model.h5 --data s.h5ad:/val --out ps.h5 --memory-budget 2K >ps.log 2>&1
if grep -q "accuracy" ev.mem && diff <(grep -v "^memory" ev.st) ev.mem >/dev/null &&
   grep -q "^memory   s.h5ad:/val is read from the file in blocks" ev.st &&
   grep -q "^memory   s.h5ad:/val is read from the file in blocks" ps.log &&
   same_h5 pm.h5 ps.h5 >/dev/null; then
  pass "eval and predict on a streamed CSR split: the in-memory report and predictions"
else fail "eval/predict streamed"; diff ev.st ev.mem | head -5; fi

# one step that does not fit (15 KiB holds the indptr slice, the block and the orders, not a
# step): refused with the sufficient budget, which then runs
xt 2 train c.ini --set run.dir=small --set data.stream=true --set data.memory_budget=15K >small.log 2>&1
rc=$?
enough=$(sed -n 's/.*need data.memory_budget = \([0-9]*\) .*/\1/p' small.log | head -1)
if [ $rc -eq 2 ] && [ -n "$enough" ] && grep -q "too small to stream the training rows (CSR): one step of" small.log &&
   xt 2 train c.ini --set run.dir=enough --set data.stream=true --set data.memory_budget=$enough >enough.log 2>&1 &&
   same_run softmax.mem.2 enough; then
  pass "15 KiB for one step: refused (exit 2) naming data.memory_budget = $enough, which runs (= in memory)"
else fail "budget refusal: exit $rc, enough '$enough'"; tail -3 small.log enough.log; fi

# bad CSR streamed: every rank stops, the row named (rank 1 holds rows 300-599 at P = 2)
dup=$(/usr/bin/python3 -c 'import h5py; print(h5py.File("s.h5ad")["/"].attrs["dup_row"])')
declare -A want=(
  [range]="s.h5ad:/range/X/indices: row 599: column index 300 is outside \[0, 300)"
  [nan]="s.h5ad:/nan/X: row 550, column [0-9]*: non-finite value NaN"
  [dup]="s.h5ad:/dup/X: row $dup: column [0-9]* appears twice"
  [indptr]="s.h5ad:/indptr/X/indptr: indptr\[500\] = [0-9]* is less than the row before it"
)
bad=""
for g in range nan dup indptr; do
  xt 2 train c.ini --set run.dir=bad.$g --set data.train=s.h5ad:/$g --set data.val= \
    --set data.stream=true --set data.memory_budget=20K >bad.$g.log 2>&1
  rc=$?
  [ $rc -eq 2 ] && grep -q "${want[$g]}" bad.$g.log && [ ! -e bad.$g/model.h5 ] || bad="$bad $g(exit $rc)"
done
if [ -z "$bad" ]; then pass "bad CSR streamed (index out of range, NaN, duplicate, indptr) refused: exit 2, row named"
else fail "bad CSR streamed:$bad"; tail -2 bad.range.log; fi

finish
