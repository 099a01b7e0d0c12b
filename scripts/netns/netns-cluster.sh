#!/usr/bin/env bash
# Several "hosts" on one machine: network namespaces, each with its own private addresses, joined by
# veth pairs and bridges, and one mpirun whose ranks live in different namespaces and talk TCP over
# the veth links (no shared memory between "hosts"). Needs root.
#
# Like a real cluster, every host has two networks:
#   data       xtnet0, SUBNET.(I+1)       MPI traffic (btl tcp); --rate shapes it; the "fabric"
#   management xtmgt0, MGMT_SUBNET.(I+1)  the hostfile names and Open MPI's daemons (oob tcp)
# so a broken fabric link (`ip -n ID-sw link set hI down`) hangs the ranks' collectives while mpirun
# still reaches its daemons: when xentrain's watchdog ends a rank, mpirun ends the job within seconds.
# (With one shared network a cut link also cuts mpirun from its daemon and mpirun hangs in its own
# abort, "abort is already in progress", until something outside kills it.)
#
# Nothing is added to the root namespace: both bridges live in a "switch" namespace (ID-sw). That
# keeps the traffic away from the root namespace's bridge netfilter (br_netfilter is loaded here) and
# its firewall, and the addresses exist only inside the namespaces.
#
# Usage
#   scripts/netns/netns-cluster.sh [options] run -- MPIRUN_ARGS...   set up, run mpirun, tear down
#   scripts/netns/netns-cluster.sh [options] up                      set up and leave it (prints the map)
#   scripts/netns/netns-cluster.sh [options] down                    tear down (safe to repeat)
#   scripts/netns/netns-cluster.sh [options] exec I -- COMMAND...    run COMMAND in host I's namespace
# Options
#   --hosts N      namespaces ("hosts") 1..9 (default 2)
#   --name ID      prefix of every object (default xt<pid>, at most 8 characters): host namespaces
#                  ID-0 .. ID-(N-1); the switch namespace ID-sw with bridges br0 (data: links
#                  h0 .. h(N-1)) and br1 (management: links m0 .. m(N-1))
#   --subnet A.B.C       data network (default 10.77.0: private, only inside the namespaces)
#   --mgmt-subnet A.B.C  management network (default 10.78.0)
#   --rate R       shape every data link with `tc qdisc ... tbf` to R each way (e.g. 1gbit,
#                  100mbit); netem (delay, loss) is not available on this kernel: docs/scaling.md
#   --slots S      MPI slots per host in the hostfile (default 1); ranks fill hosts slot by slot
#                  (`--map-by node` in MPIRUN_ARGS spreads them round-robin)
#                  KNOWN PROBLEM: two ranks in one namespace crashed Open MPI 4.1.4 here every time
#                  (SIGSEGV in mca_pml_ob1_recv_frag_callback_match; also with --btl self,vader,tcp):
#                  use one rank per namespace (--hosts = P) until that is understood
#   --btl LIST     Open MPI byte transfer layers (default self,tcp)
#
# e.g. scripts/netns/netns-cluster.sh --hosts 3 run -- -np 3 build/xentrain train configs/x.ini
#
# How the launch works: mpirun runs inside namespace ID-0 (so the rank(s) there are local to it) with
#   --hostfile (management addresses) --mca plm_rsh_agent scripts/netns/ns-agent.sh
#   --mca plm_rsh_no_tree_spawn 1 --mca btl "$btl" --mca btl_tcp_if_include xtnet0
#   --mca oob_tcp_if_include xtmgt0 --bind-to none
# and the agent starts Open MPI's daemon in the namespace that owns the host's address
# (`ip netns exec`). --bind-to none matters: binding ranks that sit in separate namespaces made an
# 8-byte allreduce take 4 ms instead of 20 us here. With more ranks than cores add
# `--mca mpi_yield_when_idle 1`. As root, Open MPI's run-as-root variables are set.
# `run` tears everything down when it ends, also on failure or Ctrl-C (trap EXIT), and exits with
# mpirun's exit code.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "netns-cluster: $*" >&2; exit 2; }
usage() { sed -n '2,49p' "$0"; }

hosts=2 name=xt$$ subnet=10.77.0 msubnet=10.78.0 rate= slots=1 btl=self,tcp
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --subnet) subnet=$2; shift 2 ;;
    --mgmt-subnet) msubnet=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --slots) slots=$2; shift 2 ;;
    --btl) btl=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) break ;;
  esac
