"""``linux.maskedPaths`` and ``linux.readonlyPaths``, applied after pivot_root.

A masked directory gets an empty read-only tmpfs over it, a masked file gets
``/dev/null`` bound over it; a read-only path is bound onto itself and
remounted read-only. Paths are resolved in the new root like every other
rootfs path (symlinks followed, but never out of it), and missing ones are
skipped, as runc does.

Before /dev/null is bound over anything it must be the real character device
1:3: the container's image could have replaced it with a symlink to, or a copy
of, something it wants to read or write (the CVE-2025-31133 class); masking
would then expose instead of hide. That is refused with an error.
"""

from __future__ import annotations

import os
import stat

from pyruntime import log
from pyruntime.errors import SetupError
from pyruntime.linux import syscalls
from pyruntime.rootfs.binds import describe_errno, remount_bind
from pyruntime.rootfs.paths import RootHandle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_NULL_RDEV = os.makedev(1, 3)
_MISSING = (FileNotFoundError, NotADirectoryError)


def mask_paths(paths: Sequence[str]) -> None:
    """Hide each of ``paths`` in the current root (after pivot_root)."""
    if not paths:
        return
    log.debug(
        "mask " + ", ".join(paths) + ": an empty read-only tmpfs over "
        "directories, /dev/null over files (missing ones are skipped)"
    )
    root = RootHandle("/")
    try:
        null_fd: int | None = None
        try:
            for path in paths:
                null_fd = mask_path(root, path, null_fd)
        finally:
            if null_fd is not None:
                os.close(null_fd)
    finally:
        root.close()


def mask_path(root: RootHandle, path: str, null_fd: int | None) -> int | None:
    """Mask one path; returns the /dev/null fd (opened on first need)."""
    try:
        fd, resolved = root.resolve(path)
    except _MISSING:
        return null_fd
    except OSError as err:
        raise SetupError(f"mask path `{path}`: {describe_errno(err)}") from err
    try:
        target = root.target(fd, resolved)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            flags = syscalls.MS_RDONLY | syscalls.MS_NOSUID | syscalls.MS_NODEV
            flags |= syscalls.MS_NOEXEC
            syscalls.mount("tmpfs", target, "tmpfs", flags)
            return null_fd
        if null_fd is None:
            null_fd = open_dev_null(root)
        syscalls.mount(
            root.target(null_fd, "/dev/null"), target, None, syscalls.MS_BIND
        )
        return null_fd
    except OSError as err:
        raise SetupError(f"mask path `{path}`: {describe_errno(err)}") from err
    finally:
        os.close(fd)


def open_dev_null(root: RootHandle) -> int:
    """Open the container's /dev/null, refusing anything but char device 1:3."""
    try:
        fd = syscalls.openat2(
            root.fd,
            "dev/null",
            os.O_PATH | os.O_NOFOLLOW,
            syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_SYMLINKS,
        )
    except OSError as err:
        raise SetupError(
            f"mask paths: cannot open `/dev/null`: {describe_errno(err)}"
        ) from err
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != _NULL_RDEV:
        os.close(fd)
        raise SetupError(
            "mask paths: `/dev/null` is not the null device (char 1:3); "
            "refusing to bind it over masked paths"
        )
    return fd


def readonly_paths(paths: Sequence[str]) -> None:
    """Make each of ``paths`` read-only in the current root (after pivot_root)."""
    if not paths:
        return
    log.debug(
        "make " + ", ".join(paths) + " read-only: bound onto themselves, remounted ro"
    )
    root = RootHandle("/")
    try:
        for path in paths:
            readonly_path(root, path)
    finally:
        root.close()


def readonly_path(root: RootHandle, path: str) -> None:
    """Bind ``path`` onto itself (recursively) and remount the bind read-only."""
    try:
        fd, resolved = root.resolve(path)
    except _MISSING:
        return
    except OSError as err:
        raise SetupError(f"make `{path}` read-only: {describe_errno(err)}") from err
    try:
        target = root.target(fd, resolved)
        syscalls.mount(target, target, None, syscalls.MS_BIND | syscalls.MS_REC)
        remount_bind(root, resolved, syscalls.MS_RDONLY, 0)
    except OSError as err:
        raise SetupError(f"make `{path}` read-only: {describe_errno(err)}") from err
    finally:
        os.close(fd)
