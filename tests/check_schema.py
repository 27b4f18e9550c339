"""The JSON shape of ``pyruntime check --format json``, and a small validator.

The schema is written in a subset of JSON Schema (``type``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``enum``, ``minimum``), and
:func:`validate` checks a document against it, so the tests need no
jsonschema package. It is the contract docs/check.md describes.
"""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}
SEVERITIES = ["error", "warning", "note"]

FINDING = {
    "type": "object",
    "required": ["severity", "group", "code", "where", "message", "hint"],
    "additionalProperties": False,
    "properties": {
        "severity": {"type": "string", "enum": SEVERITIES},
        "group": {"type": "string", "enum": ["config", "bundle", "host"]},
        "code": STRING,
        "where": STRING,
        "message": STRING,
        "hint": STRING,
    },
}

VERIFICATION = {
    "type": "object",
    "required": ["what", "status", "detail"],
    "additionalProperties": False,
    "properties": {
        "what": STRING,
        "status": {"type": "string", "enum": ["verified", "differs", "not seen"]},
        "detail": STRING,
    },
}

RUN = {
    "type": "object",
    "required": ["ok", "timeout", "outcome", "exit_status", "verified"],
    "additionalProperties": False,
    "properties": {
        "ok": {"type": "boolean"},
        "id": STRING,
        "timeout": {"type": "number", "minimum": 0},
        "outcome": STRING,
        "exit_status": {"type": ["integer", "null"]},
        "duration": {"type": "number", "minimum": 0},
        "verified": {"type": "array", "items": VERIFICATION},
        "output": STRING,
        "output_tail": {"type": "array", "items": STRING},
    },
}

REPORT = {
    "type": "object",
    "required": ["bundle", "config", "runnable", "counts", "host", "findings"],
    "additionalProperties": False,
    "properties": {
        "bundle": STRING,
        "config": STRING,
        "runnable": {"type": "boolean"},
        "counts": {
            "type": "object",
            "required": SEVERITIES,
            "additionalProperties": False,
            "properties": {s: {"type": "integer", "minimum": 0} for s in SEVERITIES},
        },
        "host": {
            "type": "object",
            "required": ["kernel", "arch", "cgroup", "controllers", "lsm"],
            "additionalProperties": False,
            "properties": {
                "kernel": STRING,
                "arch": STRING,
                "cgroup": {"type": "string", "enum": ["v1", "hybrid", "v2", "none"]},
                "controllers": {"type": "array", "items": STRING},
                "lsm": {"type": "array", "items": STRING},
            },
        },
        "findings": {"type": "array", "items": FINDING},
        "run": RUN,
    },
}

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def type_matches(value: Any, kind: str) -> bool:
    """JSON Schema's idea of a type (booleans are not numbers)."""
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return type(value) in (int, float)
    return isinstance(value, _TYPES[kind])


def validate(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``path: what`` lines."""
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds and not any(type_matches(value, kind) for kind in kinds):
        return [f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} is below {schema['minimum']}")
    if isinstance(value, dict):
        errors += validate_object(value, schema, path)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{index}]")
    return errors


def validate_object(value: dict, schema: dict, path: str) -> list[str]:
    """``required``, ``properties`` and ``additionalProperties: false``."""
    errors = [
        f"{path}: missing {key}"
        for key in schema.get("required", ())
        if key not in value
    ]
    properties = schema.get("properties", {})
    for key, item in value.items():
        if key in properties:
            errors += validate(item, properties[key], f"{path}.{key}")
        elif schema.get("additionalProperties") is False:
            errors.append(f"{path}: unexpected key {key}")
    return errors
