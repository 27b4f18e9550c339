"""The fast path: the everyday commands, without click and without heavy imports.

An engine runs the runtime several times per container (``create``,
``start``, ``state``, ``kill``, ``delete``), so each command's start-up is
paid again and again. Importing click costs more than a whole ``state``
command may take; so does :mod:`pyruntime.container`, with the spec,
cgroup, security and process modules it needs for ``create``. This module
therefore

1. parses runc's grammar for ``state``, ``kill``, ``start``, ``delete``,
   ``list``, ``create``, ``run`` and ``exec``: the global flags (``--root``,
   ``--log``, ``--log-format``, ``--debug``, ``--systemd-cgroup``,
   ``--rootless``, ``--criu``) and each command's own, spelled ``--flag
   value``, ``--flag=value``, Go's ``-flag`` and ``-flag=value``, booleans as
   ``--flag=true|false``, and repeated options (``exec --env``), exactly as
   :mod:`pyruntime.cli.flags` rewrites them for click;
2. runs the common case of ``state``, ``kill``, ``start``, ``delete`` and
   ``list`` itself, from the state directory alone, and hands everything
   else to :mod:`pyruntime.container` (``create`` and ``run`` always), or
   to :mod:`pyruntime.execution` (``exec``, see :mod:`.fast_exec`).

Anything it does not recognise (``--help``, ``--version``, an unknown or
misspelt flag, a wrong number of arguments, an option after the container
id, another command) makes :func:`run` return ``None`` before it has done
anything, and the caller parses the command line again with click, which
prints the help or the exact error. Outputs, exit statuses, error messages
and log lines are those of the click commands in :mod:`pyruntime.cli.commands`.

The common cases, and what makes a command leave them for
:mod:`pyruntime.container` (which then does the whole command again, from
the start, under its own lock):

- ``kill ID [SIGNAL]`` of a created or running container: a pidfd signal to
  init. ``--all``, a paused or half-created container go the long way.
- ``start ID`` of a created container without poststart hooks: the
  exec.fifo handshake of :func:`pyruntime.process.fifo.release_init`,
  repeated here (that module imports :mod:`socket` and :mod:`json`).
- ``delete ID`` of a stopped container without poststop hooks whose cgroups
  hold no process and no child cgroup: ``rmdir`` of each, then the state
  directory. A live init, leftover processes or a busy cgroup go the long way.
"""

from __future__ import annotations

import os
import sys

from pyruntime import log
from pyruntime.cli import fast_exec, fast_inspect
from pyruntime.cli.flags import FALSE_WORDS, TRUE_WORDS, parse_go_int
from pyruntime.cli.main import Globals, default_root
from pyruntime.errors import (
    ContainerNotFoundError,
    SetupError,
    StateCorruptError,
    StateError,
    UsageError,
)


class _Fallback(Exception):
    """The command line is not one the fast path takes: use click."""


#: Option name -> (destination, is a boolean flag).
_GLOBAL_OPTIONS = {
    "--root": ("root", False),
    "--log": ("log_path", False),
    "--log-format": ("log_format", False),
    "--debug": ("debug", True),
    "--systemd-cgroup": ("systemd_cgroup", True),
    "--rootless": ("rootless", False),
    "--criu": ("criu", False),
}
_GLOBAL_DEFAULTS = {
    "root": None,
    "log_path": None,
    "log_format": "text",
    "debug": False,
    "systemd_cgroup": False,
    "rootless": "auto",
    "criu": None,
}

