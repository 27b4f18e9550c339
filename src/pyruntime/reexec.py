"""Run the commands that enter a container from a sealed copy of the interpreter.

While pyruntime sets a container up (``create``, ``run``) or joins one
(``exec``), processes of the runtime live inside the container's namespaces.
A process of the container that can reach ``/proc/<pid>/exe`` of such a
process reaches the program file that runs it. For runc that file is runc
itself (CVE-2019-5736); for pyruntime it is the host's Python interpreter,
which every Python program of the host would then run.

Being non-dumpable keeps most container processes away from those
``/proc`` files, but not all (a container that holds ``CAP_SYS_PTRACE``, or
a process that is dumpable again after ``execve``). So these commands first
re-execute the interpreter from a memfd: an anonymous in-memory copy, sealed
so that nobody can write, grow or shrink it. ``/proc/<pid>/exe`` of every
runtime process then names that copy, and writing to it fails with EPERM.

The copy is made from ``/proc/self/exe`` (the file the kernel really runs),
and the interpreter is given its original ``argv``, so that it finds its
standard library and virtual environment exactly as before. Descriptors the
caller passed (stdio, ``--preserve-fds``, the containerd shim's fd 3) are
not close-on-exec and survive the ``execve`` unchanged.

This module is imported before anything else by the CLI, by a process that
may be about to replace itself: it uses only ``posix`` (built into the
interpreter, the part of :mod:`os` it needs), ``sys`` and ``fcntl``.
"""

import fcntl
import posix
import sys

#: The commands whose processes enter a container's namespaces.
ENTERING_COMMANDS = frozenset({"create", "run", "exec"})
MEMFD_NAME = "pyruntime"
_SEALS = (
    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | (fcntl.F_SEAL_WRITE)
)


def running_sealed() -> bool:
    """Tell whether this process already runs from the sealed copy."""
    try:
        return posix.readlink("/proc/self/exe").startswith(f"/memfd:{MEMFD_NAME}")
    except OSError:
        return False


#: Global flags that take a value as the next argument (``--root DIR``).
_VALUE_FLAGS = frozenset({"root", "log", "log-format", "rootless", "criu"})


def wants_sealed(argv: list[str]) -> bool:
    """Whether the command line's command is one that enters a container.

    The command is the first argument that is neither a global flag nor a
    flag's value; anything unusual counts as "maybe" (re-executing costs a
    few milliseconds, never correctness).
    """
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return any(a in ENTERING_COMMANDS for a in args)
        if not arg.startswith("-"):
            return arg in ENTERING_COMMANDS
        if "=" not in arg and arg.lstrip("-") in _VALUE_FLAGS:
            next(args, None)
    return False


def copy_interpreter() -> int:
    """A sealed, close-on-exec memfd holding the running interpreter."""
    fd = posix.memfd_create(MEMFD_NAME, posix.MFD_CLOEXEC | posix.MFD_ALLOW_SEALING)
    try:
        source = posix.open("/proc/self/exe", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            size = posix.fstat(source).st_size
            copied = 0
            while copied < size:
                sent = posix.sendfile(fd, source, copied, size - copied)
                if sent == 0:
                    break
                copied += sent
        finally:
            posix.close(source)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        posix.close(fd)
        raise
    return fd


def reexec_sealed(argv: list[str]) -> None:
    """Re-execute from the sealed copy when ``argv`` enters a container.

    Does nothing when already sealed or when the command does not need it.
    If the copy cannot be made (no memfd support), the command goes on
    unsealed: ``create`` then refuses, see :func:`require_sealed`.
    """
    if not wants_sealed(argv) or running_sealed():
        return
    try:
        fd = copy_interpreter()
    except OSError:
        return
    args = list(sys.orig_argv)
    args[0] = sys.executable or args[0]
    posix.execve(fd, args, posix.environ)


def require_sealed() -> None:
    """Refuse to enter a container from an unsealed interpreter."""
    if not running_sealed():
        from pyruntime.errors import UnsupportedError

        raise UnsupportedError(
            "run from a sealed copy of the interpreter: memfd sealing is not "
            "available, and entering a container without it would expose the "
            "host's Python binary to the container (CVE-2019-5736)"
        )
