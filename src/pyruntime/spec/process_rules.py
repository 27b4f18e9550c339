"""Document rules for the process attributes that go beyond uid, cwd and args.

This module owns the checks of ``process.apparmorProfile``,
``process.selinuxLabel``, ``process.ioPriority``, ``process.scheduler`` and
``process.execCPUAffinity``, and of ``linux.mountLabel``,
``linux.personality``, ``linux.memoryPolicy`` and ``linux.intelRdt``. Like
``spec.validate`` it looks only at the document and reports problems as
``json.path: what``; whether the host can honour a valid setting (an LSM, a
NUMA node, a CPU) is checked where the setting is applied.

:func:`process_problems` takes a lone ``Process`` so that ``exec --process``
can run the same rules. The tables from the spec's names to the kernel's
values, and :func:`parse_id_list`, are shared with the code that applies
them (``security.process_attrs``); nothing here imports ctypes.
"""

from __future__ import annotations

from pyruntime.spec.jsontext import quote
from pyruntime.spec.model import (
    ExecCPUAffinity,
    IoPriority,
    Linux,
    MemoryPolicy,
    Personality,
    Process,
    Scheduler,
    Spec,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# The spec's names and the kernel's values (linux/ioprio.h, linux/sched.h,
# linux/mempolicy.h, linux/personality.h): the rules check the names,
# security.process_attrs turns them into system call arguments.
IOPRIO_CLASSES = {
    "IOPRIO_CLASS_RT": 1,
    "IOPRIO_CLASS_BE": 2,
    "IOPRIO_CLASS_IDLE": 3,
}

SCHED_POLICIES = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,  # reserved: mainline Linux does not implement it
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}

MPOL_MODES = {
    "MPOL_DEFAULT": 0,
    "MPOL_PREFERRED": 1,
    "MPOL_BIND": 2,
    "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4,
    "MPOL_PREFERRED_MANY": 5,
    "MPOL_WEIGHTED_INTERLEAVE": 6,
}
MPOL_FLAGS = {
    "MPOL_F_NUMA_BALANCING": 1 << 13,
    "MPOL_F_RELATIVE_NODES": 1 << 14,
    "MPOL_F_STATIC_NODES": 1 << 15,
}

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
PERSONALITY_FLAGS = {
    "UNAME26": 0x0020000,
    "ADDR_NO_RANDOMIZE": 0x0040000,
    "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000,
    "ADDR_COMPAT_LAYOUT": 0x0200000,
    "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000,
    "SHORT_INODE": 0x1000000,
    "WHOLE_SECONDS": 0x2000000,
    "STICKY_TIMEOUTS": 0x4000000,
    "ADDR_LIMIT_3GB": 0x8000000,
}

#: The highest CPU or NUMA node number a list may name (the kernel's own
#: limits are lower; this only keeps a typo from allocating a huge mask).
MAX_LIST_ID = 65535
#: ioprio levels within a class (IOPRIO_NR_LEVELS).
IOPRIO_LEVELS = range(0, 8)
NICE_VALUES = range(-20, 20)
#: Static priorities of SCHED_FIFO and SCHED_RR (sched_get_priority_min/max).
REALTIME_PRIORITIES = range(1, 100)
REALTIME_POLICIES = frozenset({"SCHED_FIFO", "SCHED_RR"})
#: The kernel refuses a deadline runtime below 1 << DL_SCALE nanoseconds.
MIN_DEADLINE_RUNTIME = 1024
#: Deadline and period must not have the top bit set (__checkparam_dl).
DEADLINE_LIMIT = 1 << 63
DEADLINE_ONLY_FLAGS = frozenset({"SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN"})
#: Modes that take no nodes, and modes that need at least one.
MODES_WITHOUT_NODES = frozenset({"MPOL_DEFAULT", "MPOL_LOCAL"})
MODES_NEEDING_NODES = frozenset(
    {"MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"}
)
NODE_REMAP_FLAGS = frozenset({"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"})


