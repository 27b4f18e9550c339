"""What pyruntime would do with a bundle's cgroup settings on this host.

Shared by ``check`` and ``explain``: the container's cgroup directories (from
``linux.cgroupsPath`` and the mounted hierarchies) and the ordered file writes
that :mod:`pyruntime.cgroups.writes` plans for this host's layout, with the
device rules completed as :meth:`~pyruntime.cgroups.manager.Manager.apply`
completes them. Only the mount table is read; nothing is created.
"""

from __future__ import annotations

from pyruntime.check.context import dig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The id used for paths when none is given (``explain --id`` sets one).
PLACEHOLDER_ID = "<id>"


def open_layout(spec, container_id: str = PLACEHOLDER_ID, systemd: bool = False):
    """The manager of a new container (pure: nothing made); RuntimeError_."""
    from pyruntime.cgroups import open_manager

    return open_manager(
        dig(spec, "linux", "cgroups_path"), container_id, systemd=systemd
    )


def mounted_hierarchies() -> dict[str, str]:
    """``{hierarchy key: mount point}`` on this host."""
    from pyruntime.cgroups.host import mounted_hierarchies as hierarchies

    return hierarchies()


def effective_resources(spec) -> dict[str, Any]:
    """``linux.resources`` with the device rules the container really gets.

    As ``create`` passes them: the ``linux.devices`` nodes are allowed too.
    """
    from pyruntime.cgroups.devices import with_effective_devices

    linux = (spec.raw or {}).get("linux") or {}
    resources = linux.get("resources")
    nodes = linux.get("devices")
    return with_effective_devices(
        resources if isinstance(resources, dict) else None,
        nodes if isinstance(nodes, list) else None,
    )


def plan_writes(manager, resources: dict[str, Any]):
    """The writes for the manager's layout; ConfigError or UnsupportedError."""
    from pyruntime.cgroups import writes

    if manager.mode == "v2":
        return writes.plan_v2(resources)
    if manager.mode == "v1":
        return writes.plan_v1(resources)
    return writes.plan_hybrid(resources, set(manager.paths()))
