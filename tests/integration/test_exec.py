"""``exec`` through the CLI (issue 5, point 1), observed from the host.

A container runs ``sleep``; each test execs into it and looks at the new
process from the host (``/proc/<pid>/ns/*``, ``/proc/<pid>/cgroup``,
``/proc/<pid>/status``, its parent) or at what it prints from inside. Every
refusal must be exit status 255 with runc's wording, one error line (one JSON
line with ``--log``), and leave the container as it was.

``PYRUNTIME_TEST_RUNTIME=runc`` runs the same tests against runc; the few that
check pyruntime's own choices (what a process file inherits, the foreground
terminal relay, refusing a sub-cgroup outside the container's, the JSON path
in a process file's error, joining a host-owned namespace of a user namespace
container, the time namespace) are marked ``ours_only`` or left out for runc.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pyruntime.security import lsm
from tests.conftest import (
    TRAPS_TERM,
    assert_forwards_sigterm,
    assert_nothing_left,
    reap,
    runtime_command,
)
from tests.integration.test_namespaces import (  # noqa: F401 (fixtures)
    ID_MAP,
    holders,
    open_bundle,
)
from tests.integration.test_process import (
    ConsoleReceiver,
    read_until_closed,
    run_with_fd3,
    status_field,
)

pytestmark = pytest.mark.root

OURS = any("pyruntime" in part for part in runtime_command())
ours_only = pytest.mark.skipif(not OURS, reason="pyruntime's own behaviour")
NAMESPACES = ("user", "pid", "net", "ipc", "uts", "mnt", "cgroup", "time")


class Containers:
    """Started containers and exec'd processes of one test, removed at the end."""

    def __init__(self, runtime, tmp_path: Path) -> None:
        self.runtime = runtime
        self.tmp = tmp_path
        self.made: list[tuple[str, int]] = []
        self.children: list[int] = []

    def __call__(self, bundle, edit=None, start=True, args=None) -> tuple[str, int]:
        """create (and start) a container running ``sleep``; (id, init pid)."""

        def change(config):
            config["process"]["args"] = args or ["sleep", "1000"]
            if edit is not None:
                edit(config)

        bundle.edit(change)
        cid = self.runtime.new_id("ex")
        pid_file = self.tmp / f"{cid}.pid"
        result = self.runtime.create(bundle, cid, "--pid-file", str(pid_file))
        assert result.returncode == 0, result.stderr
        pid = int(pid_file.read_text())
        self.made.append((cid, pid))
        if start:
            self.runtime.ok("start", cid)
        return cid, pid

    def detach(self, cid: str, *args: str, flags=()) -> int:
        """``exec -d --pid-file`` a process; its pid (reaped at the end)."""
        pid_file = self.tmp / f"exec-{len(self.children)}.pid"
        result = self.runtime.detached(
            "exec", "-d", "--pid-file", str(pid_file), *flags, cid, *args
        )
        assert result.returncode == 0, result.stderr
        text = pid_file.read_text()
        assert not text.endswith("\n")
        self.children.append(int(text))
        return int(text)

    def kill_children(self) -> None:
        """SIGKILL and reap the exec'd processes, as the shim's reaper would.

        Until they are reaped, the container's init waits for them in the
        kernel (zap_pid_ns_processes) and ``delete --force`` cannot finish.
        """
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            reap(pid)
        self.children.clear()

    def remove(self) -> None:
        self.kill_children()
        for cid, pid in self.made:
            result = self.runtime("delete", "--force", cid, timeout=30)
            assert result.returncode == 0, result.stderr
            reap(pid)


@pytest.fixture
def containers(runtime, tmp_path):
    made = Containers(runtime, tmp_path)
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture
def running(containers, bundle):
    """A started container running ``sleep``: (id, init pid)."""
    return containers(bundle)


