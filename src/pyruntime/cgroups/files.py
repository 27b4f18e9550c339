"""Reading and writing cgroupfs files (both versions).

A cgroup file takes one value per ``write()``: values are written whole, with
no truncation or creation flags, and errors become one-line
:class:`~pyruntime.errors.SetupError` messages naming the value and the file.
"""

from __future__ import annotations

import os

from pyruntime.errors import SetupError, describe_oserror

#: What v1 and v2 print for "no limit" in files holding a number.
V1_UNLIMITED = 9223372036854771712
V2_UNLIMITED_STAT = 2**64 - 1


def write_raw(path: str, value: str) -> None:
    """Write ``value`` to the cgroup file ``path``; OSError on failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_file(path: str, value: str) -> None:
    """Write ``value`` to ``path``, raising SetupError with the kernel's reason."""
    try:
        write_raw(path, value)
    except OSError as err:
        raise SetupError(
            f"write `{value}` to `{path}`: {describe_oserror(err)}"
        ) from err


def add_to_cgroup(paths: dict[str, str], pid: int) -> None:
    """Write ``pid`` to ``cgroup.procs`` of each distinct directory of ``paths``.

    ``paths`` maps hierarchy keys to directories (co-mounted controllers
    share one). This is all a process needs to join a container's cgroup,
    without the manager and its planners.
    """
    for directory in sorted(set(paths.values())):
        write_file(os.path.join(directory, "cgroup.procs"), str(pid))


def read_text(path: str) -> str:
    """Return the contents of a cgroup file, stripped (OSError on failure)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().strip()


def read_optional(path: str) -> str | None:
    """Return the stripped contents of ``path``, or None when unreadable."""
    try:
        return read_text(path)
    except OSError:
        return None


def read_number(path: str, default: int = 0) -> int:
    """Return the integer in ``path``; ``max`` reads as 2**64-1 (as runc does)."""
    text = read_optional(path)
    if text is None or text == "":
        return default
    if text == "max":
        return V2_UNLIMITED_STAT
    try:
        return int(text.split()[0])
    except ValueError:
        return default


def read_keyed(path: str) -> dict[str, int]:
    """Return a flat-keyed file (``key value`` lines) as a dict of ints."""
    result: dict[str, int] = {}
    for line in (read_optional(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def read_procs(directory: str) -> list[int]:
    """Return the pids listed in ``<directory>/cgroup.procs`` (empty if gone)."""
    text = read_optional(os.path.join(directory, "cgroup.procs")) or ""
    return [int(line) for line in text.split()]


def list_subtree(directory: str) -> list[str]:
    """Return ``directory`` and every cgroup below it, parents first."""
    result = []
    for root, dirs, _files in os.walk(directory):
        dirs.sort()
        result.append(root)
    return result
