"""Compiled seccomp programs, kept between creates.

Engines give their containers the same seccomp profile again and again, and
compiling it is the dearest step of a ``create``: loading libseccomp through
``pyseccomp`` (which looks the library up by running ``ldconfig``) and
building a program of a few hundred rules takes tens of milliseconds. The BPF
program depends only on the planned rules, the architectures and libseccomp,
so the runtime keeps each program it compiled in a file named by a digest of
those, and the next ``create`` (or ``exec``) with the same filter reads the
file instead of compiling.

Where: ``$PYRUNTIME_CACHE_DIR/seccomp``; without that variable
``/var/cache/pyruntime/seccomp`` for root and
``${XDG_CACHE_HOME:-~/.cache}/pyruntime/seccomp`` for other users. An empty
``PYRUNTIME_CACHE_DIR`` turns the cache off.

A filter read from a file somebody else can write would be that somebody's
filter, so the cache is used only when its directories and the file belong to
the effective user and nobody else may write them; otherwise the program is
compiled as if there were no cache. The cache never makes a command fail:
a file that cannot be read, parsed or written is a debug line, and the
program is compiled. Files are written whole (temporary file, then rename),
so concurrent creates never read half a program. ``check`` reads a cached
program when there is one (it shows that the filter compiled with this
host's libseccomp) and otherwise compiles; it never writes the cache.
"""

from __future__ import annotations

import os
import stat

from pyruntime import __version__, log
from pyruntime.security import seccomp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.security.seccomp import SeccompPlan, SeccompProgram

ENV_DIR = "PYRUNTIME_CACHE_DIR"
#: First line of a cache file; a new layout gets a new number.
MAGIC = b"pyruntime-seccomp-program 1\n"
_LIBSECCOMP = "libseccomp.so.2"
_LIBRARY_DIRS = ("/usr/local/lib", "/usr/lib64", "/lib64", "/usr/lib", "/lib")


def compile_with_cache(plan: SeccompPlan) -> SeccompProgram:
    """The program for ``plan``: read from the cache, or compiled and stored."""
    path = cache_path(plan)
    program = read_cached(path, plan)
    if program is None:
        program = seccomp.compile_seccomp(plan)
        if path is not None:
            store_program(os.path.dirname(path), path, program)
    return program


def cached_program(plan: SeccompPlan) -> SeccompProgram | None:
    """The program compiled for ``plan`` before, if the cache holds it.

    Reads only: ``check`` uses it too (a cached program shows that the filter
    compiled with this libseccomp), and writes nothing.
    """
    return read_cached(cache_path(plan), plan)


def read_cached(path: str | None, plan: SeccompPlan) -> SeccompProgram | None:
    """The program at ``path`` (None: no cache), said as ``compile`` would."""
    program = read_program(path, plan) if path is not None else None
    if program is not None:
        log.debug(f"seccomp program read from the cache `{path}`: not compiled again")
        seccomp.warn_skipped(program.skipped)
    return program


def cache_path(plan: SeccompPlan) -> str | None:
    """The file that holds (or would hold) the program for ``plan``."""
    directory = cache_dir()
    key = program_key(plan) if directory else None
    return os.path.join(directory, f"{key}.bpf") if key else None


def cache_dir() -> str | None:
    """The directory of cached programs, or None when the cache is off."""
    base = os.environ.get(ENV_DIR)
    if base is None:
        if os.geteuid() == 0:
            base = "/var/cache/pyruntime"
        else:
            home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
            base = os.path.join(home, "pyruntime")
    if not base:
        return None
    return os.path.join(os.path.abspath(base), "seccomp")


def program_key(plan: SeccompPlan) -> str | None:
    """A digest of what the program depends on; None if libseccomp is not found.

    The library file is named by its resolved path, size and modification
    time, so an upgrade of libseccomp (or of pyseccomp) starts a new entry.
    """
    library = identify_file(find_libseccomp())
    binding = identify_file(find_module_file("pyseccomp"))
    if library is None or binding is None:
        return None
    parts = (
        MAGIC.decode().strip(),
        __version__,
        os.uname().machine,
        library,
        binding,
        repr(plan.default_action),
        repr(plan.architectures),
        repr(plan.rules),
    )
    return digest("\n".join(parts).encode())


