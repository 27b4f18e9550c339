"""The ``cgroup`` mount type: the cgroup filesystem as the container sees it.

Three layouts, chosen from what the caller knows and what the host has:

* ``cgroup_paths`` given (hierarchy directory name -> host directory, e.g.
  ``{"memory": "/sys/fs/cgroup/memory/mycontainer"}``): a tmpfs at the
  destination with each host directory bound below it, as runc does on v1;
* a pure cgroup v2 host: a new ``cgroup2`` mount (the container's view when it
  has a cgroup namespace);
* a v1 or hybrid host: a tmpfs holding one mount per host hierarchy, mounted
  afresh (again the namespace's view with a cgroup namespace), plus symlinks
  for co-mounted controllers (``cpu -> cpu,cpuacct``).

Where the kernel refuses a new cgroup mount (a user namespace without a cgroup
namespace), the host's hierarchy is bound recursively instead. The mount's
flags (``ro``, ``nosuid``...) apply to every piece, the tmpfs last.
"""

from __future__ import annotations

import os

from pyruntime.linux import syscalls
from pyruntime.records import dataclass, replace
from pyruntime.rootfs.binds import bind_onto, remount_bind
from pyruntime.rootfs.options import BIND_REMOUNT_FLAGS, MountOptions
from pyruntime.rootfs.paths import RootHandle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CGROUP_ROOT = "/sys/fs/cgroup"

# Mount options of a v1 hierarchy that do not select it: left out when
# mounting it again, since the hierarchy is found by controllers and name.
_GENERIC_CGROUP_OPTIONS = frozenset(
    {"rw", "ro", "xattr", "clone_children", "noprefix", "cpuset_v2_mode"}
)
_TMPFS_FLAGS = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC


@dataclass(frozen=True)
class HostCgroupMount:
    """One cgroup filesystem mounted on the host, from mountinfo."""

    mountpoint: str
    fstype: str
    super_options: tuple[str, ...]

    @property
    def selector(self) -> str | None:
        """Data naming this v1 hierarchy (``cpu``, ``name=systemd``), else None."""
        if self.fstype != "cgroup":
            return None
        chosen = [
            option
            for option in self.super_options
            if option not in _GENERIC_CGROUP_OPTIONS
            and not option.startswith("release_agent=")
        ]
        return ",".join(chosen)


_OCTAL = frozenset("01234567")


def unescape_mountinfo(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` is a space)."""
    if "\\" not in field:
        return field
    out, index = [], 0
    while index < len(field):
        code = field[index + 1 : index + 4]
        if field[index] == "\\" and len(code) == 3 and _OCTAL.issuperset(code):
            out.append(chr(int(code, 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def parse_cgroup_mounts(mountinfo: str) -> list[HostCgroupMount]:
    """Every cgroup and cgroup2 mount in a ``/proc/<pid>/mountinfo`` text."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        fstype = fields[dash + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        super_options = (
            tuple(fields[dash + 3].split(",")) if len(fields) > dash + 3 else ()
        )
        found.append(
            HostCgroupMount(unescape_mountinfo(fields[4]), fstype, super_options)
        )
    return found


def read_host_cgroup_mounts() -> list[HostCgroupMount]:
    """Cgroup mounts of the current mount namespace (a copy of the host's)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return parse_cgroup_mounts(f.read())


def mount_cgroupfs(context: Any, fd: int, resolved: str, options: MountOptions) -> None:
    """Mount the cgroup filesystem on ``fd`` (destination ``resolved``)."""
    root: RootHandle = context.root
    if context.cgroup_paths is not None:
        mount_cgroup_binds(root, fd, resolved, context.cgroup_paths, options)
        return
    host = read_host_cgroup_mounts()
    for entry in host:
        if entry.mountpoint == CGROUP_ROOT and entry.fstype == "cgroup2":
            mount_hierarchy(root, fd, resolved, entry, options)
            return
    children = [
        entry for entry in host if os.path.dirname(entry.mountpoint) == CGROUP_ROOT
    ]
    mount_cgroup_tree(root, fd, resolved, children, options)


def mount_hierarchy(
    root: RootHandle,
    fd: int,
    resolved: str,
    entry: HostCgroupMount,
    options: MountOptions,
) -> None:
    """Mount one hierarchy afresh, or bind the host's when that is refused."""
    flags = options.flags & BIND_REMOUNT_FLAGS
    target = root.target(fd, resolved)
    try:
        syscalls.mount(entry.fstype, target, entry.fstype, flags, entry.selector)
    except PermissionError:
        fallback = replace(options, bind=True, recursive_bind=True)
        bind_onto(root, fd, resolved, entry.mountpoint, fallback)


def mount_cgroup_tree(
    root: RootHandle,
    fd: int,
    resolved: str,
    children: list[HostCgroupMount],
    options: MountOptions,
) -> None:
    """A tmpfs at ``resolved`` holding every v1 (and hybrid v2) hierarchy."""
    mount_cgroup_tmpfs(root, fd, resolved)
    for entry in children:
        name = os.path.basename(entry.mountpoint)
        sub_fd, sub = root.resolve(f"{resolved}/{name}", create="dir")
        try:
            mount_hierarchy(root, sub_fd, sub, entry, options)
        finally:
            os.close(sub_fd)
        link_comounted(root, resolved, name)
    finish_cgroup_tmpfs(root, resolved, options)


def mount_cgroup_binds(
    root: RootHandle,
    fd: int,
    resolved: str,
    cgroup_paths: dict[str, str],
    options: MountOptions,
) -> None:
    """A tmpfs at ``resolved`` with each given host cgroup directory bound below."""
    mount_cgroup_tmpfs(root, fd, resolved)
    bind_options = replace(options, bind=True, recursive_bind=True)
    for name, host_dir in sorted(cgroup_paths.items()):
        sub_fd, sub = root.resolve(f"{resolved}/{name}", create="dir")
        try:
            bind_onto(root, sub_fd, sub, host_dir, bind_options)
        finally:
            os.close(sub_fd)
        link_comounted(root, resolved, name)
    finish_cgroup_tmpfs(root, resolved, options)


def mount_cgroup_tmpfs(root: RootHandle, fd: int, resolved: str) -> None:
    """The tmpfs that holds the hierarchies (kept writable until they are in)."""
    target = root.target(fd, resolved)
    syscalls.mount("tmpfs", target, "tmpfs", _TMPFS_FLAGS, "mode=755")


def finish_cgroup_tmpfs(root: RootHandle, resolved: str, options: MountOptions) -> None:
    """Apply the mount's flags to the tmpfs, now that nothing more goes in it."""
    if options.flags & BIND_REMOUNT_FLAGS:
        remount_bind(root, resolved, options.flags, options.clear_flags)


def link_comounted(root: RootHandle, resolved: str, name: str) -> None:
    """``cpu -> cpu,cpuacct`` style symlinks for co-mounted controllers."""
    parts = [part for part in name.split(",") if part != name]
    if not parts:
        return
    dir_fd = root.reopen(resolved)
    try:
        for part in parts:
            try:
                os.symlink(name, part, dir_fd=dir_fd)
            except FileExistsError:
                pass
    finally:
        os.close(dir_fd)
