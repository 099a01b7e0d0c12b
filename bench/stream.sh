#!/usr/bin/env bash
# Streaming training data larger than memory (issue 16): what it costs and what it holds.
#
# Part 1, warm page cache: the Fashion-MNIST MLP (configs/fashion-mnist-mlp.ini, 3 epochs,
# no validation or test, no checkpoints) at P = 1 and 2, one BLAS thread per rank, bound to
# cores: in memory (data.stream = false) against streamed (data.stream = true with
# data.memory_budget = 16M, windows much smaller than a shard of 21-42 MiB), and streamed
# with train.shuffle = block. REPS repetitions, interleaved; samples/s of epochs 2-3
# (epoch 1 warms up), medians; ratio streamed / in memory at the same P (target >= 0.90);
# amplification and hidden share from the "stream totals:" line. Then one full training
# each (the config's own epochs, validation, early stopping and test split, P = 2) with
# the row shuffle and with the block shuffle: the test accuracy of both (the data stay in
# memory there: streamed runs give the same bits, tests/cli/stream.sh checks it).
#
# Part 2, larger than memory (STREAM_BENCH_BIG=1; root and cgroup v1 memory needed, else
# skipped with a note): `xentrain gen blobs` writes about STREAM_BENCH_GB (8) GiB of float32
# rows (784 features, 10 classes) to STREAM_BENCH_DIR (/var/tmp/xt-stream-bench; kept and
# reused when it has the right size), then one epoch of STREAM_BENCH_MODEL (mlp: 784-256-128-10;
# or softmax) at P = STREAM_BENCH_NP (2) runs inside the memory cgroup /sys/fs/cgroup/memory/xt-stream-bench
# limited to STREAM_BENCH_LIMIT (2G), after dropping the page cache, with
# data.memory_budget = 0 (auto: the trainer reads the cgroup limit), data.normalize = none
# (no statistics pass) and train.shuffle = STREAM_BENCH_SHUFFLE (true). Each rank runs under
# /usr/bin/time. Reports samples/s, amplification and hidden share (target >= 0.8), the peak
# RSS of each rank against the budget the banner prints (target <= budget + 64 MiB) and the
# cgroup's memory.max_usage_in_bytes (page cache included). The cgroup is removed at the end.
#
# Usage: bench/stream.sh [XENTRAIN] [DATA.h5] [REPS] [OUT_DIR]   (defaults: build
#        build-release, data/fashion-mnist.h5, 3, bench/out; bench/run.sh calls it)
# Environment: STREAM_BENCH_BIG=1 (part 2), STREAM_BENCH_GB, STREAM_BENCH_DIR,
#   STREAM_BENCH_LIMIT, STREAM_BENCH_MODEL, STREAM_BENCH_SHUFFLE, STREAM_BENCH_NP (2),
#   STREAM_BENCH_GZIP (deflate level of the generated file; 0 = contiguous); STREAM_BENCH_BUDGET (part 1's
#   budget, 16M), STREAM_BENCH_BLOCK (train.shuffle_block, 0 = auto), STREAM_BENCH_PART1=0
#   (part 2 alone).
# Writes OUT_DIR/stream.csv (part,measure,P,mode,value,target) and prints a table.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-} data=${2:-"$root/data/fashion-mnist.h5"} reps=${3:-3} out=${4:-"$root/bench/out"}
budget1=${STREAM_BENCH_BUDGET:-16M} block=${STREAM_BENCH_BLOCK:-0}
big=${STREAM_BENCH_BIG:-0} gib=${STREAM_BENCH_GB:-8} bigdir=${STREAM_BENCH_DIR:-/var/tmp/xt-stream-bench}
limit=${STREAM_BENCH_LIMIT:-2G} bigmodel=${STREAM_BENCH_MODEL:-mlp} bigshuffle=${STREAM_BENCH_SHUFFLE:-true}
part1=${STREAM_BENCH_PART1:-1} bignp=${STREAM_BENCH_NP:-2} biggzip=${STREAM_BENCH_GZIP:-0}
cd "$root"
if [ -z "$bin" ]; then
  scripts/install-deps.sh --with-data --with-tools
  BUILD_TYPE=Release scripts/build.sh "$root/build-release" >/dev/null
  bin="$root/build-release/xentrain"
