#!/usr/bin/env bash
# xentrain export (docs/export.md), for every model kind (logistic, softmax, multilabel, mlp
# with relu/tanh/sigmoid hidden layers and softmax/sigmoid heads): train a small model, export
# ONNX and safetensors, then
#  - onnx.checker (python3-onnx, full check), opset, inputs, outputs and metadata;
#  - the Node.js program of docs/export.md, run in ONNX Runtime for Node (onnxruntime-node,
#    pinned; npm installs it into the build directory on the first run), and the PyTorch
#    program of docs/export.md (both extracted from the page: the documented code is the
#    tested code) give `xentrain predict`'s probabilities on the test rows within 1e-5;
#  - refusals: exit 2 and a message naming the file for a non-model, an unknown format, a
#    missing option, --out naming the model or a directory, a non-finite normalisation,
#    class names that are not UTF-8; nothing written, an existing output untouched.
# A dependency that is missing or an npm registry that cannot be reached FAILS the test.
# Usage: export.sh XENTRAIN SCRATCH_DIR MPIEXEC
# Environment: XT_NPM_DIR (where onnxruntime-node is installed; default SCRATCH_DIR/../npm).
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "$@"
doc=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/docs/export.md
py=/usr/bin/python3
ort_version=1.30.0 # runs under Debian 12's Node.js 18 and under Node.js 20
npm_dir=${XT_NPM_DIR:-$(dirname "$tmp")/npm}
tol=1e-5

# ---- dependencies: each one missing is a failure, with the command that installs it --------
if ! $py -c 'import onnx, torch, h5py, numpy' 2>py.err; then
  fail "python3-onnx, python3-torch, python3-h5py and python3-numpy are needed: run scripts/install-deps.sh --with-tests"
  cat py.err; finish; exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  fail "node and npm are needed: run scripts/install-deps.sh --with-tests"; finish; exit 1
fi
have=$(node -p "require('$npm_dir/node_modules/onnxruntime-node/package.json').version" 2>/dev/null)
if [ "$have" = "$ort_version" ]; then
  pass "onnxruntime-node@$ort_version already in $npm_dir (node $(node --version))"
else
  # --ignore-scripts: its install script only fetches optional CUDA libraries from outside
  # the npm registry; the CPU runtime is in the package.
  mkdir -p "$npm_dir"
  if timeout -k 5 600 npm install --prefix "$npm_dir" --no-audit --no-fund --ignore-scripts \
       --loglevel=error "onnxruntime-node@$ort_version" >npm.log 2>&1; then
    pass "npm installed onnxruntime-node@$ort_version into $npm_dir (node $(node --version))"
  else
    fail "npm install onnxruntime-node@$ort_version into $npm_dir failed: the npm registry must be reachable (npm config get registry: $(npm config get registry 2>/dev/null)); npm said:"
    tail -15 npm.log; finish; exit 1
  fi
fi
export NODE_PATH=$npm_dir/node_modules

