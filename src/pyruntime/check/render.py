"""The report, as people read it (text) and as programs read it (JSON).

Text lists the errors group by group (config, bundle, host), then every
warning and note, each as three lines: where, what, and what to do. Severity
words and headings are coloured only on a terminal, and never when
``NO_COLOR`` is set; piped output is plain. JSON is the report's
:meth:`~pyruntime.check.findings.Report.as_dict`, indented as ``json.dumps``
indents it.
"""

from __future__ import annotations

import os

from pyruntime.check.findings import ERROR, GROUPS, NOTE, WARNING, Finding, Report

_COLOURS = {ERROR: "31", WARNING: "33", NOTE: "36", "ok": "32", "heading": "1"}
_PLURALS = {ERROR: "errors", WARNING: "warnings", NOTE: "notes"}


class Painter:
    """Wraps text in ANSI colours, or leaves it alone."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, kind: str, text: str) -> str:
        if not self.enabled or kind not in _COLOURS:
            return text
        return f"\033[{_COLOURS[kind]}m{text}\033[0m"


def use_colour(stream) -> bool:
    """Colour on a terminal, unless NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def render_json(report: Report) -> str:
    """The report as indented JSON."""
    return indented_json(report.as_dict())


def indented_json(document) -> str:
    """``json.dumps(document, indent=2, ensure_ascii=False)``, and a newline.

    Written by :mod:`pyruntime.state.jsonio`, which does not import
    :mod:`json` (and with it :mod:`re`). It escapes every character outside
    ASCII as ``\\uXXXX``, as json's default does; where it wrote such an
    escape (or a ``\\`` followed by ``u``), :mod:`json` writes the document
    again, keeping the characters as they are.
    """
    from pyruntime.state import jsonio

    text = jsonio.dumps_indented(document, 2)
    if "\\u" in text:
        import json

        text = json.dumps(document, indent=2, ensure_ascii=False)
    return text + "\n"


def render_text(report: Report, colour: bool = False) -> str:
    """The report as grouped, readable text."""
    paint = Painter(colour)
    lines = header_lines(report)
    for group in GROUPS:
        errors = [f for f in report.of_severity(ERROR) if f.group == group]
        if errors:
            lines += ["", paint("heading", group)]
            lines += [line for f in errors for line in finding_lines(f, paint)]
    for severity in (WARNING, NOTE):
        found = report.of_severity(severity)
        if found:
            lines += ["", paint("heading", _PLURALS[severity])]
            lines += [line for f in found for line in finding_lines(f, paint, True)]
    if report.run is not None:
        lines += ["", *run_lines(report.run, paint)]
    lines += ["", summary_line(report, paint)]
    return "\n".join(lines) + "\n"


def header_lines(report: Report) -> list[str]:
    """Which bundle, which config, which host."""
    host = report.host
    controllers = " ".join(host.get("controllers") or ()) or "none"
    lsm = ", ".join(host.get("lsm") or ()) or "none"
    return [
        f"bundle: {report.bundle} ({report.config})",
        f"host:   Linux {host.get('kernel')} {host.get('arch')}, cgroup "
        f"{host.get('cgroup')} ({controllers}), LSM: {lsm}",
    ]


def finding_lines(finding: Finding, paint: Painter, tagged=False) -> list[str]:
    """Where, what and what to do, for one finding."""
    label = paint(finding.severity, f"{finding.severity:<8}")
    where = f"[{finding.group}] {finding.where}" if tagged else finding.where
    lines = [f"  {label} {where}", f"           {finding.message}"]
    if finding.hint:
        lines.append(f"           fix: {finding.hint}")
    return lines


def run_lines(run: dict, paint: Painter) -> list[str]:
    """The smoke test: how it ended, then each verification."""
    lines = [paint("heading", f"run (timeout {run['timeout']:g} s)")]
    lines.append(f"  {run['outcome']}")
    for item in run.get("verified", ()):
        status = item["status"]
        kind = {"verified": "ok", "differs": ERROR}.get(status, NOTE)
        lines.append(
            f"  {paint(kind, f'{status:<9}')} {item['what']}: {item['detail']}"
        )
    for line in run.get("output_tail", ()):
        lines.append(f"  | {line}")
    return lines


def summary_line(report: Report, paint: Painter) -> str:
    """``3 errors, 2 warnings: the bundle would not run``."""
    parts = []
    for severity in (ERROR, WARNING, NOTE):
        count = report.count(severity)
        word = _PLURALS[severity] if count != 1 else severity
        parts.append(f"{count} {word}")
    if report.runnable:
        verdict = paint("ok", "the bundle would run")
        if report.run is not None:
            verdict = paint("ok", "the bundle ran")
    elif report.count(ERROR):
        verdict = paint(ERROR, "the bundle would not run")
    else:
        verdict = paint(ERROR, "the smoke test failed")
    return f"result: {', '.join(parts)}: {verdict}"
