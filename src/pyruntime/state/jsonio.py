"""JSON for the hot commands, without importing :mod:`json`.

``import json`` pulls in :mod:`re`, and with it :mod:`enum` and
:mod:`functools`: several milliseconds, a large share of what ``state`` or
``kill`` may cost in all. The C accelerator behind :mod:`json` (``_json``) needs
none of that, so this module drives it directly:

- :func:`loads` parses a document with the accelerator's scanner; on any
  error it lets :func:`json.loads` parse the text again, so the message (and
  the exception type, :class:`json.JSONDecodeError`) is exactly json's;
- :func:`dumps` writes compact JSON (``separators=(",", ":")``), byte for
  byte what ``json.dumps`` writes with those separators;
- :func:`dumps_indented` writes what ``json.dumps(value, indent=n)`` writes.

Where the accelerator is missing (another Python implementation), the
functions fall back to :mod:`json` itself.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None

_CONSTANTS = {
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}
_WHITESPACE = " \t\n\r"


class _ScanContext:
    """The settings the C scanner reads (those of a default JSONDecoder)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _refuse(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_ScanContext())
    _encode_string = _json.encode_basestring_ascii
    # markers=None: no cycle check (our documents are trees); allow_nan=True.
    _compact = _json.make_encoder(
        None, _refuse, _encode_string, None, ":", ",", False, False, True
    )


def loads(text: str):
    """Parse a JSON document (a ``str``); raise ValueError when it is not one."""
    if _json is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, SystemError, ValueError, RecursionError):
        # The scanner's own error reporting needs json.decoder: let json
        # parse the text again and raise its exact error.
        return _loads_slowly(text)
    if text[end:].strip(_WHITESPACE):
        return _loads_slowly(text)
    return value


def _loads_slowly(text: str):
    import json

    return json.loads(text)


def dumps(value) -> str:
    """Compact JSON, as ``json.dumps(value, separators=(",", ":"))``."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value, separators=(",", ":"))
    return "".join(_compact(value, 0))


def dumps_indented(value, indent: int = 2) -> str:
    """Indented JSON, as ``json.dumps(value, indent=indent)``."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value, indent=indent)
    out: list[str] = []
    _pretty(value, out, "\n", " " * indent)
    return "".join(out)


def _pretty(value, out: list[str], newline: str, step: str) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + step
        separator = "{" + inner
        for key, item in value.items():
            out.append(separator)
            out.append(_encode_string(_key_text(key)))
            out.append(": ")
            _pretty(item, out, inner, step)
            separator = "," + inner
        out.append(newline + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + step
        separator = "[" + inner
        for item in value:
            out.append(separator)
            _pretty(item, out, inner, step)
            separator = "," + inner
        out.append(newline + "]")
    else:
        out.extend(_compact(value, 0))


def _key_text(key) -> str:
    """A dict key as json writes it: strings as they are, scalars spelled out."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None or isinstance(key, (int, float)):
        return "".join(_compact(key, 0))
    raise TypeError(
        f"keys must be str, int, float, bool or None, not {type(key).__name__}"
    )
