"""The commands that act on a container through its cgroup.

``pause``, ``resume``, ``update``, ``events`` and ``ps``: each public function
is one CLI command, without the CLI. They read and save the container's
state through :mod:`pyruntime.state` and act through the cgroup manager
(:mod:`pyruntime.cgroups`); the lifecycle itself stays in
:mod:`pyruntime.container`.

Status rules and messages are runc's:

- ``pause``: created or running, else ``container not running``; the saved
  status becomes ``paused`` (reported while init lives).
- ``resume``: paused, else ``container not paused``; the saved status goes
  back to ``running`` (``created`` again if ``start`` never ran, because
  ``exec.fifo`` still exists).
- ``update``: anything but stopped (``container not running``); the new
  resources are saved in the state's ``config``.
- ``events``: anything but stopped (``container with id ID is not
  running``); ``ps`` lists whatever is left in the cgroup.

Commands that change the container (pause, resume, update) hold its lock.
"""

from __future__ import annotations

import os
import re
import select
import time
from collections.abc import Callable, Iterable
from typing import Any

from pyruntime import log
from pyruntime.errors import RuntimeError_, StateError, UnsupportedError, UsageError
from pyruntime.state import status as st
from pyruntime.state.store import ContainerState, open_container

#: How often ``events`` checks that the container still runs (seconds).
LIVENESS_PERIOD = 0.25
DEFAULT_PS_ARGS = ("-ef",)


def _manager(state: ContainerState):
    from pyruntime.cgroups import load_manager

    if not state.cgroup_paths:
        raise UnsupportedError(f"container `{state.id}` has no cgroup recorded")
    return load_manager(state.cgroup_paths)


def _read(root: str, container_id: str) -> tuple[ContainerState, str]:
    """Return the saved state and current status, without taking the lock."""
    with open_container(root, container_id, lock=False) as cdir:
        state = cdir.load()
        return state, st.current_status(cdir, state)


# --------------------------------------------------------------- pause/resume


def pause(root: str, container_id: str) -> None:
    """Freeze every process of a created or running container."""
    with open_container(root, container_id) as cdir:
        state = cdir.load()
        if st.current_status(cdir, state) not in (st.CREATED, st.RUNNING):
            raise StateError("container not running")
        manager = _manager(state)
        manager.freeze()
        state.status = st.PAUSED
        try:
            cdir.save(state)
        except OSError:
            manager.thaw()  # never leave a container frozen that says running
            raise


def resume(root: str, container_id: str) -> None:
    """Thaw a paused container."""
    with open_container(root, container_id) as cdir:
        state = cdir.load()
        if st.current_status(cdir, state) != st.PAUSED:
            raise StateError("container not paused")
        _manager(state).thaw()
        state.status = st.RUNNING
        cdir.save(state)


# --------------------------------------------------------------------- update


def _resctrl_has(kind: str) -> bool:
    """Tell whether Intel RDT ``kind`` (``L3``: CAT, ``MB``: MBA) is available."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            points = [
                line.split()[1] for line in mounts if line.split()[2:3] == ["resctrl"]
            ]
    except OSError:
        return False
    return any(os.path.isdir(os.path.join(p, "info", kind)) for p in points)


def check_rdt(l3_cache_schema: str | None, mem_bw_schema: str | None) -> None:
    """Refuse the Intel RDT flags (runc's messages when RDT is absent)."""
    if l3_cache_schema and not _resctrl_has("L3"):
        raise UnsupportedError("Intel RDT/CAT: l3 cache schema is not enabled")
    if mem_bw_schema and not _resctrl_has("MB"):
        raise UnsupportedError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    if l3_cache_schema or mem_bw_schema:
        # TODO(#4): Intel RDT (resctrl groups) is not implemented.
        raise UnsupportedError(
            "update Intel RDT schema: resctrl groups are not supported by pyruntime"
        )


def update(
    root: str,
    container_id: str,
    change: dict[str, Any],
    *,
    ignored: Iterable[str] = (),
    l3_cache_schema: str | None = None,
    mem_bw_schema: str | None = None,
) -> dict[str, Any]:
    """Apply a resources change to a live container and save it.

    ``change`` comes from :mod:`pyruntime.cgroups.update` (flags or JSON).
    Returns the container's new ``linux.resources``.
    """
    from pyruntime.cgroups.update import changed_sections, merge_resources

    check_rdt(l3_cache_schema, mem_bw_schema)
    for name in ignored:
        log.warning(
            f"update: `{name}` ignored (update changes memory, cpu, blockIO, "
            "pids and unified)"
        )
    with open_container(root, container_id) as cdir:
        state = cdir.load()
        if st.current_status(cdir, state) == st.STOPPED:
            raise StateError("container not running")
        config = state.config if isinstance(state.config, dict) else {}
        linux = config.setdefault("linux", {})
        merged = merge_resources(linux.get("resources"), change)
        # Devices are not updated (runc neither): the rules stay as created.
        _manager(state).apply(changed_sections(merged, change), skip_devices=True)
        linux["resources"] = merged
        state.config = config
        cdir.save(state)
    return merged


# --------------------------------------------------------------------- events

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign, accepted by Go
    "μs": 1e-6,  # Greek mu, accepted by Go too
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-zµμ]+)")


