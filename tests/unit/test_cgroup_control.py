"""Unit tests of the pure parts of the cgroup commands (pyruntime.control)."""

from __future__ import annotations

import pytest

from pyruntime import control
from pyruntime.errors import RuntimeError_


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("100ms", 0.1),
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("10ns", 1e-8),
        (".5s", 0.5),
        ("0", 0.0),
        ("-1s", -1.0),
        ("+2s", 2.0),
    ],
)
def test_parse_duration(text, seconds):
    assert control.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "", "s", "5x", "1.s5", "5 s", "1d", "-"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        control.parse_duration(text)


PS_EF = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        4242       1  0 10:01 ?        00:00:00 sleep 1000
root        4243    4242  0 10:01 ?        00:00:00 sh -c x

"""


def test_filter_ps_output_keeps_header_and_container_rows():
    assert control.filter_ps_output(PS_EF, [4242, 4243]) == (
        "UID          PID    PPID  C STIME TTY          TIME CMD\n"
        "root        4242       1  0 10:01 ?        00:00:00 sleep 1000\n"
        "root        4243    4242  0 10:01 ?        00:00:00 sh -c x\n"
    )


def test_filter_ps_output_pid_column_anywhere():
    text = "STAT   PID COMMAND\nS     7 a\nR     8 b\n"
    assert control.filter_ps_output(text, [8]) == "STAT   PID COMMAND\nR     8 b\n"
    assert control.filter_ps_output(text, []) == "STAT   PID COMMAND\n"


def test_filter_ps_output_errors():
    with pytest.raises(RuntimeError_, match="couldn't find PID field"):
        control.filter_ps_output("USER COMMAND\nroot x\n", [1])
    with pytest.raises(RuntimeError_, match="unable to parse pid"):
        control.filter_ps_output("PID CMD\nabc x\n", [1])
    assert control.filter_ps_output("", [1]) == ""