_CREATE_OPTIONS = {
    "-b": ("bundle", False),
    "--bundle": ("bundle", False),
    "--pid-file": ("pid_file", False),
    "--console-socket": ("console_socket", False),
    "--no-pivot": ("no_pivot", True),
    "--no-new-keyring": ("no_new_keyring", True),
    "--preserve-fds": ("preserve_fds", False),
    "--pidfd-socket": ("pidfd_socket", False),
}
_CREATE_DEFAULTS = {
    "bundle": None,
    "pid_file": None,
    "console_socket": None,
    "no_pivot": False,
    "no_new_keyring": False,
    "preserve_fds": "0",
    "pidfd_socket": None,
}
_RUN_OPTIONS = {
    **_CREATE_OPTIONS,
    "-d": ("detach", True),
    "--detach": ("detach", True),
    "--keep": ("keep", True),
    "--no-subreaper": ("no_subreaper", True),
}
_RUN_DEFAULTS = {
    **_CREATE_DEFAULTS,
    "detach": False,
    "keep": False,
    "no_subreaper": False,
}


class _Command:
    """One command the fast path takes: its options and argument count.

    ``nargs`` is (minimum, maximum), the maximum None for "any number".
    With ``program_args``, the arguments after the first belong to the
    container's program (``exec``): they are taken as they are, dashes and
    all, as click does with ``allow_interspersed_args`` off.
    """

    def __init__(
        self, handler, options=None, defaults=None, nargs=(1, 1), program_args=False
    ) -> None:
        self.handler = handler
        self.options = options or {}
        self.defaults = defaults or {}
        self.min_args, self.max_args = nargs
        self.program_args = program_args


#: Options read as integers, with the base runc reads them in: Go's flag
#: package (0: prefixes allowed) or urfave/cli's slice flags (10).
_INTEGER_OPTIONS = {"preserve_fds": 0, "additional_gids": 10}


def parse(argv: list[str]):
    """Return ``(globals, command name, options, arguments)``, or None for click."""
    try:
        values = dict(_GLOBAL_DEFAULTS)
        index = _parse_options(argv, 0, _GLOBAL_OPTIONS, values)
        if index >= len(argv):
            raise _Fallback
        name = argv[index]
        command = COMMANDS.get(name)
        if command is None:
            raise _Fallback
        options = dict(command.defaults)
        index = _parse_options(argv, index + 1, command.options, options)
        args = argv[index:]
        # click takes options after the arguments too: leave those to it
        # (not after exec's id: from there on, they are the program's).
        if not command.program_args and any(
            arg.startswith("-") and arg != "-" for arg in args
        ):
            raise _Fallback
        if not _count_fits(command, len(args)):
            raise _Fallback  # click prints "Incorrect Usage" and the help
        _convert_integers(options)
    except _Fallback:
        return None
    return values, name, options, args


def _count_fits(command: _Command, count: int) -> bool:
    """Tell whether ``command`` takes ``count`` arguments."""
    if count < command.min_args:
        return False
    return command.max_args is None or count <= command.max_args


def _convert_integers(options: dict) -> None:
    """Make integers of the integer options; one runc refuses goes to click."""
    for dest, base in _INTEGER_OPTIONS.items():
        if dest not in options:
            continue
        value = options[dest]
        items = value if isinstance(value, tuple) else (value,)
        numbers = tuple(parse_go_int(str(item), base) for item in items)
        if None in numbers:
            raise _Fallback  # click says what runc says
        options[dest] = numbers if isinstance(value, tuple) else numbers[0]


def _parse_options(argv: list[str], index: int, table: dict, values: dict) -> int:
    """Read options from ``argv[index:]`` into ``values``; return where they end.

    An option whose value in ``values`` is a tuple (its default) is
    repeatable: each use adds its value at the end, as click's
    ``multiple=True``. Any other option's last use wins.
    """
    while index < len(argv):
        arg = argv[index]
        if arg == "-" or not arg.startswith("-"):
            return index
        name, sep, value = arg.partition("=")
        if not name.startswith("--"):
            if len(name) > 2 and "-" + name in table:
                name = "-" + name  # Go's single-dash long flag
            elif sep:
                raise _Fallback  # click reads ``-b=x`` as ``-b`` with ``=x``
        entry = table.get(name)
        if entry is None:
            raise _Fallback  # --help, --version, a typo, ``--``: click's call
        dest, is_flag = entry
        index += 1
        if is_flag:
            if not sep or value.lower() in TRUE_WORDS:
                values[dest] = True
            elif value.lower() not in FALSE_WORDS:
                raise _Fallback
            continue
        if not sep:
            if index >= len(argv) or argv[index].startswith("-"):
                raise _Fallback
            value = argv[index]
            index += 1
        if isinstance(values.get(dest), tuple):
            values[dest] = (*values[dest], value)
        else:
            values[dest] = value
    return index


