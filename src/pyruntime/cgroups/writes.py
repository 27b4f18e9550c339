"""OCI ``linux.resources`` → the ordered cgroup file writes that enforce it.

Pure: no I/O. The drivers check that each file exists and write the values in
order. One plan per layout: :func:`plan_v1`, :func:`plan_v2` and
:func:`plan_hybrid` (v1 for the controllers, the cgroup2 hierarchy for
``hugepageLimits`` when v1 has no hugetlb, and for ``unified``).

Zero means "unset" for the numeric limits, as in runc (the spec's JSON cannot
tell an explicit 0 from a default one in every engine): ``memory.limit``,
``reservation``, ``swap``, ``kernel``, ``kernelTCP``, ``cpu.shares``,
``quota``, ``period``, ``realtime*``, ``pids.limit``, ``blockIO.weight``.
``-1`` means unlimited (``max`` on v2; ``pids.limit`` below 0 too).

cgroup v2 conversions (runtime-spec, runc, crun):

=================================  ==========================================
OCI field                          cgroup v2
=================================  ==========================================
memory.limit                       memory.max
memory.swap (memory+swap)          memory.swap.max = swap - limit
memory.reservation                 memory.low
cpu.shares                         cpu.weight = 1 + ((shares-2)*9999)/262142
cpu.quota, cpu.period              cpu.max "<quota|max> <period>" (period
                                   100000 when not given)
cpu.burst                          cpu.max.burst
blockIO.weight                     io.bfq.weight as is, else io.weight =
                                   1 + (weight-10)*9999/990
blockIO.throttle*Device            io.max "maj:min rbps|wbps|riops|wiops=N"
hugepageLimits                     hugetlb.<size>.max (+ .rsvd.max if there)
devices                            an eBPF device filter (:mod:`.ebpf`)
=================================  ==========================================

Fields v2 cannot express: ``realtimeRuntime``/``realtimePeriod`` and
``network`` are refused (ignoring them would silently drop a limit or a
traffic class); ``memory.swappiness``, ``kernel``, ``kernelTCP``,
``disableOOMKiller``, ``useHierarchy: false`` and ``blockIO.leafWeight`` are
ignored with a warning (tuning knobs v2 does not have; kernel memory is
charged to ``memory.max`` anyway). ``unified`` is refused on pure v1.
"""

from __future__ import annotations

from pyruntime.cgroups.devices import Rule, rule_of
from pyruntime.errors import ConfigError, UnsupportedError
from pyruntime.records import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources"
V2 = "unified"
DEFAULT_CFS_PERIOD = 100000
MAX_SHARES = 262144
MIN_SHARES = 2


@dataclass(frozen=True)
class Write:
    """One value to write into one cgroup file."""

    #: Controller owning the file: the v1 hierarchy name, or on v2 the
    #: controller whose name prefixes the file (``cgroup`` for core files).
    controller: str
    filename: str
    value: str
    #: The OCI field this comes from, for error messages.
    field: str
    #: Key of the hierarchy in ``Manager.paths()`` (a v1 name or ``unified``).
    hierarchy: str
    #: ``(filename, value)`` tried in order when ``filename`` does not exist.
    alternatives: tuple[tuple[str, str], ...] = ()
    #: Skip quietly when the file does not exist (implied, not asked for).
    optional: bool = False
    #: On EINVAL, retry once after every other write (ordering constraints
    #: between a limit and the current value of another file).
    retry_later: bool = False

    def triple(self) -> tuple[str, str, str]:
        """Return ``(controller, filename, value)``."""
        return (self.controller, self.filename, self.value)


@dataclass
class Plan:
    """The writes for one layout plus the warnings about ignored fields."""

    writes: list[Write] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: v2 only: the memory limit to check against memory.current first.
    check_memory_limit: int | None = None
    #: v2 only: device rules for the eBPF device filter (None: no filter).
    device_rules: list[Rule] | None = None


# --------------------------------------------------------------------- helpers


