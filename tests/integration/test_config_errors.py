"""Bad input through the CLI: each ends in one line, a non-zero exit, no traces.

Every case runs ``create`` with ``--log FILE --log-format json``, as
containerd and podman do, and checks what they read: exactly one JSON line
(``level``, ``msg``, ``time``) appended to the log, the bare message on
stderr, exit status 1, and nothing made: not even the ``--root`` directory,
no cgroup, no host mount, no process.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import assert_nothing_left

pytestmark = pytest.mark.root

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def run_failing(runtime, *args: str) -> str:
    """Run a command that must fail cleanly; return its one-line message."""
    before = runtime.log.read_text() if runtime.log.exists() else ""
    result = runtime.detached(*args, log_json=True)
    assert result.returncode == 1, result.stderr
    after = runtime.log.read_text()
    assert after.startswith(before), "the log was truncated"
    new_lines = after[len(before) :].splitlines()
    assert len(new_lines) == 1, f"expected one log line, got {new_lines}"
    line = json.loads(new_lines[0])
    assert sorted(line) == ["level", "msg", "time"]
    assert line["level"] == "error"
    assert RFC3339.match(line["time"]), line["time"]
    assert result.stderr == line["msg"] + "\n", "stderr is the bare message"
    assert "\n" not in line["msg"]
    return line["msg"]


def expect_create_error(runtime, bundle, expected: str) -> str:
    """create must fail with ``expected`` in its message and leave nothing."""
    cid = runtime.new_id("cfg")
    message = run_failing(runtime, "create", "--bundle", str(bundle.path), cid)
    assert expected in message
    assert not runtime.root.exists(), "the state root was created"
    assert_nothing_left(runtime, cid, str(bundle.path))
    return message


# ---------------------------------------------------------------- JSON text


def write_text(bundle, text: str) -> None:
    (bundle.path / "config.json").write_text(text)


def test_syntax_error_gives_line_and_column(runtime, bundle):
    write_text(bundle, '{\n  "ociVersion": "1.0.2",\n  "process": {,\n}\n')
    message = expect_create_error(runtime, bundle, "invalid config.json: ")
    assert message == (
        "invalid config.json: line 3, column 15: "
        "expecting property name enclosed in double quotes"
    )


def test_trailing_garbage_is_an_error(runtime, bundle):
    text = json.dumps(bundle.config, indent=2)
    write_text(bundle, text + "\n}garbage\n")
    line = text.count("\n") + 2
    expect_create_error(
        runtime,
        bundle,
        f"invalid config.json: line {line}, column 1: extra data after the JSON object",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "invalid config.json: the file is empty"),
        ("[]", "invalid config.json: the top level must be an object, got array"),
        ('{"ociVersion": NaN}', "JSON has no NaN or Infinity"),
        ("\xff", "not valid UTF-8"),
    ],
    ids=["empty", "array", "nan", "latin1"],
)
def test_not_a_json_object(runtime, bundle, text, expected):
    (bundle.path / "config.json").write_bytes(text.encode("latin-1"))
    expect_create_error(runtime, bundle, expected)


def test_missing_config_json(runtime, bundle):
    (bundle.path / "config.json").unlink()
    message = expect_create_error(runtime, bundle, "")
    assert message == "JSON specification file config.json not found"


# ------------------------------------------------------------ decoded content


def edit(bundle, change) -> None:
    """Apply ``change(config)`` to the bundle's config."""
    bundle.edit(change)


def set_memory_limit(config):
    config["linux"]["resources"] = {"memory": {"limit": "1g"}}


def several_problems(config):
    set_memory_limit(config)
    config["process"]["args"] = "sh -c true"
    config["hostname"] = 42


def bad_version(version):
    return lambda config: config.update(ociVersion=version)


def add_namespace(entry):
    return lambda config: config["linux"]["namespaces"].append(entry)


def add_mount(destination):
    return lambda config: config["mounts"].append(
        {"destination": destination, "type": "tmpfs", "source": "tmpfs"}
    )


