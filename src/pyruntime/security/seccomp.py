"""The seccomp filter of the container's process: plan, compile, load.

This module owns ``linux.seccomp``, in three steps that can run in different
processes:

1. :func:`plan_seccomp` (pure) checks actions, operators, architectures and
   flags and turns the config into :class:`SeccompPlan`: one :class:`Rule` per
   syscall name, split the way runc splits them.
2. :func:`compile_seccomp` builds the BPF program with libseccomp (through
   ``pyseccomp``, imported only here) and exports it as bytes. It does not
   touch the calling process, so the runtime can do it before forking and
   report errors early; syscall names libseccomp does not know are skipped
   with a warning, as runc does.
3. :func:`load_seccomp` installs the program with seccomp(2) itself, so it
   can pass every filter flag (libseccomp 2.5 cannot set
   ``SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV``) and so that loading needs no
   library at all: init can do it as the very last step before ``execve``.
   It returns the notify listener fd when a rule uses ``SCMP_ACT_NOTIFY``.

The listener fd goes to the agent at ``listenerPath``:
:func:`listener_message` builds the runtime-spec "container process state"
and :func:`send_to_listener` sends it with the fd attached (SCM_RIGHTS).
"""

from __future__ import annotations

import errno
import os

from pyruntime import log
from pyruntime.errors import ConfigError, SetupError
from pyruntime.linux import syscalls as sc
from pyruntime.records import dataclass
from pyruntime.state import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

# Return values of a filter (SECCOMP_RET_*; libseccomp's SCMP_ACT_* are the
# same numbers). ERRNO and TRACE carry 16 bits of data.
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

#: Actions of the runtime-spec; SCMP_ACT_KILL is KILL_THREAD, as in runc.
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_TRACE": RET_TRACE,
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_NOTIFY": RET_USER_NOTIF,
}
#: Actions whose 16 data bits hold ``errnoRet`` (EPERM when not given).
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_DEFAULT_ERRNO = errno.EPERM

#: libseccomp's ``enum scmp_compare``.
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

_ARCH_64BIT = 0x80000000
_ARCH_LE = 0x40000000
_ARCH_MIPS_N32 = 0x20000000
#: Architectures libseccomp 2.5 handles, as AUDIT_ARCH_* tokens (which are
#: libseccomp's SCMP_ARCH_* values): ELF machine number plus flag bits.
ARCHITECTURES: dict[str, int] = {
    "SCMP_ARCH_X86": 3 | _ARCH_LE,
    "SCMP_ARCH_X86_64": 62 | _ARCH_64BIT | _ARCH_LE,
    "SCMP_ARCH_X32": 62 | _ARCH_LE,
    "SCMP_ARCH_ARM": 40 | _ARCH_LE,
    "SCMP_ARCH_AARCH64": 183 | _ARCH_64BIT | _ARCH_LE,
    "SCMP_ARCH_MIPS": 8,
    "SCMP_ARCH_MIPS64": 8 | _ARCH_64BIT,
    "SCMP_ARCH_MIPS64N32": 8 | _ARCH_64BIT | _ARCH_MIPS_N32,
    "SCMP_ARCH_MIPSEL": 8 | _ARCH_LE,
    "SCMP_ARCH_MIPSEL64": 8 | _ARCH_64BIT | _ARCH_LE,
    "SCMP_ARCH_MIPSEL64N32": 8 | _ARCH_64BIT | _ARCH_LE | _ARCH_MIPS_N32,
    "SCMP_ARCH_PPC": 20,
    "SCMP_ARCH_PPC64": 21 | _ARCH_64BIT,
    "SCMP_ARCH_PPC64LE": 21 | _ARCH_64BIT | _ARCH_LE,
    "SCMP_ARCH_S390": 22,
    "SCMP_ARCH_S390X": 22 | _ARCH_64BIT,
    "SCMP_ARCH_PARISC": 15,
    "SCMP_ARCH_PARISC64": 15 | _ARCH_64BIT,
    "SCMP_ARCH_RISCV64": 243 | _ARCH_64BIT | _ARCH_LE,
}

