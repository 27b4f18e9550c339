"""What engines depend on beyond the happy path (issue 5, point 2).

containerd reads the last ``error`` line of ``--log`` and matches words in
it; podman reads the whole log as one JSON object after a failed command and
falls back to stderr; both run the runtime with ``XDG_RUNTIME_DIR`` set, empty
for root; the containerd shim leaves fd 3 open in the runtime. Each test here
runs the CLI the way one of them does and checks what it reads: the exit
status, the words, one JSON line per failure appended to the log (never
truncated), the bare message on stderr, and that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import assert_nothing_left, reap, runtime_command

pytestmark = pytest.mark.root

OURS = any("pyruntime" in part for part in runtime_command())


def start_sleeper(runtime, bundle, tmp_path, start=True) -> tuple[str, int]:
    """A container running ``sleep`` (created or started): (id, init pid)."""
    bundle.edit(lambda c: c["process"].update(args=["sleep", "1000"]))
    cid = runtime.new_id("eng")
    pid_file = tmp_path / f"{cid}.pid"
    result = runtime.create(bundle, cid, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    if start:
        runtime.ok("start", cid)
    return cid, int(pid_file.read_text())


def stopped_container(runtime, bundle, tmp_path) -> str:
    """A container whose program has exited (and was reaped)."""
    bundle.edit(lambda c: c["process"].update(args=["true"]))
    cid = runtime.new_id("eng")
    pid_file = tmp_path / f"{cid}.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    runtime.ok("start", cid)
    assert reap(int(pid_file.read_text())) == 0
    return cid


def fail_once(runtime, args: tuple[str, ...], code: int, words: str) -> None:
    """One failing command: its exit code, one JSON line added, bare stderr."""
    before = runtime.log.read_text()
    result = runtime.detached(*args, log_json=True)
    assert result.returncode == code, (args, result.returncode, result.stderr)
    after = runtime.log.read_text()
    assert after.startswith(before), "the log was truncated"
    added = after[len(before) :].splitlines()
    assert len(added) == 1, (args, added)
    line = json.loads(added[0])
    assert line["level"] == "error"
    assert words in line["msg"], (args, line["msg"])
    assert result.stderr == line["msg"] + "\n", "stderr is not the bare message"


def test_every_failure_is_one_json_line_appended(runtime, bundle, tmp_path):
    earlier = '{"level":"info","msg":"written by an earlier command","time":"x"}\n'
    runtime.log.write_text(earlier)
    stopped = stopped_container(runtime, bundle, tmp_path)
    cid, pid = start_sleeper(runtime, bundle, tmp_path)
    failures = [
        (("state", "nope"), 1, "container does not exist"),
        (("kill", "nope", "9"), 1, "container does not exist"),
        (("start", cid), 1, "cannot start an already running container"),
        (("start", stopped), 1, "cannot start a container that has stopped"),
        (("kill", stopped, "15"), 1, "container not running"),
        (("kill", cid, "BOGUS"), 1, 'unknown signal "BOGUS"'),
        # runc looks the container up before it reads the signal.
        (("kill", "nope", "BOGUS"), 1, "container does not exist"),
        (("kill", "--all", "nope", "BOGUS"), 1, "container does not exist"),
        (("kill", stopped, "BOGUS"), 1, 'unknown signal "BOGUS"'),
        (("pause", stopped), 1, "container not running"),
        (("resume", cid), 1, "container not paused"),
        (("delete", cid), 1, f"cannot delete container {cid} that is not stopped"),
        (("exec", stopped, "true"), 255, "cannot exec in a stopped container"),
        (("exec", cid, "notinpath"), 255, "executable file not found in $PATH"),
        (("state", "--bogus", cid), 1, "flag provided but not defined"),
        # As runc: the container is looked up before a value is read...
        (("events", "--interval", "0s", "nope"), 1, "container does not exist"),
        (("update", "--memory", "bogus", "nope"), 1, "container does not exist"),
        (("ps", "-f", "bogus", "nope"), 1, "container does not exist"),
        # ...except an integer flag, which Go's flag package parses first.
        (("update", "--pids-limit", "abc", cid), 1, '"abc" for flag -pids-limit'),
        (("kill",), 1, '"kill" requires a minimum of 1 argument(s)'),
        (("kill", cid, "9", "x"), 1, '"kill" requires a maximum of 2 argument(s)'),
        (("list", "-f", "bogus"), 1, "invalid format option"),
    ]
    for args, code, words in failures:
        fail_once(runtime, args, code, words)
    lines = runtime.log.read_text().splitlines()
    assert lines[0] + "\n" == earlier
    assert len(lines) == 1 + len(failures)
    assert all(json.loads(line)["level"] == "error" for line in lines[1:])
    runtime.ok("delete", "--force", cid)
    assert reap(pid) == 137


def test_success_is_silent_and_the_log_stays_json(runtime, bundle, tmp_path):
    """conmon's stderr pipe becomes the container's stderr: nothing on it."""
    cid, pid = start_sleeper(runtime, bundle, tmp_path, start=False)
    exec_pid_file = tmp_path / "exec.pid"
    commands = [
        ("start", cid),
        ("state", cid),
        ("exec", "-d", "--pid-file", str(exec_pid_file), cid, "sleep", "100"),
        ("pause", cid),
        ("resume", cid),
        ("kill", cid, "9"),
    ]
    for args in commands:
        result = runtime.detached(*args, log_json=True)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr == "", args
    exec_pid = int(exec_pid_file.read_text())
    assert reap(exec_pid) == 137
    assert reap(pid) == 137
    assert runtime.detached("delete", cid, log_json=True).stderr == ""
    text = runtime.log.read_text() if runtime.log.exists() else ""
    for line in text.splitlines():
        assert json.loads(line)["level"] != "error", line


def test_kill_of_a_stopped_container(runtime, bundle, tmp_path):
    cid = stopped_container(runtime, bundle, tmp_path)
    for sig in ("9", "15", "KILL"):
        result = runtime("kill", cid, sig, log_json=True)
        assert result.returncode == 1
        assert result.stderr == "container not running\n"
    # --all is how podman stops a container without its own pid namespace.
    assert runtime("kill", "--all", cid, "9").returncode == 0
    runtime.ok("delete", cid)


@pytest.mark.parametrize("status", ["created", "running", "paused"])
def test_delete_force_in_every_status(runtime, bundle, tmp_path, status):
    cid, pid = start_sleeper(runtime, bundle, tmp_path, start=status != "created")
    if status == "paused":
        runtime.ok("pause", cid)
    assert runtime.state(cid)["status"] == status
    result = runtime("delete", "--force", cid, log_json=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert reap(pid) == 137
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_delete_without_force_of_a_paused_container(runtime, bundle, tmp_path):
    cid, pid = start_sleeper(runtime, bundle, tmp_path)
    runtime.ok("pause", cid)
    result = runtime("delete", cid, log_json=True)
    assert result.returncode == 1
    assert (
        result.stderr == f"cannot delete container {cid} that is not stopped: paused\n"
    )
    runtime.ok("delete", "--force", cid)
    assert reap(pid) == 137


def test_delete_force_of_a_missing_container(runtime):
    result = runtime("delete", "--force", "never-made", log_json=True)
    assert result.returncode == 0
    assert result.stderr == ""


# ------------------------------------------------------- XDG_RUNTIME_DIR


def test_podmans_environment_works(runtime, bundle, tmp_path):
    """podman runs kill and delete with only XDG_RUNTIME_DIR, empty for root."""
    cid, pid = start_sleeper(runtime, bundle, tmp_path)
    env = {"XDG_RUNTIME_DIR": ""}
    kill = runtime("kill", cid, "9", env=env)
    assert kill.returncode == 0, kill.stderr
    assert reap(pid) == 137
    delete = runtime("delete", "--force", cid, env=env)
    assert delete.returncode == 0, delete.stderr
    assert not (runtime.root / cid).exists()


@pytest.mark.parametrize("value", ["", "xdg"])
def test_root_ignores_xdg_runtime_dir(runtime, tmp_path, value):
    """Without --root, real root's state stays under /run (empty means unset)."""
    xdg = tmp_path / value if value else None
    env = dict(os.environ, XDG_RUNTIME_DIR=str(xdg) if xdg else "")
    if xdg is not None:
        xdg.mkdir()
    result = subprocess.run(
        [*runtime.command, "state", "no-such-container-here"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "container does not exist" in result.stderr
    if xdg is not None:
        assert list(xdg.iterdir()) == [], "state was looked for under XDG_RUNTIME_DIR"


# --------------------------------------------------------------- fd 3

ON_FD3 = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.execvp(sys.argv[2], sys.argv[2:])"
)


def with_fd3(argv: list[str], path) -> subprocess.CompletedProcess:
    """Run ``argv`` with fd 3 open on ``path``, as the containerd shim leaves it.

    stderr goes through a file: a detached process keeps the runtime's stdio.
    """
    with open(path, "w") as fd3, tempfile.TemporaryFile("w+") as err:
        result = subprocess.run(
            [sys.executable, "-c", ON_FD3, str(fd3.fileno()), *argv],
            pass_fds=(fd3.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            timeout=60,
        )
        err.seek(0)
        result.stderr = err.read()
    return result


def open_files(pid: int) -> list[str]:
    """What the descriptors of ``pid`` point to."""
    base = f"/proc/{pid}/fd"
    return [os.readlink(os.path.join(base, fd)) for fd in os.listdir(base)]


def test_created_init_holds_no_descriptor_of_the_caller(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "1000"]))
    cid = runtime.new_id("eng")
    pid_file = tmp_path / "init.pid"
    marker = tmp_path / "shim-fd3"
    argv = runtime.argv("create", "--bundle", str(bundle.path), "--pid-file")
    result = with_fd3([*argv, str(pid_file), cid], marker)
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    try:
        assert str(marker) not in open_files(pid)
    finally:
        runtime("delete", "--force", cid)
        reap(pid)


def test_started_program_and_exec_hold_no_descriptor_of_the_caller(
    runtime, bundle, tmp_path
):
    cid, pid = start_sleeper(runtime, bundle, tmp_path, start=False)
    marker = tmp_path / "shim-fd3"
    start = with_fd3(runtime.argv("start", cid), marker)
    assert start.returncode == 0, start.stderr
    assert str(marker) not in open_files(pid)
    exec_pid_file = tmp_path / "exec.pid"
    argv = runtime.argv("exec", "-d", "--pid-file", str(exec_pid_file), cid)
    execd = with_fd3([*argv, "sleep", "100"], marker)
    assert execd.returncode == 0, execd.stderr
    exec_pid = int(exec_pid_file.read_text())
    try:
        assert str(marker) not in open_files(exec_pid)
    finally:
        os.kill(exec_pid, 9)
        assert reap(exec_pid) == 137
        runtime.ok("delete", "--force", cid)
        assert reap(pid) == 137