fi
scripts/prepare-fashion-mnist.sh "$bin" "$data" >/dev/null
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mpi() { scripts/xt-mpirun --bind-to core "$@"; }
tmp=$(mktemp -d)
cg=""
cleanup() {
  if [ -n "$cg" ] && [ -d "$cg" ]; then # move whatever is left to the root group, then remove
    for _ in 1 2 3 4 5; do
      while read -r p; do echo "$p" > "$cgroot/tasks" 2>/dev/null || true; done < "$cg/tasks"
      rmdir "$cg" 2>/dev/null && break
      sleep 1
    done
    [ -d "$cg" ] && echo "bench: could not remove $cg (tasks: $(tr '\n' ' ' < "$cg/tasks"))" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
raw=$tmp/raw.csv
: > "$raw"

# ---- part 1 ---------------------------------------------------------------------------
[ "$part1" = 1 ] || reps=0
echo "bench: stream part 1 (warm page cache), $reps repetition(s)"
for _ in $(seq 1 "$reps"); do
  for np in 1 2; do
    for mode in memory stream block; do
      case $mode in
        memory) a=(--set data.stream=false) ;;
        stream) a=(--set data.stream=true --set data.memory_budget="$budget1") ;;
        block)  a=(--set data.stream=true --set data.memory_budget="$budget1"
                   --set train.shuffle=block --set train.shuffle_block="$block") ;;
      esac
      mpi -np $np "$bin" train configs/fashion-mnist-mlp.ini \
        --set data.train="$data:/train" --set data.val= --set data.test= \
        --set early_stopping.enabled=false --set train.epochs=3 --set train.resume=never \
        --set checkpoint.every=0 --set train.progress=false --set run.dir="$tmp/run" \
        "${a[@]}" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
      # samples/s of epochs 2 and 3 (column 7 of metrics.csv)
      awk -F, -v P=$np -v mode=$mode 'NR > 2 { printf "tp,%s,%s,%s\n", P, mode, $7 }' \
        "$tmp/run/metrics.csv" >> "$raw"
      if [ $mode != memory ]; then
        grep -m1 'stream totals:' "$tmp/log" | sed "s/^/st,$np,$mode,/" >> "$raw" ||
          echo "bench: no 'stream totals:' line in a streamed run (P = $np, $mode)" >&2
      fi
    done
  done
done
# test accuracy: row and block shuffle, full training (the config's epochs, early stopping)
for shuffle in true block; do
  [ "$part1" = 1 ] || break
  a=(--set train.shuffle="$shuffle")
  [ $shuffle = block ] && a+=(--set train.shuffle_block="$block")
  mpi -np 2 "$bin" train configs/fashion-mnist-mlp.ini --set data.train="$data:/train" \
    --set data.val="$data:/val" --set data.test="$data:/test" --set train.resume=never \
    --set checkpoint.every=0 --set train.progress=false --set run.dir="$tmp/acc" \
    "${a[@]}" > "$tmp/acc.log" 2>&1 || { cat "$tmp/acc.log"; exit 1; }
  # `xentrain train` ends with the test report: "---- test split ----", ..., "accuracy 0.8933"
  acc=$(awk '/^---- test split ----/ { t = 1 } t && $1 == "accuracy" { print $2; exit }' "$tmp/acc.log")
  epochs=$(($(wc -l < "$tmp/acc/metrics.csv") - 1))
  echo "acc,2,$shuffle,${acc:-nan},$epochs" >> "$raw"
done

# ---- part 2 ---------------------------------------------------------------------------
bigstatus=skipped bignote="set STREAM_BENCH_BIG=1 to run it"
biglog=$tmp/none rssdir=$tmp/rss cgmax="" bigsps=""
mkdir -p "$rssdir"
cgroot=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
if [ "$big" = 1 ] && [ -z "$cgroot" ]; then
  bignote="cgroup v1 memory controller not mounted (cgroup v2 only?): part 2 skipped"
