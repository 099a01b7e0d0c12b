#!/usr/bin/env bash
# comm.overlap (issue 19): exposed communication of a deep MLP across two "hosts", with and
# without overlap, measured side by side.
#
# The 784-1024-1024-1024-10 MLP (2.9M parameters, 11.6 MB of gradient) on Fashion-MNIST,
# global batch 1024, two ranks in two network namespaces joined by a veth link shaped to
# RATE (default 1gbit; scripts/netns/netns-cluster.sh), one BLAS thread per rank. Three
# paths, interleaved rep by rep:
#   mpi      optim.shard = false, comm.overlap = false: MPI_Allreduce after backward
#   shard    optim.shard = true,  comm.overlap = false: MPI reduce-scatter + allgather after
#            backward (the default without overlap)
#   overlap  comm.overlap = true: ring allreduces of layer buckets moved on between pieces
#            of backward
# Each run trains EPOCHS (3) epochs without validation or checkpoints; epochs 2.. count
# (epoch 1 warms up). Per path: medians over runs and epochs of the exposed communication
# per epoch (allreduce_s: the time the steps wait for the reduction after backward, the
# sharded update's allgather included), backward_s and epoch_s, and the ratio to mpi.
# Needs root (namespaces). Takes about 3 minutes with the defaults.
#
# Usage: bench/overlap.sh [XENTRAIN] [DATA.h5] [REPS] [OUT_DIR]   (defaults: build-release/
#        xentrain, data/fashion-mnist.h5, 3, bench/out)
# Environment: RATE (1gbit), EPOCHS (3), PATHS ("mpi shard overlap")
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(realpath "${1:-$root/build-release/xentrain}")
data=$(realpath "${2:-$root/data/fashion-mnist.h5}")
reps=${3:-3}
out=${4:-$root/bench/out}
rate=${RATE:-1gbit} epochs=${EPOCHS:-3} paths=${PATHS:-"mpi shard overlap"}
[ -x "$bin" ] || { echo "overlap.sh: no executable $bin (build it: scripts/build.sh)" >&2; exit 2; }
[ -f "$data" ] || { echo "overlap.sh: no data $data (scripts/prepare-fashion-mnist.sh)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "overlap.sh: needs root (network namespaces)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$out" && out=$(realpath "$out")
work=$(mktemp -d) # scratch run directories and the config, removed on exit
trap 'rm -rf "$work"' EXIT
cat > "$work/deep.ini" <<INI
[data]
train = $data:/train
normalize = scale
[model]
type = mlp
hidden = 1024,1024,1024
[optim]
lr = 0.05
momentum = 0.9
[train]
epochs = $epochs
batch_size = 1024
seed = 42
progress = false
[checkpoint]
every = 0
INI
sets() {
  case $1 in
    mpi) echo "--set optim.shard=false --set comm.overlap=false" ;;
    shard) echo "--set optim.shard=true --set comm.overlap=false" ;;
    overlap) echo "--set comm.overlap=true" ;;
    *) echo "overlap.sh: unknown path $1" >&2; exit 2 ;;
  esac
}
csv=$out/overlap.csv
echo "path,rep,epoch,exposed_s,backward_s,epoch_s" > "$csv"
for rep in $(seq "$reps"); do
  for p in $paths; do
    rd=$work/$p.$rep
    # shellcheck disable=SC2046
    "$root/scripts/netns/netns-cluster.sh" --hosts 2 --name "xo$(($$ % 100000))" --rate "$rate" run -- \
      -np 2 --map-by node -x OPENBLAS_NUM_THREADS "$bin" train "$work/deep.ini" \
      --set run.dir="$rd" $(sets "$p") > "$rd.log" 2>&1 ||
      { echo "overlap.sh: the $p run failed (log: $rd.log)" >&2; cp "$rd.log" "$out/"; exit 1; }
    # exposed: allreduce_s (with the sharded update's allgather)
    awk -F, -v p="$p" -v r="$rep" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
      $1 > 1 { x = $c["allreduce_s"]
               printf "%s,%s,%s,%.4f,%.4f,%.4f\n", p, r, $1, x, $c["backward_s"], $c["epoch_s"] }' \
      "$rd/metrics.csv" >> "$csv"
    grep -m1 "^overlap totals" "$rd.log" | sed "s/^/$p rep $rep: /"
  done
done
echo "per epoch, medians over $reps run(s) x epochs 2..$epochs (rate $rate):"
awk -F, -v order="$paths" 'NR > 1 { n[$1]++; x[$1, n[$1]] = $4; b[$1, n[$1]] = $5; e[$1, n[$1]] = $6 }
  function med(a, p, k,   v, i, j, t) { for (i = 1; i <= k; i++) v[i] = a[p, i]
    for (i = 2; i <= k; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  END { base = ("mpi" in n) ? med(x, "mpi", n["mpi"]) : 0
    printf "%-8s %12s %12s %10s %14s\n", "path", "exposed_s", "backward_s", "epoch_s", "exposed/mpi"
    k = split(order, ps, " ")
    for (q = 1; q <= k; q++) { p = ps[q]; if (!(p in n)) continue; m = med(x, p, n[p])
      printf "%-8s %12.3f %12.3f %10.3f %14s\n", p, m, med(b, p, n[p]), med(e, p, n[p]),
             (base > 0 ? sprintf("%.2f", m / base) : "-") } }' "$csv"
echo "(rows: $csv)"
