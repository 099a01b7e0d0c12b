#!/usr/bin/env bash
# Installs the Debian 12 packages xentrain needs, skipping those already present.
# Idempotent; needs root (or sudo).
# Usage: scripts/install-deps.sh [--with-data] [--with-tools] [--with-tests] [--with-fuzz]
#                                [--with-mpich] [--with-blis]
#   --with-data   also Fashion-MNIST (dataset-fashion-mnist)
#   --with-tools  also gnuplot, hdf5-tools (h5dump/h5ls/h5diff), time and valgrind
#   --with-tests  also what the tests compare against or need: PyTorch, scikit-learn and
#                 h5py (reference losses, accuracy on scikit-learn's data sets), iproute2
#                 (network namespaces, tc), procps (pgrep), util-linux (nsenter, unshare),
#                 Slurm with munge (slurmctld, slurmd, slurm-client, munge: the Slurm tests start
#                 their own daemons; apt is kept from starting them, see below), python3-onnx
#                 (onnx.checker) and Node.js with npm when the node or npm command is missing
#                 (tests/cli/export.sh installs ONNX Runtime for Node from the npm registry into
#                 the build directory)
#   --with-fuzz   also clang and its sanitizer runtimes (libFuzzer), for scripts/fuzz.sh
#   --with-mpich  also MPICH and parallel HDF5 for MPICH (cmake -DXT_MPI=mpich; Debian keeps
#                 Open MPI as the default mpicc/mpirun)
#   --with-blis   also BLIS (cmake -DBLA_VENDOR=FLAME)
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      openmpi-bin libopenmpi-dev
      libopenblas-dev
      libhdf5-openmpi-dev
      libcmocka-dev libinih-dev zlib1g-dev
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev)
with_tests=false
for arg in "$@"; do
  case "$arg" in
    --with-data)  pkgs+=(dataset-fashion-mnist) ;;
    --with-tools) pkgs+=(gnuplot-nox hdf5-tools time valgrind) ;;
    --with-tests) pkgs+=(python3-torch python3-sklearn python3-h5py python3-numpy iproute2 procps
                         util-linux slurmctld slurmd slurm-client munge python3-onnx)
                  with_tests=true ;;
    --with-fuzz)  pkgs+=(clang libclang-rt-14-dev) ;;
    --with-mpich) pkgs+=(mpich libmpich-dev libhdf5-mpich-dev) ;;
    --with-blis)  pkgs+=(libblis-dev) ;;
    *) echo "install-deps.sh: unknown option '$arg' (use --with-data, --with-tools, --with-tests," \
            "--with-fuzz, --with-mpich, --with-blis)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm (ONNX Runtime for Node in tests/cli/export.sh): Debian's packages only when
# a command is missing. A machine may have them from elsewhere (NodeSource's nodejs bundles
# npm, and Debian's npm package conflicts with it).
if $with_tests; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Daemons (slurmctld, slurmd, munge): no systemd here, and the tests start their own, so a
# temporary policy-rc.d that says 101 keeps apt from starting them; an existing one (Debian
# container images ship one) is left exactly as it was.
own_policy=0
if [[ " ${missing[*]} " =~ \ (slurmctld|slurmd|munge)\  ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  own_policy=1
fi
rc=0
$SUDO apt-get update -qq &&
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
[ "$own_policy" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
[ "$rc" -eq 0 ] || { echo "install-deps: apt-get failed (exit $rc)" >&2; exit "$rc"; }
echo "install-deps: done"
