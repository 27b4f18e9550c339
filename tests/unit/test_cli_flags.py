"""Go-style flag spellings are rewritten into click's."""

from __future__ import annotations

import pytest

from pyruntime.cli.commands import parse_signal
from pyruntime.cli.flags import normalize_argv
from pyruntime.cli.main import cli, register_commands
from pyruntime.errors import UsageError

register_commands()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-root", "/x", "list"], ["--root", "/x", "list"]),
        (["--root=/x", "list", "-format=json"], ["--root=/x", "list", "--format=json"]),
        (
            ["-root=/x", "delete", "-force", "c1"],
            ["--root=/x", "delete", "--force", "c1"],
        ),
        (["--debug=true", "state", "c"], ["--debug", "state", "c"]),
        (["--debug=false", "state", "c"], ["state", "c"]),
        (["--systemd-cgroup=false", "list"], ["list"]),
        (["--rootless=true", "list"], ["--rootless=true", "list"]),
        (
            ["--log-format=json", "--log", "/l", "kill", "c", "9"],
            ["--log-format=json", "--log", "/l", "kill", "c", "9"],
        ),
        (["kill", "-a", "c", "-9"], ["kill", "-a", "c", "-9"]),
        (["run", "-d", "-bundle", "/b", "c"], ["run", "-d", "--bundle", "/b", "c"]),
        (["create", "--pid-file", "-odd", "c"], ["create", "--pid-file", "-odd", "c"]),
        (["create", "-no-pivot", "c"], ["create", "--no-pivot", "c"]),
        (["list", "-q"], ["list", "-q"]),
    ],
)
def test_normalize_argv(argv, expected):
    assert normalize_argv(argv, cli) == expected


def test_arguments_after_the_id_are_left_alone():
    argv = ["kill", "c1", "-TERM"]
    assert normalize_argv(argv, cli) == argv


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("KILL", 9),
        ("kill", 9),
        ("SIGKILL", 9),
        ("sigusr1", 10),
        ("15", 15),
        ("0", 0),
        ("WINCH", 28),
        ("34", 34),
    ],
)
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["BOGUS", "SIG", "", "-9", "SIGRTMIN"])
def test_parse_signal_refuses(text):
    with pytest.raises(UsageError, match="unknown signal"):
        parse_signal(text)
