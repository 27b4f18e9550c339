"""Host feasibility of ``linux.resources``: each planned write against this host.

The writes come from the runtime's own planner (:mod:`.plans`). For each one,
the file is looked for where the container's cgroup would be made: in the
nearest existing ancestor of its directory (usually ``/pyruntime``), else in
the hierarchy's root, where a few files never exist (``pids.max``, the v2
controller files) and the controller's presence has to stand for them. Then
the values the kernel would refuse are checked: CPUs and memory nodes the
parent does not have, block devices that do not exist, CFS periods and quotas
out of range.
"""

from __future__ import annotations

import os

from pyruntime.check import plans
from pyruntime.check.context import Context
from pyruntime.check.findings import CONFIG, HOST, split_problem
from pyruntime.errors import ConfigError, RuntimeError_, UnsupportedError

UNIFIED = "unified"
#: v1 files absent from a hierarchy's root cgroup, and a root file that shows
#: the kernel has them (None: the controller itself is enough).
V1_NOT_ON_ROOT = {
    "pids.max": None,
    "freezer.state": None,
    "rdma.max": None,
    "blkio.bfq.weight": "blkio.bfq.io_service_bytes",
    "blkio.bfq.weight_device": "blkio.bfq.io_service_bytes",
}
#: A field named in an UnsupportedError (compiled only when one is met).
_FIELD = r"linux\.resources(\.[\w.\[\]\"-]+)?"
#: The units of hugetlb file names (``hugetlb.2MB.max``), in KiB.
HUGEPAGE_UNITS = {"KB": 1, "MB": 1024, "GB": 1024 * 1024}
_CFS_PERIOD = range(1000, 1_000_001)
_CFS_MIN_QUOTA = 1000


def check_cgroups(ctx: Context) -> None:
    """Plan the cgroup writes for this host and check each one."""
    try:
        manager = plans.open_layout(ctx.spec, systemd=ctx.systemd_cgroup)
    except RuntimeError_ as err:
        where, message = split_problem(str(err))
        ctx.report.error(
            HOST,
            "cgroup-path",
            where or "linux.cgroupsPath",
            message,
            "use the cgroupfs driver and a cgroupsPath below the root",
        )
        return
    plan = plan_for(ctx, manager)
    if plan is None:
        return
    for warning in plan.warnings:
        where, _, why = warning.partition(" ignored: ")
        ctx.report.warning(
            HOST,
            "ignored",
            where,
            f"ignored on this host: {why}",
            "remove it, or expect no effect",
        )
    mounts = plans.mounted_hierarchies()
    for write in plan.writes:
        check_write(ctx, write, manager.paths(), mounts)


def plan_for(ctx: Context, manager):
    """The planned writes, or None after reporting why there are none."""
    try:
        return plans.plan_writes(manager, plans.effective_resources(ctx.spec))
    except ConfigError as err:
        for problem in err.problems:
            where, message = split_problem(problem)
            ctx.report.error(
                CONFIG, "resources", where, message, "fix this value in linux.resources"
            )
    except UnsupportedError as err:
        message = str(err)
        import re  # only for a setting this host cannot apply

        match = re.search(_FIELD, message)
        ctx.report.error(
            HOST,
            "cgroup",
            match[0] if match else "linux.resources",
            message,
            "remove the setting: this host cannot apply it",
        )
    return None


def check_write(ctx: Context, write, dirs: dict, mounts: dict) -> None:
    """One planned write: its file must exist, its value must be acceptable."""
    directory = dirs.get(write.hierarchy)
    if directory is None:
        if not write.optional:
            report_no_hierarchy(ctx, write)
        return
    mountpoint = mounts.get(write.hierarchy, os.path.dirname(directory))
    probe = nearest_existing(directory, mountpoint)
    found = find_file(write, probe, mountpoint)
    if found is None:
        if not write.optional:
            report_missing_file(ctx, write, probe, dirs)
        return
    check_value(ctx, write, found, probe)


def report_no_hierarchy(ctx: Context, write) -> None:
    """The write's hierarchy is not mounted (writable) on this host."""
    if write.hierarchy == UNIFIED:
        what = "no writable cgroup v2 hierarchy is mounted"
    else:
        what = f"the cgroup v1 controller `{write.controller}` is not mounted"
    ctx.report.error(
        HOST,
        "cgroup-controller",
        write.field,
        f"cannot apply it: {what} on this host",
        "remove the setting, or run on a host with that controller",
    )