def ns_of(pid, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def cgroups_of(pid) -> list[str]:
    return Path(f"/proc/{pid}/cgroup").read_text().splitlines()


def wait_for_comm(pid: int, comm: str, timeout: float = 10) -> None:
    """Wait until ``pid`` runs ``comm`` (the exec'd program, not the runtime)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/comm").read_text().strip() != comm:
        assert time.monotonic() < deadline, f"{pid} never ran {comm}"
        time.sleep(0.01)


def exec_refused(runtime, *args: str, words: tuple[str, ...] = ()) -> str:
    """exec fails: 255, one JSON error line appended, the bare message on stderr."""
    before = runtime.log.read_text() if runtime.log.exists() else ""
    result = runtime("exec", *args, log_json=True)
    assert result.returncode == 255, (result.returncode, result.stderr)
    added = runtime.log.read_text()[len(before) :].splitlines()
    assert len(added) == 1, added
    line = json.loads(added[0])
    assert line["level"] == "error"
    assert result.stderr == line["msg"] + "\n"
    assert line["msg"].startswith("exec failed: ")
    for word in words:
        assert word in line["msg"], line["msg"]
    return line["msg"]


# ---------------------------------------------------------- status and args


def test_output_and_exit_status_are_the_processs(runtime, running):
    cid, _ = running
    result = runtime("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_by_a_signal_exits_128_plus_it(runtime, running, sig):
    cid, _ = running
    result = runtime("exec", cid, "sh", "-c", f"kill -{int(sig)} $$")
    assert result.returncode == 128 + sig


def test_signals_to_the_runtime_reach_the_process(runtime, running):
    cid, _ = running
    assert_forwards_sigterm(runtime.argv("exec", cid, "sh", "-c", TRAPS_TERM))


def test_flags_stop_at_the_first_positional(runtime, running):
    cid, _ = running
    result = runtime("exec", cid, "echo", "--env", "-c", "-t", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "--env -c -t x\n"


def test_exec_into_a_created_container(runtime, containers, bundle):
    cid, _ = containers(bundle, start=False)
    result = runtime("exec", cid, "echo", "in-created")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "in-created\n"
    assert runtime.state(cid)["status"] == "created"


def test_missing_command_and_container(runtime, running):
    cid, _ = running
    exec_refused(runtime, cid, words=("process args cannot be empty",))
    exec_refused(runtime, "nope", "true", words=("container does not exist",))
    usage = runtime("exec")
    assert usage.returncode == 1


def test_missing_program_wording(runtime, running):
    cid, _ = running
    exec_refused(
        runtime,
        cid,
        "notinpath",
        words=(
            "unable to start container process: exec: "
            '"notinpath": executable file not found in $PATH',
        ),
    )
    exec_refused(
        runtime,
        cid,
        "/nonexistent",
        words=('exec: "/nonexistent": stat /nonexistent: no such file or directory',),
    )
    assert runtime.state(cid)["status"] == "running"


def test_missing_cwd_wording(runtime, running):
    cid, _ = running
    exec_refused(
        runtime,
        "--cwd",
        "/nonexist",
        cid,
        "true",
        words=(
            'chdir to cwd ("/nonexist") set in config.json failed: '
            "no such file or directory",
        ),
    )


def test_stopped_container_is_refused(runtime, containers, bundle):
    cid, pid = containers(bundle, args=["true"])
    assert reap(pid) == 0
    message = exec_refused(runtime, cid, "true")
    assert message == "exec failed: cannot exec in a stopped container"


def test_paused_container_is_refused_unless_ignore_paused(runtime, running):
    cid, _ = running
    runtime.ok("pause", cid)
    message = exec_refused(runtime, cid, "true")
    assert message == (
        "exec failed: cannot exec in a paused container "
        "(use --ignore-paused to override)"
    )
    proc = subprocess.Popen(
        runtime.argv("exec", "--ignore-paused", cid, "echo", "after-resume"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        assert proc.poll() is None, "the process ran in a frozen container"
        runtime.ok("resume", cid)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert out == "after-resume\n"
    finally:
        if proc.poll() is None:
            runtime("resume", cid)
            proc.kill()
            proc.wait()


# ---------------------------------------------------- namespaces and cgroup


def all_namespaces(config):
    """Every namespace but user (runc 1.1.5 has no time namespace)."""
    extra = [{"type": "cgroup"}, *([{"type": "time"}] if OURS else [])]
    config["linux"]["namespaces"] += extra


def test_joins_every_namespace_of_init(containers, bundle):
    cid, init_pid = containers(bundle, edit=all_namespaces)
    pid = containers.detach(cid, "sleep", "100")
    wait_for_comm(pid, "sleep")
    for name in NAMESPACES:
        assert ns_of(pid, name) == ns_of(init_pid, name), name
    # Its root is the container's root file system, not the host's.
    assert os.stat(f"/proc/{pid}/root/") == os.stat(f"/proc/{init_pid}/root/")
    assert os.stat(f"/proc/{pid}/root/") != os.stat("/")
    # In the pid namespace: a second level in NSpid, not pid 1 there.
    nspid = status_field(pid, "NSpid").split()
    assert len(nspid) == 2 and nspid[1] != "1"


def test_joins_the_cgroup_of_init(containers, bundle):
    cid, init_pid = containers(bundle)
    pid = containers.detach(cid, "sleep", "100")
    assert cgroups_of(pid) == cgroups_of(init_pid)


def test_cgroup_namespace_root_is_the_containers(runtime, containers, bundle):
    cid, _ = containers(bundle, edit=all_namespaces)
    result = runtime("exec", cid, "cat", "/proc/self/cgroup")
    assert result.returncode == 0, result.stderr
    paths = [line.split(":", 2)[2] for line in result.stdout.splitlines()]
    assert paths and all(path == "/" for path in paths), result.stdout


def memory_cgroup_dir(pid: int) -> Path:
    """The host directory of ``pid``'s v1 memory cgroup."""
    for line in cgroups_of(pid):
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    pytest.skip("no cgroup v1 memory hierarchy")


def test_cgroup_flag_joins_a_sub_cgroup(runtime, containers, bundle):
    cid, init_pid = containers(bundle)
    sub = memory_cgroup_dir(init_pid) / "sub"
    sub.mkdir()
    try:
        pid = containers.detach(cid, "sleep", "100", flags=("--cgroup", "memory:sub"))
        mine = {line.split(":")[1]: line for line in cgroups_of(pid)}
        theirs = {line.split(":")[1]: line for line in cgroups_of(init_pid)}
        assert mine["memory"] == theirs["memory"] + "/sub"
        assert mine["pids"] == theirs["pids"]
        exec_refused(
            runtime, "--cgroup", "memory:nosuch", cid, "true", words=("nosuch",)
        )
    finally:
        containers.kill_children()
        runtime("delete", "--force", cid)
        if sub.exists():
            sub.rmdir()


def test_cgroup_flag_refusals(runtime, running):
    cid, _ = running
    exec_refused(
        runtime, "--cgroup", "a:b:c", cid, "true", words=("invalid --cgroup argument",)
    )
    exec_refused(
        runtime,
        "--cgroup",
        "foo",
        "--cgroup",
        "bar",
        cid,
        "true",
        words=("missing <controller>: prefix",),
    )


@ours_only
def test_cgroup_flag_cannot_leave_the_container(runtime, running):
    cid, _ = running
    exec_refused(
        runtime,
        "--cgroup",
        "memory:../..",
        cid,
        "true",
        words=("outside the container's cgroup",),
    )


def use_userns(config):
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = ID_MAP
    config["linux"]["gidMappings"] = ID_MAP


def test_user_namespace_container(runtime, containers, open_bundle):  # noqa: F811
    cid, init_pid = containers(open_bundle, edit=use_userns)
    pid = containers.detach(cid, "sleep", "100", flags=("-u", "1000:1001"))
    wait_for_comm(pid, "sleep")
    for name in NAMESPACES:
        assert ns_of(pid, name) == ns_of(init_pid, name), name
    assert status_field(pid, "Uid").split() == ["101000"] * 4
    assert status_field(pid, "Gid").split() == ["101001"] * 4
    result = runtime("exec", cid, "sh", "-c", "cat /proc/self/uid_map; id -u")
    assert result.returncode == 0, result.stderr
    uid_map, uid = result.stdout.splitlines()
    assert uid_map.split() == ["0", "100000", "65536"]
    assert uid == "0"


@ours_only  # runc 1.1.5 joins the user namespace first: setns(net) gets EPERM
def test_host_owned_namespace_is_joined_before_the_user_namespace(
    runtime,
    containers,
    open_bundle,  # noqa: F811
    holders,  # noqa: F811
):
    # The host owns the holder's network namespace: joined after the
    # container's user namespace, it would need capabilities the tenant no
    # longer has on the host.
    holder = holders.unshare("--net")

    def edit(config):
        use_userns(config)
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"
        ] + [{"type": "network", "path": f"/proc/{holder}/ns/net"}]
        for mount in config["mounts"]:
            if mount["destination"] == "/sys":
                mount.update(type="bind", source="/sys", options=["rbind", "ro"])

    cid, init_pid = containers(open_bundle, edit=edit)
    pid = containers.detach(cid, "sleep", "100")
    wait_for_comm(pid, "sleep")
    assert ns_of(pid, "net") == ns_of(holder, "net")
    for name in NAMESPACES:
        assert ns_of(pid, name) == ns_of(init_pid, name), name


