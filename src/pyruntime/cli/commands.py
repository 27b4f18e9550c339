"""The subcommands: parse flags, call :mod:`pyruntime.container`, print.

Each command is thin. Output formats follow runc exactly: ``state`` prints
2-space-indented JSON without a trailing newline; ``list --format json``
prints compact JSON and ``null`` for no containers; ``features`` prints
4-space-indented JSON.
"""

from __future__ import annotations

import json
import os
import sys

import click

from pyruntime.errors import UsageError

SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "ILL": 4,
    "TRAP": 5,
    "ABRT": 6,
    "IOT": 6,
    "BUS": 7,
    "FPE": 8,
    "KILL": 9,
    "USR1": 10,
    "SEGV": 11,
    "USR2": 12,
    "PIPE": 13,
    "ALRM": 14,
    "TERM": 15,
    "STKFLT": 16,
    "CHLD": 17,
    "CLD": 17,
    "CONT": 18,
    "STOP": 19,
    "TSTP": 20,
    "TTIN": 21,
    "TTOU": 22,
    "URG": 23,
    "XCPU": 24,
    "XFSZ": 25,
    "VTALRM": 26,
    "PROF": 27,
    "WINCH": 28,
    "IO": 29,
    "POLL": 29,
    "PWR": 30,
    "SYS": 31,
}


def parse_signal(text: str) -> int:
    """A signal number, or a name with or without ``SIG`` in any case."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name.removeprefix("SIG")
    if name not in SIGNALS:
        raise UsageError(f'unknown signal "{text}"')
    return SIGNALS[name]


def require_args(ctx: click.Context, args: tuple, count: int, at_least=False) -> None:
    """runc's argument-count check and message."""
    wrong = len(args) < count if at_least else len(args) != count
    if wrong:
        kind = "at least" if at_least else "exactly"
        click.echo("Incorrect Usage.\n")
        click.echo(ctx.get_help())
        raise UsageError(
            f'pyruntime: "{ctx.command.name}" requires {kind} {count} argument(s)'
        )


def create_options(
    ctx, bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds
):
    """Build CreateOptions; paths are made absolute before anything else."""
    from pyruntime.container import CreateOptions

    return CreateOptions(
        bundle=os.path.abspath(bundle or "."),
        pid_file=os.path.abspath(pid_file) if pid_file else None,
        console_socket=os.path.abspath(console_socket) if console_socket else None,
        no_pivot=no_pivot,
        no_new_keyring=no_new_keyring,
        preserve_fds=preserve_fds,
        systemd_cgroup=ctx.obj.systemd_cgroup,
    )


