"""Go-style flag spelling, rewritten into what click parses.

runc parses flags with Go's ``flag`` package, and its callers rely on it:
go-runc sends ``-no-subreaper`` and ``--rootless=true``; people type
``runc -root X list -format=json``. click only knows ``--long`` and ``-s``.
Before click sees the command line, this module rewrites, for the global
flags and then for the subcommand's flags (up to the first positional
argument, after which arguments belong to the container's program):

- ``-long`` and ``-long=value`` into ``--long`` and ``--long=value``;
- a boolean ``--flag=true`` into ``--flag`` and ``--flag=false`` into nothing.

The fast path (:mod:`pyruntime.cli.fast`) reads the same spellings without
click, with the words below; this module imports click only when it runs.
"""

from __future__ import annotations

#: The values a boolean flag accepts after ``=`` (compared in lower case).
TRUE_WORDS = frozenset({"true", "1", "t", "yes"})
FALSE_WORDS = frozenset({"false", "0", "f", "no"})
_TRUE = TRUE_WORDS
_FALSE = FALSE_WORDS


def option_table(command) -> dict[str, bool]:
    """Map every long and short name of a click command's options to "is a flag"."""
    import click

    table = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                table[name] = bool(param.is_flag)
    return table


def normalize_argv(argv: list[str], group) -> list[str]:
    """Rewrite Go-style flags of the group and of its subcommand."""
    out: list[str] = []
    table = option_table(group)
    index = _rewrite_options(argv, 0, table, out)
    if index >= len(argv):
        return out
    name = argv[index]
    out.append(name)
    command = group.commands.get(name)
    if command is None:
        out.extend(argv[index + 1 :])
        return out
    index = _rewrite_options(argv, index + 1, option_table(command), out)
    out.extend(argv[index:])
    return out


def _rewrite_options(
    argv: list[str], index: int, table: dict[str, bool], out: list[str]
) -> int:
    """Copy options from ``argv[index:]`` into ``out``; return the stop index."""
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return index
        if not arg.startswith("-") or arg == "-":
            return index
        name, sep, value = arg.partition("=")
        if not name.startswith("--") and len(name) > 2 and "-" + name in table:
            name = "-" + name
        is_flag = table.get(name)
        if is_flag and sep:
            if value.lower() in _TRUE:
                out.append(name)
            elif value.lower() not in _FALSE:
                out.append(arg)  # let click report it
            index += 1
            continue
        out.append(name + sep + value)
        index += 1
        if is_flag is False and not sep and index < len(argv):
            out.append(argv[index])  # the option's value, even if it looks odd
            index += 1
    return index


def parse_go_int(text: str, base: int = 0) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, base, 64)`` reads it, or None.

    Base 0 (Go's flag package): decimal, ``0x``/``0o``/``0b`` prefixes, a
    leading 0 for octal, ``_`` between digits. Base 10 (urfave/cli's slice
    flags): digits only. No blanks either way.
    """
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("-", "+") else text
    if not body or body != body.strip():
        return None
    if base == 10:
        return sign * int(body) if body.isascii() and body.isdigit() else None
    try:
        if len(body) > 1 and body[0] == "0" and body[1].isdigit():
            return sign * int(body, 8)
        return sign * int(body, 0)
    except ValueError:
        return None