#: ``linux.seccomp.flags`` -> seccomp(2) filter flag bits. TSYNC is accepted
#: and ignored, as runc does: init has a single thread.
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 0,
    "SECCOMP_FILTER_FLAG_LOG": sc.SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (
        sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    ),
}
#: Flags used when ``flags`` is absent (not when it is an empty list): runc
#: turns off the speculative-store-bypass mitigation seccomp would force.
DEFAULT_FLAGS = ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",)

#: What init calls to pass the listener fd on after loading the filter: a
#: NOTIFY rule on them would wait for an agent that has no fd yet.
HANDOVER_SYSCALLS = ("write", "sendmsg")

_MAX_ARGS = 6
#: libseccomp's binary-tree layout pays off for long rule lists only (and
#: libseccomp <= 2.5.4 mishandles it with no rules at all), as runc found.
_OPTIMIZE_ABOVE = 32


@dataclass(frozen=True, slots=True)
class Condition:
    """One argument comparison; for MASKED_EQ ``value`` is the mask."""

    index: int
    op: int
    value: int
    value_two: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """One libseccomp rule: a syscall name, an action, ANDed conditions."""

    name: str
    action: int
    conditions: tuple[Condition, ...] = ()
    #: Index of the ``linux.seccomp.syscalls`` entry the rule comes from.
    entry: int = -1


@dataclass(frozen=True, slots=True)
class SeccompPlan:
    """``linux.seccomp`` checked and flattened; ``flags`` are kernel bits."""

    default_action: int
    architectures: tuple[str, ...]
    flags: int
    rules: tuple[Rule, ...]
    listener_path: str | None = None
    listener_metadata: str | None = None
    #: True when ``flags`` came from DEFAULT_FLAGS: dropped if unsupported.
    default_flags: bool = False

    @property
    def uses_notify(self) -> bool:
        """Whether a rule sends syscalls to the listener."""
        return any(rule.action == RET_USER_NOTIF for rule in self.rules)


@dataclass(frozen=True, slots=True)
class SeccompProgram:
    """A compiled filter: the BPF bytes and the seccomp(2) flags to load it with."""

    bpf: bytes
    flags: int
    notify: bool
    #: Syscall names libseccomp did not know, left out of the filter.
    skipped: tuple[str, ...] = ()


# --- plan (pure) ---------------------------------------------------------------


def plan_seccomp(seccomp) -> SeccompPlan | None:
    """Check ``linux.seccomp`` and flatten it into rules; pure.

    Every problem is reported at once, as a :class:`ConfigError` naming its
    JSON path.
    """
    if seccomp is None:
        return None
    problems: list[str] = []
    default = resolve_action(
        "linux.seccomp.defaultAction",
        seccomp.default_action,
        seccomp.default_errno_ret,
        "linux.seccomp.defaultErrnoRet",
        problems,
    )
    if seccomp.default_action == "SCMP_ACT_NOTIFY":
        problems.append(
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default "
            "action (init could not hand the listener over)"
        )
    archs = check_architectures(seccomp.architectures, problems)
    flags = resolve_flags(seccomp.flags, problems)
    rules = []
    for index, syscall in enumerate(seccomp.syscalls or ()):
        rules.extend(plan_rules(index, syscall, default, problems))
    plan = SeccompPlan(
        default_action=default if default is not None else RET_ALLOW,
        architectures=archs,
        flags=flags,
        rules=tuple(rules),
        listener_path=seccomp.listener_path,
        listener_metadata=seccomp.listener_metadata,
        default_flags=seccomp.flags is None,
    )
    if plan.uses_notify and not seccomp.listener_path:
        problems.append(
            "linux.seccomp.listenerPath: must be set when a rule uses SCMP_ACT_NOTIFY"
        )
    if problems:
        raise ConfigError(problems)
    return plan


