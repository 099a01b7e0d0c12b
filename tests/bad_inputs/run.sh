#!/usr/bin/env bash
# The bad-input corpus (issue 8): hostile command lines, config files, HDF5 data, model
# and checkpoint files, and IDX / CSV / LIBSVM text, each run at P = 1 and P = 2.
#
# Every case runs in a fresh copy of the fixture directory (the HDF5 files written by
# xt_mkfixtures, a finished run in run/ with model.h5 and checkpoint.h5, text inputs)
# and must give, at each P:
#   - the documented exit code on EVERY rank (each rank reports its own code through a
#     wrapper, so a rank that hangs, crashes or exits 0 is caught, not only the first);
#   - a message matching the case's pattern (an extended regex naming the fault);
#   - no crash text: core dump, "Segmentation", sanitizer reports, "MPI_ABORT was
#     invoked", "Process received signal";
#   - completion within CASE_TIMEOUT seconds (no hang);
#   - an unchanged md5sum of every file that existed before (data, model.h5, checkpoint.h5).
# Then the numerical-fault scenarios: divergence keeps the best model and a loadable last
# good checkpoint; features of magnitude 1e30 train or are refused, never NaN silently.
#
# usage: run.sh XENTRAIN SCRATCH_DIR MPIEXEC MKFIXTURES [FILTER-REGEX]
# SHARD=i/n runs every n-th case from the i-th (0-based), and the numerical faults in shard 0
# only: ctest runs the corpus as two tests, each with its own timeout.
set -u
export LC_ALL=C   # messages may quote bytes that are not UTF-8: match them as bytes
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"
xt_begin "${1:?usage: run.sh XENTRAIN SCRATCH_DIR MPIEXEC MKFIXTURES [FILTER]}" "${2:?scratch dir}" \
  "${3:?mpiexec}"
XT=$bin DIR=$tmp
MKFIX=${4:?xt_mkfixtures}
FILTER=${5:-}
SHARD=${SHARD:-0/1}
shard_i=${SHARD%/*} shard_n=${SHARD#*/}
CASE_TIMEOUT=${CASE_TIMEOUT:-60}
XT_TIMEOUT=$CASE_TIMEOUT
# Files a failing run may legitimately rewrite (none: every pre-existing file must stay
# byte-identical). A space-separated list can be given for experiments.
KNOWN_CHANGES=${KNOWN_CHANGES-}
mkdir -p "$DIR/fx" || exit 1
FX=$DIR/fx
ncases=0
CRASH='Segmentation|core dumped|AddressSanitizer|LeakSanitizer|runtime error:|MPI_ABORT was invoked|Process received signal|Assertion|XT_ASSERT|Aborted'

# ---- fixtures ----------------------------------------------------------------------
"$MKFIX" "$FX" || { fail "xt_mkfixtures"; echo "0 passed, 1 failed"; exit 1; }
cd "$FX" || exit 1
# a valid config: every case breaks one thing
write_ini base.ini data.train=d_good.h5:/train data.val=d_good.h5:/val model.type=softmax \
  train.epochs=2 train.batch_size=8 train.progress=false train.resume=never run.dir=run
# a finished run: run/model.h5, run/checkpoint.h5 (what a failed run must not damage)
if ! "$XT" train base.ini >setup.log 2>&1 || [ ! -s run/model.h5 ] || [ ! -s run/checkpoint.h5 ]; then
  fail "setup: training the reference run"; cat setup.log; echo "$passes passed, $failures failed"; exit 1
fi
sed 's/^resume = never/resume = auto/' base.ini > resume.ini
head -c 3000 run/model.h5 > m_truncated.h5
head -c 4000 run/checkpoint.h5 > c_truncated.h5
head -c 2000 d_good.h5 > d_truncated.h5
echo "not an HDF5 file" > d_text.h5
"$XT" gen blobs --rows 60 --features 8 --classes 3 --seed 1 --out d_d8.h5 >/dev/null || fail "gen d_d8"
"$XT" gen blobs --rows 60 --features 3 --classes 2 --seed 1 --out d_bin.h5 >/dev/null || fail "gen d_bin"
"$XT" train base.ini --set data.train=d_bin.h5:/train --set data.val=d_bin.h5:/val \
  --set model.type=logistic --set run.dir=runlog >/dev/null 2>&1 || fail "train logistic"
