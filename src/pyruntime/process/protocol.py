"""The messages the runtime and its children exchange while creating a container.

Three processes take part. The runtime (**R**) forks an *intermediate*
process (**I**), which joins the cgroup and the namespaces and forks the
container's *init* (**N**); **I** exits at once, so that **N** is re-parented
to the runtime (a child subreaper) and later to the caller's subreaper. A
second process is needed because a new pid namespace applies only to the
children of the process that unshares it.

All three share one ``SOCK_SEQPACKET`` socketpair: one message per packet,
each a JSON object with a ``type``.

====  ===================  =====================================================
from  type                 meaning
====  ===================  =====================================================
I     ``map-ids``          I unshared its user namespace: write its id maps
R     ``ids-mapped``       done; I goes on with the other namespaces
I     ``init-pid``         N exists (``pid``: its pid in R's pid namespace)
R     ``go``               R has recorded the pid; N may start setting up
N     ``mounts-ready``     N's mounts are done: run prestart/createRuntime
R     ``hooks-done``       they succeeded; N runs createContainer and pivots
N     ``ready``            N is set up and waits for ``start`` on exec.fifo
I/N   ``error``            setup failed (``message``); the sender exits
====  ===================  =====================================================

If R dies, the children read end-of-file on the socket and exit, so a
SIGKILLed ``create`` leaves no process behind that ``delete --force`` could
not find.

``start`` talks to N through ``exec.fifo``, the only thing they share:

1. N holds the fifo open read-write (close-on-exec) and blocks reading it.
2. ``start`` opens it for writing (``ENXIO`` when N is gone), then for
   reading, writes :data:`START_BYTE` and closes its writer.
3. N reads the byte, runs the startContainer hooks and calls ``execve`` for the user
   program; exec closes N's descriptor. If a hook or the exec fails, N first
   writes the error message into the fifo (:func:`report_start_failure`), then
   exits.
4. ``start`` waits for the fifo's last writer to go (``POLLHUP``) or for N to
   exit, and reads what is left: nothing means the program runs; a message
   is N's failure; the start byte itself means N died before reading it.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket

from pyruntime.errors import SetupError, StateError

_MAX_MESSAGE = 65536
#: What ``start`` writes into exec.fifo to release init.
START_BYTE = b"0"
#: Longest failure report init writes (one atomic write into the fifo).
_MAX_REPORT = select.PIPE_BUF - 1


class Channel:
    """One end of the creation socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        """Make the runtime's end and the children's end."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(parent), cls(child)

    def send(self, kind: str, **fields) -> None:
        """Send one message."""
        fields["type"] = kind
        self.sock.send(json.dumps(fields).encode())

    def receive(self) -> dict:
        """Wait for one message; end-of-file means the other side is gone."""
        data = self.sock.recv(_MAX_MESSAGE)
        if not data:
            raise EOFError("the other side of the creation channel exited")
        return json.loads(data)

    def expect(self, kind: str) -> dict:
        """Wait for a message of one type; an ``error`` message is raised."""
        message = self.receive()
        if message["type"] == "error":
            raise SetupError(message["message"])
        if message["type"] != kind:
            raise SetupError(
                f"creation protocol: expected `{kind}`, got `{message['type']}`"
            )
        return message

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close this end."""
        self.sock.close()


# ----------------------------------------------------------- start handshake


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
    """``start``'s side: release init; return its failure message, if any."""
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
