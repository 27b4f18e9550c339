"""cgroup v1 specifics: cpuset seeding, the freezer, file notes.

Each function takes the directory of the container's cgroup in one v1
hierarchy (``/sys/fs/cgroup/<controller>/<path>``).
"""

from __future__ import annotations

import os
import time

from pyruntime.cgroups.files import (
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
