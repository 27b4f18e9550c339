"""The narrated ``--debug`` log (issue 7, point 2).

``create`` with ``--debug`` must say each step it takes, in order, from the
runtime and from its child processes (whose lines are prefixed with
``intermediate:`` or ``init:``), in text and in JSON; without ``--debug`` a
successful command writes nothing to stderr and no debug line to the log.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.test_namespaces import open_bundle  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

#: What a create narrates, in this order (a substring of each message).
CREATE_STEPS = [
    "config.json of",
    "compile the seccomp filter",
    "state directory",
    "create the cgroup and write its limits",
    "make exec.fifo",
    "fork the intermediate process",
    "join the intermediate process to the container's cgroup",
    "intermediate: create user namespace",
    "write uid_map and gid_map of the new user namespace: uids 0->",
    "intermediate: create namespaces",
    "intermediate: become uid 0",
    "container init has pid",
    "init: bring up lo",
    "init: prepare rootfs",
    "init: mount proc `proc` on `/proc`",
    "init: mount tmpfs `tmpfs` on `/dev`",
    "init: create 6 device nodes in /dev",
    "init: link /dev/fd",
    "run prestart and createRuntime hooks on the host",
    "hook prestart[0]: run",
    "init: run createContainer hooks",
    "init: pivot_root",
    "init: set hostname `pyruntime-test`",
    "init: mask /proc/kcore",
    "init: make /proc/sys, /proc/sysrq-trigger read-only",
    "init: join a new session keyring",
    "init: set RLIMIT_NOFILE to soft 512, hard 512",
    "init: set no_new_privs",
    "init: switch to uid 0, gid 0",
    "init: set the capability sets",
    "init: change directory to `/`",
    "created, init pid",
]
#: Said by init after its last word to the runtime: before or after the
#: runtime's own "created" line, whichever process writes first.
UNORDERED_STEPS = ["init: ready; waiting on exec.fifo"]
START_STEPS = [
    "write the start byte to exec.fifo",
    "init: run startContainer hooks",
    "init: close every descriptor but stdio",
    "init: load the seccomp filter",
]
TEXT_LINE = re.compile(r'^time="[^"]+" level=(debug|info|warning) msg=".*"$')


def narrated_config(config: dict) -> None:
    """A config that exercises every narrated step."""
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [
        {"containerID": 0, "hostID": 300000, "size": 65536}
    ]
    config["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 300000, "size": 65536}
    ]
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]
    config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL"],
    }
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    true = {"path": "/bin/true"}
    config["hooks"] = {
        "prestart": [true],
        "createContainer": [true],
        "startContainer": [true],
    }
    # /sys needs the host's network namespace or a private one owned by the
    # user namespace: keep it simple.
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"]


def assert_in_order(messages: list[str], steps: list[str]) -> None:
    position = 0
    for step in steps:
        found = next(
            (i for i in range(position, len(messages)) if step in messages[i]), None
        )
        assert found is not None, f"step not narrated (or out of order): {step!r}"
        position = found + 1


def test_debug_json_narrates_every_create_and_start_step(runtime, open_bundle):  # noqa: F811
    bundle = open_bundle
    bundle.edit(narrated_config)
    cid = runtime.new_id()
    result = runtime.detached(
        "--debug",
        "--log",
        str(runtime.log),
        "--log-format",
        "json",
        "create",
        "--bundle",
        str(bundle.path),
        cid,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    started = runtime(
        "--debug", "--log", str(runtime.log), "--log-format", "json", "start", cid
    )
    assert started.returncode == 0, started.stderr
    runtime.ok("delete", "--force", cid)
    lines = runtime.log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all(set(r) == {"level", "msg", "time"} for r in records)
    messages = [r["msg"] for r in records if r["level"] == "debug"]
    assert_in_order(messages, CREATE_STEPS)
    for step in UNORDERED_STEPS:
        assert any(step in m for m in messages), step
    assert_in_order(messages, START_STEPS)


def test_debug_text_lines_are_logrus_shaped(runtime, bundle):
    cid = runtime.new_id()
    result = runtime.detached(
        "--debug",
        "--log",
        str(runtime.log),
        "create",
        "--bundle",
        str(bundle.path),
        cid,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = runtime.log.read_text().splitlines()
    assert len(lines) > 20
    for line in lines:
        assert TEXT_LINE.match(line), line
    assert any("init: pivot_root" in line for line in lines)


def test_without_debug_nothing_is_narrated(runtime, bundle):
    cid = runtime.new_id()
    result = runtime.create(bundle, cid, log_json=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    runtime.ok("start", cid, log_json=True)
    assert not runtime.log.exists() or runtime.log.read_text() == ""
