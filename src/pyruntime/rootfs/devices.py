"""Device nodes and the standard symlinks of the container's ``/dev``.

Unless the config bind-mounts a whole ``/dev``, every container gets the
default devices (null, zero, full, random, urandom, tty) plus
``linux.devices``, then ``/dev/fd``, ``/dev/std{in,out,err}``, ``/dev/ptmx``
(to ``pts/ptmx``) and, when the container has a /proc, ``/dev/core``.

Nodes are made with mknodat(2) on the fd of their (safely resolved) parent
directory, so a symlink in the image cannot send them anywhere else; an
existing entry is left alone, as runc does. A user namespace may not create
device nodes: there (or when mknod is refused) the host's node is bound onto
an empty file instead. :func:`mount_console` (after pivot_root) binds the
console's pty onto ``/dev/console`` the same way.
"""

from __future__ import annotations

import os
import stat

from pyruntime import log
from pyruntime.errors import SetupError
from pyruntime.linux import syscalls
from pyruntime.records import dataclass
from pyruntime.rootfs.binds import describe_errno
from pyruntime.rootfs.paths import RootHandle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


@dataclass(frozen=True)
class DefaultDevice:
    """A device every container gets (same attributes as spec.model.Device)."""

    type: str
    path: str
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int | None = 0
    gid: int | None = 0


DEFAULT_DEVICES = (
    DefaultDevice("c", "/dev/null", 1, 3),
    DefaultDevice("c", "/dev/zero", 1, 5),
    DefaultDevice("c", "/dev/full", 1, 7),
    DefaultDevice("c", "/dev/random", 1, 8),
    DefaultDevice("c", "/dev/urandom", 1, 9),
    DefaultDevice("c", "/dev/tty", 5, 0),
)

DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)

_TYPE_BITS = {
    "c": stat.S_IFCHR,
    "u": stat.S_IFCHR,
    "b": stat.S_IFBLK,
    "p": stat.S_IFIFO,
}
_BIND_OPTIONS = syscalls.MS_BIND


def needs_dev_setup(mounts: Any) -> bool:
    """False when the config bind-mounts ``/dev``: its nodes are then the user's."""
    for mount in mounts or ():
        destination = "/" + "/".join(p for p in mount.destination.split("/") if p)
        is_bind = mount.type == "bind" or any(
            option in ("bind", "rbind") for option in mount.options or ()
        )
        if destination == "/dev" and is_bind:
            return False
    return True


def merge_devices(devices: Sequence[Any]) -> list[Any]:
    """Default devices, replaced by config devices of the same path, then the rest."""
    configured = {os.path.normpath(device.path): device for device in devices}
    merged = [d for d in DEFAULT_DEVICES if d.path not in configured]
    return merged + list(configured.values())


def create_devices(root: RootHandle, devices: Sequence[Any], in_userns: bool) -> None:
    """Create the default devices and ``devices`` inside the rootfs."""
    old_umask = os.umask(0)
    merged = merge_devices(devices)
    how = "bind the host's nodes (mknod is denied in a user namespace)"
    log.debug(
        f"create {len(merged)} device nodes in /dev: "
        + ("; ".join(d.path for d in merged))
        + (f"; {how}" if in_userns else "")
    )
    try:
        for device in merged:
            create_device(root, device, in_userns)
    finally:
        os.umask(old_umask)


def create_device(root: RootHandle, device: Any, in_userns: bool) -> None:
    """Create one device node (or bind the host's); SetupError on failure."""
    try:
        kind = _TYPE_BITS[device.type]
    except KeyError:
        raise SetupError(
            f"create device `{device.path}`: unknown type `{device.type}`"
        ) from None
    try:
        if in_userns and kind != stat.S_IFIFO:
            bind_host_device(root, device.path)
            return
        try:
            make_device_node(root, device, kind)
        except PermissionError:
            bind_host_device(root, device.path)
    except OSError as err:
        raise SetupError(
            f"create device `{device.path}` (rootfs `{root.shown}`): "
            f"{describe_errno(err)}"
        ) from err


