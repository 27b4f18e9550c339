"""Resolving paths inside the container's rootfs without ever leaving it.

The rootfs belongs to the image, so any of its components may be a symlink
placed there to redirect a mount to the host (``etc -> /``, ``evil -> ../..``;
the CVE-2021-30465 class). Every path pyruntime mounts on, creates or masks is
therefore resolved here, one component at a time:

* each component is opened with openat2(2) relative to an O_PATH fd of the
  root, with ``RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS`` and ``O_NOFOLLOW``, so the
  kernel refuses to cross a symlink that appeared behind our back and can never
  walk above the root;
* a symlink found on the way is read and its target spliced into the path still
  to walk, interpreted relative to the root (``/`` is the rootfs, ``..`` stops
  at it), exactly as if the rootfs were ``/``;
* missing components are created with mkdirat/openat on the parent's fd, which
  never follow a symlink.

The result is an O_PATH fd, whose ``/proc/self/fd/N`` name is what gets passed
to mount(2), after checking that the kernel's own name for the fd lies inside
the rootfs and that ``/proc/self/fd`` really is procfs.
"""

from __future__ import annotations

import errno
import os
import stat

from pyruntime.errors import SetupError
from pyruntime.linux import syscalls

_MAX_SYMLINKS = 40
_RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_SYMLINKS
_DIR_MODE = 0o755
_FILE_MODE = 0o644


def open_root(path: str) -> int:
    """Open ``path`` (a trusted host path) as the O_PATH root of resolutions."""
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def proc_fd_path(fd: int) -> str:
    """Name of ``fd`` for system calls that only take paths (mount(2))."""
    return f"/proc/self/fd/{fd}"


def fd_real_path(fd: int) -> str:
    """The kernel's name for what ``fd`` refers to."""
    return os.readlink(proc_fd_path(fd))


def split_path(path: str) -> list[str]:
    """Components of ``path``, without empty ones and ``.``."""
    return [part for part in path.split("/") if part not in ("", ".")]


def join_components(parts: list[str]) -> str:
    """``/a/b`` for ``["a", "b"]``; ``/`` for none."""
    return "/" + "/".join(parts)


def make_oserror(code: int, path: str) -> OSError:
    """An OSError (of the matching subclass) for errno ``code`` on ``path``."""
    return OSError(code, os.strerror(code), path)


def open_component(root_fd: int, parts: list[str], flags: int = os.O_PATH) -> int:
    """Open the symlink-free path ``parts`` below the root, without following.

    The kernel fails with ELOOP if a component became a symlink meanwhile.
    """
    relative = "/".join(parts) or "."
    return syscalls.openat2(root_fd, relative, flags | os.O_NOFOLLOW, _RESOLVE)


def create_component(parent_fd: int, name: str, as_file: bool) -> None:
    """Create ``name`` in the directory ``parent_fd``; an existing one is fine."""
    try:
        if as_file:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, flags, _FILE_MODE, dir_fd=parent_fd))
        else:
            os.mkdir(name, _DIR_MODE, dir_fd=parent_fd)
    except FileExistsError:
        pass


def resolve_in_root(
    root_fd: int, path: str, *, create: str | None = None
) -> tuple[int, str]:
    """Open ``path`` as if ``root_fd`` were ``/``; following symlinks inside it.

    ``create`` is None (fail with FileNotFoundError when missing), ``"dir"`` or
    ``"file"`` (the kind of the last component; the ones before it are always
    directories). Returns an O_PATH fd and the resolved, symlink-free path
    relative to the root (``/a/b``). The caller closes the fd.
    """
    todo = split_path(path)
    done: list[str] = []
    links = 0
    created: set[str] = set()
    while todo:
        name = todo.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        try:
            fd = open_component(root_fd, [*done, name])
        except FileNotFoundError:
            here = join_components([*done, name])
            if create is None or here in created:
                # Created once already and still missing: something races us.
                raise
            created.add(here)
            parent_fd = open_component(root_fd, done)
            try:
                create_component(parent_fd, name, create == "file" and not todo)
            finally:
                os.close(parent_fd)
            todo.insert(0, name)
            continue
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise make_oserror(errno.ELOOP, path)
                target = os.readlink("", dir_fd=fd)
                if target.startswith("/"):
                    done = []
                todo = split_path(target) + todo
                continue
            if todo and not stat.S_ISDIR(mode):
                raise make_oserror(errno.ENOTDIR, path)
        finally:
            os.close(fd)
        done.append(name)
    return open_final(root_fd, done), join_components(done)


