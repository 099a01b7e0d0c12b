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
#   --slurm            run inside a Slurm allocation (salloc or sbatch; see "Inside an allocation"
#                      below and scripts/slurm/scaling.sbatch): srun launches every point
#   --nodes "n..."     with --slurm: node counts (default 1, 2, 4, ... up to the allocation's
#                      SLURM_JOB_NUM_NODES, and that number)
#   --ranks-per-node "k..."  with --slurm: ranks per node (default 1, 2, 4, ... up to the
#                      allocation's tasks per node, and that number); every nodes x ranks-per-node
#                      pair is a point (1 x 1, the speedup baseline, is always added)
#   --cpu-bind B       with --slurm: srun --cpu-bind=B (default: the site's default)
#   --net NAME         the inter-node transport's name in the CSVs (default: detected, e.g.
#                      tcp:eth0, tcp:xtnet0 or ib)
#   --link-rate R      the inter-node link rate in the CSVs (default: detected on the first node
#                      from the interface's tc tbf rate, /sys/class/net/IF/speed or the
#                      InfiniBand port's rate; "unknown" otherwise)
#   --gen-rows N       rows of the --gen data set (default 60000)
#   --no-allreduce     skip the raw MPI_Allreduce sweep
#   --out DIR          output directory (default runs/scaling)
#   --xentrain BIN     default build-release/xentrain (built when missing)
# Output (DIR):
#   raw.csv        one row per run and epoch used
#   scaling.csv    mode,model,reduce,P,hosts,oversubscribed,global_batch,steps_per_epoch,n_params,
#                  samples_per_s,epoch_s,compute_s,optim_s,allreduce_s,allreduce_us_per_step,busbw_GBps,
#                  speedup,efficiency,ranks_per_node,binding,transport,link_rate   (medians over
#                  repetitions; see below). The placement of every row: hosts (nodes) x
#                  ranks_per_node = P; binding "none" (every rank may run on all of its node's
#                  CPUs) or "cpus:" and each rank's CPU list (probed with the same launch);
#                  transport none (P = 1), shm (one node), the network (e.g. tcp:xtnet0) or
#                  shm+network; link_rate of the inter-node link ("-" on one host)
#   scaling-wide.csv mode,model,P,hosts,ranks_per_node, then samples_per_s and efficiency of every
#                  --reduce path: the paths side by side (speedups against P = 1 of the same path)
#   allreduce.csv  transport,P,bytes,seconds (median of 50 calls after 10 warm-up calls)
#   allreduce-fit.csv, allreduce-fit.txt  transport,P,alpha_us,beta_ns_per_byte,GBps,largest_GBps,
#                  link_rate: the alpha-beta model fitted per transport and P (below), and
#                  bytes / seconds of the largest message (a shaped link's token bucket lets
#                  mid-sized messages through at full speed, which the fit follows)
#   speedup.png, efficiency.png (gnuplot)
# Inside an allocation (--slurm): the points are the allocation's node counts and ranks per node,
#   each launched with `srun --mpi=pmix --nodes=n --ntasks-per-node=k` (XT_SRUN_MPI overrides the
#   plugin); the raw allreduce runs on one node (shm, 2 ranks) and across 2 and all nodes (one rank
#   per node). Every file the ranks read or write (the binaries, run directories) is under --out,
#   which must be on a file system all nodes share (the default runs/scaling under the project
#   is, on a cluster where the project is). e.g.
#     salloc -N 4 --ntasks-per-node=8 scripts/scaling.sh --slurm --gen --models mlp --modes strong
#     sbatch -N 4 --ntasks-per-node=8 scripts/slurm/scaling.sbatch --models mlp
# Definitions: bytes = 4 (n_params + 6) (one float buffer: gradients and the step's six slots);
#   the allreduce fit per transport and P: t(n) = 2 (P-1) alpha + 2 (P-1)/P n beta (the ring
#   model), least squares on the relative error;
#   allreduce_us_per_step = allreduce_s / steps_per_epoch (rank 0's time inside MPI_Allreduce, so
#   it includes waiting for slower ranks); busbw = 2 (P-1)/P x bytes / time per allreduce (the ring
#   bound: what each link must carry); speedup = samples_per_s(P) / samples_per_s(1) of the same mode
#   and model; efficiency = speedup / P (for weak scaling that is throughput per rank against P = 1).
# A default run (2 models x 2 modes x 2 reduction paths x 3 P x 3 reps x 2 epochs of
# Fashion-MNIST) takes about 6 min.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
data=$root/data/fashion-mnist.h5 gen=0 gen_rows=60000 models="mlp softmax" ranks="1 2 4" reps=3 epochs=2
batch=128 bpr=128 modes="strong weak" netns=0 rate='' allreduce=1 out=$root/runs/scaling
reduces="mpi shard+shm"
slurm=0 nodes_list='' rpn_list='' cpubind='' net='' link_rate=''
bin=$root/build-release/xentrain
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --gen) gen=1; shift ;;
    --gen-rows) gen_rows=$2; shift 2 ;;
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
    --slurm) slurm=1; shift ;;
    --nodes) nodes_list=$2; shift 2 ;;
    --ranks-per-node) rpn_list=$2; shift 2 ;;
    --cpu-bind) cpubind=$2; shift 2 ;;
    --net) net=$2; shift 2 ;;
    --link-rate) link_rate=$2; shift 2 ;;
    --no-allreduce) allreduce=0; shift ;;
    --out) out=$2; shift 2 ;;
    --xentrain) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "scaling.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "scaling.sh: $*" >&2; exit 2; }
