#!/usr/bin/env bash
# A real Slurm 22.05 cluster of N nodes on one machine, each node a network namespace with its
# own host name, addresses and slurmd; one slurmctld; munge. For tests and for trying the batch
# scripts and scripts/scaling.sh across nodes. Needs root. Every file (configuration, keys,
# sockets, state, spool, logs, PIDs) lives in DIR; `stop` leaves nothing behind: no daemon, job,
# namespace, bridge or veth (nothing is ever added to the root namespace, and nothing under /etc
# is touched: munge runs with its own key in DIR).
#
# Usage
#   netns-slurm-cluster.sh start DIR N [--rate R] [--cpus C]  N nodes (1..9); prints how to use it
#   netns-slurm-cluster.sh stop DIR                            everything down (safe to repeat)
#   netns-slurm-cluster.sh status DIR                          daemons, namespaces, sinfo
#   netns-slurm-cluster.sh exec DIR [--] COMMAND...            on the "login node" (see below)
#   netns-slurm-cluster.sh node DIR I [--] COMMAND...          inside node I's namespace
#   netns-slurm-cluster.sh link DIR I down|up                  cut or restore node I's data link
#   netns-slurm-cluster.sh fail DIR I                          lose node I (as a power failure)
#   netns-slurm-cluster.sh recover DIR I                       links up, its slurmd started again
# Options of start: --rate R shapes every data link (both directions) with `tc tbf` to R (e.g.
# 1gbit, 100mbit; netem is not available on this kernel); --cpus C CPUs per node (default: this
# machine's, so N nodes claim N times the real cores: more ranks than cores are oversubscribed).
#
# e.g. scripts/slurm/netns-slurm-cluster.sh start /tmp/nc 3
#      scripts/slurm/netns-slurm-cluster.sh exec /tmp/nc sbatch -N 3 --ntasks-per-node=1 \
#          scripts/slurm/xentrain-srun.sbatch configs/x.ini
#      scripts/slurm/netns-slurm-cluster.sh exec /tmp/nc squeue
#      scripts/slurm/netns-slurm-cluster.sh stop /tmp/nc
#
# Layout (ID = a short prefix chosen at start, in DIR/cluster.env):
#   node I     namespace ID-nI, host name nI (its own UTS namespace), NodeName nI;
#              management xtmgt0 = MGMT.(I+1)  Slurm (NodeAddr), Open MPI's daemons (oob)
#              data       xtnet0 = DATA.(I+1)  MPI traffic (btl tcp): the "fabric", shapeable
#   controller namespace ID-ctl, host name ctl, MGMT.254 on the management network: slurmctld;
#              also the "login node" where `exec` runs the Slurm commands (sbatch, salloc,
#              squeue, scontrol) with DIR/env sourced: SLURM_CONF and the Open MPI (and MPICH)
#              settings that put MPI traffic on xtnet0 and the launcher's on xtmgt0 (sbatch
#              passes them on to the job)
#   switch     namespace ID-sw holding both bridges (br0 data: ports hI; br1 management: ports
#              mI and mc), as scripts/netns/netns-cluster.sh; `link` and `fail` act on its ports
#   munged     in the root namespace; its socket is a file in DIR, reachable from every
#              namespace (a path, not a network address)
#
# Why it is done this way (Debian's Slurm 22.05, tried on this machine):
# - Debian does not build Slurm with --enable-multiple-slurmd, so `slurmd -N NAME` cannot give
#   several slurmd one host. Each slurmd instead runs in its own network namespace AND its own
#   UTS namespace (`nsenter --net=/run/netns/ID-nI unshare --uts`, then `hostname nI`): slurmd
#   finds its NodeName from the host name, and Open MPI tells nodes apart by host name (its
#   session directories and shared-memory files are named after it; ranks of two "nodes" under
#   one host name would share them).
# - `nsenter --net`, not `ip netns exec`: the latter remounts /sys for the namespace, which
#   hides /sys/fs/cgroup, and slurmd then fails with "No filesystem mounted on /sys/fs/cgroup".
# - Per-node files through slurm.conf's %n: SlurmdSpoolDir=DIR/spool/%n, SlurmdPidFile and
#   SlurmdLogFile per %n. Every slurmd uses the same port, each in its own namespace.
# - TmpFS=DIR/tmp/%n: Slurm's PMIx plugin (srun --mpi=pmix) makes spmix_appdir_UID_JOB.STEP
#   under TmpFS; with one shared /tmp the second node of a step found the first node's directory
#   ("File exists") and the launch failed.
# - SlurmdParameters=config_overrides: --cpus may exceed the machine's cores (slurmd would
#   otherwise report fewer CPUs than configured and the node would be "inval").
# - Failure detection fast enough for a test: SlurmdTimeout=10 (a silent node is DOWN after
#   10-15 s instead of 300 s), KillWait=5, and from scripts/slurm/local-cluster.sh
#   AuthInfo=cred_expire=10 and sched_interval=2,bf_interval=2 (a requeued job restarts in about
#   12 s instead of about 150 s).
# - `fail` emulates a node that loses power: both of its switch ports go down first, so no FIN
#   or RST from its dying processes reaches anyone (peers see silence, as with a real crash),
#   then every process in its namespace (slurmd, slurmstepd, ranks) is SIGKILLed by PID.
# - The client commands run in the controller's namespace because nothing is added to the root
#   namespace (no route from it to the cluster); a real login node is on the management network
#   too.
set -euo pipefail
die() { echo "netns-slurm-cluster: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d'; }

cmd=${1:-}
case "$cmd" in
  start|stop|status|exec|node|link|fail|recover) ;;
  -h|--help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, daemons as root)"
