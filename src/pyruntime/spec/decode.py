"""Read config.json and decode it into ``spec.model`` objects.

This module owns the JSON -> model step: syntax errors (with line and column),
JSON types and integer ranges, REQUIRED fields and the ``ociVersion`` check.
It walks the model classes generically (see ``spec.model``) and reports every
problem it finds in one pass, each prefixed with its JSON path, e.g.
``linux.resources.memory.limit: expected integer, got string``.

Unknown keys are not errors: the runtime-spec says runtimes must ignore
properties they do not know. They stay available in ``Spec.raw``.
Cross-field rules (absolute paths, namespaces...) live in ``spec.validate``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import types
import typing
from typing import Any

from pyruntime.errors import ConfigError, describe_oserror
from pyruntime.spec import model
from pyruntime.spec.model import IntRange, Process, Spec

CONFIG_NAME = "config.json"
#: The runtime-spec major version whose documents we accept.
SUPPORTED_MAJOR = 1

# SemVer 2.0.0: numeric identifiers carry no leading zeros; pre-release and
# build identifiers are dot-separated [0-9A-Za-z-] (pre-release numerics also
# without leading zeros).
_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"(?P<major>{_NUMBER})\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?",
    re.ASCII,
)

# Finds NaN/Infinity outside string literals, to place them for the user
# (compiled on first use: only a document holding one needs it).
_CONSTANT = r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)'

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


class _NonFiniteNumber(ValueError):
    """NaN or Infinity: Python's json accepts them, JSON (and Go) do not."""


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
    """Parse text that must hold one JSON object; raise ConfigError if not."""
    if not text.strip():
        raise ConfigError(["the file is empty"], source)
    try:
        document = json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as err:
        raise ConfigError([describe_syntax_error(err)], source) from None
    except _NonFiniteNumber as err:
        pos = locate_constant(text)
        what = f"Invalid number {err}: JSON has no NaN or Infinity"
        syntax = json.JSONDecodeError(what, text, pos)
        raise ConfigError([describe_syntax_error(syntax)], source) from None
    if type(document) is not dict:
        kind = json_type(document)
        raise ConfigError([f"the top level must be an object, got {kind}"], source)
    return document


def reject_constant(name: str) -> float:
    """``parse_constant`` hook: refuse NaN, Infinity and -Infinity."""
    raise _NonFiniteNumber(name)


def locate_constant(text: str) -> int:
    """Return the offset of the first NaN/Infinity outside a string literal."""
    for match in re.finditer(_CONSTANT, text, re.DOTALL):
        if match.group(1):
            return match.start(1)
    return 0


def describe_syntax_error(err: json.JSONDecodeError) -> str:
    """Turn a JSONDecodeError into ``line L, column C: what``."""
    if err.msg == "Extra data":
        what = "extra data after the JSON object"
    else:
        what = err.msg[:1].lower() + err.msg[1:]
    return f"line {err.lineno}, column {err.colno}: {what}"


def check_oci_version(version: Any) -> list[str]:
    """Check ``ociVersion`` is SemVer 2.0 with a major version we support."""
    if type(version) is not str:
        return []  # absent or mistyped: already reported by the decoder
    match = _SEMVER.fullmatch(version)
    if match is None:
        return [f"ociVersion: {json.dumps(version)} is not a valid SemVer version"]
    if int(match["major"]) != SUPPORTED_MAJOR:
        return [
            f"ociVersion: unsupported version {json.dumps(version)} "
            f"(pyruntime supports {SUPPORTED_MAJOR}.x)"
        ]
    return []


# --- generic decoder -------------------------------------------------------------


@functools.cache
def fields_of(cls: type) -> tuple[_Field, ...]:
    """Return how to decode each field of a model class (cached per class)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(
        _Field(f.name, f.key, hints[f.name], f.required)
        for f in model.fields(cls)
        if f.key is not None
    )


def decode_value(hint: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Decode one JSON value against a model annotation, recording problems."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None  # JSON null on an optional field means "not set"
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return decode_value(inner, value, path, problems)
    if origin is typing.Annotated:
        return decode_int(typing.get_args(hint)[1], value, path, problems)
    if origin is tuple:
        return decode_array(typing.get_args(hint)[0], value, path, problems)
    if origin is dict:
        return decode_map(typing.get_args(hint)[1], value, path, problems)
    if model.is_model(hint):
        return decode_object(hint, value, path, problems)
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
        key: decode_value(item, element, f"{path}[{json.dumps(key)}]", problems)
        for key, element in value.items()
    }


def decode_scalar(kind: type, value: Any, path: str, problems: list[str]) -> Any:
    """Decode a string or a boolean."""
    # type() rather than isinstance(): bool is a subclass of int.
    if type(value) is kind:
        return value
    report(problems, path, f"expected {_SCALAR_NAMES[kind]}, got {json_type(value)}")
    return None


def decode_int(kind: IntRange, value: Any, path: str, problems: list[str]) -> Any:
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