# -------------------------------------------------------- the process flags


def test_flags_change_the_containers_process(runtime, running):
    # One spelling per flag: runc refuses "-e" and "--env" on one line.
    cid, _ = running
    script = 'pwd; id; echo "$A|$C|$TERM"'
    result = runtime(
        "exec",
        "--cwd",
        "/etc",
        "-e",
        "A=1,B=2",
        "-e",
        "C=3",
        "-u",
        "1000:1000",
        "-g",
        "5",
        "-g",
        "6",
        cid,
        "sh",
        "-c",
        script,
    )
    assert result.returncode == 0, result.stderr
    pwd, ident, env = result.stdout.splitlines()
    assert pwd == "/etc"
    assert ident == "uid=1000(webapp) gid=1000(webapp) groups=5(tty),6"
    assert env == "1,B=2|3|xterm"


def test_user_without_gid_keeps_the_containers_gid(runtime, running):
    cid, _ = running
    result = runtime("exec", "-u", "1000", cid, "id")
    assert result.stdout == "uid=1000(webapp) gid=0(root)\n", result.stderr


def test_home_comes_from_the_containers_passwd(runtime, running):
    cid, _ = running
    result = runtime("exec", "-u", "1000", cid, "sh", "-c", "echo $HOME")
    assert result.stdout == "/app\n"
    assert runtime("exec", cid, "sh", "-c", "echo $HOME").stdout == "/root\n"


