"""``pyruntime explain``: the steps come in the order create, start and delete
take them, with the bundle's own values."""

from __future__ import annotations

import json
from pathlib import Path

from pyruntime.explain import explain_bundle, render_text
from pyruntime.spec.defaults import default_spec


def write_bundle(path: Path, change=None) -> str:
    config = default_spec()
    config["process"]["terminal"] = False
    if change:
        change(config)
    (path / "config.json").write_text(json.dumps(config))
    (path / "rootfs").mkdir(exist_ok=True)
    return str(path)


def step_index(plan: dict, text: str) -> int:
    """The number of the first step whose text contains ``text``."""
    return next(s["n"] for s in plan["steps"] if text in s["what"])


def test_the_steps_follow_the_creation_sequence(tmp_path):
    def change(config):
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
        config["hooks"] = {"poststop": [{"path": "/bin/true", "args": ["true", "x"]}]}

    plan = explain_bundle(
        write_bundle(tmp_path, change), root="/run/x", container_id="c1"
    )
    assert plan["problems"] == []
    order = [
        "state directory `/run/x/c1`",
        "make the cgroup",
        "fork the intermediate",
        "join the cgroup",
        "make new namespaces: pid, network, ipc, uts, mount",
        "fork init",
        "bind the rootfs onto itself",
        "mount, in this order",
        "pivot_root",
        "set names",
        "protect the file system",
        "set the rlimits",
        "set no_new_privs",
        "switch to uid 1000, gid 1000",
        "set the capability sets",
        "say `ready`",
        "write one byte to exec.fifo",
        "load the seccomp filter",
        "execve `sh`",
        "run the poststop hooks",
    ]
    numbers = [step_index(plan, text) for text in order]
    assert numbers == sorted(numbers)
    commands = [s["command"] for s in plan["steps"]]
    assert commands == sorted(commands, key=["create", "start", "delete"].index)
    hooks = plan["steps"][step_index(plan, "poststop") - 1]
    assert hooks["details"] == ["/bin/true: argv `true x`"]


def test_without_no_new_privs_seccomp_comes_before_the_user_switch(tmp_path):
    def change(config):
        config["process"]["noNewPrivileges"] = False
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}

    plan = explain_bundle(write_bundle(tmp_path, change))
    seccomp = step_index(plan, "load the seccomp filter")
    assert seccomp < step_index(plan, "switch to uid")
    assert plan["steps"][seccomp - 1]["command"] == "create"


def test_user_namespace_maps_and_joined_namespaces(tmp_path):
    def change(config):
        config["linux"]["namespaces"] += [
            {"type": "user"},
            {"type": "cgroup", "path": "/proc/1/ns/cgroup"},
        ]
        config["linux"]["uidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}
        ]
        config["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}
        ]

    plan = explain_bundle(write_bundle(tmp_path, change))
    join = step_index(plan, "join the cgroup namespace `/proc/1/ns/cgroup`")
    userns = step_index(plan, "make a user namespace")
    assert join < userns < step_index(plan, "make new namespaces")
    assert plan["steps"][userns - 1]["details"] == [
        "uid_map: 0 100000 65536",
        "gid_map: 0 100000 65536",
    ]
    assert (
        "bound from the host" in plan["steps"][step_index(plan, "device") - 1]["what"]
    )


def test_cgroup_writes_name_their_file_and_field(tmp_path):
    def change(config):
        config["linux"]["resources"]["pids"] = {"limit": 42}

    plan = explain_bundle(write_bundle(tmp_path, change), container_id="c2")
    writes = plan["steps"][step_index(plan, "write the cgroup limits") - 1]
    (pids,) = [line for line in writes["details"] if "pids" in line]
    assert pids.endswith("/pyruntime/c2/pids.max = 42   [linux.resources.pids.limit]")


def test_an_invalid_config_is_not_explained(tmp_path):
    plan = explain_bundle(write_bundle(tmp_path, lambda c: c.pop("process")))
    assert plan["steps"] == []
    assert plan["problems"] == [
        "process: required field is missing (create needs a process to run)"
    ]
    assert "cannot explain this bundle" in render_text(plan)


def test_text_groups_steps_by_command_and_process(tmp_path):
    text = render_text(explain_bundle(write_bundle(tmp_path)))
    lines = text.splitlines()
    assert [line for line in lines if line in ("create", "start", "delete")] == [
        "create",
        "start",
        "delete",
    ]
    assert "  the intermediate process" in lines
    assert (
        "     1. re-execute from a sealed in-memory copy of the interpreter, then "
        "read and check the bundle" in lines
    )


def test_init_waits_for_the_cgroup_where_the_runtime_needs_it(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    plain = explain_bundle(write_bundle(tmp_path / "a"))
    wait = step_index(plain, "wait until the runtime has moved init into the cgroup")
    assert step_index(plain, "mount, in this order") < wait
    assert wait < step_index(plain, "pivot_root")
    assert step_index(plain, "join the cgroup, on a second thread") < step_index(
        plain, "fork init"
    )

    def cgroupns(config):
        config["linux"]["namespaces"].append({"type": "cgroup"})

    with_ns = explain_bundle(write_bundle(tmp_path / "b", cgroupns))
    made = step_index(with_ns, "then make the cgroup namespace")
    assert made < step_index(with_ns, "bind the rootfs onto itself")
    # The intermediate process does not make it: init does, once moved.
    intermediate = with_ns["steps"][step_index(with_ns, "make new namespaces") - 1]
    assert "cgroup" not in intermediate["what"]
