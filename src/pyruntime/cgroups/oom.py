"""Out-of-memory notifications for ``events``.

Two kernel interfaces, one watcher shape (a file descriptor to poll, and
:meth:`count` to call when it is readable or on any wake-up):

- cgroup v1 (and hybrid hosts, where memory is a v1 controller): an eventfd
  registered through ``cgroup.event_control`` on ``memory.oom_control``. The
  kernel signals it on each OOM in the cgroup, and once more when the
  cgroup is removed.
- cgroup v2: the ``oom_kill`` counter of ``memory.events``; an inotify watch
  on that file wakes the poller when it changes (kernfs notifies on every
  update), and the counter is compared with the last value seen.
"""

from __future__ import annotations

import ctypes
import os

from pyruntime.cgroups.files import read_keyed, write_file
from pyruntime.errors import SetupError, UnsupportedError, describe_oserror

IN_MODIFY = 0x2
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


class EventfdWatcher:
    """cgroup v1: OOM notifications through an eventfd."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        control = os.path.join(directory, "memory.oom_control")
        try:
            oom_fd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            os.close(self.fd)
            raise SetupError(
                f"watch OOM events: open `{control}`: {describe_oserror(err)}"
            ) from err
        try:
            write_file(
                os.path.join(directory, "cgroup.event_control"),
                f"{self.fd} {oom_fd}",
            )
        except SetupError:
            os.close(self.fd)
            raise
        finally:
            # The registration holds its own reference to the file.
            os.close(oom_fd)

    def fileno(self) -> int:
        """The eventfd, readable when an OOM happened."""
        return self.fd

    def count(self) -> int:
        """Return how many OOM notifications arrived since the last call."""
        try:
            value = os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0
        # Removing the cgroup also signals the eventfd: that is no OOM.
        if not os.path.exists(os.path.join(self.directory, "cgroup.event_control")):
            return 0
        return value

    def close(self) -> None:
        """Stop watching."""
        os.close(self.fd)


class MemoryEventsWatcher:
    """cgroup v2: the ``oom_kill`` counter of ``memory.events``."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "memory.events")
        if not os.path.exists(self.path):
            raise UnsupportedError(
                f"watch OOM events: `{self.path}` does not exist (memory "
                "controller not enabled for this cgroup)"
            )
        self.seen = self._read()
        self.fd = _inotify_watch(self.path)

    def _read(self) -> int:
        return read_keyed(self.path).get("oom_kill", 0)

    def fileno(self) -> int | None:
        """The inotify fd, or None when inotify is unavailable (then poll)."""
        return self.fd

    def count(self) -> int:
        """Return how many OOM kills happened since the last call."""
        if self.fd is not None:
            try:
                while os.read(self.fd, 4096):
                    pass
            except BlockingIOError:
                pass
        current = self._read()
        new, self.seen = max(current - self.seen, 0), max(current, self.seen)
        return new

    def close(self) -> None:
        """Stop watching."""
        if self.fd is not None:
            os.close(self.fd)


def _inotify_watch(path: str) -> int | None:
    """Return an inotify fd watching ``path`` for changes (None on failure)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(path), ctypes.c_uint32(IN_MODIFY)) < 0:
        os.close(fd)
        return None
    return fd


def open_oom_watcher(dirs: dict[str, str]) -> EventfdWatcher | MemoryEventsWatcher:
    """Return the OOM watcher for a container's cgroup ``{key: directory}``."""
    if "memory" in dirs:
        return EventfdWatcher(dirs["memory"])
    if "unified" in dirs:
        return MemoryEventsWatcher(dirs["unified"])
    raise UnsupportedError("watch OOM events: no memory controller is mounted")
