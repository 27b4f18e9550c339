"""``check --run``: run the bundle once and verify, from the inside, what it got.

The real command line does the work, as an engine would drive it:
``python -m pyruntime`` with a private temporary ``--root``, ``create``, then
``start``, with a time limit on everything. Between the two, init has done
all of its set-up except loading a seccomp filter meant for the last moment,
and waits: its ``/proc/<pid>`` then shows what the program will start with,
and each limit and protection the config asks for is compared with it:
user and groups, capabilities, no_new_privs, namespaces, id maps, rlimits,
oom_score_adj, cgroup limits read back from the container's own cgroup, a
read-only root, masked and read-only paths. After ``start``, the seccomp mode
is read if the program is still there to be read.

This process is a child subreaper meanwhile, so init comes back to it when
``create`` exits and its exit status can be collected. Whatever happens, the
container is deleted (``delete --force``), the temporary root is removed,
and the subreaper flag is cleared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from pyruntime.check import plans
from pyruntime.check.context import Context, dig
from pyruntime.check.findings import ERROR
from pyruntime.check.rootview import host_id

PR_SET_CHILD_SUBREAPER = 36
VERIFIED, DIFFERS, NOT_SEEN = "verified", "differs", "not seen"
#: /proc/<pid>/limits names of the rlimits.
LIMIT_NAMES = {
    "RLIMIT_CPU": "Max cpu time",
    "RLIMIT_FSIZE": "Max file size",
    "RLIMIT_DATA": "Max data size",
    "RLIMIT_STACK": "Max stack size",
    "RLIMIT_CORE": "Max core file size",
    "RLIMIT_RSS": "Max resident set",
    "RLIMIT_NPROC": "Max processes",
    "RLIMIT_NOFILE": "Max open files",
    "RLIMIT_MEMLOCK": "Max locked memory",
    "RLIMIT_AS": "Max address space",
    "RLIMIT_LOCKS": "Max file locks",
    "RLIMIT_SIGPENDING": "Max pending signals",
    "RLIMIT_MSGQUEUE": "Max msgqueue size",
    "RLIMIT_NICE": "Max nice priority",
    "RLIMIT_RTPRIO": "Max realtime priority",
    "RLIMIT_RTTIME": "Max realtime timeout",
}
#: cgroup files whose value reads back as it was written (modulo units).
READ_BACK_FILES = {
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.swappiness",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "cpu.shares",
    "cpu.weight",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.max",
    "cpu.idle",
    "pids.max",
    "cpuset.cpus",
    "cpuset.mems",
}
UNLIMITED = {"max", "-1", "unlimited", str(2**64 - 1), "9223372036854771712"}
OUTPUT_LIMIT = 65536


def smoke_test(ctx: Context, timeout: float) -> None:
    """Run the bundle and put the results in ``ctx.report.run``."""
    run = {
        "ok": False,
        "timeout": timeout,
        "outcome": "",
        "exit_status": None,
        "verified": [],
    }
    ctx.report.run = run
    reason = reason_not_to_run(ctx)
    if reason:
        # Not running is no failure of its own: errors already fail the check.
        run.update(ok=not ctx.report.count(ERROR), outcome=reason)
        return
    Smoke(ctx, run, timeout).run()


def reason_not_to_run(ctx: Context) -> str | None:
    """Why the smoke test cannot run this bundle, or None."""
    if ctx.report.count(ERROR):
        return "not run: the check found errors"
    if ctx.config_name != "config.json":
        return "not run: create reads config.json, not " + ctx.config_name
    if dig(ctx.process, "terminal"):
        return "not run: process.terminal is true, and --run has no console"
    return None


class Smoke:
    """One smoke run: a private root, one container id, a deadline."""

    def __init__(self, ctx: Context, run: dict, timeout: float) -> None:
        self.ctx = ctx
        self.run_info = run
        self.deadline = time.monotonic() + timeout
        self.tmp = tempfile.mkdtemp(prefix="pyruntime-check-")
        self.root = os.path.join(self.tmp, "state")
        self.log = os.path.join(self.tmp, "log.json")
        self.id = f"check-{uuid.uuid4().hex[:12]}"
        self.pid = 0

    # ------------------------------------------------------------- plumbing

    def command(self, *args: str) -> list[str]:
        """The runtime's command line with the private root and log."""
        flags = ["--systemd-cgroup"] if self.ctx.systemd_cgroup else []
        return [
            sys.executable,
            "-m",
            "pyruntime",
            "--root",
            self.root,
            "--log",
            self.log,
            "--log-format",
            "json",
            *flags,
            *args,
        ]

    def remaining(self) -> float:
        """Seconds left before the deadline (at least a little)."""
        return max(0.5, self.deadline - time.monotonic())

    def call(self, *args: str, stdio=None) -> subprocess.CompletedProcess:
        """Run one runtime command, within the deadline."""
        out = stdio or subprocess.PIPE
        return subprocess.run(
            self.command(*args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out if stdio else subprocess.PIPE,
            timeout=self.remaining(),
            text=True,
            check=False,
        )

    def last_error(self) -> str:
        """The last error line the runtime logged."""
        try:
            with open(self.log, encoding="utf-8") as handle:
                lines = [json.loads(line) for line in handle if line.strip()]
        except (OSError, ValueError):
            return "no message"
        errors = [line.get("msg", "") for line in lines if line.get("level") == "error"]
        return errors[-1] if errors else "no message"

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        """create, inspect, start, wait; always delete and clean up."""
        began = time.monotonic()
        self.run_info["id"] = self.id
        set_subreaper(True)
        try:
            self.create_and_start()
        except subprocess.TimeoutExpired as err:
            self.finish(False, f"{err.cmd[-2]} did not finish within the time limit")
        finally:
            self.clean_up()
            set_subreaper(False)
            self.run_info["duration"] = round(time.monotonic() - began, 3)

    def create_and_start(self) -> None:
        """The container's life, from create to its exit."""
        out_path = os.path.join(self.tmp, "output")
        with open(out_path, "w+", encoding="utf-8", errors="replace") as output:
            created = self.call(
                "create", "--bundle", self.ctx.bundle, self.id, stdio=output
            )
            if created.returncode != 0:
                self.finish(False, f"create failed: {self.last_error()}")
                return
            self.pid = int(json.loads(self.call("state", self.id).stdout)["pid"])
            self.verify_created()
            started = self.call("start", self.id)
            if started.returncode != 0:
                self.finish(False, f"start failed: {self.last_error()}")
                return
            self.verify_started()
            self.wait_for_exit()
            output.seek(0)
            self.keep_output(output.read())

    def wait_for_exit(self) -> None:
        """Collect the program's exit status, or stop it at the deadline."""
        status = reap(self.pid, self.deadline)
        if status is None:
            self.call("kill", self.id, "KILL")
            reap(self.pid, time.monotonic() + 5)
            self.finish(
                True,
                f"still running after {self.run_info['timeout']:g} s "
                "(stopped): it started and stayed up",
            )
            return
        self.run_info["exit_status"] = status
        self.finish(status == 0, f"created, started, exited with status {status}")

    def finish(self, ok: bool, outcome: str) -> None:
        """Record how the run ended; a failed verification fails it too."""
        differs = any(v["status"] == DIFFERS for v in self.run_info["verified"])
        self.run_info["ok"] = ok and not differs
        self.run_info["outcome"] = outcome

    def keep_output(self, text: str) -> None:
        """The container's output (truncated), and its tail when it failed."""
        self.run_info["output"] = text[-OUTPUT_LIMIT:]
        if not self.run_info["ok"]:
            self.run_info["output_tail"] = text.splitlines()[-10:]

    def clean_up(self) -> None:
        """delete --force, then the temporary root; say if anything stayed."""
        try:
            deleted = subprocess.run(
                self.command("delete", "--force", self.id),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                check=False,
            )
            if deleted.returncode != 0:
                self.run_info["ok"] = False
                self.run_info["outcome"] += f"; delete failed: {self.last_error()}"
        except subprocess.TimeoutExpired:
            self.run_info["ok"] = False
            self.run_info["outcome"] += "; delete did not finish"
        reap_orphans()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -------------------------------------------------------------- verify

    def verified(self, what: str, expected, seen, detail: str = "") -> None:
        """Record one comparison of what the config asks with what is there."""
        if seen is None:
            status, text = NOT_SEEN, detail or "could not be read"
        elif expected == seen:
            status, text = VERIFIED, detail or str(seen)
        else:
            status, text = DIFFERS, f"expected {expected}, found {seen}"
        self.run_info["verified"].append(
            {"what": what, "status": status, "detail": text}
        )

    def verify_created(self) -> None:
        """Everything init has set up by the time it waits for start."""
        status = read_status(self.pid)
        self.verify_user(status)
        self.verify_capabilities(status)
        self.verify_no_new_privs(status)
        self.verify_namespaces()
        self.verify_id_maps()
        self.verify_rlimits()
        self.verify_oom_score_adj()
        self.verify_cgroup_limits()
        self.verify_mounts()

    def verify_started(self) -> None:
        """What only the running program shows: the seccomp mode."""
        if dig(self.ctx.linux, "seccomp") is None:
            return
        time.sleep(0.02)
        status = read_status(self.pid)
        seen = status.get("Seccomp")
        detail = "the program ended before it could be read" if seen is None else ""
        self.verified(
            "seccomp", "2 (filter)", f"{seen} (filter)" if seen == "2" else seen, detail
        )

    def verify_user(self, status: dict) -> None:
        user = dig(self.ctx.process, "user")
        uid, gid = (user.uid, user.gid) if user else (0, 0)
        if self.ctx.has_namespace("user"):
            uid = host_id(uid, self.ctx.linux.uid_mappings)
            gid = host_id(gid, self.ctx.linux.gid_mappings)
        seen = status.get("Uid", "").split()[:1] + status.get("Gid", "").split()[:1]
        expected = f"host uid {uid}, gid {gid}"
        self.verified(
            "user",
            expected,
            f"host uid {seen[0]}, gid {seen[1]}" if len(seen) == 2 else None,
        )

    def verify_capabilities(self, status: dict) -> None:
        """The five sets, exactly as planned (before execve changes them)."""
        from pyruntime.security.capabilities import set_to_mask

        plan = self.ctx.capabilities
        if plan is None:
            return
        sets = (
            ("CapBnd", plan.bounding),
            ("CapEff", plan.effective),
            ("CapPrm", plan.permitted),
            ("CapInh", plan.inheritable),
            ("CapAmb", plan.ambient),
        )
        expected = ", ".join(f"{key} {set_to_mask(n):x}" for key, n in sets)
        values = [status.get(key) for key, _ in sets]
        seen = None
        if None not in values:
            seen = ", ".join(
                f"{key} {int(v, 16):x}"
                for (key, _), v in zip(sets, values, strict=True)
            )
        self.verified("capabilities", expected, seen)

    def verify_no_new_privs(self, status: dict) -> None:
        expected = "1" if dig(self.ctx.process, "no_new_privileges") else "0"
        self.verified("no_new_privs", expected, status.get("NoNewPrivs"))

    def verify_namespaces(self) -> None:
        """New, joined or the host's: each kind as the config says."""
        from pyruntime.namespaces import NAMESPACES

        wanted = {ns.type: ns.path for ns in self.ctx.namespaces()}
        expected, seen = [], []
        for kind, (_, name) in NAMESPACES.items():
            mine, theirs = ns_inode("self", name), ns_inode(self.pid, name)
            if mine is None or theirs is None:
                continue
            expected.append(f"{kind} {namespace_wanted(wanted, kind)}")
            if wanted.get(kind):
                same = theirs == path_inode(wanted[kind])
                seen.append(f"{kind} {'joined' if same else 'not the one joined'}")
            else:
                seen.append(f"{kind} {'host' if mine == theirs else 'new'}")
        self.verified("namespaces", ", ".join(expected), ", ".join(seen))

    def verify_id_maps(self) -> None:
        from pyruntime.namespaces import format_id_map

        if not self.ctx.new_namespace("user"):
            return
        for name, mappings in (
            ("uid_map", self.ctx.linux.uid_mappings),
            ("gid_map", self.ctx.linux.gid_mappings),
        ):
            seen = read_text(f"/proc/{self.pid}/{name}")
            self.verified(
                name,
                squeeze(format_id_map(mappings or ())),
                squeeze(seen) if seen is not None else None,
            )

    def verify_rlimits(self) -> None:
        limits = read_limits(self.pid)
        for rlimit in dig(self.ctx.process, "rlimits") or ():
            name = LIMIT_NAMES.get(rlimit.type)
            seen = limits.get(name) if limits else None
            self.verified(rlimit.type, f"{rlimit.soft} {rlimit.hard}", seen)

    def verify_oom_score_adj(self) -> None:
        value = dig(self.ctx.process, "oom_score_adj")
        if value is not None:
            seen = read_text(f"/proc/{self.pid}/oom_score_adj")
            self.verified("oom_score_adj", str(value), seen.strip() if seen else None)

    def verify_cgroup_limits(self) -> None:
        from pyruntime.errors import RuntimeError_

        try:
            manager = plans.open_layout(self.ctx.spec, self.id, self.ctx.systemd_cgroup)
            plan = plans.plan_writes(manager, plans.effective_resources(self.ctx.spec))
        except RuntimeError_:
            return
        dirs = process_cgroups(self.pid)
        for write in plan.writes:
            if write.filename not in READ_BACK_FILES:
                continue
            directory = dirs.get(write.hierarchy)
            seen = (
                read_text(os.path.join(directory, write.filename))
                if directory
                else None
            )
            expected, seen = normalise(write.filename, write.value, seen)
            self.verified(f"cgroup {write.filename}", expected, seen)

    def verify_mounts(self) -> None:
        mounts = read_mountinfo(self.pid)
        if mounts is None:
            return
        readonly = bool(dig(self.ctx.spec, "root", "readonly"))
        root_ro = "ro" in mounts.get("/", set())
        self.verified("read-only rootfs", readonly, root_ro, "yes" if root_ro else "no")
        self.verify_paths(
            "maskedPaths", dig(self.ctx.linux, "masked_paths"), mounts, need_ro=False
        )
        self.verify_paths(
            "readonlyPaths", dig(self.ctx.linux, "readonly_paths"), mounts, need_ro=True
        )

    def verify_paths(self, what: str, paths, mounts: dict, need_ro: bool) -> None:
        """Each listed path that exists in the container is covered as asked."""
        if not paths:
            return
        done = absent = 0
        missed = []
        for path in paths:
            if not os.path.lexists(f"/proc/{self.pid}/root{path}"):
                absent += 1
            elif path in mounts and (not need_ro or "ro" in mounts[path]):
                done += 1
            else:
                missed.append(path)
        expected = f"{done + len(missed)} covered"
        detail = f"{done} covered, {absent} absent from the container"
        seen = expected if not missed else f"{', '.join(missed)} not covered"
        self.verified(what, expected, seen, detail)


def namespace_wanted(wanted: dict, kind: str) -> str:
    """``new``, ``joined`` or ``host``: what the config asks for one kind."""
    if kind not in wanted:
        return "host"
    return "joined" if wanted[kind] else "new"


# --- /proc readers ------------------------------------------------------------------


def read_text(path: str) -> str | None:
    """A file's text, or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def read_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as ``{key: value}``."""
    text = read_text(f"/proc/{pid}/status") or ""
    pairs = (line.partition(":") for line in text.splitlines())
    return {key: value.strip() for key, _, value in pairs}


def read_limits(pid: int) -> dict[str, str] | None:
    """``/proc/<pid>/limits`` as ``{name: "soft hard"}`` (numbers)."""
    text = read_text(f"/proc/{pid}/limits")
    if text is None:
        return None
    limits = {}
    for line in text.splitlines()[1:]:
        name, values = line[:26].strip(), line[26:].split()
        if len(values) >= 2:
            soft, hard = (str(2**64 - 1) if v == "unlimited" else v for v in values[:2])
            limits[name] = f"{soft} {hard}"
    return limits


def ns_inode(pid, name: str) -> int | None:
    """The inode of a process's namespace of one kind."""
    return path_inode(f"/proc/{pid}/ns/{name}")


def path_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def squeeze(text: str) -> str:
    """Whitespace runs as one space (id maps are column-aligned)."""
    return " ".join(text.split())


def process_cgroups(pid: int) -> dict[str, str]:
    """``{hierarchy key: host directory}`` of a process's cgroups."""
    mounts = plans.mounted_hierarchies()
    dirs = {}
    for line in (read_text(f"/proc/{pid}/cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        keys = ["unified"] if not controllers else controllers.split(",")
        for key in keys:
            key = key.removeprefix("name=")
            if key in mounts:
                dirs[key] = os.path.join(mounts[key], path.lstrip("/"))
    return dirs


def normalise(filename: str, written: str, seen: str | None) -> tuple[str, str | None]:
    """Written and read values in one spelling (units, "max", page rounding)."""
    if seen is None:
        return written, None
    seen = seen.strip()
    if filename.startswith("cpuset."):
        from pyruntime.check.cgroups import format_list, parse_list

        try:
            return format_list(parse_list(written)), format_list(parse_list(seen))
        except (ValueError, IndexError):
            return written, seen
    if written in UNLIMITED and seen in UNLIMITED:
        return "unlimited", "unlimited"
    if filename in ("memory.limit_in_bytes", "memory.soft_limit_in_bytes"):
        page = os.sysconf("SC_PAGE_SIZE")
        if written.isdigit() and seen.isdigit():
            return str(int(written) // page * page), seen
    return written, seen


def read_mountinfo(pid: int) -> dict[str, set[str]] | None:
    """``{mount point: per-mount options}`` as the process sees its mounts."""
    text = read_text(f"/proc/{pid}/mountinfo")
    if text is None:
        return None
    mounts: dict[str, set[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 5:
            mounts[fields[4]] = set(fields[5].split(","))
    return mounts


# --- processes ----------------------------------------------------------------------


def set_subreaper(enabled: bool) -> None:
    """Become (or stop being) the subreaper of orphaned descendants."""
    from pyruntime.linux import syscalls

    syscalls.prctl(PR_SET_CHILD_SUBREAPER, 1 if enabled else 0)


def reap(pid: int, deadline: float) -> int | None:
    """Wait for ``pid`` (our child by now) until ``deadline``; its exit status."""
    delay = 0.005
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 255
        if done:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return None


def reap_orphans() -> None:
    """Collect descendants that ended while we were their subreaper."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
