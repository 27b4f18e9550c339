"""``check`` and ``explain`` on the fast path: their flags, and the commands.

:mod:`pyruntime.cli.fast` parses the command line with the tables below,
exactly as click reads the ``check`` and ``explain`` commands of
:mod:`pyruntime.cli.inspect`: the same option names, destinations and
defaults. Both readings then call :func:`run_check` or :func:`run_explain`,
so what follows the parsing is one piece of code.

``check --run`` and ``--timeout`` are left to click (they are not in the
table, so the fast parser hands the command line over): the smoke test runs
the bundle, which costs far more than click does, and click converts the
timeout and words the error when it is not a number.

This module imports nothing heavy at load time: the fast path loads it for
every command.
"""

from __future__ import annotations

import os
import sys

FORMATS = ("text", "json")
CONFIG_NAME = "config.json"

#: Option name -> (destination, is a boolean flag); click's names.
CHECK_OPTIONS = {
    "-f": ("fmt", False),
    "--format": ("fmt", False),
    "--config": ("config_name", False),
}
CHECK_DEFAULTS = {"fmt": "text", "config_name": CONFIG_NAME}

EXPLAIN_OPTIONS = {**CHECK_OPTIONS, "--id": ("container_id", False)}
EXPLAIN_DEFAULTS = {**CHECK_DEFAULTS, "container_id": None}


def check_format(fmt: str) -> None:
    """``--format`` is text or json."""
    if fmt not in FORMATS:
        from pyruntime.errors import UsageError

        raise UsageError(f"invalid format option: {fmt} (text or json)")


def cmd_check(glob, options: dict, args: list[str]) -> int:
    """``check [BUNDLE]``, without the smoke test."""
    return run_check(
        glob,
        options["fmt"],
        options["config_name"],
        bundle=args[0] if args else None,
    )


def cmd_explain(glob, options: dict, args: list[str]) -> int:
    """``explain [BUNDLE]``."""
    return run_explain(
        glob,
        options["fmt"],
        options["config_name"],
        options["container_id"],
        bundle=args[0] if args else None,
    )


def run_check(
    glob,
    fmt: str,
    config_name: str,
    timeout: float = 10.0,
    smoke: bool = False,
    bundle: str | None = None,
) -> int:
    """Check ``bundle`` (default: the current directory); 0 if it would run."""
    from pyruntime.errors import UsageError

    check_format(fmt)
    if timeout <= 0:
        raise UsageError("--timeout must be greater than 0")
    from pyruntime.check import check_bundle

    path = os.path.abspath(bundle or ".")
    run_timeout = timeout if smoke else None
    report = check_bundle(path, config_name, glob.systemd_cgroup, run_timeout)
    if fmt == "json":
        from pyruntime.check.render import render_json

        write_out(render_json(report))
    else:
        from pyruntime.check.render import render_text, use_colour

        write_out(render_text(report, use_colour(sys.stdout)))
    return 0 if report.runnable else 1


def run_explain(
    glob, fmt: str, config_name: str, container_id: str | None, bundle: str | None
) -> int:
    """Print what create, start and delete would do; 1 if it has problems."""
    check_format(fmt)
    from pyruntime.explain import explain_bundle, render_json, render_text

    plan = explain_bundle(
        os.path.abspath(bundle or "."),
        config_name,
        root=glob.root,
        container_id=container_id,
        systemd_cgroup=glob.systemd_cgroup,
    )
    write_out(render_json(plan) if fmt == "json" else render_text(plan))
    return 1 if plan["problems"] else 0


def write_out(text: str) -> None:
    """Write ``text`` to stdout, flushed.

    If the reader has gone (``check | head -1``), leave at once with status
    1 and not a word, as click does with a broken pipe: what could not be
    written is dropped, not flushed again at exit.
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os._exit(1)