def one_of(values) -> str:
    """Format allowed values for a message."""
    return "expected one of " + ", ".join(sorted(values))


# --- CPU and node lists ------------------------------------------------------------


def parse_id_list(text: str) -> tuple[int, ...]:
    """Parse a list like ``"0-3,7"`` into sorted, distinct numbers.

    Raises ValueError with a message naming the bad part.
    """
    if not text.strip():
        raise ValueError('must name at least one number, like "0-3,7"')
    found: set[int] = set()
    for item in text.split(","):
        found.update(parse_id_range(item.strip(), text))
    return tuple(sorted(found))


def parse_id_range(item: str, text: str) -> range:
    """One item of an id list: ``N`` or ``N-M``."""
    low, sep, high = item.partition("-")
    if not low.isdecimal() or (sep and not high.isdecimal()):
        raise ValueError(
            f"{quote(item)} in {quote(text)} is not a number or a range like 0-3"
        )
    first, last = int(low), int(high) if sep else int(low)
    if last < first:
        raise ValueError(f"range {quote(item)} ends before it starts")
    if last > MAX_LIST_ID:
        raise ValueError(f"{last} in {quote(text)} is above {MAX_LIST_ID}")
    return range(first, last + 1)


def id_list_problems(text: str | None, where: str) -> Iterator[str]:
    """The problem of a CPU or node list, if it does not parse."""
    if text is None:
        return
    try:
        parse_id_list(text)
    except ValueError as err:
        yield f"{where}: {err}"


# --- process ---------------------------------------------------------------------


def process_problems(process: Process, where: str = "process") -> list[str]:
    """Every problem of the attributes this module owns in ``process``."""
    return [
        *label_problems(process.apparmor_profile, f"{where}.apparmorProfile"),
        *selinux_label_problems(process.selinux_label, f"{where}.selinuxLabel"),
        *io_priority_problems(process.io_priority, f"{where}.ioPriority"),
        *scheduler_problems(process.scheduler, f"{where}.scheduler"),
        *cpu_affinity_problems(process.exec_cpu_affinity, f"{where}.execCPUAffinity"),
    ]


def label_problems(label: str | None, where: str) -> Iterator[str]:
    """An LSM label is written to /proc as one line: no newline, no NUL."""
    if label and ("\n" in label or "\0" in label):
        yield f"{where}: must not contain a newline or a NUL character"


def selinux_label_problems(label: str | None, where: str) -> Iterator[str]:
    """An SELinux context reads ``user:role:type[:level]``."""
    yield from label_problems(label, where)
    if label and (label.count(":") < 2 or "" in label.split(":")[:3]):
        yield (
            f"{where}: {quote(label)} is not an SELinux context like "
            '"system_u:system_r:container_t:s0"'
        )


def io_priority_problems(io: IoPriority | None, where: str) -> Iterator[str]:
    """A known class and a level 0-7."""
    if io is None:
        return
    if io.class_ not in IOPRIO_CLASSES:
        kind = quote(io.class_)
        yield f"{where}.class: unknown class {kind} ({one_of(IOPRIO_CLASSES)})"
    if io.priority not in IOPRIO_LEVELS:
        yield f"{where}.priority: {io.priority} is outside 0..7"


def scheduler_problems(sched: Scheduler | None, where: str) -> Iterator[str]:
    """Policy, nice, priority, flags, and the deadline parameters."""
    if sched is None:
        return
    if sched.policy not in SCHED_POLICIES:
        kind = quote(sched.policy)
        yield f"{where}.policy: unknown policy {kind} ({one_of(SCHED_POLICIES)})"
        return
    if sched.nice is not None and sched.nice not in NICE_VALUES:
        yield f"{where}.nice: {sched.nice} is outside -20..19"
    yield from priority_problems(sched, where)
    yield from sched_flag_problems(sched, where)
    if sched.policy == "SCHED_DEADLINE":
        yield from deadline_problems(sched, where)
    else:
        yield from stray_deadline_problems(sched, where)