def resolve_action(
    path: str, name: str, errno_ret: int | None, errno_path: str, problems: list
) -> int | None:
    """The filter return value of an action name (None after a problem)."""
    base = ACTIONS.get(name)
    if base is None:
        problems.append(f'{path}: unknown action "{name}"')
        return None
    if name not in _ERRNO_ACTIONS:
        if errno_ret is not None:
            problems.append(f"{errno_path}: {name} does not return an errno")
        return base
    if errno_ret is None:
        errno_ret = _DEFAULT_ERRNO
    if errno_ret > 0xFFFF:
        problems.append(f"{errno_path}: {errno_ret} does not fit in 16 bits")
        return None
    return base | errno_ret


def check_architectures(names, problems: list) -> tuple[str, ...]:
    """Keep the known architecture names; report the others."""
    known = []
    for index, name in enumerate(names or ()):
        if name in ARCHITECTURES:
            known.append(name)
        else:
            problems.append(
                f'linux.seccomp.architectures[{index}]: unknown architecture "{name}"'
            )
    return tuple(known)


def resolve_flags(names, problems: list) -> int:
    """OR the kernel bits of the flag names (DEFAULT_FLAGS when absent)."""
    if names is None:
        names = DEFAULT_FLAGS
    bits = 0
    for index, name in enumerate(names):
        if name in FLAGS:
            bits |= FLAGS[name]
        else:
            problems.append(f'linux.seccomp.flags[{index}]: unknown flag "{name}"')
    return bits


def plan_rules(index: int, syscall, default: int | None, problems: list) -> list[Rule]:
    """The rules of one ``syscalls`` entry (one per name, maybe more)."""
    path = f"linux.seccomp.syscalls[{index}]"
    action = resolve_action(
        f"{path}.action",
        syscall.action,
        syscall.errno_ret,
        f"{path}.errnoRet",
        problems,
    )
    conditions = plan_conditions(path, syscall.args, problems)
    if syscall.action == "SCMP_ACT_NOTIFY":
        for name in sorted(set(syscall.names or ()) & set(HANDOVER_SYSCALLS)):
            problems.append(
                f"{path}.action: SCMP_ACT_NOTIFY cannot be used for {name} (init "
                "needs it to hand the listener over)"
            )
    # libseccomp refuses a rule whose action is the default one; it would
    # change nothing anyway.
    if action is None or action == default:
        return []
    groups = group_conditions(conditions)
    return [
        Rule(name, action, group, index)
        for name in syscall.names or ()
        for group in groups
    ]


def plan_conditions(path: str, args, problems: list) -> tuple[Condition, ...]:
    """Check the operators and indexes of one entry's ``args``."""
    conditions = []
    for index, arg in enumerate(args or ()):
        op = OPERATORS.get(arg.op)
        if op is None:
            problems.append(f'{path}.args[{index}].op: unknown operator "{arg.op}"')
            continue
        if arg.index >= _MAX_ARGS:
            problems.append(
                f"{path}.args[{index}].index: {arg.index} is not a syscall argument "
                f"(0 to {_MAX_ARGS - 1})"
            )
            continue
        conditions.append(Condition(arg.index, op, arg.value, arg.value_two or 0))
    return tuple(conditions)


def group_conditions(
    conditions: tuple[Condition, ...],
) -> list[tuple[Condition, ...]]:
    """Split conditions into rules with runc's semantics.

    Conditions of one rule are ANDed, and libseccomp allows one comparison
    per argument in a rule. So when two conditions test the same argument,
    each condition becomes a rule of its own (ORed), as runc does; otherwise
    they all form a single rule.
    """
    if not conditions:
        return [()]
    indexes = [c.index for c in conditions]
    if len(set(indexes)) == len(indexes):
        return [conditions]
    return [(condition,) for condition in conditions]