def _set(value: Any) -> bool:
    """Tell whether a numeric limit is given (None and 0 mean unset)."""
    return value is not None and value != 0


def shares_to_weight(shares: int) -> int:
    """Convert v1 ``cpu.shares`` (2..262144) to v2 ``cpu.weight`` (1..10000)."""
    shares = min(max(shares, MIN_SHARES), MAX_SHARES)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """Convert v1 ``blkio.weight`` (10..1000) to v2 ``io.weight`` (1..10000)."""
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def check_swap(swap: int | None, limit: int | None) -> None:
    """Refuse a memory+swap limit that cannot go with ``limit`` (v1 and v2).

    memory+swap is at least the memory limit, and needs one: v1's kernel
    would answer EINVAL, v2 has nothing to subtract it from.
    """
    if not _set(swap) or swap == -1:
        return
    if not _set(limit) or limit == -1:
        raise ConfigError(
            [f"{FIELD}.memory.swap: cannot set a swap limit without a memory limit"]
        )
    if swap < limit:
        raise ConfigError(
            [
                f"{FIELD}.memory.swap: memory+swap ({swap}) is below memory.limit "
                f"({limit})"
            ]
        )


def swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """Return v2 ``memory.swap.max`` for OCI memory+swap ``swap`` (None: unset).

    ``-1`` means unlimited. A limit of -1 with no swap given means both
    unlimited, as on v1.
    """
    if limit == -1 and not _set(swap):
        return -1
    if not _set(swap) or swap == -1:
        return swap if swap == -1 else None
    check_swap(swap, limit)
    return swap - limit


def _limit_text(value: int, unlimited: str) -> str:
    return unlimited if value == -1 else str(value)


def _device(entry: dict[str, Any]) -> str:
    return f"{entry['major']}:{entry['minor']}"


