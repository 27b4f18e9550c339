"""Process attributes set by system calls: personality, I/O priority,
scheduler, NUMA memory policy, CPU affinity; and the rlimit pre-check.

The document rules live in ``spec.process_rules`` and run before anything is
made; by the time an applier runs, names are known and numbers in range.
Each applier is a plain function of the spec object it reads, applies to the
calling process (children inherit everything here) and raises
:class:`SetupError` with one line: what, on what, why, and a hint when the
kernel's reason is not obvious. ``create`` calls them from
``process.init``; ``exec`` can call the same ones for its process.

The ``*_value``/``*_args`` functions are the pure part: spec object in,
system call arguments out.

Where init calls them (see ``process.init``):

- intermediate, before any namespace: :func:`check_host_support`, then after
  joining the cgroup :func:`apply_initial_cpu_affinity` and
  :func:`apply_io_priority` (a real-time class needs the host's
  CAP_SYS_ADMIN, which a user namespace would take away);
- init, after the rlimits and before seccomp and the user switch:
  :func:`apply_personality`, :func:`apply_memory_policy`,
  :func:`apply_final_cpu_affinity`, :func:`apply_scheduler` (CAP_SYS_NICE).
"""

from __future__ import annotations

import errno
import os
import resource

from pyruntime.errors import SetupError, UnsupportedError
from pyruntime.linux import syscalls as sc
from pyruntime.security import lsm
from pyruntime.spec import process_rules as rules

CAP_SYS_RESOURCE = 24
RLIM_INFINITY = (1 << 64) - 1
NR_OPEN = "/proc/sys/fs/nr_open"


# --- checks in the runtime's intermediate process ---------------------------------


def check_host_support(spec) -> None:
    """Refuse, before any namespace, what this host cannot grant at all."""
    lsm.check_labels_supported(spec)
    if spec.process is not None:
        check_rlimits_raisable(spec.process)


def check_rlimits_raisable(process, where: str = "process") -> None:
    """Refuse a hard limit above the current one when it cannot be raised.

    Raising a hard limit needs CAP_SYS_RESOURCE in the host's user namespace
    (a container's own user namespace does not help), and RLIMIT_NOFILE can
    never exceed ``fs.nr_open``.
    """
    can_raise = has_effective_capability(CAP_SYS_RESOURCE)
    for index, item in enumerate(process.rlimits or ()):
        number = rlimit_number(item.type)
        current = as_unsigned(resource.getrlimit(number)[1])
        at = f"{where}.rlimits[{index}].hard"
        if item.hard > current and not can_raise:
            raise UnsupportedError(
                f"{at}: cannot raise {item.type} to {item.hard}: the current hard "
                f"limit is {current} and raising it needs CAP_SYS_RESOURCE, "
                "which this runtime does not have"
            )
        if item.type == "RLIMIT_NOFILE" and item.hard > read_nr_open():
            raise UnsupportedError(
                f"{at}: cannot raise RLIMIT_NOFILE to {item.hard}: the kernel's "
                f"maximum (fs.nr_open) is {read_nr_open()}"
            )


#: rlimits Python's resource module does not name (Linux numbering).
_EXTRA_RLIMITS = {"RLIMIT_LOCKS": 10}


def rlimit_number(name: str) -> int:
    """The RLIMIT_* number of a (validated) name."""
    number = getattr(resource, name, None)
    return _EXTRA_RLIMITS[name] if number is None else number


def as_unsigned(limit: int) -> int:
    """Python's -1 (RLIM_INFINITY) as the spec's uint64 value."""
    return RLIM_INFINITY if limit < 0 else limit


def has_effective_capability(number: int) -> bool:
    """True when the calling process has capability ``number`` effective."""
    effective, _, _ = sc.capget()
    return bool(effective >> number & 1)


def read_nr_open() -> int:
    """``fs.nr_open``, the ceiling of RLIMIT_NOFILE (unbounded if unreadable)."""
    try:
        with open(NR_OPEN) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return RLIM_INFINITY


# --- personality -------------------------------------------------------------------


def personality_value(persona) -> int:
    """The personality(2) argument for ``linux.personality``."""
    value = rules.PERSONALITY_DOMAINS[persona.domain]
    for flag in persona.flags or ():
        value |= rules.PERSONALITY_FLAGS[flag]
    return value


def apply_personality(linux) -> None:
    """Set ``linux.personality`` (the execution domain and its flags)."""
    persona = linux.personality if linux else None
    if persona is None:
        return
    value = personality_value(persona)
    try:
        sc.personality(value)
    except OSError as err:
        raise SetupError(
            f"set personality {persona.domain} ({value:#x}): {reason(err)}"
        ) from err


# --- I/O priority ------------------------------------------------------------------


def ioprio_value(io) -> int:
    """The ioprio_set(2) value for ``process.ioPriority``: class and level."""
    return rules.IOPRIO_CLASSES[io.class_] << sc.IOPRIO_CLASS_SHIFT | io.priority


