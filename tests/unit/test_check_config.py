"""The config stage of ``pyruntime check``: everything about the document at once.

Each case writes a config into a temporary bundle (no rootfs needed: only the
config stage runs) and compares the findings it gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyruntime.check import config as stage
from pyruntime.check.context import Context
from pyruntime.check.findings import Report, split_problem
from pyruntime.spec.defaults import default_spec


def run_config_stage(tmp_path: Path, text: str, name="config.json") -> Context:
    """Write ``text`` as the config and run only the config stage on it."""
    (tmp_path / name).write_text(text)
    report = Report(bundle=str(tmp_path), config=name)
    ctx = Context(str(tmp_path), name, report)
    stage.check_config(ctx)
    return ctx


def keys(ctx: Context) -> list[tuple[str, str, str, str]]:
    """(severity, group, code, where) of every finding, in order."""
    return [(f.severity, f.group, f.code, f.where) for f in ctx.report.findings]


def dumped(change=None) -> str:
    """The default config, changed by ``change(config)``, as JSON text."""
    config = default_spec()
    if change:
        change(config)
    return json.dumps(config, indent=2)


def test_the_default_config_has_no_config_problem(tmp_path):
    ctx = run_config_stage(tmp_path, dumped())
    assert keys(ctx) == []
    assert ctx.spec is not None and not ctx.partial


def test_comments_are_reported_and_the_rest_still_checked(tmp_path):
    text = dumped(lambda c: c.update(hostname=7)).replace(
        '"hostname"', '// a comment\n  /* and another */ "hostname"'
    )
    ctx = run_config_stage(tmp_path, text)
    first = ctx.report.findings[0]
    assert first.code == "json-comments"
    assert first.where.startswith("config.json line ")
    line = text.splitlines().index("  // a comment") + 1
    assert f"comments on lines {line}, {line + 1}" in first.message
    assert "JSON has no comments" in first.message
    # The document was read without its comments: its other problem shows too.
    assert keys(ctx)[1:] == [("error", "config", "decode", "hostname")]


def test_a_slash_inside_a_string_is_no_comment(tmp_path):
    text = dumped(lambda c: c.update(hostname="a//b")) + "\n}"
    ctx = run_config_stage(tmp_path, text)
    assert [f.code for f in ctx.report.findings] == ["json-syntax"]
    assert ctx.spec is None


def test_find_comments_and_blank_out_keep_positions():
    text = '{"a": "x // y", // c\n "b": /* z */ 1}'
    spans = stage.find_comments(text)
    assert [text[s:e] for s, e in spans] == ["// c", "/* z */"]
    blanked = stage.blank_out(text, spans)
    assert len(blanked) == len(text)
    assert json.loads(blanked) == {"a": "x // y", "b": 1}


def test_decoding_and_validation_problems_come_together(tmp_path):
    def change(config):
        del config["process"]["cwd"]
        config["linux"]["resources"]["memory"] = {"limit": "1g"}
        del config["root"]

    ctx = run_config_stage(tmp_path, dumped(change))
    assert keys(ctx) == [
        ("error", "config", "decode", "process.cwd"),
        ("error", "config", "decode", "linux.resources.memory.limit"),
        ("error", "config", "invalid", "root"),
    ]
    assert ctx.partial


def test_a_path_already_reported_by_the_decoder_is_not_repeated(tmp_path):
    ctx = run_config_stage(tmp_path, dumped(lambda c: c["process"].update(cwd=3)))
    assert keys(ctx) == [("error", "config", "decode", "process.cwd")]
    assert ctx.report.findings[0].hint == "give a string here"


def test_unsupported_oci_version(tmp_path):
    ctx = run_config_stage(tmp_path, dumped(lambda c: c.update(ociVersion="2.0.0")))
    (finding,) = ctx.report.findings
    assert (finding.code, finding.where) == ("decode", "ociVersion")
    assert "unsupported version" in finding.message
    assert "1.x" in finding.hint


def test_capability_and_seccomp_plans_report_every_name(tmp_path):
    def change(config):
        config["process"]["capabilities"]["bounding"].append("CAP_NOPE")
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_NOPE",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"],
        }

    ctx = run_config_stage(tmp_path, dumped(change))
    assert keys(ctx) == [
        ("error", "config", "capabilities", "process.capabilities.bounding[3]"),
        ("error", "config", "seccomp", "linux.seccomp.defaultAction"),
        ("error", "config", "seccomp", "linux.seccomp.architectures[1]"),
    ]


def test_unknown_keys_and_other_platforms_are_warnings(tmp_path):
    def change(config):
        config["hostnmae"] = "typo"
        config["windows"] = {}
        config["process"]["user"]["nmae"] = "x"
        config["mounts"][0]["flags"] = []
        config["linux"]["resources"]["devices"][0]["mode"] = "rwm"

    ctx = run_config_stage(tmp_path, dumped(change))
    assert keys(ctx) == [
        ("warning", "config", "unknown-key", "process.user.nmae"),
        ("warning", "config", "unknown-key", "mounts[0].flags"),
        ("warning", "config", "unknown-key", "linux.resources.devices[0].mode"),
        ("warning", "config", "unknown-key", "hostnmae"),
        ("warning", "config", "unknown-key", "windows"),
    ]
    assert "not a Linux setting" in ctx.report.findings[-1].message


def test_fields_pyruntime_does_not_apply_are_warnings(tmp_path):
    def change(config):
        config["process"]["commandLine"] = "cmd.exe"
        config["linux"]["netDevices"] = {"eth1": {}}

    ctx = run_config_stage(tmp_path, dumped(change))
    assert keys(ctx) == [
        ("warning", "config", "ignored", "process.commandLine"),
        ("warning", "config", "ignored", "linux.netDevices"),
    ]


def test_a_missing_config_is_one_finding(tmp_path):
    report = Report(bundle=str(tmp_path), config="config.json")
    ctx = Context(str(tmp_path), "config.json", report)
    stage.check_config(ctx)
    assert keys(ctx) == [("error", "config", "config-missing", "config.json")]
    assert ctx.spec is None


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("linux.resources.memory.limit: expected integer, got string",
         ("linux.resources.memory.limit", "expected integer, got string")),
        ('linux.sysctl["net.ipv4.ip_forward"]: needs a namespace',
         ('linux.sysctl["net.ipv4.ip_forward"]', "needs a namespace")),
        ("the file is empty", ("", "the file is empty")),
        ("line 3, column 1: oops", ("", "line 3, column 1: oops")),
    ],
)  # fmt: skip
def test_split_problem(problem, expected):
    assert split_problem(problem) == expected


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        ("expected unsigned integer, got string", "give an unsigned integer here"),
        ("expected object, got array", "give an object here"),
        ("required field is missing", "add it: the runtime-spec requires it"),
        ("something new", "fix this value in the config"),
    ],
)
def test_hints(message, hint):
    assert stage.hint_for(message) == hint