if [ "$slurm" -eq 1 ]; then
  [ "$netns" -eq 0 ] || die "--slurm and --netns exclude each other"
  [ -n "${SLURM_JOB_ID:-}" ] ||
    die "--slurm runs inside an allocation: salloc -N NODES --ntasks-per-node=K $0 --slurm ... (or sbatch scripts/slurm/scaling.sbatch)"
  command -v srun >/dev/null || die "--slurm: srun not found"
else
  # The runs use Open MPI's mpirun options (--bind-to, --mca, --oversubscribe) and its rsh
  # launcher across namespaces: say so instead of failing obscurely under another MPI.
  mpirun --version 2>&1 | grep -qE "Open MPI|OpenRTE" ||
    die "needs Open MPI's mpirun (Debian's default); 'mpirun' here is another MPI (or use --slurm)"
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
# scratch: under --out in an allocation (the ranks on other nodes read and write it), else /tmp
if [ "$slurm" -eq 1 ]; then tmp=$(mktemp -d -p "$out"); else tmp=$(mktemp -d); fi
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$bin" ]; then
  BUILD_TYPE=Release JOBS=2 scripts/build.sh "$(dirname "$bin")" >/dev/null
fi
cores=$(nproc)
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1

pow2_upto() { # pow2_upto N: 1 2 4 ... below N, then N
  local v=1
  while [ "$v" -lt "$1" ]; do printf '%s ' "$v"; v=$((v * 2)); done
  echo "$1"
}
srun_on() { # srun_on NODES PER_NODE CMD...: one step inside the allocation
  local n=$1 k=$2; shift 2
  srun --mpi="${XT_SRUN_MPI:-pmix}" --nodes="$n" --ntasks-per-node="$k" --ntasks=$((n * k)) \
    --kill-on-bad-exit=1 ${cpubind:+--cpu-bind="$cpubind"} "$@"
}
launch() { # launch P NODES PER_NODE CMD...: mpirun on this host, across namespaces, or srun
  local np=$1 nn=$2 k=$3; shift 3
  local extra=()
  if [ "$slurm" -eq 1 ]; then
    srun_on "$nn" "$k" "$@"
  elif [ "$netns" -eq 1 ]; then
    [ "$np" -gt "$cores" ] && extra=(--oversubscribe --mca mpi_yield_when_idle 1)
    "$root/scripts/netns/netns-cluster.sh" --hosts "$np" --name "xs$(($$ % 100000))" ${rate:+--rate "$rate"} \
      run -- -np "$np" --map-by node "${extra[@]}" "$@"
  else
    [ "$np" -gt "$cores" ] && extra=(--oversubscribe --mca mpi_yield_when_idle 1 --bind-to none)
    mpirun -np "$np" "${extra[@]}" "$@"
  fi
}

