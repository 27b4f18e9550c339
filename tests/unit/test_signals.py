"""pyruntime.linux.signals: the names of :mod:`signal`, Go's descriptions."""

from __future__ import annotations

import signal

import pytest

from pyruntime.linux import signals


@pytest.mark.parametrize("number", sorted(signal.valid_signals()))
def test_names_are_the_signal_modules(number):
    try:
        expected = signal.Signals(number).name
    except ValueError:
        expected = None  # a real-time signal without a name of its own
    if expected is not None:
        assert signals.name_of(number) == expected


def test_real_time_and_unknown_numbers():
    assert signals.name_of(signal.SIGRTMIN + 1) == "SIGRTMIN+1"
    assert signals.name_of(signal.SIGRTMAX) == "SIGRTMAX"
    assert signals.name_of(200) == "200"


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (signal.SIGKILL, "killed"),
        (signal.SIGTERM, "terminated"),
        (signal.SIGSEGV, "segmentation fault"),
        (signal.SIGUSR1, "user defined signal 1"),
        (signal.SIGXCPU, "CPU time limit exceeded"),
        (signal.SIGIO, "I/O possible"),
    ],
)
def test_descriptions_are_gos(number, text):
    # os/exec says "signal: killed" for a hook killed by SIGKILL (runc's words).
    assert signals.describe(number) == text


def test_constants_are_plain_ints():
    assert signals.SIGKILL == 9 and type(signals.SIGKILL) is int
