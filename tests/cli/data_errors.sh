#!/bin/bash
# CLI tests of the data subcommands: exit codes and messages of bad input to
# `xentrain gen` and `xentrain convert`, reproducibility of gen, atomic output, the
# same exit code on every rank under MPI, and `convert idx` on the real Fashion-MNIST
# files when Debian's dataset-fashion-mnist is installed.
#
# usage: data_errors.sh XENTRAIN_BINARY SCRATCH_DIR MPIEXEC
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ROOT/tests/lib.sh"
xt_begin "$@"
XT=$bin DIR=$tmp
FASHION=/usr/share/datasets/fashion-mnist
failures=0
cases=0

# check NAME RC PATTERN CMD...: runs CMD, expects exit code RC and PATTERN (an extended
# regex, "" for none) in its stdout+stderr.
check() {
    local name=$1 want_rc=$2 pattern=$3
    shift 3
    cases=$((cases + 1))
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$want_rc" ]; then
        echo "FAIL $name: exit $rc, expected $want_rc"
        echo "$out" | sed 's/^/    /' | head -20
        failures=$((failures + 1))
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out"; then
        echo "FAIL $name: output does not match /$pattern/"
        echo "$out" | sed 's/^/    /' | head -20
        failures=$((failures + 1))
    else
        echo "ok   $name (exit $rc)"
    fi
}

# expect NAME CONDITION-COMMAND...: a plain assertion.
expect() {
    local name=$1
    shift
    cases=$((cases + 1))
    if "$@"; then
        echo "ok   $name"
    else
        echo "FAIL $name"
        failures=$((failures + 1))
    fi
}

# ---- gen ---------------------------------------------------------------------------
check "gen --help" 0 "usage: xentrain gen" "$XT" gen --help
check "gen without a kind" 2 "missing generator" "$XT" gen --out "$DIR/x.h5"
check "gen unknown kind" 2 "unknown generator 'moons'" "$XT" gen moons --out "$DIR/x.h5"
check "gen without --out" 2 "--out F.h5 is required" "$XT" gen blobs
check "gen bad --rows" 2 "--rows 'ten': not an unsigned integer" \
    "$XT" gen blobs --rows ten --out "$DIR/x.h5"
check "gen xor with 3 classes" 2 "xor has exactly 2 classes, got --classes 3" \
    "$XT" gen xor --classes 3 --out "$DIR/x.h5"
check "gen spirals in 1-D" 2 "spirals needs --features >= 2, got 1" \
    "$XT" gen spirals --features 1 --out "$DIR/x.h5"
check "gen fractions leave no train rows" 2 "leave no training rows" \
    "$XT" gen blobs --val-fraction 0.6 --test-fraction 0.5 --out "$DIR/x.h5"
check "gen unknown option" 2 "unknown option '--colour'" "$XT" gen blobs --colour red --out "$DIR/x.h5"
check "gen into a missing directory" 1 "cannot create" \
    "$XT" gen blobs --out "$DIR/no/such/dir/x.h5"
expect "gen failures left no file" test ! -e "$DIR/x.h5" -a ! -e "$DIR/x.h5.tmp"

for kind in blobs xor spirals multilabel; do
    check "gen $kind" 0 "gen $kind: wrote .*/train 160, /val 20, /test 20 rows" \
        "$XT" gen "$kind" --rows 200 --features 3 --seed 42 --out "$DIR/$kind.h5"
done
check "gen blobs again, same seed" 0 "" \
    "$XT" gen blobs --rows 200 --features 3 --seed 42 --out "$DIR/blobs2.h5"
check "gen blobs, other seed" 0 "" \
    "$XT" gen blobs --rows 200 --features 3 --seed 43 --out "$DIR/blobs3.h5"
expect "gen is bit-reproducible from the seed" cmp -s "$DIR/blobs.h5" "$DIR/blobs2.h5"
expect "another seed gives another file" bash -c "! cmp -s '$DIR/blobs.h5' '$DIR/blobs3.h5'"

# ---- convert -----------------------------------------------------------------------
printf 'a,b,label\n1,2,0\n3,x4,1\n' >"$DIR/bad.csv"
printf '1,2,0\n3,4\n' >"$DIR/short.csv"
for i in 0 1 2 3 4 5 6 7 8 9; do echo "$i,$((i * i)),$((i % 2))"; done >"$DIR/good.csv"
printf '1 1:1\n1 3:1 2:1\n' >"$DIR/order.svm"
printf '\0\0\10\2\0\0\0\1\0\0\0\1\7' >"$DIR/magic.idx"
printf '\0\0\10\1\0\0\0\5\1\2' >"$DIR/short.idx"
printf '\0\0\10\3\0\0\0\5\0\0\0\1\0\0\0\1\1\2\3\4\5' >"$DIR/five.idx"

