"""The engine test harness: private containerd and podman, leak checks.

Every engine runs privately: one work directory per session holds the image,
containerd's config, root, state and socket, and podman's root, runroot,
tmpdir and configuration files. Nothing reads or writes the host's engine
configuration (``/etc/containerd``, ``/etc/containers``,
``/var/lib/containerd``, ``/var/lib/containers``). The few host paths the
engines insist on are listed in ``HOST_DIRS`` and in docs/engines.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

#: The binaries the engines are told to use, by runtime name.
RUNTIMES = {
    "runc": shutil.which("runc") or "/usr/sbin/runc",
    "pyruntime": os.environ.get("PYRUNTIME_E2E_BINARY", "/usr/local/bin/pyruntime"),
}

#: The image every scenario runs (built from the tests' busybox rootfs).
IMAGE = "localhost/busybox:latest"
#: The CRI sandbox ("pause") image: the same layer, a sleeping entrypoint.
PAUSE_IMAGE = "localhost/busybox:pause"
PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'
IMAGE_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: A container program that runs until SIGTERM, then exits 0 (the trap runs
#: as soon as the signal interrupts ``wait``). A ``sleep`` always runs in it.
SERVE = 'echo started; trap "exit 0" TERM; while :; do sleep 1000 & wait $!; done'

#: Fills memory until killed. Should the memory limit be missing, the address
#: space limit (far above the tests' cgroup limits) ends it with exit status 1
#: long before it could hurt the host.
#: The hog waits a moment: the shim starts watching the cgroup for OOM only
#: after ``start`` returns, with runc as with pyruntime.
MEMORY_HOG = "sleep 0.3; ulimit -v 262144; tail /dev/zero"

#: Host directories the engines create whatever they are told; removed at the
#: end of the session if the session created them and they are empty.
HOST_DIRS = [
    "/run/containerd/s",  # shim sockets: fixed in containerd 1.6
    "/run/containerd/fifo",  # ctr's default fifo dir (the tests pass their own)
    "/run/containerd",
    "/run/containers/networks",  # netavark's run dir, fixed for root in 4.3
    "/run/containers",
    "/run/runc",
    "/run/pyruntime",
]

#: Scenarios that fail with pyruntime for a cause found and reported, by
#: ``module::test``. Strict: once pyruntime is fixed the test passes, pytest
#: reports that as a failure, and the entry must go.
KNOWN_PYRUNTIME_FAILURES: dict[str, str] = {}


def run(argv, *, check=True, timeout=60, **kw) -> subprocess.CompletedProcess:
    """Run a command in text mode, capturing its output by default."""
    kw.setdefault("capture_output", True)
    kw.setdefault("stdin", subprocess.DEVNULL)
    result = subprocess.run(argv, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def wait_for(predicate, timeout: float = 20, interval: float = 0.1, what="it"):
    """Poll ``predicate`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    """A name no other test, session or host user has."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def processes_mentioning(text: str) -> list[int]:
    """Pids (not ours) whose command line mentions ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if text.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def mounts_under(text: str) -> list[str]:
    """Mount points of the host mount namespace that mention ``text``."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [point for point in points if text in point]


def cgroup_dirs(name: str) -> list[str]:
    """Every cgroup directory (any hierarchy, any depth ≤ 4) named ``name``."""
    found = []
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        found.extend(os.path.join(base, d) for d in dirs if name in d)
        if base.count("/") >= 7:
            dirs[:] = []
    return found


def remove_cgroup_tree(name: str) -> list[str]:
    """Remove every cgroup directory named ``name``, deepest first.

    Only for cgroups this session made: any process still in them belongs to
    a container the session started, and is killed (thawed first, since a
    frozen task cannot die). Returns what was found there.
    """
    found = []
    tops = [d for d in cgroup_dirs(name) if os.path.basename(d) == name]
    for top in tops:
        walk = sorted(os.walk(top), key=lambda entry: -entry[0].count("/"))
        for base, _, _ in walk:
            pids = read_pids(base)
            if pids:
                found.append(f"cgroup {base} still holds {pids}")
                kill_cgroup(base, pids)
            with contextlib.suppress(AssertionError):
                wait_for(lambda b=base: rmdir_ok(b), timeout=5, what=f"rmdir {base}")
            if os.path.isdir(base):
                found.append(f"cgroup {base} could not be removed")
    return found


def read_pids(cgroup: str) -> list[int]:
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as handle:
            return [int(line) for line in handle if line.strip()]
    except OSError:
        return []


def kill_cgroup(cgroup: str, pids: list[int]) -> None:
    freezer = os.path.join(cgroup, "freezer.state")
    if os.path.exists(freezer):
        with contextlib.suppress(OSError), open(freezer, "w") as handle:
            handle.write("THAWED")
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def rmdir_ok(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def leftovers(*marks: str, paths=(), settle: float = 10) -> list[str]:
    """What the engine or the runtime left behind of a removed container.

    ``marks`` are strings (container ids) that no process command line, host
    mount point or cgroup directory may mention any more; ``paths`` must not
    exist (the runtime's state directory, for instance). Engines finish some
    of the work after the command that removed the container has returned
    (a shim exits, conmon's cleanup command runs): what is left is looked at
    again for up to ``settle`` seconds.
    """
    deadline = time.monotonic() + settle
    while True:
        found = find_leftovers(marks, paths)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def find_leftovers(marks, paths) -> list[str]:
    found = []
    for mark in marks:
        found += [
            f"process {pid} mentions {mark}" for pid in processes_mentioning(mark)
        ]
        found += [f"mount {point}" for point in mounts_under(mark)]
        found += [f"cgroup {path}" for path in cgroup_dirs(mark)]
    found += [f"path {path}" for path in paths if os.path.lexists(path)]
    return found


def unmount_under(path: Path) -> list[str]:
    """Lazily unmount whatever is still mounted below ``path``."""
    points = mounts_under(str(path))
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    return points


def require(*tools: str) -> None:
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        pytest.skip(f"not installed: {' '.join(missing)} (scripts/test-engines.sh)")


class Containerd:
    """A private containerd: its own config, root, state, socket and logs."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "containerd.sock"
        self.config = base / "config.toml"
        self.log = base / "containerd.log"
        self.fifo_dir = base / "fifo"
        #: ``Root`` of each runtime (the shim adds ``/<namespace>``).
        self.runtime_roots = {name: base / "rt" / name for name in RUNTIMES}
        self.namespace = unique("pyrt-e2e")
        self.process: subprocess.Popen | None = None

    def write_config(self) -> None:
        runtimes = "".join(
            f"""
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{binary}"
        Root = "{self.runtime_roots[name]}"
"""
            for name, binary in RUNTIMES.items()
        )
        disabled = [
            "io.containerd.internal.v1.opt",
            "io.containerd.snapshotter.v1.aufs",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.tracing.processor.v1.otlp",
        ]
        (self.base / "cni" / "conf").mkdir(parents=True, exist_ok=True)
        (self.base / "cni" / "bin").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"""version = 2
root = "{self.base / "root"}"
state = "{self.base / "state"}"
disabled_plugins = {json.dumps(disabled)}

[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  level = "info"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  # The sandbox asks for oom_score_adj -998; lowering a score needs
  # CAP_SYS_RESOURCE, which this host's root lacks: clamp it instead.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{self.base / "cni" / "bin"}"
    conf_dir = "{self.base / "cni" / "conf"}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
{runtimes}"""
        )

    def start(self) -> None:
        self.write_config()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["containerd", "--config", str(self.config)],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        record_pid(self.base.parent, self.process.pid)
        wait_for(
            lambda: (
                self.ctr("version", check=False).returncode == 0
                or self.process.poll() is not None
            ),
            what="containerd to answer",
        )
        if self.process.poll() is not None:
            raise AssertionError(f"containerd exited: {self.log_tail()}")

    def ctr(self, *args, namespace=None, **kw) -> subprocess.CompletedProcess:
        """``ctr`` against this containerd, in the test namespace by default."""
        argv = ["ctr", "--address", str(self.socket)]
        argv += ["--namespace", namespace or self.namespace, *args]
        kw.setdefault("cwd", self.base)
        return run(argv, **kw)

    def runtime_flags(self, runtime_name: str) -> list[str]:
        """``ctr run`` flags that make the runc shim use this runtime."""
        return [
            "--runc-binary",
            RUNTIMES[runtime_name],
            "--runc-root",
            str(self.runtime_roots[runtime_name]),
            "--fifo-dir",
            str(self.fifo_dir),
        ]

    def state_dir(self, runtime_name: str, container_id: str, namespace=None):
        """Where the runtime keeps this container's state."""
        ns = namespace or self.namespace
        return self.runtime_roots[runtime_name] / ns / container_id

    def tasks(self, namespace=None) -> dict[str, str]:
        """Task id -> status (RUNNING, PAUSED, STOPPED, ...)."""
        out = self.ctr("task", "ls", namespace=namespace).stdout.splitlines()
        return {line.split()[0]: line.split()[2] for line in out[1:] if line.strip()}

    def remove(self, container_id: str, namespace=None) -> None:
        """Kill and delete a task and its container, whatever their state."""
        kw = {"namespace": namespace, "check": False}
        if container_id in self.tasks(namespace):
            self.ctr("task", "kill", "--signal", "SIGKILL", container_id, **kw)
            with contextlib.suppress(AssertionError):
                wait_for(
                    lambda: (
                        self.tasks(namespace).get(container_id) in (None, "STOPPED")
                    ),
                    timeout=10,
                )
            self.ctr("task", "delete", "--force", container_id, **kw)
        self.ctr("container", "delete", container_id, **kw)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> list[str]:
        """Stop the daemon and its shims. Returns what had to be killed."""
        problems = []
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                problems.append("containerd did not stop on SIGTERM")
        # Shims are started by this containerd: their command lines name its
        # socket. One still alive holds a container nobody removed.
        for pid in processes_mentioning(str(self.socket)):
            problems.append(f"shim {pid} still running: {cmdline(pid)}")
            self.kill_shim(pid)
        return problems

    def kill_shim(self, pid: int) -> None:
        kill_shim(pid, self.socket)


def kill_shim(pid: int, address) -> None:
    """SIGKILL a shim of the containerd at ``address``; remove its socket.

    containerd 1.6 puts shim sockets in /run/containerd/s, named by the
    sha256 of ``<containerd address>/<namespace>/<id>``; a shim removes its
    own socket only when it shuts down normally.
    """
    argv = cmdline(pid).split()
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    if options.get("-address") != str(address):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    key = f"{address}/{options.get('-namespace')}/{options.get('-id')}"
    name = hashlib.sha256(key.encode()).hexdigest()
    with contextlib.suppress(OSError, AssertionError):
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=5)
        os.unlink(f"/run/containerd/s/{name}")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def record_pid(workdir: Path, pid: int) -> None:
    """Note a daemon's pid, for ``clean_work_dir`` should pytest be killed."""
    with open(workdir / "daemon.pids", "a") as handle:
        handle.write(f"{pid}\n")


def record_cgroup(workdir: Path, name: str) -> None:
    """Note a cgroup name the session owns, for ``clean_work_dir``."""
    with open(workdir / "cgroups", "a") as handle:
        handle.write(f"{name}\n")


def record_host_dirs(workdir: Path) -> set[str]:
    """Note which of ``HOST_DIRS`` are missing now; return those present."""
    present = {d for d in HOST_DIRS if os.path.isdir(d)}
    absent = [d for d in HOST_DIRS if d not in present]
    (workdir / "host-dirs").write_text("".join(f"{d}\n" for d in absent))
    return present


def remove_created_host_dirs(workdir: Path) -> None:
    """rmdir the ``HOST_DIRS`` the session created, if they are empty."""
    with contextlib.suppress(OSError):
        for directory in (workdir / "host-dirs").read_text().split():
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def lines_of(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def clean_work_dir(workdir: Path) -> list[str]:
    """Undo what a killed session left: its daemons, shims, conmons, cgroups
    and mounts. Everything touched is recorded in, or named after, the work
    directory. Returns what was found."""
    found = []
    for pid in map(int, lines_of(workdir / "daemon.pids")):
        if str(workdir) in cmdline(pid):
            found.append(f"daemon {pid}: {cmdline(pid)}")
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                wait_for(lambda p=pid: str(workdir) not in cmdline(p), timeout=10)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    address = workdir / "containerd" / "containerd.sock"
    for pid in processes_mentioning(str(workdir)):
        found.append(f"process {pid}: {cmdline(pid)}")
        kill_shim(pid, address)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for name in lines_of(workdir / "cgroups"):
        found += remove_cgroup_tree(name)
    found += [f"mount {point}" for point in unmount_under(workdir)]
    remove_created_host_dirs(workdir)
    return found


if __name__ == "__main__":
    import sys

    for line in clean_work_dir(Path(sys.argv[1])):
        print(f"cleaned up: {line}", file=sys.stderr)


def sweep_namespace(daemon: Containerd, ns: str) -> list[str]:
    """Remove every container still in a namespace; report each one."""
    found = []
    listed = daemon.ctr("container", "ls", "-q", namespace=ns, check=False)
    for container_id in listed.stdout.split():
        found.append(f"container {container_id} left in namespace {ns}")
        daemon.remove(container_id, namespace=ns)
    return found


class Podman:
    """podman with its own root, runroot, tmpdir and configuration files.

    The runtime is chosen per call with ``--runtime PATH``. podman 4.3 does
    not pass ``--runtime-flag`` values on to the cleanup process it leaves
    with conmon, so the runtimes keep their state under their default roots
    (``/run/runc``, ``/run/pyruntime``): that is also where podman users'
    containers live.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cgroup_parent = unique("pyrt-e2e-podman")
        self.storage_conf = base / "storage.conf"
        self.containers_conf = base / "containers.conf"
        self.registries_conf = base / "registries.conf"
        self.policy = base / "policy.json"
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
        }
        self.runtime_roots = {name: Path("/run") / name for name in RUNTIMES}

    def write_config(self) -> None:
        for sub in ("root", "runroot", "tmp", "networks"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.storage_conf.write_text(
            f"""[storage]
driver = "overlay"
graphroot = "{self.base / "root"}"
runroot = "{self.base / "runroot"}"
"""
        )
        runtimes = "".join(f'{name} = ["{path}"]\n' for name, path in RUNTIMES.items())
        self.containers_conf.write_text(
            f"""[containers]
log_driver = "k8s-file"
netns = "none"
# podman's own defaults exceed this host's hard limits, which root cannot
# raise without CAP_SYS_RESOURCE.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.base / "events.log"}"
tmp_dir = "{self.base / "tmp"}"
image_copy_tmp_dir = "{self.base / "tmp"}"
# Without this podman would not ask pyruntime for a JSON log (--log).
runtime_supports_json = {json.dumps(sorted(RUNTIMES))}

[engine.runtimes]
{runtimes}
[network]
network_config_dir = "{self.base / "networks"}"
"""
        )
        self.registries_conf.write_text("unqualified-search-registries = []\n")
        # The image comes from a local layout: accept it, without reading the
        # host's /etc/containers/policy.json.
        self.policy.write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n"
        )

    def __call__(self, runtime_name: str, *args, **kw) -> subprocess.CompletedProcess:
        argv = ["podman", "--runtime", RUNTIMES[runtime_name], *args]
        kw.setdefault("env", self.env)
        # conmon 2.1.6 writes a file named "oom" into its working directory
        # (podman's) when the container is OOM-killed: keep that one private.
        kw.setdefault("cwd", self.base)
        return run(argv, **kw)


class PodmanTest:
    """One test's podman calls, all with one runtime; removes its containers."""

    def __init__(self, engine: Podman, runtime_name: str) -> None:
        self.engine = engine
        self.runtime_name = runtime_name
        self.names: list[str] = []

    def __call__(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.engine(self.runtime_name, *args, **kw)

    def new_name(self) -> str:
        name = unique("e2e")
        self.names.append(name)
        return name

    def run(self, *args, name=None, **kw) -> subprocess.CompletedProcess:
        """``podman run --name NAME`` in this session's cgroup parent.

        The container id goes to a cidfile, so that even a ``--rm``
        container can be looked for afterwards (``leftovers``).
        """
        name = name or self.new_name()
        parent = f"/{self.engine.cgroup_parent}"
        cidfile = self.engine.base / "cid" / name
        cidfile.parent.mkdir(exist_ok=True)
        return self(
            "run", "--pull", "never", "--name", name, "--cgroup-parent", parent,
            "--cidfile", str(cidfile), *args, **kw,
        )  # fmt: skip

    def inspect(self, name: str, fmt: str) -> str:
        return self("inspect", "-f", fmt, name).stdout.strip()

    def container_id(self, name: str) -> str:
        return (self.engine.base / "cid" / name).read_text().strip()

    def state_dir(self, container_id: str) -> Path:
        return self.engine.runtime_roots[self.runtime_name] / container_id

    def leftovers(self, name: str) -> list[str]:
        """What is left of a removed container."""
        container_id = self.container_id(name)
        found = leftovers(container_id, paths=[self.state_dir(container_id)])
        listed = self("ps", "-a", "-q", "--no-trunc").stdout.split()
        found += [f"podman still lists {container_id}"] * (container_id in listed)
        return found

    def cleanup(self) -> None:
        for name in self.names:
            self("rm", "-f", "-t", "0", "--ignore", name, check=False)


class CtrTest:
    """One test's ``ctr`` calls with one runtime; removes its containers."""

    def __init__(self, daemon: Containerd, runtime_name: str) -> None:
        self.daemon = daemon
        self.runtime_name = runtime_name
        self.ids: list[str] = []

    def new_id(self) -> str:
        container_id = unique("c")
        self.ids.append(container_id)
        return container_id

    def __call__(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.daemon.ctr(*args, **kw)

    def run(self, container_id, *command, flags=(), **kw):
        """``ctr run`` of the test image through the runtime under test."""
        return self.daemon.ctr(
            "run", *self.daemon.runtime_flags(self.runtime_name), *flags,
            IMAGE, container_id, *command, **kw,
        )  # fmt: skip

    def status(self, container_id: str) -> str | None:
        return self.daemon.tasks().get(container_id)

    def wait_status(self, container_id: str, status: str, timeout=20) -> None:
        wait_for(
            lambda: self.status(container_id) == status,
            timeout=timeout,
            what=f"task {container_id} to be {status}",
        )

    def leftovers(self, container_id: str) -> list[str]:
        """What is left of a removed container."""
        state = self.daemon.state_dir(self.runtime_name, container_id)
        found = leftovers(container_id, paths=[state])
        listed = self("container", "ls", "-q").stdout.split()
        found += [f"ctr still lists {container_id}"] * (container_id in listed)
        return found

    def cleanup(self) -> None:
        """Remove the test's containers, even one whose create never returned.

        A runtime that hangs ``create`` leaves the shim waiting and the task
        unknown to containerd, so ``ctr`` cannot kill it: the processes in
        the container's cgroup (made for this test) are killed instead, which
        lets the shim finish, and the removal is tried again.
        """
        for container_id in self.ids:
            self.daemon.remove(container_id)
            stuck = [d for d in cgroup_dirs(container_id) if read_pids(d)]
            for directory in stuck:
                kill_cgroup(directory, read_pids(directory))
            if stuck:
                time.sleep(1)
                self.daemon.remove(container_id)
            # containerd gives up on a create whose client went away, and
            # never stops that shim: stop it here.
            mark = f"-id\0{container_id}\0-address\0{self.daemon.socket}\0"
            for pid in processes_mentioning(mark):
                self.daemon.kill_shim(pid)