def _entries(section: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return list(section.get(key) or [])


class _Builder:
    """Collects writes for one hierarchy layout (v1 names or ``unified``)."""

    def __init__(self, v2: bool) -> None:
        self.v2 = v2
        self.plan = Plan()

    def add(self, controller: str, filename: str, value: Any, path: str, **kw) -> None:
        hierarchy = V2 if self.v2 else controller
        self.plan.writes.append(
            Write(controller, filename, str(value), f"{FIELD}.{path}", hierarchy, **kw)
        )

    def warn(self, path: str, why: str) -> None:
        self.plan.warnings.append(f"{FIELD}.{path} ignored: {why}")


# ---------------------------------------------------------------------- devices


def device_rule_lines(rule: dict[str, Any]) -> list[tuple[str, str]]:
    """Return ``(devices.allow|devices.deny, line)`` for one OCI device rule.

    The kernel reads a rule of type ``a`` as "every device, every access",
    whatever follows; so ``a`` is written alone only when it really means
    everything, and is otherwise split into a ``b`` and a ``c`` rule.
    """
    target = "devices.allow" if rule.get("allow") else "devices.deny"
    kind = rule.get("type") or "a"
    major, minor = rule.get("major"), rule.get("minor")
    access = rule.get("access") or "rwm"
    major_text = "*" if major is None or major == -1 else str(major)
    minor_text = "*" if minor is None or minor == -1 else str(minor)
    wildcard = major_text == "*" and minor_text == "*"
    if kind == "a" and wildcard and sorted(access) == sorted("rwm"):
        return [(target, "a")]
    kinds = ["b", "c"] if kind == "a" else [kind]
    return [(target, f"{k} {major_text}:{minor_text} {access}") for k in kinds]


def _add_v1_devices(b: _Builder, rules: list[dict[str, Any]]) -> None:
    if not rules:
        return
    # Start from "nothing allowed" so the rules read as an allow list, then
    # apply them in order (later rules override earlier ones, as in the spec).
    b.add("devices", "devices.deny", "a", "devices")
    for index, rule in enumerate(rules):
        for filename, line in device_rule_lines(rule):
            b.add("devices", filename, line, f"devices[{index}]")


# ----------------------------------------------------------------------- memory


def _add_v1_memory(b: _Builder, mem: dict[str, Any]) -> None:
    limit, swap = mem.get("limit"), mem.get("swap")
    check_swap(swap, limit)
    if _set(limit):
        # Raising the limit above the current memsw limit fails with EINVAL
        # until memsw is raised: retry it after the swap write.
        b.add(
            "memory", "memory.limit_in_bytes", limit, "memory.limit", retry_later=True
        )
    if _set(swap):
        # "No swap limit" needs no file where swap is not accounted.
        b.add(
            "memory",
            "memory.memsw.limit_in_bytes",
            swap,
            "memory.swap",
            optional=swap == -1,
            retry_later=True,
        )
    elif limit == -1:
        # Unlimited memory with no swap given: unlimited memory+swap too, if
        # the kernel accounts swap at all.
        b.add(
            "memory",
            "memory.memsw.limit_in_bytes",
            -1,
            "memory.swap",
            optional=True,
            retry_later=True,
        )
    if _set(mem.get("reservation")):
        b.add(
            "memory",
            "memory.soft_limit_in_bytes",
            mem["reservation"],
            "memory.reservation",
        )
    if _set(mem.get("kernel")):
        b.add("memory", "memory.kmem.limit_in_bytes", mem["kernel"], "memory.kernel")
    if _set(mem.get("kernelTCP")):
        b.add(
            "memory",
            "memory.kmem.tcp.limit_in_bytes",
            mem["kernelTCP"],
            "memory.kernelTCP",
        )
    _add_v1_memory_flags(b, mem)


def _add_v1_memory_flags(b: _Builder, mem: dict[str, Any]) -> None:
    swappiness = mem.get("swappiness")
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise ConfigError(
                [f"{FIELD}.memory.swappiness: {swappiness} is not in 0..100"]
            )
        b.add("memory", "memory.swappiness", swappiness, "memory.swappiness")
    if mem.get("disableOOMKiller"):
        b.add("memory", "memory.oom_control", 1, "memory.disableOOMKiller")
    if mem.get("useHierarchy") is not None:
        b.add(
            "memory",
            "memory.use_hierarchy",
            int(bool(mem["useHierarchy"])),
            "memory.useHierarchy",
        )


def _add_v2_memory(b: _Builder, mem: dict[str, Any]) -> None:
    limit = mem.get("limit")
    if _set(limit):
        b.add("memory", "memory.max", _limit_text(limit, "max"), "memory.limit")
        if mem.get("checkBeforeUpdate") and limit > 0:
            b.plan.check_memory_limit = limit
    swap = swap_to_v2(mem.get("swap"), limit)
    if swap is not None:
        # Implied, or "no swap limit": no file needed where swap is not
        # accounted.
        implied = not _set(mem.get("swap")) or swap == -1
        b.add(
            "memory",
            "memory.swap.max",
            _limit_text(swap, "max"),
            "memory.swap",
            optional=implied,
        )
    if _set(mem.get("reservation")):
        b.add(
            "memory",
            "memory.low",
            _limit_text(mem["reservation"], "max"),
            "memory.reservation",
        )
    _warn_v2_memory(b, mem)


def _warn_v2_memory(b: _Builder, mem: dict[str, Any]) -> None:
    if mem.get("swappiness") not in (None, -1):
        b.warn("memory.swappiness", "cgroup v2 has no per-cgroup swappiness")
    for key in ("kernel", "kernelTCP"):
        if _set(mem.get(key)):
            b.warn(f"memory.{key}", "cgroup v2 charges kernel memory to memory.max")
    if mem.get("disableOOMKiller"):
        b.warn("memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer")
    if mem.get("useHierarchy") is False:
        b.warn(
            "memory.useHierarchy", "cgroup v2 memory accounting is always hierarchical"
        )


# -------------------------------------------------------------------------- cpu


def _add_v1_cpu(b: _Builder, cpu: dict[str, Any]) -> None:
    if _set(cpu.get("shares")):
        b.add("cpu", "cpu.shares", cpu["shares"], "cpu.shares")
    # A shorter period can be refused (EINVAL) while the old quota is in
    # place: retry it after the quota.
    if _set(cpu.get("period")):
        b.add("cpu", "cpu.cfs_period_us", cpu["period"], "cpu.period", retry_later=True)
    if _set(cpu.get("quota")):
        b.add("cpu", "cpu.cfs_quota_us", cpu["quota"], "cpu.quota")
    if cpu.get("burst") is not None:
        b.add("cpu", "cpu.cfs_burst_us", cpu["burst"], "cpu.burst", retry_later=True)
    # The runtime may not exceed the period: write the period first, and
    # retry it last when the current runtime is larger than the new period.
    if _set(cpu.get("realtimePeriod")):
        b.add(
            "cpu",
            "cpu.rt_period_us",
            cpu["realtimePeriod"],
            "cpu.realtimePeriod",
            retry_later=True,
        )
    if _set(cpu.get("realtimeRuntime")):
        b.add(
            "cpu",
            "cpu.rt_runtime_us",
            cpu["realtimeRuntime"],
            "cpu.realtimeRuntime",
            retry_later=True,
        )
    if cpu.get("idle") is not None:
        b.add("cpu", "cpu.idle", cpu["idle"], "cpu.idle")


def _add_cpuset(b: _Builder, cpu: dict[str, Any]) -> None:
    if cpu.get("cpus"):
        b.add("cpuset", "cpuset.cpus", cpu["cpus"], "cpu.cpus")
    if cpu.get("mems"):
        b.add("cpuset", "cpuset.mems", cpu["mems"], "cpu.mems")


def cpu_max_value(quota: int | None, period: int | None) -> str | None:
    """Return the v2 ``cpu.max`` line, or None when neither is given."""
    if not _set(quota) and not _set(period):
        return None
    quota_text = str(quota) if _set(quota) and quota > 0 else "max"
    return f"{quota_text} {period if _set(period) else DEFAULT_CFS_PERIOD}"


def _add_v2_cpu(b: _Builder, cpu: dict[str, Any]) -> None:
    if _set(cpu.get("shares")):
        b.add("cpu", "cpu.weight", shares_to_weight(cpu["shares"]), "cpu.shares")
    line = cpu_max_value(cpu.get("quota"), cpu.get("period"))
    if line is not None:
        b.add(
            "cpu",
            "cpu.max",
            line,
            "cpu.quota" if _set(cpu.get("quota")) else "cpu.period",
        )
    if cpu.get("burst") is not None:
        b.add("cpu", "cpu.max.burst", cpu["burst"], "cpu.burst")
    if cpu.get("idle") is not None:
        b.add("cpu", "cpu.idle", cpu["idle"], "cpu.idle")
    for key in ("realtimeRuntime", "realtimePeriod"):
        if _set(cpu.get(key)):
            raise UnsupportedError(
                f"cannot apply {FIELD}.cpu.{key}: cgroup v2 has no realtime "
                "scheduling group (cpu.rt_* files exist only in cgroup v1)"
            )


# ------------------------------------------------------------------ pids, rdma


def _add_pids(b: _Builder, pids: dict[str, Any]) -> None:
    limit = pids.get("limit")
    if _set(limit):
        b.add("pids", "pids.max", "max" if limit < 0 else limit, "pids.limit")


def _add_rdma(b: _Builder, rdma: dict[str, Any]) -> None:
    for device, limits in sorted(rdma.items()):
        parts = []
        if limits.get("hcaHandles") is not None:
            parts.append(f"hca_handle={limits['hcaHandles']}")
        if limits.get("hcaObjects") is not None:
            parts.append(f"hca_object={limits['hcaObjects']}")
        if parts:
            b.add("rdma", "rdma.max", " ".join([device, *parts]), f"rdma.{device}")


# ---------------------------------------------------------------------- blockIO

_THROTTLE_V1 = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}
_THROTTLE_V2 = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def _add_v1_blkio(b: _Builder, bio: dict[str, Any]) -> None:
    # Kernels with BFQ instead of CFQ name the weight files blkio.bfq.*.
    if _set(bio.get("weight")):
        weight = str(bio["weight"])
        b.add(
            "blkio",
            "blkio.weight",
            weight,
            "blockIO.weight",
            alternatives=(("blkio.bfq.weight", weight),),
        )
    if _set(bio.get("leafWeight")):
        b.add("blkio", "blkio.leaf_weight", bio["leafWeight"], "blockIO.leafWeight")
    for index, dev in enumerate(_entries(bio, "weightDevice")):
        path = f"blockIO.weightDevice[{index}]"
        if _set(dev.get("weight")):
            line = f"{_device(dev)} {dev['weight']}"
            b.add(
                "blkio",
                "blkio.weight_device",
                line,
                path,
                alternatives=(("blkio.bfq.weight_device", line),),
            )
        if _set(dev.get("leafWeight")):
            b.add(
                "blkio",
                "blkio.leaf_weight_device",
                f"{_device(dev)} {dev['leafWeight']}",
                path,
            )
    for key, filename in _THROTTLE_V1.items():
        for index, dev in enumerate(_entries(bio, key)):
            b.add(
                "blkio",
                filename,
                f"{_device(dev)} {dev['rate']}",
                f"blockIO.{key}[{index}]",
            )


