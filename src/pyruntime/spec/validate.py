"""Cross-field rules for a decoded config, checked before anything is created.

This module owns the rules that a well-typed ``Spec`` can still break: paths
that must be absolute, namespace types and duplicates, settings that need a
namespace of their own (hostname, sysctls, id mappings, time offsets), device
and rlimit names. Each rule is a small function yielding problems in the same
``json.path: what`` form as the decoder; ``validate_spec`` runs them all so the
user sees every problem at once.

Rules here look only at the document. Checks that touch the host (is a
namespace ``path`` really a namespace file of that type, is a joined network
namespace the host's own) belong to the code that joins namespaces.
"""

from __future__ import annotations

from pyruntime.errors import ConfigError
from pyruntime.spec import process_rules
from pyruntime.spec.jsontext import quote
from pyruntime.spec.model import Hook, Namespace, Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    #: A rule: the problems it finds in a spec.
    Rule = Callable[[Spec], Iterable[str]]

NAMESPACE_TYPES = frozenset(
    {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"}
)
ROOTFS_PROPAGATIONS = frozenset(
    {
        "shared",
        "slave",
        "private",
        "unbindable",
        "rshared",
        "rslave",
        "rprivate",
        "runbindable",
    }
)
DEVICE_TYPES = frozenset({"c", "b", "u", "p"})
RLIMIT_TYPES = frozenset(
    {
        "RLIMIT_AS",
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_DATA",
        "RLIMIT_FSIZE",
        "RLIMIT_LOCKS",
        "RLIMIT_MEMLOCK",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_RSS",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
        "RLIMIT_SIGPENDING",
        "RLIMIT_STACK",
    }
)
HOOK_PHASES = (
    ("prestart", "prestart"),
    ("create_runtime", "createRuntime"),
    ("create_container", "createContainer"),
    ("start_container", "startContainer"),
    ("poststart", "poststart"),
    ("poststop", "poststop"),
)
# sysctl prefixes that the kernel scopes to the IPC namespace (ipc/ipc_sysctl.c,
# ipc/mq_sysctl.c); everything under net. belongs to the network namespace.
_IPC_SYSCTL_PREFIXES = ("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.")
_UTS_SYSCTLS = frozenset({"kernel.hostname", "kernel.domainname"})
# The oom_score_adj bounds the kernel accepts (OOM_SCORE_ADJ_MIN/MAX).
_OOM_SCORE_ADJ = range(-1000, 1001)


# --- public API ------------------------------------------------------------------


def validate_spec(spec: Spec) -> list[str]:
    """Return every cross-field problem of ``spec`` (empty when it is valid)."""
    return [problem for rule in RULES for problem in rule(spec)]


def check_spec(spec: Spec) -> None:
    """Raise ConfigError listing every problem ``validate_spec`` finds."""
    problems = validate_spec(spec)
    if problems:
        raise ConfigError(problems)


# --- helpers ---------------------------------------------------------------------


def namespaces_of(spec: Spec) -> tuple[Namespace, ...]:
    """Return the configured namespaces (none when ``linux`` is absent)."""
    if spec.linux is None or spec.linux.namespaces is None:
        return ()
    return spec.linux.namespaces


def find_namespace(spec: Spec, kind: str) -> Namespace | None:
    """Return the first namespace entry of type ``kind``, if any."""
    return next((ns for ns in namespaces_of(spec) if ns.type == kind), None)


def is_absolute(path: str | None) -> bool:
    """True for a path starting with ``/``."""
    return bool(path) and path.startswith("/")


def not_absolute(path: str | None) -> str:
    """The message for a path that must be absolute."""
    return f"{quote(path)} is not an absolute path"


def one_of(values: Iterable[str]) -> str:
    """Format allowed values for a message."""
    return "expected one of " + ", ".join(sorted(values))


# --- process -----------------------------------------------------------------------


def check_process_present(spec: Spec) -> Iterator[str]:
    """create needs a process to run."""
    if spec.process is None:
        yield "process: required field is missing (create needs a process to run)"


def require_process(spec: Spec) -> None:
    """Raise ConfigError unless ``spec`` has a process.

    ``validate_spec`` already reports a missing process with everything else;
    this is the guard for callers that go on to use ``spec.process``.
    """
    problems = list(check_process_present(spec))
    if problems:
        raise ConfigError(problems)


def check_process_args(spec: Spec) -> Iterator[str]:
    """``process.args`` needs at least the program to run."""
    if spec.process is not None and not spec.process.args:
        yield "process.args: must not be empty"


def check_process_cwd(spec: Spec) -> Iterator[str]:
    """``process.cwd`` must be absolute (in the container)."""
    if spec.process is not None and not is_absolute(spec.process.cwd):
        yield f"process.cwd: {not_absolute(spec.process.cwd)}"


def check_console_size(spec: Spec) -> Iterator[str]:
    """A console size only makes sense with a terminal."""
    process = spec.process
    if process is not None and process.console_size and not process.terminal:
        yield "process.consoleSize: set but process.terminal is not true"


def check_rlimits(spec: Spec) -> Iterator[str]:
    """rlimit names are RLIMIT_*, each given once, with soft <= hard."""
    if spec.process is None or spec.process.rlimits is None:
        return
    seen: dict[str, int] = {}
    for index, rlimit in enumerate(spec.process.rlimits):
        where = f"process.rlimits[{index}]"
        if rlimit.type not in RLIMIT_TYPES:
            yield f"{where}.type: unknown rlimit {quote(rlimit.type)}"
        elif rlimit.type in seen:
            first = seen[rlimit.type]
            yield f"{where}.type: {rlimit.type} repeats process.rlimits[{first}]"
        seen.setdefault(rlimit.type, index)
        if rlimit.soft > rlimit.hard:
            yield (
                f"{where}: soft limit {rlimit.soft} is greater than "
                f"hard limit {rlimit.hard}"
            )


def check_oom_score_adj(spec: Spec) -> Iterator[str]:
    """The kernel accepts oom_score_adj between -1000 and 1000."""
    value = spec.process.oom_score_adj if spec.process else None
    if value is not None and value not in _OOM_SCORE_ADJ:
        yield f"process.oomScoreAdj: {value} is outside -1000..1000"


def check_process_attrs(spec: Spec) -> Iterator[str]:
    """LSM labels, I/O priority, scheduler, CPU affinity (``spec.process_rules``)."""
    if spec.process is not None:
        yield from process_rules.process_problems(spec.process)


def check_linux_attrs(spec: Spec) -> Iterator[str]:
    """mountLabel, personality, memoryPolicy, intelRdt (``spec.process_rules``)."""
    yield from process_rules.linux_problems(spec.linux)


def check_deadline_hooks(spec: Spec) -> Iterator[str]:
    """A SCHED_DEADLINE init could not fork the startContainer hooks."""
    yield from process_rules.deadline_hook_problems(spec)


# --- root, mounts, hooks -----------------------------------------------------------


def require_root(spec: Spec) -> Iterator[str]:
    """Linux containers need a root filesystem."""
    if spec.root is None:
        yield "root: required field is missing (a Linux container needs a rootfs)"


def check_mount_destinations(spec: Spec) -> Iterator[str]:
    """Mount destinations are absolute paths in the container."""
    for index, mount in enumerate(spec.mounts or ()):
        if not is_absolute(mount.destination):
            yield f"mounts[{index}].destination: {not_absolute(mount.destination)}"


def check_hooks(spec: Spec) -> Iterator[str]:
    """Hook paths are absolute; a timeout, when set, is positive."""
    if spec.hooks is None:
        return
    for attr, key in HOOK_PHASES:
        for index, hook in enumerate(getattr(spec.hooks, attr) or ()):
            yield from check_hook(hook, f"hooks.{key}[{index}]")


def check_hook(hook: Hook, where: str) -> Iterator[str]:
    """Check one hook entry."""
    if not is_absolute(hook.path):
        yield f"{where}.path: {not_absolute(hook.path)}"
    if hook.timeout is not None and hook.timeout <= 0:
        yield f"{where}.timeout: must be greater than zero, got {hook.timeout}"


# --- linux: namespaces and what depends on them ------------------------------------


def check_namespace_types(spec: Spec) -> Iterator[str]:
    """Namespace types are known and each appears once."""
    seen: dict[str, int] = {}
    for index, ns in enumerate(namespaces_of(spec)):
        where = f"linux.namespaces[{index}].type"
        if ns.type not in NAMESPACE_TYPES:
            kind = quote(ns.type)
            yield f"{where}: unknown namespace type {kind} ({one_of(NAMESPACE_TYPES)})"
        elif ns.type in seen:
            first = seen[ns.type]
            yield f"{where}: duplicate {ns.type} namespace (linux.namespaces[{first}])"
        seen.setdefault(ns.type, index)


def check_namespace_paths(spec: Spec) -> Iterator[str]:
    """A namespace to join is named by an absolute path."""
    for index, ns in enumerate(namespaces_of(spec)):
        if ns.path is not None and not is_absolute(ns.path):
            yield f"linux.namespaces[{index}].path: {not_absolute(ns.path)}"


def check_id_mappings_need_userns(spec: Spec) -> Iterator[str]:
    """uid/gid mappings only apply to a user namespace."""
    if spec.linux is None or find_namespace(spec, "user") is not None:
        return
    for key, mappings in (
        ("uidMappings", spec.linux.uid_mappings),
        ("gidMappings", spec.linux.gid_mappings),
    ):
        if mappings:
            yield f"linux.{key}: set but linux.namespaces has no user namespace"


def check_userns_has_mappings(spec: Spec) -> Iterator[str]:
    """A new user namespace is useless (and unusable) without id mappings."""
    userns = find_namespace(spec, "user")
    if userns is None or userns.path is not None:
        return
    linux = spec.linux
    if not linux.uid_mappings:
        yield "linux.uidMappings: user namespaces enabled, but no uid mappings found"
    if not linux.gid_mappings:
        yield "linux.gidMappings: user namespaces enabled, but no gid mappings found"
    # The runtime sets the container up as its root: uid and gid 0 must map.
    for key, mappings in (("uid", linux.uid_mappings), ("gid", linux.gid_mappings)):
        if mappings and not any(
            m.container_id <= 0 < m.container_id + m.size for m in mappings
        ):
            yield (
                f"linux.{key}Mappings: user namespaces enabled, but no mapping "
                f"found for the container's root ({key} 0)"
            )


def check_time_offsets(spec: Spec) -> Iterator[str]:
    """Clock offsets need a new time namespace."""
    if spec.linux is None or not spec.linux.time_offsets:
        return
    timens = find_namespace(spec, "time")
    if timens is None:
        yield "linux.timeOffsets: set but linux.namespaces has no time namespace"
    elif timens.path is not None:
        yield "linux.timeOffsets: cannot set offsets of a joined time namespace"


def check_uts_names(spec: Spec) -> Iterator[str]:
    """hostname and domainname would change the host's without a UTS namespace."""
    if find_namespace(spec, "uts") is not None:
        return
    if spec.hostname:
        yield "hostname: unable to set hostname without a private UTS namespace"
    if spec.domainname:
        yield "domainname: unable to set domainname without a private UTS namespace"


def sysctl_namespace(name: str) -> str | None:
    """Return the namespace type that scopes sysctl ``name``, or None (global)."""
    name = name.replace("/", ".")
    if name.startswith("net."):
        return "network"
    if name.startswith(_IPC_SYSCTL_PREFIXES):
        return "ipc"
    if name in _UTS_SYSCTLS:
        return "uts"
    return None


def check_sysctls(spec: Spec) -> Iterator[str]:
    """Only namespaced sysctls, and only with their namespace configured."""
    if spec.linux is None or not spec.linux.sysctl:
        return
    for name in spec.linux.sysctl:
        where = f"linux.sysctl[{quote(name)}]"
        kind = sysctl_namespace(name)
        if kind is None:
            yield (
                f"{where}: sysctl `{name}` is not in a separate kernel namespace: "
                "it would change the host"
            )
        elif find_namespace(spec, kind) is None:
            yield (
                f'{where}: needs a "{kind}" entry in linux.namespaces, '
                "else it would change the host"
            )


# --- linux: the rest ---------------------------------------------------------------


def check_rootfs_propagation(spec: Spec) -> Iterator[str]:
    """rootfsPropagation is one of the mount propagation modes."""
    value = spec.linux.rootfs_propagation if spec.linux else None
    if value is not None and value not in ROOTFS_PROPAGATIONS:
        yield (
            f"linux.rootfsPropagation: unknown propagation {quote(value)} "
            f"({one_of(ROOTFS_PROPAGATIONS)})"
        )


def check_devices(spec: Spec) -> Iterator[str]:
    """Device entries: known type, absolute path, numbers unless a fifo."""
    if spec.linux is None:
        return
    for index, device in enumerate(spec.linux.devices or ()):
        where = f"linux.devices[{index}]"
        if device.type not in DEVICE_TYPES:
            kind = quote(device.type)
            yield f"{where}.type: unknown device type {kind} ({one_of(DEVICE_TYPES)})"
        elif device.type != "p":
            for key in ("major", "minor"):
                if getattr(device, key) is None:
                    yield f'{where}.{key}: required unless type is "p"'
        if not is_absolute(device.path):
            yield f"{where}.path: {not_absolute(device.path)}"


def check_masked_and_readonly_paths(spec: Spec) -> Iterator[str]:
    """maskedPaths and readonlyPaths are absolute paths in the container."""
    if spec.linux is None:
        return
    for key, paths in (
        ("maskedPaths", spec.linux.masked_paths),
        ("readonlyPaths", spec.linux.readonly_paths),
    ):
        for index, path in enumerate(paths or ()):
            if not is_absolute(path):
                yield f"linux.{key}[{index}]: {not_absolute(path)}"


def check_seccomp(spec: Spec) -> Iterator[str]:
    """Each syscall rule names at least one syscall; metadata needs a listener."""
    seccomp = spec.linux.seccomp if spec.linux else None
    if seccomp is None:
        return
    if seccomp.listener_metadata and not seccomp.listener_path:
        yield "linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath"
    for index, syscall in enumerate(seccomp.syscalls or ()):
        if not syscall.names:
            yield f"linux.seccomp.syscalls[{index}].names: must not be empty"


#: Every rule, in the order problems are reported (document order, roughly).
RULES: tuple[Rule, ...] = (
    check_process_present,
    check_process_args,
    check_process_cwd,
    check_console_size,
    check_rlimits,
    check_oom_score_adj,
    check_process_attrs,
    check_deadline_hooks,
    require_root,
    check_uts_names,
    check_mount_destinations,
    check_hooks,
    check_namespace_types,
    check_namespace_paths,
    check_id_mappings_need_userns,
    check_userns_has_mappings,
    check_time_offsets,
    check_devices,
    check_rootfs_propagation,
    check_masked_and_readonly_paths,
    check_sysctls,
    check_seccomp,
    check_linux_attrs,
)
