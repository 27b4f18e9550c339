"""The cgroup manager: one container's cgroup in every hierarchy of the host.

One class serves the three layouts; what it holds decides what it does:

- ``paths()`` maps each hierarchy key to the container's directory in it:
  v1 controller names (``memory``, ``cpu``, ..., ``systemd`` for the
  ``name=systemd`` hierarchy) and ``unified`` for the cgroup2 hierarchy.
  Pure v2 has only ``unified``; hybrid has both kinds.
- resources are planned by :mod:`pyruntime.cgroups.writes` for that layout,
  then checked (every file must exist) before anything is written, so an
  unsupported field fails before the cgroup is half-configured.
- device rules get the default allow list appended (:mod:`.devices`); on
  v1 they are ``devices.allow``/``deny`` writes, on pure v2 an eBPF program
  attached to the cgroup (:mod:`.ebpf`).
- freezing uses the v1 freezer when mounted, else ``cgroup.freeze``.
- SIGKILL uses ``cgroup.kill`` when the container is in a cgroup2 hierarchy
  offering it (v2, and hybrid: the process is placed there too).

Ownership: ``create`` records the directories it made (the container's and
any missing parents) and ``destroy`` removes only those (plus whatever the
container created below its own cgroup). A manager rebuilt by
:func:`load_manager` from saved ``paths()`` does not know about parents: it
treats the container's own directories as created by us, unless the caller
saved ``created_dirs()`` and passes them back. Shared parents such as
``/pyruntime`` are removed only when empty.
"""

from __future__ import annotations

import errno
import os
import time

from pyruntime import log
from pyruntime.cgroups import devices, host, paths, v1, v2, writes
from pyruntime.cgroups.files import (
    add_to_cgroup,
    list_subtree,
    read_keyed,
    read_procs,
    write_file,
    write_raw,
)
from pyruntime.errors import (
    SetupError,
    StateCorruptError,
    UnsupportedError,
    describe_oserror,
)
from pyruntime.linux.signals import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

UNIFIED = host.UNIFIED
#: Where ``pids()`` and the signal fallback look first.
PROCESS_LISTING_ORDER = ("freezer", "pids", "memory", "cpu", "devices", UNIFIED)
RMDIR_ATTEMPTS = 8


