"""Start-up and lifecycle benchmarks: pyruntime and runc on the same bundles.

Run as root, from the repository (``make bench`` and ``make bench-smoke``
do)::

    .venv/bin/python benchmarks/bench.py [--smoke] [--reps N] [--out DIR]

Every benchmark runs both runtimes in one go, alternating them (pyruntime
then runc, then runc then pyruntime, ...), a warm-up round first, then
``--reps`` measured rounds; the table gives the medians, the
pyruntime/runc ratio, and for the commands an engine calls most the ratio
to ``python -c pass``, the floor any Python program pays. Commands run as
engines run them: a fresh process each, stdin from /dev/null, stdout and
stderr to files, a minimal environment (``PATH`` only, so for instance a
``PYTHONDONTWRITEBYTECODE`` of the caller does not leak in).

What is measured (see ``docs/performance.md`` for a recorded run):

- ``run`` of /bin/true in the foreground (create, start, wait, delete in one);
- the same with a default-deny seccomp profile the size engines use (every
  system call libseccomp knows for this machine allowed by name, a few
  denied); pyruntime keeps its compiled programs in a cache of the run's own,
  so the warm-up round compiles and the measured rounds read the program;
- the create -> start -> wait -> delete cycle, and each of its steps;
- ``state`` of a created container; ``list`` of 1 and of 1000 containers
  (the 1000 are copies of one stopped container's state directory, renamed:
  ``list`` reads each one as it would a real one);
- ``exec`` of /bin/true in a running container ("not available" while
  ``pyruntime exec`` fails);
- ``kill`` (SIGKILL) and ``delete`` of a running container;
- 200 containers created and started, 2 per CPU core at a time (wall time),
  then deleted the same way;
- ``check`` and ``explain`` of the valid /bin/true bundle, with ``state`` in
  the same rounds (pyruntime only: runc has neither command);
- the peak resident memory of every command, in one more round where each
  command runs under a small spawner (see :func:`execute` for why).

This script is the parent of every container it makes: it is a child
subreaper, so each container's init is re-parented to it and reaped here.
Each runtime gets its own ``--root`` under a private temporary directory and
its own container ids; whatever happens, everything is deleted at the end
(``delete --force``, then any process, cgroup or directory left over is
removed and reported, and the exit status is then 1).

A benchmark, not a test: no speed makes it fail. It exits 0 when every
benchmark ran and nothing was left behind.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
#: A command that takes longer than this is killed (and the run fails).
COMMAND_TIMEOUT = 120.0
MIB = 1024.0
#: Runs argv[1:] in a forked child, then writes its peak RSS on stderr.
SPAWNER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("\\npeak-rss-kib %d\\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""

#: What --only can name.
BENCHMARKS = (
    "run",
    "seccomp",
    "cycle",
    "state",
    "list",
    "exec",
    "kill",
    "parallel",
    "check",
)
#: The row of ``run`` with a seccomp profile, and the calls it denies.
SECCOMP_ROW = "run /bin/true, default-deny seccomp profile"
DENIED_SYSCALLS = frozenset(
    {"kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "init_module"}
    | {"finit_module", "delete_module", "acct", "settimeofday", "clock_settime"}
)
FLOOR = "python -c pass"
#: Rows compared with the floor, and the targets of issue 6.
FLOOR_ROWS = ("state", "kill", "start", "delete")
FLOOR_TARGET = 1.3
RUNC_TARGET_ROWS = ("run /bin/true", "create-start-wait-delete cycle", "parallel")
RSS_TARGET_MIB = 40.0
#: Rows compared with ``state`` (issue 7: check costs about what state costs).
CHECK_ROWS = ("check (valid bundle)", "explain (valid bundle)")
CHECK_TARGET = 1.5


class BenchError(Exception):
    """A command failed that the benchmark needs."""


# ----------------------------------------------------------------- processes


class Result:
    """One finished command: wall time, peak RSS, exit status, output."""

    def __init__(self, seconds: float, maxrss_kib: int, code: int, out: str, err: str):
        self.seconds = seconds
        self.maxrss_kib = maxrss_kib
        self.code = code
        self.out = out
        self.err = err


class Memory:
    """Set while the memory round runs: commands then run under the spawner."""

    on = False


def execute(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> Result:
    """Run ``argv`` as an engine would; time it from spawn to reap.

    In the memory round the command runs under :data:`SPAWNER`, and its peak
    RSS is the ``ru_maxrss`` the spawner gets from ``wait4``. The one this
    process would get is useless: a child of a large process starts with
    the parent's high-water mark, which the kernel keeps across ``execve``
    (so does a child of busybox's ``time``, whose report is off besides).
    The spawner is a small ``python -S``: what it reports is the command's
    own peak, or the spawner's few MiB for a smaller command.
    """
    if not Memory.on:
        return _execute(argv, timeout)
    result = _execute([sys.executable, "-S", "-c", SPAWNER, *argv], timeout)
    head, mark, tail = result.err.rpartition("\npeak-rss-kib ")
    if mark and tail.strip().isdigit():
        result.err = head
        result.maxrss_kib = int(tail)
    return result


def _execute(argv: list[str], timeout: float) -> Result:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        holder: list[int] = []

        def overdue() -> None:
            if holder:
                try:
                    os.kill(holder[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass

        timer = threading.Timer(timeout, overdue)
        timer.start()
        try:
            start = time.perf_counter()
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=ENV
            )
            holder.append(proc.pid)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Result(
            seconds,
            usage.ru_maxrss,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def allowed_syscalls() -> list[str]:
    """Every system call libseccomp knows for this machine, but DENIED_SYSCALLS."""
    import pyseccomp

    names = set()
    for number in range(1024):
        try:
            name = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, number)
        except ValueError:
            continue
        names.add(name.decode())
    return sorted(names - DENIED_SYSCALLS)


def checked(argv: list[str], what: str) -> Result:
    """execute(), and fail the benchmark if the command failed."""
    result = execute(argv)
    if result.code != 0:
        raise BenchError(
            f"{what}: `{' '.join(argv)}` exited {result.code}: {result.err.strip()}"
        )
    return result


def wait_pid(pid: int, timeout: float = 30.0) -> float:
    """Reap one container init (we are its subreaper); return the time taken."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return time.perf_counter() - start  # not ours, or already reaped
        if done:
            return time.perf_counter() - start
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise BenchError(f"container init {pid} did not exit in {timeout}s")
        time.sleep(0.0005)


def reap_all() -> None:
    """Reap every exited child (only when no command is running)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


# ------------------------------------------------------------------ runtimes


class Runtime:
    """One runtime under test: its command, its state roots, its ids."""

    def __init__(self, name: str, command: list[str], workdir: Path) -> None:
        self.name = name
        self.command = command
        self.workdir = workdir / name
        self.roots: list[Path] = []
        self.counter = 0
        self.prefix = f"bench{os.getpid()}{name[0]}"
        self.init_pids: list[int] = []

    def root(self, label: str) -> Path:
        """A state root of its own for one benchmark."""
        path = self.workdir / f"root-{label}"
        self.roots.append(path)
        return path

    def new_id(self, label: str) -> str:
        self.counter += 1
        return f"{self.prefix}-{label}-{self.counter}"

    def argv(self, root: Path, *args: str) -> list[str]:
        return [*self.command, "--root", str(root), *args]

    def create(self, root: Path, bundle: Path, cid: str) -> tuple[Result, int]:
        """create with a pid file; return the result and init's pid."""
        pid_file = self.workdir / f"{cid}.pid"
        result = checked(
            self.argv(
                root,
                "create",
                "--bundle",
                str(bundle),
                "--pid-file",
                str(pid_file),
                cid,
            ),
            f"{self.name} create",
        )
        pid = int(pid_file.read_text())
        pid_file.unlink()
        self.init_pids.append(pid)
        return result, pid


# ---------------------------------------------------------------- benchmarks


class Recorder:
    """Samples per (row, runtime), and peak RSS per (command, runtime).

    While ``warm`` is set (warm-up and memory rounds) no time is kept, only
    the rows' order; peak RSS is kept in the memory round only.
    """

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], list[float]] = {}
        self.rss: dict[tuple[str, str], int] = {}
        self.order: list[str] = []
        self.unavailable: dict[tuple[str, str], str] = {}
        self.warm = False

    def add(self, row: str, runtime: str, seconds: float) -> None:
        if row not in self.order:
            self.order.append(row)
        if not self.warm:
            self.samples.setdefault((row, runtime), []).append(seconds)

    def mark_unavailable(self, row: str, runtime: str, why: str) -> None:
        if row not in self.order:
            self.order.append(row)
        self.unavailable[(row, runtime)] = why

    def memory(self, command: str, runtime: str, result: Result) -> None:
        if not Memory.on:
            return
        key = (command, runtime)
        self.rss[key] = max(self.rss.get(key, 0), result.maxrss_kib)

    def median_ms(self, row: str, runtime: str) -> float | None:
        values = self.samples.get((row, runtime))
        return statistics.median(values) * 1000 if values else None


