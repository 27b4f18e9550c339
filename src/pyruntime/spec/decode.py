"""Read config.json and decode it into ``spec.model`` objects.

This module owns the JSON -> model step: syntax errors (with line and column),
JSON types and integer ranges, REQUIRED fields and the ``ociVersion`` check.
It walks the model classes generically (see ``spec.model``) and reports every
problem it finds in one pass, each prefixed with its JSON path, e.g.
``linux.resources.memory.limit: expected integer, got string``.

Unknown keys are not errors: the runtime-spec says runtimes must ignore
properties they do not know. They stay available in ``Spec.raw``.
Cross-field rules (absolute paths, namespaces...) live in ``spec.validate``.

Every ``create``, ``run`` and ``exec`` goes through here, so the normal path
imports neither :mod:`typing` nor :mod:`json` nor :mod:`re`: the model's
annotations are builtin generics read as they are, the JSON text goes
through ``spec.jsontext``, and ``ociVersion`` is checked by hand.
"""

from __future__ import annotations

import os

from pyruntime.errors import ConfigError, describe_oserror
from pyruntime.spec import model
from pyruntime.spec.jsontext import JSONSyntaxError, quote
from pyruntime.spec.jsontext import loads as json_loads
from pyruntime.spec.model import IntRange, Process, Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONFIG_NAME = "config.json"
#: The runtime-spec major version whose documents we accept.
SUPPORTED_MAJOR = 1

#: The characters of SemVer's pre-release and build identifiers.
_SEMVER_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"

#: The types of ``X | None`` and ``tuple[X, ...]`` (types.UnionType and
#: types.GenericAlias): the two kinds of annotation that are not classes.
_UNION = type(int | None)
_GENERIC = type(tuple[int, ...])
_NONE = type(None)

_JSON_TYPES = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}
_SCALAR_NAMES = {str: "string", bool: "boolean"}


class _Field:
    """How to decode one field of a model class."""

    __slots__ = ("attr", "hint", "key", "required")

    def __init__(self, attr: str, key: str, hint: Any, required: bool) -> None:
        self.attr = attr
        self.key = key
        self.hint = hint
        self.required = required


# --- public API ------------------------------------------------------------------


def load_spec(bundle_dir: str) -> Spec:
    """Read and decode ``<bundle_dir>/config.json``.

    Raises ConfigError listing every problem found.
    """
    path = os.path.join(bundle_dir, CONFIG_NAME)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise missing_config_error(bundle_dir) from None
    except OSError as err:
        problem = f"read `{path}`: {describe_oserror(err)}"
        raise ConfigError([problem], CONFIG_NAME) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        problem = f"byte {err.start}: not valid UTF-8"
        raise ConfigError([problem], CONFIG_NAME) from None
    return decode_spec(text, CONFIG_NAME)


def decode_spec(text: str, source: str = CONFIG_NAME) -> Spec:
    """Decode a config.json document given as text."""
    document = parse_json(text, source)
    problems: list[str] = []
    spec = decode_object(Spec, document, "", problems)
    problems.extend(check_oci_version(document.get("ociVersion")))
    if problems:
        raise ConfigError(problems, source)
    return model.replace(spec, raw=document)


def decode_process(text: str, source: str = "process.json") -> Process:
    """Decode a lone process object (the ``exec --process`` file)."""
    document = parse_json(text, source)
    problems: list[str] = []
    process = decode_object(Process, document, "", problems)
    if problems:
        raise ConfigError(problems, source)
    return process


def missing_config_error(bundle_dir: str) -> ConfigError:
    """Return the error for a bundle without config.json, worded as runc does."""
    message = f"JSON specification file {CONFIG_NAME} not found"
    return plain_config_error(message, [f"{message}: {bundle_dir}"])


def plain_config_error(message: str, problems: list[str] | None = None) -> ConfigError:
    """Return a ConfigError whose user-facing line is exactly ``message``.

    For errors about config.json that are not about its content: runc prints
    these lines as they are (no "invalid config.json" prefix), and tools that
    drive runc match on them.
    """
    err = ConfigError(problems or [message], CONFIG_NAME)
    err.message = message
    return err


# --- JSON text -------------------------------------------------------------------


def parse_json(text: str, source: str = CONFIG_NAME) -> dict[str, Any]:
    """Parse text that must hold one JSON object; raise ConfigError if not.

    NaN and Infinity are syntax errors (JSON has neither); a repeated key
    keeps its last value, as Python's json (and Go's) decoders do.
    """
    if not text.strip():
        raise ConfigError(["the file is empty"], source)
    try:
        document = json_loads(text)
    except JSONSyntaxError as err:
        raise ConfigError([describe_syntax_error(err)], source) from None
    if type(document) is not dict:
        kind = json_type(document)
        raise ConfigError([f"the top level must be an object, got {kind}"], source)
    return document


def describe_syntax_error(err: JSONSyntaxError) -> str:
    """Turn json's error (message, line, column) into ``line L, column C: what``."""
    if err.msg == "Extra data":
        what = "extra data after the JSON object"
    else:
        what = err.msg[:1].lower() + err.msg[1:]
    return f"line {err.lineno}, column {err.colno}: {what}"


def check_oci_version(version: Any) -> list[str]:
    """Check ``ociVersion`` is SemVer 2.0 with a major version we support."""
    if type(version) is not str:
        return []  # absent or mistyped: already reported by the decoder
    major = semver_major(version)
    if major is None:
        return [f"ociVersion: {quote(version)} is not a valid SemVer version"]
    if major != SUPPORTED_MAJOR:
        return [
            f"ociVersion: unsupported version {quote(version)} "
            f"(pyruntime supports {SUPPORTED_MAJOR}.x)"
        ]
    return []