def _add_v2_io(b: _Builder, bio: dict[str, Any]) -> None:
    # io.bfq.weight takes the v1 scale as is; io.weight needs converting.
    if _set(bio.get("weight")):
        weight = bio["weight"]
        b.add(
            "io",
            "io.bfq.weight",
            weight,
            "blockIO.weight",
            alternatives=(("io.weight", str(blkio_weight_to_io_weight(weight))),),
        )
    for index, dev in enumerate(_entries(bio, "weightDevice")):
        if _set(dev.get("weight")):
            converted = blkio_weight_to_io_weight(dev["weight"])
            b.add(
                "io",
                "io.bfq.weight",
                f"{_device(dev)} {dev['weight']}",
                f"blockIO.weightDevice[{index}]",
                alternatives=(("io.weight", f"{_device(dev)} {converted}"),),
            )
    has_leaf = _set(bio.get("leafWeight")) or any(
        _set(d.get("leafWeight")) for d in _entries(bio, "weightDevice")
    )
    if has_leaf:
        b.warn("blockIO.leafWeight", "cgroup v2 has no leaf weights")
    for key, name in _THROTTLE_V2.items():
        for index, dev in enumerate(_entries(bio, key)):
            # v1 uses 0 for "no limit"; v2 spells it "max".
            rate = dev["rate"] if dev["rate"] else "max"
            b.add(
                "io",
                "io.max",
                f"{_device(dev)} {name}={rate}",
                f"blockIO.{key}[{index}]",
            )