@pytest.mark.skipif(lsm.apparmor_enabled(), reason="AppArmor is on")
def test_apparmor_flag_without_apparmor_is_refused(runtime, running):
    cid, _ = running
    message = exec_refused(runtime, "--apparmor", "unconfined-x", cid, "true")
    assert "apparmor" in message.lower()


@pytest.mark.skipif(lsm.selinux_enabled(), reason="SELinux is on")
def test_process_label_without_selinux_is_refused(runtime, running):
    cid, _ = running
    label = "system_u:system_r:container_t:s0"
    message = exec_refused(runtime, "--process-label", label, cid, "true")
    assert "selinux" in message.lower()


SOME_CAPS = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def with_security(config):
    """Capabilities, no_new_privs, a seccomp filter and an rlimit."""
    config["process"]["capabilities"] = {
        name: SOME_CAPS for name in ("bounding", "effective", "permitted")
    }
    config["process"]["noNewPrivileges"] = True
    config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}
    ]
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["mkdir", "mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
            }
        ],
    }


STATUS_KEYS = ("CapBnd", "CapEff", "CapPrm", "NoNewPrivs", "Seccomp")


def test_security_is_the_containers(runtime, containers, bundle):
    cid, init_pid = containers(bundle, edit=with_security)
    script = "cat /proc/self/status; ulimit -n; ulimit -Hn; mkdir /newdir"
    result = runtime("exec", cid, "sh", "-c", script)
    assert result.returncode == 1
    assert "Operation not permitted" in result.stderr
    lines = result.stdout.splitlines()
    seen = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    for key in STATUS_KEYS:
        assert seen[key].strip() == status_field(init_pid, key), key
    assert seen["CapBnd"].strip() == "0000000000000421"
    assert seen["NoNewPrivs"].strip() == "1"
    assert seen["Seccomp"].strip() == "2"
    assert lines[-2:] == ["512", "1024"]


