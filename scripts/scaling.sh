#!/usr/bin/env bash
# Strong and weak scaling of xentrain, plus a raw MPI_Allreduce size sweep for the cost model of
# docs/scaling.md.
#
#   scripts/scaling.sh [options]
#
# Strong scaling: the global batch is fixed (--batch, default 128), P ranks share it.
# Weak scaling:   every rank keeps --batch-per-rank rows (default 128): global batch = P x that
#                 (train.batch_per_rank; this changes the optimisation, not just the speed).
# Options
#   --data F.h5        training data (default data/fashion-mnist.h5, made by
#                      scripts/prepare-fashion-mnist.sh when missing; --gen uses synthetic blobs)
#   --gen              synthetic data instead: 60000 x 784, 10 classes (xentrain gen blobs)
#   --models "M..."    mlp (784-256-128-10) and/or softmax (784-10); default "mlp softmax"
#   --ranks "P..."     default "1 2 4". This machine has 2 cores: P > 2 is OVERSUBSCRIBED (ranks
#                      share cores; --mca mpi_yield_when_idle 1, --bind-to none), so its speedup
#                      is capped at 2 and measures the runtime's behaviour, not the algorithm's
#   --reps N           repetitions of every point (default 3); the CSV holds the medians
#   --epochs E         epochs per run (default 2); figures are the median over epochs 2..E
#                      (epoch 1 includes warm-up), or epoch 1 when E = 1
#   --batch B          strong scaling global batch (default 128)
#   --batch-per-rank b weak scaling rows per rank (default 128)
#   --modes "..."      strong and/or weak (default "strong weak")
#   --reduce "..."     the step's reduction paths to compare, each a column of scaling-wide.csv
#                      (default "mpi shard+shm"):
#                        mpi        every rank updates everything, MPI_Allreduce (the old way)
#                        shard      optim.shard: reduce-scatter, 1/P of the update, allgather (MPI)
#                        shm        MPI_Allreduce replaced by the node's shared memory
#                        shard+shm  both
#                        overlap    ring allreduce layer by layer while backward runs (comm.overlap)
#                        auto       whatever the defaults choose
#   --netns            run across network namespaces (scripts/netns/netns-cluster.sh; root):
#                      one rank per namespace (hosts = P, at most 9; two ranks in one namespace
#                      crash Open MPI 4.1.4 here, see netns-cluster.sh), MPI over TCP on veth
#   --rate R           with --netns: tbf rate limit of every link (e.g. 1gbit)
#   --no-allreduce     skip the raw MPI_Allreduce sweep
#   --out DIR          output directory (default runs/scaling)
#   --xentrain BIN     default build-release/xentrain (built when missing)
# Output (DIR):
#   raw.csv        one row per run and epoch used
#   scaling.csv    mode,model,reduce,P,hosts,oversubscribed,global_batch,steps_per_epoch,n_params,
#                  samples_per_s,epoch_s,compute_s,optim_s,allreduce_s,allreduce_us_per_step,busbw_GBps,
#                  speedup,efficiency   (medians over repetitions; see below)
#   scaling-wide.csv mode,model,P, then samples_per_s and efficiency of every --reduce path: the
#                  paths side by side (speedups against P = 1 of the same path)
#   allreduce.csv  transport,P,bytes,seconds (median of 50 calls after 10 warm-up calls)
#   speedup.png, efficiency.png (gnuplot)
# Definitions: bytes = 4 (n_params + 6) (one float buffer: gradients and the step's six slots);
#   allreduce_us_per_step = allreduce_s / steps_per_epoch (rank 0's time inside MPI_Allreduce, so
#   it includes waiting for slower ranks); busbw = 2 (P-1)/P x bytes / time per allreduce (the ring
#   bound: what each link must carry); speedup = samples_per_s(P) / samples_per_s(1) of the same mode
#   and model; efficiency = speedup / P (for weak scaling that is throughput per rank against P = 1).
# A default run (2 models x 2 modes x 2 reduction paths x 3 P x 3 reps x 2 epochs of
# Fashion-MNIST) takes about 6 min.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# The runs use Open MPI's mpirun options (--bind-to, --mca, --oversubscribe) and its rsh
# launcher across namespaces: say so instead of failing obscurely under another MPI.
mpirun --version 2>&1 | grep -qE "Open MPI|OpenRTE" ||
  { echo "scaling.sh: needs Open MPI's mpirun (Debian's default); 'mpirun' here is another MPI" >&2; exit 2; }