cp runlog/model.h5 m_logistic.h5 && rm -rf runlog
"$XT" gen blobs --rows 20 --features 3 --seed 1 --out pred.h5 >/dev/null   # pre-existing output
# config files
mkdir -p cfgdir && mkfifo fifo.ini && : > empty.ini
printf '[optim]\nlr = 0.1\nlr = 0.2\n' > dup.ini
# a line over the config reader's 1 MiB (lines of any length below it are read whole)
printf '[data]\ntrain = %s\n' "$(head -c 1100000 /dev/zero | tr '\0' a)" > long.ini
printf '[optim]\njust words\n' > noeq.ini
printf '[bogus]\nx = 1\n' > sect.ini
printf '[optim]\nlr = 0.1\0junk\n' > nul.ini
printf '[optim]\nl\xffr = 0.1\n' > utf8.ini
printf '[optim]\nlr = 0.1 ; fine\nmomentum = 0.9x\n' > garbage.ini
# text inputs
{ printf 'a,b,label\n'; head -c 9000000 /dev/zero | tr '\0' 1; printf ',2,0\n'; } > long.csv
printf 'a,b,label\n1,2,0\n\xff\xfe,2,1\n' > utf8x.csv
printf 'a,b,label\n1,2,caf\xe9\n3,4,dog\n5,6,dog\n' > utf8lab.csv
printf 'a,b,label\n1,2,0\n3,,1\n' > missing.csv
printf 'a,b,label\n1,2,0\n3,4\n' > short.csv
: > empty.csv
printf '\37\213\10\0garbagegarbage' > corrupt.csv
printf '1 1:0.5\n0 2:\n' > missing.svm
printf '1 1:0.5\n0 a:1\n' > badidx.svm
printf '1 1000000000000000:1\n0 1:2\n' > hugeidx.svm
printf '1 1:1 1:2\n' > dupidx.svm
printf '\0\0\10\3\377\377\377\377\0\0\0\34\0\0\0\34\1\2\3' > hugen.idx
printf '\0\0\10\3\0\1\206\240\0\0\0\34\0\0\0\34\1\2\3' > claim100k.idx
printf '\0\0\10\1\0\0\0\1\1' > one.idx
printf '\0\0\10\3\0\0\0\1\0\0\0\2' > shorthead.idx
cd "$DIR" || exit 1

# ---- the runner ---------------------------------------------------------------------
# bad NAME RC PATTERN ARGS...: xentrain ARGS in a fresh copy of the fixtures, at P = 1, 2.
# Cases run JOBS at a time (mostly launcher latency, not CPU); results print in order.
JOBS=${JOBS:-3}
mkdir -p "$DIR/res"
# Concurrent mpiruns sharing an Open MPI session directory race on it (open-mpi/ompi#8510):
# under ctest (which sets a base per test) each case gets a directory of its own.
ompi_base=${OMPI_MCA_orte_tmpdir_base:-}
bad() {
  ncases=$((ncases + 1))
  [ -n "$FILTER" ] && ! [[ $1 =~ $FILTER ]] && return 0
  [ $(( (ncases - 1) % shard_n )) -eq "$shard_i" ] || return 0
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  run_case "$@" > "$DIR/res/$(printf '%03d' "$ncases").txt" 2>&1 &
}
run_case() {
  local name=$1 want=$2 pattern=$3
  shift 3
  local np
  if [ -n "$ompi_base" ]; then
    export OMPI_MCA_orte_tmpdir_base=$ompi_base/$name
    mkdir -p "$OMPI_MCA_orte_tmpdir_base" || { fail "$name: session directory"; return; }
  fi
  for np in 1 2; do
    local w=$DIR/case/$name.np$np
    rm -rf "$w" && mkdir -p "$w" && cp -a "$FX/." "$w/" && cd "$w" || { fail "$name: setup"; return; }
    rm -rf core core.*
    # (run.dir/.xentrain.lock names the run holding the directory: each run that takes
    # the lock rewrites it, refused or not; it holds no data)
    find . -type f ! -name fifo.ini ! -name .xentrain.lock -print0 | sort -z | xargs -0 md5sum |
      grep -Fv "  ${KNOWN_CHANGES:-/none/}" > "$w.md5"
    local t0=$SECONDS out rc
    # Each rank prints its own exit code and then exits 0, so mpiexec lets every rank finish
    # and we see every rank's code (a rank killed by a signal prints nothing).
    out=$(xt_launch "$np" bash -c \
      '"$0" "$@"; echo "xt-rank-exit ${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}} $?"' "$XT" "$@" 2>&1 </dev/null)
    rc=$?
    local dt=$((SECONDS - t0)) why=""
    local codes
    codes=$(grep -o '^xt-rank-exit [0-9]* [0-9]*' <<<"$out" | awk '{print $3}' | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}')
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then why="timed out after ${CASE_TIMEOUT} s (hang?)"
    elif [ "$(grep -c "^xt-rank-exit [0-9]* $want\$" <<<"$out")" -ne "$np" ]; then
      why="exit codes per rank: ${codes:-none}, expected $want on all $np"
    elif ! grep -Eq -- "$pattern" <<<"$out"; then why="no message matching /$pattern/"
    elif grep -Eq -- "$CRASH" <<<"$out"; then why="crash text: $(grep -Eo -- "$CRASH" <<<"$out" | head -1)"
    elif ls core core.* >/dev/null 2>&1; then why="core dump"
    elif ! md5sum --quiet -c "$w.md5" >"$w.md5out" 2>&1; then
      why="changed files: $(tr '\n' ' ' < "$w.md5out")"
    fi
    if [ -z "$why" ]; then
      pass "$name P=$np: exit $want in ${dt}s, $(grep -Eo -- "$pattern" <<<"$out" | head -1 | cut -c1-70)"
      cd "$DIR" && rm -rf "$w" "$w.md5" "$w.md5out"
    else
      fail "$name P=$np: $why"
      grep -v '^xt-rank-exit' <<<"$out" | head -15 | sed 's/^/    /'
      cd "$DIR"
    fi
  done
}