dir=${2:?DIR}
shift 2
if [ "$cmd" = start ]; then mkdir -p "$dir"; fi
[ -d "$dir" ] || die "no directory $dir"
dir=$(cd "$dir" && pwd)
dif=xtnet0 mif=xtmgt0

load() { # the cluster's facts, written by start
  [ -s "$dir/cluster.env" ] || die "$dir holds no cluster (no cluster.env): start one first"
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
}

ns_run() { # ns_run NS COMMAND...: in that network namespace, everything else shared
  local ns=$1; shift
  nsenter --net="/run/netns/$ns" "$@"
}

stop_pidfile() { # stop_pidfile FILE: TERM, wait up to 5 s, then KILL
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

kill_ns() { # kill_ns NS: every process in that namespace, by PID
  local pids
  [ -e "/run/netns/$1" ] || return 0
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}

start_slurmd() { # start_slurmd I
  mkdir -p "$dir/spool/n$1" "$dir/tmp/n$1"
  ns_run "$ID-n$1" unshare --uts sh -c "hostname n$1 && exec slurmd -f '$dir/slurm.conf'" ||
    die "slurmd of node n$1 did not start (see $dir/log/slurmd.n$1.log)"
}

do_stop() {
  local i
  [ -s "$dir/cluster.env" ] || return 0
  load
  if [ -e "/run/netns/$ID-ctl" ] && [ -s "$dir/run/slurmctld.pid" ]; then
    # jobs first, so that their processes get Slurm's own SIGTERM before the namespaces go
    ns_run "$ID-ctl" env SLURM_CONF="$dir/slurm.conf" scancel --quiet --user=root 2>/dev/null || true
    for _ in $(seq 25); do
      [ -z "$(ns_run "$ID-ctl" env SLURM_CONF="$dir/slurm.conf" squeue -h -t R,CG 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  for i in $(seq 0 $((N - 1))); do stop_pidfile "$dir/run/slurmd.n$i.pid"; done
  stop_pidfile "$dir/run/slurmctld.pid"
  for i in $(seq 0 $((N - 1))); do
    kill_ns "$ID-n$i"
    ip netns del "$ID-n$i" 2>/dev/null || true
  done
  kill_ns "$ID-ctl"
  ip netns del "$ID-ctl" 2>/dev/null || true
  ip netns del "$ID-sw" 2>/dev/null || true # takes the bridges and every veth pair with it
  stop_pidfile "$dir/munge/munged.pid"
  rm -f "$dir/cluster.env"
}

add_port() { # add_port NS SWITCH_PORT IFACE ADDRESS BRIDGE
  ip -n "$ID-sw" link add "$2" type veth peer name "$3" netns "$1"
  ip -n "$ID-sw" link set "$2" master "$5" up
  ip -n "$1" addr add "$4/24" dev "$3"
  ip -n "$1" link set "$3" up
}

network_up() {
  local i ns n
  ip netns add "$ID-sw"
  for b in br0 br1; do ip -n "$ID-sw" link add "$b" type bridge; ip -n "$ID-sw" link set "$b" up; done
  ip netns add "$ID-ctl"
  ip -n "$ID-ctl" link set lo up
  add_port "$ID-ctl" mc "$mif" "$MGMT.254" br1
  for i in $(seq 0 $((N - 1))); do
    ns=$ID-n$i
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    add_port "$ns" "h$i" "$dif" "$DATA.$((i + 1))" br0
    add_port "$ns" "m$i" "$mif" "$MGMT.$((i + 1))" br1
    if [ -n "$RATE" ]; then # both directions: the switch end's egress and the node end's
      ip netns exec "$ID-sw" tc qdisc add dev "h$i" root tbf rate "$RATE" burst 1mbit latency 50ms
      ip netns exec "$ns" tc qdisc add dev "$dif" root tbf rate "$RATE" burst 1mbit latency 50ms
    fi
  done
  for _ in $(seq 50); do # every bridge port forwarding (no ping: iputils is not installed)
    n=$(bridge -n "$ID-sw" link show | grep -c "state forwarding" || true)
    [ "$n" -eq $((2 * N + 1)) ] && return 0
    sleep 0.1
  done
  die "only $n of $((2 * N + 1)) bridge ports forward after 5 s"
}

write_conf() {
  local i
  {
    cat <<EOF
# Generated by scripts/slurm/netns-slurm-cluster.sh: $N nodes in network namespaces $ID-n*,
# everything under $dir.
ClusterName=xtnetns
SlurmctldHost=ctl($MGMT.254)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10,socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
TmpFS=$dir/tmp/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
# --cpus may exceed this machine's cores: trust the configured CPUs instead of the hardware
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
SlurmdTimeout=10
KillWait=5
MinJobAge=300
InactiveLimit=0
EOF
    for i in $(seq 0 $((N - 1))); do
      echo "NodeName=n$i NodeAddr=$MGMT.$((i + 1)) CPUs=$CPUS State=UNKNOWN"
    done
    echo "PartitionName=xt Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } > "$dir/slurm.conf"
  cat > "$dir/env" <<EOF
# Source this on the cluster's login node (netns-slurm-cluster.sh exec does)
export SLURM_CONF=$dir/slurm.conf
# MPI traffic on the data network, Open MPI's launcher (mpirun's daemons) on the management one
export OMPI_MCA_btl_tcp_if_include=$dif OMPI_MCA_oob_tcp_if_include=$mif
# the nodes share this machine's cores: ranks waiting in MPI must yield them
export OMPI_MCA_mpi_yield_when_idle=1
# MPICH: hydra's proxies reach mpiexec on the management network (the node names resolve
# nowhere). UCX (MPICH's ch4:ucx) cannot be pointed at xtnet0: it lists devices in
# /sys/class/net, which in these namespaces still shows the root namespace's (see above)
export HYDRA_IFACE=$mif
EOF
}

start_munge() {
  mkdir -p "$dir/munge"
  chown munge:munge "$dir/munge" && chmod 755 "$dir/munge" # the socket's directory: searchable
  if [ ! -s "$dir/munge/munge.key" ]; then
    runuser -u munge -- mungekey --create --keyfile="$dir/munge/munge.key"
  fi
  chmod 600 "$dir/munge/munge.key"
  runuser -u munge -- munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" || die "munged did not start (see $dir/munge/munged.log)"
  munge --socket="$dir/munge/munge.socket" -n | unmunge --socket="$dir/munge/munge.socket" >/dev/null ||
    die "munge does not work (see $dir/munge/munged.log)"
}

in_cluster() { # in_cluster COMMAND...: on the login node with DIR/env
  # shellcheck disable=SC2016 # expanded by that inner shell
  ns_run "$ID-ctl" bash -c '. "$1"; shift; exec "$@"' sh "$dir/env" "$@"
}

wait_idle() { # wait_idle COUNT: until COUNT nodes are idle (20 s at most)
  local idle=0
  for _ in $(seq 100); do
    idle=$(in_cluster sinfo -h -N -o '%t' 2>/dev/null | grep -c '^idle$' || true)
    [ "$idle" -ge "$1" ] && return 0
    sleep 0.2
  done
  return 1
}

do_start() {
  local n=${1:?N} i
  shift
  RATE='' CPUS=$(nproc)
  while [ $# -gt 0 ]; do
    case "$1" in
      --rate) RATE=$2; shift 2 ;;
      --cpus) CPUS=$2; shift 2 ;;
      *) die "unknown option '$1' (--rate R, --cpus C)" ;;
    esac
  done
  [[ "$n" =~ ^[1-9]$ ]] || die "N must be 1..9 nodes"
  [[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die "--cpus must be a positive integer"
  [ ! -s "$dir/cluster.env" ] || die "$dir holds a running cluster: stop it first"
  for b in munged mungekey slurmctld slurmd sinfo nsenter unshare ip tc bridge; do
    command -v "$b" >/dev/null ||
      die "$b not found: run scripts/install-deps.sh --with-tests (slurm, munge, iproute2)"
  done
  # unix socket paths are limited to 108 bytes
  [ ${#dir} -le 80 ] || die "DIR is too long (${#dir} characters; the munge socket path must fit in 108): use a shorter one, e.g. under /tmp"
  N=$n DATA=10.79.0 MGMT=10.80.0
  for _ in $(seq 20); do
    ID=xc$((RANDOM % 100000))
    [ -e "/run/netns/$ID-sw" ] || break
  done
  chmod 755 "$dir"
  rm -rf "$dir/state" "$dir/spool" "$dir/run" "$dir/tmp"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run" "$dir/tmp"
  printf 'ID=%s\nN=%s\nDATA=%s\nMGMT=%s\nRATE=%s\nCPUS=%s\n' "$ID" "$N" "$DATA" "$MGMT" "$RATE" "$CPUS" \
    > "$dir/cluster.env"
  # whatever stops the start half-way (die, a failed command) takes down what it started
  trap 'echo "netns-slurm-cluster: start failed; tearing down" >&2; do_stop' EXIT
  network_up
  write_conf
  start_munge
  ns_run "$ID-ctl" unshare --uts sh -c "hostname ctl && exec slurmctld -c -f '$dir/slurm.conf'" ||
    die "slurmctld did not start (see $dir/log/slurmctld.log)"
  for i in $(seq 0 $((N - 1))); do start_slurmd "$i"; done
  wait_idle "$N" || die "not all $N nodes idle after 20 s (see $dir/log/): $(in_cluster sinfo -h -N -o '%N %t' | tr '\n' ' ')"
  trap - EXIT
  echo "netns-slurm-cluster: $N nodes n0..n$((N - 1)) idle (management $MGMT.1-$N, data $DATA.1-$N${RATE:+ at $RATE}, $CPUS CPUs each); controller $MGMT.254; namespaces $ID-*" >&2
  echo "netns-slurm-cluster: run Slurm commands with: $0 exec $dir COMMAND..." >&2
}

node_index() { # node_index I: checks I
  if ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -ge "$N" ]; then die "no node $1 (nodes 0..$((N - 1)))"; fi
}

case "$cmd" in
start) do_start "$@" ;;
stop) do_stop ;;
status)
  load
  echo "cluster $ID: $N nodes, data $DATA.x${RATE:+ (tbf $RATE)}, management $MGMT.x, $CPUS CPUs per node"
  for f in "$dir"/run/*.pid "$dir/munge/munged.pid"; do
    [ -s "$f" ] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then st=running; else st=gone; fi
    echo "  $(basename "$f" .pid): pid $(cat "$f") $st"
  done
  echo "  namespaces: $(ip netns list | awk -v p="$ID-" 'index($1, p) == 1 { printf "%s ", $1 }')"
  in_cluster sinfo -N -o '%N %T %c %O' || true
  ;;
exec)
  load
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || die "exec needs a command"
  in_cluster "$@"
  ;;
node)
  load
  i=${1:?node index}; shift
  node_index "$i"
  [ "${1:-}" = -- ] && shift
  ns_run "$ID-n$i" "$@"
  ;;
link)
  load
  node_index "${1:?node index}"
  case "${2:-}" in up|down) ;; *) die "link DIR I down|up" ;; esac
  ip -n "$ID-sw" link set "h$1" "$2"
  ;;
fail)
  load
  node_index "${1:?node index}"
  ip -n "$ID-sw" link set "h$1" down
  ip -n "$ID-sw" link set "m$1" down
  kill_ns "$ID-n$1"
  rm -f "$dir/run/slurmd.n$1.pid"
  ;;
recover)
  load
  node_index "${1:?node index}"
  ip -n "$ID-sw" link set "h$1" up
  ip -n "$ID-sw" link set "m$1" up
  kill_ns "$ID-n$1"
  start_slurmd "$1"
  ;;
esac