class SeccompAgent:
    """A listener at ``listenerPath``: takes each notify fd and closes it.

    With the fd closed, a notified system call fails (ENOSYS) instead of
    waiting: the process goes on, and the message is kept for the test.
    """

    def __init__(self, path: Path, expected: int) -> None:
        self.path = str(path)
        self.messages: list[dict] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(expected)
        self.server.settimeout(30)
        self.thread = threading.Thread(target=self.serve, args=(expected,))
        self.thread.start()

    def serve(self, expected: int) -> None:
        for _ in range(expected):
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
            self.messages.append(json.loads(data))
            for fd in fds:
                os.close(fd)

    def close(self) -> None:
        self.thread.join(40)
        self.server.close()


def test_seccomp_notify_fd_of_the_exec_process_reaches_the_agent(
    runtime, containers, bundle, tmp_path
):
    agent = SeccompAgent(tmp_path / "agent.sock", expected=2)
    try:

        def edit(config):
            config["linux"]["seccomp"] = {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}
                ],
                "listenerPath": agent.path,
                "listenerMetadata": "from-exec-test",
            }

        cid, init_pid = containers(bundle, edit=edit)
        result = runtime("exec", cid, "sh", "-c", "mkdir /newdir; echo rc=$?")
    finally:
        agent.close()
    assert "rc=1" in result.stdout, result.stderr
    assert len(agent.messages) == 2
    message = agent.messages[1]
    assert message["fds"] == ["seccompFd"]
    assert message["metadata"] == "from-exec-test"
    assert message["state"]["id"] == cid
    assert message["state"]["pid"] == init_pid


def test_no_new_privs_and_cap_flags(runtime, containers, bundle):
    def edit(config):
        with_security(config)
        config["process"]["noNewPrivileges"] = False
        config["linux"].pop("seccomp")

    cid, _ = containers(bundle, edit=edit)
    nnp = "grep NoNewPrivs /proc/self/status"
    assert runtime("exec", cid, "sh", "-c", nnp).stdout.split()[1] == "0"
    flag = runtime("exec", "--no-new-privs", cid, "sh", "-c", nnp)
    assert flag.stdout.split()[1] == "1"
    bnd = "grep CapBnd /proc/self/status"
    plain = int(runtime("exec", cid, "sh", "-c", bnd).stdout.split()[1], 16)
    added = runtime(
        "exec", "-c", "CAP_SYS_ADMIN", "-c", "CAP_MKNOD", cid, "sh", "-c", bnd
    )
    assert added.returncode == 0, added.stderr
    assert int(added.stdout.split()[1], 16) == plain | 1 << 21 | 1 << 27


# ------------------------------------------------------------- process file


def write_process(tmp_path: Path, process: dict) -> str:
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    return str(path)


def containerd_process(**changes) -> dict:
    """A process object as containerd writes it (a full specs.Process)."""
    process = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
        "args": ["sh", "-c", 'pwd; id; echo "$A|$TERM"'],
        "env": ["PATH=/bin:/usr/bin", "A=from-json"],
        "cwd": "/etc",
        "noNewPrivileges": True,
    }
    process.update(changes)
    return process