def apply_io_priority(process) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS) on the calling process."""
    io = process.io_priority
    if io is None:
        return
    try:
        sc.ioprio_set(ioprio_value(io))
    except OSError as err:
        hint = ""
        if err.errno == errno.EPERM:
            hint = " (IOPRIO_CLASS_RT needs CAP_SYS_ADMIN or CAP_SYS_NICE)"
        raise SetupError(
            f"set ioPriority {io.class_} level {io.priority}: {reason(err)}{hint}"
        ) from err


# --- scheduler ---------------------------------------------------------------------


def sched_attr(sched) -> sc.SchedAttr:
    """The struct sched_attr for ``process.scheduler``.

    Unset fields are 0, as the spec says; the utilisation clamps, which the
    spec cannot express, are 0 too.
    """
    flags = 0
    for flag in sched.flags or ():
        flags |= rules.SCHED_FLAGS[flag]
    return sc.SchedAttr(
        sched_policy=rules.SCHED_POLICIES[sched.policy],
        sched_flags=flags,
        sched_nice=sched.nice or 0,
        sched_priority=sched.priority or 0,
        sched_runtime=sched.runtime or 0,
        sched_deadline=sched.deadline or 0,
        sched_period=sched.period or 0,
    )


def apply_scheduler(process) -> None:
    """sched_setattr(2) on the calling thread."""
    sched = process.scheduler
    if sched is None:
        return
    try:
        sc.sched_setattr(sched_attr(sched))
    except OSError as err:
        raise SetupError(
            f"set scheduler {sched.policy}: {reason(err)}{scheduler_hint(sched, err)}"
        ) from err


def scheduler_hint(sched, err: OSError) -> str:
    """Why the kernel may have refused a valid scheduler setting."""
    if sched.policy == "SCHED_ISO":
        return " (mainline Linux does not implement SCHED_ISO)"
    if sched.policy == "SCHED_DEADLINE" and err.errno == errno.EINVAL:
        low, high = deadline_period_bounds()
        return (
            f" (the kernel takes periods of {low} to {high} microseconds: "
            "kernel.sched_deadline_period_min_us and _max_us)"
        )
    if sched.policy == "SCHED_DEADLINE" and err.errno in (errno.EBUSY, errno.EPERM):
        return (
            " (the deadline bandwidth is taken, or the process may not run on "
            "every CPU of its root domain)"
        )
    if sched.policy in ("SCHED_FIFO", "SCHED_RR") and err.errno == errno.EPERM:
        return (
            " (needs CAP_SYS_NICE on the host, and real-time runtime in the "
            "container's cpu cgroup: linux.resources.cpu.realtimeRuntime)"
        )
    if err.errno == errno.EPERM:
        return " (a negative nice value needs CAP_SYS_NICE)"
    return ""


def deadline_period_bounds() -> tuple[str, str]:
    """The kernel's bounds on a SCHED_DEADLINE period, in microseconds."""
    bounds = []
    for end in ("min", "max"):
        try:
            path = f"/proc/sys/kernel/sched_deadline_period_{end}_us"
            with open(path) as handle:
                bounds.append(handle.read().strip())
        except OSError:
            bounds.append("?")
    return bounds[0], bounds[1]


# --- NUMA memory policy ------------------------------------------------------------


def memory_policy_args(policy) -> tuple[int, tuple[int, ...]]:
    """set_mempolicy(2)'s ``mode | flags`` and node list for ``linux.memoryPolicy``."""
    mode = rules.MPOL_MODES[policy.mode]
    for flag in policy.flags or ():
        mode |= rules.MPOL_FLAGS[flag]
    nodes = policy.nodes
    return mode, rules.parse_id_list(nodes) if nodes and nodes.strip() else ()


def apply_memory_policy(linux) -> None:
    """set_mempolicy(2) for the calling thread; children inherit it."""
    policy = linux.memory_policy if linux else None
    if policy is None:
        return
    mode, nodes = memory_policy_args(policy)
    try:
        sc.set_mempolicy(mode, nodes)
    except OSError as err:
        hint = ""
        if err.errno == errno.EINVAL and nodes:
            hint = f" (this process may use nodes {allowed_nodes()})"
        on = f" on nodes {policy.nodes}" if nodes else ""
        raise SetupError(
            f"set memoryPolicy {policy.mode}{on}: {reason(err)}{hint}"
        ) from err


def allowed_nodes() -> str:
    """``Mems_allowed_list`` of the calling process, for error messages."""
    return status_field("Mems_allowed_list") or "?"


# --- CPU affinity ------------------------------------------------------------------


def apply_initial_cpu_affinity(process, pid: int = 0) -> None:
    """``execCPUAffinity.initial``: the CPUs of ``pid`` (0: ourselves) before
    it joins the container's cgroup (joining a cpuset resets the affinity)."""
    affinity = process.exec_cpu_affinity
    if affinity is not None and affinity.initial:
        set_cpu_affinity(affinity.initial, "execCPUAffinity.initial", pid)


def apply_final_cpu_affinity(process) -> None:
    """``execCPUAffinity.final``: the CPUs the program starts on."""
    affinity = process.exec_cpu_affinity
    if affinity is not None and affinity.final:
        set_cpu_affinity(affinity.final, "execCPUAffinity.final")


def set_cpu_affinity(cpus: str, what: str, pid: int = 0) -> None:
    """sched_setaffinity(2) of ``pid`` (0: the calling process) to ``cpus``."""
    try:
        sc.sched_setaffinity(rules.parse_id_list(cpus), pid)
    except OSError as err:
        hint = ""
        if err.errno == errno.EINVAL:
            hint = " (none of them is online and in the container's cpuset)"
        raise SetupError(f"set {what} to CPUs {cpus}: {reason(err)}{hint}") from err


# --- helpers -----------------------------------------------------------------------


def reason(err: OSError) -> str:
    """The kernel's reason, lower case, as runc prints it."""
    return os.strerror(err.errno).lower() if err.errno else str(err)


def status_field(name: str) -> str | None:
    """A field of /proc/self/status (``Cpus_allowed_list``...)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key == name:
                    return value.strip()
    except OSError:
        return None
    return None
