"""exec's pure logic: the process built from flags or a file, and ``--cgroup``."""

from __future__ import annotations

import pytest

from pyruntime import execution
from pyruntime.errors import ConfigError, SetupError, UsageError
from pyruntime.execution import ExecOptions
from pyruntime.spec.model import Capabilities, Process, Rlimit, User

CONTAINER = Process(
    terminal=True,
    user=User(uid=0, gid=0, additional_gids=(10,), umask=0o027),
    args=("sleep", "1000"),
    env=("PATH=/bin", "TERM=xterm"),
    cwd="/",
    capabilities=Capabilities(
        bounding=("CAP_KILL",), effective=("CAP_KILL",), permitted=("CAP_KILL",)
    ),
    rlimits=(Rlimit(type="RLIMIT_NOFILE", hard=1024, soft=512),),
    no_new_privileges=True,
)


def build(**flags) -> Process:
    flags.setdefault("args", ("true",))
    return execution.build_process(CONTAINER, ExecOptions(**flags))


def test_flags_merge_onto_the_containers_process():
    process = build(
        args=("sh", "-c", "x"),
        cwd="/tmp",
        env=("A=1,B=2", "C=3"),
        user="1000:1001",
        additional_gids=(5, 6),
    )
    assert process.args == ("sh", "-c", "x")
    assert process.cwd == "/tmp"
    assert process.env == ("PATH=/bin", "TERM=xterm", "A=1,B=2", "C=3")
    assert process.user == User(
        uid=1000, gid=1001, additional_gids=(10, 5, 6), umask=0o027
    )
    assert process.rlimits == CONTAINER.rlimits
    assert process.no_new_privileges is True


def test_terminal_only_with_tty():
    assert build().terminal is False
    assert build(tty=True).terminal is True


def test_user_without_gid_keeps_the_gid():
    assert build(user="7").user.gid == 0


@pytest.mark.parametrize("text", ["abc", "1:x", "-1", "4294967296"])
def test_bad_user_is_refused(text):
    with pytest.raises(UsageError, match="--user"):
        build(user=text)


def test_negative_additional_gid_is_refused():
    with pytest.raises(UsageError, match="additional-gids must be a positive number"):
        build(additional_gids=(-1,))


def test_cap_adds_to_three_sets_and_ambient_only_with_inheritable():
    caps = build(caps=("cap_sys_admin",)).capabilities
    assert caps.bounding == ("CAP_KILL", "CAP_SYS_ADMIN")
    assert caps.effective == caps.permitted == caps.bounding
    assert caps.ambient is None
    inheritable = Capabilities(bounding=(), inheritable=())
    merged = execution.add_capabilities(inheritable, ("CAP_CHOWN",))
    assert merged.ambient == ("CAP_CHOWN",)


def test_unknown_cap_is_refused():
    with pytest.raises(UsageError, match='--cap "sys_admin"'):
        build(caps=("sys_admin",))


def test_relative_cwd_is_refused():
    with pytest.raises(ConfigError, match="cwd"):
        build(cwd="tmp")


def test_process_file_fills_in_from_the_container():
    lone = Process(args=("true",), cwd="/")
    process = execution.inherit_from_container(lone, CONTAINER)
    assert process.env == CONTAINER.env
    assert process.capabilities == CONTAINER.capabilities
    assert process.rlimits == CONTAINER.rlimits
    assert process.no_new_privileges is True
    assert process.user == User(uid=0, gid=0)
    assert not process.terminal


def test_process_file_keeps_what_it_says():
    own = Process(args=("true",), cwd="/", env=(), no_new_privileges=False)
    process = execution.inherit_from_container(own, CONTAINER)
    assert process.env == ()
    assert process.no_new_privileges is False


SAVED = {
    "cpu": "/sys/fs/cgroup/cpu,cpuacct/c1",
    "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/c1",
    "memory": "/sys/fs/cgroup/memory/c1",
    "systemd": "/sys/fs/cgroup/systemd/c1",
}


def test_cgroup_without_controller_moves_every_hierarchy(monkeypatch):
    monkeypatch.setattr(execution.os.path, "isdir", lambda _: True)
    paths = execution.exec_cgroup_paths(SAVED, ("sub",))
    assert paths == {key: f"{value}/sub" for key, value in SAVED.items()}


def test_cgroup_per_controller_moves_co_mounted_ones_too(monkeypatch):
    monkeypatch.setattr(execution.os.path, "isdir", lambda _: True)
    paths = execution.exec_cgroup_paths(SAVED, ("cpu:a", "name=systemd,memory:b"))
    assert paths["cpu"] == paths["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/c1/a"
    assert paths["memory"] == "/sys/fs/cgroup/memory/c1/b"
    assert paths["systemd"] == "/sys/fs/cgroup/systemd/c1/b"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("a:b:c",), "invalid --cgroup argument: a:b:c"),
        (("foo", "bar"), "missing <controller>: prefix"),
        ((":x",), "empty <controller> prefix"),
        (("memory:a", "memory:b"), "controller memory specified multiple times"),
        (("bogus:x",), "the container has no bogus cgroup"),
        (("memory:../..",), "outside the container's cgroup"),
    ],
)
def test_cgroup_flag_refusals(flags, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        execution.exec_cgroup_paths(SAVED, flags)


def test_missing_sub_cgroup_is_named():
    with pytest.raises(SetupError, match="/sys/fs/cgroup/memory/c1/nosuch"):
        execution.exec_cgroup_paths({"memory": "/sys/fs/cgroup/memory/c1"}, ("nosuch",))


@pytest.mark.parametrize(
    ("detach", "terminal", "socket", "words"),
    [
        (True, True, None, "cannot allocate tty if runc will detach"),
        (False, True, "/s", "cannot use console socket"),
        (True, False, "/s", "cannot use console socket"),
    ],
)
def test_terminal_rules(detach, terminal, socket, words):
    process = Process(args=("true",), cwd="/", terminal=terminal)
    opts = ExecOptions(detach=detach, console_socket=socket)
    with pytest.raises(UsageError, match=words):
        execution.check_terminal(process, opts)