def test_process_file(runtime, running, tmp_path):
    cid, _ = running
    path = write_process(tmp_path, containerd_process())
    # With --process, the command-line overrides and the command are ignored.
    result = runtime("exec", "--process", path, "--cwd", "/", cid, "ignored")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "/etc",
        "uid=1000(webapp) gid=1000(webapp) groups=5(tty)",
        "from-json|",
    ]


def test_process_file_capabilities(runtime, running, tmp_path):
    cid, _ = running
    process = containerd_process(
        user={"uid": 0, "gid": 0},
        args=["grep", "-E", "^Cap(Bnd|Eff)", "/proc/self/status"],
        capabilities={
            name: ["CAP_CHOWN", "CAP_KILL"]
            for name in ("bounding", "effective", "permitted")
        },
    )
    result = runtime("exec", "-p", write_process(tmp_path, process), cid)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "CapEff:",
        "0000000000000021",
        "CapBnd:",
        "0000000000000021",
    ]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_process_file_cpu_affinity(runtime, running, tmp_path):
    # execCPUAffinity: "initial" while the runtime's process joins the cgroup,
    # "final" for the program.
    cid, _ = running
    cpus = sorted(os.sched_getaffinity(0))
    process = containerd_process(
        args=["grep", "Cpus_allowed_list", "/proc/self/status"],
        execCPUAffinity={"initial": str(cpus[0]), "final": str(cpus[-1])},
    )
    result = runtime("exec", "-p", write_process(tmp_path, process), cid)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Cpus_allowed_list:", str(cpus[-1])]
    offline = containerd_process(execCPUAffinity={"initial": "1000"})
    message = exec_refused(runtime, "-p", write_process(tmp_path, offline), cid)
    assert "execCPUAffinity.initial" in message and "1000" in message


def test_process_file_errors(runtime, running, tmp_path):
    cid, _ = running
    bad = write_process(tmp_path, containerd_process(args="sh"))
    message = exec_refused(runtime, "-p", bad, cid)
    assert "args" in message
    no_cwd = containerd_process()
    del no_cwd["cwd"]
    message = exec_refused(runtime, "-p", write_process(tmp_path, no_cwd), cid)
    assert "cwd" in message.lower()
    exec_refused(
        runtime, "-p", str(tmp_path / "missing.json"), cid, words=("no such file",)
    )


@ours_only
def test_process_file_problems_name_their_json_path(runtime, running, tmp_path):
    cid, _ = running
    bad = write_process(tmp_path, containerd_process(args="sh", cwd=7))
    message = exec_refused(runtime, "-p", bad, cid)
    assert "args: expected array, got string" in message
    assert "cwd: expected string, got integer" in message


@ours_only
def test_process_file_inherits_what_it_leaves_out(
    runtime, containers, bundle, tmp_path
):
    cid, init_pid = containers(bundle, edit=with_security)
    process = {"args": ["sh", "-c", "echo $TERM; cat /proc/self/status"], "cwd": "/"}
    result = runtime("exec", "-p", write_process(tmp_path, process), cid)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "xterm"
    seen = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    for key in STATUS_KEYS:
        assert seen[key].strip() == status_field(init_pid, key), key


# ----------------------------------------------------------------- terminal


@pytest.fixture
def console(tmp_path):
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    try:
        yield receiver
    finally:
        receiver.close()


def exec_on_console(runtime, console, cid: str, tmp_path, *args: str) -> str:
    """``exec -d --console-socket``; the pty's output until the process exits."""
    pid_file = tmp_path / "console-exec.pid"
    result = runtime.detached(
        "exec",
        "-d",
        "--console-socket",
        console.path,
        "--pid-file",
        str(pid_file),
        *args,
    )
    assert result.returncode == 0, result.stderr
    _, fds = console.receive()
    assert len(fds) == 1
    try:
        assert os.isatty(fds[0])
        out = read_until_closed(fds[0]).decode().replace("\r\n", "\n")
    finally:
        os.close(fds[0])
    assert reap(int(pid_file.read_text())) == 0
    return out


TTY_SCRIPT = "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; stty size"


