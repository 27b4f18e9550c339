"""create / start and ``process``, driven through the CLI (issue 2, points 5, 8).

Each behaviour is observed where it shows: from the host (``/proc/<pid>/...``
of the container's init between ``create`` and ``start``) or from inside the
container (busybox commands whose output comes back on ``run``'s stdout).
Every refused configuration must end in exit status 1, one error line on
stderr, and nothing left behind: no state directory, cgroup or process.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import (
    assert_refused,
    create_refused,
    reap,
)

pytestmark = pytest.mark.root

HOST_NAMESPACES = ("pid", "net", "ipc", "uts", "mnt")


def set_process(bundle, **fields) -> None:
    """Update ``process`` in the bundle's config.json."""
    bundle.edit(lambda c: c["process"].update(fields))


def run_script(runtime, bundle, script: str, *flags: str, **kw):
    """``run`` ``sh -c script`` in the foreground; return the CompletedProcess."""
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", script]))
    cid = runtime.new_id()
    return runtime("run", "--bundle", str(bundle.path), *flags, cid, **kw)


def output_of(runtime, bundle, script: str, *flags: str) -> str:
    """stdout of a container that must succeed, with nothing on stderr."""
    result = run_script(runtime, bundle, script, *flags)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def read_pid(path) -> int:
    return int(path.read_text())


