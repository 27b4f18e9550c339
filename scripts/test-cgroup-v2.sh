#!/bin/sh
# Run the cgroup v2 test set (pytest -m cgroup_v2) on a pure cgroup v2 kernel.
#
# Usage: scripts/test-cgroup-v2.sh [PYTEST ARGS...]
#
# On a host whose /sys/fs/cgroup is a cgroup2 mount, the tests run natively.
# Elsewhere (cgroup v1 or hybrid hosts) set VMRUN to a tool that boots a
# cgroup v2 kernel and runs a command in it, called as
#     $VMRUN $VMRUN_ARGS SHARE_DIR COMMAND [ARG...]
# with SHARE_DIR (this repository) shared read-write at the same path and
# used as the working directory. The whole set runs in one VM boot.
#
# The VM has no block device of its own: the loop module is loaded there so
# that the io.max tests have devices to throttle.
#
# Environment: PYTHON (default .venv/bin/python), VMRUN, VMRUN_ARGS
# (default "-t 1200 -m 2G": the emulated VM is slow; the set takes about
# 3 minutes in it). Exit status: pytest's; 2 when the host is not cgroup v2
# and VMRUN is not set.
#
# POSIX sh on purpose.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$repo/.venv/bin/python}
VMRUN_ARGS=${VMRUN_ARGS:--t 1200 -m 2G}

if [ $# -eq 0 ]; then
    set -- -q --durations=8
fi

# The tests' rootfs is built on the host: the VM may lack the tools.
rootfs=${PYRUNTIME_TEST_ROOTFS:-$repo/.build/rootfs}
if [ ! -x "$rootfs/bin/busybox" ]; then
    sh "$repo/scripts/build-rootfs.sh" "$rootfs"
fi

if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
    cd "$repo"
    exec "$PYTHON" -m pytest -m cgroup_v2 "$@" tests/unit tests/integration
fi

if [ -z "${VMRUN:-}" ]; then
    echo "test-cgroup-v2: /sys/fs/cgroup is not cgroup v2 here and VMRUN is not set" >&2
    exit 2
fi
# shellcheck disable=SC2086 # VMRUN_ARGS holds several options on purpose
exec "$VMRUN" $VMRUN_ARGS -e PYTHONUNBUFFERED=1 \
    -e "PYRUNTIME_TEST_ROOTFS=$rootfs" \
    "$repo" sh -c 'modprobe loop 2>/dev/null || true; exec "$@"' sh \
    "$PYTHON" -m pytest -m cgroup_v2 -p no:cacheprovider "$@" tests/unit tests/integration
