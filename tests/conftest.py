"""Shared fixtures: a busybox rootfs, bundles, and the runtime under test.

Integration tests drive the real CLI as a subprocess, the way engines do,
each with its own ``--root`` and container ids. The test process is a child
subreaper (like containerd's shim and conmon), so container inits are
re-parented to it and their exit status can be collected with ``reap``.

Every test's containers are removed with ``delete --force`` at teardown, and
the teardown checks that nothing was left behind: no state directory, no
cgroup, no process.
"""

from __future__ import annotations

import copy
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36


def runtime_command() -> list[str]:
    """The pyruntime command line (the venv's entry point when there is one)."""
    override = os.environ.get("PYRUNTIME_TEST_RUNTIME")
    if override:
        return override.split()
    script = Path(sys.executable).with_name("pyruntime")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pyruntime"]


def build_rootfs(dest: Path) -> None:
    """Build a busybox rootfs with the project's script."""
    subprocess.run(
        ["sh", str(REPO / "scripts" / "build-rootfs.sh"), str(dest)], check=True
    )


@pytest.fixture(scope="session")
def rootfs_template() -> Path:
    """A busybox rootfs shared (read-only by convention) by all tests."""
    path = Path(os.environ.get("PYRUNTIME_TEST_ROOTFS", REPO / ".build" / "rootfs"))
    if not (path / "bin" / "busybox").exists():
        build_rootfs(path)
    return path


def base_config(args: list[str] | None = None) -> dict:
    """A config like ``runc spec`` writes, for a busybox rootfs."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args or ["true"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "pyruntime-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }


class Bundle:
    """A bundle directory: config.json plus a rootfs (a bind of the template)."""

    def __init__(self, path: Path, template: Path) -> None:
        self.path = path
        self.rootfs = path / "rootfs"
        self.template = template
        self.config = base_config()

    def write(self, config: dict | None = None) -> Bundle:
        """Write config.json (and copy the rootfs the first time)."""
        if config is not None:
            self.config = config
        if not self.rootfs.exists():
            shutil.copytree(self.template, self.rootfs, symlinks=True)
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))
        return self

    def edit(self, func) -> Bundle:
        """Change the config with ``func(config)`` and write it."""
        config = copy.deepcopy(self.config)
        func(config)
        return self.write(config)


class Runtime:
    """Runs the CLI with a private state root; remembers ids for cleanup."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.ids: set[str] = set()
        self.command = runtime_command()

    def new_id(self, prefix: str = "t") -> str:
        """A container id nobody else uses."""
        container_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.add(container_id)
        return container_id

    def argv(self, *args: str, log_json: bool = False) -> list[str]:
        """The full command line for a subcommand."""
        extra = ["--log", str(self.log), "--log-format", "json"] if log_json else []
        return [*self.command, "--root", str(self.root), *extra, *args]

    def __call__(self, *args: str, timeout: float = 60, log_json=False, **kw):
        """Run a subcommand and return the CompletedProcess (text mode)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        return subprocess.run(
            self.argv(*args, log_json=log_json), text=True, timeout=timeout, **kw
        )

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """Run a subcommand that must succeed."""
        result = self(*args, **kw)
        assert result.returncode == 0, (
            f"{' '.join(args)} failed ({result.returncode}): {result.stderr}"
        )
        return result

    def state(self, container_id: str) -> dict:
        """Parsed ``state`` output."""
        return json.loads(self.ok("state", container_id).stdout)

    def create(self, bundle: Bundle, container_id: str, *flags: str, **kw):
        """``create`` with stdio in files: init inherits them, pipes never close."""
        return self.detached(
            "create", "--bundle", str(bundle.path), *flags, container_id, **kw
        )

    def detached(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """Run a command whose stdio the container keeps; stderr via a file."""
        with tempfile.TemporaryFile("w+") as err:
            kw.setdefault("stdout", subprocess.DEVNULL)
            kw["stderr"] = err
            kw["capture_output"] = False
            result = self(*args, **kw)
            err.seek(0)
            result.stderr = err.read()
        return result

    def cleanup(self) -> None:
        """Force-delete every container this test made."""
        for container_id in self.ids:
            self("delete", "--force", container_id, timeout=30)


def reap(pid: int, timeout: float = 20) -> int:
    """Wait for a re-parented container process; return its exit code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return -1
        if done:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"process {pid} did not exit within {timeout}s")


