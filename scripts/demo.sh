#!/bin/bash
# Run one seed bundle through the lifecycle an engine drives, and show what
# the container saw.
#
# Usage: scripts/demo.sh RUNTIME BUNDLE
#
# RUNTIME is the runtime command (pyruntime, runc, or "python -m pyruntime").
# Uses a private --root in a temporary directory, so it neither sees nor
# touches other containers, and deletes the container and the directory
# however it ends.
set -euo pipefail

die() {
    echo "demo: $*" >&2
    exit 1
}

[ $# -eq 2 ] || die "usage: $0 RUNTIME BUNDLE"
read -ra runtime <<<"$1"
bundle=$(cd "$2" && pwd) || die "no bundle directory $2"
[ -f "$bundle/config.json" ] || die "$bundle has no config.json"
[ -f "$bundle/rootfs/.pyruntime-rootfs" ] || die "$bundle has no rootfs: run make rootfs"

state=$(mktemp -d "${TMPDIR:-/tmp}/pyruntime-demo.XXXXXX")
id="demo-$(basename "$bundle")-$$"

rt() {
    "${runtime[@]}" --root "$state" "$@"
}

cleanup() {
    rt delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT

step() {
    echo
    echo "### $*"
}

# show_state: the state JSON, always ending in a newline.
show_state() {
    printf '%s\n' "$(rt state "$id")"
}

# wait_stopped: poll state until the container's process has exited.
wait_stopped() {
    local i
    for ((i = 0; i < 100; i++)); do
        rt state "$id" | grep -q '"status": *"stopped"' && return 0
        sleep 0.1
    done
    die "container $id still running after 10 s"
}

step "${runtime[*]} --version"
"${runtime[@]}" --version

step "create $id from $bundle"
rt create --bundle "$bundle" "$id"
show_state

step "start $id: the container's own output follows"
rt start "$id"
wait_stopped

step "state after the process exited"
show_state

step "delete $id"
rt delete "$id"
rt list