def run(argv: list[str]) -> int | None:
    """Run ``argv`` if the fast path takes it; None means "ask click".

    Errors are raised (:class:`pyruntime.errors.RuntimeError_`) for the
    caller's error boundary, as the click commands raise them.
    """
    parsed = parse(argv)
    if parsed is None:
        return None
    values, name, options, args = parsed
    # What the click group's callback does, in the same order.
    log.configure(values["log_path"], values["log_format"], values["debug"])
    rootless = values["rootless"]
    if rootless not in ("true", "false", "auto"):
        raise UsageError(f"invalid --rootless value {rootless!r}: true, false or auto")
    root = os.path.abspath(values["root"]) if values["root"] else default_root()
    if root == "/":
        raise UsageError("--root must not be /")
    glob = Globals(root, values["systemd_cgroup"], rootless)
    code = COMMANDS[name].handler(glob, options, args)
    return code if isinstance(code, int) else 0


# ------------------------------------------------------------------ commands


def cmd_state(glob: Globals, _options: dict, args: list[str]) -> None:
    """``state ID``: 2-space-indented JSON, no trailing newline."""
    from pyruntime.state import jsonio
    from pyruntime.state.view import describe

    view = describe(glob.root, args[0])
    sys.stdout.write(jsonio.dumps_indented(view, 2))
    sys.stdout.flush()


def cmd_list(glob: Globals, options: dict, _args: list[str]) -> None:
    """``list``: a table, compact JSON (``null`` for none) or the ids."""
    from pyruntime.state import jsonio
    from pyruntime.state.view import format_table, list_views

    fmt = options["fmt"]
    views = list_views(glob.root)
    # As runc: --quiet prints the ids whatever the format says.
    if options["quiet"]:
        text = "".join(view["id"] + "\n" for view in views)
    elif fmt == "json":
        text = jsonio.dumps(views or None) + "\n"
    elif fmt == "table":
        text = format_table(views)
    else:
        raise UsageError("invalid format option")
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_kill(glob: Globals, options: dict, args: list[str]) -> None:
    """``kill ID [SIGNAL]``: signal init (default SIGTERM)."""
    from pyruntime.state import status as st
    from pyruntime.state.store import open_container

    # As runc: the container must exist before the signal is even read.
    with open_container(glob.root, args[0], lock=False) as cdir:
        state = cdir.load()
        status = st.current_status(cdir, state)
    sig = parse_signal(args[1]) if len(args) == 2 else 15
    if not options["all"]:
        if status in (st.CREATED, st.RUNNING):
            st.signal_init(state, sig)
            return
        if status == st.STOPPED:
            raise StateError("container not running")
    from pyruntime import container

    container.kill(glob.root, args[0], sig, options["all"])


def cmd_start(glob: Globals, _options: dict, args: list[str]) -> None:
    """``start ID``: release a created container's init."""
    from pyruntime.state import status as st
    from pyruntime.state.store import open_container

    failure = None
    with open_container(glob.root, args[0]) as cdir:
        state = cdir.load()
        simple = (
            not _has_hooks(state, "poststart")
            and st.current_status(cdir, state) == st.CREATED
        )
        if simple:
            from pyruntime.process.fifo import release_init

            log.debug(
                "write the start byte to exec.fifo; wait until init execs or fails"
            )
            failure = release_init(cdir.fifo_path, state.pid)
            if failure is None:
                state.status = st.RUNNING
                cdir.save(state)
    if not simple:
        from pyruntime import container

        container.start(glob.root, args[0])
    elif failure is not None:
        from pyruntime import container

        container.stop_failed_start(state)
        raise SetupError(failure)