T=(train base.ini)
split() { echo "--set data.train=$1:/train --set data.val=$1:/val"; }

# ---- command line --------------------------------------------------------------------
bad cli_no_arguments         2 "usage:"
bad cli_unknown_subcommand   2 "unknown subcommand 'trian'" trian base.ini
bad cli_unknown_option       2 "unknown option '--frobnicate'" --frobnicate
bad train_missing_config     2 "missing CONFIG.ini" train
bad train_unknown_option     2 "unknown option '--bogus'" train base.ini --bogus
bad key_typo_suggests        2 "unknown key 'optim.lrr' \(did you mean 'optim.lr'\?\)" "${T[@]}" --set optim.lrr=0.1
bad section_typo_suggests    2 "unknown section \[optimizer\].*did you mean 'optim.lr'" "${T[@]}" --set optimizer.lr=1
bad set_without_value        2 "optim.lr: expected section.key=value" "${T[@]}" --set optim.lr
bad value_out_of_range       2 "optim.lr=-1: out of range \(allowed: 0 < value <= 1000, or auto\)" "${T[@]}" --set optim.lr=-1
bad value_wrong_type         2 "train.epochs=ten: not an integer" "${T[@]}" --set train.epochs=ten
bad value_empty              2 "train.epochs=: empty value" "${T[@]}" --set train.epochs=
bad value_enormous           2 "train.epochs=99999999999999999999999: out of range" "${T[@]}" --set train.epochs=99999999999999999999999
bad number_trailing_garbage  2 "optim.lr=0.1x: not a number" "${T[@]}" --set optim.lr=0.1x
bad integer_as_float         2 "batch_size=1e3: not an integer" "${T[@]}" --set train.batch_size=1e3
bad value_nan                2 "optim.lr=nan: not a finite number" "${T[@]}" --set optim.lr=nan
bad enum_unknown             2 "model.type=svm: not one of the choices" "${T[@]}" --set model.type=svm
bad bool_unknown             2 "train.shuffle=maybe: not a boolean" "${T[@]}" --set train.shuffle=maybe
bad list_empty_element       2 "model.hidden=16,,8: element 2 is empty" "${T[@]}" --set model.type=mlp --set model.hidden=16,,8
bad value_overlong           2 "run.dir=a+\.\.\.: too long: 5000 characters" "${T[@]}" --set "run.dir=$(head -c 5000 /dev/zero | tr '\0' a)"
bad eval_missing_model       2 "eval: --model M.h5 is required" eval --data d_good.h5
bad eval_unknown_option      2 "unknown option '--colour'" eval --model run/model.h5 --data d_good.h5 --colour
bad predict_missing_out      2 "predict: --out P.h5\|P.csv\|- is required" predict --model run/model.h5 --data d_good.h5:/val
bad gen_rows_garbage         2 "--rows '10x': not an unsigned integer" gen blobs --rows 10x --out g.h5