def semver_major(version: str) -> int | None:
    """The major version of a SemVer 2.0.0 string, None if it is not one.

    ``MAJOR.MINOR.PATCH``, then optionally ``-`` and dot-separated
    pre-release identifiers, then optionally ``+`` and dot-separated build
    identifiers. Identifiers are made of ``[0-9A-Za-z-]``; numbers, numeric
    pre-release identifiers included, have no leading zero.
    """
    rest, plus, build = version.partition("+")
    if plus and not all(map(is_semver_id, build.split("."))):
        return None
    core, dash, pre = rest.partition("-")
    if dash and not all(map(is_pre_release_id, pre.split("."))):
        return None
    numbers = core.split(".")
    if len(numbers) != 3 or not all(map(is_semver_number, numbers)):
        return None
    return int(numbers[0])


def is_semver_number(text: str) -> bool:
    """``0``, or ASCII digits without a leading zero."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


def is_semver_id(text: str) -> bool:
    """A build identifier: one or more of ``[0-9A-Za-z-]``."""
    return text != "" and not text.strip(_SEMVER_ID_CHARS)


def is_pre_release_id(text: str) -> bool:
    """A pre-release identifier: a build identifier, no leading zero if numeric."""
    if not is_semver_id(text):
        return False
    return not text.isdigit() or is_semver_number(text)


# --- generic decoder -------------------------------------------------------------


#: ``fields_of``'s answers, one per model class.
_FIELDS: dict[type, tuple[_Field, ...]] = {}


def fields_of(cls: type) -> tuple[_Field, ...]:
    """Return how to decode each field of a model class (cached per class).

    ``hint`` is the field's annotation as the class holds it (the model's
    annotations are evaluated when its classes are made).
    """
    found = _FIELDS.get(cls)
    if found is None:
        hints = cls.__annotations__
        found = tuple(
            _Field(f.name, f.key, hints[f.name], f.required)
            for f in model.fields(cls)
            if f.key is not None
        )
        _FIELDS[cls] = found
    return found


def decode_value(hint: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Decode one JSON value against a model annotation, recording problems."""
    kind = type(hint)
    if kind is _UNION:  # X | None
        if value is None:
            return None  # JSON null on an optional field means "not set"
        (inner,) = [arg for arg in hint.__args__ if arg is not _NONE]
        return decode_value(inner, value, path, problems)
    if kind is _GENERIC and hint.__origin__ is tuple:  # tuple[X, ...]
        return decode_array(hint.__args__[0], value, path, problems)
    if kind is _GENERIC and hint.__origin__ is dict:  # dict[str, X]
        return decode_map(hint.__args__[1], value, path, problems)
    if model.is_model(hint):
        return decode_object(hint, value, path, problems)
    if isinstance(hint, type) and issubclass(hint, IntRange):
        return decode_int(hint, value, path, problems)
    if hint in _SCALAR_NAMES:
        return decode_scalar(hint, value, path, problems)
    raise TypeError(f"spec.model: no decoder for annotation {hint!r} at {path}")


def decode_object(cls: type, value: Any, path: str, problems: list[str]) -> Any:
    """Decode a JSON object into the model class ``cls``."""
    if type(value) is not dict:
        report(problems, path, f"expected object, got {json_type(value)}")
        return None
    kwargs = {}
    for f in fields_of(cls):
        where = join_key(path, f.key)
        if f.key in value:
            kwargs[f.attr] = decode_value(f.hint, value[f.key], where, problems)
        elif f.required:
            report(problems, where, "required field is missing")
    return cls(**kwargs)


def decode_array(item: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Decode a JSON array into a tuple."""
    if type(value) is not list:
        report(problems, path, f"expected array, got {json_type(value)}")
        return None
    return tuple(
        decode_value(item, element, f"{path}[{index}]", problems)
        for index, element in enumerate(value)
    )


def decode_map(item: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Decode a free-form JSON object (annotations, sysctl...) into a dict."""
    if type(value) is not dict:
        report(problems, path, f"expected object, got {json_type(value)}")
        return None
    return {
        key: decode_value(item, element, f"{path}[{quote(key)}]", problems)
        for key, element in value.items()
    }


def decode_scalar(kind: type, value: Any, path: str, problems: list[str]) -> Any:
    """Decode a string or a boolean."""
    # type() rather than isinstance(): bool is a subclass of int.
    if type(value) is kind:
        return value
    report(problems, path, f"expected {_SCALAR_NAMES[kind]}, got {json_type(value)}")
    return None


def decode_int(kind: type[IntRange], value: Any, path: str, problems: list[str]) -> Any:
    """Decode an integer of the given range; 1.0 and true are not integers."""
    if type(value) is not int:
        report(problems, path, f"expected {kind.expected}, got {json_type(value)}")
    elif value < 0 and kind.low == 0:
        report(problems, path, f"expected unsigned integer, got {value}")
    elif not kind.low <= value <= kind.high:
        report(problems, path, f"{value} is out of range for {kind.name}")
    else:
        return value
    return None


def report(problems: list[str], path: str, message: str) -> None:
    """Record one problem, prefixed with its JSON path."""
    problems.append(f"{path}: {message}" if path else message)


def join_key(path: str, key: str) -> str:
    """Return the JSON path of ``key`` inside the object at ``path``."""
    return f"{path}.{key}" if path else key


def json_type(value: Any) -> str:
    """Name the JSON type of a decoded value."""
    return _JSON_TYPES.get(type(value), type(value).__name__)
