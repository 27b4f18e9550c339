"""Signal numbers, names and handlers, without the enums of :mod:`signal`.

:mod:`signal` wraps the C module ``_signal`` and, on import, builds three
enum classes from it (importing :mod:`enum`, :mod:`functools` and
:mod:`collections` on the way): a few milliseconds that every ``create``,
``run`` and ``exec`` would pay for names it prints only in error messages.
The interpreter loads ``_signal`` at start-up anyway, so this module hands
its numbers and functions on as they are (plain ints) and names a signal
the way the enum would (``SIGKILL``).
"""

from __future__ import annotations

from _signal import (
    SIG_DFL,
    SIGCHLD,
    SIGHUP,
    SIGINT,
    SIGKILL,
    SIGQUIT,
    SIGRTMIN,
    SIGSTOP,
    SIGTERM,
    SIGURG,
    SIGUSR1,
    SIGUSR2,
    SIGWINCH,
    signal,
    valid_signals,
)

__all__ = [
    "SIGCHLD",
    "SIGHUP",
    "SIGINT",
    "SIGKILL",
    "SIGQUIT",
    "SIGRTMIN",
    "SIGSTOP",
    "SIGTERM",
    "SIGURG",
    "SIGUSR1",
    "SIGUSR2",
    "SIGWINCH",
    "SIG_DFL",
    "describe",
    "name_of",
    "numbers_by_name",
    "signal",
    "valid_signals",
]


def numbers_by_name() -> dict[str, int]:
    """Signal names without ``SIG`` (``KILL``) -> numbers; no real-time ones."""
    import _signal

    return {
        name[3:]: getattr(_signal, name)
        for name in dir(_signal)
        if name.startswith("SIG") and "_" not in name and not name.startswith("SIGRT")
    }


def name_of(number: int) -> str:
    """``SIGKILL`` for 9, as ``signal.Signals(number).name`` says it.

    Of two names for one number (``SIGABRT`` and ``SIGIOT``) the first in
    alphabetical order is the enum's. A number without a name of its own (a
    real-time signal above SIGRTMIN) is given as ``SIGRTMIN+n``; one Linux
    does not have, as the number.
    """
    import _signal

    for name, value in sorted(numbers_by_name().items()):
        if value == number:
            return "SIG" + name
    if number == SIGRTMIN:
        return "SIGRTMIN"
    if number == _signal.SIGRTMAX:
        return "SIGRTMAX"
    if SIGRTMIN < number < _signal.SIGRTMAX:
        return f"SIGRTMIN+{number - SIGRTMIN}"
    return str(number)


def describe(number: int) -> str:
    """How Go's ``os/exec`` words a signal (``killed``, ``terminated``).

    It is the C library's description with a lower-case first letter, except
    where the second letter is not lower case either (``CPU time limit
    exceeded``, ``I/O possible``).
    """
    from _signal import strsignal

    text = strsignal(number) or f"signal {number}"
    if len(text) > 1 and text[1].islower():
        return text[0].lower() + text[1:]
    return text