class Bench:
    """The benchmarks; each ``bench_*`` method runs one round for one runtime."""

    def __init__(self, opts: argparse.Namespace, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.rec = Recorder()
        self.runtimes = [
            Runtime("pyruntime", opts.pyruntime.split(), workdir),
        ]
        if opts.runc != "none":
            self.runtimes.append(Runtime("runc", opts.runc.split(), workdir))
        for rt in self.runtimes:
            rt.workdir.mkdir(parents=True)
        self.rootfs = workdir / "rootfs"
        self.true_bundle = workdir / "bundle-true"
        self.seccomp_bundle = workdir / "bundle-seccomp"
        self.sleep_bundle = workdir / "bundle-sleep"
        self.fixtures: dict[tuple[str, str], object] = {}
        self.exec_failed: dict[str, str] = {}

    # ---------------------------------------------------------------- setup

    def make_bundles(self) -> None:
        """Two bundles on one read-only copy of the busybox rootfs.

        The config is the one ``spec`` writes (the same as ``runc spec``),
        without a terminal, running /bin/true or a long sleep.
        """
        shutil.copytree(self.opts.rootfs, self.rootfs, symlinks=True)
        for bundle, args in (
            (self.true_bundle, ["/bin/true"]),
            (self.sleep_bundle, ["/bin/sleep", "100000"]),
        ):
            bundle.mkdir()
            checked(
                [*self.runtimes[0].command, "spec", "--bundle", str(bundle)],
                "pyruntime spec",
            )
            path = bundle / "config.json"
            config = json.loads(path.read_text())
            config["process"]["terminal"] = False
            config["process"]["args"] = args
            config["root"] = {"path": str(self.rootfs), "readonly": True}
            config["hostname"] = "bench"
            path.write_text(json.dumps(config, indent=2))
        if "seccomp" in self.opts.only:
            self.make_seccomp_bundle()

    def make_seccomp_bundle(self) -> None:
        """The /bin/true bundle with an allow-list seccomp profile."""
        shutil.copytree(self.true_bundle, self.seccomp_bundle)
        path = self.seccomp_bundle / "config.json"
        config = json.loads(path.read_text())
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allowed_syscalls(), "action": "SCMP_ACT_ALLOW"}],
        }
        path.write_text(json.dumps(config, indent=2))

    # ----------------------------------------------------------- one round

    def bench_floor(self, _rt: Runtime | None) -> None:
        result = checked([sys.executable, "-c", "pass"], FLOOR)
        self.rec.add(FLOOR, "python", result.seconds)
        self.rec.memory(FLOOR, "pyruntime", result)
        if Memory.on:
            # What the spawner itself weighs: no smaller peak can be seen.
            tiny = checked(["/bin/true"], "/bin/true")
            for name in ("pyruntime", "runc"):
                self.rec.memory("/bin/true (measurement floor)", name, tiny)

    def bench_run(self, rt: Runtime) -> None:
        root = self.fixture_root(rt, "main")
        cid = rt.new_id("run")
        result = checked(
            rt.argv(root, "run", "--bundle", str(self.true_bundle), cid),
            f"{rt.name} run",
        )
        self.rec.add("run /bin/true", rt.name, result.seconds)
        self.rec.memory("run", rt.name, result)

    def bench_seccomp(self, rt: Runtime) -> None:
        root = self.fixture_root(rt, "main")
        cid = rt.new_id("run")
        result = checked(
            rt.argv(root, "run", "--bundle", str(self.seccomp_bundle), cid),
            f"{rt.name} run (seccomp)",
        )
        self.rec.add(SECCOMP_ROW, rt.name, result.seconds)
        self.rec.memory("run (seccomp)", rt.name, result)

    def bench_cycle(self, rt: Runtime) -> None:
        root = self.fixture_root(rt, "main")
        cid = rt.new_id("cycle")
        created, pid = rt.create(root, self.true_bundle, cid)
        started = checked(rt.argv(root, "start", cid), f"{rt.name} start")
        waited = wait_pid(pid)
        deleted = checked(rt.argv(root, "delete", cid), f"{rt.name} delete")
        total = created.seconds + started.seconds + waited + deleted.seconds
        self.rec.add("create-start-wait-delete cycle", rt.name, total)
        for name, result in (
            ("create", created),
            ("start", started),
            ("delete", deleted),
        ):
            self.rec.add(name, rt.name, result.seconds)
            self.rec.memory(name, rt.name, result)

    def bench_state(self, rt: Runtime) -> None:
        root, cid = self.created_container(rt)
        result = checked(rt.argv(root, "state", cid), f"{rt.name} state")
        if json.loads(result.out)["status"] != "created":
            raise BenchError(f"{rt.name} state: unexpected output {result.out!r}")
        self.rec.add("state", rt.name, result.seconds)
        self.rec.memory("state", rt.name, result)
        if Memory.on:
            # Not a command, but what a created container costs until start.
            pid = json.loads(result.out)["pid"]
            self.rec.rss[("init, created (VmHWM)", rt.name)] = high_water_kib(pid)

    def bench_list_one(self, rt: Runtime) -> None:
        root, _ = self.created_container(rt)
        result = checked(rt.argv(root, "list"), f"{rt.name} list")
        if len(result.out.splitlines()) != 2:
            raise BenchError(f"{rt.name} list: expected 1 container: {result.out!r}")
        self.rec.add("list (1 container)", rt.name, result.seconds)
        self.rec.memory("list", rt.name, result)

    def bench_list_many(self, rt: Runtime) -> None:
        count = self.opts.list_count
        root = self.many_containers(rt, count)
        result = checked(rt.argv(root, "list"), f"{rt.name} list")
        if len(result.out.splitlines()) != count + 1:
            raise BenchError(f"{rt.name} list: expected {count} containers")
        self.rec.add(f"list ({count} containers)", rt.name, result.seconds)
        self.rec.memory(f"list ({count})", rt.name, result)

    def bench_exec(self, rt: Runtime) -> None:
        row = "exec /bin/true"
        if rt.name in self.exec_failed:
            return
        root, cid = self.running_container(rt)
        result = execute(rt.argv(root, "exec", cid, "/bin/true"))
        if result.code != 0:
            lines = result.err.strip().splitlines()
            self.exec_failed[rt.name] = lines[-1] if lines else f"exit {result.code}"
            self.rec.mark_unavailable(row, rt.name, "not available")
            return
        self.rec.add(row, rt.name, result.seconds)
        self.rec.memory("exec", rt.name, result)

    def bench_kill_delete(self, rt: Runtime) -> None:
        root = self.fixture_root(rt, "main")
        cid = rt.new_id("kill")
        _, pid = rt.create(root, self.sleep_bundle, cid)
        checked(rt.argv(root, "start", cid), f"{rt.name} start")
        killed = checked(rt.argv(root, "kill", cid, "KILL"), f"{rt.name} kill")
        wait_pid(pid)
        deleted = checked(rt.argv(root, "delete", cid), f"{rt.name} delete")
        self.rec.add("kill", rt.name, killed.seconds)
        self.rec.add("delete (after kill)", rt.name, deleted.seconds)
        self.rec.add("kill + delete", rt.name, killed.seconds + deleted.seconds)
        self.rec.memory("kill", rt.name, killed)
        self.rec.memory("delete", rt.name, deleted)

    def bench_check(self, rt: Runtime) -> None:
        """``check`` and ``explain`` of a valid bundle, then ``state`` to compare."""
        if rt.name != "pyruntime":
            for row in CHECK_ROWS:
                self.rec.mark_unavailable(row, rt.name, "no such command")
            return
        root = self.fixture_root(rt, "main")
        for row, command in zip(CHECK_ROWS, ("check", "explain"), strict=True):
            argv = rt.argv(root, command, str(self.true_bundle))
            result = checked(argv, f"{rt.name} {command}")
            self.rec.add(row, rt.name, result.seconds)
            self.rec.memory(command, rt.name, result)
        self.bench_state(rt)

    def bench_parallel(self, rt: Runtime) -> None:
        count, workers = self.opts.parallel, 2 * (os.cpu_count() or 1)
        root = self.fixture_root(rt, "parallel")
        ids = [rt.new_id("par") for _ in range(count)]

        def bring_up(cid: str) -> int:
            _, pid = rt.create(root, self.true_bundle, cid)
            checked(rt.argv(root, "start", cid), f"{rt.name} start")
            wait_pid(pid)
            return pid

        def remove(cid: str) -> None:
            checked(rt.argv(root, "delete", cid), f"{rt.name} delete")

        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(bring_up, ids))
        up = time.perf_counter() - start
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(remove, ids))
        down = time.perf_counter() - start
        left = os.listdir(root) if root.exists() else []
        if left:
            raise BenchError(f"{rt.name} parallel: left in the state root: {left[:5]}")
        self.rec.add(f"parallel: {count} create+start", rt.name, up)
        self.rec.add(f"parallel: {count} delete", rt.name, down)

    # ------------------------------------------------------------- fixtures

    def fixture_root(self, rt: Runtime, label: str) -> Path:
        key = ("root-" + label, rt.name)
        if key not in self.fixtures:
            self.fixtures[key] = rt.root(label)
        return self.fixtures[key]

    def created_container(self, rt: Runtime) -> tuple[Path, str]:
        """One created container (init waiting on exec.fifo), alone in its root."""
        key = ("created", rt.name)
        if key not in self.fixtures:
            root = self.fixture_root(rt, "one")
            cid = rt.new_id("created")
            rt.create(root, self.true_bundle, cid)
            self.fixtures[key] = (root, cid)
        return self.fixtures[key]

    def running_container(self, rt: Runtime) -> tuple[Path, str]:
        """One running container (a long sleep), alone in its root."""
        key = ("running", rt.name)
        if key not in self.fixtures:
            root = self.fixture_root(rt, "exec")
            cid = rt.new_id("running")
            rt.create(root, self.sleep_bundle, cid)
            checked(rt.argv(root, "start", cid), f"{rt.name} start")
            self.fixtures[key] = (root, cid)
        return self.fixtures[key]

    def many_containers(self, rt: Runtime, count: int) -> Path:
        """``count`` stopped containers: one real one and renamed copies of it.

        The copies share the real one's cgroup paths and dead pid; they are
        removed as plain directories, never through the runtime (whose
        ``delete`` would remove the real one's cgroup).
        """
        key = ("many", rt.name)
        if key in self.fixtures:
            return self.fixtures[key]
        root = self.fixture_root(rt, "many")
        cid = rt.new_id("stopped")
        _, pid = rt.create(root, self.true_bundle, cid)
        checked(rt.argv(root, "start", cid), f"{rt.name} start")
        wait_pid(pid)
        template = root / cid
        state = json.loads((template / "state.json").read_text())
        for n in range(1, count):
            copy_id = f"{cid}-copy{n}"
            target = root / copy_id
            shutil.copytree(template, target)
            state["id"] = copy_id
            (target / "state.json").write_text(json.dumps(state))
        self.fixtures[key] = root
        return root

    # ---------------------------------------------------------------- rounds

    def rounds(self, name: str, func, warmup: int, reps: int, floor=True) -> None:
        """Warm-up rounds, measured ones, then one for memory (with the floor).

        The runtimes' order alternates from round to round. The floor runs
        in every round too, so that it is measured under the same load as
        the commands it is compared with.
        """
        print(f"  {name}: ", end="", flush=True)
        contenders = [*self.runtimes, None] if floor else list(self.runtimes)
        memory = floor and self.opts.memory
        for n in range(warmup + reps + (1 if memory else 0)):
            self.rec.warm = n < warmup or n >= warmup + reps
            Memory.on = n >= warmup + reps
            order = contenders if n % 2 == 0 else list(reversed(contenders))
            try:
                for rt in order:
                    if rt is None:
                        self.bench_floor(None)
                    else:
                        func(rt)
                    reap_all()
            finally:
                self.rec.warm = Memory.on = False
            print("w" if n < warmup else "m" if n >= warmup + reps else ".", end="")
            sys.stdout.flush()
        print()

    def run_all(self) -> None:
        opts = self.opts
        self.make_bundles()
        steps = [
            ("run", "run", self.bench_run),
            ("seccomp", "run with seccomp", self.bench_seccomp),
            ("cycle", "cycle", self.bench_cycle),
            ("state", "state", self.bench_state),
            ("list", "list, 1 container", self.bench_list_one),
            ("list", f"list, {opts.list_count} containers", self.bench_list_many),
            ("exec", "exec", self.bench_exec),
            ("kill", "kill + delete", self.bench_kill_delete),
            ("check", "check and explain", self.bench_check),
        ]
        for key, name, func in steps:
            if key in opts.only:
                self.rounds(name, func, opts.warmup, opts.reps)
        if "parallel" in opts.only:
            self.rounds(
                f"{opts.parallel} in parallel",
                self.bench_parallel,
                0,
                opts.parallel_reps,
                floor=False,
            )

    # --------------------------------------------------------------- cleanup

    def cleanup(self) -> list[str]:
        """Delete everything made; return what had to be removed by force."""
        reap_all()
        leftovers: list[str] = []
        for rt in self.runtimes:
            for root in dict.fromkeys(rt.roots):
                if not root.exists():
                    continue
                for cid in sorted(os.listdir(root)):
                    if "-copy" in cid:
                        shutil.rmtree(root / cid, ignore_errors=True)
                        continue
                    expected = ("created", "running", "stopped")
                    if not any(f"-{kind}-" in cid for kind in expected):
                        leftovers.append(f"{rt.name}: container {cid}")
                    execute(rt.argv(root, "delete", "--force", cid))
            for pid in rt.init_pids:
                if _alive(pid):
                    leftovers.append(f"{rt.name}: process {pid}")
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        reap_all()
        for directory in find_cgroups([rt.prefix for rt in self.runtimes]):
            leftovers.append(f"cgroup {directory}")
            remove_cgroup(directory)
        for rt in self.runtimes:
            for root in rt.roots:
                if root.exists() and os.listdir(root):
                    leftovers.append(f"{rt.name}: state in {root}: {os.listdir(root)}")
        return leftovers


