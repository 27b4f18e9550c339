"""The commands that look at a bundle without running it: ``check`` and ``explain``.

Both take the bundle directory as their argument (default: the current
directory), read it and this host, and change nothing; ``check --run`` then
runs the bundle through the real CLI, with a private state root, as a smoke
test. The work is in :mod:`pyruntime.check` and :mod:`pyruntime.explain`,
imported only when a command runs, so these commands cost nothing to the
others' start-up.
"""

from __future__ import annotations

import os
import sys

import click

from pyruntime.errors import UsageError

FORMATS = ("text", "json")


def check_format(fmt: str) -> None:
    """``--format`` is text or json."""
    if fmt not in FORMATS:
        raise UsageError(f"invalid format option: {fmt} (text or json)")


@click.command()
@click.option("-f", "--format", "fmt", default="text", help="text or json")
@click.option(
    "--config",
    "config_name",
    default="config.json",
    help="the config file in the bundle (default: config.json)",
)
@click.option(
    "--run", "smoke", is_flag=True, help="also run the bundle as a smoke test"
)
@click.option(
    "--timeout",
    default=10.0,
    type=float,
    help="seconds the smoke test may take (default: 10)",
)
@click.argument("bundle", required=False)
@click.pass_context
def check(ctx, fmt, config_name, smoke, timeout, bundle):
    """Report every problem of a bundle; exit 1 if it would not run."""
    from pyruntime.check import check_bundle
    from pyruntime.check.render import render_json, render_text, use_colour

    check_format(fmt)
    if timeout <= 0:
        raise UsageError("--timeout must be greater than 0")
    path = os.path.abspath(bundle or ".")
    run_timeout = timeout if smoke else None
    report = check_bundle(path, config_name, ctx.obj.systemd_cgroup, run_timeout)
    if fmt == "json":
        sys.stdout.write(render_json(report))
    else:
        sys.stdout.write(render_text(report, use_colour(sys.stdout)))
    sys.stdout.flush()
    return 0 if report.runnable else 1


@click.command()
@click.option("-f", "--format", "fmt", default="text", help="text or json")
@click.option(
    "--config",
    "config_name",
    default="config.json",
    help="the config file in the bundle (default: config.json)",
)
@click.option(
    "--id",
    "container_id",
    default=None,
    help="the container id to show in paths (default: <id>)",
)
@click.argument("bundle", required=False)
@click.pass_context
def explain(ctx, fmt, config_name, container_id, bundle):
    """Print, in order, what create, start and delete would do."""
    import json

    from pyruntime.explain import explain_bundle, render_text

    check_format(fmt)
    plan = explain_bundle(
        os.path.abspath(bundle or "."),
        config_name,
        root=ctx.obj.root,
        container_id=container_id,
        systemd_cgroup=ctx.obj.systemd_cgroup,
    )
    if fmt == "json":
        sys.stdout.write(json.dumps(plan, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_text(plan))
    sys.stdout.flush()
    return 1 if plan["problems"] else 0


COMMANDS = [check, explain]