data=$root/data/fashion-mnist.h5 gen=0 models="mlp softmax" ranks="1 2 4" reps=3 epochs=2
batch=128 bpr=128 modes="strong weak" netns=0 rate= allreduce=1 out=$root/runs/scaling
reduces="mpi shard+shm"
bin=$root/build-release/xentrain
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --gen) gen=1; shift ;;
    --models) models=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --batch-per-rank) bpr=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --reduce) reduces=$2; shift 2 ;;
    --netns) netns=1; shift ;;
    --rate) rate=$2; shift 2 ;;
    --no-allreduce) allreduce=0; shift ;;
    --out) out=$2; shift 2 ;;
    --xentrain) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,54p' "$0"; exit 0 ;;
    *) echo "scaling.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$bin" ]; then
  BUILD_TYPE=Release JOBS=2 scripts/build.sh "$(dirname "$bin")" >/dev/null
fi
if [ "$gen" -eq 1 ]; then
  data=$out/blobs-784.h5
  [ -s "$data" ] || "$bin" gen blobs --rows 60000 --features 784 --classes 10 --seed 1 --out "$data" >/dev/null
elif [ ! -s "$data" ]; then
  scripts/prepare-fashion-mnist.sh "$bin" "$data"
fi
cores=$(nproc)
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1

launch() { # launch P CMD...: mpirun on this host, or across namespaces
  local np=$1; shift
  local extra=()
  [ "$np" -gt "$cores" ] && extra=(--oversubscribe --mca mpi_yield_when_idle 1 --bind-to none)
  if [ "$netns" -eq 1 ]; then
    "$root/scripts/netns/netns-cluster.sh" --hosts "$np" --name "xs$(($$ % 100000))" ${rate:+--rate "$rate"} \
      run -- -np "$np" --map-by node \
      $([ "$np" -gt "$cores" ] && echo "--oversubscribe --mca mpi_yield_when_idle 1") "$@"
  else
    mpirun -np "$np" "${extra[@]}" "$@"
  fi
}
hosts_for() { if [ "$netns" -eq 1 ]; then echo "$1"; else echo 1; fi; }
reduce_sets() { # reduce_sets PATH: the --set options of a reduction path
  case "$1" in
    mpi) echo "--set optim.shard=false --set comm.allreduce=mpi --set comm.overlap=false" ;;
    shard) echo "--set optim.shard=true --set comm.allreduce=mpi --set comm.overlap=false" ;;
    shm) echo "--set optim.shard=false --set comm.allreduce=shm --set comm.overlap=false" ;;
    shard+shm) echo "--set optim.shard=true --set comm.allreduce=shm --set comm.overlap=false" ;;
    overlap) echo "--set optim.shard=false --set comm.allreduce=mpi --set comm.overlap=true" ;;
    auto) echo "" ;;
    *) echo "scaling.sh: unknown --reduce path '$1' (mpi, shard, shm, shard+shm, overlap, auto)" >&2; exit 2 ;;
  esac
}
for rd in $reduces; do reduce_sets "$rd" >/dev/null || exit 2; done

raw=$out/raw.csv
echo "mode,model,reduce,P,hosts,rep,epoch,global_batch,steps_per_epoch,n_params,samples_per_s,epoch_s,compute_s,allreduce_s,optim_s" > "$raw"
t_start=$(date +%s)
for rep in $(seq "$reps"); do # repetitions outermost: slow drifts of a shared machine hit every P
  for model in $models; do
    cfg=configs/fashion-mnist-$model.ini
    for mode in $modes; do
      for np in $ranks; do for red in $reduces; do # the paths interleaved: drifts hit all alike
        if [ "$mode" = strong ]; then bset=(--set train.batch_size="$batch")
        else bset=(--set train.batch_per_rank="$bpr"); fi
        rd=$tmp/run
        rm -rf "$rd"
        # shellcheck disable=SC2046 # the path's --set options are meant to split
        if ! launch "$np" "$bin" train "$cfg" --set data.train="$data:/train" --set data.val= \
             --set data.test= --set early_stopping.enabled=false --set train.epochs="$epochs" \
             --set checkpoint.every=0 --set train.resume=never --set train.progress=false \
             --set optim.schedule=constant --set run.dir="$rd" "${bset[@]}" $(reduce_sets "$red") > "$tmp/log" 2>&1; then
          echo "scaling.sh: run failed ($mode $model $red P=$np):" >&2; tail -20 "$tmp/log" >&2; exit 1
        fi
        npar=$(sed -n 's/.* \([0-9]*\) parameters.*/\1/p' "$tmp/log" | head -1)
        steps=$(sed -n 's/^batch *global \([0-9]*\) rows per update[^(]*(\([0-9]*\) steps.*/\2/p' "$tmp/log" | head -1)
        gb=$(sed -n 's/^batch *global \([0-9]*\) rows.*/\1/p' "$tmp/log" | head -1)
        awk -F, -v m="$mode" -v mo="$model" -v rdn="$red" -v p="$np" -v h="$(hosts_for "$np")" -v r="$rep" \
            -v gb="$gb" -v st="$steps" -v n="$npar" -v E="$epochs" \
          'NR > 1 && ($1 >= 2 || E == 1) { printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n",
              m, mo, rdn, p, h, r, $1, gb, st, n, $7, $12, $8, $9, $17 }' "$rd/metrics.csv" >> "$raw"
        printf 'scaling: rep %s %-7s %-6s %-9s P=%s  %s samples/s\n' "$rep" "$model" "$mode" "$red" "$np" \
          "$(tail -1 "$raw" | cut -d, -f11)"
      done; done
    done
  done
