"""The commands that look at a bundle without running it: ``check`` and ``explain``.

Both take the bundle directory as their argument (default: the current
directory), read it and this host, and change nothing; ``check --run`` then
runs the bundle through the real CLI, with a private state root, as a smoke
test. The work is in :mod:`pyruntime.check` and :mod:`pyruntime.explain`,
imported only when a command runs, so these commands cost nothing to the
others' start-up. The common cases (everything but ``check --run``) are
taken by the fast path without click; both readings call the same
functions of :mod:`pyruntime.cli.fast_inspect`.
"""

from __future__ import annotations

import click

from pyruntime.cli.fast_inspect import (
    CONFIG_NAME,
    check_format,
    run_check,
    run_explain,
)

__all__ = ["COMMANDS", "check", "check_format", "explain"]


@click.command()
@click.option("-f", "--format", "fmt", default="text", help="text or json")
@click.option(
    "--config",
    "config_name",
    default=CONFIG_NAME,
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
    return run_check(ctx.obj, fmt, config_name, timeout, smoke, bundle)


@click.command()
@click.option("-f", "--format", "fmt", default="text", help="text or json")
@click.option(
    "--config",
    "config_name",
    default=CONFIG_NAME,
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
    return run_explain(ctx.obj, fmt, config_name, container_id, bundle)


COMMANDS = [check, explain]
