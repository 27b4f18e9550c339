"""Making the rootfs the container's ``/``, and the root mount's last touches.

:func:`make_root_unshared` and :func:`bind_rootfs` run first (before any
mount), :func:`enter_rootfs` after the mounts and the createContainer hooks,
:func:`finalize_rootfs` after that.

pivot_root uses the ``pivot_root(".", ".")`` form: with the new root as the
working directory, the old root ends up stacked on top of it, where it is
made a slave (so detaching it cannot propagate to the host) and lazily
unmounted, without needing a directory for it inside the rootfs.
"""

from __future__ import annotations

import os

from pyruntime.errors import SetupError
from pyruntime.linux import syscalls
from pyruntime.rootfs.binds import describe_errno
from pyruntime.rootfs.options import (
    bind_remount_flags,
    mount_flags_from_statvfs,
    propagation_flags,
)


def make_root_unshared(propagation: str | None) -> None:
    """Make every mount a slave (private if asked) so nothing reaches the host.

    Also a precondition of pivot_root, which refuses shared mounts.
    """
    private = propagation in ("private", "rprivate")
    flags = syscalls.MS_REC | (syscalls.MS_PRIVATE if private else syscalls.MS_SLAVE)
    try:
        syscalls.mount(None, "/", None, flags)
    except OSError as err:
        raise SetupError(
            f"make `/` {'rprivate' if private else 'rslave'}: {describe_errno(err)}"
        ) from err


def bind_rootfs(rootfs: str) -> None:
    """Bind the rootfs onto itself: pivot_root needs a mount point."""
    try:
        syscalls.mount(rootfs, rootfs, None, syscalls.MS_BIND | syscalls.MS_REC)
    except OSError as err:
        raise SetupError(
            f"bind mount rootfs `{rootfs}` onto itself: {describe_errno(err)}"
        ) from err


def enter_rootfs(rootfs_path: str, *, no_pivot: bool) -> None:
    """Make ``rootfs_path`` the root: pivot_root, or MS_MOVE + chroot."""
    try:
        if no_pivot:
            move_root(rootfs_path)
        else:
            pivot_root(rootfs_path)
    except OSError as err:
        how = "move" if no_pivot else "pivot_root"
        raise SetupError(
            f"{how} to rootfs `{rootfs_path}`: {describe_errno(err)}"
        ) from err


def pivot_root(rootfs: str) -> None:
    """pivot_root(".", ".") then detach the old root stacked on top."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
        finally:
            os.close(new_root)
        syscalls.pivot_root(".", ".")
        # Now "." (through old_root) is the old root, mounted over the new one.
        os.fchdir(old_root)
    finally:
        os.close(old_root)
    syscalls.mount(None, ".", None, syscalls.MS_SLAVE | syscalls.MS_REC)
    syscalls.umount2(".", syscalls.MNT_DETACH)
    os.chdir("/")


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs mount onto / and chroot into it.

    Weaker than pivot_root: the old root stays reachable to a process able to
    escape a chroot (CAP_SYS_CHROOT), as with runc's --no-pivot.
    """
    os.chdir(rootfs)
    syscalls.mount(rootfs, "/", None, syscalls.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def finalize_rootfs(*, readonly: bool, propagation: str | None) -> None:
    """After entering the rootfs: make / read-only, apply rootfsPropagation."""
    if readonly:
        remount_root_readonly()
    try:
        flags = propagation_flags(propagation)
    except ValueError as err:
        raise SetupError(f"set propagation of `/`: {err}") from err
    if flags is None:
        return
    try:
        syscalls.mount(None, "/", None, flags)
    except OSError as err:
        raise SetupError(
            f"set propagation `{propagation}` of `/`: {describe_errno(err)}"
        ) from err


def remount_root_readonly() -> None:
    """Bind-remount / read-only, keeping the flags it has (some may be locked)."""
    try:
        current = mount_flags_from_statvfs(os.statvfs("/").f_flag)
        flags = bind_remount_flags(current, syscalls.MS_RDONLY, 0)
        syscalls.mount(None, "/", None, flags)
    except OSError as err:
        raise SetupError(f"remount `/` read-only: {describe_errno(err)}") from err
