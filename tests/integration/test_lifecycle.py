"""create / start / state / kill / delete / run, observed from the host."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import TRAPS_TERM, assert_forwards_sigterm, reap

pytestmark = pytest.mark.root


def read_pid_file(path) -> int:
    text = path.read_text()
    assert not text.endswith("\n"), "pid file must have no trailing newline"
    return int(text)


def test_create_leaves_init_waiting_until_start(runtime, bundle, tmp_path):
    marker = tmp_path / "bundle" / "rootfs" / "started"
    bundle.edit(lambda c: c["process"].update(args=["touch", "/started"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    result = runtime.create(bundle, cid, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    pid = read_pid_file(pid_file)
    state = runtime.state(cid)
    assert state["status"] == "created"
    assert state["pid"] == pid
    assert state["id"] == cid
    assert state["bundle"] == str(bundle.path)
    assert state["rootfs"] == str(bundle.rootfs)
    time.sleep(0.2)
    assert not marker.exists(), "the program ran before start"
    runtime.ok("start", cid)
    assert reap(pid) == 0
    assert marker.exists()
    assert runtime.state(cid)["status"] == "stopped"
    assert runtime.state(cid)["pid"] == 0
    runtime.ok("delete", cid)
    assert not (runtime.root / cid).exists()


def test_state_json_shape_matches_runc(runtime, bundle):
    bundle.edit(lambda c: c.update(annotations={"com.example.key": "value"}))
    cid = runtime.new_id()
    assert runtime.create(bundle, cid).returncode == 0
    out = runtime.ok("state", cid).stdout
    assert not out.endswith("\n")
    state = json.loads(out)
    assert list(state) == [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
        "owner",
    ]
    assert state["annotations"] == {"com.example.key": "value"}
    assert state["owner"] == ""
    assert state["created"].endswith("Z")


def test_start_twice_and_after_exit_fail(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "30"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "p"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    runtime.ok("start", cid)
    again = runtime("start", cid)
    assert again.returncode == 1
    assert "cannot start an already running container" in again.stderr
    pid = read_pid_file(pid_file)
    runtime.ok("kill", cid, "KILL")
    assert reap(pid) == 137
    after = runtime("start", cid)
    assert after.returncode == 1
    assert "cannot start a container that has stopped" in after.stderr


def test_exit_status_is_the_programs(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", "exit 7"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "p"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    runtime.ok("start", cid)
    assert reap(read_pid_file(pid_file)) == 7


@pytest.mark.parametrize("name", ["TERM", "SIGTERM", "sigterm", "15"])
def test_kill_signal_spellings(runtime, bundle, tmp_path, name):
    script = "trap 'exit 3' TERM; while true; do sleep 0.05; done"
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", script]))
    cid = runtime.new_id()
    pid_file = tmp_path / "p"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    runtime.ok("start", cid)
    time.sleep(0.2)
    runtime.ok("kill", cid, name)
    assert reap(read_pid_file(pid_file)) == 3


def test_kill_unknown_signal_and_stopped_container(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    pid_file = tmp_path / "p"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    bad = runtime("kill", cid, "BOGUS")
    assert bad.returncode == 1
    assert 'unknown signal \\"BOGUS\\"' in bad.stderr  # logrus text escaping
    runtime.ok("start", cid)
    reap(read_pid_file(pid_file))
    stopped = runtime("kill", cid, "TERM")
    assert stopped.returncode == 1
    assert "container not running" in stopped.stderr
    runtime.ok("kill", "--all", cid, "KILL")


def test_unknown_container_errors(runtime):
    for args in (
        ["state", "nope"],
        ["start", "nope"],
        ["kill", "nope"],
        ["delete", "nope"],
    ):
        result = runtime(*args)
        assert result.returncode == 1
        assert "container does not exist" in result.stderr
    runtime.ok("delete", "--force", "nope")


def test_duplicate_id_refused(runtime, bundle):
    cid = runtime.new_id()
    assert runtime.create(bundle, cid).returncode == 0
    again = runtime.create(bundle, cid)
    assert again.returncode == 1
    assert "container with given ID already exists" in again.stderr
    assert runtime.state(cid)["status"] == "created"


def test_delete_created_kills_init(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    pid_file = tmp_path / "p"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    pid = read_pid_file(pid_file)
    runtime.ok("delete", cid)
    assert reap(pid) == 137
    assert not (runtime.root / cid).exists()


def test_run_foreground_returns_exit_status(runtime, bundle):
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", "echo hi; exit 5"]))
    cid = runtime.new_id()
    result = runtime("run", "--bundle", str(bundle.path), cid)
    assert result.returncode == 5
    assert result.stdout == "hi\n"
    assert not (runtime.root / cid).exists()


def test_run_foreground_forwards_signals(runtime, bundle):
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", TRAPS_TERM]))
    cid = runtime.new_id()
    assert_forwards_sigterm(runtime.argv("run", "--bundle", str(bundle.path), cid))


def test_run_detached(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "30"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "p"
    result = runtime.detached(
        "run", "-d", "--bundle", str(bundle.path), "--pid-file", str(pid_file), cid
    )
    assert result.returncode == 0, result.stderr
    assert runtime.state(cid)["status"] == "running"
    runtime.ok("kill", cid, "9")
    assert reap(read_pid_file(pid_file)) == 137


def test_list_formats(runtime, bundle):
    empty = runtime.ok("list", "--format", "json")
    assert empty.stdout == "null\n"
    ids = sorted(runtime.new_id() for _ in range(2))
    for cid in ids:
        assert runtime.create(bundle, cid).returncode == 0
    quiet = runtime.ok("list", "-q").stdout.split()
    assert quiet == ids
    listed = json.loads(runtime.ok("list", "-format=json").stdout)
    assert [c["id"] for c in listed] == ids
    assert all(c["status"] == "created" for c in listed)
    assert all(c["owner"] == "root" for c in listed)
    table = runtime.ok("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert len(table) == 3


def test_state_root_is_private(runtime, bundle):
    cid = runtime.new_id()
    assert runtime.create(bundle, cid).returncode == 0
    assert (runtime.root.stat().st_mode & 0o777) == 0o700
    for base, _, files in os.walk(runtime.root):
        for name in files:
            mode = os.stat(os.path.join(base, name)).st_mode
            assert not mode & 0o002, f"{name} is world-writable"


def test_pid_file_is_relative_to_callers_cwd(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    result = runtime.create(bundle, cid, "--pid-file", "rel.pid", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert int((tmp_path / "rel.pid").read_text()) == runtime.state(cid)["pid"]


def test_bundle_defaults_to_current_directory(runtime, bundle):
    cid = runtime.new_id()
    result = runtime.detached("create", cid, cwd=bundle.path)
    assert result.returncode == 0, result.stderr
    assert runtime.state(cid)["bundle"] == str(bundle.path)