# ---- config files ----------------------------------------------------------------------
bad config_is_directory      2 "config file 'cfgdir' is a directory" train cfgdir
bad config_is_fifo           2 "config file 'fifo.ini' is not a regular file" train fifo.ini
bad config_read_error        2 "/proc/self/mem:1: read error" train /proc/self/mem
bad config_missing           2 "config file 'nothere.ini': No such file" train nothere.ini
bad config_empty             2 "data.train is not set" train empty.ini
bad config_duplicate_key     2 "dup.ini:3: optim.lr = 0.2: duplicate key, already set on line 2" train dup.ini
bad config_overlong_line     2 "long.ini:2: line longer than 1048576 bytes" train long.ini
bad config_no_equals         2 "noeq.ini:2: syntax error in 'just words'" train noeq.ini
bad config_unknown_section   2 "sect.ini:2: unknown section \[bogus\]" train sect.ini
bad config_nul_byte          2 "nul.ini:2: contains a NUL byte" train nul.ini
bad config_bad_utf8_key      2 "utf8.ini:2: unknown key .*did you mean 'optim.lr'" train utf8.ini
bad config_trailing_garbage  2 "garbage.ini:3: .*momentum.*0.9x.*not a number" train garbage.ini

# ---- HDF5 data (train at P = 1, 2; eval) ------------------------------------------------
bad data_missing_file        2 "nothere.h5.*(No such file|cannot open|does not exist)" "${T[@]}" $(split nothere.h5)
bad data_not_hdf5            2 "d_text.h5.*(not an HDF5|cannot open)" "${T[@]}" $(split d_text.h5)
bad data_truncated           2 "d_truncated.h5" "${T[@]}" $(split d_truncated.h5)
bad data_no_group            2 "no group '/train'" "${T[@]}" $(split d_nogroup.h5)
bad data_no_y                2 "no dataset 'y'" "${T[@]}" $(split d_noy.h5)
bad data_x_1d                2 "/train/X: expected 2-D features \(N, D\), got \(40,\) float32" "${T[@]}" $(split d_x1d.h5)
bad data_x_3d                2 "/train/X: expected 2-D features \(N, D\), got \(40, 3, 1\)" "${T[@]}" $(split d_x3d.h5)
bad data_x_string            2 "/train/X: expected an integer or float type, got \(40,\) string" "${T[@]}" $(split d_xstring.h5)
bad data_y_compound          2 "/train/y: expected \(N,\) class ids.*compound" "${T[@]}" --set data.train=d_ycompound.h5:/train --set data.val=
bad data_y_enum              2 "/train/y: expected \(N,\) class ids.*enum" "${T[@]}" --set data.train=d_yenum.h5:/train --set data.val=
bad data_y_float_1d          2 "/train/y: rows \[0, .*\): values do not convert exactly to int32" "${T[@]}" $(split d_yfloat1d.h5)
bad data_n_mismatch          2 "/train/y: expected .* N = 40 as X, got \(39,\)" "${T[@]}" $(split d_mismatch.h5)
bad data_zero_rows           2 "empty split: X is \(0, 3\)" "${T[@]}" $(split d_zerorows.h5)
bad data_zero_features       2 "expected D > 0 features, got \(40, 0\)" "${T[@]}" $(split d_zerofeat.h5)
bad data_nan                 2 "/train/X: non-finite value NaN at row 17, column 1" "${T[@]}" $(split d_nan.h5)
bad data_inf                 2 "/train/X: non-finite value \+Inf at row 31, column 2" "${T[@]}" $(split d_inf.h5)
bad data_f64_beyond_float32  2 "non-finite value \+Inf at row 5, column 0.*overflow float32" "${T[@]}" $(split d_f64big.h5)
bad data_label_negative      2 "/train/y: label -3 at row [0-9]+: class ids are 0..K-1; relabel from 0" "${T[@]}" $(split d_labelneg.h5)
bad data_label_too_many      2 "largest class id 5000 gives 5001 classes \(limit 4096\)" "${T[@]}" $(split d_labelhuge.h5)
bad data_label_val_range     2 "/val/y: label 7 at row 36 is outside \[0, 3\)" "${T[@]}" $(split d_labelval.h5)
bad data_label_classes_set   2 "/train/y: label 2 at row [0-9]+ is outside \[0, 2\)" "${T[@]}" $(split d_good.h5) --set model.classes=2
bad data_label_int64         2 "/train/y: rows .*integers outside int32's range \(class ids go up to 2\^31 - 1" "${T[@]}" $(split d_label64.h5)
bad data_bad_scale_attr      2 "attribute scale = -1, expected a finite number > 0" "${T[@]}" $(split d_scale.h5)
bad data_soft_target_range   2 "/train/y: target 1.5 at row 29, column 1 is outside \[0, 1\]" "${T[@]}" $(split d_softbad.h5) --set model.type=multilabel
bad data_csr_index_range     2 "d_csr_index.h5:/train/X/indices: row 25: column index 3 is outside \[0, 3\)" "${T[@]}" $(split d_csr_index.h5)
bad data_csr_indptr_decrease 2 "d_csr_indptr.h5:/train/X/indptr: indptr\[11\] = 28 is less than the row before it" "${T[@]}" $(split d_csr_indptr.h5)
bad data_csr_indptr_end      2 "d_csr_end.h5:/train/X/indptr: indptr\[0\] = 0 and indptr\[N = 40\] = 119; expected 0 and nnz = 120" "${T[@]}" $(split d_csr_end.h5)
bad data_csr_nan             2 "d_csr_nan.h5:/train/X: row 17, column 2: non-finite value NaN" "${T[@]}" $(split d_csr_nan.h5)
bad data_csr_duplicate       2 "d_csr_dup.h5:/train/X: row 8: column 1 appears twice.*sum_duplicates" "${T[@]}" $(split d_csr_dup.h5)
bad data_csr_csc             2 "d_csr_csc.h5:/train/X is a CSC \(column-compressed\) matrix.*tocsr" "${T[@]}" $(split d_csr_csc.h5)
bad data_csr_standardize     2 "data.normalize = standardize: .*d_csr_nan.h5:/val/X is sparse \(CSR\)" "${T[@]}" --set data.train=d_csr_nan.h5:/val --set data.val= --set data.normalize=standardize
bad data_dims_overflow       2 "d_overflow.h5:/train: (a rank would hold [0-9]+ rows|rows .* need about).*use more ranks" "${T[@]}" --set data.train=d_overflow.h5:/train --set data.val=
bad data_dims_beyond_memory  2 "d_bigmem.h5.*(available|use more ranks)" "${T[@]}" --set data.train=d_bigmem.h5:/train --set data.val=
bad data_val_other_d         2 "d_good.h5:/train and d_d8.h5:/val differ: X has 3 vs 8 features" "${T[@]}" --set data.val=d_d8.h5:/val
bad eval_data_nan            2 "/val/X: non-finite value NaN at row 17" eval --model run/model.h5 --data d_nan.h5:/val
bad eval_data_overflow       2 "d_overflow.h5:/train: the data have D = 536870912 features but the model .* expects 3" eval --model run/model.h5 --data d_overflow.h5:/train

