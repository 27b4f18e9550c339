"""Small readers of /proc used to identify processes without psutil."""

from __future__ import annotations


def read_start_time(pid: int) -> int | None:
    """Return field 22 of ``/proc/<pid>/stat`` (start time in clock ticks).

    Together with the pid it names one process for good: a recycled pid has a
    different start time. ``None`` when the process does not exist.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after
    # the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def read_state(pid: int) -> str | None:
    """Return the one-letter state of a process (``Z`` for a zombie) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()


def is_alive(pid: int, start_time: int | None) -> bool:
    """Tell whether ``pid`` still names the process that started at ``start_time``."""
    if pid <= 0:
        return False
    state = read_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return start_time is None or read_start_time(pid) == start_time
