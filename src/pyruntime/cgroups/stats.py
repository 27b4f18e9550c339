"""runc's statistics document (``events --stats`` ``data``) from cgroup files.

The shape is runc's ``types.Stats`` as runc 1.1 prints it: Go's JSON
encoder writes struct fields in declaration order, leaves out the fields
marked ``omitempty`` when they are zero, and sorts map keys (``raw``,
``hugetlb``). So a field that runc omits when zero is omitted here too.

Units follow runc: nanoseconds for CPU time (v2's microseconds and v1's
``USER_HZ`` ticks are converted), bytes for memory. An unlimited limit reads
as the kernel prints it (v1: 9223372036854771712) or, for v2's ``max``,
2**64-1. On v2 the ``swap`` entry is memory+swap, as on v1, so that the
numbers mean the same on both.

Each part is collected on its own: an unreadable controller leaves its part
at its zero value instead of failing the whole document.
"""

from __future__ import annotations

import os

from pyruntime.cgroups.files import (
    V2_UNLIMITED_STAT,
    read_keyed,
    read_number,
    read_optional,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

UNIFIED = "unified"
CPUSET_FLAGS = (
    ("cpu_exclusive", "cpuset.cpu_exclusive"),
    ("mems", None),
    ("mem_hardwall", "cpuset.mem_hardwall"),
    ("mem_exclusive", "cpuset.mem_exclusive"),
    ("memory_migrate", "cpuset.memory_migrate"),
    ("memory_spread_page", "cpuset.memory_spread_page"),
    ("memory_spread_slab", "cpuset.memory_spread_slab"),
    ("memory_pressure", "cpuset.memory_pressure"),
    ("sched_load_balance", "cpuset.sched_load_balance"),
    ("sched_relax_domain_level", "cpuset.sched_relax_domain_level"),
)


def _nonzero(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a dict without the zero/empty values (Go's ``omitempty``)."""
    return {key: value for key, value in pairs if value}


def _safely(collect, *args, default=None):
    try:
        return collect(*args)
    except (OSError, ValueError):
        return {} if default is None else default


# ----------------------------------------------------------------- document


def collect_stats(dirs: dict[str, str]) -> dict[str, Any]:
    """Return the stats document for a container's ``{key: directory}``.

    Pure v2 when only ``unified`` is there; otherwise v1 controllers, with
    hugetlb from the cgroup2 hierarchy on a hybrid host without v1 hugetlb.
    """
    pure_v2 = set(dirs) == {UNIFIED}
    parts = _v2_parts(dirs[UNIFIED]) if pure_v2 else _v1_parts(dirs)
    return {
        "cpu": parts["cpu"],
        "cpuset": parts["cpuset"],
        "memory": parts["memory"],
        "pids": parts["pids"],
        "blkio": parts["blkio"],
        "hugetlb": parts["hugetlb"],
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _v1_parts(dirs: dict[str, str]) -> dict[str, Any]:
    def at(key, collect, default):
        directory = dirs.get(key)
        if directory is None or not os.path.isdir(directory):
            return default
        return _safely(collect, directory, default=default)

    hugetlb = at("hugetlb", v1_hugetlb, {})
    if "hugetlb" not in dirs and UNIFIED in dirs:
        hugetlb = _safely(v2_hugetlb, dirs[UNIFIED])
    return {
        "cpu": _safely(v1_cpu, dirs.get("cpuacct"), dirs.get("cpu")),
        "cpuset": at("cpuset", v1_cpuset, cpuset_zero()),
        "memory": at("memory", v1_memory, memory_zero()),
        "pids": at("pids", pids, {}),
        "blkio": at("blkio", v1_blkio, {}),
        "hugetlb": hugetlb,
    }


def _v2_parts(directory: str) -> dict[str, Any]:
    return {
        "cpu": _safely(v2_cpu, directory),
        "cpuset": _safely(v2_cpuset, directory, default=cpuset_zero()),
        "memory": _safely(v2_memory, directory, default=memory_zero()),
        "pids": _safely(pids, directory),
        "blkio": _safely(v2_io, directory),
        "hugetlb": _safely(v2_hugetlb, directory),
    }


# ---------------------------------------------------------------- shared


def parse_list(text: str | None) -> list[int]:
    """Expand a cpuset list such as ``0-2,5`` into ``[0, 1, 2, 5]``."""
    result: list[int] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        result.extend(range(int(low), int(high or low) + 1))
    return result


def memory_entry(limit=0, usage=0, peak=0, failcnt=0) -> dict[str, int]:
    """One runc ``MemoryEntry``: limit and failcnt always, the rest if set."""
    entry = {"limit": limit}
    entry.update(_nonzero([("usage", usage), ("max", peak)]))
    entry["failcnt"] = failcnt
    return entry


def memory_zero() -> dict[str, Any]:
    """The memory part when nothing could be read."""
    zero = memory_entry()
    return {"usage": zero, "swap": dict(zero), "kernel": dict(zero), "kernelTCP": zero}


def cpuset_zero() -> dict[str, Any]:
    """The cpuset part when nothing could be read."""
    return {key: 0 for key, name in CPUSET_FLAGS if name is not None}


def _cpu(usage: dict, throttling: dict) -> dict[str, Any]:
    return {"usage": usage, "throttling": throttling}


def _throttling(periods: int, throttled: int, time_ns: int) -> dict[str, int]:
    return _nonzero(
        [
            ("periods", periods),
            ("throttledPeriods", throttled),
            ("throttledTime", time_ns),
        ]
    )


def pids(directory: str) -> dict[str, int]:
    """``{"current", "limit"}`` (omitted when 0; an unlimited ``pids.max`` is 0)."""
    limit = read_optional(f"{directory}/pids.max")
    return _nonzero(
        [
            ("current", read_number(f"{directory}/pids.current")),
            ("limit", 0 if limit in (None, "max") else int(limit)),
        ]
    )


# ------------------------------------------------------------------- v1


def v1_cpu(cpuacct: str | None, cpu: str | None) -> dict[str, Any]:
    """CPU usage from cpuacct, throttling from cpu.stat."""
    usage: dict[str, Any] = {"kernel": 0, "user": 0}
    if cpuacct is not None and os.path.isdir(cpuacct):
        usage = _cpuacct_usage(cpuacct)
    throttling: dict[str, int] = {}
    if cpu is not None:
        stat = read_keyed(os.path.join(cpu, "cpu.stat"))
        throttling = _throttling(
            stat.get("nr_periods", 0),
            stat.get("nr_throttled", 0),
            stat.get("throttled_time", 0),
        )
    return _cpu(usage, throttling)


def _cpuacct_usage(directory: str) -> dict[str, Any]:
    percpu = [
        int(v)
        for v in (read_optional(f"{directory}/cpuacct.usage_percpu") or "").split()
    ]
    user, kernel = [], []
    # usage_all: a "cpu user system" header, then one line per CPU.
    lines = (read_optional(f"{directory}/cpuacct.usage_all") or "").splitlines()
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 3:
            user.append(int(parts[1]))
            kernel.append(int(parts[2]))
    # cpuacct.stat counts USER_HZ ticks; runc reports nanoseconds.
    ticks = os.sysconf("SC_CLK_TCK")
    stat = read_keyed(f"{directory}/cpuacct.stat")
    usage = _nonzero(
        [
            ("total", read_number(f"{directory}/cpuacct.usage")),
            ("percpu", percpu),
            ("percpu_kernel", kernel),
            ("percpu_user", user),
        ]
    )
    usage["kernel"] = stat.get("system", 0) * 1_000_000_000 // ticks
    usage["user"] = stat.get("user", 0) * 1_000_000_000 // ticks
    return usage


def v1_cpuset(directory: str) -> dict[str, Any]:
    """The cpuset part: CPU and node lists plus the cpuset flags."""
    result: dict[str, Any] = {}
    cpus = parse_list(read_optional(f"{directory}/cpuset.cpus"))
    if cpus:
        result["cpus"] = cpus
    for key, name in CPUSET_FLAGS:
        if name is None:
            mems = parse_list(read_optional(f"{directory}/cpuset.mems"))
            if mems:
                result["mems"] = mems
            continue
        result[key] = read_number(f"{directory}/{name}")
    return result


def _v1_memory_entry(directory: str, prefix: str) -> dict[str, int]:
    return memory_entry(
        read_number(f"{directory}/{prefix}.limit_in_bytes"),
        read_number(f"{directory}/{prefix}.usage_in_bytes"),
        read_number(f"{directory}/{prefix}.max_usage_in_bytes"),
        read_number(f"{directory}/{prefix}.failcnt"),
    )


def v1_memory(directory: str) -> dict[str, Any]:
    """The memory part: usage, memory+swap, kernel and TCP, memory.stat."""
    raw = read_keyed(f"{directory}/memory.stat")
    result: dict[str, Any] = _nonzero([("cache", raw.get("cache", 0))])
    result["usage"] = _v1_memory_entry(directory, "memory")
    result["swap"] = _v1_memory_entry(directory, "memory.memsw")
    result["kernel"] = _v1_memory_entry(directory, "memory.kmem")
    result["kernelTCP"] = _v1_memory_entry(directory, "memory.kmem.tcp")
    if raw:
        result["raw"] = dict(sorted(raw.items()))
    return result


def _blkio_entries(path: str) -> list[dict[str, Any]]:
    entries = []
    for line in (read_optional(path) or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue  # the closing "Total N" line
        major, minor = parts[0].split(":")
        entries.append(
            _nonzero(
                [
                    ("major", int(major)),
                    ("minor", int(minor)),
                    ("op", parts[1]),
                    ("value", int(parts[2])),
                ]
            )
        )
    return entries


def v1_blkio(directory: str) -> dict[str, Any]:
    """The blkio part: CFQ/BFQ files when there, else the throttle ones."""

    def pick(name: str) -> str:
        for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
            path = f"{directory}/{prefix}{name}"
            if _blkio_entries(path):
                return path
        return f"{directory}/blkio.throttle.{name}"

    return _nonzero(
        [
            (
                "ioServiceBytesRecursive",
                _blkio_entries(pick("io_service_bytes_recursive")),
            ),
            ("ioServicedRecursive", _blkio_entries(pick("io_serviced_recursive"))),
        ]
    )


def v1_hugetlb(directory: str) -> dict[str, dict[str, int]]:
    """``{page size: {"usage", "max", "failcnt"}}`` from v1 hugetlb."""
    result = {}
    for name in sorted(os.listdir(directory)):
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "hugetlb" and parts[2] == "usage_in_bytes":
            size = parts[1]
            entry = _nonzero(
                [
                    ("usage", read_number(f"{directory}/{name}")),
                    (
                        "max",
                        read_number(f"{directory}/hugetlb.{size}.max_usage_in_bytes"),
                    ),
                ]
            )
            entry["failcnt"] = read_number(f"{directory}/hugetlb.{size}.failcnt")
            result[size] = entry
    return result


# ------------------------------------------------------------------- v2


def v2_cpu(directory: str) -> dict[str, Any]:
    """CPU usage and throttling from ``cpu.stat`` (µs → ns)."""
    stat = read_keyed(f"{directory}/cpu.stat")
    usage: dict[str, Any] = _nonzero([("total", stat.get("usage_usec", 0) * 1000)])
    usage["kernel"] = stat.get("system_usec", 0) * 1000
    usage["user"] = stat.get("user_usec", 0) * 1000
    throttling = _throttling(
        stat.get("nr_periods", 0),
        stat.get("nr_throttled", 0),
        stat.get("throttled_usec", 0) * 1000,
    )
    return _cpu(usage, throttling)


def v2_cpuset(directory: str) -> dict[str, Any]:
    """The cpuset part: the effective CPUs and nodes (v2 has no flags)."""
    result: dict[str, Any] = {}
    cpus = parse_list(read_optional(f"{directory}/cpuset.cpus.effective"))
    mems = parse_list(read_optional(f"{directory}/cpuset.mems.effective"))
    if cpus:
        result["cpus"] = cpus
    for key, name in CPUSET_FLAGS:
        if name is None:
            if mems:
                result["mems"] = mems
            continue
        result[key] = 0
    return result


def v2_memory(directory: str) -> dict[str, Any]:
    """The memory part; ``swap`` is memory+swap as on v1."""
    raw = read_keyed(f"{directory}/memory.stat")
    events = read_keyed(f"{directory}/memory.events")
    limit = read_number(f"{directory}/memory.max", V2_UNLIMITED_STAT)
    usage = read_number(f"{directory}/memory.current")
    swap_limit = read_number(f"{directory}/memory.swap.max", V2_UNLIMITED_STAT)
    if swap_limit != V2_UNLIMITED_STAT and limit != V2_UNLIMITED_STAT:
        swap_limit += limit
    swap_events = read_keyed(f"{directory}/memory.swap.events")
    result: dict[str, Any] = _nonzero([("cache", raw.get("file", 0))])
    result["usage"] = memory_entry(
        limit, usage, read_number(f"{directory}/memory.peak"), events.get("max", 0)
    )
    result["swap"] = memory_entry(
        swap_limit,
        usage + read_number(f"{directory}/memory.swap.current"),
        0,
        swap_events.get("max", 0),
    )
    result["kernel"] = memory_entry()
    result["kernelTCP"] = memory_entry()
    if raw:
        result["raw"] = dict(sorted(raw.items()))
    return result


def v2_io(directory: str) -> dict[str, Any]:
    """The blkio part from ``io.stat``."""
    service_bytes, serviced = [], []
    for line in (read_optional(f"{directory}/io.stat") or "").splitlines():
        device, *pairs = line.split()
        major, minor = (int(n) for n in device.split(":"))
        values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        for op, nbytes, nios in (
            ("Read", "rbytes", "rios"),
            ("Write", "wbytes", "wios"),
        ):
            base = [("major", major), ("minor", minor), ("op", op)]
            service_bytes.append(
                _nonzero([*base, ("value", int(values.get(nbytes, 0)))])
            )
            serviced.append(_nonzero([*base, ("value", int(values.get(nios, 0)))]))
    return _nonzero(
        [("ioServiceBytesRecursive", service_bytes), ("ioServicedRecursive", serviced)]
    )


def v2_hugetlb(directory: str) -> dict[str, dict[str, int]]:
    """``{page size: {"usage", "failcnt"}}`` from v2 hugetlb (no peak in v2)."""
    result = {}
    for name in sorted(os.listdir(directory)):
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "hugetlb" and parts[2] == "current":
            size = parts[1]
            entry = _nonzero([("usage", read_number(f"{directory}/{name}"))])
            events = read_keyed(f"{directory}/hugetlb.{size}.events")
            entry["failcnt"] = events.get("max", 0)
            result[size] = entry
    return result
