"""Container cgroups on cgroup v1, hybrid and v2 hosts (cgroupfs driver).

The public face of the package::

    mgr = open_manager(cgroups_path, container_id)   # new container
    mgr.create(); mgr.apply(resources); mgr.add_process(pid)
    saved = mgr.paths()                               # keep in state.json
    mgr = load_manager(saved)                         # later commands

Modules: :mod:`.host` (which layout, which hierarchies), :mod:`.paths`
(cgroupsPath → directories), :mod:`.writes` (resources → file writes, pure),
:mod:`.devices` (the device allow list), :mod:`.ebpf` (the cgroup v2 device
filter program), :mod:`.files` (cgroupfs I/O), :mod:`.v1` and :mod:`.v2`
(version specifics), :mod:`.stats` (runc's stats document), :mod:`.oom`
(OOM notifications), :mod:`.update` (``update``'s flags and merging, pure),
:mod:`.manager` (the manager).

``create``, ``run`` and ``exec`` import this package: making the cgroup,
planning and writing its limits need none of :mod:`typing`, :mod:`re`,
:mod:`functools` or :mod:`signal` (whose enums pull in :mod:`enum` and
:mod:`collections`). Only :mod:`.update` (the ``update`` command) uses
:mod:`re` and :mod:`json`.

The names below are loaded on first use: ``check`` reads the host's
hierarchies through :mod:`.host` and never needs the manager (nor the
eBPF code, which loads :mod:`ctypes`).
"""

from __future__ import annotations

_EXPORTS = {
    "Manager": "manager",
    "load_manager": "manager",
    "open_manager": "manager",
    "detect_mode": "host",
    "list_controllers": "host",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load ``open_manager`` and the others from their module when first asked."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module == "manager":
        from pyruntime.cgroups import manager as source
    else:
        from pyruntime.cgroups import host as source
    value = getattr(source, name)
    globals()[name] = value
    return value