done

# medians over repetitions (and epochs), then speedup and efficiency against P = 1 of the path
csv=$out/scaling.csv
echo "mode,model,reduce,P,hosts,oversubscribed,global_batch,steps_per_epoch,n_params,samples_per_s,epoch_s,compute_s,optim_s,allreduce_s,allreduce_us_per_step,busbw_GBps,speedup,efficiency" > "$csv"
for model in $models; do
  for mode in $modes; do
    for red in $reduces; do
    base=
    for np in $ranks; do
      med() { # med COLUMN: median of that raw.csv column for this point
        awk -F, -v m="$mode" -v mo="$model" -v rd="$red" -v p="$np" -v c="$1" \
          '$1 == m && $2 == mo && $3 == rd && $4 == p { print $c }' "$raw" | sort -g |
          awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
                                    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
      }
      row=$(awk -F, -v m="$mode" -v mo="$model" -v rd="$red" -v p="$np" '$1 == m && $2 == mo && $3 == rd && $4 == p { print; exit }' "$raw")
      [ -n "$row" ] || continue
      h=$(echo "$row" | cut -d, -f5) gb=$(echo "$row" | cut -d, -f8) st=$(echo "$row" | cut -d, -f9)
      n=$(echo "$row" | cut -d, -f10)
      sps=$(med 11) eps=$(med 12) cs=$(med 13) ars=$(med 14) ops=$(med 15)
      [ -n "$base" ] || base=$sps
      [ "$np" -eq 1 ] && base=$sps
      awk -v m="$mode" -v mo="$model" -v rd="$red" -v p="$np" -v h="$h" -v ov="$([ "$np" -gt "$cores" ] && echo yes || echo no)" \
          -v gb="$gb" -v st="$st" -v n="$n" -v sps="$sps" -v eps="$eps" -v cs="$cs" -v ops="$ops" -v ars="$ars" -v b="$base" \
        'BEGIN { t = ars / st; bytes = 4 * (n + 6);
                 bw = (p > 1 && t > 0) ? 2 * (p - 1) / p * bytes / t / 1e9 : 0;
                 sp = sps / b;
                 printf "%s,%s,%s,%d,%d,%s,%d,%d,%d,%.0f,%.4f,%.4f,%.4f,%.4f,%.1f,%.3f,%.3f,%.3f\n",
                   m, mo, rd, p, h, ov, gb, st, n, sps, eps, cs, ops, ars, t * 1e6, bw, sp, sp / p }' >> "$csv"
    done
    done
  done
done
# the paths side by side: samples/s and efficiency of each as columns
wide=$out/scaling-wide.csv
{ printf 'mode,model,P'; for red in $reduces; do printf ',%s_samples_per_s,%s_efficiency' "$red" "$red"; done; echo
  awk -F, -v reds="$reduces" 'NR > 1 { k = $1 "," $2 "," $4; if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
                                       sps[k, $3] = $10; eff[k, $3] = $18 }
    END { n = split(reds, r, " "); for (i = 1; i <= nk; i++) { line = order[i]
            for (j = 1; j <= n; j++) line = line "," sps[order[i], r[j]] "," eff[order[i], r[j]]
            print line } }' "$csv"; } > "$wide"
echo "scaling: training runs took $(( $(date +%s) - t_start )) s"
column -s, -t < "$csv"
echo
column -s, -t < "$wide"

# raw MPI_Allreduce sweep: float sums, 8 B .. 16 MiB, on the transports at hand
if [ "$allreduce" -eq 1 ]; then
  cat > "$tmp/ar.c" <<'C'
