"""The subcommands: parse flags, call :mod:`pyruntime.container`, print.

Each command is thin. Output formats follow runc exactly: ``state`` prints
2-space-indented JSON without a trailing newline; ``list --format json``
prints compact JSON and ``null`` for no containers; ``features`` prints
4-space-indented JSON; ``ps --format json`` prints a compact array of host
pids (``null`` for none) and ``events`` one compact JSON object per line.
"""

from __future__ import annotations

import json
import os
import sys

import click

from pyruntime.cli.flags import parse_go_int
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
    from pyruntime.cli.fast import parse_signal as parse

    return parse(text)


def refuse_leading_flag(args: tuple) -> None:
    """An unknown flag before the container id is an error, as in runc.

    ``kill`` and ``ps`` take what follows the id as it comes (``ps``'s
    options for ps(1)), so click lets unknown options through to them;
    before the id, Go's flag parser would still be reading flags.
    """
    if args and args[0].startswith("-") and args[0] != "-":
        raise click.NoSuchOption(args[0])


def require_args(
    ctx: click.Context, args: tuple, count: int, at_least=False, at_most=False
) -> None:
    """runc's argument-count check and message."""
    if at_least:
        wrong, kind = len(args) < count, "a minimum of"
    elif at_most:
        wrong, kind = len(args) > count, "a maximum of"
    else:
        wrong, kind = len(args) != count, "exactly"
    if wrong:
        click.echo("Incorrect Usage.\n")
        click.echo(ctx.get_help())
        raise UsageError(
            f'pyruntime: "{ctx.command.name}" requires {kind} {count} argument(s)'
        )


def require_container(ctx: click.Context, container_id: str) -> None:
    """Fail as runc does when ``container_id`` names no container."""
    from pyruntime.state.store import open_container

    with open_container(ctx.obj.root, container_id, lock=False):
        pass


def refuse_non_integer(flag: str, value: str | None) -> None:
    """An integer flag of runc's (Go's flag package) that is not one."""
    if value is not None and parse_go_int(value) is None:
        raise UsageError(f'invalid value "{value}" for flag -{flag}: parse error')


class GoInteger(click.ParamType):
    """An integer flag read, and refused, as runc's flag parser does.

    A repeatable flag (urfave/cli's ``Int64Slice``) words its error with
    strconv's message; a plain one says Go's "parse error".
    """

    name = "integer"

    def __init__(self, repeatable: bool = False) -> None:
        self.repeatable = repeatable

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        number = parse_go_int(str(value), 10 if self.repeatable else 0)
        if number is not None:
            return number
        flag = max(param.opts, key=len).lstrip("-") if param else "value"
        reason = "parse error"
        if self.repeatable:
            reason = f'strconv.ParseInt: parsing "{value}": invalid syntax'
        raise click.UsageError(f'invalid value "{value}" for flag -{flag}: {reason}')


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
        click.option(
            "--preserve-fds", default=0, type=GoInteger(), help="fds to pass on"
        ),
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
    """Create a container; its program runs only at `start`."""
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
    from pyruntime.state.view import describe

    require_args(ctx, args, 1)
    view = describe(ctx.obj.root, args[0])
    sys.stdout.write(json.dumps(view, indent=2))
    sys.stdout.flush()


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("-a", "--all", "all_processes", is_flag=True, help="signal every process")
@click.argument("args", nargs=-1)
@click.pass_context
def kill(ctx, all_processes, args):
    """Send a signal (default SIGTERM) to a container's init."""
    from pyruntime import container

    refuse_leading_flag(args)
    if len(args) < 1:
        require_args(ctx, args, 1, at_least=True)
    if len(args) > 2:
        require_args(ctx, args, 2, at_most=True)
    require_container(ctx, args[0])  # as runc: before the signal is read
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
    from pyruntime.state.view import format_table, list_views

    views = list_views(ctx.obj.root)
    # As runc: --quiet prints the ids whatever the format says.
    if quiet:
        for view in views:
            click.echo(view["id"])
    elif fmt == "json":
        click.echo(json.dumps(views or None, separators=(",", ":")))
    elif fmt == "table":
        click.echo(format_table(views), nl=False)
    else:
        raise UsageError("invalid format option")


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