# The data (the --gen set made by one rank; inside an allocation on a node of it, where MPI is
# set up for the nodes' networks)
if [ "$gen" -eq 1 ]; then
  data=$out/blobs-784-$gen_rows.h5
  if [ ! -s "$data" ]; then
    gen_cmd=("$bin" gen blobs --rows "$gen_rows" --features 784 --classes 10 --seed 1 --out "$data")
    if [ "$slurm" -eq 1 ]; then srun_on 1 1 "${gen_cmd[@]}" >/dev/null; else "${gen_cmd[@]}" >/dev/null; fi
  fi
elif [ ! -s "$data" ]; then
  scripts/prepare-fashion-mnist.sh "$bin" "$data"
fi

# The placements: "P nodes ranks_per_node", the P = 1 baseline first.
placements=()
if [ "$slurm" -eq 1 ]; then
  alloc_nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
  alloc_rpn=${SLURM_NTASKS_PER_NODE:-}
  [ -n "$alloc_rpn" ] || { alloc_rpn=${SLURM_TASKS_PER_NODE:-}; alloc_rpn=${alloc_rpn%%[(,]*}; }
  [ -n "$alloc_rpn" ] || alloc_rpn=${SLURM_CPUS_ON_NODE:-1}
  [ -n "$nodes_list" ] || nodes_list=$(pow2_upto "$alloc_nodes")
  [ -n "$rpn_list" ] || rpn_list=$(pow2_upto "$alloc_rpn")
  placements=("1 1 1")
  for nn in $nodes_list; do for k in $rpn_list; do
    [ "$nn" -le "$alloc_nodes" ] || die "--nodes $nn: the allocation has $alloc_nodes node(s)"
    [ $((nn * k)) -gt 1 ] && placements+=("$((nn * k)) $nn $k")
  done; done
else
  for np in $ranks; do
    if [ "$netns" -eq 1 ]; then placements+=("$np $np 1"); else placements+=("$np 1 $np"); fi
  done
fi
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

# What every row records about its placement.
binding_of() { # binding_of P NODES PER_NODE: "none", or "cpus:" and each rank's CPU list
  # shellcheck disable=SC2016 # for the ranks' shell
  launch "$@" sh -c 'a=$(sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" /proc/self/status)
                     o=$(cat /sys/devices/system/cpu/online); [ "$a" = "$o" ] && echo none || echo "$a"' \
    2>/dev/null | sort -u | awk '$0 == "none" { n++; next } { l = l (l ? "/" : "") $0 }
      END { if (l == "") print "none"; else print "cpus:" l }'
}
node_probe() { # on one node of the run: the network, its link rate and the node's CPU count
  # shellcheck disable=SC2016 # for the node's shell
  local cmd='
    if [ -n "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
      r=$(head -1 /sys/class/infiniband/*/ports/1/rate 2>/dev/null | head -1 | sed "s/ *(.*//; s/ //g")
      echo "ib ${r:-unknown} $(nproc)"; exit 0; fi
    i=${OMPI_MCA_btl_tcp_if_include%%,*}
    [ -n "$i" ] || i=$(ip route show default 2>/dev/null | sed -n "s/.* dev \([^ ]*\).*/\1/p" | head -1)
    r=$(tc qdisc show dev "$i" 2>/dev/null | sed -n "s/.* rate \([^ ]*\).*/\1/p" | head -1)
    if [ -z "$r" ] && [ -r "/sys/class/net/$i/speed" ]; then
      s=$(cat "/sys/class/net/$i/speed" 2>/dev/null); [ "${s:--1}" -gt 0 ] 2>/dev/null && r=${s}Mbit; fi
    if [ -z "$r" ] && ip -d link show dev "$i" 2>/dev/null | grep -qw veth; then r=veth-unshaped; fi
    echo "tcp:${i:-default} ${r:-unknown} $(nproc)"'
  if [ "$slurm" -eq 1 ]; then srun_on 1 1 sh -c "$cmd" 2>/dev/null | head -1; else sh -c "$cmd"; fi
}
node_cpus=$cores machines=1
if [ "$slurm" -eq 1 ]; then
  read -r probe_net probe_rate node_cpus < <(node_probe) || die "could not run a probe step on the allocation"
  net=${net:-$probe_net} link_rate=${link_rate:-$probe_rate}
  # nodes that share one kernel (a namespace cluster on one machine) share its cores too
  machines=$(srun_on "$alloc_nodes" 1 cat /proc/sys/kernel/random/boot_id 2>/dev/null | sort -u | wc -l)
elif [ "$netns" -eq 1 ]; then
  net=${net:-tcp:xtnet0} link_rate=${link_rate:-${rate:-unshaped}}
fi
transport_of() { # transport_of NODES PER_NODE
  if [ $(($1 * $2)) -eq 1 ]; then echo none
  elif [ "$1" -eq 1 ]; then echo shm
  elif [ "$2" -eq 1 ]; then echo "$net"
  else echo "shm+$net"; fi
}
declare -A place_binding=()
for pl in "${placements[@]}"; do
  # shellcheck disable=SC2086 # "P nodes per_node"
  place_binding[$pl]=$(binding_of $pl)
done

raw=$out/raw.csv
echo "mode,model,reduce,P,hosts,rep,epoch,global_batch,steps_per_epoch,n_params,samples_per_s,epoch_s,compute_s,allreduce_s,optim_s,ranks_per_node,binding,transport,link_rate" > "$raw"
t_start=$(date +%s)
for rep in $(seq "$reps"); do # repetitions outermost: slow drifts of a shared machine hit every P
  for model in $models; do
    cfg=configs/fashion-mnist-$model.ini
    for mode in $modes; do
      for pl in "${placements[@]}"; do for red in $reduces; do # the paths interleaved: drifts hit all alike
        read -r np nn k <<< "$pl"
        if [ "$mode" = strong ]; then bset=(--set train.batch_size="$batch")
        else bset=(--set train.batch_per_rank="$bpr"); fi
        rd=$tmp/run
        rm -rf "$rd"
        # shellcheck disable=SC2046 # the path's --set options are meant to split
        if ! launch "$np" "$nn" "$k" "$bin" train "$cfg" --set data.train="$data:/train" --set data.normalize=auto --set data.val= \
             --set data.test= --set early_stopping.enabled=false --set train.epochs="$epochs" \
             --set checkpoint.every=0 --set train.resume=never --set train.progress=false \
             --set optim.schedule=constant --set run.dir="$rd" "${bset[@]}" $(reduce_sets "$red") > "$tmp/log" 2>&1; then
          echo "scaling.sh: run failed ($mode $model $red P=$np on $nn node(s)):" >&2; tail -20 "$tmp/log" >&2; exit 1
        fi
        npar=$(sed -n 's/.* \([0-9]*\) parameters.*/\1/p' "$tmp/log" | head -1)
        steps=$(sed -n 's/^batch *global \([0-9]*\) rows per update[^(]*(\([0-9]*\) steps.*/\2/p' "$tmp/log" | head -1)
        gb=$(sed -n 's/^batch *global \([0-9]*\) rows.*/\1/p' "$tmp/log" | head -1)
        awk -F, -v m="$mode" -v mo="$model" -v rdn="$red" -v p="$np" -v h="$nn" -v r="$rep" \
            -v gb="$gb" -v st="$steps" -v n="$npar" -v E="$epochs" -v k="$k" -v bind="${place_binding[$pl]}" \
            -v tr="$(transport_of "$nn" "$k")" -v lr="$([ "$nn" -gt 1 ] && echo "$link_rate" || echo -)" \
          'NR > 1 && ($1 >= 2 || E == 1) { printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n",
              m, mo, rdn, p, h, r, $1, gb, st, n, $7, $12, $8, $9, $17, k, bind, tr, lr }' "$rd/metrics.csv" >> "$raw"
        printf 'scaling: rep %s %-7s %-6s %-9s P=%s (%s node(s) x %s)  %s samples/s\n' "$rep" "$model" "$mode" \
          "$red" "$np" "$nn" "$k" "$(tail -1 "$raw" | cut -d, -f11)"
      done; done
    done
  done
done

# medians over repetitions (and epochs), then speedup and efficiency against P = 1 of the path
csv=$out/scaling.csv
echo "mode,model,reduce,P,hosts,oversubscribed,global_batch,steps_per_epoch,n_params,samples_per_s,epoch_s,compute_s,optim_s,allreduce_s,allreduce_us_per_step,busbw_GBps,speedup,efficiency,ranks_per_node,binding,transport,link_rate" > "$csv"
for model in $models; do
  for mode in $modes; do
    for red in $reduces; do
    base=
    for pl in "${placements[@]}"; do
      read -r np nn k <<< "$pl"
      med() { # med COLUMN: median of that raw.csv column for this point
        awk -F, -v m="$mode" -v mo="$model" -v rd="$red" -v p="$np" -v h="$nn" -v k="$k" -v c="$1" \
          '$1 == m && $2 == mo && $3 == rd && $4 == p && $5 == h && $16 == k { print $c }' "$raw" | sort -g |
          awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
                                    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
      }
      row=$(awk -F, -v m="$mode" -v mo="$model" -v rd="$red" -v p="$np" -v h="$nn" -v k="$k" \
              '$1 == m && $2 == mo && $3 == rd && $4 == p && $5 == h && $16 == k { print; exit }' "$raw")
      [ -n "$row" ] || continue
      gb=$(echo "$row" | cut -d, -f8) st=$(echo "$row" | cut -d, -f9) n=$(echo "$row" | cut -d, -f10)
      place=$(echo "$row" | cut -d, -f16-19)
      sps=$(med 11) eps=$(med 12) cs=$(med 13) ars=$(med 14) ops=$(med 15)
      [ -n "$base" ] || base=$sps
      [ "$np" -eq 1 ] && base=$sps
      # oversubscribed: more ranks on a node than it has CPUs, or, when the nodes share one
      # machine (one kernel: a namespace cluster), more ranks than its CPUs
      ov=no
      if [ "$k" -gt "$node_cpus" ] || { [ "$machines" -eq 1 ] && [ "$np" -gt "$node_cpus" ]; }; then ov=yes; fi
      awk -v m="$mode" -v mo="$model" -v rd="$red" -v p="$np" -v h="$nn" -v ov="$ov" \
          -v gb="$gb" -v st="$st" -v n="$n" -v sps="$sps" -v eps="$eps" -v cs="$cs" -v ops="$ops" -v ars="$ars" -v b="$base" \
          -v place="$place" \
        'BEGIN { t = ars / st; bytes = 4 * (n + 6);
                 bw = (p > 1 && t > 0) ? 2 * (p - 1) / p * bytes / t / 1e9 : 0;
                 sp = sps / b;
                 printf "%s,%s,%s,%d,%d,%s,%d,%d,%d,%.0f,%.4f,%.4f,%.4f,%.4f,%.1f,%.3f,%.3f,%.3f,%s\n",
                   m, mo, rd, p, h, ov, gb, st, n, sps, eps, cs, ops, ars, t * 1e6, bw, sp, sp / p, place }' >> "$csv"
    done
    done
  done
done
# the paths side by side: samples/s and efficiency of each as columns
wide=$out/scaling-wide.csv
{ printf 'mode,model,P,hosts,ranks_per_node'; for red in $reduces; do printf ',%s_samples_per_s,%s_efficiency' "$red" "$red"; done; echo
  awk -F, -v reds="$reduces" 'NR > 1 { k = $1 "," $2 "," $4 "," $5 "," $19; if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
                                       sps[k, $3] = $10; eff[k, $3] = $18 }
    END { n = split(reds, r, " "); for (i = 1; i <= nk; i++) { line = order[i]
            for (j = 1; j <= n; j++) line = line "," sps[order[i], r[j]] "," eff[order[i], r[j]]
            print line } }' "$csv"; } > "$wide"
echo "scaling: training runs took $(( $(date +%s) - t_start )) s"
table() { if command -v column >/dev/null; then column -s, -t < "$1"; else cat "$1"; fi; } # bsdextrautils
table "$csv"
echo
table "$wide"

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
  declare -A ar_rate=()
  if [ "$slurm" -eq 1 ]; then
    max_nodes=$(echo "$nodes_list" | tr ' ' '\n' | sort -n | tail -1)
    max_rpn=$(echo "$rpn_list" | tr ' ' '\n' | sort -n | tail -1)
    [ "$max_rpn" -ge 2 ] && srun_on 1 2 "$tmp/ar" shm >> "$arcsv"
    if [ "$max_nodes" -ge 2 ]; then
      srun_on 2 1 "$tmp/ar" "$net" >> "$arcsv"
      [ "$max_nodes" -gt 2 ] && srun_on "$max_nodes" 1 "$tmp/ar" "$net" >> "$arcsv"
      ar_rate[$net]=$link_rate
    fi
  else
    mpirun -np 2 --mca btl self,vader "$tmp/ar" shm >> "$arcsv"
    mpirun -np 2 --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo "$tmp/ar" tcp-lo >> "$arcsv"
    mpirun -np 4 --oversubscribe --mca mpi_yield_when_idle 1 --bind-to none --mca btl self,vader "$tmp/ar" shm-oversub >> "$arcsv"
    if [ "$netns" -eq 1 ]; then
      "$root/scripts/netns/netns-cluster.sh" --hosts 2 --name "xa$(($$ % 100000))" ${rate:+--rate "$rate"} run -- \
        -np 2 "$tmp/ar" veth >> "$arcsv"
      ar_rate[veth]=${rate:-unshaped}
    fi
  fi
  # alpha-beta fit per transport and P of the ring model t(n) = 2(P-1) alpha + 2(P-1)/P n beta,
  # i.e. t(n) = A + B n with alpha = A / (2(P-1)), beta = B P / (2(P-1)) (at P = 2: 2 alpha +
  # n beta): least squares on the RELATIVE error (weights 1/t^2), so that the 8-byte latency and
  # the MiB-sized bandwidth both count (plain least squares lets the largest sizes decide and
  # returns a meaningless, even negative, intercept)
  rates=$(for k in "${!ar_rate[@]}"; do printf '%s=%s;' "$k" "${ar_rate[$k]}"; done)
  awk -F, -v rates="$rates" '
    BEGIN { n = split(rates, kv, ";"); for (i = 1; i <= n; i++) if (split(kv[i], p, "=") == 2) lr[p[1]] = p[2] }
    NR > 1 && $2 > 1 { k = $1 SUBSEP $2; w = 1 / ($4 * $4); S[k] += w; X[k] += w * $3; Y[k] += w * $4;
                       XX[k] += w * $3 * $3; XY[k] += w * $3 * $4
                       if ($3 > big[k]) { big[k] = $3; bigt[k] = $4 } }
    END { for (k in S) { split(k, tp, SUBSEP); P = tp[2]
            B = (S[k] * XY[k] - X[k] * Y[k]) / (S[k] * XX[k] - X[k] * X[k]); A = (Y[k] - B * X[k]) / S[k]
            a = A / (2 * (P - 1)); b = B * P / (2 * (P - 1))
            printf "%s,%d,%.3f,%.4f,%.3f,%.3f,%s\n", tp[1], P, a * 1e6, b * 1e9, 1 / b / 1e9,
                   big[k] / bigt[k] / 1e9, (tp[1] in lr) ? lr[tp[1]] : "-" } }' "$arcsv" | sort > "$tmp/fit"
  { echo "transport,P,alpha_us,beta_ns_per_byte,GBps,largest_GBps,link_rate"; cat "$tmp/fit"; } > "$out/allreduce-fit.csv"
  awk -F, '{ printf "allreduce fit %-12s P=%s: alpha = %.2f us, beta = %.3f ns/byte (1/beta = %.2f GB/s; largest message %.3f GB/s)%s\n",
                    $1, $2, $3, $4, $5, $6, ($7 == "-") ? "" : ", link " $7 }' "$tmp/fit" | tee "$out/allreduce-fit.txt"
