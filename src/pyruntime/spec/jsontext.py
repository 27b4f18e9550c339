"""JSON text for the config decoder and its messages, without importing :mod:`json`.

``import json`` costs a few milliseconds (it imports :mod:`re`, and with it
:mod:`enum` and :mod:`functools`): more than decoding and checking a whole
config.json. The C accelerator behind :mod:`json` (``_json``) needs none of
that, so this module drives it directly, as ``state.jsonio`` does for
state.json:

- :func:`loads` parses a document as ``json.loads`` does, except that
  ``NaN``, ``Infinity`` and ``-Infinity`` are refused (Python's json accepts
  them, JSON and Go do not). Duplicate keys keep the last value, as in
  ``json.loads``. Every problem is a :class:`JSONSyntaxError` with json's own
  wording, line and column: on an error, :mod:`json` parses the text again and
  its :class:`json.JSONDecodeError` is turned into ours.
- :func:`quote` spells a value as ``json.dumps`` does, for messages
  (``"rootfs" is not an absolute path``).

:mod:`json` and :mod:`re` are imported only when a document has a problem.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None

#: What json skips around a document (``json.decoder.WHITESPACE``).
_WHITESPACE = " \t\n\r"


class JSONSyntaxError(ValueError):
    """A JSON text that does not parse: json's message and where it is."""

    def __init__(self, msg: str, lineno: int, colno: int) -> None:
        super().__init__(f"{msg}: line {lineno} column {colno}")
        self.msg = msg
        self.lineno = lineno
        self.colno = colno


class _NonFiniteNumber(ValueError):
    """Raised by the scanner's hook at NaN or Infinity (the constant's name)."""


def _refuse_constant(name: str) -> float:
    """The scanner's ``parse_constant`` hook: stop at NaN, Infinity, -Infinity."""
    raise _NonFiniteNumber(name)


class _ScanContext:
    """The settings the C scanner reads: a default JSONDecoder's, minus NaN."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_refuse_constant)


_scan = _json.make_scanner(_ScanContext()) if _json is not None else None


def loads(text: str) -> object:
    """Parse a JSON document; raise JSONSyntaxError when it is not one."""
    if _scan is None:  # pragma: no cover - CPython always has the scanner
        return _loads_slowly(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except _NonFiniteNumber as err:
        raise _constant_error(text, str(err)) from None
    except (StopIteration, SystemError, ValueError, RecursionError):
        # The scanner's own error reporting needs json.decoder: let json
        # parse the text again and raise its exact error.
        return _loads_slowly(text)
    if text[end:].strip(_WHITESPACE):
        return _loads_slowly(text)  # json's "Extra data"
    return value


def _loads_slowly(text: str) -> object:
    """``json.loads`` with NaN and Infinity refused, its errors made ours."""
    import json

    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise JSONSyntaxError(err.msg, err.lineno, err.colno) from None
    except _NonFiniteNumber as err:
        raise _constant_error(text, str(err)) from None


def _constant_error(text: str, name: str) -> JSONSyntaxError:
    """The error for NaN or Infinity, placed at the first one in ``text``."""
    import json

    what = f"Invalid number {name}: JSON has no NaN or Infinity"
    err = json.JSONDecodeError(what, text, locate_constant(text))
    return JSONSyntaxError(err.msg, err.lineno, err.colno)


def locate_constant(text: str) -> int:
    """Return the offset of the first NaN/Infinity outside a string literal."""
    import re

    # A string literal, or a constant outside one.
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)', text, re.DOTALL):
        if match.group(1):
            return match.start(1)
    return 0


def quote(value: object) -> str:
    """``value`` as ``json.dumps(value)`` writes it (a string quoted, escaped)."""
    if isinstance(value, str) and _json is not None:
        return _json.encode_basestring_ascii(value)
    import json

    return json.dumps(value)
