"""The config's ``mounts``, made inside the rootfs before pivot_root.

Each mount's destination is resolved with :mod:`pyruntime.rootfs.paths` (never
leaving the rootfs), its mount point created, and the mount made on the
``/proc/self/fd/N`` name of the resolved fd. After that come the remount that
applies per-mount flags to bind mounts, the propagation changes and the
recursive (``r*``) attributes, each on a fresh fd of the new mount.

Checks on destinations (not the rootfs itself, nothing inside /proc but a
few lxcfs-style files) are made on the *resolved* path, so a symlink cannot
route around them.
"""

from __future__ import annotations

import os

from pyruntime import log
from pyruntime.errors import SetupError, UnsupportedError
from pyruntime.linux import syscalls
from pyruntime.records import dataclass, replace
from pyruntime.rootfs import cgroupfs, copyup
from pyruntime.rootfs.binds import bind_onto, describe_errno
from pyruntime.rootfs.options import MountOptions, parse_mount_options
from pyruntime.rootfs.paths import RootHandle
from pyruntime.security.lsm import label_mount_data

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bind mounts over these files of /proc are allowed (lxcfs emulates them);
# anything else below /proc could hide or redirect the kernel's knobs.
_PROC_BIND_ALLOWED = frozenset(
    {
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
        "/proc/sys/crypto/fips_enabled",
    }
)

# Filesystems that a user namespace may not mount without its own network or
# IPC namespace; a recursive bind of the host's copy stands in (as runc does).
_USERNS_BIND_FALLBACK = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}


@dataclass(frozen=True)
class MountContext:
    """What every mount of one container needs to know."""

    root: RootHandle
    in_userns: bool
    bundle: str
    cgroup_paths: dict[str, str] | None = None
    #: ``linux.mountLabel``: the SELinux context of new file systems.
    mount_label: str | None = None


def mount_all(context: MountContext, mounts: Any) -> None:
    """Make every mount of the config, in order."""
    for mount in mounts or ():
        mount_entry(context, mount)


def mount_entry(context: MountContext, mount: Any) -> None:
    """Make one config mount; raise SetupError naming it on failure."""
    options = parse_mount_options(mount.options)
    what = mount.source or mount.type or "none"
    try:
        check_mount_supported(mount, options)
        make_mount(context, mount, options)
    except OSError as err:
        raise SetupError(
            f"mount `{what}` on `{mount.destination}` "
            f"(rootfs `{context.root.shown}`): {describe_errno(err)}"
        ) from err


def check_mount_supported(mount: Any, options: MountOptions) -> None:
    """Refuse what is parsed but not implemented, before touching anything."""
    if options.idmap or mount.uid_mappings or mount.gid_mappings:
        # TODO(#3): idmapped mounts (open_tree + mount_setattr with a userns fd).
        raise UnsupportedError(
            f"mount `{mount.source}` on `{mount.destination}`: "
            "idmapped mounts are not supported yet"
        )
    if not mount.destination or not mount.destination.startswith("/"):
        raise SetupError(
            f"mount destination `{mount.destination}` is not an absolute path"
        )


def is_bind_mount(mount: Any, options: MountOptions) -> bool:
    """Bind mounts are named by an option, or by type ``bind`` alone."""
    return options.bind or mount.type == "bind"


def bind_source(mount: Any, bundle: str) -> str:
    """The host path to bind: relative sources are relative to the bundle."""
    source = mount.source or ""
    if not source:
        raise SetupError(f"bind mount on `{mount.destination}` has no source")
    return os.path.join(bundle, source)


def make_mount(context: MountContext, mount: Any, options: MountOptions) -> None:
    """Resolve the destination, mount, then apply propagation and attributes."""
    bind = is_bind_mount(mount, options)
    source = bind_source(mount, context.bundle) if bind else mount.source
    create = "dir"
    if bind and not os.path.isdir(source):
        os.stat(source)  # a missing source fails here, with its own errno
        create = "file"
    fd, resolved = context.root.resolve(mount.destination, create=create)
    try:
        check_destination(resolved, mount, bind, source)
        log.debug(describe_mount(mount, source, resolved, bind))
        if bind:
            bind_onto(context.root, fd, resolved, source, options)
        elif mount.type == "cgroup":
            cgroupfs.mount_cgroupfs(context, fd, resolved, options)
        else:
            mount_filesystem(context, fd, resolved, mount, options)
    finally:
        os.close(fd)
    apply_propagation(context, resolved, options)


def describe_mount(mount: Any, source: str, resolved: str, bind: bool) -> str:
    """One narrated line for a mount, naming where its destination resolved."""
    options = ",".join(mount.options or ()) or "defaults"
    kind = "bind" if bind else (mount.type or "none")
    where = f"`{mount.destination}`"
    if resolved != mount.destination:
        where += f" (resolved inside the rootfs to `{resolved}`)"
    return f"mount {kind} `{source}` on {where} with {options}"


def check_destination(resolved: str, mount: Any, bind: bool, source: str) -> None:
    """Refuse mounts on the rootfs itself and into /proc (except a few files)."""
    if resolved == "/":
        raise SetupError(
            f"mount destination `{mount.destination}` is the root of the rootfs"
        )
    if resolved == "/proc":
        if mount.type == "proc" or (bind and is_procfs(source)):
            return
        raise SetupError(
            f"mount destination `{mount.destination}` is /proc: only procfs "
            "may be mounted there"
        )
    if resolved.startswith("/proc/") and not (bind and resolved in _PROC_BIND_ALLOWED):
        raise SetupError(
            f"mount destination `{mount.destination}` is inside /proc: not allowed"
        )


def is_procfs(path: str) -> bool:
    """Whether the host path ``path`` is on a procfs."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        return syscalls.fstatfs_type(fd) == syscalls.PROC_SUPER_MAGIC
    finally:
        os.close(fd)


def mount_filesystem(
    context: MountContext, fd: int, resolved: str, mount: Any, options: MountOptions
) -> None:
    """Mount a new filesystem instance (proc, tmpfs, devpts, sysfs...) on ``fd``."""
    if options.tmpcopyup and mount.type == "tmpfs":
        copyup.mount_tmpfs_copyup(context.root, fd, resolved, mount, options)
        return
    target = context.root.target(fd, resolved)
    source = mount.source or mount.type
    data = label_mount_data(mount.type, options.data or "", context.mount_label)
    try:
        syscalls.mount(source, target, mount.type, options.flags, data or None)
    except PermissionError:
        host_path = _USERNS_BIND_FALLBACK.get(mount.type or "")
        if not (context.in_userns and host_path and os.path.isdir(host_path)):
            raise
        fallback = replace(options, bind=True, recursive_bind=True)
        bind_onto(context.root, fd, resolved, host_path, fallback)


def apply_propagation(
    context: MountContext, resolved: str, options: MountOptions
) -> None:
    """Propagation options, then the recursive ``r*`` attributes, on the new mount."""
    if not options.propagation and not options.has_recursive_attrs:
        return
    top = context.root.reopen(resolved)
    try:
        target = context.root.target(top, resolved)
        for flag in options.propagation:
            syscalls.mount(None, target, None, flag)
        if options.has_recursive_attrs:
            syscalls.mount_setattr(
                top,
                "",
                syscalls.AT_EMPTY_PATH | syscalls.AT_RECURSIVE,
                options.attr_set,
                options.attr_clear,
            )
    finally:
        os.close(top)