def parse_duration(text: str) -> float:
    """Parse a Go duration (``5s``, ``100ms``, ``1m30s``) into seconds.

    Raises ValueError for anything Go's ``time.ParseDuration`` refuses.
    """
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match:
            raise ValueError(f'invalid duration "{text}"')
        unit = _DURATION_UNITS.get(match.group(2))
        if unit is None:
            raise ValueError(f'unknown unit "{match.group(2)}" in duration "{text}"')
        total += float(match.group(1)) * unit
        pos = match.end()
    return sign * total


def stats_event(container_id: str, manager) -> dict[str, Any]:
    """One ``{"type": "stats", "id", "data"}`` event."""
    return {"type": "stats", "id": container_id, "data": manager.stats()}


def _running(root: str, container_id: str) -> ContainerState:
    state, status = _read(root, container_id)
    if status == st.STOPPED:
        raise StateError(f"container with id {container_id} is not running")
    return state


def stats(root: str, container_id: str) -> dict[str, Any]:
    """The stats event of a container that is not stopped (``--stats``)."""
    state = _running(root, container_id)
    return stats_event(container_id, _manager(state))


def events(
    root: str,
    container_id: str,
    interval: float,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Emit stats every ``interval`` seconds and OOM events, until it stops.

    The first stats event comes after one interval (runc's ticker). OOM
    events are emitted as soon as the kernel reports them.
    """
    from pyruntime.cgroups.oom import open_oom_watcher

    if interval <= 0:
        raise UsageError("duration interval must be greater than 0")
    state = _running(root, container_id)
    manager = _manager(state)
    watcher = open_oom_watcher(manager.paths())
    poller = select.poll()
    if watcher.fileno() is not None:
        poller.register(watcher.fileno(), select.POLLIN)
    try:
        _event_loop(state, manager, watcher, poller, interval, emit)
    finally:
        watcher.close()


def _event_loop(state, manager, watcher, poller, interval, emit) -> None:
    next_tick = time.monotonic() + interval
    while True:
        wait = min(max(next_tick - time.monotonic(), 0.0), LIVENESS_PERIOD)
        poller.poll(wait * 1000)
        for _ in range(watcher.count()):
            emit({"type": "oom", "id": state.id})
        now = time.monotonic()
        if now >= next_tick:
            try:
                emit(stats_event(state.id, manager))
            except (OSError, RuntimeError_) as err:
                if isinstance(err, BrokenPipeError):
                    raise
                log.warning(f"events: read stats of `{state.id}`: {err}")
            next_tick = max(next_tick + interval, now)
        if not st.init_alive(state) or not manager.exists():
            for _ in range(watcher.count()):
                emit({"type": "oom", "id": state.id})
            return


# ------------------------------------------------------------------------- ps


def list_pids(root: str, container_id: str) -> list[int]:
    """Host pids of every process in the container's cgroup (any status)."""
    state, _status = _read(root, container_id)
    if not state.cgroup_paths:
        return []
    return _manager(state).pids()


def filter_ps_output(output: str, pids: Iterable[int]) -> str:
    """Keep ``ps``'s header and the rows whose PID column is in ``pids``."""
    lines = output.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise RuntimeError_("couldn't find PID field in ps output")
    column, wanted = header.index("PID"), set(pids)
    kept = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        try:
            pid = int(fields[column])
        except (IndexError, ValueError):
            raise RuntimeError_(f"unable to parse pid: {line.strip()}") from None
        if pid in wanted:
            kept.append(line)
    return "\n".join(kept) + "\n"


def ps_table(pids: list[int], ps_args: list[str]) -> str:
    """Run the host's ``ps`` (default ``-ef``) and keep the container's rows."""
    import subprocess

    argv = ["ps", *(ps_args or DEFAULT_PS_ARGS)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
    except OSError as err:
        raise RuntimeError_(f"run `ps`: {err.strerror.lower()}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise RuntimeError_(
            f"`{' '.join(argv)}`: exit status {done.returncode}: {output}"
        )
    return filter_ps_output(done.stdout, pids)