fi

# plots: speedup and efficiency against P, one line per model, mode and path (and, inside an
# allocation, per ranks per node: 2 nodes x 1 and 1 node x 2 are different points)
if command -v gnuplot >/dev/null; then
  plots=
  for model in $models; do for mode in $modes; do for red in $reduces; do
    for k in $([ "$slurm" -eq 1 ] && echo "$rpn_list" || echo all); do
      awk -F, -v m="$mode" -v mo="$model" -v rd="$red" -v k="$k" \
        '$1 == m && $2 == mo && $3 == rd && (k == "all" || $19 == k || $4 == 1) { print $4, $17, $18 }' "$csv" \
        > "$tmp/$mode-$model-$red-$k.dat"
      [ -s "$tmp/$mode-$model-$red-$k.dat" ] || continue
      title="$mode $model $red$([ "$k" = all ] || echo " $k/node")"
      plots="$plots${plots:+, }'$tmp/$mode-$model-$red-$k.dat' using 1:COL with linespoints title '$title'"
    done
  done; done; done
  maxp=$(for pl in "${placements[@]}"; do echo "${pl%% *}"; done | sort -n | tail -1)
  if [ "$slurm" -eq 1 ]; then # nodes differ from cluster to cluster: no core-count line
    xlabel="P (ranks) = nodes x ranks per node; $node_cpus CPUs per node" sline='' eline=''
  else
    xlabel="P (ranks; this machine has $cores cores: P > $cores oversubscribed)"
    sline="($cores < x ? $cores : x) title 'core count' with lines dashtype 3, "
    eline="($cores < x ? $cores/x : 1) title 'core count' with lines dashtype 3, "
  fi
  gnuplot <<G
set terminal pngcairo size 800,560 noenhanced
set xlabel '$xlabel'
set key left top
set grid
set xrange [0.8:$maxp * 1.25]
set logscale x 2
set output '$out/speedup.png'
set title 'xentrain speedup (samples/s relative to P = 1), $(basename "$data")'
set ylabel 'speedup'
plot x title 'ideal' with lines dashtype 2, $sline${plots//COL/2}
set output '$out/efficiency.png'
set title 'xentrain parallel efficiency (speedup / P)'
set ylabel 'efficiency'
set yrange [0:1.2]
plot 1 title 'ideal' with lines dashtype 2, $eline${plots//COL/3}
G
  echo "scaling: wrote $csv, $raw, $([ "$allreduce" -eq 1 ] && echo "$out/allreduce.csv, $out/allreduce-fit.csv, ")$out/speedup.png, $out/efficiency.png"
fi
