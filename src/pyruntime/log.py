"""The runtime's log: text or logrus-shaped JSON lines to ``--log`` or stderr.

Engines read this log. containerd decodes every line of ``--log`` as a JSON
object ``{"level", "msg", "time"}`` and keeps the last ``error``; podman reads
the whole file as one object after a failed create. So the format is exact:

- JSON: ``{"level":"error","msg":"container does not exist","time":"<RFC 3339>"}``
- text: ``time="<RFC 3339>" level=error msg="container does not exist"``

Lines are written with one ``write()`` each on an ``O_APPEND`` descriptor, so
the parent and its child processes (which inherit the descriptor across
``fork``) can log to the same file without interleaving inside a line.

This module deliberately avoids :mod:`logging`, and :mod:`json` too (which
imports :mod:`re`): it is imported by every command and must cost next to
nothing at start-up. JSON lines are put together with the string encoder of
json's C accelerator, which gives the same bytes as ``json.dumps``.
"""

from __future__ import annotations

import os
import sys
import time

try:
    from _json import encode_basestring as _quote
except ImportError:  # pragma: no cover - CPython always has it
    from json.encoder import py_encode_basestring as _quote

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "fatal": 50}


class _Sink:
    """Where log lines go; configured once by the CLI."""

    fd: int = 2
    fmt: str = "text"
    threshold: int = LEVELS["info"]
    to_stderr: bool = True
    #: Prefix that tells child-process lines apart in the narrated debug log.
    actor: str = ""


_sink = _Sink()


def configure(path: str | None, fmt: str, debug: bool) -> None:
    """Open ``path`` for appending (or keep stderr) and set format and level."""
    if fmt not in ("text", "json"):
        from pyruntime.errors import UsageError

        raise UsageError(f"invalid log-format: {fmt}")
    _sink.fmt = fmt
    _sink.threshold = LEVELS["debug" if debug else "info"]
    if path:
        import fcntl

        flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        # Keep the log out of the low descriptors that --preserve-fds hands
        # to the container.
        _sink.fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(fd)
        _sink.to_stderr = False


def logs_to_stderr() -> bool:
    """Tell whether log lines end up on stderr (no ``--log`` given)."""
    return _sink.to_stderr


def debug_enabled() -> bool:
    """Tell whether debug lines are written at all (cheap guard for callers)."""
    return _sink.threshold <= LEVELS["debug"]


def set_actor(name: str) -> None:
    """Name the process that logs from now on (``init``, ``intermediate``)."""
    _sink.actor = name


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "Z"


def format_line(level: str, msg: str) -> str:
    """Render one log line (without its newline) in the configured format."""
    if _sink.fmt == "json":
        # json.dumps({...}, separators=(",", ":"), ensure_ascii=False)
        return (
            f'{{"level":{_quote(level)},"msg":{_quote(msg)},'
            f'"time":{_quote(_timestamp())}}}'
        )
    escaped = msg.replace("\\", "\\\\").replace('"', '\\"')
    return f'time="{_timestamp()}" level={level} msg="{escaped}"'


def emit(level: str, msg: str) -> None:
    """Write ``msg`` at ``level`` if the level passes the threshold."""
    if LEVELS[level] < _sink.threshold:
        return
    if _sink.actor:
        msg = f"{_sink.actor}: {msg}"
    data = (format_line(level, msg) + "\n").encode()
    try:
        os.write(_sink.fd, data)
    except OSError:
        pass


def debug(msg: str) -> None:
    """Narrate a step (only with ``--debug``)."""
    emit("debug", msg)


def info(msg: str) -> None:
    """Log something worth knowing."""
    emit("info", msg)


def warning(msg: str) -> None:
    """Log a problem that does not stop the command."""
    emit("warning", msg)


def fail(msg: str) -> None:
    """Report the command's one fatal error, as runc does.

    The error goes to the log destination; when that is a file, the bare
    message is also printed on stderr (conmon forwards stderr to podman).
    """
    emit("error", msg)
    if not _sink.to_stderr:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()
