"""Which command lines re-execute from the sealed interpreter (pure logic)."""

from __future__ import annotations

import pytest

from pyruntime.reexec import wants_sealed


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["create", "c1"], True),
        (["run", "-d", "c1"], True),
        (["exec", "c1", "sh"], True),
        (["--root", "/r", "create", "c1"], True),
        (["--root=/r", "run", "c1"], True),
        (["-root", "/r", "exec", "c1", "true"], True),
        (["--debug", "--systemd-cgroup", "create", "c1"], True),
        # A container named like a command is not the command.
        (["state", "run"], False),
        (["kill", "exec", "9"], False),
        (["--log", "create", "state", "c1"], False),
        (["list"], False),
        ([], False),
    ],
)
def test_wants_sealed(argv, expected):
    assert wants_sealed(argv) is expected