# ------------------------------------------------------- cgroup commands


def write_event(event: dict) -> None:
    """One ``events`` line: compact JSON, newline, flushed at once."""
    sys.stdout.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("-f", "--format", "fmt", default="table", help="table or json")
@click.argument("args", nargs=-1)
@click.pass_context
def ps(ctx, fmt, args):
    """List a container's processes; arguments after the id go to ps(1)."""
    from pyruntime import control

    refuse_leading_flag(args)
    require_args(ctx, args, 1, at_least=True)
    pids = control.list_pids(ctx.obj.root, args[0])  # the container comes first
    if fmt == "json":
        # runc encodes a nil slice: no process is `null`.
        click.echo(json.dumps(pids or None, separators=(",", ":")))
        return
    if fmt != "table":
        raise UsageError("invalid format option")
    sys.stdout.write(control.ps_table(pids, list(args[1:])))
    sys.stdout.flush()


@click.command()
@click.option("--interval", default="5s", help="stats period (Go duration)")
@click.option("--stats", "stats_only", is_flag=True, help="print stats once, exit")
@click.argument("args", nargs=-1)
@click.pass_context
def events(ctx, interval, stats_only, args):
    """Print a container's stats and OOM events as JSON lines."""
    from pyruntime import control

    require_args(ctx, args, 1)
    try:
        seconds = control.parse_duration(interval)
    except ValueError:
        raise UsageError(
            f'invalid value "{interval}" for flag -interval: parse error'
        ) from None
    require_container(ctx, args[0])  # as runc: before the interval's value
    if seconds <= 0:
        raise UsageError("duration interval must be greater than 0")
    try:
        if stats_only:
            write_event(control.stats(ctx.obj.root, args[0]))
        else:
            from pyruntime.cli.main import resume_garbage_collector

            resume_garbage_collector()  # it runs until stopped
            control.events(ctx.obj.root, args[0], seconds, write_event)
    except BrokenPipeError:
        # The reader went away: stop quietly, as a pipeline stage should.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@click.command()
@click.argument("args", nargs=-1)
@click.pass_context
def pause(ctx, args):
    """Freeze every process of a container."""
    from pyruntime import control

    require_args(ctx, args, 1)
    control.pause(ctx.obj.root, args[0])


@click.command()
@click.argument("args", nargs=-1)
@click.pass_context
def resume(ctx, args):
    """Thaw a paused container."""
    from pyruntime import control

    require_args(ctx, args, 1)
    control.resume(ctx.obj.root, args[0])


#: ``update``'s resource flags (see pyruntime.cgroups.update.FLAGS).
UPDATE_FLAGS = {
    "blkio-weight": "per-cgroup block I/O weight, 10 to 1000",
    "cpu-period": "CPU CFS period (µs); 0 for the default",
    "cpu-quota": "CPU CFS quota (µs) per period; -1 for none",
    "cpu-burst": "CPU CFS burst (µs) above the quota",
    "cpu-share": "CPU shares (relative weight)",
    "cpu-rt-period": "realtime period (µs)",
    "cpu-rt-runtime": "realtime runtime (µs) per period",
    "cpuset-cpus": "CPUs to run on (e.g. 0-2,5)",
    "cpuset-mems": "memory nodes to use",
    "cpu-idle": "1: SCHED_IDLE for the cgroup, 0: normal",
    "memory": "memory limit (bytes, or 128M, 1g; -1 for none)",
    "memory-reservation": "memory soft limit (bytes or with a unit)",
    "memory-swap": "memory+swap limit (bytes or with a unit; -1 for none)",
    "pids-limit": "maximum number of processes",
}


def update_flags(func):
    """The resource flags of ``update``, each a string parsed later."""
    decorators = [
        click.option("-r", "--resources", default=None, help="JSON file, - for stdin"),
        *(
            click.option(f"--{name}", name.replace("-", "_"), default=None, help=text)
            for name, text in UPDATE_FLAGS.items()
        ),
        click.option("--l3-cache-schema", default=None, help="Intel RDT/CAT schema"),
        click.option("--mem-bw-schema", default=None, help="Intel RDT/MBA schema"),
        click.option("--kernel-memory", default=None, hidden=True),
        click.option("--kernel-memory-tcp", default=None, hidden=True),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def read_resources(path: str) -> tuple[str, str]:
    """Return the ``--resources`` text and a name for it in messages."""
    if path == "-":
        return sys.stdin.read(), "resources (stdin)"
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), f"resources file `{path}`"
    except OSError as err:
        raise UsageError(f"open `{path}`: {err.strerror.lower()}") from None