def report_missing_file(ctx: Context, write, probe: str, dirs: dict) -> None:
    """The file the write needs does not exist here: say why and what to do."""
    from pyruntime.cgroups import v1, v2

    names = [write.filename, *(name for name, _ in write.alternatives)]
    files = " or ".join(f"`{name}`" for name in names)
    if write.hierarchy == UNIFIED:
        reason = v2.missing_reason(probe, write.controller, write.filename)
    else:
        reason = v1.missing_reason(write.filename)
    hint = "remove the setting: this host cannot apply it"
    if write.hierarchy == UNIFIED and write.controller in dirs:
        hint = (
            f"this host runs `{write.controller}` on cgroup v1: use the "
            "linux.resources fields instead of unified"
        )
    ctx.report.error(
        HOST,
        "cgroup-file",
        write.field,
        f"{files} does not exist on this host ({reason})",
        hint,
    )


def nearest_existing(directory: str, mountpoint: str) -> str:
    """``directory`` or its nearest existing ancestor, not above ``mountpoint``."""
    while directory != mountpoint and not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return directory


def find_file(write, probe: str, mountpoint: str) -> tuple[str, str] | None:
    """``(filename, value)`` of the write as it would be made, or None.

    ``probe`` is the nearest existing ancestor of the container's cgroup;
    ``mountpoint`` the hierarchy's root.
    """
    for name, value in ((write.filename, write.value), *write.alternatives):
        if os.path.exists(os.path.join(probe, name)):
            return name, value
    at_root = probe == mountpoint
    if not at_root and not (write.hierarchy == UNIFIED and not_enabled(write, probe)):
        return None
    for name, value in ((write.filename, write.value), *write.alternatives):
        if exists_below_root(write, name, mountpoint):
            return name, value
    return None


def not_enabled(write, probe: str) -> bool:
    """A v2 controller the runtime would still have to enable on the way."""
    from pyruntime.cgroups.v2 import controllers_of

    return write.controller != "cgroup" and write.controller not in controllers_of(
        probe
    )


def exists_below_root(write, name: str, root: str) -> bool:
    """Whether a file missing from a root cgroup exists in the ones below it."""
    from pyruntime.cgroups.v2 import controllers_of

    if write.hierarchy != UNIFIED:
        if name not in V1_NOT_ON_ROOT:
            return False
        marker = V1_NOT_ON_ROOT[name]
        return marker is None or os.path.exists(os.path.join(root, marker))
    if write.controller != "cgroup" and write.controller not in controllers_of(root):
        return False
    if write.controller == "hugetlb":
        return hugepage_size_known(name)
    return True


def hugepage_size_known(filename: str) -> bool:
    """Whether the kernel has the page size named in a hugetlb file name."""
    size = filename.split(".")[1]  # hugetlb.2MB.max: 2MB
    number, unit = size[:-2], size[-2:]
    if not number.isdecimal() or unit not in HUGEPAGE_UNITS:
        return False
    kb = int(number) * HUGEPAGE_UNITS[unit]
    return os.path.isdir(f"/sys/kernel/mm/hugepages/hugepages-{kb}kB")


# --- values the kernel would refuse -------------------------------------------------


def check_value(ctx: Context, write, found: tuple[str, str], probe: str) -> None:
    """Values that are well-formed but that this host's kernel refuses."""
    name, value = found
    if name in ("cpuset.cpus", "cpuset.mems"):
        check_cpuset(ctx, write, name, value, probe)
    elif is_device_file(name) and device_of(value):
        check_block_device(ctx, write, device_of(value))
    elif name in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.max"):
        check_cfs(ctx, write, name, value)


def check_cpuset(ctx: Context, write, name: str, value: str, probe: str) -> None:
    """The CPUs (memory nodes) must be ones the parent cgroup has."""
    kind = "CPUs" if name == "cpuset.cpus" else "memory nodes"
    try:
        wanted = parse_list(value)
    except ValueError:
        ctx.report.error(
            HOST,
            "cpuset",
            write.field,
            f"`{value}` is not a list of {kind} (such as 0-3,5)",
            "write it as numbers and ranges: 0-3,5",
        )
        return
    offered_text = offered_cpuset(probe, name)
    offered = parse_list(offered_text) if offered_text else None
    if offered is None or wanted <= offered:
        return
    extra = format_list(wanted - offered)
    ctx.report.error(
        HOST,
        "cpuset",
        write.field,
        f"{kind} {extra} do not exist here: this host offers {offered_text}",
        f"use {kind} within {offered_text}",
    )


