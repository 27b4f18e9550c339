"""Linux namespaces: which to create, which to join, and in what order.

A namespace entry in config.json either has no ``path`` (create a new one) or
names a namespace file such as ``/proc/1234/ns/net`` (join it). Joining
happens before creating, and the user namespace comes first in both cases:
every other namespace created afterwards is owned by the new user namespace,
and joining a namespace owned by another user namespace needs its
capabilities there.
"""

from __future__ import annotations

import fcntl
import os
import stat

from pyruntime.errors import SetupError
from pyruntime.linux import syscalls as sc

#: OCI namespace type -> (clone flag, name under /proc/<pid>/ns/).
NAMESPACES = {
    "user": (sc.CLONE_NEWUSER, "user"),
    "pid": (sc.CLONE_NEWPID, "pid"),
    "network": (sc.CLONE_NEWNET, "net"),
    "mount": (sc.CLONE_NEWNS, "mnt"),
    "ipc": (sc.CLONE_NEWIPC, "ipc"),
    "uts": (sc.CLONE_NEWUTS, "uts"),
    "cgroup": (sc.CLONE_NEWCGROUP, "cgroup"),
    "time": (sc.CLONE_NEWTIME, "time"),
}

#: Join/create order: user first (ownership), mount last among joins so that
#: the other namespace paths are still resolved in the host's mount view.
ORDER = ("user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount")

_NS_GET_NSTYPE = 0xB703
_NSFS_MAGIC = 0x6E736673


def new_namespace_flags(namespaces) -> int:
    """Return the CLONE_NEW* flags of the namespaces to create (user excluded)."""
    flags = 0
    for ns in namespaces or ():
        if ns.path is None and ns.type != "user":
            flags |= NAMESPACES[ns.type][0]
    return flags


def wants_new(namespaces, ns_type: str) -> bool:
    """Tell whether a new namespace of ``ns_type`` is to be created."""
    return any(ns.type == ns_type and ns.path is None for ns in namespaces or ())


def has_namespace(namespaces, ns_type: str) -> bool:
    """Tell whether the config lists ``ns_type`` at all (new or joined)."""
    return any(ns.type == ns_type for ns in namespaces or ())


def open_namespace(ns_type: str, path: str) -> int:
    """Open a namespace file to join, checking it really is one of that type."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise SetupError(
            f"open {ns_type} namespace `{path}`: {err.strerror.lower()}"
        ) from err
    try:
        check_namespace_fd(fd, ns_type, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_namespace_fd(fd: int, ns_type: str, path: str) -> None:
    """Raise SetupError unless ``fd`` is a namespace file of type ``ns_type``."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise SetupError(
            f"join {ns_type} namespace `{path}`: it is a directory, not a "
            "namespace file (expected a path such as /proc/<pid>/ns/"
            f"{NAMESPACES[ns_type][1]})"
        )
    try:
        actual = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        raise SetupError(
            f"join {ns_type} namespace `{path}`: not a namespace file (expected "
            f"a path such as /proc/<pid>/ns/{NAMESPACES[ns_type][1]})"
        ) from None
    if actual != NAMESPACES[ns_type][0]:
        names = {flag: name for name, (flag, _) in NAMESPACES.items()}
        raise SetupError(
            f"join {ns_type} namespace `{path}`: it is a "
            f"{names.get(actual, 'different')} namespace"
        )


def open_joined(namespaces) -> list[tuple[str, int]]:
    """Open every namespace to join, in joining order, as (type, fd) pairs."""
    by_type = {ns.type: ns.path for ns in namespaces or () if ns.path}
    opened: list[tuple[str, int]] = []
    try:
        for ns_type in ORDER:
            if ns_type in by_type:
                opened.append((ns_type, open_namespace(ns_type, by_type[ns_type])))
    except BaseException:
        for _, fd in opened:
            os.close(fd)
        raise
    return opened


def is_own_namespace(ns_type: str, path: str) -> bool:
    """Tell whether ``path`` names the calling process's own (the host's) namespace."""
    try:
        given = os.stat(path)
        own = os.stat(f"/proc/self/ns/{NAMESPACES[ns_type][1]}")
    except OSError:
        return False  # open_namespace reports a bad path
    return (given.st_dev, given.st_ino) == (own.st_dev, own.st_ino)