# ---------------------------------------------------------- hugetlb, network


def _add_hugetlb(b: _Builder, limits: list[dict[str, Any]]) -> None:
    usage, rsvd = (
        (".max", ".rsvd.max") if b.v2 else (".limit_in_bytes", ".rsvd.limit_in_bytes")
    )
    for index, entry in enumerate(limits):
        size, path = entry["pageSize"], f"hugepageLimits[{index}]"
        if "/" in size or size.startswith("."):
            raise ConfigError([f"{FIELD}.{path}.pageSize: invalid page size `{size}`"])
        b.add("hugetlb", f"hugetlb.{size}{usage}", entry["limit"], path)
        # Also cap reservations (kernel 5.7+), so a mapping cannot reserve
        # more than it may fault in.
        b.add("hugetlb", f"hugetlb.{size}{rsvd}", entry["limit"], path, optional=True)


def _add_v1_network(b: _Builder, net: dict[str, Any]) -> None:
    if net.get("classID") is not None:
        b.add("net_cls", "net_cls.classid", net["classID"], "network.classID")
    for index, prio in enumerate(net.get("priorities") or []):
        b.add(
            "net_prio",
            "net_prio.ifpriomap",
            f"{prio['name']} {prio['priority']}",
            f"network.priorities[{index}]",
        )