def create_flags(func):
    """The flags shared by ``create`` and ``run``."""
    decorators = [
        click.option("-b", "--bundle", default=None, help="bundle directory"),
        click.option("--pid-file", default=None, help="write init's pid here"),
        click.option(
            "--console-socket", default=None, help="AF_UNIX socket for the pty"
        ),
        click.option(
            "--no-pivot", is_flag=True, help="use move+chroot, not pivot_root"
        ),
        click.option("--no-new-keyring", is_flag=True, help="keep the session keyring"),
        click.option("--preserve-fds", default=0, type=int, help="fds to pass on"),
        click.option("--pidfd-socket", default=None, hidden=True),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.command()
@create_flags
@click.argument("args", nargs=-1)
@click.pass_context
def create(
    ctx,
    args,
    bundle,
    pid_file,
    console_socket,
    no_pivot,
    no_new_keyring,
    preserve_fds,
    pidfd_socket,
):
    """Create a container; its program runs only at ``start``."""
    from pyruntime import container

    require_args(ctx, args, 1)
    opts = create_options(
        ctx, bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds
    )
    container.create(ctx.obj.root, args[0], opts)


@click.command()
@click.argument("args", nargs=-1)
@click.pass_context
def start(ctx, args):
    """Run the program of a created container."""
    from pyruntime import container

    require_args(ctx, args, 1)
    container.start(ctx.obj.root, args[0])


@click.command()
@create_flags
@click.option("-d", "--detach", is_flag=True, help="do not wait for the container")
@click.option("--keep", is_flag=True, help="do not delete the container after exit")
@click.option("--no-subreaper", is_flag=True, hidden=True)
@click.argument("args", nargs=-1)
@click.pass_context
def run(
    ctx,
    args,
    bundle,
    pid_file,
    console_socket,
    no_pivot,
    no_new_keyring,
    preserve_fds,
    pidfd_socket,
    detach,
    keep,
    no_subreaper,
):
    """Create and start a container; wait for it unless detached."""
    from pyruntime import container

    require_args(ctx, args, 1)
    opts = create_options(
        ctx, bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds
    )
    return container.run(ctx.obj.root, args[0], opts, detach=detach, keep=keep)


@click.command()
@click.argument("args", nargs=-1)
@click.pass_context
def state(ctx, args):
    """Print a container's state as JSON."""
    from pyruntime import container

    require_args(ctx, args, 1)
    view = container.describe(ctx.obj.root, args[0])
    sys.stdout.write(json.dumps(view, indent=2))
    sys.stdout.flush()


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("-a", "--all", "all_processes", is_flag=True, help="signal every process")
@click.argument("args", nargs=-1)
@click.pass_context
def kill(ctx, all_processes, args):
    """Send a signal (default SIGTERM) to a container's init."""
    from pyruntime import container

    if len(args) not in (1, 2):
        require_args(ctx, args, 1)
    sig = parse_signal(args[1]) if len(args) == 2 else 15
    container.kill(ctx.obj.root, args[0], sig, all_processes)


@click.command()
@click.option("-f", "--force", is_flag=True, help="kill a running container first")
@click.argument("args", nargs=-1)
@click.pass_context
def delete(ctx, force, args):
    """Delete a container and everything it holds."""
    from pyruntime import container

    require_args(ctx, args, 1)
    container.delete(ctx.obj.root, args[0], force)


@click.command(name="list")
@click.option("-f", "--format", "fmt", default="table", help="table or json")
@click.option("-q", "--quiet", is_flag=True, help="print only the ids")
@click.pass_context
def list_(ctx, fmt, quiet):
    """List the containers under the state root."""
    from pyruntime import container

    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option: {fmt}")
    views = container.list_containers(ctx.obj.root)
    if quiet:
        for view in views:
            click.echo(view["id"])
    elif fmt == "json":
        click.echo(json.dumps(views or None, separators=(",", ":")))
    else:
        click.echo(format_table(views), nl=False)


def format_table(views: list[dict]) -> str:
    """Align like Go's tabwriter(minwidth 12, padding 3); last column unpadded."""
    header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = [header] + [
        [v["id"], str(v["pid"]), v["status"], v["bundle"], v["created"], v["owner"]]
        for v in views
    ]
    widths = [max(12, max(len(row[i]) for row in rows) + 3) for i in range(5)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:5])]
        lines.append("".join(cells) + row[5] + "\n")
    return "".join(lines)


@click.command()
@click.option("-b", "--bundle", default=None, help="where to write config.json")
@click.option("--rootless", is_flag=True, help="a config for unprivileged users")
def spec(bundle, rootless):
    """Write a starter config.json."""
    from pyruntime.spec.defaults import write_default_spec

    write_default_spec(os.path.abspath(bundle or "."), rootless)


@click.command()
def features():
    """Print what this runtime supports, as the runtime-spec features JSON."""
    from pyruntime.features import features_document

    click.echo(json.dumps(features_document(), indent=4))


def not_yet(name: str, issue: int, summary: str) -> click.Command:
    """A runc command pyruntime does not have yet: a clear error, not a no-op."""

    @click.command(
        name=name,
        help=f"{summary} (not implemented yet)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command():
        from pyruntime.errors import UnsupportedError

        raise UnsupportedError(
            f"`{name}` is not implemented yet in pyruntime (planned: issue #{issue})"
        )

    return command


COMMANDS = [
    create,
    start,
    run,
    state,
    kill,
    delete,
    list_,
    spec,
    features,
    not_yet("exec", 5, "Run a new process inside a container"),
    not_yet("ps", 4, "List the processes of a container"),
    not_yet("events", 4, "Stream a container's stats and OOM events"),
    not_yet("pause", 4, "Freeze every process of a container"),
    not_yet("resume", 4, "Thaw a paused container"),
    not_yet("update", 4, "Change a container's resource limits"),
    not_yet("checkpoint", 5, "Checkpoint a container (needs CRIU)"),
    not_yet("restore", 5, "Restore a container from a checkpoint"),
]
