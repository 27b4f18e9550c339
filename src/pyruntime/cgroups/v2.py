"""cgroup v2 specifics: delegating controllers, freezing, killing.

Used for the pure v2 hierarchy and for the cgroup2 hierarchy of a hybrid host.

Controllers reach a cgroup only through its parent's ``cgroup.subtree_control``.
So after creating a cgroup, every ancestor from the hierarchy root down to
its parent gets the controllers it offers (``cgroup.controllers``) enabled,
as runc does. This is the one place we write to cgroups we did not create:
an existing ancestor is written only when it lacks a controller, and a
refusal (EBUSY: it holds processes itself, "no internal processes" rule) is
ignored; the resource files then stay absent and ``apply`` reports which. On
a host where the parent is the root cgroup (the usual case), this is only
the root's ``cgroup.subtree_control``.
"""

from __future__ import annotations

import os
import time

from pyruntime.cgroups.files import (
    read_keyed,
    read_number,
    read_optional,
    write_file,
    write_raw,
)
from pyruntime.errors import SetupError

FREEZE_TIMEOUT = 5.0


def enable_controllers(mountpoint: str, directory: str) -> None:
    """Enable every available controller on the path down to ``directory``."""
    rel = os.path.relpath(directory, mountpoint)
    parts = [] if rel == "." else rel.split("/")
    current = mountpoint
    # Each ancestor, root included, down to the parent of ``directory``.
    for part in parts:
        _enable_in(current)
        current = os.path.join(current, part)


def _enable_in(directory: str) -> None:
    available = (read_optional(f"{directory}/cgroup.controllers") or "").split()
    enabled = set((read_optional(f"{directory}/cgroup.subtree_control") or "").split())
    missing = [name for name in available if name not in enabled]
    if not missing:
        return
    path = f"{directory}/cgroup.subtree_control"
    try:
        write_raw(path, " ".join(f"+{name}" for name in missing))
    except OSError:
        # One controller may be refused (e.g. cpu while a realtime task sits
        # in the cgroup): enable the others one at a time.
        for name in missing:
            try:
                write_raw(path, f"+{name}")
            except OSError:
                continue


def controllers_of(directory: str) -> list[str]:
    """Return the controllers enabled for ``directory``."""
    return (read_optional(f"{directory}/cgroup.controllers") or "").split()


def missing_reason(
    directory: str,
    controller: str,
    filename: str,
    root: str | None = None,
    v1_names: frozenset[str] = frozenset(),
) -> str:
    """Explain why a v2 cgroup file does not exist.

    ``root`` is the hierarchy's mount point and ``v1_names`` the controllers
    bound to cgroup v1 hierarchies (hybrid hosts): they tell a controller
    this hierarchy lacks altogether from one that is only not enabled.
    """
    if controller != "cgroup" and controller not in controllers_of(directory):
        offered = controllers_of(root) if root is not None else [controller]
        if controller in v1_names:
            return (
                f"controller `{controller}` is bound to a cgroup v1 hierarchy on "
                "this host, not to the cgroup v2 one"
            )
        if controller not in offered:
            return f"the cgroup v2 hierarchy has no `{controller}` controller"
        return (
            f"controller `{controller}` is not enabled for this cgroup "
            "(not in its parent's cgroup.subtree_control)"
        )
    if filename.startswith("hugetlb."):
        return "this huge page size is not supported by the kernel"
    if filename in ("io.bfq.weight", "io.weight"):
        return "neither the BFQ scheduler nor io.cost weights are available"
    return "not provided by this kernel"


def check_memory_usage(directory: str, limit: int) -> None:
    """Refuse a memory limit below current usage (``checkBeforeUpdate``).

    On v1 the kernel refuses such a limit; on v2 it would OOM-kill instead.
    """
    current = read_number(f"{directory}/memory.current")
    if current > limit:
        raise SetupError(
            f"set memory limit {limit} on `{directory}`: below the current "
            f"usage {current} (linux.resources.memory.checkBeforeUpdate)"
        )


def is_frozen(directory: str) -> bool:
    """Tell whether the cgroup was asked to freeze (``cgroup.freeze`` is 1)."""
    return read_optional(f"{directory}/cgroup.freeze") == "1"


def _frozen_event(directory: str) -> bool:
    return read_keyed(f"{directory}/cgroup.events").get("frozen") == 1


def freeze(directory: str, timeout: float = FREEZE_TIMEOUT) -> None:
    """Freeze the cgroup and wait until ``cgroup.events`` says ``frozen 1``."""
    write_file(f"{directory}/cgroup.freeze", "1")
    _wait_frozen(directory, True, timeout)


def thaw(directory: str, timeout: float = FREEZE_TIMEOUT) -> None:
    """Thaw the cgroup and wait until ``cgroup.events`` says ``frozen 0``."""
    write_file(f"{directory}/cgroup.freeze", "0")
    _wait_frozen(directory, False, timeout)


def _wait_frozen(directory: str, want: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while _frozen_event(directory) != want:
        if time.monotonic() > deadline:
            if want:
                write_file(f"{directory}/cgroup.freeze", "0")
            verb = "freeze" if want else "thaw"
            raise SetupError(
                f"{verb} cgroup `{directory}`: not done after {timeout:g} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def can_kill(directory: str) -> bool:
    """Tell whether ``cgroup.kill`` (kernel 5.14+) is available."""
    return os.path.exists(f"{directory}/cgroup.kill")


def kill(directory: str) -> None:
    """SIGKILL every process in the cgroup and its descendants, atomically."""
    write_file(f"{directory}/cgroup.kill", "1")
