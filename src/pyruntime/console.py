"""The container's terminal: a pty from the container's own devpts.

With ``process.terminal: true`` the caller passes ``--console-socket PATH``, a
listening AF_UNIX stream socket. The runtime connects to it *before* starting
the container's init (the path lives on the host, and init may be in a user
namespace that cannot reach it) and init later sends one message on that
connection: the master's name as data and the master fd as ``SCM_RIGHTS``.

Inside the container the slave becomes stdin, stdout, stderr and controlling
terminal of the user program, and is bind-mounted over ``/dev/console``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from pyruntime.errors import SetupError

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430


def connect_console_socket(path: str) -> socket.socket:
    """Connect to the caller's console socket (in the runtime, before fork)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise SetupError(
            f"connect to console socket `{path}`: {err.strerror.lower()}"
        ) from err
    return sock


def open_pty(rows: int | None, cols: int | None) -> tuple[int, int, str]:
    """Open a pty pair from ``/dev/ptmx``; return (master, slave, slave path)."""
    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]
        slave_path = f"/dev/pts/{number}"
        slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise SetupError(
            f"allocate a terminal from `/dev/ptmx`: {err.strerror.lower()}"
        ) from err
    if rows or cols:
        size = struct.pack("HHHH", rows or 0, cols or 0, 0, 0)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    return master, slave, slave_path


def send_master(sock: socket.socket, master: int) -> None:
    """Send the pty master on the console socket and hang up."""
    try:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as err:
        raise SetupError(f"send the terminal to the console socket: {err}") from err
    finally:
        sock.close()
        os.close(master)


def make_controlling_terminal(slave: int) -> None:
    """Make ``slave`` the session's controlling terminal and fds 0, 1, 2."""
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