def refuse_host_changes(namespaces, sysctl, hostname, domainname) -> None:
    """Refuse settings that would land in a joined namespace that is the host's.

    Joining the host's network namespace is allowed (``--net=host``), but a
    ``net.*`` sysctl written there would change the host; the same goes for
    IPC sysctls and for the host's UTS namespace with a hostname. Called with
    the runtime's namespaces still in force, before any join.
    """
    from pyruntime.spec.validate import sysctl_namespace

    host = {
        ns.type: ns.path
        for ns in namespaces or ()
        if ns.path and is_own_namespace(ns.type, ns.path)
    }
    if not host:
        return
    for key in sysctl or {}:
        kind = sysctl_namespace(key)
        if kind in host:
            raise SetupError(
                f"sysctl `{key}`: not allowed in the host's {kind} namespace "
                f"`{host[kind]}` (it would change the host)"
            )
    if "uts" in host:
        for name, value in (("hostname", hostname), ("domainname", domainname)):
            if value:
                raise SetupError(
                    f"{name} `{value}`: not allowed in the host's uts namespace "
                    f"`{host['uts']}` (it would change the host)"
                )


def require_private_mount_namespace(namespaces) -> None:
    """Refuse to set a rootfs up in the host's mount namespace.

    Without a mount namespace of its own, the rootfs mounts and pivot_root
    (or --no-pivot's move onto /) would act on the host: every process there
    could find itself inside the container's root.
    """
    mount = next((ns for ns in namespaces or () if ns.type == "mount"), None)
    if mount is None:
        raise SetupError(
            "linux.namespaces: a mount namespace is required (the rootfs would "
            "otherwise be set up in the host's mount namespace)"
        )
    if mount.path and is_own_namespace("mount", mount.path):
        raise SetupError(
            f"join mount namespace `{mount.path}`: it is the host's own (the "
            "rootfs would be set up in it)"
        )


def join_namespace(ns_type: str, fd: int, path: str | None = None) -> None:
    """setns() into an opened namespace (``path`` only names it in errors)."""
    try:
        sc.setns(fd, NAMESPACES[ns_type][0])
    except OSError as err:
        where = f" `{path}`" if path else ""
        raise SetupError(
            f"join {ns_type} namespace{where}: {os.strerror(err.errno).lower()}"
        ) from err
    finally:
        os.close(fd)


def create_namespaces(flags: int) -> None:
    """unshare() the CLONE_NEW* ``flags``; SetupError naming them on failure."""
    try:
        sc.unshare(flags)
    except OSError as err:
        names = describe_flags(flags)
        noun = "namespaces" if "," in names else "namespace"
        raise SetupError(
            f"create {names} {noun}: {os.strerror(err.errno).lower()}"
        ) from err


def describe_flags(flags: int) -> str:
    """List namespace names for a CLONE_NEW* mask."""
    return ", ".join(name for name, (flag, _) in NAMESPACES.items() if flag & flags)


def format_id_map(mappings) -> str:
    """Render OCI id mappings in the /proc/<pid>/uid_map format."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def write_id_maps(pid: int, uid_mappings, gid_mappings, deny_setgroups: bool) -> None:
    """Write the uid/gid maps of a process that has just unshared its user ns.

    ``setgroups`` must be set to ``deny`` before an unprivileged writer may set
    the gid map; a privileged writer keeps it ``allow`` so that the container
    can still set its additional groups.
    """
    if deny_setgroups:
        _write_proc(pid, "setgroups", "deny")
    _write_proc(pid, "uid_map", format_id_map(uid_mappings or ()))
    _write_proc(pid, "gid_map", format_id_map(gid_mappings or ()))


def write_time_offsets(offsets) -> None:
    """Write time namespace clock offsets (before any process enters it)."""
    lines = []
    for clock, offset in offsets.items():
        name = {"monotonic": "monotonic", "boottime": "boottime"}.get(clock)
        if name is None:
            raise SetupError(f"time offset for clock `{clock}`: unknown clock")
        lines.append(f"{name} {offset.secs or 0} {offset.nanosecs or 0}\n")
    try:
        with open("/proc/self/timens_offsets", "w") as handle:
            for line in lines:
                handle.write(line)
                handle.flush()
    except OSError as err:
        raise SetupError(f"write time namespace offsets: {err.strerror}") from err


def _write_proc(pid: int, name: str, data: str) -> None:
    path = f"/proc/{pid}/{name}"
    try:
        with open(path, "w") as handle:
            handle.write(data)
    except OSError as err:
        raise SetupError(
            f"write `{data.strip()}` to `{path}`: {err.strerror.lower()}"
        ) from err
