"""Bind mounts and bind remounts inside the rootfs: the shared primitives.

Every rootfs module that binds something onto a resolved path, or changes the
per-mount flags of a mount it made (read-only, nosuid...), goes through here,
so locked flags are handled in one place. Also: turning an OSError into the
one-line reason used in error messages.
"""

from __future__ import annotations

import os

from pyruntime.linux import syscalls
from pyruntime.rootfs.options import (
    MountOptions,
    bind_remount_flags,
    mount_flags_from_statvfs,
    needs_bind_remount,
)
from pyruntime.rootfs.paths import RootHandle


def describe_errno(err: OSError) -> str:
    """Lower-case errno text of ``err`` ("invalid argument")."""
    if err.errno:
        text = os.strerror(err.errno)
        return text[:1].lower() + text[1:]
    return str(err)


def bind_onto(
    root: RootHandle, fd: int, resolved: str, source: str, options: MountOptions
) -> None:
    """Bind ``source`` onto ``fd`` (at ``resolved``), then apply per-mount flags."""
    flags = syscalls.MS_BIND | (syscalls.MS_REC if options.recursive_bind else 0)
    syscalls.mount(source, root.target(fd, resolved), None, flags)
    if needs_bind_remount(options):
        remount_bind(root, resolved, options.flags, options.clear_flags)


def remount_bind(root: RootHandle, resolved: str, flags: int, clear_flags: int) -> None:
    """Apply per-mount ``flags`` to the mount at ``resolved``.

    The flags the mount has now are kept unless cleared explicitly: a bind
    remount replaces them all, and dropping a locked one (nosuid, nodev,
    noexec, ro, atime of a mount from a more privileged namespace) is EPERM.
    """
    top = root.reopen(resolved)
    try:
        current = mount_flags_from_statvfs(os.fstatvfs(top).f_flag)
        new_flags = bind_remount_flags(current, flags, clear_flags)
        syscalls.mount(None, root.target(top, resolved), None, new_flags)
    finally:
        os.close(top)