/* MPI_Allreduce(SUM, float, in place) for sizes 8 B .. 16 MiB: median of 50 after 10 warm-up. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int r, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const char *tag = argc > 1 ? argv[1] : "?";
    float *buf = calloc((size_t)1 << 22, sizeof *buf);
    double t[50];
    for (size_t n = 2; n <= ((size_t)1 << 22); n *= 4) {
        for (int k = 0; k < 60; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0, mx;
            MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (k >= 10) t[k - 10] = mx;
        }
        qsort(t, 50, sizeof *t, cmp);
        if (r == 0) printf("%s,%d,%zu,%.9f\n", tag, P, n * sizeof(float), 0.5 * (t[24] + t[25]));
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
C
  mpicc -O2 -o "$tmp/ar" "$tmp/ar.c"
  arcsv=$out/allreduce.csv
  echo "transport,P,bytes,seconds" > "$arcsv"
  mpirun -np 2 --mca btl self,vader "$tmp/ar" shm >> "$arcsv"
  mpirun -np 2 --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo "$tmp/ar" tcp-lo >> "$arcsv"
  mpirun -np 4 --oversubscribe --mca mpi_yield_when_idle 1 --bind-to none --mca btl self,vader "$tmp/ar" shm-oversub >> "$arcsv"
  if [ "$netns" -eq 1 ]; then
    "$root/scripts/netns/netns-cluster.sh" --hosts 2 --name "xa$(($$ % 100000))" ${rate:+--rate "$rate"} run -- \
      -np 2 "$tmp/ar" veth >> "$arcsv"
  fi
  # alpha-beta fit per transport at P = 2, where the ring model 2(P-1) alpha + 2(P-1)/P n beta
  # is t(n) = 2 alpha + n beta: least squares on the RELATIVE error (weights 1/t^2), so that the
  # 8-byte latency and the MiB-sized bandwidth both count (plain least squares lets the largest
  # sizes decide and returns a meaningless, even negative, intercept)
  awk -F, 'NR > 1 && $2 == 2 { k = $1; w = 1 / ($4 * $4); S[k] += w; X[k] += w * $3; Y[k] += w * $4;
                                XX[k] += w * $3 * $3; XY[k] += w * $3 * $4 }
           END { for (k in S) { b = (S[k] * XY[k] - X[k] * Y[k]) / (S[k] * XX[k] - X[k] * X[k]);
                                a = (Y[k] - b * X[k]) / S[k];
                                printf "allreduce fit %-7s P=2: alpha = %.2f us, beta = %.3f ns/byte (1/beta = %.2f GB/s)\n",
                                       k, a / 2 * 1e6, b * 1e9, 1 / b / 1e9 } }' "$arcsv" | sort | tee "$out/allreduce-fit.txt"
fi

# plots
if command -v gnuplot >/dev/null; then
  plots=
  for model in $models; do for mode in $modes; do for red in $reduces; do
    grep -q "^$mode,$model,$red," "$csv" || continue
    awk -F, -v m="$mode" -v mo="$model" -v rd="$red" '$1 == m && $2 == mo && $3 == rd { print $4, $17, $18 }' "$csv" > "$tmp/$mode-$model-$red.dat"
    plots="$plots${plots:+, }'$tmp/$mode-$model-$red.dat' using 1:COL with linespoints title '$mode $model $red'"
  done; done; done
  maxp=$(echo "$ranks" | tr ' ' '\n' | sort -n | tail -1)
  gnuplot <<G
set terminal pngcairo size 800,560 noenhanced
set xlabel 'P (ranks; this machine has $cores cores: P > $cores oversubscribed)'
set key left top
set grid
set xrange [0.8:$maxp * 1.25]
set logscale x 2
set output '$out/speedup.png'
set title 'xentrain speedup (samples/s relative to P = 1), $(basename "$data")'
set ylabel 'speedup'
plot x title 'ideal' with lines dashtype 2, ($cores < x ? $cores : x) title 'core count' with lines dashtype 3, ${plots//COL/2}
set output '$out/efficiency.png'
set title 'xentrain parallel efficiency (speedup / P)'
set ylabel 'efficiency'
set yrange [0:1.2]
plot 1 title 'ideal' with lines dashtype 2, ($cores < x ? $cores/x : 1) title 'core count' with lines dashtype 3, ${plots//COL/3}
G
  echo "scaling: wrote $csv, $raw, $([ "$allreduce" -eq 1 ] && echo "$out/allreduce.csv, ")$out/speedup.png, $out/efficiency.png"
fi
