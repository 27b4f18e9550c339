#!/bin/bash
# Install the Debian packages pyruntime needs to build, test and demo.
#
# Usage: scripts/install-system-packages.sh [--vm]
#
# Asks dpkg first and runs apt-get only for what is missing, so on a prepared
# machine this takes a few milliseconds. Optional packages (benchmark tools)
# are tried too, but their failure does not fail the step. With --vm, the
# packages the cgroup v2 test VM needs are required too (make test-v2 asks
# for them when it runs the v2 set in a VM).
set -euo pipefail

# python3-dev, gcc and libcap-dev build python-prctl from source; libseccomp2
# is what pyseccomp loads; busybox-static fills the demo and test rootfs;
# iproute2 makes named network namespaces for tests; runc is the reference
# runtime the tests and benchmarks compare against.
REQUIRED=(python3 python3-venv python3-dev gcc make libcap-dev libseccomp2
    busybox-static iproute2 runc)
OPTIONAL=(hyperfine)
# The cgroup v2 test set runs in a throw-away VM on hosts that are not cgroup
# v2: qemu emulates it, the cloud kernel boots it, busybox, cpio, kmod and
# gzip build its initramfs, util-linux and coreutils run inside it.
VM=(qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio kmod
    util-linux coreutils gzip)

case "${1:-}" in
"") ;;
--vm) REQUIRED+=("${VM[@]}") ;;
*)
    echo "usage: $0 [--vm]" >&2
    exit 2
    ;;
esac

# missing PACKAGE...: print the packages dpkg does not report as installed.
missing() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || echo "$pkg"
    done
}

if ! command -v dpkg-query >/dev/null; then
    echo "install-system-packages: not a Debian system; install by hand:" \
        "${REQUIRED[*]}" >&2
    exit 0
fi

# Optional packages are only tried along with required ones, so a mirror that
# lacks them does not cost an apt-get update on every make.
mapfile -t need < <(missing "${REQUIRED[@]}")
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t want < <(missing "${OPTIONAL[@]}")

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-packages: run as root to install: ${need[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y "${need[@]}"
if [ ${#want[@]} -gt 0 ]; then
    apt-get install -y "${want[@]}" ||
        echo "install-system-packages: optional ${want[*]} not installed" >&2
fi