def cmd_delete(glob: Globals, options: dict, args: list[str]) -> None:
    """``delete [--force] ID``."""
    if not delete_stopped(glob.root, args[0], options["force"]):
        from pyruntime import container

        container.delete(glob.root, args[0], options["force"])


def cmd_create(glob: Globals, options: dict, args: list[str]) -> None:
    """``create ID``: the work is all :func:`pyruntime.container.create`'s."""
    from pyruntime import container

    container.create(glob.root, args[0], create_options(glob, options))


def cmd_run(glob: Globals, options: dict, args: list[str]) -> int:
    """``run ID``: create and start; wait unless ``--detach``."""
    from pyruntime import container

    return container.run(
        glob.root,
        args[0],
        create_options(glob, options),
        detach=options["detach"],
        keep=options["keep"],
    )


def create_options(glob: Globals, options: dict):
    """CreateOptions, paths made absolute first (as the click commands do)."""
    from pyruntime.container import CreateOptions

    pid_file, console_socket = options["pid_file"], options["console_socket"]
    return CreateOptions(
        bundle=os.path.abspath(options["bundle"] or "."),
        pid_file=os.path.abspath(pid_file) if pid_file else None,
        console_socket=os.path.abspath(console_socket) if console_socket else None,
        no_pivot=options["no_pivot"],
        no_new_keyring=options["no_new_keyring"],
        preserve_fds=options["preserve_fds"],
        systemd_cgroup=glob.systemd_cgroup,
    )


COMMANDS = {
    "state": _Command(cmd_state),
    "start": _Command(cmd_start),
    "kill": _Command(
        cmd_kill,
        {"-a": ("all", True), "--all": ("all", True)},
        {"all": False},
        nargs=(1, 2),
    ),
    "delete": _Command(
        cmd_delete,
        {"-f": ("force", True), "--force": ("force", True)},
        {"force": False},
    ),
    "list": _Command(
        cmd_list,
        {
            "-f": ("fmt", False),
            "--format": ("fmt", False),
            "-q": ("quiet", True),
            "--quiet": ("quiet", True),
        },
        {"fmt": "table", "quiet": False},
        nargs=(0, 0),
    ),
    "create": _Command(cmd_create, _CREATE_OPTIONS, _CREATE_DEFAULTS),
    "run": _Command(cmd_run, _RUN_OPTIONS, _RUN_DEFAULTS),
    "exec": _Command(
        fast_exec.cmd_exec,
        fast_exec.OPTIONS,
        fast_exec.DEFAULTS,
        nargs=(1, None),
        program_args=True,
    ),
    "check": _Command(
        fast_inspect.cmd_check,
        fast_inspect.CHECK_OPTIONS,
        fast_inspect.CHECK_DEFAULTS,
        nargs=(0, 1),
    ),
    "explain": _Command(
        fast_inspect.cmd_explain,
        fast_inspect.EXPLAIN_OPTIONS,
        fast_inspect.EXPLAIN_DEFAULTS,
        nargs=(0, 1),
    ),
}


# ------------------------------------------------------------- the lean work


#: The highest signal number Linux has (SIGRTMAX).
_SIGNAL_MAX = 64


def parse_signal(text: str) -> int:
    """A signal number, or a name with or without ``SIG`` in any case."""
    if text.isdigit():
        number = int(text)
        if number > _SIGNAL_MAX:
            raise UsageError(f'unknown signal "{text}"')
        return number
    from pyruntime.linux.signals import numbers_by_name

    name = text.upper().removeprefix("SIG")
    numbers = numbers_by_name()
    if name not in numbers:
        raise UsageError(f'unknown signal "{text}"')
    return numbers[name]