elif [ "$big" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  bignote="part 2 needs root (a memory cgroup and dropping the page cache): skipped"
elif [ "$big" = 1 ]; then
  if [ ! -x /usr/bin/time ]; then
    echo "bench: installing time (Debian package) for the peak RSS per rank"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
  fi
  # the file: float32 rows of 784 features + an int32 label, all in /train
  rowbytes=$((784 * 4 + 4))
  rows=$(awk -v g="$gib" -v b=$rowbytes 'BEGIN { printf "%d", g * 1073741824 / b }')
  file=$bigdir/blobs-$rows.h5
  [ "$biggzip" != 0 ] && file=$bigdir/blobs-$rows-gzip$biggzip.h5
  mkdir -p "$bigdir"
  size=$(stat -c %s "$file" 2>/dev/null || echo 0)
  want=$((rows * rowbytes))
  fresh=0 # a compressed file's size is unknown in advance: any non-empty one is reused
  if [ "$biggzip" = 0 ]; then [ "$size" -ge "$want" ] && [ "$size" -le $((want + 16 * 1048576)) ] && fresh=1
  else [ "$size" -gt 0 ] && fresh=1; fi
  if [ $fresh = 0 ]; then
    echo "bench: writing $file ($rows rows, about $gib GiB; once)"
    rm -f "$file"
    "$bin" gen blobs --rows "$rows" --features 784 --classes 10 --dtype float32 --gzip "$biggzip" \
      --val-fraction 0 --test-fraction 0 --seed 1 --out "$file" >/dev/null
  else
    echo "bench: reusing $file ($size bytes)"
  fi
  cg=$cgroot/xt-stream-bench
  mkdir -p "$cg"
  echo "$limit" > "$cg/memory.limit_in_bytes"
  echo 0 > "$cg/memory.max_usage_in_bytes" 2>/dev/null || true # resets the peak
  hidden=""
  [ "$bigmodel" = mlp ] && hidden=256,128
  cat > "$tmp/big.ini" <<INI
[data]
train = $file:/train
normalize = none
memory_budget = 0
[model]
type = $bigmodel
hidden = $hidden
[optim]
lr = 0.02
momentum = 0.9
clip_norm = 1
[train]
epochs = 1
batch_size = 128
shuffle = $bigshuffle
resume = never
progress = false
[checkpoint]
every = 0
[run]
dir = $tmp/big
INI
  # one /usr/bin/time per rank, each writing its own file
  cat > "$tmp/timed.sh" <<W
#!/bin/sh
r=\${OMPI_COMM_WORLD_RANK:-\${PMI_RANK:-x\$\$}}
exec /usr/bin/time -f "rank_peak_rss_kib=%M" -o "$rssdir/rank.\$r" "\$@"
W
  chmod +x "$tmp/timed.sh"
  sync
  if ! echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    echo "bench: could not drop the page cache (read-only /proc/sys?): the file may be read from cache" >&2
  fi
  biglog=$out/stream-big.log
  echo "bench: stream part 2: $bigmodel, 1 epoch, P = $bignp, in memory cgroup $cg (limit $limit)"
  # the subshell joins the cgroup, then becomes the launcher: mpirun and the ranks inherit it
  set +e
  bash -c 'echo $$ > "$1/tasks" && shift && exec "$@"' _ "$cg" \
    scripts/xt-mpirun --bind-to "${STREAM_BENCH_BIND:-core}" -np "$bignp" "$tmp/timed.sh" "$bin" train "$tmp/big.ini" > "$biglog" 2>&1
  code=$?
  set -e
  cgmax=$(cat "$cg/memory.max_usage_in_bytes" 2>/dev/null || echo "")
  failcnt=$(cat "$cg/memory.failcnt" 2>/dev/null || echo "?")
  if [ $code -eq 0 ]; then
    bigstatus=ran bignote="$rows rows ($((rows * rowbytes / 1048576)) MiB), shuffle = $bigshuffle; cgroup failcnt $failcnt; log: $biglog"
    bigsps=$(awk -F, 'NR == 2 { print $7 }' "$tmp/big/metrics.csv")
  else
    bigstatus=failed bignote="exit $code (failcnt $failcnt; OOM-killed?); log: $biglog"
    tail -5 "$biglog"
  fi
fi

/usr/bin/python3 - "$raw" "$out/stream.csv" "$reps" "$budget1" "$bigstatus" "$bignote" "$biglog" \
  "$rssdir" "$cgmax" "$bigsps" <<'PY'
import glob, os, re, statistics, sys
from collections import defaultdict
raw, out, reps, budget1, bigstatus, bignote, biglog, rssdir, cgmax, bigsps = sys.argv[1:11]
NUM = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf)"