def test_tty_with_a_console_socket(runtime, running, console, tmp_path):
    cid, _ = running
    out = exec_on_console(
        runtime, console, cid, tmp_path, "-t", cid, "sh", "-c", TTY_SCRIPT
    )
    tty, all_ttys, _ = out.splitlines()
    assert tty.startswith("/dev/pts/")
    assert all_ttys == "all-ttys"


def test_terminal_from_a_process_file(runtime, running, console, tmp_path):
    cid, _ = running
    process = containerd_process(
        terminal=True,
        consoleSize={"height": 20, "width": 70},
        args=["sh", "-c", TTY_SCRIPT],
    )
    path = write_process(tmp_path, process)
    out = exec_on_console(runtime, console, cid, tmp_path, "-p", path, cid)
    tty, all_ttys, size = out.splitlines()
    assert tty.startswith("/dev/pts/")
    assert all_ttys == "all-ttys"
    assert size == "20 70"


def test_tty_flag_misuse(runtime, running, console):
    cid, _ = running
    exec_refused(
        runtime,
        "-t",
        "-d",
        cid,
        "true",
        words=(
            "cannot allocate tty if runc will detach without setting console socket",
        ),
    )
    exec_refused(
        runtime,
        "--console-socket",
        console.path,
        cid,
        "true",
        words=("cannot use console socket if runc will not detach or allocate tty",),
    )


@ours_only
def test_tty_in_the_foreground_is_relayed(runtime, running):
    cid, _ = running
    result = runtime("exec", "-t", cid, "sh", "-c", "tty; echo done; exit 3")
    assert result.returncode == 3, result.stderr
    tty, done = result.stdout.replace("\r\n", "\n").splitlines()
    assert tty.startswith("/dev/pts/")
    assert done == "done"


# ------------------------------------------------------ detach, pid, fds


def test_detach_writes_the_pid_and_hands_the_process_over(
    runtime, containers, bundle, tmp_path
):
    cid, _ = containers(bundle)
    result = runtime.detached(
        "exec", "-d", "--pid-file", "rel.pid", cid, "sleep", "100", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    text = (tmp_path / "rel.pid").read_text()
    assert not text.endswith("\n")
    pid = int(text)
    containers.children.append(pid)
    wait_for_comm(pid, "sleep")
    # Re-parented to the caller (a subreaper), like the containerd shim.
    assert int(status_field(pid, "PPid")) == os.getpid()
    os.kill(pid, signal.SIGKILL)
    assert reap(pid) == 137
    containers.children.remove(pid)
    assert runtime.state(cid)["status"] == "running"


def test_no_descriptor_leaks_into_the_process(runtime, running, tmp_path):
    cid, _ = running
    # fd 3 is open in the runtime, as the containerd shim leaves it.
    result = run_with_fd3(
        runtime, ["exec", cid, "sh", "-c", "ls /proc/$$/fd; true"], tmp_path / "fd3"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "2"]


def test_preserve_fds_hands_fd3_over(runtime, running, tmp_path):
    cid, _ = running
    script = "ls /proc/$$/fd; echo through-fd3 >&3"
    args = ["exec", "--preserve-fds", "1", cid, "sh", "-c", script]
    result = run_with_fd3(runtime, args, tmp_path / "fd3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "2", "3"]
    assert (tmp_path / "fd3").read_text() == "through-fd3\n"


def test_nothing_is_left_behind(runtime, containers, bundle):
    cid, init_pid = containers(bundle)
    pid = containers.detach(cid, "sleep", "100")
    assert runtime("exec", cid, "true").returncode == 0
    # delete --force kills it too; reap it meanwhile, as a shim does.
    status = []
    reaper = threading.Thread(target=lambda: status.append(reap(pid)))
    reaper.start()
    runtime.ok("delete", "--force", cid)
    reaper.join()
    containers.children.remove(pid)
    assert status == [137]
    assert reap(init_pid) == 137
    assert_nothing_left(runtime, cid, str(bundle.path))
