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
import struct
import termios

from pyruntime.errors import SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430


def connect_console_socket(path: str) -> socket.socket:
    """Connect to the caller's console socket (in the runtime, before fork)."""
    import socket

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
    import socket

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


# ------------------------------------------ relaying a terminal ourselves


def relay_terminal(relay, pid: int) -> None:
    """Copy between our stdio and the program's pty until the program ends.

    The pty master arrives on ``relay`` (sent by init or the exec process,
    as to a console socket). Our terminal, if stdin is one, is put in raw mode and
    its size copied to the pty, now and on every SIGWINCH.
    """
    import socket

    _, fds, _, _ = socket.recv_fds(relay, 4096, 1)
    if not fds:
        raise SetupError("the terminal was not received")
    master = fds[0]
    try:
        with RawMode(0), MirroredSize(0, master):
            copy_terminal(master, pid)
    finally:
        os.close(master)


class RawMode:
    """Put ``fd`` in raw mode while inside, when it is a terminal."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved = None

    def __enter__(self) -> RawMode:
        import tty

        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *_exc) -> None:
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


class MirroredSize:
    """Give ``master`` the size of terminal ``source``, now and on SIGWINCH."""

    def __init__(self, source: int, master: int) -> None:
        self.source = source
        self.master = master
        self.previous = None

    def __enter__(self) -> MirroredSize:
        from pyruntime.linux import signals

        if os.isatty(self.source):
            copy_size(self.source, self.master)
            self.previous = signals.signal(signals.SIGWINCH, self.on_resize)
        return self

    def on_resize(self, *_args) -> None:
        copy_size(self.source, self.master)

    def __exit__(self, *_exc) -> None:
        if self.previous is not None:
            from pyruntime.linux import signals

            signals.signal(signals.SIGWINCH, self.previous)


def copy_size(source: int, master: int) -> None:
    """Copy one terminal's window size to another."""
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def copy_terminal(master: int, pid: int) -> None:
    """stdin to the master, the master to stdout, until the program exits."""
    import select

    pidfd = os.pidfd_open(pid)
    sources = [0, master, pidfd]
    try:
        while master in sources:
            try:
                ready, _, _ = select.select(sources, [], [])
            except InterruptedError:
                continue
            if 0 in ready and not forward_bytes(0, master):
                sources.remove(0)
            if master in ready and not forward_bytes(master, 1):
                sources.remove(master)
            if pidfd in ready:
                drain(master)
                break
    finally:
        os.close(pidfd)


def forward_bytes(source: int, target: int) -> bool:
    """Copy one read's worth; False at end-of-file (or EIO from a pty)."""
    try:
        data = os.read(source, 65536)
    except OSError:
        return False
    if not data:
        return False
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(target, view) :]
        except OSError:
            return True  # nobody reads our output any more: keep draining
    return True


def drain(master: int) -> None:
    """Copy what the pty still holds once the program has exited."""
    import select

    while select.select([master], [], [], 0)[0]:
        if not forward_bytes(master, 1):
            return
