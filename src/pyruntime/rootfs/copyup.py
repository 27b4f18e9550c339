"""The ``tmpcopyup`` mount option: a tmpfs that starts with the image's files.

The directory the tmpfs will cover is opened first; once the tmpfs is mounted
that fd still reaches the covered files, which are copied into the new mount
through directory fds only (never following a symlink of the image), keeping
modes and owners. Symlinks are copied as symlinks, device nodes and fifos are
recreated; hard links become separate copies. A read-only tmpfs is made
read-only after the copy.
"""

from __future__ import annotations

import os
import stat

from pyruntime.linux import syscalls
from pyruntime.rootfs.binds import remount_bind
from pyruntime.rootfs.options import MountOptions
from pyruntime.rootfs.paths import RootHandle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_READ_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


def mount_tmpfs_copyup(
    root: RootHandle, fd: int, resolved: str, mount: Any, options: MountOptions
) -> None:
    """Mount a tmpfs on ``fd`` holding a copy of what it covers."""
    covered = root.reopen(resolved, _READ_DIR)
    try:
        writable = options.flags & ~syscalls.MS_RDONLY
        target = root.target(fd, resolved)
        syscalls.mount(
            mount.source or "tmpfs", target, "tmpfs", writable, options.data or None
        )
        fresh = root.reopen(resolved, _READ_DIR)
        try:
            copy_tree(covered, fresh)
        finally:
            os.close(fresh)
    finally:
        os.close(covered)
    if options.flags & syscalls.MS_RDONLY:
        remount_bind(root, resolved, options.flags, options.clear_flags)


def copy_tree(src_dir: int, dst_dir: int) -> None:
    """Copy the contents of directory fd ``src_dir`` into ``dst_dir``."""
    with os.scandir(src_dir) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
        copy_entry(src_dir, dst_dir, name, st)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)


def copy_entry(src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
    """Copy one directory entry, by its type."""
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(name, 0o700, dir_fd=dst_dir)
        copy_subdir(src_dir, dst_dir, name)
        os.chmod(name, mode, dir_fd=dst_dir)
    elif stat.S_ISREG(st.st_mode):
        copy_file(src_dir, dst_dir, name, mode)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
    else:
        os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst_dir)
        os.chmod(name, mode, dir_fd=dst_dir)


def copy_subdir(src_dir: int, dst_dir: int, name: str) -> None:
    """Recurse into directory ``name`` on both sides."""
    src = os.open(name, _READ_DIR, dir_fd=src_dir)
    try:
        dst = os.open(name, _READ_DIR, dir_fd=dst_dir)
        try:
            copy_tree(src, dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def copy_file(src_dir: int, dst_dir: int, name: str, mode: int) -> None:
    """Copy a regular file's bytes and mode."""
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(name, flags, 0o600, dir_fd=dst_dir)
        try:
            while chunk := os.read(src, _CHUNK):
                write_all(dst, chunk)
            os.fchmod(dst, mode)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
