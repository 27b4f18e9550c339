"""The click command group: the full command line, with help and errors.

Only commands the fast path (:mod:`pyruntime.cli.fast`) does not take come
here: ``--help``, ``--version``, a command line it does not recognise, and
the commands it does not have (``ps``, ``events``, ``update``, ``spec``...;
it has ``state``, ``kill``, ``start``, ``delete``, ``list``, ``create``,
``run``, ``exec``, ``check`` and ``explain``). Importing click costs more
than a whole ``state`` command, which is why this module is kept apart from
:mod:`pyruntime.cli.main`.
"""

from __future__ import annotations

import os

import click

from pyruntime import NAME, log
from pyruntime.cli.main import Globals, default_root, version_text
from pyruntime.errors import UsageError


def show_version(ctx: click.Context, _param, value: bool) -> None:
    """The eager ``-v/--version`` callback."""
    if value and not ctx.resilient_parsing:
        click.echo(version_text())
        ctx.exit(0)


CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=CONTEXT)
@click.option("--root", default=None, help="state directory of containers")
@click.option("--log", "log_path", default=None, help="log file (default: stderr)")
@click.option("--log-format", default="text", help="text or json")
@click.option("--debug", is_flag=True, help="narrate every step in the log")
@click.option("--systemd-cgroup", is_flag=True, help="use the systemd cgroup driver")
@click.option("--rootless", default="auto", help="true, false or auto")
@click.option("--criu", default=None, hidden=True, help="accepted and ignored")
@click.option(
    "-v",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=show_version,
    help="print the version",
)
@click.pass_context
def cli(ctx, root, log_path, log_format, debug, systemd_cgroup, rootless, criu):
    """pyruntime: run OCI containers, the way runc does."""
    log.configure(log_path, log_format, debug)
    if rootless not in ("true", "false", "auto"):
        raise UsageError(f"invalid --rootless value {rootless!r}: true, false or auto")
    root = os.path.abspath(root) if root else default_root()
    if root == "/":
        raise UsageError("--root must not be /")
    ctx.obj = Globals(root, systemd_cgroup, rootless)


_registered = False


def register_commands() -> None:
    """Attach the subcommands (kept in their own module), once."""
    global _registered
    if _registered:
        return
    from pyruntime.cli import commands

    for command in commands.COMMANDS:
        cli.add_command(command)
    _registered = True


def run_click(args: list[str]) -> int:
    """Parse and run ``args`` with click; return the exit status.

    Errors of the runtime (:class:`pyruntime.errors.RuntimeError_`) and
    KeyboardInterrupt are left to the caller's error boundary.
    """
    from pyruntime.cli.flags import normalize_argv

    register_commands()
    args = normalize_argv(args, cli)
    if not args:
        # As runc: no command at all prints the help, and that is no error.
        args = ["--help"]
    try:
        result = cli.main(args, prog_name=NAME, standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        return 130
    except click.ClickException as err:
        if (
            isinstance(err, click.UsageError)
            and err.ctx
            and err.message == ("Missing command.")
        ):
            # Global flags and no command: the help, as runc prints it.
            click.echo(err.ctx.get_help())
            return 0
        report_usage(err)
        return 1
    return result if isinstance(result, int) else 0


def report_usage(err: click.ClickException) -> None:
    """A command-line mistake: one line on stderr (and in the log)."""
    message = err.format_message()
    if isinstance(err, click.NoSuchOption):
        # Go's flag package names the flag with one dash, however it was given.
        message = f"flag provided but not defined: -{err.option_name.lstrip('-')}"
    log.fail(message)