def offered_cpuset(probe: str, name: str) -> str | None:
    """What the parent cgroup may hand out (or the host's online set)."""
    cpus = name == "cpuset.cpus"
    v1_name = "cpuset.effective_cpus" if cpus else "cpuset.effective_mems"
    v2_name = "cpuset.cpus.effective" if cpus else "cpuset.mems.effective"
    system = "/sys/devices/system/" + ("cpu/online" if cpus else "node/online")
    for path in (os.path.join(probe, v1_name), os.path.join(probe, v2_name), system):
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def parse_list(text: str) -> set[int]:
    """``0-3,5`` as {0, 1, 2, 3, 5}; ValueError if it is not such a list."""
    numbers: set[int] = set()
    for part in text.strip().split(","):
        low, sep, high = part.partition("-")
        start, end = int(low), int(high) if sep else int(low)
        if start < 0 or end < start:
            raise ValueError(text)
        numbers.update(range(start, end + 1))
    return numbers


def format_list(numbers: set[int]) -> str:
    """{0, 1, 2, 5} as ``0-2,5``."""
    parts, ordered = [], sorted(numbers)
    start = previous = ordered[0]
    for number in [*ordered[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ",".join(parts)


def is_device_file(name: str) -> bool:
    """A file of per-device limits: blkio's ``*device`` files, or v2's ``io.*``.

    Such as ``blkio.weight_device``, ``blkio.throttle.read_bps_device``,
    ``blkio.bfq.weight_device`` and ``io.max``.
    """
    if name.startswith("io."):
        return is_word(name[3:])
    if not name.startswith("blkio."):
        return False
    rest = name[len("blkio.") :]
    for prefix in ("throttle.", "bfq."):
        if rest.startswith(prefix):
            rest = rest[len(prefix) :]
            break
    return rest.endswith("device") and is_word(rest)


def is_word(text: str) -> bool:
    """Letters, digits and underscores only (a regex's ``\\w+``)."""
    return bool(text) and all(char == "_" or char.isalnum() for char in text)


def device_of(value: str) -> str | None:
    """The ``major:minor`` a per-device value starts with (``8:0 1048576``)."""
    head, space, _ = value.partition(" ")
    major, colon, minor = head.partition(":")
    if space and colon and major.isdecimal() and minor.isdecimal():
        return head
    return None


def check_block_device(ctx: Context, write, device: str) -> None:
    """A per-device limit needs block device ``device`` (major:minor) here."""
    if os.path.exists(f"/sys/dev/block/{device}"):
        return
    disks = host_disks()
    listed = ", ".join(f"{name} is {number}" for name, number in disks) or "none"
    ctx.report.error(
        HOST,
        "block-device",
        write.field,
        f"there is no block device {device} on this host (its disks: {listed})",
        "use the major:minor of a disk here (see /sys/block/*/dev), or remove it",
    )


def host_disks() -> list[tuple[str, str]]:
    """``(name, major:minor)`` of the host's block devices, loop devices aside."""
    disks = []
    try:
        names = sorted(os.listdir("/sys/block"))
    except OSError:
        return []
    for name in names:
        if name.startswith(("loop", "ram")):
            continue
        try:
            with open(f"/sys/block/{name}/dev", encoding="ascii") as handle:
                disks.append((name, handle.read().strip()))
        except OSError:
            continue
    return disks


def check_cfs(ctx: Context, write, name: str, value: str) -> None:
    """CFS periods must be 1 ms to 1 s, quotas at least 1 ms (or unlimited)."""
    if name == "cpu.max":
        quota_text, _, period_text = value.partition(" ")
        quota = -1 if quota_text == "max" else int(quota_text)
        period = int(period_text)
    elif name == "cpu.cfs_period_us":
        quota, period = -1, int(value)
    else:
        quota, period = int(value), _CFS_PERIOD.start
    if period not in _CFS_PERIOD:
        ctx.report.error(
            HOST,
            "cpu-period",
            write.field,
            f"a CFS period of {period} µs is refused by the kernel",
            "use a period from 1000 to 1000000 µs",
        )
    if quota != -1 and quota < _CFS_MIN_QUOTA:
        ctx.report.error(
            HOST,
            "cpu-quota",
            write.field,
            f"a CFS quota of {quota} µs is refused by the kernel",
            "use a quota of at least 1000 µs, or -1 for none",
        )
