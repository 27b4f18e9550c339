"""The command line's entry point and its error boundary.

Engines run the runtime once per step of a container's life, so what a
command costs before it does anything is paid again and again. ``main()``
therefore hands the command line first to :mod:`pyruntime.cli.fast`, which
parses runc's grammar for the everyday commands without importing click.
Only what the fast path does not take (``--help``, ``--version``, mistakes,
the other commands) goes to the click group in :mod:`pyruntime.cli.group`.

``main()`` is the only place where errors become output: each failure is
logged once at level ``error`` to the log destination (``--log`` or
stderr) and, when that is a file, also printed bare on stderr, as runc does;
then the process exits 1 (``run`` and ``exec`` exit with the container's
status instead).
"""

import sys

from pyruntime import NAME, OCI_VERSION, __version__

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
    import os

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
    import os

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


def main(argv: list[str] | None = None) -> None:
    """Entry point: parse, run, turn errors into runc-shaped output."""
    args = list(sys.argv[1:] if argv is None else argv)
    from pyruntime.reexec import reexec_sealed

    # First of all, before anything else is loaded: commands that enter a
    # container run from a sealed copy of the interpreter.
    reexec_sealed(args)
    pause_garbage_collector()
    code = run(args)
    if argv is None:
        exit_now(code)
    sys.exit(code)


def pause_garbage_collector() -> None:
    """Leave the cycle collector off: a command lives for milliseconds.

    Loading a command's modules allocates tens of thousands of objects, enough
    to start several collections, the last of them over everything loaded
    (1 to 2 ms of a ``check`` or a ``create``). The objects of a command are
    freed by reference counting or by its exit; the few reference cycles it
    makes (an exception and its traceback) are not worth a collection.
    ``events``, the one command that runs until it is stopped, turns the
    collector back on (:func:`resume_garbage_collector`).
    """
    import gc

    gc.disable()


def resume_garbage_collector() -> None:
    """Turn the cycle collector back on, for a command that runs for long."""
    import gc

    gc.enable()


def exit_now(code: int) -> None:
    """Exit with ``code`` at once, without the interpreter's teardown.

    When a command returns, nothing is left to finish: the container runs on
    its own or has been waited for, state files and log lines went out with
    ``os.write``, descriptors are closed. Tearing down the modules a command
    loaded (freeing every object, a last garbage collection) would take 1 to
    2 ms after ``state`` and 5 to 8 ms after ``create`` or ``exec``. Only the
    standard streams' buffers are flushed first. If their reader went away,
    the process dies of SIGPIPE as runc does; any other failure to flush is
    left to the interpreter's own teardown, which reports it (exit status 120).
    """
    import posix

    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None when the caller closed the descriptor
                stream.flush()
    except BrokenPipeError:
        die_of_sigpipe()
    except (OSError, ValueError):
        sys.exit(code)
    posix._exit(code)


def die_of_sigpipe() -> None:
    """End as runc ends when the reader of its output has gone: by SIGPIPE.

    A Go program writing to a closed pipe on stdout or stderr is killed by
    the signal (a shell reports status 141); Python ignores SIGPIPE and
    raises BrokenPipeError instead. Other descriptors (sockets) keep
    raising: only this last step restores the default action.
    """
    import posix
    from _signal import SIG_DFL, SIGPIPE, signal

    signal(SIGPIPE, SIG_DFL)
    posix.kill(posix.getpid(), SIGPIPE)


def run(args: list[str]) -> int:
    """Run one command line; return the exit status."""
    from pyruntime import log
    from pyruntime.cli import fast
    from pyruntime.errors import RuntimeError_

    try:
        code = fast.run(args)
        if code is None:
            from pyruntime.cli.group import run_click

            code = run_click(args)
    except RuntimeError_ as err:
        log.fail(str(err))
        return err.exit_code
    except BrokenPipeError:
        die_of_sigpipe()
    except KeyboardInterrupt:
        return 130
    return code


def __getattr__(name: str):
    """The click objects (``cli``, ``register_commands``, ...), loaded on use."""
    if name in ("cli", "register_commands", "report_usage", "show_version"):
        from pyruntime.cli import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
