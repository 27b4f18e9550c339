"""The check report: its JSON against the schema, its text plain and coloured."""

from __future__ import annotations

import json

import pytest

from pyruntime.check.findings import Report
from pyruntime.check.render import (
    indented_json,
    render_json,
    render_text,
    use_colour,
)
from tests.check_schema import REPORT, validate

HOST = {
    "kernel": "6.1",
    "arch": "x86_64",
    "cgroup": "hybrid",
    "controllers": ["memory", "pids"],
    "lsm": [],
}


def sample_report() -> Report:
    report = Report(bundle="/b", config="config.json", host=dict(HOST))
    report.error(
        "config", "decode", "process.cwd", "required field is missing", "add it"
    )
    report.error(
        "host",
        "cpuset",
        "linux.resources.cpu.cpus",
        "CPUs 2-3 do not exist here",
        "use CPUs within 0-1",
    )
    report.warning("config", "no-seccomp", "linux.seccomp", "no filter", "add one")
    report.note("bundle", "skipped", "root", "not checked", "give root.path")
    return report


def test_the_json_follows_the_schema_and_counts_add_up():
    document = json.loads(render_json(sample_report()))
    assert validate(document, REPORT) == []
    assert document["counts"] == {"error": 2, "warning": 1, "note": 1}
    assert document["runnable"] is False
    assert [f["code"] for f in document["findings"]] == [
        "decode",
        "cpuset",
        "no-seccomp",
        "skipped",
    ]


def test_the_validator_catches_what_breaks_the_schema():
    document = json.loads(render_json(sample_report()))
    document["findings"][0]["severity"] = "fatal"
    document["counts"]["error"] = -1
    del document["host"]["arch"]
    document["extra"] = 1
    assert sorted(validate(document, REPORT)) == [
        "$.counts.error: -1 is below 0",
        "$.findings[0].severity: 'fatal' is not one of ['error', 'warning', 'note']",
        "$.host: missing arch",
        "$: unexpected key extra",
    ]


def test_a_run_section_follows_the_schema():
    report = sample_report()
    report.findings = []
    report.run = {
        "ok": True,
        "timeout": 10.0,
        "outcome": "created, started, exited with status 0",
        "exit_status": 0,
        "duration": 0.5,
        "verified": [{"what": "user", "status": "verified", "detail": "uid 0"}],
        "output": "hello\n",
    }
    document = json.loads(render_json(report))
    assert validate(document, REPORT) == []
    assert document["runnable"] is True


def test_text_is_grouped_and_plain_when_not_coloured():
    text = render_text(sample_report())
    assert "\033[" not in text
    lines = text.splitlines()
    assert lines[0] == "bundle: /b (config.json)"
    headings = [line for line in lines if line and not line.startswith((" ", "b"))]
    assert headings[1:] == [
        "config",
        "host",
        "warnings",
        "notes",
        "result: 2 errors, 1 warning, 1 note: the bundle would not run",
    ]
    where = lines.index("  error    linux.resources.cpu.cpus")
    assert lines[where + 1] == "           CPUs 2-3 do not exist here"
    assert lines[where + 2] == "           fix: use CPUs within 0-1"
    assert "  warning  [config] linux.seccomp" in lines


def test_text_is_coloured_on_request():
    text = render_text(sample_report(), colour=True)
    assert "\033[31merror   \033[0m" in text
    assert "\033[33mwarning \033[0m" in text


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Terminal())
    assert not use_colour(object())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Terminal())


def test_a_clean_report_would_run():
    report = Report(bundle="/b", config="config.json", host=dict(HOST))
    assert report.runnable
    assert render_text(report).endswith(
        "result: 0 errors, 0 warnings, 0 notes: the bundle would run\n"
    )


@pytest.mark.parametrize(
    "document",
    [
        sample_report().as_dict(),
        {"message": "a CFS period of 10 µs", "path": "/srv/bündel"},
        {"back": "a \\u in a string", "control": "\x01\x1f", "tab": "\t\n"},
        {"empty": {}, "list": [], "nested": [{"a": [1, 2.5, None, True]}]},
        {"run": {"duration": 0.1 + 0.2, "exit_status": None, "timeout": 10.0}},
        [],
        "text",
    ],
)
def test_indented_json_is_json_dumps(document):
    expected = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    assert indented_json(document) == expected