def _refuse_v2_network(net: dict[str, Any]) -> None:
    if net.get("classID") is not None or net.get("priorities"):
        raise UnsupportedError(
            f"cannot apply {FIELD}.network: cgroup v2 has no net_cls/net_prio "
            "controllers (use eBPF or the network namespace instead)"
        )


# ---------------------------------------------------------------------- unified


def _add_unified(b: _Builder, unified: dict[str, str]) -> None:
    for key, value in unified.items():
        if "/" in key or key in ("", ".", ".."):
            raise ConfigError([f"{FIELD}.unified: `{key}` is not a cgroup file name"])
        controller = key.split(".", 1)[0] if "." in key else "cgroup"
        b.add(controller, key, value, f"unified.{key}")


# ------------------------------------------------------------------------ plans


def plan_v1(resources: dict[str, Any] | None) -> Plan:
    """Return the writes enforcing ``resources`` on a pure cgroup v1 host."""
    resources = resources or {}
    if resources.get("unified"):
        raise UnsupportedError(
            f"cannot apply {FIELD}.unified: this host has no cgroup v2 hierarchy "
            "(pure cgroup v1)"
        )
    b = _Builder(v2=False)
    _add_v1_sections(b, resources)
    _add_hugetlb(b, resources.get("hugepageLimits") or [])
    return b.plan


def _add_v1_sections(b: _Builder, resources: dict[str, Any]) -> None:
    # Same controller order as runc: cpuset before anything may move tasks,
    # devices early so the container never runs with the host's device set.
    cpu = resources.get("cpu") or {}
    _add_cpuset(b, cpu)
    _add_v1_devices(b, resources.get("devices") or [])
    _add_v1_memory(b, resources.get("memory") or {})
    _add_v1_cpu(b, cpu)
    _add_pids(b, resources.get("pids") or {})
    _add_v1_blkio(b, resources.get("blockIO") or {})
    _add_v1_network(b, resources.get("network") or {})
    _add_rdma(b, resources.get("rdma") or {})


def plan_v2(resources: dict[str, Any] | None) -> Plan:
    """Return the writes enforcing ``resources`` on a pure cgroup v2 host."""
    resources = resources or {}
    b = _Builder(v2=True)
    _refuse_v2_network(resources.get("network") or {})
    cpu = resources.get("cpu") or {}
    _add_cpuset(b, cpu)
    _add_v2_memory(b, resources.get("memory") or {})
    _add_v2_cpu(b, cpu)
    _add_pids(b, resources.get("pids") or {})
    _add_v2_io(b, resources.get("blockIO") or {})
    _add_hugetlb(b, resources.get("hugepageLimits") or [])
    _add_rdma(b, resources.get("rdma") or {})
    if resources.get("devices"):
        # No file to write: the driver attaches an eBPF program instead.
        b.plan.device_rules = [rule_of(entry) for entry in resources["devices"]]
    # Raw unified values come last so they override the converted ones.
    _add_unified(b, resources.get("unified") or {})
    return b.plan


def plan_hybrid(resources: dict[str, Any] | None, v1_keys: set[str]) -> Plan:
    """Return the writes for a hybrid host whose v1 hierarchies are ``v1_keys``.

    Everything goes to v1, except ``hugepageLimits`` when v1 has no hugetlb
    (the controller then lives in the cgroup2 hierarchy) and ``unified``.
    """
    resources = resources or {}
    b = _Builder(v2=False)
    _add_v1_sections(b, resources)
    hugepages = resources.get("hugepageLimits") or []
    if "hugetlb" in v1_keys:
        _add_hugetlb(b, hugepages)
    unified = _Builder(v2=True)
    if "hugetlb" not in v1_keys:
        _add_hugetlb(unified, hugepages)
    _add_unified(unified, resources.get("unified") or {})
    b.plan.writes.extend(unified.plan.writes)
    return b.plan
