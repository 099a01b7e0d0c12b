#!/usr/bin/env bash
# xentrain gen writes in blocks of about 64 MiB (files larger than memory):
#  - the same options give the same file, byte for byte, also across blocks;
#  - a file of several blocks holds the same rows as the start of a longer one (the
#    stream is cut into blocks, not changed by them), for contiguous and gzip storage;
#  - --dtype uint8 stores round(16 x + 128) clamped, with an encoding attribute, and trains;
#  - bad --dtype is refused.
# Usage: gen.sh XENTRAIN SCRATCH_DIR MPIEXEC
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"

# 100 000 x 200 float32 = 76 MiB: two blocks of 83 886 rows
big="spirals --rows 100000 --features 200 --val-fraction 0 --test-fraction 0.02 --seed 4"
"$bin" gen $big --out a.h5 >a.log 2>&1 && "$bin" gen $big --out b.h5 >b.log 2>&1
if [ -s a.h5 ] && cmp -s a.h5 b.h5; then pass "gen over two blocks: the same file twice, byte for byte"
else fail "gen is not deterministic over blocks"; fi
"$bin" gen spirals --rows 120000 --features 200 --val-fraction 0 --test-fraction 0 --seed 4 \
  --gzip 1 --out c.h5 >c.log 2>&1
if /usr/bin/python3 - <<'PY'
import h5py, numpy as np, sys
a, c = h5py.File("a.h5", "r"), h5py.File("c.h5", "r")
n = a["train/X"].shape[0]          # 98 000 rows: two blocks in both files
ok = (np.array_equal(a["train/X"][:], c["train/X"][:n]) and
      np.array_equal(a["train/y"][:], c["train/y"][:n]) and
      np.array_equal(a["test/X"][:], c["train/X"][n:n + a["test/X"].shape[0]]))
sys.exit(0 if ok else 1)
PY
then pass "a 100 000-row file (contiguous) is the first rows of a 120 000-row one (gzip): blocks do not change the stream"
else fail "rows differ between files of different lengths"; fi

"$bin" gen blobs --rows 3000 --features 6 --noise 0.3 --seed 2 --out f.h5 >/dev/null
"$bin" gen blobs --rows 3000 --features 6 --noise 0.3 --seed 2 --dtype uint8 --out u.h5 >u.log 2>&1
if /usr/bin/python3 - <<'PY'
import h5py, numpy as np, sys
f, u = h5py.File("f.h5", "r"), h5py.File("u.h5", "r")
x = f["train/X"][:].astype(np.float64)
q = np.clip(np.rint(16 * x + 128), 0, 255).astype(np.uint8)
ok = (u["train/X"].dtype == np.uint8 and np.array_equal(q, u["train/X"][:]) and
      np.array_equal(f["train/y"][:], u["train/y"][:]) and "encoding" in u["train/X"].attrs)
sys.exit(0 if ok else 1)
PY
then pass "--dtype uint8: X = round(16 x + 128) clamped, same labels, encoding attribute"
else fail "--dtype uint8 does not store what it says"; fi
write_ini u.ini data.train=u.h5:/train data.val=u.h5:/val train.epochs=3 train.progress=false
"$bin" train u.ini --set run.dir=ru >ru.log 2>&1
acc=$(awk -F, 'END { print $4 }' ru/metrics.csv 2>/dev/null)
if grep -q "standardised" ru.log && awk -v a="${acc:-0}" 'BEGIN { exit !(a > 0.9) }'; then
  pass "a uint8 gen file trains (standardised: no scale attribute; val accuracy $acc)"
else fail "training on the uint8 file: accuracy '$acc'"; tail -3 ru.log; fi

"$bin" gen blobs --dtype int16 --out x.h5 >x.log 2>&1
code=$?
if [ $code -eq 2 ] && grep -q "expected float32 or uint8" x.log && [ ! -e x.h5 ]; then
  pass "--dtype int16 refused (exit 2), no file"
else fail "--dtype int16: exit $code"; fi
finish
