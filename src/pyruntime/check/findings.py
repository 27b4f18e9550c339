"""What ``pyruntime check`` finds: one :class:`Finding` per problem, in a Report.

A finding says how bad it is, where it is and what to do:

- ``severity``: ``error`` (the bundle would not run as it is), ``warning`` (it
  would run, but a setting is ignored or risky) or ``note`` (something check
  could not look at, and why);
- ``group``: ``config`` (the document itself), ``bundle`` (the files it names)
  or ``host`` (what this kernel, its cgroups and pyruntime can do);
- ``code``: a short stable name for the kind of finding (``bind-source``);
- ``where``: a JSON path (``linux.resources.cpu.cpus``) or a place in the
  file (``config.json line 269, column 9``);
- ``message`` and ``hint``: what is wrong, and what to do about it.

Only errors decide the exit status: a bundle with warnings still runs.
"""

from __future__ import annotations

from pyruntime.records import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ERROR = "error"
WARNING = "warning"
NOTE = "note"
SEVERITIES = (ERROR, WARNING, NOTE)

CONFIG = "config"
BUNDLE = "bundle"
HOST = "host"
GROUPS = (CONFIG, BUNDLE, HOST)


@dataclass(frozen=True)
class Finding:
    """One problem, warning or note, with its place and a way out."""

    severity: str
    group: str
    code: str
    where: str
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        """The finding as a JSON object."""
        return {
            "severity": self.severity,
            "group": self.group,
            "code": self.code,
            "where": self.where,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass
class Report:
    """Everything one check found about one bundle, in the order found."""

    bundle: str
    config: str
    findings: list[Finding] = field(default_factory=list)
    #: What the host offers (cgroup layout, kernel, architecture...).
    host: dict[str, Any] = field(default_factory=dict)
    #: The ``--run`` smoke test's results, when one was asked for.
    run: dict[str, Any] | None = None

    def add(
        self,
        severity: str,
        group: str,
        code: str,
        where: str,
        message: str,
        hint: str = "",
    ) -> None:
        """Record one finding (the same finding twice is kept once)."""
        finding = Finding(severity, group, code, where, message, hint)
        if finding not in self.findings:
            self.findings.append(finding)

    def error(self, group: str, code: str, where: str, message: str, hint: str = ""):
        """Record something that stops the bundle from running."""
        self.add(ERROR, group, code, where, message, hint)

    def warning(self, group: str, code: str, where: str, message: str, hint=""):
        """Record something ignored or risky."""
        self.add(WARNING, group, code, where, message, hint)

    def note(self, group: str, code: str, where: str, message: str, hint=""):
        """Record something check could not look at."""
        self.add(NOTE, group, code, where, message, hint)

    def of_severity(self, severity: str) -> list[Finding]:
        """The findings of one severity, in order."""
        return [f for f in self.findings if f.severity == severity]

    def count(self, severity: str) -> int:
        """How many findings of one severity there are."""
        return len(self.of_severity(severity))

    @property
    def runnable(self) -> bool:
        """No error, and the smoke test (if any) passed."""
        if self.count(ERROR):
            return False
        return self.run is None or bool(self.run.get("ok"))

    def as_dict(self) -> dict[str, Any]:
        """The whole report as a JSON document (see docs/check.md)."""
        document: dict[str, Any] = {
            "bundle": self.bundle,
            "config": self.config,
            "runnable": self.runnable,
            "counts": {severity: self.count(severity) for severity in SEVERITIES},
            "host": self.host,
            "findings": [f.as_dict() for f in self.findings],
        }
        if self.run is not None:
            document["run"] = self.run
        return document


def split_problem(problem: str) -> tuple[str, str]:
    """Split a ``json.path: what`` problem into its path and its message."""
    head, sep, tail = problem.partition(": ")
    if sep and head and " " not in head:
        return head, tail
    return "", problem