def make_device_node(root: RootHandle, device: Any, kind: int) -> None:
    """mknodat in the device's parent directory; an existing entry is kept."""
    parent_path, name = os.path.split(os.path.normpath(device.path))
    parent_fd, _ = root.resolve(parent_path, create="dir")
    try:
        file_mode = 0o666 if device.file_mode is None else device.file_mode
        mode = kind | stat.S_IMODE(file_mode)
        rdev = 0 if kind == stat.S_IFIFO else os.makedev(device.major, device.minor)
        try:
            os.mknod(name, mode, rdev, dir_fd=parent_fd)
        except FileExistsError:
            return
        if device.uid is not None or device.gid is not None:
            uid = -1 if device.uid is None else device.uid
            gid = -1 if device.gid is None else device.gid
            os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
    finally:
        os.close(parent_fd)


def bind_host_device(root: RootHandle, path: str) -> None:
    """Bind the host's node at ``path`` onto an empty file at ``path`` in the rootfs."""
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such device on the host", path)
    fd, resolved = root.resolve(path, create="file")
    try:
        syscalls.mount(path, root.target(fd, resolved), None, _BIND_OPTIONS)
    finally:
        os.close(fd)


def create_dev_symlinks(root: RootHandle) -> None:
    """The /dev symlinks every container has; existing entries are kept."""
    log.debug("link /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr and /dev/ptmx")
    links = list(DEV_SYMLINKS)
    if has_proc_kcore(root):
        links.append(("/proc/kcore", "/dev/core"))
    for target, path in links:
        make_symlink(root, target, path, replace=False)
    make_symlink(root, "pts/ptmx", "/dev/ptmx", replace=True)


def has_proc_kcore(root: RootHandle) -> bool:
    """Whether the container's /proc (as mounted so far) has a kcore."""
    try:
        fd, _ = root.resolve("/proc/kcore")
    except OSError:
        return False
    os.close(fd)
    return True


def make_symlink(root: RootHandle, target: str, path: str, *, replace: bool) -> None:
    """Create symlink ``path`` -> ``target``; ``replace`` removes an entry first."""
    parent_path, name = os.path.split(path)
    try:
        parent_fd, _ = root.resolve(parent_path, create="dir")
        try:
            if replace:
                remove_entry(parent_fd, name)
            os.symlink(target, name, dir_fd=parent_fd)
        except FileExistsError:
            pass
        finally:
            os.close(parent_fd)
    except OSError as err:
        raise SetupError(
            f"create symlink `{path}` (rootfs `{root.shown}`): {describe_errno(err)}"
        ) from err


def remove_entry(dir_fd: int, name: str) -> None:
    """Remove ``name`` (a file, node, symlink or empty directory) if present."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        os.rmdir(name, dir_fd=dir_fd)


def refuse_console_symlink() -> None:
    """An image's ``/dev/console`` that is a symlink is an attack: refuse it.

    ``/dev/console -> /proc/sys/...`` would put the pty over a kernel file
    (the CVE-2025-31133 class), whatever the link's target resolves to.
    """
    try:
        info = os.lstat("/dev/console")
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink("/dev/console")
        raise SetupError(
            f"mount console: `/dev/console` is a symlink to `{target}`: refused"
        )


def mount_console(pty_path: str) -> None:
    """After pivot_root: bind the pty ``pty_path`` onto ``/dev/console``.

    ``pty_path`` is the slave's path in the container's devpts; the bind
    replaces whatever ``/dev/console`` was (an empty file is made if needed).
    """
    refuse_console_symlink()
    root = RootHandle("/")
    try:
        fd, resolved = root.resolve("/dev/console", create="file")
        try:
            if resolved != "/dev/console":
                # An image's /dev/console -> /proc/sys/... would put the pty
                # over a kernel file (the CVE-2025-31133 class): refuse.
                raise SetupError(
                    f"mount console: `/dev/console` leads to `{resolved}` "
                    "through a symlink: refused"
                )
            source = os.open(pty_path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if not stat.S_ISCHR(os.fstat(source).st_mode):
                    raise SetupError(f"mount console: `{pty_path}` is not a terminal")
                source_path = root.target(source, pty_path)
                target = root.target(fd, resolved)
                syscalls.mount(source_path, target, None, syscalls.MS_BIND)
            finally:
                os.close(source)
        finally:
            os.close(fd)
    except OSError as err:
        raise SetupError(
            f"mount `{pty_path}` on `/dev/console`: {describe_errno(err)}"
        ) from err
    finally:
        root.close()