check "convert --help" 0 "usage: xentrain convert" "$XT" convert --help
check "convert idx --help" 0 "--class-names" "$XT" convert idx --help
check "convert csv --help" 0 "--label-column" "$XT" convert csv --help
check "convert libsvm --help" 0 "--zero-based" "$XT" convert libsvm --help
check "convert unknown format" 2 "unknown format 'xls'" "$XT" convert xls --out "$DIR/x.h5"
check "csv: malformed number names file, line, field" 2 "bad.csv:3: field 2 'x4': not a number" \
    "$XT" convert csv --input "$DIR/bad.csv" --out "$DIR/x.h5"
check "csv: wrong field count" 2 "short.csv:2: 2 fields, expected 3" \
    "$XT" convert csv --input "$DIR/short.csv" --out "$DIR/x.h5"
check "csv: missing input" 2 "nothere.csv: cannot open: No such file" \
    "$XT" convert csv --input "$DIR/nothere.csv" --out "$DIR/x.h5"
check "libsvm: decreasing indices" 2 "order.svm:2: '2:1': indices must increase" \
    "$XT" convert libsvm --input "$DIR/order.svm" --out "$DIR/x.h5"
check "idx: bad magic" 2 "magic.idx: bad IDX magic 0x00000802 for images" \
    "$XT" convert idx --images "$DIR/magic.idx" --labels "$DIR/short.idx" --out "$DIR/x.h5"
check "idx: truncated labels" 2 "short.idx: truncated IDX file: the header declares 5 labels" \
    "$XT" convert idx --images "$DIR/five.idx" --labels "$DIR/short.idx" --out "$DIR/x.h5"
check "idx: missing --labels" 2 "--labels F is required" \
    "$XT" convert idx --images "$DIR/magic.idx" --out "$DIR/x.h5"
expect "convert failures left no file" test ! -e "$DIR/x.h5" -a ! -e "$DIR/x.h5.tmp"

check "csv: good file" 0 "convert csv: wrote .*/train 9, /val 1, /test 0 rows; D = 2, K = 2" \
    "$XT" convert csv --input "$DIR/good.csv" --out "$DIR/good.h5"
cp "$DIR/good.h5" "$DIR/good.h5.orig"
check "csv: failure over an existing output" 2 "bad.csv:3" \
    "$XT" convert csv --input "$DIR/bad.csv" --out "$DIR/good.h5"
expect "the existing output is untouched" cmp -s "$DIR/good.h5" "$DIR/good.h5.orig"

# ---- under MPI: rank 0 converts, every rank exits with its code --------------------
check "gen on 2 ranks" 0 "" xt 2 gen xor --rows 100 --out "$DIR/mpi.h5"
check "convert of a bad csv on 2 ranks exits 2" 2 "bad.csv:3: field 2" \
    xt 2 convert csv --input "$DIR/bad.csv" --out "$DIR/x.h5"

# ---- CSV conveniences: preamble, header names, a separate test file, stratified splits ----
printf '4,2,no,yes\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n' >"$DIR/pre.csv"
check "csv: a preamble line names --skip-rows" 2 "pre.csv:2: 3 fields, expected 4 \\(as on line 1\\); if the first line is a preamble.*--skip-rows 1" \
    "$XT" convert csv --input "$DIR/pre.csv" --out "$DIR/x.h5"
check "csv: --skip-rows 1 reads it" 0 "/train 4, /val 0" \
    "$XT" convert csv --input "$DIR/pre.csv" --skip-rows 1 --val-fraction 0 --out "$DIR/pre.h5"
printf 'a,b,label\n1,2,0\n3,4,1\n5,6,2\n7,8,0\n' >"$DIR/many.csv"
check "csv: more classes than half the rows is warned about" 0 \
    "3 classes for 4 rows: are the labels classes.*--label-column" \
    "$XT" convert csv --input "$DIR/many.csv" --val-fraction 0 --out "$DIR/many.h5"
