"""Write pyruntime's entry-point script, in place of the one pip writes.

An engine starts the runtime for every step of every container, so what the
interpreter does before ``main()`` is paid each time. Two things in the
usual set-up cost about as much as a whole ``state`` command does on top of
a bare interpreter:

- pip's console-script template imports :mod:`re` (and with it :mod:`enum`,
  :mod:`functools` and :mod:`collections`), only to strip a Windows suffix
  from ``sys.argv[0]``;
- :mod:`site` looks for user site-packages, reads ``pyvenv.cfg`` and every
  ``.pth`` file, and tries ``sitecustomize``, only to add the venv's
  site-packages (and the source tree of an editable install) to
  ``sys.path``.

``make venv`` therefore runs::

    .venv/bin/python -m pyruntime.cli.entry .venv/bin/pyruntime

which replaces the script (atomically) with one that starts the interpreter
with ``-S`` and adds, itself, the very paths :mod:`site` adds here, found
by asking the interpreter with and without ``-S`` now. That is only done
when it changes nothing else: when no ``sitecustomize`` or ``usercustomize``
exists and no ``.pth`` file runs code (except setuptools'
``distutils-precedence.pth``, which only matters to programs that import
distutils); and the script must then answer ``--version``. Otherwise the
script keeps :mod:`site` and just drops pip's ``import re``.

Either way its first line names the interpreter by absolute path, as pip's
does, so the runtime works with an empty environment. After a change to the
venv, ``make venv`` writes it again; ``pip install`` brings pip's script
back: slower, not wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys

PLAIN = """#!{python}
# pyruntime's entry point, written by `python -m pyruntime.cli.entry`
# (pip's imports re first, which every command would pay for).
import sys

from pyruntime.cli.main import main

sys.exit(main())
"""

LEAN = """#!{python} -S
# pyruntime's entry point, written by `python -m pyruntime.cli.entry`.
# Started without the site module: these are the paths it would add.
import sys

sys.path.extend({paths!r})

from pyruntime.cli.main import main

sys.exit(main())
"""

#: .pth files whose code does not concern pyruntime (see the module doc).
HARMLESS_PTH = frozenset({"distutils-precedence.pth"})
_PRINT_PATH = "import sys; print(repr(sys.path))"


def _sys_path(python: str, flags: list[str]) -> list[str]:
    out = subprocess.run(
        [python, *flags, "-c", _PRINT_PATH],
        capture_output=True,
        text=True,
        check=True,
        env={},
    ).stdout
    import ast

    return list(ast.literal_eval(out))


def site_paths(python: str) -> list[str] | None:
    """The paths :mod:`site` adds for ``python``; None if it does more."""
    try:
        with_site = _sys_path(python, [])
        without = _sys_path(python, ["-S"])
    except (OSError, subprocess.CalledProcessError, ValueError, SyntaxError):
        return None
    added = [p for p in with_site if p not in without]
    for directory in with_site:
        for name in ("sitecustomize", "usercustomize"):
            if any(
                os.path.exists(os.path.join(directory, name + suffix))
                for suffix in (".py", ".pyc", "")
            ):
                return None
    for directory in added:
        if _runs_code(directory):
            return None
    return added


def _runs_code(directory: str) -> bool:
    """Tell whether a ``.pth`` file in ``directory`` has an ``import`` line."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return False
    for name in names:
        if not name.endswith(".pth") or name in HARMLESS_PTH:
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError):
            return True
        if any(line.startswith(("import ", "import\t")) for line in lines):
            return True
    return False


def entry_point_text(python: str, paths: list[str] | None) -> str:
    """The script for the interpreter ``python``: lean when ``paths`` is known."""
    if paths is None:
        return PLAIN.format(python=python)
    return LEAN.format(python=python, paths=paths)


def _write_temp(path: str, text: str) -> str:
    """Write ``text`` (mode 0755) next to ``path``; return the temp file's name."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o755)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, 0o755)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _answers(script: str) -> bool:
    """Tell whether ``script --version`` works, with an empty environment."""
    try:
        result = subprocess.run(
            [script, "--version"], capture_output=True, text=True, env={}, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.startswith("pyruntime version")


def write_entry_point(path: str, python: str | None = None, lean: bool = True) -> str:
    """Write the script at ``path`` (mode 0755); return "lean" or "plain".

    The lean script is tried first, next to ``path``; it replaces ``path``
    only once it has answered ``--version``.
    """
    python = python or sys.executable
    paths = site_paths(python) if lean else None
    if paths is not None:
        tmp = _write_temp(path, entry_point_text(python, paths))
        if _answers(tmp):
            os.rename(tmp, path)
            return "lean"
        os.unlink(tmp)
    os.rename(_write_temp(path, entry_point_text(python, None)), path)
    return "plain"


def main(argv: list[str] | None = None) -> int:
    """``python -m pyruntime.cli.entry [--plain] PATH``."""
    args = list(sys.argv[1:] if argv is None else argv)
    lean = "--plain" not in args
    args = [a for a in args if a != "--plain"]
    if len(args) != 1:
        sys.stderr.write("usage: python -m pyruntime.cli.entry [--plain] PATH\n")
        return 2
    kind = write_entry_point(args[0], lean=lean)
    print(f"{args[0]}: {kind} entry point")
    return 0


if __name__ == "__main__":
    sys.exit(main())
