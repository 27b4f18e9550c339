"""Capability sets of the container's process: names, the plan, applying it.

This module owns ``process.capabilities``: turning its names into numbers
(:func:`plan_capabilities`, pure), checking the host can grant them
(:func:`check_host_capabilities`, in the runtime before forking), and setting
the five sets in init (:func:`prepare_capabilities` before the user switch,
:func:`apply_capabilities` after it).

What the program sees after ``execve`` follows the kernel's rules (see
capabilities(7)), exactly as with runc, for a binary without file
capabilities:

- uid 0: permitted = effective = bounding | inheritable; ambient is kept;
- any other uid: permitted = effective = ambient. A non-root process keeps
  capabilities across ``execve`` only through the ambient set, and a
  capability can be ambient only if it is both permitted and inheritable.

python-prctl covers the bounding set and keep-caps, but it has neither the
ambient set nor the names added after its release (CAP_CHECKPOINT_RESTORE), so
the sets themselves go through raw ``capget``/``capset`` (version 3, 64 bits)
and ``prctl(PR_CAP_AMBIENT)`` from :mod:`pyruntime.linux.syscalls`. init
applies the plan after ``pivot_root``, where nothing can be imported: call
:func:`load_backend` in the runtime before forking.
"""

from __future__ import annotations

import os

from pyruntime import log
from pyruntime.errors import ConfigError, SetupError, UnsupportedError
from pyruntime.linux import syscalls as sc
from pyruntime.records import dataclass

#: Every capability name up to CAP_CHECKPOINT_RESTORE (Linux 5.9), by number.
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
_NAMES = {number: name for name, number in CAPABILITIES.items()}

#: The five sets of ``process.capabilities``, in the spec's order.
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

_CAP_LAST_CAP = "/proc/sys/kernel/cap_last_cap"


@dataclass(frozen=True, slots=True)
class CapPlan:
    """The capability sets init gives the container, as numbers.

    ``ambient`` holds only what the kernel lets become ambient (permitted
    and inheritable); ``ignored_ambient`` names the rest, which runc also
    drops without failing (``runc spec`` itself asks for ambient capabilities
    without inheritable ones).
    """

    bounding: frozenset[int]
    effective: frozenset[int]
    inheritable: frozenset[int]
    permitted: frozenset[int]
    ambient: frozenset[int]
    ignored_ambient: tuple[str, ...] = ()

    def requested(self) -> frozenset[int]:
        """Every capability named in any set."""
        return (
            self.bounding
            | self.effective
            | self.inheritable
            | self.permitted
            | self.ambient
        )


def capability_name(number: int) -> str:
    """The name of a capability number (``CAP_41`` for one newer than ours)."""
    return _NAMES.get(number, f"CAP_{number}")


def capability_number(name: str) -> int | None:
    """The number of a ``CAP_*`` name (any case), or None if unknown."""
    return CAPABILITIES.get(name.upper())


def last_capability() -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open(_CAP_LAST_CAP) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def known_capabilities() -> list[str]:
    """Names of the capabilities this kernel and pyruntime both know (features)."""
    last = last_capability()
    return [name for name, number in CAPABILITIES.items() if number <= last]


def plan_capabilities(caps) -> CapPlan | None:
    """Turn ``process.capabilities`` into numbers; pure.

    ``None`` (no ``capabilities`` object) means "leave the capabilities
    alone", as in runc; a missing set inside it means an empty set. Every
    problem is reported at once as a :class:`ConfigError` with its JSON path.
    """
    if caps is None:
        return None
    problems: list[str] = []
    sets = {name: resolve_set(name, getattr(caps, name), problems) for name in SETS}
    problems.extend(check_set_relations(sets))
    if problems:
        raise ConfigError(problems)
    raisable = sets["ambient"] & sets["permitted"] & sets["inheritable"]
    ignored = sorted(sets["ambient"] - raisable)
    return CapPlan(
        bounding=sets["bounding"],
        effective=sets["effective"],
        inheritable=sets["inheritable"],
        permitted=sets["permitted"],
        ambient=raisable,
        ignored_ambient=tuple(capability_name(n) for n in ignored),
    )


def resolve_set(set_name: str, names, problems: list[str]) -> frozenset[int]:
    """Numbers of one set's names; unknown names are added to ``problems``."""
    numbers = set()
    for index, name in enumerate(names or ()):
        number = capability_number(name)
        if number is None:
            problems.append(
                f'process.capabilities.{set_name}[{index}]: unknown capability "{name}"'
            )
        else:
            numbers.add(number)
    return frozenset(numbers)


def check_set_relations(sets: dict[str, frozenset[int]]) -> list[str]:
    """Combinations capset(2) refuses, reported before anything is started."""
    problems = []
    for number in sorted(sets["effective"] - sets["permitted"]):
        problems.append(
            f"process.capabilities.effective: {capability_name(number)} is not in "
            "permitted (a capability must be permitted to be effective)"
        )
    for number in sorted(sets["inheritable"] - sets["bounding"]):
        problems.append(
            f"process.capabilities.inheritable: {capability_name(number)} is not in "
            "bounding (the kernel refuses inheritable capabilities outside it)"
        )
    return problems


