"""Write pyruntime's entry-point script, in place of the one pip writes.

pip's console-script template imports :mod:`re` (and with it :mod:`enum`,
:mod:`functools` and :mod:`collections`) before it calls ``main()``, only to
strip a Windows suffix from ``sys.argv[0]``. That costs about as much as the
rest of a ``state`` or ``kill`` command. ``make venv`` therefore runs::

    .venv/bin/python -m pyruntime.cli.entry .venv/bin/pyruntime

which replaces the script (atomically) with one that does only what is
needed. Its first line names the interpreter that runs this module by
absolute path, as pip's does, so the runtime still works with an empty
environment. Running ``pip install`` again brings pip's script back: slower,
not wrong.
"""

from __future__ import annotations

import os
import sys

TEMPLATE = """#!{python}
# pyruntime's entry point, written by `python -m pyruntime.cli.entry`
# (pip's imports re first, which every command would pay for).
import sys

from pyruntime.cli.main import main

sys.exit(main())
"""


def entry_point_text(python: str) -> str:
    """The script's text for the interpreter at ``python``."""
    return TEMPLATE.format(python=python)


def write_entry_point(path: str, python: str | None = None) -> None:
    """Write the script at ``path`` (mode 0755) through a temp file and rename."""
    text = entry_point_text(python or sys.executable)
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
    os.rename(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m pyruntime.cli.entry PATH``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m pyruntime.cli.entry PATH\n")
        return 2
    write_entry_point(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