def totals(line):
    """The key=value pairs of a 'stream totals:' line."""
    if "stream totals:" not in line:
        return {}
    return {k: float(v) for k, v in re.findall(r"(\w+)=(" + NUM + ")", line.split("stream totals:", 1)[1])}

tp, st, acc = defaultdict(list), defaultdict(list), {}
for line in open(raw):
    kind, rest = line.rstrip("\n").split(",", 1)
    if kind == "tp":
        P, mode, v = rest.split(",")
        tp[(int(P), mode)].append(float(v))
    elif kind == "st":
        P, mode, text = rest.split(",", 2)
        st[(int(P), mode)].append(totals(text))
    elif kind == "acc":
        P, mode, v, epochs = rest.split(",")
        acc[mode] = (int(P), v, epochs)

med = lambda xs: statistics.median(xs) if xs else float("nan")
rows = ["part,measure,P,mode,value,target"]
label = {"memory": "in memory", "stream": "streamed", "block": "streamed, block"}
print("\nstreaming, part 1: Fashion-MNIST MLP 784-256-128-10, warm page cache, one BLAS thread per "
      "rank; streamed with data.memory_budget = %s; medians of %s repetitions x epochs 2-3" % (budget1, reps))
print("%2s  %-16s %10s %6s %6s %13s %7s" % ("P", "mode", "samples/s", "ratio", "target", "amplification", "hidden"))
for P in (1, 2):
    base = med(tp[(P, "memory")])
    for mode in ("memory", "stream", "block"):
        v = med(tp[(P, mode)])
        ratio = v / base if base else float("nan")
        amp = med([t["amplification"] for t in st[(P, mode)] if "amplification" in t])
        hid = med([t["hidden"] for t in st[(P, mode)] if "hidden" in t])
        target = "" if mode == "memory" else (">=0.90 " + ("met" if ratio >= 0.90 else "MISSED"))
        print("%2d  %-16s %10.0f %6.2f %6s %13s %7s" % (
            P, label[mode], v, ratio, target.split()[-1] if target else "",
            "" if mode == "memory" else "%.3f" % amp, "" if mode == "memory" else "%.3f" % hid))
        rows.append("1,samples_per_s,%d,%s,%.1f," % (P, mode, v))
        if mode != "memory":
            rows.append("1,ratio_to_memory,%d,%s,%.4f,>=0.90" % (P, mode, ratio))
            rows.append("1,amplification,%d,%s,%.4f," % (P, mode, amp))
            rows.append("1,hidden,%d,%s,%.4f," % (P, mode, hid))
for mode in ("true", "block"):
    if mode in acc:
        P, v, epochs = acc[mode]
        print("test accuracy, train.shuffle = %-5s (P = %d, %s epochs, early stopping): %s" % (mode, P, epochs, v))
        rows.append("1,test_accuracy,%d,shuffle_%s,%s," % (P, "row" if mode == "true" else mode, v))

