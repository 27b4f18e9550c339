"""The device allow list: OCI rules → the list a container really gets.

``linux.resources.devices`` lists rules applied in order (a later rule
overrides an earlier one). A config that restricts devices (the usual
``{"allow": false, "access": "rwm"}`` first) would leave the container
without ``/dev/null`` or a terminal; so, as runc does, the devices every
container gets (:data:`DEFAULT_ALLOWED`) and the nodes asked for in
``linux.devices`` are allowed after the config's rules.

A config without device rules leaves devices unrestricted by the cgroup
(runc would still install its default allow list; the container's ``/dev``
holds only the nodes the runtime made, so the difference is for nodes
created later with ``mknod`` by a privileged process).

Rules are normalised to :class:`Rule` for the cgroup v2 eBPF program; the v1
``devices.allow``/``devices.deny`` lines are made by
:func:`pyruntime.cgroups.writes.device_rule_lines`.
"""

from __future__ import annotations

from pyruntime.errors import ConfigError
from pyruntime.records import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Wildcard major or minor number.
ANY = -1


@dataclass(frozen=True)
class Rule:
    """One device rule: ``kind`` is ``a``, ``b`` or ``c``; -1 is a wildcard."""

    allow: bool
    kind: str = "a"
    major: int = ANY
    minor: int = ANY
    access: str = "rwm"

    def as_oci(self) -> dict[str, Any]:
        """Return the rule as an OCI ``linux.resources.devices`` entry."""
        return {
            "allow": self.allow,
            "type": self.kind,
            "major": self.major,
            "minor": self.minor,
            "access": self.access,
        }


def _char(major: int, minor: int = ANY) -> Rule:
    return Rule(True, "c", major, minor, "rwm")


#: What every container may use (runc's list): mknod of any node (creating a
#: node does not give access to it), the standard character devices, the
#: pty slaves and ``/dev/ptmx``, and ``/dev/net/tun``.
DEFAULT_ALLOWED = (
    Rule(True, "c", ANY, ANY, "m"),
    Rule(True, "b", ANY, ANY, "m"),
    _char(1, 3),  # /dev/null
    _char(1, 8),  # /dev/random
    _char(1, 7),  # /dev/full
    _char(5, 0),  # /dev/tty
    _char(1, 5),  # /dev/zero
    _char(1, 9),  # /dev/urandom
    _char(136),  # /dev/pts/*
    _char(5, 2),  # /dev/ptmx
    _char(10, 200),  # /dev/net/tun
)


def _number(value: Any) -> int:
    return ANY if value is None else int(value)


def rule_of(entry: dict[str, Any], where: str = "linux.resources.devices") -> Rule:
    """Normalise one OCI device rule (missing fields mean "any").

    A type other than ``a``, ``b`` or ``c``, or an access letter other than
    ``r``, ``w`` and ``m``, is refused (ConfigError naming ``where``): v1's
    kernel would refuse the line, and the v2 filter would read the rule as
    something else.
    """
    kind = entry.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise ConfigError([f"{where}.type: `{kind}` is not one of a, b, c"])
    given = entry.get("access") or "rwm"
    if not set(given) <= set("rwm"):
        raise ConfigError([f"{where}.access: `{given}` is not made of r, w and m"])
    return Rule(
        allow=bool(entry.get("allow")),
        kind=kind,
        major=_number(entry.get("major")),
        minor=_number(entry.get("minor")),
        access="".join(ch for ch in "rwm" if ch in given),
    )


def node_rules(linux_devices: list[dict[str, Any]] | None) -> list[Rule]:
    """Return allow rules for the ``linux.devices`` nodes (not fifos)."""
    rules = []
    for node in linux_devices or []:
        kind = node.get("type")
        if kind in ("c", "u", "b") and node.get("major") is not None:
            rules.append(
                Rule(True, "b" if kind == "b" else "c", node["major"], node["minor"])
            )
    return rules


def effective_rules(
    rules: list[dict[str, Any]] | None,
    linux_devices: list[dict[str, Any]] | None = None,
) -> list[Rule]:
    """Return the rules to enforce: the config's, then the defaults and nodes.

    Empty when the config has no device rules (devices stay unrestricted).
    """
    if not rules:
        return []
    return [
        *(
            rule_of(entry, f"linux.resources.devices[{index}]")
            for index, entry in enumerate(rules)
        ),
        *DEFAULT_ALLOWED,
        *node_rules(linux_devices),
    ]


def with_effective_devices(
    resources: dict[str, Any] | None,
    linux_devices: list[dict[str, Any]] | None = None,
    skip: bool = False,
) -> dict[str, Any]:
    """Return a copy of ``resources`` whose ``devices`` are the effective rules.

    ``skip`` drops the device rules altogether (``update`` does not touch
    devices, as in runc).
    """
    result = dict(resources or {})
    if skip:
        result.pop("devices", None)
        return result
    effective = effective_rules(result.get("devices"), linux_devices)
    if effective:
        result["devices"] = [rule.as_oci() for rule in effective]
    return result
