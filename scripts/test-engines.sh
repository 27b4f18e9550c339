#!/bin/bash
# Run the engine end-to-end tests (tests/e2e): containerd 1.6 through ctr,
# its CRI plugin, and podman 4.3, each driving pyruntime and, for
# comparison, runc.
#
# Usage: scripts/test-engines.sh [PYTEST ARGS...]
#   e.g. scripts/test-engines.sh -k podman -x
#
# 1. installs the Debian packages the tests need (apt-get runs only when one
#    is missing) and the e2e extra of pyproject.toml (a CRI client) into the
#    venv;
# 2. makes a private work directory and runs pytest on tests/e2e with it
#    (PYRUNTIME_E2E_DIR). The tests build a busybox OCI image with umoci,
#    start their own containerd (own config, root, state and socket) and run
#    podman with its own root, runroot and containers.conf; no network and
#    no image registry are needed;
# 3. on exit, whatever happened, stops any daemon the tests recorded in the
#    work directory, unmounts what is left below it and removes it.
#
# Environment: PYTHON (default .venv/bin/python), PYRUNTIME_E2E_BINARY (the
# pyruntime the engines call, default /usr/local/bin/pyruntime, see
# `make install`), PYRUNTIME_TEST_ROOTFS (default .build/rootfs).
# Exit status: pytest's.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$repo/.venv/bin/python}
export PYRUNTIME_E2E_BINARY=${PYRUNTIME_E2E_BINARY:-/usr/local/bin/pyruntime}
export PYRUNTIME_TEST_ROOTFS=${PYRUNTIME_TEST_ROOTFS:-$repo/.build/rootfs}

# containerd brings ctr and containerd-shim-runc-v2; podman brings conmon;
# umoci builds the image; runc (the reference runtime) and util-linux
# (unshare) are there already on Debian.
PACKAGES=(containerd podman conmon umoci runc util-linux tar)

die() {
    echo "test-engines: $*" >&2
    exit 1
}

missing() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || echo "$pkg"
    done
}

[ "$(id -u)" -eq 0 ] || die "run as root: the engines and the runtimes need it"
command -v dpkg-query >/dev/null || die "not a Debian system; install: ${PACKAGES[*]}"
[ -x "$PYTHON" ] || die "$PYTHON not found: run make deps first"

mapfile -t need < <(missing "${PACKAGES[@]}")
if [ ${#need[@]} -gt 0 ]; then
    echo "test-engines: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need[@]}"
fi

if ! "$PYTHON" -c 'import cri_api.v1.api_pb2_grpc' 2>/dev/null; then
    "$PYTHON" -m pip install --disable-pip-version-check -q -e "$repo[e2e]"
fi

# The engines call pyruntime with an empty environment: check it copes.
env -i "$PYRUNTIME_E2E_BINARY" --version >/dev/null ||
    die "$PYRUNTIME_E2E_BINARY --version failed: run make install"

cd "$repo"
work=$(mktemp -d "${TMPDIR:-/tmp}/pyruntime-e2e.XXXXXX")
export PYRUNTIME_E2E_DIR=$work

# cleanup: the tests stop their daemons and remove what they made; this
# catches a pytest that was killed. The work directory names everything the
# session owns (daemon pids, cgroup names); nothing else is touched.
cleanup() {
    "$PYTHON" -m tests.e2e.engines "$work" || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)
status=0
"$PYTHON" -m pytest -m engines -p no:cacheprovider tests/e2e "$@" || status=$?
echo "test-engines: $(($(date +%s) - start)) s" >&2
exit "$status"
