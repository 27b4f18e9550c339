"""Faults and load through the CLI: parallel containers, a SIGKILLed create,
racing commands on one id, damaged state files, and the state root's modes.

After each scenario the host is checked: no state directory, no cgroup, no
host mount and no live process of the container is left behind.
"""

from __future__ import annotations

import copy
import json
import os
import random
import select
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import (
    assert_nothing_left,
    base_config,
    cgroup_dirs,
    mounts_mentioning,
    processes_mentioning,
    reap,
)

pytestmark = pytest.mark.root


def reap_orphans() -> None:
    """Collect every exited child (killed inits re-parented to us).

    Only for moments when the test runs no subprocess of its own: waiting for
    any child could steal the status ``subprocess`` waits for.
    """
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def settle_orphans(cid: str, timeout: float = 5.0) -> None:
    """Reap until no process of ``cid`` is left, or ``timeout`` passes.

    A child of the killed runtime that was forked before its pid could be
    recorded (init waiting for the runtime's word) ends by itself when it
    reads the end of the dead runtime's socket; on a loaded machine that
    takes a moment. One still there after ``timeout`` is a leak.
    """
    deadline = time.monotonic() + timeout
    while True:
        reap_orphans()
        if not processes_mentioning(cid) or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def read_pid(path: Path) -> int:
    return int(path.read_text())


# ------------------------------------------------------------------ load


@pytest.mark.slow
def test_fifty_parallel_containers_keep_their_ids_and_leave_nothing(
    runtime, rootfs_template, tmp_path
):
    rootfs = tmp_path / "shared-rootfs"
    shutil.copytree(rootfs_template, rootfs, symlinks=True)
    (rootfs / "out").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    ids = [runtime.new_id("par") for _ in range(50)]

    def bundle_for(cid: str) -> Path:
        config = base_config(["sh", "-c", 'echo "$CID $(hostname)" > "/out/$CID"'])
        config["root"] = {"path": str(rootfs), "readonly": True}
        config["hostname"] = cid
        config["process"]["env"].append(f"CID={cid}")
        config["mounts"].append(
            {
                "destination": "/out",
                "type": "bind",
                "source": str(out),
                "options": ["rbind", "rw"],
            }
        )
        path = tmp_path / "bundles" / cid
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps(config))
        return path

    def lifecycle(cid: str) -> str:
        path = bundle_for(cid)
        pid_file = path / "init.pid"
        created = runtime.detached(
            "create", "--bundle", str(path), "--pid-file", str(pid_file), cid
        )
        assert created.returncode == 0, f"{cid}: {created.stderr}"
        pid = read_pid(pid_file)
        state = runtime.state(cid)
        assert (state["id"], state["pid"], state["bundle"]) == (cid, pid, str(path))
        assert state["status"] == "created"
        runtime.ok("start", cid)
        assert reap(pid, timeout=60) == 0, f"{cid} failed"
        runtime.ok("delete", cid)
        return cid

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = list(pool.map(lifecycle, ids))
    assert done == ids
    for cid in ids:
        assert (out / cid).read_text() == f"{cid} {cid}\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(ids)
    assert list(runtime.root.iterdir()) == []
    leftover_cgroups = [d for cid in ids for d in cgroup_dirs(cid)]
    assert leftover_cgroups == []
    assert not mounts_mentioning(str(tmp_path))
    assert not processes_mentioning("par-")


# ------------------------------------------------- SIGKILL during create

#: --debug lines that mark steps of create; the runtime is killed right after.
KILL_POINTS = [
    "to the container's cgroup",
    "create namespaces",
    "container init has pid",
    "bring up lo",
    "prepare rootfs",
    "hook prestart[0]",
    "pivot_root",
    "set hostname",
    "ready; waiting",
    "created, init pid",
]


#: Delays (seconds) after which create is killed, wherever it is then.
KILL_DELAYS = [0.0, 0.02, 0.05, 0.09, 0.14, 0.2]