# ---- model files -------------------------------------------------------------------------
bad model_newer_version      2 "m_newer.h5: model format version 99; this xentrain .* reads version 1 \(upgrade xentrain\)" eval --model m_newer.h5 --data d_good.h5:/val
bad model_unknown_type       2 "m_badtype.h5:/model: unknown model_type 'svm'" eval --model m_badtype.h5 --data d_good.h5:/val
bad model_weight_shape       2 "m_wshape.h5:/model/layer1/W: expected float \(3, 3\) as layer_sizes imply, got float32 \(2, 3\)" eval --model m_wshape.h5 --data d_good.h5:/val
bad model_weight_int         2 "m_wint.h5:/model/layer1/W: expected float \(3, 3\).*int32" eval --model m_wint.h5 --data d_good.h5:/val
bad model_claims_huge_shape  2 "m_hugeshape.h5:/model/layer1/W: expected float \(67108864, 67108864\)" eval --model m_hugeshape.h5 --data d_good.h5:/val
bad model_claims_huge_d      2 "m_bigd.h5:/model/layer1/W: expected float \(3, 67108864\)" eval --model m_bigd.h5 --data d_good.h5:/val
bad model_truncated          2 "m_truncated.h5" eval --model m_truncated.h5 --data d_good.h5:/val
bad model_is_a_data_file     2 "d_good.h5: not an xentrain model file" eval --model d_good.h5 --data d_good.h5:/val
bad model_other_shape        2 "D = 8 features but the model .* expects 3" eval --model run/model.h5 --data d_d8.h5:/train
bad model_other_type         2 "/val/y: label 2 at row [0-9]+ is outside \[0, 2\) \(K = 2 classes\)" eval --model m_logistic.h5 --data d_good.h5:/val
bad predict_newer_model      2 "model format version 99" predict --model m_newer.h5 --data d_good.h5:/val --out pred.h5

