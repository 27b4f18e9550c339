"""cgroup v1 specifics: cpuset seeding, the freezer, statistics, file notes.

Each function takes the directory of the container's cgroup in one v1
hierarchy (``/sys/fs/cgroup/<controller>/<path>``).
"""

from __future__ import annotations

import os
import time

from pyruntime.cgroups.files import (
    read_keyed,
    read_number,
    read_optional,
    write_file,
)
from pyruntime.errors import SetupError

#: Why a v1 file may be missing, for "cannot apply" messages.
MISSING_REASONS = {
    "blkio.weight": "cgroup v1 blkio without CFQ/BFQ",
    "blkio.weight_device": "cgroup v1 blkio without CFQ/BFQ",
    "blkio.leaf_weight": "cgroup v1 blkio without CFQ; BFQ has no leaf weights",
    "blkio.leaf_weight_device": "cgroup v1 blkio without CFQ; BFQ has no leaf weights",
    "memory.memsw.limit_in_bytes": "swap accounting is off (swapaccount=0)",
    "memory.kmem.limit_in_bytes": "kernel memory accounting is not available",
    "memory.kmem.tcp.limit_in_bytes": "kernel memory accounting is not available",
    "cpu.rt_period_us": "kernel built without CONFIG_RT_GROUP_SCHED",
    "cpu.rt_runtime_us": "kernel built without CONFIG_RT_GROUP_SCHED",
    "cpu.cfs_burst_us": "kernel older than 5.14",
    "cpu.idle": "kernel older than 5.15",
    "cpu.cfs_quota_us": "kernel built without CONFIG_CFS_BANDWIDTH",
    "cpu.cfs_period_us": "kernel built without CONFIG_CFS_BANDWIDTH",
}

FREEZE_TIMEOUT = 5.0


def missing_reason(filename: str) -> str:
    """Explain why a v1 cgroup file does not exist."""
    if filename.startswith("hugetlb."):
        return "this huge page size is not supported by the kernel"
    return MISSING_REASONS.get(filename, "not provided by this kernel")


def seed_cpuset(directory: str) -> None:
    """Copy ``cpuset.cpus``/``mems`` from the parent when they are empty.

    A new v1 cpuset starts with no CPUs and no memory nodes, and moving a
    task into it fails with ENOSPC until both are set.
    """
    parent = os.path.dirname(directory)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if read_optional(os.path.join(directory, name)):
            continue
        value = read_optional(os.path.join(parent, name)) or ""
        if value:
            write_file(os.path.join(directory, name), value)


def read_freezer_state(directory: str) -> str:
    """Return ``THAWED``, ``FREEZING`` or ``FROZEN`` (``THAWED`` if unreadable)."""
    return read_optional(os.path.join(directory, "freezer.state")) or "THAWED"