class Manager:
    """The container's cgroups: create, configure, enter, freeze, kill, remove."""

    def __init__(
        self,
        dirs: dict[str, str],
        created: list[str] | None = None,
        mounts: dict[str, str] | None = None,
    ) -> None:
        """Hold ``dirs`` (key → directory) and ``mounts`` (key → mount point).

        ``mounts`` defaults to this host's hierarchies, read when needed.
        """
        self._dirs = dict(dirs)
        self._created: list[str] = list(created or [])
        self._mounts = dict(mounts) if mounts is not None else None

    # ---------------------------------------------------------------- layout

    def paths(self) -> dict[str, str]:
        """Return ``{hierarchy key: directory}`` (JSON-able, for load_manager)."""
        return dict(self._dirs)

    def created_dirs(self) -> list[str]:
        """Return the directories ``create`` made, parents first."""
        return list(self._created)

    @property
    def mode(self) -> str:
        """Return ``v1``, ``hybrid`` or ``v2`` as seen from the hierarchies held."""
        has_v1 = any(key != UNIFIED for key in self._dirs)
        if UNIFIED in self._dirs:
            return "hybrid" if has_v1 else "v2"
        return "v1"

    def _unique_dirs(self) -> list[tuple[str, str]]:
        # Co-mounted controllers (cpu,cpuacct) share one directory.
        seen, result = set(), []
        for key, directory in sorted(self._dirs.items()):
            if directory not in seen:
                seen.add(directory)
                result.append((key, directory))
        return result

    def exists(self) -> bool:
        """Tell whether the container's cgroup exists in any hierarchy."""
        return any(os.path.isdir(d) for d in self._dirs.values())

    # ---------------------------------------------------------------- create

    def create(self) -> None:
        """Make the container's cgroup in every hierarchy (parents as needed)."""
        mounts = self._mounts
        if mounts is None:
            mounts = host.mounted_hierarchies()
        for key, directory in self._unique_dirs():
            mountpoint = mounts.get(key) or os.path.dirname(directory)
            self._make_dirs(directory, mountpoint)
        cpuset = self._dirs.get("cpuset")
        if cpuset is not None:
            self._seed_cpusets(cpuset, mounts.get("cpuset"))
        unified = self._dirs.get(UNIFIED)
        if unified is not None and UNIFIED in mounts:
            v2.enable_controllers(mounts[UNIFIED], unified)

    def _make_dirs(self, directory: str, mountpoint: str) -> None:
        # A concurrent destroy may remove a shared parent between two mkdirs
        # (ENOENT): start the walk again.
        for attempt in range(3):
            try:
                for level in paths.missing_ancestors(directory, mountpoint):
                    self._make_dir(level)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise SetupError(
                        f"create cgroup `{directory}`: a parent keeps disappearing"
                    ) from None

    def _make_dir(self, level: str) -> None:
        try:
            os.mkdir(level, 0o755)
        except FileExistsError:
            return
        except FileNotFoundError:
            raise
        except OSError as err:
            raise SetupError(
                f"create cgroup `{level}`: {describe_oserror(err)}"
            ) from err
        if level not in self._created:
            self._created.append(level)

    def _seed_cpusets(self, directory: str, mountpoint: str | None) -> None:
        # Every level, top down, as runc does: a parallel create may have made
        # a shared parent and not yet filled it in. Only empty files are
        # written, and an empty cpuset cannot hold a task anyway.
        levels = paths.missing_ancestors(directory, mountpoint or "/")
        for level in levels:
            v1.seed_cpuset(level)

    # ----------------------------------------------------------------- apply

    def apply(
        self,
        resources: dict[str, Any] | None,
        *,
        linux_devices: list[dict[str, Any]] | None = None,
        skip_devices: bool = False,
    ) -> None:
        """Enforce OCI ``linux.resources`` (camelCase dict) on the cgroup.

        Device rules get the default allow list and ``linux_devices`` (the
        spec's ``linux.devices`` nodes) appended, see :mod:`.devices`;
        ``skip_devices`` leaves the device rules alone (``update``).

        Raises UnsupportedError naming the file when the host lacks it, and
        SetupError when the kernel refuses a value.
        """
        resources = devices.with_effective_devices(
            resources, linux_devices, skip=skip_devices
        )
        plan = self._plan(resources)
        resolved = [item for w in plan.writes if (item := self._resolve(w))]
        for warning in plan.warnings:
            log.warning(warning)
        if plan.check_memory_limit is not None and UNIFIED in self._dirs:
            v2.check_memory_usage(self._dirs[UNIFIED], plan.check_memory_limit)
        self._write_all(resolved)
        if plan.device_rules:
            self._install_device_filter(plan.device_rules)

    def _install_device_filter(self, rules: list[devices.Rule]) -> None:
        unified = self._dirs.get(UNIFIED)
        if unified is None:
            raise UnsupportedError(
                "cannot apply linux.resources.devices: no cgroup v2 hierarchy "
                "to attach the device filter to"
            )
        from pyruntime.cgroups import ebpf  # ctypes and BPF: pure v2 only

        ebpf.install_device_filter(unified, rules)

    def _plan(self, resources: dict[str, Any] | None) -> writes.Plan:
        mode = self.mode
        if mode == "v2":
            return writes.plan_v2(resources)
        if mode == "v1":
            return writes.plan_v1(resources)
        return writes.plan_hybrid(resources, set(self._dirs))

    def _resolve(self, w: writes.Write) -> tuple[str, str, writes.Write] | None:
        directory = self._dirs.get(w.hierarchy)
        if directory is None:
            if w.optional:
                return None
            raise self._unsupported(w, self._absent_hierarchy_reason(w))
        for filename, value in ((w.filename, w.value), *w.alternatives):
            path = os.path.join(directory, filename)
            if os.path.exists(path):
                return (path, value, w)
        if w.optional:
            return None
        if w.hierarchy == UNIFIED:
            mounts = self._mounts
            if mounts is None:
                mounts = host.mounted_hierarchies()
            reason = v2.missing_reason(
                directory,
                w.controller,
                w.filename,
                root=mounts.get(UNIFIED),
                v1_names=frozenset(k for k in self._dirs if k != UNIFIED),
            )
        else:
            reason = v1.missing_reason(w.filename)
        raise self._unsupported(w, reason)

    def _absent_hierarchy_reason(self, w: writes.Write) -> str:
        if w.hierarchy == UNIFIED:
            return "no writable cgroup v2 hierarchy is mounted"
        return f"cgroup v1 controller `{w.controller}` is not mounted"

    @staticmethod
    def _unsupported(w: writes.Write, reason: str) -> UnsupportedError:
        names = [w.filename, *(name for name, _ in w.alternatives)]
        if len(names) == 1:
            files = f"`{names[0]}` does not exist"
        else:
            files = " and ".join(f"`{n}`" for n in names) + " do not exist"
        return UnsupportedError(
            f"cannot apply {w.field}: {files} on this host ({reason})"
        )

    @staticmethod
    def _write_all(resolved: list[tuple[str, str, writes.Write]]) -> None:
        retry = []
        for path, value, w in resolved:
            try:
                write_raw(path, value)
            except OSError as err:
                if err.errno == errno.EINVAL and w.retry_later:
                    retry.append((path, value))
                    continue
                raise SetupError(
                    f"write `{value}` to `{path}`: {describe_oserror(err)}"
                ) from err
        for path, value in retry:
            write_file(path, value)

    # ------------------------------------------------------------- processes

    def add_process(self, pid: int) -> None:
        """Move ``pid`` into the container's cgroup in every hierarchy."""
        add_to_cgroup(self._dirs, pid)

    def oom_kills(self) -> int:
        """How many processes the OOM killer killed in the cgroup (0: unknown).

        v1 counts them in ``memory.oom_control`` (``oom_kill``, Linux 4.13),
        v2 in ``memory.events``.
        """
        if "memory" in self._dirs:
            path = os.path.join(self._dirs["memory"], "memory.oom_control")
        elif UNIFIED in self._dirs:
            path = os.path.join(self._dirs[UNIFIED], "memory.events")
        else:
            return 0
        return read_keyed(path).get("oom_kill", 0)

    def _listing_dir(self) -> str | None:
        for key in (*PROCESS_LISTING_ORDER, *sorted(self._dirs)):
            if key in self._dirs:
                return self._dirs[key]
        return None

    def pids(self) -> list[int]:
        """Return every process in the container's cgroup and below (host pids)."""
        directory = self._listing_dir()
        if directory is None or not os.path.isdir(directory):
            return []
        found: list[int] = []
        for cgroup in list_subtree(directory):
            found.extend(read_procs(cgroup))
        return sorted(set(found))

    # --------------------------------------------------------------- freezer

    def _freezer(self) -> tuple[Any, str] | None:
        if "freezer" in self._dirs:
            return (v1, self._dirs["freezer"])
        if UNIFIED in self._dirs:
            return (v2, self._dirs[UNIFIED])
        return None

    def freeze(self) -> None:
        """Freeze every process of the container; return once they are frozen."""
        freezer = self._freezer()
        if freezer is None:
            raise UnsupportedError(
                "freeze container: no freezer (cgroup v1 freezer not mounted, "
                "no cgroup v2 hierarchy)"
            )
        module, directory = freezer
        module.freeze(directory)

    def thaw(self) -> None:
        """Let the container's processes run again."""
        freezer = self._freezer()
        if freezer is not None:
            module, directory = freezer
            module.thaw(directory)

    def is_frozen(self) -> bool:
        """Tell whether the container is frozen (or being frozen)."""
        freezer = self._freezer()
        if freezer is None:
            return False
        module, directory = freezer
        if module is v1:
            return v1.read_freezer_state(directory) != "THAWED"
        return v2.is_frozen(directory)

    # ------------------------------------------------------------------ kill

    def kill_all(self, sig: int) -> None:
        """Send ``sig`` to every process in the container's cgroup.

        SIGKILL goes through ``cgroup.kill`` when available (no race with
        forks). Otherwise the cgroup is frozen while the pids are listed and
        signalled, so no new process escapes the list. A container that was
        already frozen stays frozen, except for SIGKILL (a frozen process
        cannot die).
        """
        unified = self._dirs.get(UNIFIED)
        if sig == SIGKILL and unified and v2.can_kill(unified):
            v2.kill(unified)
            # A task frozen by the v1 freezer (hybrid) cannot die until thawed.
            if self.is_frozen():
                self.thaw()
            return
        was_frozen = self.is_frozen()
        froze = self._try_freeze() if not was_frozen else False
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
        finally:
            if froze or (was_frozen and sig == SIGKILL):
                self.thaw()

    def _try_freeze(self) -> bool:
        if self._freezer() is None or not self.exists():
            return False
        try:
            self.freeze()
        except SetupError as err:
            # Signal anyway: a stuck freezer must not stop a kill.
            log.debug(f"kill without freezing: {err}")
            return False
        return True

    # --------------------------------------------------------------- destroy

    def destroy(self) -> None:
        """Remove the directories we created, deepest first.

        The container's own directories (and any cgroups the container made
        below them) must go; a busy one is retried for a short while (its
        killed processes may still be exiting). Parents shared with other
        containers are left in place while they are not empty.
        """
        leaves = set(self._dirs.values())
        owned = [d for d in self._created if d in leaves]
        for directory in owned:
            for child in reversed(list_subtree(directory)[1:]):
                _remove_dir(child, must=True)
        for directory in sorted(set(self._created), key=_depth, reverse=True):
            _remove_dir(directory, must=directory in leaves)

    # ----------------------------------------------------------------- stats

    def stats(self) -> dict[str, Any]:
        """Return runc's ``events --stats`` data document (see :mod:`.stats`)."""
        from pyruntime.cgroups import stats

        return stats.collect_stats(self._dirs)