def namespace_id(pid: int | str, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    raise KeyError(name)


def wait_for(path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# ------------------------------------------------------------- create / start


def test_create_returns_with_init_set_up_and_waiting(runtime, bundle, tmp_path):
    marker = bundle.rootfs / "started"
    set_process(bundle, args=["sh", "-c", "touch /started; exec sleep 30"])
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    result = runtime.create(bundle, cid, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    pid = read_pid(pid_file)
    assert runtime.state(cid)["pid"] == pid
    # In all its new namespaces, pid 1 of its own.
    for name in HOST_NAMESPACES:
        assert namespace_id(pid, name) != namespace_id("self", name), name
    assert status_field(pid, "NSpid").split() == [str(pid), "1"]
    # In its final cgroup, in every hierarchy.
    with open(f"/proc/{pid}/cgroup") as handle:
        paths = [line.rstrip("\n").split(":", 2)[2] for line in handle]
    assert paths and all(path.endswith(f"/{cid}") for path in paths), paths
    # Pivoted: its / is the rootfs, its /proc is the container's own.
    assert os.stat(f"/proc/{pid}/root").st_ino == bundle.rootfs.stat().st_ino
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert os.path.exists(f"/proc/{pid}/root/proc/1/status")
    # Re-parented to the caller, which is a subreaper.
    assert int(status_field(pid, "PPid")) == os.getpid()
    # Waiting: still the runtime's program; the user program has not run.
    busybox = (bundle.rootfs / "bin" / "busybox").stat().st_ino
    assert os.stat(f"/proc/{pid}/exe").st_ino != busybox
    time.sleep(0.1)
    assert not marker.exists()
    runtime.ok("start", cid)
    wait_for(marker)
    # The same process became the user program.
    assert os.stat(f"/proc/{pid}/exe").st_ino == busybox
    runtime.ok("kill", cid, "KILL")
    assert reap(pid) == 137


def test_container_inherits_the_callers_stdio(runtime, bundle, tmp_path):
    script = 'read line; echo "out:$line"; echo "err:$line" >&2'
    set_process(bundle, args=["sh", "-c", script])
    (tmp_path / "in").write_text("hello\n")
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    with (
        open(tmp_path / "in") as stdin,
        open(tmp_path / "out", "w") as stdout,
        open(tmp_path / "err", "w") as stderr,
    ):
        result = runtime(
            "create",
            "--bundle",
            str(bundle.path),
            "--pid-file",
            str(pid_file),
            cid,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            capture_output=False,
        )
    assert result.returncode == 0, (tmp_path / "err").read_text()
    assert (tmp_path / "out").read_text() == ""
    assert (tmp_path / "err").read_text() == "", "create wrote on stderr"
    runtime.ok("start", cid)
    assert reap(read_pid(pid_file)) == 0
    assert (tmp_path / "out").read_text() == "out:hello\n"
    assert (tmp_path / "err").read_text() == "err:hello\n"


# Put fd N on fd 3, then exec the CLI (which keeps N open too).
_ON_FD3 = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.execvp(sys.argv[2], sys.argv[2:])"
)


def test_non_root_user_can_reopen_its_stdio(runtime, bundle):
    # As with runc, stdio is handed to the container user: reopening
    # /dev/stdout (the caller's pipe) must work for uid 1000.
    set_process(bundle, user={"uid": 1000, "gid": 1000})
    out = output_of(runtime, bundle, "echo reopened > /dev/stdout")
    assert out == "reopened\n"


def test_dev_null_stdio_is_left_alone(runtime, bundle):
    set_process(bundle, user={"uid": 1000, "gid": 1000})
    result = run_script(runtime, bundle, "stat -L -c %u /dev/stdin")
    assert result.stdout == "0\n"
    assert os.stat(os.devnull).st_uid == 0


def run_with_fd3(runtime, args: list[str], fd3_path, **kw):
    """Run the CLI with fd 3 open on ``fd3_path`` and one more fd above it."""
    with open(fd3_path, "w") as fd3:
        return subprocess.run(
            [sys.executable, "-c", _ON_FD3, str(fd3.fileno()), *runtime.argv(*args)],
            pass_fds=(fd3.fileno(),),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            **kw,
        )


def test_no_descriptor_leaks_into_the_container(runtime, bundle, tmp_path):
    set_process(bundle, args=["sh", "-c", "ls /proc/1/fd; true"])
    cid = runtime.new_id()
    result = run_with_fd3(
        runtime, ["run", "--bundle", str(bundle.path), cid], tmp_path / "fd3"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "2"]


def test_preserve_fds_hands_fd3_to_the_container(runtime, bundle, tmp_path):
    script = "ls /proc/1/fd; echo through-fd3 >&3"
    set_process(bundle, args=["sh", "-c", script])
    cid = runtime.new_id()
    args = ["run", "--preserve-fds", "1", "--bundle", str(bundle.path), cid]
    result = run_with_fd3(runtime, args, tmp_path / "fd3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "2", "3"]
    assert (tmp_path / "fd3").read_text() == "through-fd3\n"


def test_preserve_fds_without_the_fd_is_refused(runtime, bundle):
    cid = runtime.new_id()
    result = runtime.create(bundle, cid, "--preserve-fds", "2")
    assert_refused(runtime, result, cid, "preserved-fd")


def test_container_has_a_session_of_its_own(runtime, bundle):
    # Field 6 of /proc/<pid>/stat is the session id: init made its own (1).
    assert output_of(runtime, bundle, "cut -d' ' -f6 /proc/1/stat") == "1\n"


# ------------------------------------------------------------------- process


def test_args_are_looked_up_on_the_container_path(runtime, bundle):
    tools = bundle.rootfs / "opt" / "tools"
    tools.mkdir(parents=True)
    (tools / "greet").write_text('#!/bin/sh\necho "greet $1"\n')
    (tools / "greet").chmod(0o755)
    env = ["PATH=/opt/tools:/bin", "HOME=/root"]
    set_process(bundle, args=["greet", "you"], env=env)
    result = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "greet you\n"


def test_missing_program_fails_at_create(runtime, bundle):
    set_process(bundle, args=["no-such-program"])
    line = create_refused(runtime, bundle, "executable file not found")
    assert "no-such-program" in line


def test_program_not_on_container_path_fails(runtime, bundle):
    # busybox `ls` is in /bin, which this PATH leaves out.
    set_process(bundle, args=["ls"], env=["PATH=/usr/local/bin"])
    create_refused(runtime, bundle, "executable file not found")


def test_missing_absolute_program_fails_at_create(runtime, bundle):
    set_process(bundle, args=["/no/such/program"])
    line = create_refused(runtime, bundle, "no such file or directory")
    assert "/no/such/program" in line


def test_program_the_kernel_cannot_exec_fails_after_start(runtime, bundle):
    script = bundle.rootfs / "no-shebang"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    set_process(bundle, args=["/no-shebang"])
    result = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert result.returncode == 1
    # start has returned by then (as runc's): init says why, the program's
    # exit status is run's.
    assert result.stderr == "pyruntime: exec /no-shebang: exec format error\n"


def test_env_is_exactly_the_configs(runtime, bundle):
    env = ["PATH=/bin:/usr/bin", "GREETING=hello world", "EMPTY="]
    set_process(bundle, env=env)
    out = output_of(runtime, bundle, "env | sort")
    seen = set(out.splitlines()) - {"PWD=/", "SHLVL=1"}
    assert seen == set(env)


def test_cwd_is_created_when_missing(runtime, bundle):
    set_process(bundle, cwd="/srv/app/data")
    assert not (bundle.rootfs / "srv").exists()
    assert output_of(runtime, bundle, "pwd") == "/srv/app/data\n"
    assert (bundle.rootfs / "srv" / "app" / "data").is_dir()


def test_cwd_that_is_a_file_is_refused(runtime, bundle):
    set_process(bundle, cwd="/etc/passwd")
    create_refused(runtime, bundle, "chdir to cwd", "/etc/passwd")


def test_user_groups_and_umask(runtime, bundle):
    user = {"uid": 1000, "gid": 1001, "additionalGids": [5, 10001], "umask": 0o027}
    set_process(bundle, user=user)
    out = output_of(runtime, bundle, "id; umask; touch /tmp/f; stat -c '%a %u' /tmp/f")
    ident, mask, made = out.splitlines()
    assert ident == "uid=1000(webapp) gid=1001(service) groups=5(tty),10001(appuser)"
    assert mask == "0027"
    assert made == "640 1000"


def test_default_umask_is_0022(runtime, bundle):
    assert output_of(runtime, bundle, "umask") == "0022\n"


def test_rlimit_nofile_applied(runtime, bundle):
    limits = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]
    set_process(bundle, rlimits=limits)
    assert output_of(runtime, bundle, "ulimit -n; ulimit -Hn") == "512\n1024\n"


def test_rlimit_above_the_hard_limit_is_refused(runtime, bundle):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard >= 1 << 20:
        pytest.skip("the nofile hard limit is already the kernel's maximum")
    too_high = hard + 1
    limits = [{"type": "RLIMIT_NOFILE", "soft": too_high, "hard": too_high}]
    set_process(bundle, rlimits=limits)
    create_refused(
        runtime, bundle, "RLIMIT_NOFILE", str(too_high), f"hard limit is {hard}"
    )


def test_rlimit_unlimited_and_limits_python_does_not_name(runtime, bundle):
    import resource

    if resource.getrlimit(resource.RLIMIT_CORE)[1] != resource.RLIM_INFINITY:
        pytest.skip("the core hard limit is not unlimited here")
    unlimited = (1 << 64) - 1  # RLIM_INFINITY as the spec's uint64
    limits = [
        {"type": "RLIMIT_CORE", "soft": unlimited, "hard": unlimited},
        {"type": "RLIMIT_LOCKS", "soft": 77, "hard": 88},
    ]
    set_process(bundle, rlimits=limits)
    out = output_of(runtime, bundle, "ulimit -c; grep 'Max file locks' /proc/1/limits")
    core, locks = out.splitlines()
    assert core == "unlimited"
    assert locks.split()[3:5] == ["77", "88"]


def test_oom_score_adj(runtime, bundle):
    set_process(bundle, oomScoreAdj=421)
    assert output_of(runtime, bundle, "cat /proc/self/oom_score_adj") == "421\n"


def test_oom_score_adj_below_the_callers_is_refused(runtime, bundle):
    # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host lacks.
    if "CAP_SYS_RESOURCE" in has_capability_names():
        pytest.skip("the runtime may lower oom_score_adj here")
    current = int(Path("/proc/self/oom_score_adj").read_text())
    set_process(bundle, oomScoreAdj=max(current - 100, -1000))
    create_refused(runtime, bundle, "oomScoreAdj", "permission denied")


def has_capability_names() -> set[str]:
    """The effective capabilities of the test process, by name."""
    names = {24: "CAP_SYS_RESOURCE"}
    mask = int(status_field(os.getpid(), "CapEff"), 16)
    return {name for bit, name in names.items() if mask >> bit & 1}


def test_oom_score_adj_does_not_change_the_callers(runtime, bundle):
    before = Path("/proc/self/oom_score_adj").read_text()
    set_process(bundle, oomScoreAdj=300)
    output_of(runtime, bundle, "true")
    assert Path("/proc/self/oom_score_adj").read_text() == before


# ------------------------------------------------------------------ terminal


class ConsoleReceiver:
    """The caller's end of ``--console-socket``: a listening AF_UNIX socket."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.listener.settimeout(20)

    def receive(self) -> tuple[bytes, list[int]]:
        """Accept the runtime's connection; return (data, received fds)."""
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(20)
            space = socket.CMSG_SPACE(8 * array.array("i").itemsize)
            data, ancdata, flags, _ = conn.recvmsg(64, space)
        assert not flags & socket.MSG_CTRUNC
        fds = array.array("i")
        for level, kind, payload in ancdata:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        return data, list(fds)

    def close(self) -> None:
        self.listener.close()


def read_until_closed(master: int, timeout: float = 20) -> bytes:
    """Read the pty master until every slave is closed (EIO)."""
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def console(tmp_path):
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    try:
        yield receiver
    finally:
        receiver.close()


def create_with_console(runtime, bundle, tmp_path, console):
    """``create`` with ``--console-socket`` and a pid file; it must succeed."""
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    result = runtime.create(
        bundle, cid, "--console-socket", console.path, "--pid-file", str(pid_file)
    )
    assert result.returncode == 0, result.stderr
    return cid, pid_file, result


def test_terminal_master_sent_to_console_socket(runtime, bundle, tmp_path, console):
    script = (
        "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; "
        "stat -c %t:%T /dev/console $(tty); stty size"
    )
    set_process(
        bundle,
        terminal=True,
        consoleSize={"height": 33, "width": 101},
        args=["sh", "-c", script],
    )
    cid, pid_file, result = create_with_console(runtime, bundle, tmp_path, console)
    assert result.stderr == ""
    data, fds = console.receive()
    assert data == b"/dev/ptmx"
    assert len(fds) == 1
    master = fds[0]
    try:
        assert os.isatty(master)
        rows, cols = struct.unpack(
            "HHHH", fcntl.ioctl(master, termios.TIOCGWINSZ, b"\0" * 8)
        )[:2]
        assert (rows, cols) == (33, 101)
        runtime.ok("start", cid)
        out = read_until_closed(master).decode().replace("\r\n", "\n")
    finally:
        os.close(master)
    assert reap(read_pid(pid_file)) == 0
    tty, all_ttys, console_dev, pts_dev, size = out.splitlines()
    assert tty.startswith("/dev/pts/")
    assert all_ttys == "all-ttys"
    assert console_dev == pts_dev, "/dev/console is not the pty"
    assert size == "33 101"


def test_terminal_belongs_to_a_non_root_user(runtime, bundle, tmp_path, console):
    script = "stat -c %u $(tty); echo via-dev-stdout > /dev/stdout"
    set_process(
        bundle,
        terminal=True,
        user={"uid": 1000, "gid": 1000},
        args=["sh", "-c", script],
    )
    cid, pid_file, _ = create_with_console(runtime, bundle, tmp_path, console)
    _, fds = console.receive()
    try:
        runtime.ok("start", cid)
        out = read_until_closed(fds[0]).decode().replace("\r\n", "\n")
    finally:
        for fd in fds:
            os.close(fd)
    assert reap(read_pid(pid_file)) == 0
    assert out == "1000\nvia-dev-stdout\n"


def test_console_socket_without_terminal_is_refused(runtime, bundle, console):
    cid = runtime.new_id()
    result = runtime.create(bundle, cid, "--console-socket", console.path)
    assert_refused(
        runtime,
        result,
        cid,
        "cannot use console socket if runc will not detach or allocate tty",
    )


def test_terminal_without_console_socket_is_refused(runtime, bundle):
    set_process(bundle, terminal=True)
    create_refused(
        runtime,
        bundle,
        "cannot allocate tty if runc will detach without setting console socket",
    )


def test_console_socket_nobody_listens_on_is_refused(runtime, bundle, tmp_path):
    set_process(bundle, terminal=True)
    cid = runtime.new_id()
    missing = str(tmp_path / "nobody.sock")
    result = runtime.create(bundle, cid, "--console-socket", missing)
    assert_refused(runtime, result, cid, "console socket", missing)