CONTENT_CASES = {
    "wrong-type": (
        set_memory_limit,
        "invalid config.json: linux.resources.memory.limit: "
        "expected integer, got string",
    ),
    "several": (
        several_problems,
        "invalid config.json (3 problems): ",
    ),
    "version-not-semver": (
        bad_version("1.0"),
        'ociVersion: "1.0" is not a valid SemVer version',
    ),
    "version-major": (
        bad_version("2.0.0"),
        'ociVersion: unsupported version "2.0.0"',
    ),
    "version-missing": (
        lambda config: config.pop("ociVersion"),
        "ociVersion: required field is missing",
    ),
    "no-process": (lambda config: config.pop("process"), "process"),
    "unknown-namespace": (
        add_namespace({"type": "bogus"}),
        'linux.namespaces[5].type: unknown namespace type "bogus"',
    ),
    "duplicate-namespace": (
        add_namespace({"type": "pid"}),
        "linux.namespaces[5].type: duplicate pid namespace",
    ),
    "namespace-path-not-a-namespace": (
        add_namespace({"type": "cgroup", "path": "/etc/hostname"}),
        "/etc/hostname",
    ),
    "namespace-path-missing": (
        add_namespace({"type": "cgroup", "path": "/no/such/ns"}),
        "/no/such/ns",
    ),
    "relative-mount-destination": (
        add_mount("tmp"),
        'mounts[6].destination: "tmp" is not an absolute path',
    ),
    "newline-in-destination": (
        add_mount("a\nb"),
        r'mounts[6].destination: "a\nb" is not an absolute path',
    ),
}


@pytest.mark.parametrize("case", list(CONTENT_CASES))
def test_invalid_config_content(runtime, bundle, case):
    change, expected = CONTENT_CASES[case]
    edit(bundle, change)
    message = expect_create_error(runtime, bundle, expected)
    if case == "several":
        for part in (
            "linux.resources.memory.limit: expected integer, got string",
            "process.args: expected array, got string",
            "hostname: expected string, got integer",
        ):
            assert part in message


def test_missing_rootfs_is_refused_before_the_disk(runtime, bundle, tmp_path):
    marker = tmp_path / "poststop-ran"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}

    def change(config):
        config["root"]["path"] = "no-such-rootfs"
        config["hooks"] = {"poststop": [hook]}

    edit(bundle, change)
    expect_create_error(runtime, bundle, "no-such-rootfs` does not exist")
    # Nothing was made, so there was nothing to stop.
    assert not marker.exists()


def test_missing_bundle_directory(runtime, tmp_path):
    cid = runtime.new_id("cfg")
    missing = tmp_path / "no-bundle"
    message = run_failing(runtime, "create", "--bundle", str(missing), cid)
    assert message == "JSON specification file config.json not found"
    assert not runtime.root.exists()


# ---------------------------------------------------------------- bad ids


BAD_IDS = {
    "slash": "a/b",
    "dotdot": "..",
    "dot": ".",
    "empty": "",
    "control": "a\x01b",
    "escape": "a\x1b[31mb",
    "space": "a b",
    "long": "x" * 2000,
    "too-long-for-a-file-name": "x" * 256,
}


@pytest.mark.parametrize("name", list(BAD_IDS))
def test_bad_ids_are_refused_before_the_disk(runtime, bundle, name):
    bad = BAD_IDS[name]
    for args in (
        ["create", "--bundle", str(bundle.path), bad],
        ["run", "--bundle", str(bundle.path), bad],
        ["state", bad],
        ["start", bad],
        ["kill", bad, "KILL"],
        ["delete", bad],
        ["delete", "--force", bad],
    ):
        message = run_failing(runtime, *args)
        assert message.startswith("invalid container ID format"), (args, message)
        # A bad id is never echoed raw (terminal escapes, 2000 characters).
        assert not any(ord(ch) < 32 for ch in message)
        assert len(message) < 200
    assert not runtime.root.exists(), "the state root was created"


def test_longest_valid_id_works(runtime, bundle):
    cid = "y" * 255
    runtime.ids.add(cid)
    result = runtime.create(bundle, cid)
    assert result.returncode == 0, result.stderr
    assert runtime.state(cid)["id"] == cid
    runtime.ok("delete", cid)


# ------------------------------------------------------------------- the log


def test_log_is_appended_one_line_per_failure(runtime, bundle):
    runtime.log.write_text('{"level":"info","msg":"earlier","time":"x"}\n')
    (bundle.path / "config.json").unlink()
    for _ in range(3):
        run_failing(runtime, "create", "--bundle", str(bundle.path), "c1")
    run_failing(runtime, "state", "nope")
    lines = runtime.log.read_text().splitlines()
    assert len(lines) == 5
    assert json.loads(lines[0])["msg"] == "earlier"
    assert json.loads(lines[-1])["msg"] == "container does not exist"
