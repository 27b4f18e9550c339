"""The start handshake: ``start`` releases a created init through ``exec.fifo``.

exec.fifo is the only thing ``start`` and the container's init (N) share:

1. N holds the fifo open read-write (close-on-exec) and blocks reading it.
2. ``start`` opens it for writing (``ENXIO`` when N is gone), then for
   reading, writes :data:`START_BYTE` and closes its writer.
3. N reads the byte, runs the startContainer hooks, loads a late seccomp
   filter, closes its descriptor and calls ``execve`` for the user program.
   If a step before fails, N first writes the error message into the fifo
   (:func:`report_start_failure`), then exits; a failed ``execve`` itself is
   said on N's stderr, as runc's init does, and shows in the exit status.
4. ``start`` waits for the fifo's last writer to go (``POLLHUP``) or for N to
   exit, and reads what is left: nothing means the program runs; a message
   is N's failure; the start byte itself means N died before reading it.

This module is on the path of every ``start`` (also the CLI's fast path), so
it imports nothing but ``os``, ``errno`` and ``select``.
"""

from __future__ import annotations

import errno
import os
import select

from pyruntime.errors import StateError

#: What ``start`` writes into exec.fifo to release init.
START_BYTE = b"0"
#: Longest failure report init writes (one atomic write into the fifo).
_MAX_REPORT = select.PIPE_BUF - 1


def report_start_failure(fifo_fd: int, message: str) -> bool:
    """Init's side: tell the waiting ``start`` why the program did not run.

    Returns False when the message could not be written (then init says it
    on its own stderr instead).
    """
    data = message.encode(errors="replace")[:_MAX_REPORT] or b"?"
    try:
        os.write(fifo_fd, data)
    except OSError:
        return False
    return True


def release_init(fifo_path: str, init_pid: int) -> str | None:
    """``start``'s side: release init; return its failure message, if any.

    exec.fifo is removed whatever happened: the container is no longer
    "created" once start has tried.
    """
    try:
        return hand_over(fifo_path, init_pid)
    finally:
        try:
            os.unlink(fifo_path)
        except FileNotFoundError:
            pass


def hand_over(fifo_path: str, init_pid: int) -> str | None:
    """Write the start byte, wait for init to exec or fail, read its report."""
    try:
        probe = os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno in (errno.ENXIO, errno.ENOENT):
            # Nobody holds the fifo for reading: init is gone.
            raise StateError("cannot start a container that has stopped") from None
        raise
    try:
        # The reader is opened before the writer that carries the byte: a
        # fifo reader sees POLLHUP only for writers opened after it.
        reader = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        writer = os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.write(writer, START_BYTE)
        finally:
            os.close(writer)
    finally:
        os.close(probe)
    try:
        wait_for_hangup(reader, init_pid)
        report = read_available(reader)
    finally:
        os.close(reader)
    if report.startswith(START_BYTE):
        raise StateError("cannot start a container that has stopped")
    return report.decode(errors="replace") or None


def wait_for_hangup(reader: int, init_pid: int) -> None:
    """Wait until init has closed exec.fifo (exec or exit) or has exited."""
    poller = select.poll()
    poller.register(reader, 0)  # POLLHUP is always reported
    try:
        pidfd = os.pidfd_open(init_pid)
    except ProcessLookupError:
        return
    try:
        poller.register(pidfd, select.POLLIN)
        while not poller.poll():
            pass
    finally:
        os.close(pidfd)


def read_available(fd: int) -> bytes:
    """Read what a non-blocking fifo holds, up to its end or its emptiness."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