# --- compile (libseccomp) --------------------------------------------------------


def compile_seccomp(plan: SeccompPlan) -> SeccompProgram:
    """Build the BPF program with libseccomp; the calling process is untouched."""
    import pyseccomp

    try:
        filt = pyseccomp.SyscallFilter(plan.default_action)
    except OSError as err:
        raise SetupError(f"create seccomp filter: {describe(err)}") from err
    add_architectures(filt, plan.architectures)
    if len(plan.rules) > _OPTIMIZE_ABOVE:
        # An older libseccomp refuses: the linear layout still works.
        try:
            filt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
        except OSError:
            pass
    skipped = add_rules(filt, plan.rules)
    refuse_rules_without_effect(plan.rules, skipped)
    warn_skipped(skipped)
    return SeccompProgram(
        bpf=export_bpf(filt),
        flags=effective_flags(plan),
        notify=plan.uses_notify,
        skipped=skipped,
    )


def warn_skipped(skipped: tuple[str, ...]) -> None:
    """Say which syscall names were left out of the filter, as runc does."""
    if skipped:
        log.warning(
            "seccomp: syscalls unknown to libseccomp, left out of the filter: "
            + ", ".join(skipped)
        )


def refuse_rules_without_effect(rules: tuple[Rule, ...], skipped) -> None:
    """An entry all of whose names are unknown would do nothing: an error.

    Skipping one unknown name of a list is what runc does; a rule left with
    no system call at all is almost certainly a typo that would silently
    leave the container unfiltered where its author meant to filter.
    """
    names_of: dict[int, set[str]] = {}
    for rule in rules:
        names_of.setdefault(rule.entry, set()).add(rule.name)
    unknown = set(skipped)
    problems = [
        f"linux.seccomp.syscalls[{entry}].names: no system call libseccomp knows "
        f"({', '.join(sorted(names))}): the rule would have no effect"
        for entry, names in sorted(names_of.items())
        if entry >= 0 and names <= unknown
    ]
    if problems:
        raise ConfigError(problems)


def add_architectures(filt, names: tuple[str, ...]) -> None:
    """Add the listed architectures (the native one is always there)."""
    for name in names:
        token = ARCHITECTURES[name]
        try:
            if not filt.exist_arch(token):
                filt.add_arch(token)
        except OSError as err:
            raise SetupError(
                f"add architecture `{name}` to the seccomp filter: {describe(err)}"
            ) from err


def add_rules(filt, rules: tuple[Rule, ...]) -> tuple[str, ...]:
    """Add every rule; return the names libseccomp does not know.

    TODO(#3): syscalls newer than libseccomp get the default action, so a
    default-deny profile answers EPERM where the program expects ENOSYS to
    fall back (runc patches the program to return ENOSYS above the highest
    syscall number it knows).
    """
    import pyseccomp

    skipped: dict[str, None] = {}
    for rule in rules:
        number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, rule.name)
        # -1 is __NR_SCMP_ERROR; other negative numbers are libseccomp's
        # pseudo-syscalls (names that exist on another architecture only).
        if number == -1:
            skipped[rule.name] = None
            continue
        args = [
            pyseccomp.Arg(c.index, c.op, c.value, c.value_two) for c in rule.conditions
        ]
        try:
            filt.add_rule(rule.action, number, *args)
        except OSError as err:
            raise SetupError(
                f"add seccomp rule for `{rule.name}`: {describe(err)}"
            ) from err
    return tuple(skipped)


def export_bpf(filt) -> bytes:
    """The filter's BPF program, as libseccomp would load it."""
    fd = os.memfd_create("pyruntime-seccomp", os.MFD_CLOEXEC)
    try:
        filt.export_bpf(_Descriptor(fd))
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError as err:
        raise SetupError(f"export the seccomp filter: {describe(err)}") from err
    finally:
        os.close(fd)
    return b"".join(chunks)