def high_water_kib(pid: int) -> int:
    """VmHWM of a live process (0 if unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def find_cgroups(prefixes: list[str]) -> list[str]:
    """Cgroup directories named after our container ids, on every hierarchy."""
    found = []
    base = "/sys/fs/cgroup"
    for top, dirs, _files in os.walk(base):
        depth = top[len(base) :].count("/")
        for name in list(dirs):
            if any(name.startswith(prefix) for prefix in prefixes):
                found.append(os.path.join(top, name))
                dirs.remove(name)
        if depth >= 3:
            dirs.clear()
    return found


def remove_cgroup(directory: str) -> None:
    """Kill what a leftover cgroup holds and remove it, deepest first."""
    for top, _dirs, _files in os.walk(directory, topdown=False):
        try:
            with open(os.path.join(top, "cgroup.procs")) as procs:
                for line in procs:
                    try:
                        os.kill(int(line), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
        except OSError:
            pass
        for _ in range(50):
            try:
                os.rmdir(top)
                break
            except FileNotFoundError:
                break
            except OSError:
                reap_all()
                time.sleep(0.02)


# -------------------------------------------------------------------- report


def machine() -> dict:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    runc = subprocess.run(["runc", "--version"], capture_output=True, text=True)
    fs = subprocess.run(
        ["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / MIB / MIB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "runc": (runc.stdout.splitlines() or ["?"])[0] if runc.returncode == 0 else "-",
        "cgroup": "v2" if fs == "cgroup2fs" else "v1 or hybrid",
        "load_after": os.getloadavg(),
    }


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def report(bench: Bench, opts: argparse.Namespace) -> tuple[str, dict]:
    """The markdown table and the raw numbers."""
    rec = bench.rec
    floor = rec.median_ms(FLOOR, "python")
    has_runc = len(bench.runtimes) > 1
    lines = [
        "| benchmark | pyruntime ms | runc ms | pyruntime/runc | pyruntime/floor |",
        "|---|---:|---:|---:|---:|",
        f"| `{FLOOR}` (floor) | {fmt_ms(floor)} | | | 1.00x |",
    ]
    raw: dict = {"floor_ms": floor, "rows": {}, "rss_mib": {}}
    for row in rec.order:
        if row == FLOOR:
            continue
        py = rec.median_ms(row, "pyruntime")
        rc = rec.median_ms(row, "runc") if has_runc else None
        ratio = py / rc if py is not None and rc else None
        compared = row in FLOOR_ROWS or row in CHECK_ROWS
        to_floor = py / floor if py is not None and floor and compared else None
        py_text = rec.unavailable.get((row, "pyruntime"), fmt_ms(py))
        rc_text = rec.unavailable.get((row, "runc"), fmt_ms(rc))
        lines.append(
            f"| {row} | {py_text} | {rc_text} | {fmt_ratio(ratio)} "
            f"| {fmt_ratio(to_floor)} |"
        )
        raw["rows"][row] = {
            "pyruntime_ms": py,
            "runc_ms": rc,
            "samples": {
                name: rec.samples.get((row, name), []) for name in ("pyruntime", "runc")
            },
            "unavailable": {
                name: rec.unavailable.get((row, name))
                for name in ("pyruntime", "runc")
                if (row, name) in rec.unavailable
            },
        }
    lines += ["", "| peak RSS (MiB) | pyruntime | runc |", "|---|---:|---:|"]
    commands = sorted({command for command, _ in rec.rss})
    for command in commands:
        py = rec.rss.get((command, "pyruntime"))
        rc = rec.rss.get((command, "runc"))
        lines.append(
            f"| {command} | {fmt_ms(py / MIB if py else None)} "
            f"| {fmt_ms(rc / MIB if rc else None)} |"
        )
        raw["rss_mib"][command] = {
            "pyruntime": py / MIB if py else None,
            "runc": rc / MIB if rc else None,
        }
    for name, why in bench.exec_failed.items():
        lines.append("")
        lines.append(f"exec is not available in {name}: {why}")
    return "\n".join(lines) + "\n", raw


def targets(raw: dict) -> list[str]:
    """Issue 6's targets, met or not, for the record (never a failure)."""
    out = []
    for row, data in raw["rows"].items():
        py, rc = data["pyruntime_ms"], data["runc_ms"]
        if py is None:
            continue
        if row in FLOOR_ROWS and raw["floor_ms"]:
            ratio = py / raw["floor_ms"]
            verdict = "met" if ratio <= FLOOR_TARGET else "not met"
            out.append(
                f"{row}: {ratio:.2f}x the floor (target {FLOOR_TARGET}x): {verdict}"
            )
        state = raw["rows"].get("state", {}).get("pyruntime_ms")
        if row in CHECK_ROWS and state:
            ratio = py / state
            verdict = "met" if ratio <= CHECK_TARGET else "not met"
            out.append(f"{row}: {ratio:.2f}x state (target {CHECK_TARGET}x): {verdict}")
        if rc and any(row.startswith(t) for t in RUNC_TARGET_ROWS):
            ratio = py / rc
            verdict = "met" if ratio <= 1.0 else "not met"
            out.append(f"{row}: {ratio:.2f}x runc (target 1.0x): {verdict}")
    peak = max((v["pyruntime"] or 0 for v in raw["rss_mib"].values()), default=0)
    verdict = "met" if peak <= RSS_TARGET_MIB else "not met"
    out.append(
        f"peak RSS of any pyruntime command: {peak:.1f} MiB "
        f"(target {RSS_TARGET_MIB:.0f} MiB): {verdict}"
    )
    return out


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a quick run: CI's")
    parser.add_argument("--reps", type=int, default=None, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up rounds")
    parser.add_argument("--list-count", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=None, help="containers")
    parser.add_argument("--parallel-reps", type=int, default=None)
    parser.add_argument(
        "--pyruntime",
        default=str(Path(sys.executable).with_name("pyruntime")),
        help="the pyruntime command (default: the venv's entry point)",
    )
    parser.add_argument("--runc", default="runc", help="the runc command, or none")
    parser.add_argument(
        "--rootfs", default=str(REPO / ".build" / "rootfs"), help="busybox rootfs"
    )
    parser.add_argument("--out", default=None, help="write the table and JSON here")
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip the peak-RSS round",
    )
    opts = parser.parse_args(argv)
    defaults = (
        {"reps": 1, "warmup": 1, "list_count": 20, "parallel": 8, "parallel_reps": 1}
        if opts.smoke
        else {
            "reps": 15,
            "warmup": 2,
            "list_count": 1000,
            "parallel": 200,
            "parallel_reps": 3,
        }
    )
    for key, value in defaults.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    opts.only = set(opts.only.split(","))
    unknown = opts.only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    return opts


