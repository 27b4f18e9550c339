"""The fast path reads ``check`` and ``explain`` exactly as click does, or leaves them.

``check --run`` and ``--timeout`` are click's: the fast path hands those
command lines over, as it does everything it does not recognise.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from pyruntime.cli import fast, fast_inspect
from pyruntime.cli.main import cli
from tests.unit.test_cli_fast import assert_reads_like_click, click_params

#: What click also reads for ``check``, which the fast path leaves to click.
CHECK_CLICK_ONLY = {"smoke": False, "timeout": 10.0}


def click_reading(argv: list[str]) -> tuple[dict, str, dict, list[str]]:
    """What click makes of ``argv``: global params, command, its params, args."""
    globals_, name, params = click_params(argv)
    bundle = params.pop("bundle")
    return globals_, name, params, [] if bundle is None else [bundle]


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "/b"],
        ["check", "-"],
        ["check", ""],
        ["check", "-f", "json", "/b"],
        ["check", "--format", "text", "/b"],
        ["check", "--format=json", "--config", "seed.json", "/b"],
        ["check", "-format=json", "-config", "seed.json", "/b"],
        ["check", "--config=", "/b"],
        ["check", "-f", "xml", "/b"],
        ["check", "-f", "json", "-f", "text", "/b"],
        ["--root", "/r", "--systemd-cgroup", "check", "/b"],
        ["-systemd-cgroup=true", "-log", "/l", "check", "/b"],
        ["explain"],
        ["explain", "/b"],
        ["explain", "--id", "c1", "/b"],
        ["explain", "-id=c1", "-f", "json", "/b"],
        ["explain", "--format", "json", "--config", "c.json", "--id", "c1"],
        ["--root=/r", "explain", "--id=", "/b"],
    ],
)
def test_fast_path_reads_like_click(argv):
    assert_reads_like_click(argv, click_reading, click_only={"check": CHECK_CLICK_ONLY})


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--help"],
        ["check", "-h"],
        ["check", "--run", "/b"],
        ["check", "--run=false", "/b"],
        ["check", "--timeout", "5", "/b"],
        ["check", "--timeout=x", "/b"],
        ["check", "/b", "--format", "json"],
        ["check", "/a", "/b"],
        ["check", "-f=json", "/b"],
        ["check", "-fjson", "/b"],
        ["check", "--format"],
        ["check", "--format", "-x", "/b"],
        ["check", "--", "/b"],
        ["check", "--id", "c1", "/b"],
        ["check", "--bogus", "/b"],
        ["explain", "--run", "/b"],
        ["explain", "/b", "--id", "c1"],
        ["explain", "/a", "/b"],
        ["explain", "--", "/b"],
        ["explain", "--help"],
    ],
)
def test_fast_path_leaves_the_rest_to_click(argv):
    assert fast.parse(argv) is None


def test_the_tables_name_clicks_options():
    """Every fast option is one of the click command's, with its default."""
    for name, options, defaults in (
        ("check", fast_inspect.CHECK_OPTIONS, fast_inspect.CHECK_DEFAULTS),
        ("explain", fast_inspect.EXPLAIN_OPTIONS, fast_inspect.EXPLAIN_DEFAULTS),
    ):
        command = cli.commands[name]
        click_options = {
            opt: param for param in command.params for opt in getattr(param, "opts", ())
        }
        for opt, (dest, is_flag) in options.items():
            param = click_options[opt]
            assert (param.name, bool(param.is_flag)) == (dest, is_flag)
            assert defaults[dest] == param.default


@pytest.mark.parametrize("command", ["check", "explain"])
def test_the_fast_path_does_not_import_click(command, tmp_path):
    """Not click, nor what it would bring (the bundle is missing: exit 1)."""
    argv = [sys.executable, "-X", "importtime", "-m", "pyruntime", command]
    result = subprocess.run(
        [*argv, str(tmp_path / "none")], capture_output=True, text=True
    )
    assert result.returncode == 1
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "pyruntime.cli.fast_inspect" in imported
    assert not imported & {"click", "dataclasses", "inspect", "platform"}


def test_loading_the_tables_costs_nothing():
    """The fast path loads fast_inspect for every command: no heavy import."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from pyruntime.cli import fast_inspect\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = ast.literal_eval(out)
    allowed = {"__future__", "pyruntime", "pyruntime.cli", "pyruntime.cli.fast_inspect"}
    assert set(loaded) <= allowed