printf '1,NA,0\n3,4,1\n5,6,0\n' >"$DIR/na1.csv"
check "csv: a first data row with a missing value is not taken for a header" 2 \
    "na1.csv:1: field 2 'NA': missing value; column 2 has 1 missing value" \
    "$XT" convert csv --input "$DIR/na1.csv" --out "$DIR/na1.h5"
printf 'a,b,label\n1,x,0\n2,y,1\n' >"$DIR/bad2.csv"
check "csv: a bad field's message ends with the hints, not a stray index" 2 \
    "field 2 'x': not a number. If 'x' marks a missing value: --na-values 'x'; if the column is categorical: --categorical b$" \
    "$XT" convert csv --input "$DIR/bad2.csv" --categorical none --out "$DIR/bad2.h5"
printf 'a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n' >"$DIR/hdr.csv"
printf 'a,b,label\n9,9,1\n' >"$DIR/hdr_test.csv"
check "csv: --test-input becomes /test" 0 "/train 4, /val 0, /test 1 rows" \
    "$XT" convert csv --input "$DIR/hdr.csv" --test-input "$DIR/hdr_test.csv" --val-fraction 0 \
    --out "$DIR/hdr.h5"
if command -v h5dump >/dev/null; then
    check "csv: header names become feature_names" 0 '"a", "b"' h5dump -a /feature_names "$DIR/hdr.h5"
fi
printf 'x,label\n%s\n' "$(for i in $(seq 1 40); do echo "$i,$(( i <= 30 ? 0 : 1 ))"; done)" >"$DIR/strat.csv"
check "csv: a column counting the rows (sorted by class) is refused" 2 \
    "column 'x': it holds whole numbers increasing down the file: row numbers or ids" \
    "$XT" convert csv --input "$DIR/strat.csv" --val-fraction 0.2 --stratify --out "$DIR/strat.h5"
check "csv: --stratify keeps the class proportions in /val" 0 "/train 32, /val 8" \
    "$XT" convert csv --input "$DIR/strat.csv" --val-fraction 0.2 --stratify --keep-columns x \
    --out "$DIR/strat.h5"
if command -v h5dump >/dev/null; then
    check "csv: stratified /val holds 6 of class 0 and 2 of class 1" 0 "\(0\): 0, 0, 0, 0, 0, 0, 1, 1" \
        h5dump -d /val/y "$DIR/strat.h5"
fi
printf '1,2,5\n3,4,7\n5,6,5\n' >"$DIR/from5.csv"
check "csv: labels that do not start at 0 are remapped, saying so" 0 "start at 5, not 0" \
    "$XT" convert csv --input "$DIR/from5.csv" --val-fraction 0 --out "$DIR/from5.h5"

# ---- the real Fashion-MNIST files ---------------------------------------------------
if [ -r "$FASHION/train-images-idx3-ubyte.gz" ]; then
    check "prepare-fashion-mnist.sh" 0 \
        "wrote .*/train 54000, /val 6000, /test 10000 rows; D = 784 \(28 x 28 uint8, scale 1/255\), K = 10" \
        "$ROOT/scripts/prepare-fashion-mnist.sh" "$XT" "$DIR/fashion.h5"
    check "convert idx with explicit files, held-out tail" 0 \
        "/train 50000, /val 10000, /test 10000 rows" \
        "$XT" convert idx --images "$FASHION/train-images-idx3-ubyte.gz" \
        --labels "$FASHION/train-labels-idx1-ubyte.gz" \
        --test-images "$FASHION/t10k-images-idx3-ubyte.gz" \
        --test-labels "$FASHION/t10k-labels-idx1-ubyte.gz" --val-tail 10000 \
        --out "$DIR/fashion_tail.h5"
    check "idx: images and labels from different sets" 2 \
        "image and label counts differ: .* has 60000 images, .* has 10000 labels" \
        "$XT" convert idx --images "$FASHION/train-images-idx3-ubyte.gz" \
        --labels "$FASHION/t10k-labels-idx1-ubyte.gz" --out "$DIR/x.h5"
    if command -v h5ls >/dev/null 2>&1; then
        check "h5ls shows the layout" 0 "/train/X +Dataset \{54000, 784\}" h5ls -r "$DIR/fashion.h5"
    fi
    rm -f "$DIR/fashion.h5" "$DIR/fashion_tail.h5"
else
    echo "skip Fashion-MNIST cases: $FASHION not installed"
fi

echo "$cases cases, $failures failed"
[ "$failures" -eq 0 ]