def priority_problems(sched: Scheduler, where: str) -> Iterator[str]:
    """FIFO and RR need a priority 1-99; no other policy takes one."""
    priority = sched.priority or 0
    if sched.policy in REALTIME_POLICIES:
        if priority not in REALTIME_PRIORITIES:
            yield (
                f"{where}.priority: {sched.policy} needs a priority between 1 "
                f"and 99, got {priority}"
            )
    elif priority:
        yield (
            f"{where}.priority: only SCHED_FIFO and SCHED_RR take a priority "
            f"(policy is {sched.policy}, priority {priority})"
        )


def sched_flag_problems(sched: Scheduler, where: str) -> Iterator[str]:
    """Known SCHED_FLAG_* names; the deadline-only ones with SCHED_DEADLINE."""
    for index, flag in enumerate(sched.flags or ()):
        at = f"{where}.flags[{index}]"
        if flag not in SCHED_FLAGS:
            yield f"{at}: unknown flag {quote(flag)} ({one_of(SCHED_FLAGS)})"
        elif flag in DEADLINE_ONLY_FLAGS and sched.policy != "SCHED_DEADLINE":
            yield f"{at}: {flag} applies only to SCHED_DEADLINE"


def deadline_problems(sched: Scheduler, where: str) -> Iterator[str]:
    """runtime <= deadline <= period, all non-zero (period 0 means deadline)."""
    runtime, deadline, period = sched.runtime, sched.deadline, sched.period
    if not runtime:
        yield f"{where}.runtime: SCHED_DEADLINE needs a non-zero runtime"
    elif runtime < MIN_DEADLINE_RUNTIME:
        yield (
            f"{where}.runtime: {runtime} ns is below the kernel's minimum of "
            f"{MIN_DEADLINE_RUNTIME} ns"
        )
    if not deadline:
        yield f"{where}.deadline: SCHED_DEADLINE needs a non-zero deadline"
    for key, value in (("deadline", deadline), ("period", period)):
        if value and value >= DEADLINE_LIMIT:
            yield f"{where}.{key}: {value} is not below 2^63"
    if runtime and deadline and runtime > deadline:
        yield (
            f"{where}: runtime {runtime} is greater than deadline {deadline} "
            "(SCHED_DEADLINE needs runtime <= deadline <= period)"
        )
    if deadline and period and deadline > period:
        yield (
            f"{where}: deadline {deadline} is greater than period {period} "
            "(SCHED_DEADLINE needs runtime <= deadline <= period)"
        )


def stray_deadline_problems(sched: Scheduler, where: str) -> Iterator[str]:
    """runtime, deadline and period belong to SCHED_DEADLINE only."""
    for key in ("runtime", "deadline", "period"):
        if getattr(sched, key):
            yield (
                f"{where}.{key}: applies only to SCHED_DEADLINE "
                f"(policy is {sched.policy})"
            )


def cpu_affinity_problems(
    affinity: ExecCPUAffinity | None, where: str
) -> Iterator[str]:
    """``initial`` and ``final`` are CPU lists."""
    if affinity is None:
        return
    yield from id_list_problems(affinity.initial, f"{where}.initial")
    yield from id_list_problems(affinity.final, f"{where}.final")


# --- linux -----------------------------------------------------------------------


def linux_problems(linux: Linux | None) -> list[str]:
    """Every problem of the ``linux`` attributes this module owns."""
    if linux is None:
        return []
    return [
        *selinux_label_problems(linux.mount_label, "linux.mountLabel"),
        *personality_problems(linux.personality, "linux.personality"),
        *memory_policy_problems(linux.memory_policy, "linux.memoryPolicy"),
        *intel_rdt_problems(linux),
    ]