# ---- checkpoint files ----------------------------------------------------------------------
bad ckpt_newer_version       2 "c_newer.h5: checkpoint format version 99; this xentrain .* reads versions 1 to 2" "${T[@]}" --set train.resume=c_newer.h5
bad ckpt_wrong_format        2 "c_wrongformat.h5: not an xentrain checkpoint" "${T[@]}" --set train.resume=c_wrongformat.h5
bad ckpt_is_a_model          2 "run/model.h5: not an xentrain checkpoint" "${T[@]}" --set train.resume=run/model.h5
bad ckpt_truncated           2 "c_truncated.h5" "${T[@]}" --set train.resume=c_truncated.h5
bad ckpt_missing             2 "nothere.h5" "${T[@]}" --set train.resume=nothere.h5
bad ckpt_other_trajectory    2 "model.type: 'softmax' -> 'mlp'" train resume.ini --set train.epochs=4 --set model.type=mlp --set model.hidden=4

# ---- text inputs (convert runs on rank 0; every rank exits with its code) ------------------
bad csv_overlong_line        2 "long.csv:2: line longer than 8388608 bytes" convert csv --input long.csv --out out.h5
bad csv_bad_utf8_feature     2 "utf8x.csv:3: field 1 .*not a number" convert csv --input utf8x.csv --out out.h5
bad csv_bad_utf8_label       2 "utf8lab.csv: the label of data row 1 is not valid UTF-8" convert csv --input utf8lab.csv --out out.h5
bad csv_missing_field        2 "missing.csv:3: field 2 '': empty field \(missing value\)" convert csv --input missing.csv --out out.h5
bad csv_short_row            2 "short.csv:3: 2 fields, expected 3" convert csv --input short.csv --out out.h5
bad csv_empty                2 "empty.csv: no data rows" convert csv --input empty.csv --out out.h5
bad csv_corrupt_gzip         2 "corrupt.csv:1: cannot read: .*corrupt or truncated gzip" convert csv --input corrupt.csv --out out.h5
bad csv_over_existing_output 2 "missing.csv:3" convert csv --input missing.csv --out d_good.h5
bad libsvm_missing_value     2 "missing.svm:2: '2:': empty field" convert libsvm --input missing.svm --out out.h5
bad libsvm_bad_index         2 "badidx.svm:2: 'a:1': the index is not an integer" convert libsvm --input badidx.svm --out out.h5
bad libsvm_huge_index        2 "hugeidx.svm: 2 rows x 1000000000000000 features do not fit in memory" convert libsvm --input hugeidx.svm --out out.h5
bad libsvm_repeated_index    2 "dupidx.svm:1: '1:2': indices must increase" convert libsvm --input dupidx.svm --out out.h5
bad idx_claims_4g_images     2 "hugen.idx: the IDX header declares 4294967295 images .* more than this machine's memory" convert idx --images hugen.idx --labels one.idx --out out.h5
bad idx_claims_100k_images   2 "claim100k.idx: truncated IDX file: the header declares 100000 images" convert idx --images claim100k.idx --labels one.idx --out out.h5
bad idx_short_header         2 "shorthead.idx: truncated IDX header" convert idx --images shorthead.idx --labels one.idx --out out.h5
bad idx_labels_as_images     2 "one.idx: bad IDX magic 0x00000801 for images" convert idx --images one.idx --labels one.idx --out out.h5