print("\nstreaming, part 2 (larger than memory): %s; %s" % (bigstatus, bignote))
if bigstatus in ("ran", "failed") and os.path.exists(biglog):
    log = open(biglog, errors="replace").read().splitlines()
    tot = next((totals(l) for l in log if "stream totals:" in l), {})
    # the banner line that names the budget (not the settings dump, not the totals)
    bl = next((l for l in log if re.search("budget", l, re.I) and "stream totals:" not in l
               and not re.match(r"^\s+\[[a-z_]+\]", l)), "")
    # the size "per rank" when the line says so, else the first size after "budget"
    size = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(TiB|GiB|MiB|KiB|TB|GB|MB|KB|T|G|M|K|bytes|B)?\b"
    budget = None
    m = re.search(size + r"\s*(?:/|per)\s*rank", bl, re.I) or re.search(r"budget\D*?" + size, bl, re.I)
    if m:
        scale = {"t": 2**40, "g": 2**30, "m": 2**20, "k": 2**10}.get((m.group(2) or "b")[0].lower(), 1)
        budget = float(m.group(1)) * scale
    mode_line = next((l.strip() for l in log if re.search(r"stream|in memory", l, re.I)
                      and "stream totals:" not in l and not re.match(r"^\s+\[[a-z_]+\]", l)), "")
    print("banner: %s" % (mode_line or "(no line says streaming or in memory)"))
    print("budget line: %s" % (bl.strip() or "(none found)"))
    print("budget parsed: %s" % ("%.1f MiB per rank" % (budget / 2**20) if budget else "(could not parse)"))
    if bigsps:
        print("samples/s (epoch 1, all ranks): %s" % bigsps)
        rows.append("2,samples_per_s,2,stream,%s," % bigsps)
    if tot:
        print("stream totals: " + " ".join("%s=%s" % (k, "%d" % v if v == int(v) else "%g" % v)
                                           for k, v in tot.items()))
        h = tot.get("hidden", float("nan"))
        print("hidden share %.3f (target >= 0.8: %s); amplification %.3f" % (
            h, "met" if h >= 0.8 else "MISSED", tot.get("amplification", float("nan"))))
        rows.append("2,hidden,2,stream,%.4f,>=0.8" % h)
        rows.append("2,amplification,2,stream,%.4f," % tot.get("amplification", float("nan")))
        for k in ("bytes_read", "bytes_needed", "io_s", "wait_s"):
            if k in tot:
                rows.append("2,%s,2,stream,%.17g," % (k, tot[k]))
    else:
        print("stream totals: (no 'stream totals:' line in the log)")
    if budget:
        rows.append("2,budget_mib,2,rank,%.1f," % (budget / 2**20))
    for f in sorted(glob.glob(os.path.join(rssdir, "rank.*"))):
        m = re.search(r"rank_peak_rss_kib=(\d+)", open(f).read())
        if not m:
            continue
        mib = int(m.group(1)) / 1024
        r = f.rsplit(".", 1)[1]
        verdict = ("target <= budget + 64 MiB = %.0f MiB: %s" % (budget / 2**20 + 64, "met" if mib <= budget / 2**20 + 64 else "MISSED")
                   if budget else "no budget to compare with")
        print("rank %s peak RSS %.1f MiB (%s)" % (r, mib, verdict))
        rows.append("2,peak_rss_mib,2,rank%s,%.1f,%s" % (r, mib, "<=%.1f" % (budget / 2**20 + 64) if budget else ""))
    if cgmax:
        print("cgroup memory.max_usage_in_bytes: %.1f MiB (page cache included)" % (int(cgmax) / 2**20))
        rows.append("2,cgroup_max_usage_mib,2,cgroup,%.1f," % (int(cgmax) / 2**20))
NP = os.environ.get("STREAM_BENCH_NP", "2")  # part 2's rank count goes in the P column
rows = [",".join(f[:2] + [NP] + f[3:]) if f[0] == "2" else r
        for r, f in ((r, r.split(",")) for r in rows)]
open(out, "w").write("\n".join(rows) + "\n")
print("\nwrote %s" % out)
PY
