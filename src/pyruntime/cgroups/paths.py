"""Where a container's cgroup lives: ``linux.cgroupsPath`` + id → directories.

Rules (cgroupfs driver only; the systemd driver is refused):

- no ``cgroupsPath``: ``/pyruntime/<id>``. runc uses ``/<id>``, but an id is
  unique only within one ``--root``; two runtimes (or two roots) could then
  fight over one directory. The ``pyruntime`` parent keeps our cgroups apart
  from everybody else's and makes them easy to find.
- an absolute path ``/a/b`` names ``<hierarchy mount>/a/b`` in every hierarchy.
- a relative path ``a/b`` is taken as relative to the hierarchy root too, so
  it means the same as ``/a/b``. runc resolves it against the cgroup of
  PID 1 instead; on the hosts we run on (PID 1 in the root cgroup) that is
  the same place, and our reading does not depend on who PID 1 is.
- ``..`` cannot climb above the hierarchy root (the path is cleaned as if it
  were rooted at ``/``), and the root cgroup itself is refused: a container
  needs a cgroup of its own.

A systemd-style ``slice:prefix:name`` given *without* ``--systemd-cgroup`` is
taken literally, as runc's cgroupfs driver does (one directory of that name).
"""

from __future__ import annotations

import posixpath

from pyruntime.errors import ConfigError, InvalidIdError, UnsupportedError

DEFAULT_PARENT = "/pyruntime"


def resolve_inner_path(
    cgroups_path: str | None, container_id: str, *, systemd: bool = False
) -> str:
    """Return the cleaned cgroup path inside each hierarchy (starts with ``/``)."""
    if systemd:
        raise UnsupportedError(
            "systemd cgroup driver is not supported: "
            f"cannot place `{cgroups_path or container_id}` through systemd "
            "(use the cgroupfs driver, without --systemd-cgroup)"
        )
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidIdError(f"invalid container id `{container_id}`")
        return f"{DEFAULT_PARENT}/{container_id}"
    inner = posixpath.normpath("/" + cgroups_path)
    # normpath keeps a leading "//" (POSIX allows it a meaning); we do not.
    inner = "/" + inner.lstrip("/")
    if inner == "/":
        raise ConfigError(
            [f"linux.cgroupsPath: `{cgroups_path}` names the root cgroup"]
        )
    return inner


def join_hierarchies(inner: str, hierarchies: dict[str, str]) -> dict[str, str]:
    """Return ``{key: <mount point><inner>}`` for every hierarchy."""
    return {
        key: posixpath.join(mount, inner.lstrip("/"))
        for key, mount in sorted(hierarchies.items())
    }


def missing_ancestors(directory: str, mountpoint: str) -> list[str]:
    """Return the directories from just below ``mountpoint`` down to ``directory``.

    Pure: lists every level, the caller decides which ones exist.
    """
    rel = posixpath.relpath(directory, mountpoint)
    if rel.startswith(".."):
        raise ValueError(f"{directory} is not under {mountpoint}")
    levels, current = [], mountpoint
    for part in rel.split("/"):
        if part in ("", "."):
            continue
        current = posixpath.join(current, part)
        levels.append(current)
    return levels
