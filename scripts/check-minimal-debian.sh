#!/usr/bin/env bash
# The README's two commands in a minimal Debian 12 root file system (debootstrap
# --variant=minbase), from a clean clone of this repository's HEAD: what a fresh machine
# without the project's packages sees. Root only; downloads about 1.5 GB from Debian.
# Usage: scripts/check-minimal-debian.sh [ROOT_DIR]     (default /srv/xentrain-deb12)
# The chroot gets /proc, /sys, /dev, a resolv.conf and an /etc/hosts naming this host
# (minbase has none; munge and slurmd need the name to resolve), and its root is a mount
# point (`ip netns exec` remounts / as a slave, which fails on a plain directory).
set -uo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
R=${1:-/srv/xentrain-deb12}
[ "$(id -u)" -eq 0 ] || { echo "check-minimal-debian: needs root" >&2; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
t0=$(date +%s)
if [ ! -x "$R/bin/bash" ]; then
  debootstrap --variant=minbase bookworm "$R" http://deb.debian.org/debian >/dev/null || exit 1
fi
mountpoint -q "$R" || { mount --bind "$R" "$R" && mount --make-private "$R"; }
mountpoint -q "$R/proc" || mount -t proc proc "$R/proc"
mountpoint -q "$R/sys" || mount --rbind /sys "$R/sys"
mountpoint -q "$R/dev" || mount --rbind /dev "$R/dev"
cleanup() { umount -R "$R/dev" "$R/sys" "$R/proc" 2>/dev/null; umount -R "$R" 2>/dev/null; }
trap cleanup EXIT
cp /etc/resolv.conf "$R/etc/resolv.conf"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$(hostname)" > "$R/etc/hosts"
rm -rf "$R/root/xentrain" && git clone -q "$src" "$R/root/xentrain" || exit 1
chroot "$R" /bin/bash -c 'cd /root/xentrain && scripts/run-tests.sh'
tests=$?
echo "check-minimal-debian: scripts/run-tests.sh exit $tests after $(( $(date +%s) - t0 )) s"
chroot "$R" /bin/bash -c 'cd /root/xentrain && scripts/run-main.sh'
main=$?
echo "check-minimal-debian: scripts/run-main.sh exit $main after $(( $(date +%s) - t0 )) s"
[ "$tests" -eq 0 ] && [ "$main" -eq 0 ]