def digest(data: bytes) -> str:
    """SHA-256 of ``data`` in hex (the builtin module: no OpenSSL to load)."""
    try:
        from _sha256 import sha256
    except ImportError:  # pragma: no cover - other Python builds
        from hashlib import sha256
    return sha256(data).hexdigest()


def find_libseccomp() -> str | None:
    """The path of libseccomp in the usual library directories, or None."""
    machine = os.uname().machine
    multiarch = (f"/usr/lib/{machine}-linux-gnu", f"/lib/{machine}-linux-gnu")
    for directory in (*multiarch, *_LIBRARY_DIRS):
        path = os.path.join(directory, _LIBSECCOMP)
        if os.path.exists(path):
            return path
    return None


def find_module_file(name: str) -> str | None:
    """Where ``import name`` would find a one-file module on ``sys.path``."""
    import sys

    for entry in sys.path:
        path = os.path.join(entry or ".", f"{name}.py")
        if os.path.isfile(path):
            return path
    return None


def identify_file(path: str | None) -> str | None:
    """``resolved path:size:mtime`` of a file, or None."""
    if path is None:
        return None
    try:
        real = os.path.realpath(path)
        info = os.stat(real)
    except OSError:
        return None
    return f"{real}:{info.st_size}:{info.st_mtime_ns}"


def trusted(info: os.stat_result) -> bool:
    """Owned by the effective user, writable by nobody else."""
    return info.st_uid == os.geteuid() and not info.st_mode & (
        stat.S_IWGRP | stat.S_IWOTH
    )


def trusted_dir(directory: str) -> bool:
    """The cache directory and its parent are ours alone (symlinks refused)."""
    for path in (directory, os.path.dirname(directory)):
        try:
            info = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISDIR(info.st_mode) or not trusted(info):
            log.debug(f"seccomp cache `{path}` not used: not ours alone")
            return False
    return True


def read_program(path: str, plan: SeccompPlan) -> SeccompProgram | None:
    """The cached program at ``path``, or None (absent, untrusted, damaged)."""
    if not trusted_dir(os.path.dirname(path)):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not trusted(os.fstat(fd)):
            log.debug(f"seccomp cache file `{path}` not used: not ours alone")
            return None
        data = read_all(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return parse_program(data, plan)


def read_all(fd: int) -> bytes:
    """Everything left to read from ``fd``."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_program(data: bytes, plan: SeccompPlan) -> SeccompProgram | None:
    """Magic line, ``skipped`` line (names left out), then the BPF bytes."""
    if not data.startswith(MAGIC):
        return None
    skipped_line, sep, bpf = data[len(MAGIC) :].partition(b"\n")
    words = skipped_line.decode("utf-8", "replace").split()
    if not sep or not words or words[0] != "skipped" or not bpf or len(bpf) % 8:
        return None
    return seccomp.SeccompProgram(
        bpf=bpf,
        flags=seccomp.effective_flags(plan),
        notify=plan.uses_notify,
        skipped=tuple(words[1:]),
    )


def format_program(program: SeccompProgram) -> bytes:
    """The cache file's content for ``program``."""
    skipped = " ".join(("skipped", *program.skipped))
    return MAGIC + skipped.encode() + b"\n" + program.bpf


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def make_private_dirs(directory: str) -> None:
    """The cache directory and its parent, mode 0700 whatever the umask."""
    parent = os.path.dirname(directory)
    os.makedirs(os.path.dirname(parent), exist_ok=True)
    for path in (parent, directory):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)


def store_program(directory: str, path: str, program: SeccompProgram) -> None:
    """Write the program for the next create; a failure is only logged."""
    try:
        make_private_dirs(directory)
        if not trusted_dir(directory):
            return
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        try:
            write_all(fd, format_program(program))
            os.rename(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise
        finally:
            os.close(fd)
    except OSError as err:
        log.debug(f"seccomp program not cached in `{directory}`: {err.strerror}")
        return
    log.debug(f"seccomp program compiled and kept in the cache `{path}`")
