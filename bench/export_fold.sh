#!/usr/bin/env bash
# Why the ONNX export keeps the normalisation as Sub/Mul nodes instead of folding it into
# the first layer (docs/export.md): the largest difference from `xentrain predict`'s
# probabilities of (a) the exported arithmetic, (x - shift) * mul then the layers, and (b)
# the folded first layer W' = W diag(mul), b' = b - W' shift (computed in float64, stored
# as float32, as a careful exporter would), both evaluated in float32 with numpy on the
# test rows. Two data sets: blobs as generated, and the same rows + 1000 (features with a
# large offset, e.g. sensor readings), both standardised; a softmax model and an MLP each.
# Usage: bench/export_fold.sh XENTRAIN
set -euo pipefail
bin=${1:?usage: bench/export_fold.sh XENTRAIN}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$bin" gen blobs --rows 3000 --features 8 --classes 4 --seed 11 --out plain.h5 >/dev/null
cp plain.h5 offset.h5
/usr/bin/python3 -c 'import h5py
with h5py.File("offset.h5", "a") as f:
    for s in ("train", "val", "test"):
        f[s + "/X"][...] = f[s + "/X"][:] + 1000.0'
printf '[data]\nnormalize = standardize\n[train]\nepochs = 5\nprogress = false\n' >b.ini
for data in plain offset; do
  for model in softmax mlp; do
    hidden=()
    [ $model = mlp ] && hidden=(--set model.hidden=16)
    "$bin" train b.ini --set data.train=$data.h5:/train --set data.val=$data.h5:/val \
      --set model.type=$model "${hidden[@]}" --set run.dir=r_${data}_$model >/dev/null
    "$bin" predict --model r_${data}_$model/model.h5 --data $data.h5:/test \
      --out p_${data}_$model.h5 >/dev/null
  done
done
echo "date: $(date +%F); rows: 300 test rows of 8 features; float32 numpy $(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')"
/usr/bin/python3 - <<'PY'
import h5py, numpy as np

def forward(X, Ws, bs, act, first=None):
    a = X
    for l, (W, b) in enumerate(zip(Ws, bs)):
        if l == 0 and first is not None:
            W, b = first
        z = (a @ W.T + b).astype(np.float32)
        a = act(z) if l < len(Ws) - 1 else z
    z = a.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

print(f"{'data':8} {'model':8} {'Sub/Mul nodes':>14} {'folded':>10}   shift range")
for data in ("plain", "offset"):
    for model in ("softmax", "mlp"):
        with h5py.File(f"r_{data}_{model}/model.h5", "r") as f:
            g = f["model"]
            L = len(g.attrs["layer_sizes"]) - 1
            Ws = [g[f"layer{l}/W"][:] for l in range(1, L + 1)]
            bs = [g[f"layer{l}/b"][:] for l in range(1, L + 1)]
            shift, mul = g["normalization/shift"][:], g["normalization/mul"][:]
        with h5py.File(f"{data}.h5", "r") as f:
            X = f["test/X"][:].astype(np.float32)
        with h5py.File(f"p_{data}_{model}.h5", "r") as f:
            want = f["probabilities"][:].astype(np.float64)
        relu = lambda z: np.maximum(z, np.float32(0))
        nodes = forward(((X - shift) * mul).astype(np.float32), Ws, bs, relu)
        W1 = Ws[0].astype(np.float64) * mul.astype(np.float64)[None, :]
        b1 = bs[0].astype(np.float64) - W1 @ shift.astype(np.float64)
        folded = forward(X, Ws, bs, relu, (W1.astype(np.float32), b1.astype(np.float32)))
        print(f"{data:8} {model:8} {np.abs(nodes - want).max():14.3g} "
              f"{np.abs(folded - want).max():10.3g}   [{shift.min():.4g}, {shift.max():.4g}]")
PY
