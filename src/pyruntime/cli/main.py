"""The command line: runc's grammar on top of click, and the error boundary.

``main()`` is the only place where errors become output: each failure is
logged once at level ``error`` to the log destination (``--log`` or
stderr) and, when that is a file, also printed bare on stderr, as runc does;
then the process exits 1 (``run`` and ``exec`` exit with the container's
status instead).
"""

from __future__ import annotations

import os
import sys

import click

from pyruntime import NAME, OCI_VERSION, __version__, log
from pyruntime.errors import RuntimeError_, UsageError

DEFAULT_ROOT = f"/run/{NAME}"


class Globals:
    """The global flags, handed to every subcommand."""

    def __init__(self, root: str, systemd_cgroup: bool, rootless: str) -> None:
        self.root = root
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless


def default_root() -> str:
    """``/run/pyruntime`` for root; ``$XDG_RUNTIME_DIR/pyruntime`` otherwise.

    An empty XDG_RUNTIME_DIR counts as unset: podman passes it empty for root.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.geteuid() != 0 and xdg:
        return os.path.join(xdg, NAME)
    return DEFAULT_ROOT


def version_text() -> str:
    """runc's three-line ``--version`` shape, with our own name."""
    import platform

    return (
        f"{NAME} version {__version__}\n"
        f"commit: {read_commit()}\n"
        f"spec: {OCI_VERSION}\n"
        f"python: {platform.python_version()}"
    )


def read_commit() -> str:
    """The git commit pyruntime runs from, when it runs from a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    git = os.path.join(here, "..", "..", "..", ".git")
    try:
        with open(os.path.join(git, "HEAD")) as handle:
            head = handle.read().strip()
        if head.startswith("ref: "):
            with open(os.path.join(git, head[5:])) as handle:
                head = handle.read().strip()
        return head[:12]
    except OSError:
        return "unknown"


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


def register_commands() -> None:
    """Attach the subcommands (kept in their own module)."""
    from pyruntime.cli import commands

    for command in commands.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: parse, run, turn errors into runc-shaped output."""
    from pyruntime.cli.flags import normalize_argv

    register_commands()
    args = normalize_argv(list(sys.argv[1:] if argv is None else argv), cli)
    try:
        result = cli.main(args, prog_name=NAME, standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as err:
        report_usage(err)
        sys.exit(1)
    except RuntimeError_ as err:
        log.fail(str(err))
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


def report_usage(err: click.ClickException) -> None:
    """A command-line mistake: one line on stderr (and in the log)."""
    message = err.format_message()
    if isinstance(err, click.NoSuchOption):
        message = f"flag provided but not defined: {err.option_name}"
    log.fail(message)