def interrupted(_sig, _frame) -> None:
    """SIGTERM (a CI time-out, say) cleans up as Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench: run as root (containers need it)", file=sys.stderr)
        return 2
    if not (Path(opts.rootfs) / "bin" / "busybox").exists():
        print(
            f"bench: no busybox rootfs at {opts.rootfs} (make rootfs)", file=sys.stderr
        )
        return 2
    if opts.runc != "none" and shutil.which(opts.runc.split()[0]) is None:
        print(f"bench: {opts.runc} not found: pyruntime alone", file=sys.stderr)
        opts.runc = "none"
    become_subreaper()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="pyruntime-bench-"))
    # Compiled seccomp programs of this run stay in it (and go with it).
    ENV["PYRUNTIME_CACHE_DIR"] = str(workdir / "cache")
    bench = Bench(opts, workdir)
    failure = None
    signal.signal(signal.SIGTERM, interrupted)
    print(f"bench: {'smoke run' if opts.smoke else 'full run'} in {workdir}")
    try:
        bench.run_all()
    except (BenchError, OSError, KeyboardInterrupt) as err:
        failure = str(err) or type(err).__name__
    finally:
        leftovers = bench.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    table, raw = report(bench, opts)
    raw["machine"] = info = machine()
    info["load_before"] = load_before
    table += (
        f"\n{info['cpu']}, {info['cpus']} CPUs, {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, cgroup {info['cgroup']}, Python {info['python']}, "
        f"{info['runc']}; load average {load_before[0]:.2f} before, "
        f"{info['load_after'][0]:.2f} after; {opts.reps} rounds after "
        f"{opts.warmup} warm-up, medians.\n"
    )
    raw["options"] = {
        k: sorted(v) if isinstance(v, set) else v for k, v in vars(opts).items()
    }
    print()
    print(table)
    for line in targets(raw):
        print(line)
    if opts.out:
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (out / f"{stamp}.json").write_text(json.dumps(raw, indent=2) + "\n")
        (out / "latest.md").write_text(table)
        (out / "latest.json").write_text(json.dumps(raw, indent=2) + "\n")
        print(f"\nbench: results in {out}/latest.md and {out}/{stamp}.json")
    if leftovers:
        print("bench: left behind (now removed):", file=sys.stderr)
        for item in leftovers:
            print(f"  {item}", file=sys.stderr)
    if failure is not None:
        print(f"bench: FAILED: {failure}", file=sys.stderr)
    return 1 if failure is not None or leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