@click.command()
@update_flags
@click.argument("args", nargs=-1)
@click.pass_context
def update(ctx, args, resources, l3_cache_schema, mem_bw_schema, **flags):
    """Change a running container's resource limits."""
    from pyruntime import control
    from pyruntime import log as logger
    from pyruntime.cgroups.update import parse_resources_json, resources_from_flags

    require_args(ctx, args, 1)
    refuse_non_integer("pids-limit", flags.get("pids_limit"))
    require_container(ctx, args[0])  # as runc: before any value is read
    ignored: list[str] = []
    if resources is not None:
        # As in runc, a resources document makes every other flag ignored.
        change, ignored = parse_resources_json(*read_resources(resources))
    else:
        if flags.pop("kernel_memory") or flags.pop("kernel_memory_tcp"):
            logger.warning("Kernel memory settings are ignored and will be removed")
        values = {name: flags.get(name.replace("-", "_")) for name in UPDATE_FLAGS}
        change = resources_from_flags(values)
    control.update(
        ctx.obj.root,
        args[0],
        change,
        ignored=ignored,
        l3_cache_schema=l3_cache_schema,
        mem_bw_schema=mem_bw_schema,
    )


# ------------------------------------------------------------------- exec


def exec_flags(func):
    """The flags of ``exec``, as runc spells them (repeatable ones accumulate)."""
    decorators = [
        click.option(
            "--console-socket", default=None, help="AF_UNIX socket for the pty"
        ),
        click.option("--cwd", default=None, help="working directory in the container"),
        click.option("-e", "--env", multiple=True, help="add KEY=VALUE (repeatable)"),
        click.option("-t", "--tty", is_flag=True, help="allocate a pseudo-terminal"),
        click.option("-u", "--user", default=None, help="UID[:GID]"),
        click.option(
            "-g",
            "--additional-gids",
            multiple=True,
            type=GoInteger(repeatable=True),
            help="extra group",
        ),
        click.option("-p", "--process", "process_file", help="path to process.json"),
        click.option("-d", "--detach", is_flag=True, help="do not wait for it"),
        click.option("--pid-file", default=None, help="write the process's pid here"),
        click.option("--process-label", default=None, help="SELinux label"),
        click.option("--apparmor", default=None, help="AppArmor profile"),
        click.option("--no-new-privs", is_flag=True, help="set no_new_privs"),
        click.option("-c", "--cap", "caps", multiple=True, help="add a capability"),
        click.option(
            "--preserve-fds", default=0, type=GoInteger(), help="fds to pass on"
        ),
        click.option("--cgroup", "cgroups", multiple=True, help="[CTRL:]SUB-CGROUP"),
        click.option("--ignore-paused", is_flag=True, help="exec while paused"),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.command(name="exec", context_settings={"allow_interspersed_args": False})
@exec_flags
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx, args, **flags):
    """Run a new process inside a container: ID COMMAND [ARG...] or -p FILE ID."""
    from pyruntime.cli.fast_exec import run_exec

    require_args(ctx, args, 1, at_least=True)
    return run_exec(ctx.obj.root, args, flags)


def not_yet(name: str, summary: str) -> click.Command:
    """A runc command pyruntime does not have: a clear error, not a no-op."""

    @click.command(
        name=name,
        help=f"{summary} (not supported)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command():
        from pyruntime.errors import UnsupportedError

        raise UnsupportedError(
            f"`{name}` is not supported by pyruntime: checkpoint and restore "
            "through CRIU are not implemented"
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
    exec_,
    ps,
    events,
    pause,
    resume,
    update,
    not_yet("checkpoint", "Checkpoint a container (needs CRIU)"),
    not_yet("restore", "Restore a container from a checkpoint"),
]
COMMANDS += __import__("pyruntime.cli.inspect", fromlist=["COMMANDS"]).COMMANDS