def read_host_bounding_set() -> frozenset[int]:
    """The bounding set of the calling process (the runtime, on the host)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("CapBnd:"):
                return mask_to_set(int(line.split()[1], 16))
    return frozenset()


def check_host_capabilities(
    plan: CapPlan | None, host_bounding: frozenset[int] | None = None
) -> None:
    """Fail early when the config asks for a capability the host cannot give.

    A capability outside the runtime's own bounding set can never be raised
    again; without this check the failure would come from deep inside init as
    a bare "operation not permitted".
    """
    if plan is None:
        return
    if host_bounding is None:
        host_bounding = read_host_bounding_set()
    missing = sorted(plan.requested() - host_bounding)
    if not missing:
        return
    names = ", ".join(capability_name(n) for n in missing)
    if len(missing) == 1:
        raise UnsupportedError(
            f"capability {names} is not in this host's bounding set: the "
            "container cannot have it"
        )
    raise UnsupportedError(
        f"capabilities {names} are not in this host's bounding set: the "
        "container cannot have them"
    )


def load_backend() -> None:
    """Import python-prctl now, in the runtime before forking.

    init cannot import anything once it has pivoted into the container's
    root (the module is not there, and must not be looked for there); a
    forked init finds it already in ``sys.modules``. Costs about 1.5 ms.
    """
    import prctl  # noqa: F401


def prepare_capabilities(plan: CapPlan | None) -> None:
    """Before the user switch: keep the permitted set across setresuid.

    Without keep-caps the kernel empties the permitted set when every uid
    leaves 0, and the capabilities of a non-root container user could not be
    set any more. execve clears the flag again.
    """
    if plan is None:
        return
    import prctl

    try:
        prctl.set_keepcaps(True)
    except OSError as err:
        raise SetupError(f"set keep-caps: {describe(err)}") from err


def apply_capabilities(plan: CapPlan | None) -> None:
    """After the user switch: bounding, then the three sets, then ambient."""
    if plan is None:
        return
    restore_effective()
    drop_bounding(plan.bounding)
    set_capability_sets(plan)
    raise_ambient(plan)
    clear_keepcaps()


def restore_effective() -> None:
    """Make the permitted set effective again.

    setresuid away from uid 0 empties the effective set; dropping from the
    bounding set needs CAP_SETPCAP to be effective.
    """
    effective, permitted, inheritable = sc.capget()
    if effective != permitted:
        try:
            sc.capset(permitted, permitted, inheritable)
        except OSError as err:
            raise SetupError(
                f"restore effective capabilities: {describe(err)}"
            ) from err


def drop_bounding(keep: frozenset[int]) -> None:
    """Drop from the bounding set every capability the kernel knows but ``keep``."""
    import prctl

    for number in range(64):
        if number in keep:
            continue
        # Ask the kernel rather than /proc (init may have no /proc mounted):
        # EINVAL marks the first number past its last capability.
        try:
            if not sc.prctl_args(sc.PR_CAPBSET_READ, number):
                continue
        except OSError:
            break
        try:
            if number in prctl.ALL_CAPS:
                prctl.capbset_drop(number)
            else:
                # Newer than python-prctl's table (CAP_CHECKPOINT_RESTORE).
                sc.prctl_args(sc.PR_CAPBSET_DROP, number)
        except OSError as err:
            raise SetupError(
                f"drop `{capability_name(number)}` from the bounding set: "
                f"{describe(err)}"
            ) from err


def set_capability_sets(plan: CapPlan) -> None:
    """capset() the effective, permitted and inheritable sets exactly."""
    try:
        sc.capset(
            set_to_mask(plan.effective),
            set_to_mask(plan.permitted),
            set_to_mask(plan.inheritable),
        )
    except OSError as err:
        raise SetupError(
            f"set capabilities{explain_capset_failure(plan)}: {describe(err)}"
        ) from err


def explain_capset_failure(plan: CapPlan) -> str:
    """Name the capabilities capset could not grant, when that is the cause."""
    _, permitted, _ = sc.capget()
    missing = sorted(plan.permitted - mask_to_set(permitted))
    if not missing:
        return ""
    names = ", ".join(capability_name(n) for n in missing)
    return f" (not permitted in init: {names})"


def raise_ambient(plan: CapPlan) -> None:
    """Make the ambient set exactly ``plan.ambient``."""
    if plan.ignored_ambient:
        log.debug(
            "ambient capabilities not both permitted and inheritable, not raised: "
            + ", ".join(plan.ignored_ambient)
        )
    try:
        sc.prctl_args(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as err:
        raise SetupError(f"clear the ambient capabilities: {describe(err)}") from err
    for number in sorted(plan.ambient):
        try:
            sc.prctl_args(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, number)
        except OSError as err:
            raise SetupError(
                f"raise ambient capability `{capability_name(number)}`: {describe(err)}"
            ) from err


def clear_keepcaps() -> None:
    """Undo :func:`prepare_capabilities` (execve would, but be exact meanwhile)."""
    import prctl

    try:
        prctl.set_keepcaps(False)
    except OSError as err:
        raise SetupError(f"clear keep-caps: {describe(err)}") from err


def set_to_mask(numbers: frozenset[int]) -> int:
    """A set of capability numbers as a bit mask."""
    mask = 0
    for number in numbers:
        mask |= 1 << number
    return mask


def mask_to_set(mask: int) -> frozenset[int]:
    """A capability bit mask as a set of numbers."""
    return frozenset(n for n in range(64) if mask >> n & 1)


def describe(err: OSError) -> str:
    """The errno text of ``err``, lower-case, without the call that failed."""
    if err.errno:
        return os.strerror(err.errno).lower()
    return str(err)