done
cmd=${1:-}; shift || true
[ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
[[ "$hosts" =~ ^[1-9]$ ]] || die "--hosts must be 1..9"
[ ${#name} -le 8 ] || die "--name must be at most 8 characters"
[ "$subnet" != "$msubnet" ] || die "--subnet and --mgmt-subnet must differ"
dif=xtnet0 mif=xtmgt0 sw=$name-sw
map=
for i in $(seq 0 $((hosts - 1))); do map="$map $msubnet.$((i + 1))=$name-$i"; done
map=${map# }

down() {
  local i pids
  for i in $(seq 0 $((hosts - 1))); do
    if [ -e "/run/netns/$name-$i" ]; then
      # a rank or daemon still running in a namespace (a hang) would outlive it: end it, by PID
      pids=$(ip netns pids "$name-$i" 2>/dev/null || true)
      # shellcheck disable=SC2086
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
      ip netns del "$name-$i" 2>/dev/null || true
    fi
  done
  ip netns del "$sw" 2>/dev/null || true # takes the bridges and every veth pair with it
}

up() {
  local i ns t n
  ip netns add "$sw"
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link add br1 type bridge
  ip -n "$sw" link set br0 up
  ip -n "$sw" link set br1 up
  for i in $(seq 0 $((hosts - 1))); do
    ns=$name-$i
    ip netns add "$ns"
    ip -n "$sw" link add "h$i" type veth peer name "$dif" netns "$ns"
    ip -n "$sw" link add "m$i" type veth peer name "$mif" netns "$ns"
    ip -n "$sw" link set "h$i" master br0 up
    ip -n "$sw" link set "m$i" master br1 up
    ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev "$dif"
    ip -n "$ns" addr add "$msubnet.$((i + 1))/24" dev "$mif"
    ip -n "$ns" link set "$dif" up
    ip -n "$ns" link set "$mif" up
    ip -n "$ns" link set lo up
    if [ -n "$rate" ]; then # both directions: the switch end's egress and the host end's
      ip netns exec "$sw" tc qdisc add dev "h$i" root tbf rate "$rate" burst 1mbit latency 50ms
      ip netns exec "$ns" tc qdisc add dev "$dif" root tbf rate "$rate" burst 1mbit latency 50ms
    fi
  done
  # wait until every bridge port forwards (no ping here: iputils is not installed)
  for t in $(seq 50); do
    n=$(bridge -n "$sw" link show | grep -c "state forwarding" || true)
    [ "$n" -eq $((2 * hosts)) ] && return 0
    sleep 0.1
  done
  echo "netns-cluster: only $n of $((2 * hosts)) bridge ports forward after 5 s" >&2
  return 1
}

describe() {
  echo "netns-cluster: $hosts hosts (management address=namespace): $map; data $subnet.1-$hosts on $dif${rate:+ (tbf $rate)}; switch namespace $sw (data links h0..h$((hosts - 1)))" >&2
}

case "$cmd" in
up)
  trap 'down' ERR
  up
  describe
  ;;
down) down ;;
exec)
  i=${1:?host index}; shift; [ "${1:-}" = -- ] && shift
  exec ip netns exec "$name-$i" "$@"
  ;;
run)
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || die "run needs mpirun arguments after --"
  [ ! -e "/run/netns/$sw" ] || die "namespace $sw exists already (another run, or '$0 --name $name down')"
  tmp=$(mktemp -d)
  trap 'down; rm -rf "$tmp"' EXIT
  trap 'exit 130' INT TERM
  up
  for i in $(seq 0 $((hosts - 1))); do echo "$msubnet.$((i + 1)) slots=$slots"; done > "$tmp/hostfile"
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  # settings from the caller's environment that would contradict ours (tests keep TCP on lo)
  unset OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include OMPI_MCA_btl OMPI_MCA_hwloc_base_binding_policy
  export XT_NETNS_MAP=$map OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
  describe
  rc=0
  ip netns exec "$name-0" mpirun --hostfile "$tmp/hostfile" \
    --mca plm_rsh_agent "$here/ns-agent.sh" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl "$btl" --mca btl_tcp_if_include "$dif" --mca oob_tcp_if_include "$mif" \
    --bind-to none "$@" || rc=$?
  exit "$rc"
  ;;
*) usage >&2; exit 2 ;;
esac
