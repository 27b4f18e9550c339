"""``exec`` on the fast path: its flags as runc spells them, and the command.

:mod:`pyruntime.cli.fast` parses the command line with the table below,
exactly as click reads the ``exec`` command of :mod:`pyruntime.cli.commands`:
the same option names, the same destinations and the same defaults. The
repeatable flags (``--env``, ``--additional-gids``, ``--cap``, ``--cgroup``)
have a tuple as their default, which tells the fast parser to add each use
to it, in order, as click's ``multiple=True`` does. Everything after the
container id belongs to the program, dashes and all.

Both readings then call :func:`run_exec`, so what follows the parsing is
one piece of code. On the fast path, exec then leaves without the
interpreter's teardown (:func:`pyruntime.cli.main.exit_now`). This module
imports nothing heavy at load time: the fast path loads it for every command.
"""

from __future__ import annotations

import os

from pyruntime.cli.main import exit_now

#: Option name -> (destination, is a boolean flag); click's names.
OPTIONS = {
    "--console-socket": ("console_socket", False),
    "--cwd": ("cwd", False),
    "-e": ("env", False),
    "--env": ("env", False),
    "-t": ("tty", True),
    "--tty": ("tty", True),
    "-u": ("user", False),
    "--user": ("user", False),
    "-g": ("additional_gids", False),
    "--additional-gids": ("additional_gids", False),
    "-p": ("process_file", False),
    "--process": ("process_file", False),
    "-d": ("detach", True),
    "--detach": ("detach", True),
    "--pid-file": ("pid_file", False),
    "--process-label": ("process_label", False),
    "--apparmor": ("apparmor", False),
    "--no-new-privs": ("no_new_privs", True),
    "-c": ("caps", False),
    "--cap": ("caps", False),
    "--preserve-fds": ("preserve_fds", False),
    "--cgroup": ("cgroups", False),
    "--ignore-paused": ("ignore_paused", True),
}

#: The defaults; a tuple marks a repeatable option.
DEFAULTS = {
    "console_socket": None,
    "cwd": None,
    "env": (),
    "tty": False,
    "user": None,
    "additional_gids": (),
    "process_file": None,
    "detach": False,
    "pid_file": None,
    "process_label": None,
    "apparmor": None,
    "no_new_privs": False,
    "caps": (),
    "preserve_fds": "0",
    "cgroups": (),
    "ignore_paused": False,
}


def cmd_exec(glob, options: dict, args: list[str]) -> None:
    """``exec ID COMMAND [ARG...]`` or ``exec -p FILE ID``; exits when done."""
    exit_now(run_exec(glob.root, args, options))


def run_exec(root: str, args, options: dict) -> int:
    """Run the process ``options`` and ``args`` describe; its exit status.

    ``args`` is the container id, then the program and its arguments (a
    ``--`` before the program is dropped). Every failure is reported as
    ``exec failed: ...``, with exit status 255.
    """
    from pyruntime import execution
    from pyruntime.errors import ExecFailedError, RuntimeError_

    command = tuple(args[1:])
    if command[:1] == ("--",):
        command = command[1:]
    pid_file, console_socket = options["pid_file"], options["console_socket"]
    flags = {
        **options,
        "pid_file": os.path.abspath(pid_file) if pid_file else None,
        "console_socket": os.path.abspath(console_socket) if console_socket else None,
    }
    opts = execution.ExecOptions(args=command, **flags)
    try:
        return execution.exec_process(root, args[0], opts)
    except RuntimeError_ as err:
        raise ExecFailedError(err) from err
