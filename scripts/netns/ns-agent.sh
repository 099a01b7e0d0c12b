#!/usr/bin/env bash
# Open MPI "rsh agent" for the network-namespace cluster of netns-cluster.sh: mpirun calls
#   ns-agent.sh [ssh-style options] HOST COMMAND...
# to start its daemon (orted) on HOST. Instead of ssh we enter the namespace that owns HOST's
# address and run the command there through a shell, as sshd would (Open MPI quotes the words
# for a remote shell). The map comes from mpirun's environment:
#   XT_NETNS_MAP="10.78.0.1=xt123-0 10.78.0.2=xt123-1 ..." (management addresses)
set -euo pipefail
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done # ignore ssh-style options
host=${1:?host}; shift
ns=
for pair in ${XT_NETNS_MAP:-}; do
  [ "${pair%%=*}" = "$host" ] && ns=${pair#*=}
done
[ -n "$ns" ] || { echo "ns-agent: no namespace for host '$host' (XT_NETNS_MAP='${XT_NETNS_MAP:-}')" >&2; exit 255; }
exec ip netns exec "$ns" /bin/sh -c "$*"