def personality_problems(persona: Personality | None, where: str) -> Iterator[str]:
    """A known execution domain and known flags.

    The runtime-spec defines no flag yet; the kernel's names are accepted.
    """
    if persona is None:
        return
    if persona.domain not in PERSONALITY_DOMAINS:
        kind = quote(persona.domain)
        yield (f"{where}.domain: unknown domain {kind} ({one_of(PERSONALITY_DOMAINS)})")
    for index, flag in enumerate(persona.flags or ()):
        if flag not in PERSONALITY_FLAGS:
            yield (
                f"{where}.flags[{index}]: unknown flag {quote(flag)} "
                f"({one_of(PERSONALITY_FLAGS)})"
            )


def memory_policy_problems(policy: MemoryPolicy | None, where: str) -> Iterator[str]:
    """Mode, flags and nodes, with the kernel's rules on how they combine."""
    if policy is None:
        return
    if policy.mode not in MPOL_MODES:
        kind = quote(policy.mode)
        yield f"{where}.mode: unknown mode {kind} ({one_of(MPOL_MODES)})"
        return
    flags = list(policy.flags or ())
    for index, flag in enumerate(flags):
        if flag not in MPOL_FLAGS:
            kind = quote(flag)
            yield f"{where}.flags[{index}]: unknown flag {kind} ({one_of(MPOL_FLAGS)})"
    yield from memory_flag_problems(policy.mode, set(flags), where)
    yield from memory_node_problems(policy, set(flags), where)


def memory_flag_problems(mode: str, flags: set[str], where: str) -> Iterator[str]:
    """STATIC and RELATIVE exclude each other; NUMA_BALANCING needs MPOL_BIND."""
    if flags >= NODE_REMAP_FLAGS:
        yield (
            f"{where}.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES "
            "exclude each other"
        )
    if "MPOL_F_NUMA_BALANCING" in flags and mode != "MPOL_BIND":
        yield f"{where}.flags: MPOL_F_NUMA_BALANCING needs mode MPOL_BIND, not {mode}"


def memory_node_problems(
    policy: MemoryPolicy, flags: set[str], where: str
) -> Iterator[str]:
    """Which modes take nodes, and the syntax of the node list."""
    nodes = policy.nodes
    given = nodes is not None and nodes.strip() != ""
    if policy.mode in MODES_WITHOUT_NODES:
        if given:
            got = quote(nodes)
            yield f"{where}.nodes: {policy.mode} takes no nodes, got {got}"
        if policy.mode == "MPOL_LOCAL" and flags & NODE_REMAP_FLAGS:
            yield f"{where}.flags: MPOL_LOCAL takes no node flags"
        return
    if not given:
        if policy.mode in MODES_NEEDING_NODES:
            yield f"{where}.nodes: {policy.mode} needs at least one node"
        elif flags & NODE_REMAP_FLAGS:
            yield f"{where}.nodes: node flags need at least one node"
        return
    yield from id_list_problems(nodes, f"{where}.nodes")


def intel_rdt_problems(linux: Linux) -> Iterator[str]:
    """pyruntime does not implement Intel RDT (resctrl): refuse, never ignore."""
    if linux.intel_rdt is not None:
        yield "linux.intelRdt: Intel RDT (resctrl) is not supported by pyruntime"


# --- across sections -------------------------------------------------------------


def deadline_hook_problems(spec: Spec) -> Iterator[str]:
    """A SCHED_DEADLINE init cannot fork, so it could not run startContainer hooks.

    The kernel refuses fork() to a deadline task unless its children are reset
    to SCHED_OTHER (SCHED_FLAG_RESET_ON_FORK).
    """
    sched = spec.process.scheduler if spec.process else None
    if sched is None or sched.policy != "SCHED_DEADLINE":
        return
    if "SCHED_FLAG_RESET_ON_FORK" in (sched.flags or ()):
        return
    if spec.hooks is not None and spec.hooks.start_container:
        yield (
            "process.scheduler: a SCHED_DEADLINE process cannot fork, so "
            "hooks.startContainer cannot run (add SCHED_FLAG_RESET_ON_FORK)"
        )