def _depth(path: str) -> int:
    return path.rstrip("/").count("/")


def _remove_dir(directory: str, must: bool) -> None:
    delay = 0.01
    for attempt in range(RMDIR_ATTEMPTS):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            busy = err.errno in (errno.EBUSY, errno.ENOTEMPTY)
            if busy and not must:
                return  # a shared parent still in use
            if not busy or attempt == RMDIR_ATTEMPTS - 1:
                raise SetupError(
                    f"remove cgroup `{directory}`: {describe_oserror(err)}"
                ) from err
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


# ---------------------------------------------------------------- factories


def open_manager(
    cgroups_path: str | None, container_id: str, *, systemd: bool = False
) -> Manager:
    """Return the manager for a new container (nothing is created yet).

    ``cgroups_path`` is ``linux.cgroupsPath``; see :mod:`pyruntime.cgroups.paths`
    for how it is read. ``systemd=True`` (``--systemd-cgroup``) is refused.
    """
    inner = paths.resolve_inner_path(cgroups_path, container_id, systemd=systemd)
    mounts = host.mounted_hierarchies()
    return Manager(paths.join_hierarchies(inner, mounts), mounts=mounts)


def load_manager(saved: dict[str, str], created: list[str] | None = None) -> Manager:
    """Rebuild a manager from a saved ``paths()`` (and ``created_dirs()``).

    Without ``created``, the container's own directories count as ours
    (``destroy`` removes them, not their parents).
    """
    if not isinstance(saved, dict) or not saved:
        raise StateCorruptError("saved cgroup paths are missing or not an object")
    for key, directory in saved.items():
        if not isinstance(directory, str) or not os.path.isabs(directory):
            raise StateCorruptError(f"saved cgroup path for `{key}` is not absolute")
    if created is None:
        created = sorted(set(saved.values()))
    return Manager(saved, created)
