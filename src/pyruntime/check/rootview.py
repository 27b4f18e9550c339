"""The container's file system seen from the host, before the container exists.

:class:`RootView` answers "where will the container find ``/usr/bin/app``?":
in the rootfs (resolved with the runtime's own resolver, so symlinks stay
inside it), in the host directory of a bind mount, or on a filesystem that
does not exist yet (a tmpfs, a procfs...), whose content cannot be known.

:class:`Identity` answers "may this process read, write or search it?" with the
kernel's rules for the ids the process will have: the host ids it maps to
through ``linux.uidMappings``, and capabilities that count only over files
whose owner is mapped into its user namespace.
"""

from __future__ import annotations

import os
import posixpath
import stat

from pyruntime.records import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

READ, WRITE, SEARCH = os.R_OK, os.W_OK, os.X_OK
#: What an id outside every mapping looks like inside a user namespace.
OVERFLOW_ID = 65534


# --- ids ------------------------------------------------------------------------


def host_id(container_id: int, mappings) -> int | None:
    """The host id of ``container_id`` through ``mappings`` (None: unmapped)."""
    for m in mappings or ():
        if m.container_id <= container_id < m.container_id + m.size:
            return m.host_id + container_id - m.container_id
    return None


def is_mapped_host_id(host: int, mappings) -> bool:
    """Whether host id ``host`` has a name inside the user namespace."""
    return any(m.host_id <= host < m.host_id + m.size for m in mappings or ())


@dataclass(frozen=True)
class Identity:
    """Who does something: host ids, and whether it holds capabilities."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()
    #: uid 0 in its own user namespace: capabilities there.
    root: bool = True
    #: (uid_mappings, gid_mappings) of a new user namespace, else None.
    userns: tuple[Any, Any] | None = None

    def describe(self) -> str:
        """``host uid 100000`` or ``uid 1000`` for messages."""
        return f"host uid {self.uid}" if self.userns else f"uid {self.uid}"

    def capable_over(self, info: os.stat_result) -> bool:
        """Whether its capabilities override permissions on this inode."""
        if not self.root:
            return False
        if self.userns is None:
            return True
        uids, gids = self.userns
        return is_mapped_host_id(info.st_uid, uids) and is_mapped_host_id(
            info.st_gid, gids
        )

    def may(self, info: os.stat_result, want: int) -> bool:
        """The kernel's permission check for ``want`` (READ|WRITE|SEARCH)."""
        if self.capable_over(info):
            if want & SEARCH and not stat.S_ISDIR(info.st_mode):
                return bool(info.st_mode & 0o111)
            return True
        if info.st_uid == self.uid:
            bits = info.st_mode >> 6
        elif info.st_gid == self.gid or info.st_gid in self.groups:
            bits = info.st_mode >> 3
        else:
            bits = info.st_mode
        return bits & 7 & want == want


# --- the file system ------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where a container path leads: ``rootfs``, ``bind`` or ``mount``."""

    kind: str
    #: The host path (resolved in the rootfs), None on a new filesystem.
    host_path: str | None
    exists: bool
    #: The config mount it lies on (``bind`` and ``mount``).
    mount: Any = None


class RootView:
    """The rootfs plus the config's mounts, as the container will see them."""

    def __init__(self, rootfs: str, mounts, bundle: str) -> None:
        self.rootfs = rootfs
        self.mounts = tuple(mounts or ())
        self.bundle = bundle

    def covering_mount(self, path: str, before: int | None = None):
        """The config mount that holds ``path`` (among the first ``before``)."""
        path = clean(path)
        best, best_depth = None, -1
        for mount in self.mounts[:before]:
            destination = clean(mount.destination or "/")
            inside = path == destination or path.startswith(destination + "/")
            depth = destination.count("/") if destination != "/" else 0
            if inside and depth >= best_depth:
                best, best_depth = mount, depth
        return best

    def locate(self, path: str, before: int | None = None) -> Location:
        """Where ``path`` (absolute, in the container) is found."""
        path = clean(path)
        mount = self.covering_mount(path, before)
        if mount is None:
            return self.locate_in_rootfs(path)
        if not is_bind(mount):
            return Location("mount", None, True, mount)
        rest = posixpath.relpath(path, clean(mount.destination))
        source = bind_source_path(mount, self.bundle)
        host = os.path.normpath(os.path.join(source, rest))
        return Location("bind", host, os.path.lexists(host), mount)

    def locate_in_rootfs(self, path: str) -> Location:
        """Resolve ``path`` inside the rootfs, symlinks staying inside it."""
        from pyruntime.rootfs.paths import RootHandle

        root = RootHandle(self.rootfs)
        try:
            fd, resolved = root.resolve(path)
        except OSError:
            return Location("rootfs", self.host_path(path), False)
        finally:
            root.close()
        os.close(fd)
        return Location("rootfs", self.host_path(resolved), True)

    def host_path(self, path: str) -> str:
        """The rootfs path of container path ``path``, without resolving it."""
        return os.path.join(self.rootfs, clean(path).lstrip("/"))


def clean(path: str) -> str:
    """``path`` made absolute and normalised (``//a/./b/`` is ``/a/b``)."""
    normal = posixpath.normpath("/" + (path or ""))
    return "/" + normal.lstrip("/")


def is_bind(mount) -> bool:
    """Bind mounts are named by an option, or by type ``bind``."""
    options = mount.options or ()
    return mount.type == "bind" or "bind" in options or "rbind" in options


def bind_source_path(mount, bundle: str) -> str:
    """The host path a bind mount binds (relative sources: to the bundle)."""
    return os.path.normpath(os.path.join(bundle, mount.source or ""))


def deepest_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists on the host."""
    while not os.path.lexists(path) and path not in ("/", ""):
        path = os.path.dirname(path)
    return path or "/"


def blocked_on_the_way(path: str, who: Identity) -> str | None:
    """The first directory from ``/`` to ``path`` that ``who`` cannot search."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        try:
            info = os.stat(current)
        except OSError:
            return None
        if not who.may(info, SEARCH):
            return current
        current = os.path.join(current, part)
    return None


def may_create_in(host_path: str, who: Identity) -> tuple[bool, str]:
    """Whether ``who`` can create ``host_path``; and the directory that decides."""
    parent = deepest_existing(os.path.dirname(host_path))
    try:
        info = os.stat(parent)
    except OSError:
        return False, parent
    return who.may(info, WRITE | SEARCH), parent