def freeze(directory: str, timeout: float = FREEZE_TIMEOUT) -> None:
    """Freeze the cgroup and wait until the kernel reports ``FROZEN``.

    The state can stay ``FREEZING`` while tasks fork or sit in
    uninterruptible sleep; writing ``FROZEN`` again retries the tasks that
    were missed. If it never settles, thaw again rather than leave the
    container half-frozen.
    """
    path = os.path.join(directory, "freezer.state")
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        write_file(path, "FROZEN")
        if read_freezer_state(directory) == "FROZEN":
            return
        if time.monotonic() > deadline:
            write_file(path, "THAWED")
            raise SetupError(
                f"freeze cgroup `{directory}`: still FREEZING after {timeout:g} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def thaw(directory: str, timeout: float = FREEZE_TIMEOUT) -> None:
    """Thaw the cgroup and wait until it reads ``THAWED``."""
    path = os.path.join(directory, "freezer.state")
    deadline = time.monotonic() + timeout
    while True:
        write_file(path, "THAWED")
        if read_freezer_state(directory) == "THAWED":
            return
        if time.monotonic() > deadline:
            raise SetupError(
                f"thaw cgroup `{directory}`: still frozen after {timeout:g} s"
            )
        time.sleep(0.005)


# ------------------------------------------------------------------------ stats


def cpu_stats(cpuacct: str | None, cpu: str | None) -> dict:
    """Return runc-shaped ``cpu`` stats from cpuacct (usage) and cpu (throttling)."""
    usage: dict = {}
    if cpuacct is not None:
        usage = _cpuacct_usage(cpuacct)
    throttling: dict = {}
    if cpu is not None:
        stat = read_keyed(os.path.join(cpu, "cpu.stat"))
        throttling = {
            "periods": stat.get("nr_periods", 0),
            "throttled_periods": stat.get("nr_throttled", 0),
            "throttled_time": stat.get("throttled_time", 0),
        }
    return {"usage": usage, "throttling": throttling}


def _cpuacct_usage(directory: str) -> dict:
    percpu = [
        int(v)
        for v in (read_optional(f"{directory}/cpuacct.usage_percpu") or "").split()
    ]
    user, kernel = [], []
    # usage_all: a "cpu user system" header, then one line per CPU.
    for line in (read_optional(f"{directory}/cpuacct.usage_all") or "").splitlines()[
        1:
    ]:
        parts = line.split()
        if len(parts) == 3:
            user.append(int(parts[1]))
            kernel.append(int(parts[2]))
    # cpuacct.stat counts USER_HZ ticks; runc reports nanoseconds.
    ticks = os.sysconf("SC_CLK_TCK")
    stat = read_keyed(f"{directory}/cpuacct.stat")
    return {
        "total": read_number(f"{directory}/cpuacct.usage"),
        "percpu": percpu,
        "percpu_kernel": kernel,
        "percpu_user": user,
        "kernel": stat.get("system", 0) * 1_000_000_000 // ticks,
        "user": stat.get("user", 0) * 1_000_000_000 // ticks,
    }


def _memory_entry(directory: str, prefix: str) -> dict:
    return {
        "limit": read_number(f"{directory}/{prefix}.limit_in_bytes"),
        "usage": read_number(f"{directory}/{prefix}.usage_in_bytes"),
        "max": read_number(f"{directory}/{prefix}.max_usage_in_bytes"),
        "failcnt": read_number(f"{directory}/{prefix}.failcnt"),
    }


def memory_stats(directory: str) -> dict:
    """Return runc-shaped ``memory`` stats."""
    raw = read_keyed(f"{directory}/memory.stat")
    return {
        "cache": raw.get("cache", 0),
        "usage": _memory_entry(directory, "memory"),
        "swap": _memory_entry(directory, "memory.memsw"),
        "kernel": _memory_entry(directory, "memory.kmem"),
        "kernelTCP": _memory_entry(directory, "memory.kmem.tcp"),
        "raw": raw,
        "use_hierarchy": read_number(f"{directory}/memory.use_hierarchy") == 1,
    }


def pids_stats(directory: str) -> dict:
    """Return ``{"current", "limit"}``; an unlimited ``pids.max`` reads as 0."""
    limit = read_optional(f"{directory}/pids.max")
    return {
        "current": read_number(f"{directory}/pids.current"),
        "limit": 0 if limit in (None, "max") else int(limit),
    }


def _blkio_entries(path: str) -> list[dict]:
    entries = []
    for line in (read_optional(path) or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue  # the "Total N" line
        major, minor = parts[0].split(":")
        entries.append(
            {
                "major": int(major),
                "minor": int(minor),
                "op": parts[1],
                "value": int(parts[2]),
            }
        )
    return entries


def blkio_stats(directory: str) -> dict:
    """Return runc-shaped ``blkio`` stats (CFQ files, else the throttle ones)."""

    def pick(name: str) -> str:
        path = f"{directory}/blkio.{name}"
        return path if os.path.exists(path) else f"{directory}/blkio.throttle.{name}"

    return {
        "ioServiceBytesRecursive": _blkio_entries(pick("io_service_bytes_recursive")),
        "ioServicedRecursive": _blkio_entries(pick("io_serviced_recursive")),
    }


def hugetlb_stats(directory: str) -> dict:
    """Return ``{page size: {"usage", "max", "failcnt"}}`` from v1 hugetlb."""
    result = {}
    for name in sorted(os.listdir(directory)):
        if (
            name.startswith("hugetlb.")
            and name.endswith(".usage_in_bytes")
            and (".rsvd." not in name)
        ):
            size = name.split(".")[1]
            result[size] = {
                "usage": read_number(f"{directory}/{name}"),
                "max": read_number(f"{directory}/hugetlb.{size}.max_usage_in_bytes"),
                "failcnt": read_number(f"{directory}/hugetlb.{size}.failcnt"),
            }
    return result