# ---- the documented programs, verbatim ---------------------------------------------------------
snippet() {
  awk -v tag="<!-- export-snippet:$1 -->" '$0 == tag { want = 1; next }
    want && /^```/ { if (on) exit; on = 1; next } on' "$doc"
}
# the programs are shipped in scripts/export/ and shown in docs/export.md: the two must agree
snippet node >run_onnx.js
snippet torch >xentrain_torch.py
if [ -s run_onnx.js ] && [ -s xentrain_torch.py ] &&
   cmp -s run_onnx.js "$root/scripts/export/run_onnx.js" &&
   cmp -s xentrain_torch.py "$root/scripts/export/xentrain_torch.py"; then
  pass "docs/export.md shows scripts/export/run_onnx.js ($(wc -l <run_onnx.js) lines) and xentrain_torch.py ($(wc -l <xentrain_torch.py) lines) verbatim"
else
  fail "docs/export.md's export-snippet:node / export-snippet:torch blocks differ from scripts/export/ (or are missing)"
  finish; exit 1
fi

# ---- one small model of every kind --------------------------------------------------------------
# name | xentrain gen arguments | training settings
cases=(
  "logistic|blobs --classes 2 --features 4|--set model.type=logistic"
  "softmax|blobs --classes 3 --features 5|--set model.type=softmax --set data.normalize=none"
  "multilabel|multilabel --classes 4 --features 6|--set model.type=multilabel"
  "mlp_relu_softmax|spirals --classes 3 --features 3|--set model.type=mlp --set model.hidden=16 --set model.activation=relu"
  "mlp_tanh_softmax|blobs --classes 4 --features 5|--set model.type=mlp --set model.hidden=12,8 --set model.activation=tanh"
  "mlp_sigmoid_sigmoid|multilabel --classes 3 --features 5|--set model.type=mlp --set model.hidden=8 --set model.activation=sigmoid --set model.head=sigmoid"
)
write_ini base.ini train.epochs=4 train.batch_size=32 train.progress=false
names=()
seed=1
for c in "${cases[@]}"; do
  IFS='|' read -r name genargs sets <<<"$c"
  seed=$((seed + 1))
  # shellcheck disable=SC2086 # word splitting of the argument lists is intended
  "$bin" gen $genargs --rows 500 --seed $seed --val-fraction 0.2 --test-fraction 0.2 \
    --out "$name.h5" >"$name.gen.log" 2>&1 || { fail "$name: gen"; cat "$name.gen.log"; continue; }
  if [ "$name" = softmax ]; then # class names that need escaping in JSON, and UTF-8
    $py -c 'import h5py, sys
with h5py.File(sys.argv[1], "a") as f:
    f.attrs["class_names"] = ["setosa", "versi,color \"v\"", "vir\\gin\u00e9ca"]' "$name.h5"
  fi
  # shellcheck disable=SC2086
  if ! "$bin" train base.ini --set data.train="$name.h5:/train" --set data.val="$name.h5:/val" \
         $sets --set run.dir="run_$name" >"$name.train.log" 2>&1 ||
     ! "$bin" predict --model "run_$name/model.h5" --data "$name.h5:/test" --out "$name.pred.h5" \
         >"$name.pred.log" 2>&1; then
    fail "$name: train or predict"; tail -5 "$name".*.log; continue
  fi
  ok=1
  for fmt in onnx safetensors; do
    "$bin" export --model "run_$name/model.h5" --format $fmt --out "$name.$fmt" >"$name.$fmt.log" 2>&1 ||
      { fail "$name: export --format $fmt: exit $?"; cat "$name.$fmt.log"; ok=0; }
  done
  [ $ok = 1 ] && names+=("$name")
done
[ ${#names[@]} -eq ${#cases[@]} ] && pass "trained and exported ${#names[@]} models: ${names[*]}"

# ---- the files themselves: onnx.checker, shapes, metadata; the test rows ------------------------
$py - "${names[@]}" >check.out 2>&1 <<'PY'
import json, struct, sys
import h5py, numpy as np, onnx

def dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

for name in sys.argv[1:]:
    problems = []
    with h5py.File(f"run_{name}/model.h5", "r") as f:
        a = f["model"].attrs
        sizes = [int(s) for s in a["layer_sizes"]]
        mtype = a["model_type"]
        mtype = mtype.decode() if isinstance(mtype, bytes) else str(mtype)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in a["class_names"]] \
            if "class_names" in a else None
    K = 2 if mtype == "logistic" else sizes[-1]
    m = onnx.load(f"{name}.onnx")
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:
        problems.append(f"onnx.checker: {e}")
    if [(o.domain, o.version) for o in m.opset_import] != [("", 13)] or m.ir_version != 7:
        problems.append(f"opset {m.opset_import} ir {m.ir_version}")
    if [(i.name, dims(i)) for i in m.graph.input] != [("features", ["N", sizes[0]])]:
        problems.append(f"inputs {[(i.name, dims(i)) for i in m.graph.input]}")
    want = [("probabilities", ["N", K]), ("logits", ["N", sizes[-1]])]
    if [(o.name, dims(o)) for o in m.graph.output] != want:
        problems.append(f"outputs {[(o.name, dims(o)) for o in m.graph.output]}, want {want}")
    props = {p.key: p.value for p in m.metadata_props}
    if props.get("model_type") != mtype or json.loads(props.get("layer_sizes", "[]")) != sizes:
        problems.append(f"metadata {props}")
    if names is not None and json.loads(props.get("class_names", "null")) != names:
        problems.append(f"ONNX class_names {props.get('class_names')!r}, model.h5 {names}")
    raw = open(f"{name}.safetensors", "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    spans = sorted(t["data_offsets"] for t in header.values())
    if raw[8:9] != b"{" or (8 + n) % 8 or spans[0][0] != 0 or spans[-1][1] != len(raw) - 8 - n \
            or any(p[1] != q[0] for p, q in zip(spans, spans[1:])):
        problems.append(f"safetensors layout: header {n} bytes, spans {spans}, file {len(raw)}")
    layers = {f"{2 * i}.{w}": [sizes[i + 1], sizes[i]] if w == "weight" else [sizes[i + 1]]
              for i in range(len(sizes) - 1) for w in ("weight", "bias")}
    if {k: t["shape"] for k, t in header.items()} != layers:
        problems.append(f"safetensors tensors {header}, want {layers}")
    if not all(isinstance(v, str) for v in meta.values()):
        problems.append("safetensors __metadata__ values must be strings")
    if names is not None and json.loads(meta.get("class_names", "null")) != names:
        problems.append(f"safetensors class_names {meta.get('class_names')!r}")
    with h5py.File(f"{name}.h5", "r") as f:
        X = f["test/X"][:].astype(np.float32)
    np.save(f"{name}.rows.npy", X)
    X.astype("<f4").tofile(f"{name}.rows.f32")
    print(f"{'ok' if not problems else 'FAIL'}|{name}|{X.shape[1]}|" + "; ".join(problems))
PY
[ -s check.out ] || fail "the file checks printed nothing"
while IFS='|' read -r st name d msg; do
  case $st in
    ok) pass "$name: onnx.checker (full), opset 13, features [N, $d], outputs, metadata; safetensors layout and names" ;;
    FAIL) fail "$name: $msg" ;;
    *) fail "file checks: $st $name $d $msg" ;;
  esac
  echo "$name $d" >>dims.txt
done <check.out

# ---- ONNX Runtime (Node.js) and PyTorch, each from docs/export.md -------------------------------
while read -r name d; do
  node run_onnx.js "$name.onnx" "$name.rows.f32" "$d" "$name.ort.f32" >"$name.ort.log" 2>&1 ||
    { fail "$name: ONNX Runtime: exit $?"; cat "$name.ort.log"; }
  $py xentrain_torch.py "$name.safetensors" "$name.rows.npy" "$name.torch.npy" >"$name.torch.log" 2>&1 ||
    { fail "$name: the PyTorch program: exit $?"; cat "$name.torch.log"; }
done <dims.txt

# ---- against predict ---------------------------------------------------------------------------
mapfile -t checked < <(cut -d' ' -f1 dims.txt)
$py - "$tol" "${checked[@]}" >compare.out 2>&1 <<'PY'
import os, sys
import h5py, numpy as np
tol = float(sys.argv[1])
for name in sys.argv[2:]:
    with h5py.File(f"{name}.pred.h5", "r") as f:
        want = f["probabilities"][:]
    # not vacuous: the rows' probabilities differ (a wrong weight would show)
    spread = float(want.std(axis=0).max())
    for what, path in (("ONNX Runtime", f"{name}.ort.f32"), ("PyTorch", f"{name}.torch.npy")):
        if not os.path.exists(path):
            print(f"FAIL|{name}: {what} wrote no probabilities")
            continue
        got = np.load(path) if path.endswith(".npy") else np.fromfile(path, "<f4")
        if got.size != want.size:
            print(f"FAIL|{name}: {what} gave {got.size} probabilities, predict {want.shape}")
            continue
        got = got.reshape(want.shape)
        diff = np.abs(got.astype(np.float64) - want)
        i, k = np.unravel_index(int(diff.argmax()), diff.shape)
        msg = (f"{name}: {what} vs predict on {want.shape[0]} rows x {want.shape[1]}: max abs diff "
               f"{diff.max():.3g} (row {i}, column {k}; tolerance {tol:g}; spread over rows {spread:.2f})")
        print(("ok|" if diff.max() <= tol and spread > 0.05 else "FAIL|") + msg)
PY
while IFS='|' read -r st msg; do
  if [ "$st" = ok ]; then pass "$msg"; else fail "${msg:-$st}"; fi
done <compare.out
[ "$(grep -c '^ok|' compare.out)" -eq $((2 * ${#cases[@]})) ] ||
  fail "expected $((2 * ${#cases[@]})) comparisons with predict, $(grep -c '^ok|' compare.out) passed"

# ---- refusals: exit 2, a message naming what is wrong, nothing written ---------------------------
model=run_softmax/model.h5
echo "precious" >keep.onnx
# refuse EXPECTED_REGEX DESCRIPTION ARGS...: exit 2, the message, keep.onnx untouched, no temp
refuse() {
  local want=$1 what=$2
  shift 2
  "$bin" export "$@" >refuse.log 2>&1
  local code=$?
  if [ $code -eq 2 ] && grep -Eq -- "$want" refuse.log && [ "$(cat keep.onnx)" = precious ] &&
     ! ls ./*.tmp.* >/dev/null 2>&1; then
    pass "refused (exit 2): $what: $(head -1 refuse.log | cut -c1-150)"
  else fail "$what: exit $code, output: $(cat refuse.log)"; fi
}
refuse "softmax.h5: not an xentrain model file" "a data file as --model" \
  --model softmax.h5 --format onnx --out keep.onnx
echo "not hdf5" >text.h5
refuse "text.h5: not an HDF5 file" "a text file as --model" --model text.h5 --format onnx --out keep.onnx
refuse "missing.h5: cannot open" "a missing --model" --model missing.h5 --format safetensors --out keep.onnx
refuse "unknown --format 'tflite' \(expected onnx or safetensors\)" "--format tflite" \
  --model $model --format tflite --out keep.onnx
refuse "--out FILE is required" "no --out" --model $model --format onnx
refuse "--format F is required" "no --format" --model $model --out keep.onnx
refuse "--model M.h5 is required" "no --model" --format onnx --out keep.onnx
cp $model copy.h5
refuse "--out copy.h5 is the model file itself" "--out naming the model" \
  --model copy.h5 --format onnx --out copy.h5
if cmp -s $model copy.h5; then pass "the model file is unchanged after --out named it"
else fail "export damaged the model file it was told to overwrite"; fi
mkdir -p adir
refuse "--out adir is a directory" "--out naming a directory" --model $model --format onnx --out adir
cp run_logistic/model.h5 nan.h5 && $py -c 'import h5py, numpy as np
with h5py.File("nan.h5", "a") as f:
    s = f["model/normalization/shift"]; v = s[:]; v[2] = np.nan; s[...] = v; del s.attrs["crc32"]'
for fmt in onnx safetensors; do # (no checksum: written by another tool; with one it is a mismatch)
  refuse "nan.h5:/model/normalization/shift: value 2 is NaN" "a NaN in the normalisation ($fmt)" \
    --model nan.h5 --format $fmt --out keep.onnx
done
cp run_softmax/model.h5 latin1.h5 && $py -c 'import h5py
with h5py.File("latin1.h5", "a") as f:
    f["model"].attrs["class_names"] = [b"setosa", b"versicolor", b"vir\xe9ginica"]'
refuse "latin1.h5: class_names\[2\] is not valid UTF-8" "class names in Latin-1" \
  --model latin1.h5 --format safetensors --out keep.onnx
"$bin" export --model $model --format onnx --out no/such/dir/m.onnx >nodir.log 2>&1
code=$?
if [ $code -eq 1 ] && grep -q "cannot write no/such/dir/m.onnx.tmp" nodir.log; then
  pass "an unwritable --out: exit 1, the path named"
else fail "unwritable --out: exit $code: $(cat nodir.log)"; fi
if "$bin" export --help >help.log 2>&1 && grep -q "probabilities" help.log &&
   grep -q -- "--format F" help.log; then pass "export --help describes the formats"
else fail "export --help: $(head -3 help.log)"; fi
finish