def kill_create(runtime, bundle, cid: str, point: str | float) -> None:
    """Run create with --debug and SIGKILL it at a log line or after a delay."""
    proc = subprocess.Popen(
        runtime.argv("--debug", "create", "--bundle", str(bundle.path), cid),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if isinstance(point, float):
            time.sleep(point)
        else:
            wait_for_line(proc.stderr, point.encode())
        proc.kill()
    finally:
        proc.wait()
        proc.stderr.close()


def wait_for_line(stream, marker: bytes, timeout: float = 20) -> None:
    """Read ``stream`` until a line holds ``marker``.

    select() and a deadline, not a plain loop: the container's init
    inherits the pipe, so end-of-file may never come.
    """
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    pending = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        if marker in pending:
            return
    raise AssertionError(f"create never logged {marker!r}: {pending[-500:]!r}")


@pytest.mark.parametrize("point", KILL_POINTS + KILL_DELAYS)
def test_sigkilled_create_is_cleaned_by_delete_force(runtime, bundle, point):
    bundle.edit(
        lambda c: c.update(hooks={"prestart": [{"path": "/bin/true"}]}),
    )
    cid = runtime.new_id("kill")
    host_mounts = set(mounts_mentioning(""))
    kill_create(runtime, bundle, cid, point)
    result = runtime("delete", "--force", cid)
    assert result.returncode == 0, result.stderr
    settle_orphans(cid)
    assert_nothing_left(runtime, cid, str(bundle.path))
    # None of the host's mounts appeared because of this container.
    new_mounts = set(mounts_mentioning("")) - host_mounts
    assert not [m for m in new_mounts if str(bundle.path) in m or cid in m]


# ---------------------------------------------- racing commands on one id


ALLOWED_ERRORS = (
    "container does not exist",
    "container not running",
    "that is not stopped",
)


@pytest.mark.parametrize("started", [False, True], ids=["created", "running"])
def test_concurrent_kill_delete_state_never_corrupt_the_state(
    runtime, bundle, tmp_path, started
):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "60"]))
    cid = runtime.new_id("race")
    pid_file = tmp_path / "init.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    if started:
        runtime.ok("start", cid)
    problems: list[str] = []
    stop = threading.Event()

    def check(args: list[str], result) -> None:
        if result.returncode == 0:
            if args[0] == "state":
                try:
                    doc = json.loads(result.stdout)
                except ValueError:
                    problems.append(f"state printed bad JSON: {result.stdout!r}")
                    return
                if doc.get("id") != cid or doc.get("status") not in (
                    "created",
                    "running",
                    "stopped",
                ):
                    problems.append(f"state printed {doc}")
            return
        lines = result.stderr.strip().splitlines()
        if len(lines) != 1 or not any(e in lines[0] for e in ALLOWED_ERRORS):
            problems.append(f"{' '.join(args)}: {result.stderr!r}")

    def hammer(choices: list[str], rounds: int) -> None:
        for _ in range(rounds):
            if stop.is_set():
                return
            args = random.choice(choices).format(cid).split()
            check(args, runtime(*args, timeout=30))

    jobs = [
        (["state {}"], 25),
        (["state {}"], 25),
        (["kill {}", "kill {} KILL", "kill --all {} KILL"], 10),
        (["state {}", "delete {}", "kill {} 0"], 15),
        (["delete {}", "delete --force {}", "state {}"], 10),
    ]
    threads = [threading.Thread(target=hammer, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop.set()
    assert not problems, "\n".join(problems[:10])
    runtime.ok("delete", "--force", cid)
    reap(read_pid(pid_file))
    assert_nothing_left(runtime, cid, str(bundle.path))


# -------------------------------------------------- damaged state files


def truncate(text: str) -> str:
    return text[: len(text) // 2]


def wrong_type(text: str) -> str:
    doc = json.loads(text)
    doc["pid"] = "not a pid"
    return json.dumps(doc)


def other_id(text: str) -> str:
    doc = json.loads(text)
    doc["id"] = "someone-else"
    return json.dumps(doc)


DAMAGE = {
    "garbage": lambda text: "\x00garbage{{{",
    "empty": lambda text: "",
    "truncated": truncate,
    "wrong-type": wrong_type,
    "other-id": other_id,
    "list": lambda text: "[]",
}


def damage_state(state_file: Path, how: str) -> None:
    """Replace state.json with a damaged version (or a directory)."""
    text = state_file.read_text()
    state_file.unlink()
    if how == "directory":
        state_file.mkdir()
        (state_file / "x").write_text(text)
    else:
        state_file.write_text(DAMAGE[how](text))


@pytest.mark.parametrize("how", [*DAMAGE, "directory"])
def test_damaged_state_is_a_clear_error_and_delete_force_cleans(
    runtime, bundle, tmp_path, how
):
    cid = runtime.new_id("bad")
    # A cgroup outside the default place: only cleanup.json knows it.
    bundle.edit(lambda c: c["linux"].update(cgroupsPath=f"/{cid}-custom"))
    pid_file = tmp_path / "init.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    pid = read_pid(pid_file)
    custom = cgroup_dirs(f"{cid}-custom")
    assert custom
    damage_state(runtime.root / cid / "state.json", how)

    for args in (["state", cid], ["delete", cid], ["kill", cid, "KILL"]):
        result = runtime(*args)
        assert result.returncode == 1, args
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert "state.json" in lines[0]
        assert "Traceback" not in result.stderr
    listed = runtime.ok("list", "-q")
    assert cid not in listed.stdout.split()
    assert "skip" in listed.stderr

    runtime.ok("delete", "--force", cid)
    assert reap(pid) == 137
    assert not any(os.path.exists(d) for d in custom)
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_delete_force_without_any_record_uses_the_default_cgroup(
    runtime, bundle, tmp_path
):
    cid = runtime.new_id("bad")
    pid_file = tmp_path / "init.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    for name in ("state.json", "cleanup.json"):
        (runtime.root / cid / name).write_text("garbage")
    assert cgroup_dirs(cid)
    runtime.ok("delete", "--force", cid)
    # init was in the cgroup: killed with it.
    assert reap(read_pid(pid_file)) == 137
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_state_dir_without_state_file(runtime, bundle):
    cid = runtime.new_id("bad")
    (runtime.root / cid).mkdir(parents=True)
    result = runtime("state", cid)
    assert result.returncode == 1
    assert "no state file" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    runtime.ok("delete", "--force", cid)
    assert not (runtime.root / cid).exists()


# ----------------------------------------------------------------- modes


def test_state_root_is_0700_and_no_state_file_is_world_writable(
    runtime, bundle, tmp_path
):
    runtime.root.mkdir(mode=0o777)
    os.chmod(runtime.root, 0o777)  # mkdir's mode is filtered by the umask
    ids = [runtime.new_id("mode") for _ in range(2)]
    assert runtime.create(bundle, ids[0]).returncode == 0
    bundle2 = copy.deepcopy(bundle.config)
    bundle2["process"]["args"] = ["sleep", "30"]
    bundle.write(bundle2)
    assert runtime.create(bundle, ids[1]).returncode == 0
    pid = runtime.state(ids[1])["pid"]
    runtime.ok("start", ids[1])
    assert (runtime.root.stat().st_mode & 0o777) == 0o700
    seen = set()
    for base, dirs, files in os.walk(runtime.root):
        for name in dirs + files:
            path = os.path.join(base, name)
            mode = os.lstat(path).st_mode & 0o777
            assert not mode & 0o002, f"{path} is world-writable ({mode:o})"
            if name.endswith(".json"):
                assert mode == 0o600, f"{path} has mode {mode:o}"
            seen.add(name)
    assert {"state.json", "cleanup.json", "exec.fifo"} <= seen
    runtime.ok("delete", "--force", ids[1])
    assert reap(pid) == 137


def test_init_killed_by_the_oom_killer_names_the_memory_limit(runtime, bundle):
    # 4096 bytes: the kernel takes it, and init cannot even set up under it.
    bundle.edit(
        lambda c: c["linux"].setdefault("resources", {}).update(memory={"limit": 4096})
    )
    cid = runtime.new_id()
    result = runtime.create(bundle, cid)
    assert result.returncode == 1
    assert "killed by the out-of-memory killer during setup" in result.stderr
    assert "linux.resources.memory.limit (4096 bytes)" in result.stderr
    assert_nothing_left(runtime, cid, str(bundle.path))