def _has_hooks(state, phase: str) -> bool:
    """Tell whether the saved config has hooks of ``phase`` (a JSON name).

    Anything but a plain object counts as "has hooks": the long way then
    decodes the config and reports what is wrong with it.
    """
    config = state.config or {}
    if not isinstance(config, dict):
        return True
    hooks = config.get("hooks") or {}
    return not isinstance(hooks, dict) or bool(hooks.get(phase))


def delete_stopped(root: str, container_id: str, force: bool) -> bool:
    """Delete a stopped container whose cgroups are empty; False: go the long way.

    Also True when there is nothing to do (``--force`` of a missing
    container), and raises the errors ``delete`` raises for a container
    that is not stopped.
    """
    from pyruntime.state import status as st
    from pyruntime.state.store import open_container

    opened = open_container(root, container_id)
    try:
        cdir = opened.__enter__()
    except ContainerNotFoundError:
        if force:
            return True
        raise
    try:
        try:
            state = cdir.load()
        except StateCorruptError:
            return False  # the long way warns and removes what is left
        if _has_hooks(state, "poststop"):
            return False
        status = st.current_status(cdir, state)
        if status in (st.RUNNING, st.PAUSED) and not force:
            raise StateError(
                f"cannot delete container {cdir.id} that is not stopped: {status}"
            )
        if status != st.STOPPED or not remove_empty_cgroups(state.cgroup_paths):
            return False
        remove_created_parents(state.cgroup_created, state.cgroup_paths)
        cdir.remove()
        return True
    finally:
        opened.__exit__(None, None, None)


#: How often a busy cgroup directory is tried (as the cgroup manager does).
_RMDIR_ATTEMPTS = 8


def remove_empty_cgroups(paths) -> bool:
    """Remove a dead container's cgroup directories if nothing is left in them.

    True when they are gone (or never existed). False, with nothing or only
    some of them removed, when one holds a process or a child cgroup, or
    cannot be removed: the cgroup manager then kills and removes the rest.
    Each directory is simply removed: only a refused ``rmdir`` makes it look
    inside (a leftover process is in every hierarchy's directory, so the
    first refusal comes before anything was removed).
    """
    if not paths:
        return True
    if not isinstance(paths, dict):
        return False
    dirs = set(paths.values())
    if not all(isinstance(d, str) and os.path.isabs(d) for d in dirs):
        return False  # the manager reports the corrupt paths
    dirs = sorted(dirs, key=lambda d: d.rstrip("/").count("/"), reverse=True)
    return all(_remove_cgroup_dir(directory) for directory in dirs)


def remove_created_parents(created, paths) -> None:
    """rmdir the parent cgroups create made, deepest first, while they are empty.

    A parent another container still uses is not empty and stays.
    """
    if not isinstance(created, list) or not isinstance(paths, dict):
        return
    leaves = set(paths.values())
    parents = [d for d in created if isinstance(d, str) and d not in leaves]
    for directory in sorted(parents, key=lambda d: d.count("/"), reverse=True):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def _is_empty_cgroup(directory: str) -> bool:
    """No child cgroup and no process (a missing directory is empty)."""
    try:
        with os.scandir(directory) as entries:
            if any(entry.is_dir(follow_symlinks=False) for entry in entries):
                return False
        with open(os.path.join(directory, "cgroup.procs"), "rb") as procs:
            return not procs.read().strip()
    except FileNotFoundError:
        return not os.path.isdir(directory)
    except OSError:
        return False


def _remove_cgroup_dir(directory: str) -> bool:
    """rmdir an empty cgroup, retried while the kernel still counts exiting tasks.

    False at once when it holds a process or a child cgroup.
    """
    import errno
    import time

    delay = 0.01
    for attempt in range(_RMDIR_ATTEMPTS):
        try:
            os.rmdir(directory)
            return True
        except FileNotFoundError:
            return True
        except OSError as err:
            busy = err.errno in (errno.EBUSY, errno.ENOTEMPTY)
            if not busy or attempt == _RMDIR_ATTEMPTS - 1:
                return False
        if not _is_empty_cgroup(directory):
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return False