class _Descriptor:
    """The ``fileno()`` pyseccomp's export functions ask for."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def effective_flags(plan: SeccompPlan) -> int:
    """The seccomp(2) flags to load with, adjusted to the filter and kernel."""
    flags = plan.flags
    if plan.uses_notify:
        flags |= sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
    else:
        # The kernel refuses WAIT_KILLABLE_RECV without a listener, and
        # without NOTIFY rules it has nothing to act on.
        flags &= ~sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    if plan.default_flags:
        flags = keep_supported_flags(flags)
    return flags


# --- load (seccomp(2)) ------------------------------------------------------------


def load_seccomp(what: SeccompPlan | SeccompProgram) -> int | None:
    """Install the filter on the calling thread; return the listener fd or None.

    Pass a :class:`SeccompProgram` compiled earlier to make this one system
    call. Without ``noNewPrivileges`` it needs CAP_SYS_ADMIN in the effective
    set, so it must run before the capabilities are dropped.
    """
    program = what if isinstance(what, SeccompProgram) else compile_seccomp(what)
    try:
        fd = sc.seccomp_set_mode_filter(program.bpf, program.flags)
    except OSError as err:
        hint = ""
        if err.errno == errno.EACCES:
            hint = " (needs noNewPrivileges or CAP_SYS_ADMIN)"
        raise SetupError(f"load seccomp filter: {describe(err)}{hint}") from err
    return fd if program.notify else None


def flag_supported(bits: int) -> bool:
    """Ask the kernel whether it knows the filter flag ``bits`` (no side effect)."""
    if bits & sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV:
        bits |= sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
    try:
        sc.seccomp_set_mode_filter(None, bits)
    except OSError as err:
        return err.errno == errno.EFAULT
    return True  # unreachable: a NULL program never loads


def keep_supported_flags(flags: int) -> int:
    """Drop the bits of ``flags`` this kernel does not know."""
    kept = 0
    for bit in range(flags.bit_length()):
        value = 1 << bit
        if flags & value and flag_supported(value):
            kept |= value
    return kept


# --- notify listener ---------------------------------------------------------------


def listener_message(state: dict, pid: int, metadata: str | None) -> bytes:
    """The runtime-spec "container process state" sent with the listener fd.

    ``state`` is the container's state (as ``pyruntime state`` prints it);
    ``fds`` names the descriptors attached to the message, in order.
    """
    message = {
        "ociVersion": state.get("ociVersion"),
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata or "",
        "state": state,
    }
    return jsonio.dumps(message).encode()


def connect_listener(listener_path: str) -> socket.socket:
    """Connect to the agent's socket (before the filter can deny it)."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(listener_path)
    except OSError as err:
        sock.close()
        raise SetupError(
            f"connect to the seccomp agent at `{listener_path}`: {describe(err)}"
        ) from err
    return sock


def send_listener(sock: socket.socket, fd: int, message: bytes) -> None:
    """Send ``message`` with the listener ``fd`` attached on a connected socket."""
    import socket

    try:
        socket.send_fds(sock, [message], [fd])
    except OSError as err:
        raise SetupError(
            f"send the seccomp listener to the agent: {describe(err)}"
        ) from err


def send_to_listener(listener_path: str, fd: int, message: bytes) -> None:
    """Connect to the agent's socket and send ``message`` with ``fd`` attached."""
    with connect_listener(listener_path) as sock:
        send_listener(sock, fd, message)


# --- features ---------------------------------------------------------------------


def feature_lists() -> dict:
    """The ``linux.seccomp`` object of the features document."""
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(ARCHITECTURES),
        "knownFlags": list(FLAGS),
        "supportedFlags": [
            name for name, bits in FLAGS.items() if not bits or flag_supported(bits)
        ],
    }


def describe(err: OSError) -> str:
    """The errno text of ``err``, lower-case."""
    if err.errno:
        return os.strerror(err.errno).lower()
    return str(err)
