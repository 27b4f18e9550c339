"""The status model: which status a saved container is in *now*.

The status is recomputed on every command from what the kernel says, because
the container's init can die at any moment without telling us:

=====================================================  ===========
condition, checked in this order                       status
=====================================================  ===========
saved as ``paused`` and init alive                     ``paused``
init gone, a zombie, or its pid reused                 ``stopped``
saved as ``creating`` (create has not finished)        ``creating``
``exec.fifo`` still exists                             ``created``
otherwise                                              ``running``
=====================================================  ===========

A reused pid is told apart by the start time saved with it.
"""

from __future__ import annotations

import os

from pyruntime.linux.procfs import is_alive
from pyruntime.state.store import ContainerDir, ContainerState

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"


def init_alive(state: ContainerState) -> bool:
    """Tell whether the container's init process is still the one we started."""
    return state.pid > 0 and is_alive(state.pid, state.pid_start)


def current_status(cdir: ContainerDir, state: ContainerState) -> str:
    """Compute the status of a container from the kernel and its state dir."""
    if not init_alive(state):
        return STOPPED
    if state.status in (PAUSED, CREATING):
        return state.status
    if cdir.fifo_exists():
        return CREATED
    return RUNNING


def signal_init(state: ContainerState, sig: int) -> None:
    """Signal init through a pidfd, so a recycled pid is never hit.

    ``_signal`` rather than :mod:`signal`, whose enums cost more to import
    than a whole ``kill`` may take.
    """
    import _signal

    from pyruntime.errors import StateError
    from pyruntime.linux.procfs import read_start_time

    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        raise StateError("container not running") from None
    try:
        if read_start_time(state.pid) != state.pid_start:
            raise StateError("container not running")
        _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise StateError("container not running") from None
    finally:
        os.close(pidfd)
