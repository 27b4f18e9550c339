"""What cgroup layout this host offers: the mode and the mounted hierarchies.

Three layouts exist in the wild:

- ``v1``: only cgroup v1 hierarchies (``/sys/fs/cgroup/<controller>``);
- ``hybrid``: v1 hierarchies for the controllers plus a cgroup2 mount (usually
  ``/sys/fs/cgroup/unified``) that holds whatever controllers v1 did not take;
- ``v2``: one cgroup2 hierarchy at ``/sys/fs/cgroup`` with every controller.

Everything here is read from ``/proc/self/mountinfo`` (and the cgroup2 root's
``cgroup.controllers``), once per process. The parsing is pure so that tests
can feed it any mount table.
"""

from __future__ import annotations

from pyruntime.records import dataclass

#: The v1 controllers a container cgroup is placed in when they are mounted.
V1_CONTROLLERS = (
    "cpuset",
    "cpu",
    "cpuacct",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
)
#: Named v1 hierarchies we place the container in (key used in ``paths()``).
V1_NAMED = {"name=systemd": "systemd"}
#: Key of the cgroup2 hierarchy in ``paths()``, in hybrid and v2 mode alike.
UNIFIED = "unified"
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Mount:
    """One cgroup filesystem mount: where, which version, which controllers."""

    mountpoint: str
    version: int
    #: Keys this hierarchy serves: v1 controller names, ``systemd``, or
    #: ``unified`` for the cgroup2 mount.
    keys: tuple[str, ...]
    readonly: bool = False


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Return the cgroup mounts listed in a ``/proc/<pid>/mountinfo`` text.

    Only mounts of a hierarchy's root (mountinfo field 4 is ``/``) count: a
    bind mount of a sub-cgroup (as seen inside containers) cannot hold ours.
    When a hierarchy is mounted twice, the one under ``/sys/fs/cgroup`` wins.
    """
    found: dict[tuple[int, tuple[str, ...]], Mount] = {}
    for line in text.splitlines():
        mount = _parse_mount_line(line)
        if mount is None:
            continue
        ident = (mount.version, mount.keys)
        previous = found.get(ident)
        if previous is None or (
            not previous.mountpoint.startswith(CGROUP_ROOT)
            and mount.mountpoint.startswith(CGROUP_ROOT)
        ):
            found[ident] = mount
    return list(found.values())


def _parse_mount_line(line: str) -> Mount | None:
    left, sep, right = line.partition(" - ")
    if not sep:
        return None
    fields, tail = left.split(), right.split()
    if len(fields) < 6 or len(tail) < 3 or fields[3] != "/":
        return None
    fstype, super_options = tail[0], tail[2].split(",")
    readonly = "ro" in fields[5].split(",") or "ro" in super_options
    mountpoint = _unescape(fields[4])
    if fstype == "cgroup2":
        return Mount(mountpoint, 2, (UNIFIED,), readonly)
    if fstype != "cgroup":
        return None
    keys = [opt for opt in super_options if opt in V1_CONTROLLERS]
    keys += [V1_NAMED[opt] for opt in super_options if opt in V1_NAMED]
    if not keys:
        return None
    return Mount(mountpoint, 1, tuple(keys), readonly)


def mode_of(mounts: list[Mount]) -> str:
    """Return ``v1``, ``hybrid`` or ``v2`` for a list of cgroup mounts.

    A v1 hierarchy counts only if it carries a real controller: a lone
    ``name=systemd`` next to a full cgroup2 does not make a host hybrid.
    """
    has_v1 = any(
        m.version == 1 and any(k in V1_CONTROLLERS for k in m.keys) for m in mounts
    )
    has_v2 = any(m.version == 2 for m in mounts)
    if has_v1:
        return "hybrid" if has_v2 else "v1"
    if has_v2:
        return "v2"
    from pyruntime.errors import UnsupportedError

    raise UnsupportedError("detect cgroup mode: no cgroup filesystem is mounted")


def hierarchies_of(mounts: list[Mount]) -> dict[str, str]:
    """Map every key a container cgroup goes in to its hierarchy's mount point.

    Read-only mounts are left out (we could not create cgroups there). On a
    v2 host the v1 named hierarchies are left out too: there is nothing to
    put in them.
    """
    mode = mode_of(mounts)
    result: dict[str, str] = {}
    for mount in mounts:
        if mount.readonly or (mode == "v2" and mount.version == 1):
            continue
        for key in mount.keys:
            result.setdefault(key, mount.mountpoint)
    return result


#: This process's cgroup mounts, once ``read_mounts`` has read them.
_mounts: tuple[Mount, ...] | None = None


def read_mounts() -> tuple[Mount, ...]:
    """Return this process's cgroup mounts (read once, then cached)."""
    global _mounts
    if _mounts is None:
        path = "/proc/self/mountinfo"
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            _mounts = tuple(parse_mountinfo(f.read()))
    return _mounts


def detect_mode() -> str:
    """Return this host's cgroup layout: ``v1``, ``hybrid`` or ``v2``."""
    return mode_of(list(read_mounts()))


def mounted_hierarchies() -> dict[str, str]:
    """Return ``{key: mount point}`` for every hierarchy a container goes in."""
    return hierarchies_of(list(read_mounts()))


def list_controllers() -> list[str]:
    """Return the controllers a container can use here, sorted.

    v1 controllers that are mounted, plus those the cgroup2 root offers in
    its ``cgroup.controllers`` (in hybrid mode only what v1 left over).
    """
    hierarchies = mounted_hierarchies()
    names = {key for key in hierarchies if key in V1_CONTROLLERS}
    unified = hierarchies.get(UNIFIED)
    if unified is not None:
        try:
            with open(f"{unified}/cgroup.controllers", encoding="utf-8") as f:
                names.update(f.read().split())
        except OSError:
            pass
    return sorted(names)
