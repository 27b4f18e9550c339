"""What ``update`` changes: flags or a JSON document → a resources change.

Pure: parsing and merging only. The result of :func:`merge_resources` is the
container's new ``linux.resources``: the saved one with the change laid over
it, so that a value given alone keeps its partner (``--cpu-quota`` alone
keeps the saved period, ``--memory`` alone the saved swap). Sections the
change does not name stay as saved.

``update`` understands the sections runc's does: ``memory``, ``cpu``,
``blockIO``, ``pids`` and ``unified``. Device rules, huge pages, network
and rdma are not changed by ``update`` (runc neither).

Zero or empty means "not given" for ``--pids-limit``, ``--blkio-weight``,
``--cpuset-cpus`` and ``--cpuset-mems`` (runc's flag defaults), and for a
``pids.limit`` of 0 in the JSON.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

from pyruntime.errors import ConfigError, UsageError

#: Sections of linux.resources that ``update`` changes.
SECTIONS = ("memory", "cpu", "blockIO", "pids", "unified")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_memory_size(text: str) -> int:
    """Parse a memory size as runc does: ``-1``, bytes, or ``128M``, ``1.5g``.

    Units are binary (k = 1024) and case-insensitive; ``i`` and ``b`` may
    follow (``128MiB``, ``64mb``).
    """
    if text == "-1":
        return -1
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    unit = _UNITS.get((match.group(2) or "").lower(), 1)
    return int(float(match.group(1)) * unit)


def _integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"`{text}` is not an integer") from None


def _unsigned(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise ValueError(f"`{text}` is negative")
    return value


#: flag name → (section, key, parser); the parser raises ValueError.
FLAGS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "blkio-weight": ("blockIO", "weight", _unsigned),
    "cpu-period": ("cpu", "period", _unsigned),
    "cpu-quota": ("cpu", "quota", _integer),
    "cpu-burst": ("cpu", "burst", _unsigned),
    "cpu-share": ("cpu", "shares", _unsigned),
    "cpu-rt-period": ("cpu", "realtimePeriod", _unsigned),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", _integer),
    "cpuset-cpus": ("cpu", "cpus", str),
    "cpuset-mems": ("cpu", "mems", str),
    "cpu-idle": ("cpu", "idle", _integer),
    "memory": ("memory", "limit", parse_memory_size),
    "memory-reservation": ("memory", "reservation", parse_memory_size),
    "memory-swap": ("memory", "swap", parse_memory_size),
    "pids-limit": ("pids", "limit", _integer),
}
#: Flags whose zero (or empty) value means "not given".
ZERO_IS_UNSET = {"blkio-weight", "pids-limit", "cpuset-cpus", "cpuset-mems"}


def resources_from_flags(values: dict[str, str | None]) -> dict[str, Any]:
    """Turn ``{flag name: text or None}`` into a resources change."""
    change: dict[str, Any] = {}
    for flag, text in values.items():
        if text is None or flag not in FLAGS:
            continue
        section, key, parse = FLAGS[flag]
        try:
            value = parse(text)
        except ValueError as err:
            raise UsageError(f"invalid value for {flag}: {err}") from None
        if flag in ZERO_IS_UNSET and not value:
            continue
        change.setdefault(section, {})[key] = value
    return change


# ------------------------------------------------------------------- JSON

_INT, _BOOL, _STR, _LIST = "an integer", "a boolean", "a string", "a list"
SCHEMA: dict[str, dict[str, str]] = {
    "memory": {
        "limit": _INT,
        "reservation": _INT,
        "swap": _INT,
        "kernel": _INT,
        "kernelTCP": _INT,
        "swappiness": _INT,
        "disableOOMKiller": _BOOL,
        "useHierarchy": _BOOL,
        "checkBeforeUpdate": _BOOL,
    },
    "cpu": {
        "shares": _INT,
        "quota": _INT,
        "burst": _INT,
        "period": _INT,
        "realtimeRuntime": _INT,
        "realtimePeriod": _INT,
        "cpus": _STR,
        "mems": _STR,
        "idle": _INT,
    },
    "blockIO": {
        "weight": _INT,
        "leafWeight": _INT,
        "weightDevice": _LIST,
        "throttleReadBpsDevice": _LIST,
        "throttleWriteBpsDevice": _LIST,
        "throttleReadIOPSDevice": _LIST,
        "throttleWriteIOPSDevice": _LIST,
    },
    "pids": {"limit": _INT},
}


def _is(kind: str, value: Any) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    return isinstance(value, list)


def parse_resources_json(text: str, source: str) -> tuple[dict[str, Any], list[str]]:
    """Decode an ``update --resources`` document.

    Returns the change and the names of what it ignores (sections ``update``
    does not change, unknown fields). ``null`` values count as absent.
    Raises ConfigError listing every value of the wrong type.
    """
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError([f"not JSON: {err}"], source=source) from None
    if not isinstance(data, dict):
        raise ConfigError(["the resources must be a JSON object"], source=source)
    change: dict[str, Any] = {}
    problems: list[str] = []
    ignored = sorted(k for k, v in data.items() if k not in SECTIONS and v)
    for section in SECTIONS:
        value = data.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(f"{section}: expected an object")
            continue
        if section == "unified":
            bad = [k for k, v in value.items() if not isinstance(v, str)]
            problems += [f"unified.{k}: expected a string" for k in bad]
            change[section] = dict(value)
            continue
        change[section] = _check_section(section, value, problems, ignored)
    if problems:
        raise ConfigError(problems, source=source)
    if change.get("pids", {}).get("limit") == 0:
        del change["pids"]["limit"]
    return {k: v for k, v in change.items() if v}, ignored


def _check_section(
    section: str, value: dict, problems: list[str], ignored: list[str]
) -> dict[str, Any]:
    kept = {}
    for key, item in value.items():
        if item is None:
            continue
        kind = SCHEMA[section].get(key)
        if kind is None:
            # A field of a newer runtime-spec: skipped, as Go's decoder does.
            ignored.append(f"{section}.{key}")
        elif not _is(kind, item):
            problems.append(f"{section}.{key}: expected {kind}, got {json.dumps(item)}")
        else:
            kept[key] = item
    return kept


# ------------------------------------------------------------------ merge


def merge_resources(
    saved: dict[str, Any] | None, change: dict[str, Any]
) -> dict[str, Any]:
    """Return the saved resources with ``change`` laid over them (new dict).

    ``memory.limit: -1`` without a swap value makes swap unlimited too (as
    runc: "unlimited memory" means memory and swap).
    """
    merged = copy.deepcopy(saved or {})
    for section in SECTIONS:
        values = change.get(section)
        if not values:
            continue
        target = merged.get(section)
        target = dict(target) if isinstance(target, dict) else {}
        target.update(copy.deepcopy(values))
        merged[section] = target
    memory = change.get("memory") or {}
    if memory.get("limit") == -1 and "swap" not in memory:
        merged["memory"]["swap"] = -1
    return merged


def changed_sections(merged: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """Return the sections of ``merged`` that ``change`` touches (to apply)."""
    return {s: merged[s] for s in SECTIONS if change.get(s) and s in merged}
