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
:mod:`collections`). Only :mod:`.update` (the ``update`` command) uses :mod:`re` and
:mod:`json`.
"""

from __future__ import annotations

from pyruntime.cgroups.host import detect_mode, list_controllers
from pyruntime.cgroups.manager import Manager, load_manager, open_manager

__all__ = [
    "Manager",
    "detect_mode",
    "list_controllers",
    "load_manager",
    "open_manager",
]