def cgroup_dirs(container_id: str) -> list[str]:
    """Every cgroup directory on the host whose name is this container id."""
    found = []
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        if container_id in dirs:
            found.append(os.path.join(base, container_id))
        depth = base.count("/")
        if depth > 6:
            dirs[:] = []
    return found


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions ``text`` (for leak checks)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="session", autouse=True)
def seccomp_cache_dir(tmp_path_factory):
    """Compiled seccomp programs go to a directory of the test session.

    pyruntime keeps them in /var/cache/pyruntime otherwise; the tests leave
    the host's cache alone. A test that wants a cache of its own sets
    PYRUNTIME_CACHE_DIR in the environment of its commands.
    """
    path = tmp_path_factory.mktemp("cache")
    saved = os.environ.get("PYRUNTIME_CACHE_DIR")
    os.environ["PYRUNTIME_CACHE_DIR"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("PYRUNTIME_CACHE_DIR", None)
    else:
        os.environ["PYRUNTIME_CACHE_DIR"] = saved


@pytest.fixture(scope="session", autouse=True)
def subreaper():
    """Make the test process a child subreaper, like the engines' shims."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    yield


@pytest.fixture
def runtime(tmp_path: Path):
    """A Runtime with a private root; verifies nothing is left behind."""
    rt = Runtime(tmp_path / "state", tmp_path / "log.json")
    try:
        yield rt
    finally:
        rt.cleanup()
    leftovers = [i for i in rt.ids if (rt.root / i).exists()]
    cgroups = [d for i in rt.ids for d in cgroup_dirs(i)]
    assert not leftovers, f"state dirs left behind: {leftovers}"
    assert not cgroups, f"cgroups left behind: {cgroups}"


@pytest.fixture
def bundle(tmp_path: Path, rootfs_template: Path) -> Bundle:
    """A fresh bundle with the base config written."""
    path = tmp_path / "bundle"
    path.mkdir()
    return Bundle(path, rootfs_template).write()


def mounts_mentioning(text: str) -> list[str]:
    """Lines of the host's mountinfo that mention ``text`` (for leak checks)."""
    with open("/proc/self/mountinfo") as handle:
        return [line for line in handle if text in line]


#: A program that says it is up, then exits 9 on SIGTERM.
TRAPS_TERM = "trap 'exit 9' TERM; echo up; while true; do sleep 0.05; done"


def assert_forwards_sigterm(argv: list[str]) -> None:
    """SIGTERM to the runtime running :data:`TRAPS_TERM` reaches the program."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "up\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_nothing_left(runtime: Runtime, container_id: str, *marks: str) -> None:
    """No state directory, cgroup, host mount or live process of a container.

    ``marks`` are more strings (a bundle path...) that no host mount and no
    process command line may mention any more.
    """
    assert not (runtime.root / container_id).exists(), "state directory left"
    assert not cgroup_dirs(container_id), "cgroup left"
    for mark in (container_id, *marks):
        assert not mounts_mentioning(mark), f"host mounts mention {mark}"
        assert not processes_mentioning(mark), f"processes mention {mark}"


def assert_refused(runtime, result, cid: str, *words: str) -> str:
    """Exit 1, one error line naming ``words``, and nothing left behind."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not (runtime.root / cid).exists()
    assert cgroup_dirs(cid) == []
    assert processes_mentioning(cid) == []
    return lines[0]


def create_refused(runtime, bundle, *words: str) -> str:
    """``create`` must fail cleanly; return its error line."""
    cid = runtime.new_id()
    result = runtime.create(bundle, cid)
    return assert_refused(runtime, result, cid, *words)
