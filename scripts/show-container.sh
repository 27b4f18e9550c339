#!/bin/sh
# show-container: print what a process sees from inside its container.
#
# Installed in the demo rootfs as /usr/local/bin/show-container (and linked
# under the seed configs' application names). Runs under busybox sh with
# whatever the config left it: maybe no /proc, no /sys/fs/cgroup, a read-only
# root, no capabilities and a seccomp allowlist, so every probe copes with a
# missing file instead of failing. Lines are "key: value" so tests can read them.

# Some seeds replace the whole environment and leave no PATH.
PATH=${PATH:-/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin}
export PATH

section() {
    echo
    echo "== $1 =="
}

# show KEY FILE: the file's contents on one line, or why it cannot be read.
show() {
    if [ -r "$2" ]; then
        echo "$1: $(tr -s " \n" " " <"$2" | sed "s/^ //; s/ $//")"
    else
        echo "$1: (not visible)"
    fi
}

# probe_write KEY DIR: can this process create a file in DIR?
probe_write() {
    f="$2/.show-container.$$"
    if (: >"$f") 2>/dev/null; then
        rm -f "$f"
        echo "$1: writable"
    else
        echo "$1: read-only"
    fi
}

show_identity() {
    section identity
    echo "program: $0"
    echo "hostname: $(hostname)"
    echo "user: $(id)"
    echo "cwd: $(pwd)"
    show uid_map /proc/self/uid_map
    show gid_map /proc/self/gid_map
    echo "pid: $$"
}

# Each namespace as "type:[inode]"; equal inodes mean a shared namespace.
show_namespaces() {
    section namespaces
    if [ -d /proc/self/ns ]; then
        for ns in cgroup ipc mnt net pid time user uts; do
            echo "ns.$ns: $(readlink "/proc/self/ns/$ns" 2>/dev/null || echo '?')"
        done
    else
        echo "namespaces: (/proc not mounted)"
    fi
}

show_security() {
    section security
    if [ -r /proc/self/status ]; then
        grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
    else
        echo "status: (/proc not mounted)"
    fi
    probe_write rootfs /
    probe_write tmp /tmp
    probe_write var_log /var/log
}

show_mounts() {
    section "mounts (mount point, type, options)"
    if [ -r /proc/self/mountinfo ]; then
        awk '{ i = 7; while ($i != "-") i++; print $5, $(i + 1), $6 }' \
            /proc/self/mountinfo
    else
        echo "mounts: (/proc not mounted)"
    fi
}

# cgroup v1 keeps one hierarchy per controller; v2 one tree with all files.
show_cgroup_limits() {
    section "cgroup limits"
    show cgroup /proc/self/cgroup
    cg=/sys/fs/cgroup
    if [ -d "$cg/memory" ] || [ -d "$cg/pids" ]; then
        show memory.limit "$cg/memory/memory.limit_in_bytes"
        show memory.swappiness "$cg/memory/memory.swappiness"
        show pids.max "$cg/pids/pids.max"
        show cpu.shares "$cg/cpu/cpu.shares"
        show cpu.cfs_quota_us "$cg/cpu/cpu.cfs_quota_us"
        show cpu.cfs_period_us "$cg/cpu/cpu.cfs_period_us"
        show cpuset.cpus "$cg/cpuset/cpuset.cpus"
    elif [ -r "$cg/cgroup.controllers" ]; then
        show memory.max "$cg/memory.max"
        show pids.max "$cg/pids.max"
        show cpu.max "$cg/cpu.max"
        show cpu.weight "$cg/cpu.weight"
        show cpuset.cpus "$cg/cpuset.cpus.effective"
    else
        echo "limits: (cgroup filesystem not mounted in this container)"
    fi
}

# busybox ash's ulimit has -S, -H and -a, which POSIX leaves out.
# shellcheck disable=SC3045
show_rlimits() {
    section "rlimits (ulimit -a)"
    echo "nofile: $(ulimit -Sn) $(ulimit -Hn)"
    echo "nproc: $(ulimit -Su) $(ulimit -Hu)"
    ulimit -a
}

echo "show-container: what this process sees"
show_identity
show_namespaces
show_security
show_mounts
show_cgroup_limits
show_rlimits