def open_final(root_fd: int, parts: list[str], flags: int = os.O_PATH) -> int:
    """Like :func:`open_component`, refusing a symlink as the last component.

    The resolver follows symlinks itself, so one here was swapped in after
    the check: fail rather than hand out an fd naming a symlink.
    """
    fd = open_component(root_fd, parts, flags)
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise make_oserror(errno.ELOOP, join_components(parts))
    return fd


def reopen_in_root(root_fd: int, resolved: str, flags: int = os.O_PATH) -> int:
    """Open again a path :func:`resolve_in_root` returned.

    Needed after mounting on it: the old fd still names the covered directory,
    a new lookup lands on the mount just made.
    """
    return open_final(root_fd, split_path(resolved), flags)


def check_inside(fd: int, root_real: str, shown: str) -> None:
    """Refuse ``fd`` unless the kernel places it at or below ``root_real``."""
    real = fd_real_path(fd)
    prefix = root_real.rstrip("/") + "/"
    if real != root_real and not real.startswith(prefix):
        raise SetupError(f"path `{shown}` escapes the rootfs `{root_real}`")


def check_proc_fd_usable(fd: int) -> None:
    """Check that ``/proc/self/fd/<fd>`` is procfs's magic link to ``fd``.

    After pivot_root, /proc is whatever the container has there; a plain
    directory planted in the image must not be able to redirect a mount.
    """
    path = proc_fd_path(fd)
    try:
        proc_fd = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            is_proc = syscalls.fstatfs_type(proc_fd) == syscalls.PROC_SUPER_MAGIC
        finally:
            os.close(proc_fd)
        named, actual = os.stat(path), os.fstat(fd)
    except OSError as err:
        raise SetupError(f"use `{path}`: procfs is not usable: {err}") from err
    same = (named.st_dev, named.st_ino) == (actual.st_dev, actual.st_ino)
    if not is_proc or not same:
        raise SetupError(f"use `{path}`: /proc is not a real procfs")


def mount_target(fd: int, root_real: str, shown: str) -> str:
    """Checked ``/proc/self/fd/N`` name of ``fd`` to pass to mount(2)."""
    check_inside(fd, root_real, shown)
    check_proc_fd_usable(fd)
    return proc_fd_path(fd)


class RootHandle:
    """The rootfs as an open directory: resolves, creates and names paths in it.

    ``shown`` is the host path used in error messages. Close it when done.
    """

    def __init__(self, path: str) -> None:
        self.shown = path
        self.fd = open_root(path)
        self.real = fd_real_path(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def resolve(self, path: str, *, create: str | None = None) -> tuple[int, str]:
        """:func:`resolve_in_root` below this root; the fd is checked inside."""
        fd, resolved = resolve_in_root(self.fd, path, create=create)
        try:
            check_inside(fd, self.real, path)
        except BaseException:
            os.close(fd)
            raise
        return fd, resolved

    def reopen(self, resolved: str, flags: int = os.O_PATH) -> int:
        """:func:`reopen_in_root` below this root; the fd is checked inside."""
        fd = reopen_in_root(self.fd, resolved, flags)
        try:
            check_inside(fd, self.real, resolved)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def target(self, fd: int, shown: str) -> str:
        """Checked ``/proc/self/fd/N`` name of ``fd`` for mount(2)."""
        return mount_target(fd, self.real, shown)
