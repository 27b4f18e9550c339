"""The fast path and the click path of the CLI give the same answers.

``--`` before the container id is valid for click but not taken by the fast
path, so ``state -- ID`` runs the click command where ``state ID`` runs the
fast one: the pairs below compare the two on the same container.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import cgroup_dirs, reap

pytestmark = pytest.mark.root


def test_state_is_the_same_on_both_paths(runtime, bundle):
    bundle.edit(lambda c: c.update(annotations={"k": "v", "é": "ü"}))
    cid = runtime.new_id()
    assert runtime.create(bundle, cid).returncode == 0
    fast = runtime.ok("state", cid)
    slow = runtime.ok("state", "--", cid)
    assert fast.stdout == slow.stdout
    assert json.loads(fast.stdout)["annotations"] == {"k": "v", "é": "ü"}


@pytest.mark.parametrize("args", [["state"], ["kill"], ["start"], ["delete"]])
def test_errors_are_the_same_on_both_paths(runtime, args):
    fast = runtime(*args, "nope", log_json=True)
    slow = runtime(*args, "--", "nope", log_json=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode == 1
    assert fast.stderr == "container does not exist\n"
    lines = [json.loads(line) for line in runtime.log.read_text().splitlines()]
    assert [line["msg"] for line in lines] == ["container does not exist"] * 2
    assert {line["level"] for line in lines} == {"error"}


def test_go_style_flags_on_the_fast_path(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    created = runtime.detached(
        "create", f"-bundle={bundle.path}", "-pid-file", str(pid_file), cid
    )
    assert created.returncode == 0, created.stderr
    command = [*runtime.command, f"-root={runtime.root}"]
    listed = runtime.ok("list", "-format=json", "-quiet=false")
    assert [c["id"] for c in json.loads(listed.stdout)] == [cid]
    assert runtime.ok("list", "-q").stdout == f"{cid}\n"
    state = subprocess.run(
        [*command, "state", cid], capture_output=True, text=True, check=True
    )
    assert json.loads(state.stdout)["status"] == "created"
    runtime.ok("start", cid)
    assert reap(int(pid_file.read_text())) == 0
    runtime.ok("delete", "-force=true", cid)
    assert not (runtime.root / cid).exists()


def test_delete_of_a_stopped_container_removes_its_cgroups(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    assert cgroup_dirs(cid), "the container should have cgroups"
    runtime.ok("start", cid)
    assert reap(int(pid_file.read_text())) == 0
    runtime.ok("delete", cid)
    assert cgroup_dirs(cid) == []
    assert os.listdir(runtime.root) == []


def test_delete_of_a_running_container_needs_force(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "60"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    runtime.ok("start", cid)
    refused = runtime("delete", cid)
    assert refused.returncode == 1
    assert f"cannot delete container {cid} that is not stopped: running" in (
        refused.stderr
    )
    runtime.ok("delete", "--force", cid)
    assert reap(int(pid_file.read_text())) == 128 + 9
    assert cgroup_dirs(cid) == []
    assert not (runtime.root / cid).exists()


def test_fallbacks_still_work(runtime, bundle):
    helped = runtime("state", "--help")
    assert helped.returncode == 0
    assert "Usage:" in helped.stdout
    missing = runtime("state")
    assert missing.returncode == 1
    assert 'state\\" requires exactly 1 argument(s)' in missing.stderr
    unknown = runtime("state", "--bogus", "c")
    assert unknown.returncode == 1
    # Go's flag package names it with one dash, as runc's message does.
    assert "flag provided but not defined: -bogus" in unknown.stderr
    for args in (("kill", "-x", "c"), ("ps", "-x", "c"), ("kill", "--bogus", "c")):
        result = runtime(*args)
        assert result.returncode == 1, args
        assert "flag provided but not defined: -" in result.stderr, args


def test_delete_kills_what_a_dead_init_left_in_its_cgroup(runtime, bundle, tmp_path):
    # Without a pid namespace, init's death does not take its children along.
    def edit(config):
        config["process"]["args"] = ["sh", "-c", "sleep 60 & echo $! > /pid"]
        namespaces = config["linux"]["namespaces"]
        config["linux"]["namespaces"] = [n for n in namespaces if n["type"] != "pid"]

    bundle.edit(edit)
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    runtime.ok("start", cid)
    assert reap(int(pid_file.read_text())) == 0
    assert runtime.state(cid)["status"] == "stopped"
    sleeper = int((bundle.rootfs / "pid").read_text())
    runtime.ok("delete", cid)
    assert reap(sleeper) == 128 + 9, "delete kills what is left in the cgroup"
    assert cgroup_dirs(cid) == []


def test_exec_is_the_same_on_both_paths(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "60"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    runtime.ok("start", cid)
    # runc refuses -e and --env together ("two forms of the same flag").
    flags = ["--env", "A=1", "--env=B=2", "-g", "5", "-u", "1:1", "--cwd", "/tmp"]
    script = "echo $A $B; id; pwd; exit 3"
    # ``--`` before the id is click's alone: that line takes the click path.
    fast = runtime("exec", *flags, cid, "sh", "-c", script)
    slow = runtime("exec", *flags, "--", cid, "sh", "-c", script)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode == 3, fast.stderr
    assert fast.stdout.splitlines()[0] == "1 2"
    assert fast.stdout.splitlines()[2] == "/tmp"
    fast = runtime("exec", "-t", "nope", "true", log_json=True)
    slow = runtime("exec", "-t", "--", "nope", "true", log_json=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode == 255
    assert fast.stderr == "exec failed: container does not exist\n"
    lines = [json.loads(line) for line in runtime.log.read_text().splitlines()]
    assert [line["msg"] for line in lines] == [fast.stderr.strip()] * 2
    runtime.ok("delete", "--force", cid)
    assert reap(int(pid_file.read_text())) == 128 + 9