wait
# every mpirun has ended: the cases' (empty) session directories go
[ -n "$ompi_base" ] && find "$ompi_base" -mindepth 1 -type d -empty -delete
cat "$DIR"/res/*.txt 2>/dev/null
passes=$((passes + $(cat "$DIR"/res/*.txt 2>/dev/null | grep -c '^ok  *- ')))
failures=$((failures + $(cat "$DIR"/res/*.txt 2>/dev/null | grep -c '^FAIL - ')))

# ---- numerical faults -----------------------------------------------------------------------
numeric() {
  [ "$shard_i" -eq 0 ] || return 1
  [ -n "$FILTER" ] && ! [[ numeric =~ $FILTER ]] && return 1; true
}
if numeric; then
  for np in 1 2; do
    w=$DIR/case/numeric.np$np
    rm -rf "$w" && mkdir -p "$w" && cp -a "$FX/." "$w/" && cd "$w" || exit 1
    x() { xt "$np" "$@"; }
    # 1. divergence: two good epochs on 1e30 features without normalisation at lr 1e-40
    #    (finite losses), then resume to epoch 6 at lr 1 (the learning rate may change on
    #    resume): the logits overflow float32 in epoch 3.
    x train base.ini $(split d_extreme.h5) --set data.normalize=none --set model.init=zeros \
      --set optim.lr=1e-40 --set train.epochs=2 --set run.dir=div >div0.log 2>&1 \
      || { fail "numeric P=$np: 2 good epochs on 1e30 data at lr 1e-40 (exit $?)"; cat div0.log; }
    m0=$(md5sum < div/model.h5 2>/dev/null)
    x train base.ini $(split d_extreme.h5) --set data.normalize=none --set model.init=zeros \
      --set optim.lr=1 --set train.epochs=6 --set train.resume=auto --set run.dir=div >div.log 2>&1
    rc=$?
    if [ "$rc" -eq 3 ] && grep -Eq "diverged.*epoch [0-9]+.*step [0-9]+" div.log && ! grep -Eq -- "$CRASH" div.log; then
      pass "numeric P=$np: lr 1 on 1e30 features diverges: exit 3, $(grep -Eo 'diverged.*step [0-9]+' div.log | head -1 | cut -c1-60)"
    else fail "numeric P=$np: divergence gave exit $rc"; tail -5 div.log | sed 's/^/    /'; fi
    if [ -s div/model.h5 ] && [ "$(md5sum < div/model.h5)" = "$m0" ]; then
      pass "numeric P=$np: model.h5 (the best epoch) is unchanged by the diverged epoch"
    else fail "numeric P=$np: model.h5 missing or changed after divergence"; fi
    if x eval --model div/model.h5 --data d_extreme.h5:/val >ev.log 2>&1 && ! grep -qi "nan" ev.log; then
      pass "numeric P=$np: model.h5 loads and evaluates to finite numbers"
    else fail "numeric P=$np: eval of model.h5 after divergence"; tail -3 ev.log; fi
    if [ -s div/checkpoint.h5 ] && x train base.ini $(split d_extreme.h5) --set data.normalize=none \
         --set model.init=zeros --set optim.lr=1e-40 --set train.epochs=3 --set train.resume=div/checkpoint.h5 \
         --set run.dir=div2 >res.log 2>&1 && ! grep -Eqi "nan|inf" div2/metrics.csv; then
      pass "numeric P=$np: the last good checkpoint loads and training continues with finite losses"
    else fail "numeric P=$np: resuming from the checkpoint kept after divergence"; tail -5 res.log; fi
    # 2. magnitudes of 1e30: train (finite metrics) or refuse clearly, never NaN silently.
    for norm in standardize scale none; do
      x train base.ini $(split d_extreme.h5) --set data.normalize=$norm --set run.dir=ext_$norm >ext.log 2>&1
      rc=$?
      if [ "$rc" -eq 0 ] && ! grep -Eqi "nan|inf" "ext_$norm/metrics.csv"; then
        pass "numeric P=$np: 1e30 features, normalize = $norm: trains, finite losses ($(tail -1 ext_$norm/metrics.csv | cut -d, -f2-3))"
      elif [ "$rc" -eq 3 ] && grep -q "diverged" ext.log; then
        pass "numeric P=$np: 1e30 features, normalize = $norm: refused as diverged (exit 3)"
      elif [ "$rc" -eq 2 ] && grep -q "error" ext.log; then
        pass "numeric P=$np: 1e30 features, normalize = $norm: refused (exit 2): $(grep -m1 error ext.log | cut -c1-80)"
      else fail "numeric P=$np: 1e30 features, normalize = $norm: exit $rc"; cat "ext_$norm/metrics.csv" 2>/dev/null | head -3; tail -3 ext.log; fi
    done
    cd "$DIR" || exit 1
  done
fi

echo "$ncases cases (shard $SHARD) x 2 rank counts (+ numerical faults in shard 0): $passes passed, $failures failed"
[ "$failures" -eq 0 ]
