"""pause, resume, update, events, ps, kill --all and placement, through the CLI.

Everything is observed from the host: the cgroup files of the container's
cgroup (found through ``/proc/<pid>/cgroup``), process states, and the
commands' output. Tests marked ``cgroup_v2`` are written for any layout and
form the focused set run on a pure cgroup v2 kernel (natively, or in a VM
with scripts/test-cgroup-v2.sh); the others run here only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid

import pytest

from tests.conftest import reap

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="cgroup tests need root"),
]

MIB = 1024 * 1024


def host_mode() -> str:
    from pyruntime.cgroups import detect_mode

    return detect_mode()


MODE = host_mode() if os.geteuid() == 0 else "unknown"
V2 = MODE == "v2"
needs_v1 = pytest.mark.skipif(
    MODE not in ("v1", "hybrid"), reason=f"needs cgroup v1 controllers ({MODE})"
)

# ------------------------------------------------------------------ helpers


def cgroup_dir(pid: int, controller: str) -> str:
    """The host directory of ``pid``'s cgroup for ``controller``.

    On a v2 host every controller lives in the one hierarchy; on a hybrid
    host a controller that no v1 hierarchy holds (hugetlb here) lives in
    the cgroup2 one.
    """
    from pyruntime.cgroups.host import mounted_hierarchies

    mounts = mounted_hierarchies()
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    unified = None
    for _, names, path in lines:
        keys = [k.removeprefix("name=") for k in names.split(",")] if names else []
        keys = keys or ["unified"]
        if (V2 and keys == ["unified"]) or controller in keys:
            return mounts["unified" if V2 else controller] + path
        if keys == ["unified"] and "unified" in mounts:
            unified = mounts["unified"] + path
    if unified is not None and controller not in mounts:
        return unified
    raise AssertionError(f"{controller} cgroup of {pid} not found: {lines}")


def all_cgroup_dirs(pid: int) -> set[str]:
    """Every host directory of ``pid``'s cgroup that a container goes in."""
    from pyruntime.cgroups.host import mounted_hierarchies

    return {cgroup_dir(pid, key) for key in mounted_hierarchies()}


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def read_cgroup(pid: int, controller: str, v1_name: str, v2_name: str) -> str:
    name = v2_name if V2 else v1_name
    return read(os.path.join(cgroup_dir(pid, controller), name))


def proc_state(pid: int) -> str:
    data = read(f"/proc/{pid}/stat")
    return data[data.rindex(")") + 2]


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def set_resources(bundle, **sections) -> None:
    bundle.edit(lambda c: c["linux"].setdefault("resources", {}).update(sections))


def set_args(bundle, *args: str) -> None:
    bundle.edit(lambda c: c["process"].update(args=list(args)))


def launch(runtime, bundle, tmp_path, start: bool = True) -> tuple[str, int]:
    """create (and start) a container; return its id and init's host pid."""
    cid = runtime.new_id("cg")
    pid_file = tmp_path / f"{cid}.pid"
    result = runtime.create(bundle, cid, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    if start:
        runtime.ok("start", cid)
    return cid, int(pid_file.read_text())


def error_of(stderr: str) -> str:
    """The message of the last error line (logfmt on stderr, as runc)."""
    found = re.findall(r'level=error msg="((?:[^"\\]|\\.)*)"', stderr)
    assert found, stderr
    return found[-1].replace('\\"', '"').replace("\\\\", "\\")


def fails_with(result, message: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert error_of(result.stderr).endswith(message), result.stderr


def saved_resources(runtime, cid: str) -> dict:
    state = json.loads((runtime.root / cid / "state.json").read_text())
    return state["config"]["linux"]["resources"]


def is_frozen(pid: int) -> bool:
    if V2:
        return read(os.path.join(cgroup_dir(pid, "unified"), "cgroup.freeze")) == "1"
    return read(os.path.join(cgroup_dir(pid, "freezer"), "freezer.state")) == "FROZEN"


@pytest.fixture
def sleeper(bundle):
    set_args(bundle, "sleep", "1000")
    return bundle


# ------------------------------------------------------- resources, delete


def block_device() -> tuple[str, str] | None:
    """A block device of this host as ``(name, "major:minor")``, loop first.

    Throttling rules need a real device; a loop device is the harmless one.
    """
    try:
        names = sorted(os.listdir("/sys/block"), key=lambda n: (n[:4] != "loop", n))
    except OSError:
        return None
    for name in names:
        try:
            return name, read(f"/sys/block/{name}/dev")
        except OSError:
            continue
    return None


def huge_page_size() -> bool:
    return os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB")


@pytest.mark.cgroup_v2
def test_resources_read_back_then_delete_removes_the_cgroup(runtime, sleeper, tmp_path):
    # Every linux.resources section a container can carry, read back from the
    # cgroup files (v1 names here, v2 names on a v2 host), then a plain
    # delete of the stopped container leaves no directory behind.
    device = block_device()
    resources = {
        "memory": {"limit": 64 * MIB, "reservation": 32 * MIB, "swap": 96 * MIB},
        "cpu": {
            "shares": 2048,
            "quota": 30000,
            "period": 60000,
            "cpus": "0",
            "mems": "0",
        },
        "pids": {"limit": 64},
        "unified": {"cgroup.max.descendants": "7"},
    }
    if device is not None:
        rules = {"major": int(device[1].split(":")[0])}
        rules["minor"] = int(device[1].split(":")[1])
        resources["blockIO"] = {
            "throttleReadBpsDevice": [{**rules, "rate": MIB}],
            "throttleWriteIOPSDevice": [{**rules, "rate": 100}],
        }
    if huge_page_size():
        resources["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 * MIB}]
    if V2:
        resources["unified"]["memory.high"] = str(48 * MIB)
    set_resources(sleeper, **resources)
    cid, pid = launch(runtime, sleeper, tmp_path)

    def value(controller: str, v1_name: str, v2_name: str) -> str:
        return read_cgroup(pid, controller, v1_name, v2_name)

    assert value("memory", "memory.limit_in_bytes", "memory.max") == str(64 * MIB)
    assert value("memory", "memory.soft_limit_in_bytes", "memory.low") == str(32 * MIB)
    swap_file = "memory.swap.max" if V2 else "memory.memsw.limit_in_bytes"
    if os.path.exists(os.path.join(cgroup_dir(pid, "memory"), swap_file)):
        # OCI swap is memory+swap: v1 takes it as is, v2 the swap part only.
        assert value("memory", swap_file, swap_file) == str((32 if V2 else 96) * MIB)
    # shares 2048 -> weight 1 + (2048 - 2) * 9999 // 262142 = 79
    assert value("cpu", "cpu.shares", "cpu.weight") == ("79" if V2 else "2048")
    assert cpu_max(pid) == ("30000", "60000")
    assert value("cpuset", "cpuset.cpus", "cpuset.cpus") == "0"
    assert value("cpuset", "cpuset.mems", "cpuset.mems") == "0"
    assert value("pids", "pids.max", "pids.max") == "64"
    unified = cgroup_dir(pid, "unified")
    assert read(os.path.join(unified, "cgroup.max.descendants")) == "7"
    if V2:
        assert read(os.path.join(unified, "memory.high")) == str(48 * MIB)
    if device is not None:
        dev = device[1]
        if V2:
            assert read(os.path.join(unified, "io.max")) == (
                f"{dev} rbps={MIB} wbps=max riops=max wiops=100"
            )
        else:
            blkio = cgroup_dir(pid, "blkio")
            assert read(f"{blkio}/blkio.throttle.read_bps_device") == f"{dev} {MIB}"
            assert read(f"{blkio}/blkio.throttle.write_iops_device") == f"{dev} 100"
    if huge_page_size():
        # On a hybrid host without v1 hugetlb, the limit is in the cgroup2 tree.
        hugetlb = cgroup_dir(pid, "hugetlb")
        in_v2 = V2 or hugetlb == unified
        name = "hugetlb.2MB.max" if in_v2 else "hugetlb.2MB.limit_in_bytes"
        assert read(os.path.join(hugetlb, name)) == str(4 * MIB)

    # The blockIO weight needs CFQ or BFQ (v1) or io.cost or BFQ (v2): set it
    # with update where the kernel has a weight file, else see it refused.
    io_dir = cgroup_dir(pid, "io" if V2 else "blkio")
    names = (
        ("io.bfq.weight", "io.weight") if V2 else ("blkio.weight", "blkio.bfq.weight")
    )
    present = [n for n in names if os.path.exists(os.path.join(io_dir, n))]
    result = runtime("update", "--blkio-weight", "500", cid)
    if present:
        assert result.returncode == 0, result.stderr
        # io.weight is on a 1..10000 scale: 1 + (500 - 10) * 9999 // 990
        expected = "4950" if present[0] == "io.weight" else "500"
        assert read(os.path.join(io_dir, present[0])).split()[-1] == expected
    else:
        reason = (
            "neither the BFQ scheduler nor io.cost weights are available"
            if V2
            else "cgroup v1 blkio without CFQ/BFQ"
        )
        fails_with(
            result,
            f"cannot apply linux.resources.blockIO.weight: `{names[0]}` and "
            f"`{names[1]}` do not exist on this host ({reason})",
        )

    dirs = all_cgroup_dirs(pid)
    assert all(os.path.isdir(d) for d in dirs)
    runtime.ok("kill", cid, "KILL")
    assert reap(pid) == 137
    runtime.ok("delete", cid)
    assert not [d for d in dirs if os.path.exists(d)]


# ----------------------------------------------------------- pause, resume


@pytest.mark.cgroup_v2
def test_pause_and_resume_freeze_the_cgroup(runtime, bundle, tmp_path):
    counter = "/tmp/counter"
    loop = f"i=0; while :; do i=$((i+1)); echo $i > {counter}; sleep 0.02; done"
    set_args(bundle, "sh", "-c", loop)
    cid, pid = launch(runtime, bundle, tmp_path)
    host_counter = bundle.rootfs / "tmp" / "counter"
    wait_for(lambda: host_counter.exists() and host_counter.read_text(), what="loop")

    runtime.ok("pause", cid)
    assert runtime.state(cid)["status"] == "paused"
    assert is_frozen(pid)
    if not V2:
        assert proc_state(pid) in ("D", "T")  # parked by the v1 freezer
    before = host_counter.read_text()
    time.sleep(0.3)
    assert host_counter.read_text() == before
    fails_with(runtime("pause", cid), "container not running")
    fails_with(runtime("start", cid), "cannot start a container in the paused state")
    fails_with(
        runtime("delete", cid),
        f"cannot delete container {cid} that is not stopped: paused",
    )

    runtime.ok("resume", cid)
    assert runtime.state(cid)["status"] == "running"
    assert not is_frozen(pid)
    wait_for(lambda: host_counter.read_text() != before, what="loop to run again")
    fails_with(runtime("resume", cid), "container not paused")
    runtime.ok("delete", "--force", cid)


def test_pause_a_created_container_then_start_it(runtime, sleeper, tmp_path):
    cid, pid = launch(runtime, sleeper, tmp_path, start=False)
    runtime.ok("pause", cid)
    assert runtime.state(cid)["status"] == "paused"
    runtime.ok("resume", cid)
    assert runtime.state(cid)["status"] == "created"
    runtime.ok("start", cid)
    assert runtime.state(cid)["status"] == "running"
    assert read(f"/proc/{pid}/comm") == "sleep"


def test_pause_and_resume_a_stopped_container(runtime, bundle, tmp_path):
    cid, pid = launch(runtime, bundle, tmp_path)
    assert reap(pid) == 0
    fails_with(runtime("pause", cid), "container not running")
    fails_with(runtime("resume", cid), "container not paused")
    fails_with(runtime("pause", "nope-" + cid), "container does not exist")


def test_kill_9_of_a_paused_container(runtime, sleeper, tmp_path):
    cid, pid = launch(runtime, sleeper, tmp_path)
    runtime.ok("pause", cid)
    runtime.ok("kill", cid, "9")
    try:
        assert reap(pid, timeout=5) == 137
    finally:
        if os.path.exists(f"/proc/{pid}"):
            runtime("resume", cid)
            reap(pid)
    assert runtime.state(cid)["status"] == "stopped"


@pytest.mark.parametrize(
    "when",
    [
        "created",
        pytest.param("running", marks=pytest.mark.cgroup_v2),
        pytest.param("paused", marks=pytest.mark.cgroup_v2),
    ],
)
def test_kill_all_reaches_every_process(runtime, bundle, tmp_path, when):
    # On cgroup v2 (and hybrid hosts) SIGKILL goes through cgroup.kill.
    set_args(bundle, "sh", "-c", "sleep 1000 & sleep 1000 & wait")
    cid, pid = launch(runtime, bundle, tmp_path, start=when != "created")
    if when != "created":
        wait_for(
            lambda: len(json.loads(runtime.ok("ps", "-f", "json", cid).stdout)) == 3
        )
    if when == "paused":
        runtime.ok("pause", cid)
    runtime.ok("kill", "--all", cid, "KILL")
    assert reap(pid) == 137
    assert runtime.state(cid)["status"] == "stopped"
    assert runtime.ok("ps", "--format", "json", cid).stdout == "null\n"
    runtime.ok("kill", "--all", cid, "KILL")  # stopped: not an error with --all
    runtime.ok("delete", cid)


# ------------------------------------------------------------------ update


@pytest.mark.cgroup_v2
def test_update_memory_and_pids_flags(runtime, sleeper, tmp_path):
    set_resources(sleeper, memory={"limit": 256 * MIB}, pids={"limit": 100})
    cid, pid = launch(runtime, sleeper, tmp_path)
    assert read_cgroup(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(
        256 * MIB
    )
    runtime.ok("update", "--memory", "128M", "--pids-limit", "50", cid)
    assert read_cgroup(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(
        128 * MIB
    )
    assert read_cgroup(pid, "pids", "pids.max", "pids.max") == "50"
    resources = saved_resources(runtime, cid)
    assert resources["memory"]["limit"] == 128 * MIB
    assert resources["pids"] == {"limit": 50}

    # -r - : JSON on stdin; every other flag is then ignored.
    doc = json.dumps({"memory": {"limit": 96 * MIB}, "pids": {"limit": 40}})
    runtime.ok("update", "-r", "-", "--pids-limit", "7", cid, input=doc, stdin=None)
    assert read_cgroup(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(
        96 * MIB
    )
    assert read_cgroup(pid, "pids", "pids.max", "pids.max") == "40"
    # -1: unlimited.
    runtime.ok("update", "--memory", "-1", "--pids-limit", "-1", cid)
    limit = read_cgroup(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert limit == "max" or int(limit) > 2**60
    assert read_cgroup(pid, "pids", "pids.max", "pids.max") == "max"
    assert saved_resources(runtime, cid)["memory"]["swap"] == -1


def cpu_max(pid: int) -> tuple[str, str]:
    if V2:
        quota, period = read(os.path.join(cgroup_dir(pid, "cpu"), "cpu.max")).split()
        return quota, period
    directory = cgroup_dir(pid, "cpu")
    return (
        read(os.path.join(directory, "cpu.cfs_quota_us")),
        read(os.path.join(directory, "cpu.cfs_period_us")),
    )


@pytest.mark.cgroup_v2
def test_cpu_limits_and_quota_or_period_alone(runtime, sleeper, tmp_path):
    set_resources(sleeper, cpu={"shares": 1024, "quota": 50000, "period": 100000})
    cid, pid = launch(runtime, sleeper, tmp_path)
    assert cpu_max(pid) == ("50000", "100000")
    assert read_cgroup(pid, "cpu", "cpu.shares", "cpu.weight") == (
        "39" if V2 else "1024"
    )
    runtime.ok("update", "--cpu-quota", "20000", cid)
    assert cpu_max(pid) == ("20000", "100000")
    runtime.ok("update", "--cpu-period", "50000", cid)
    assert cpu_max(pid) == ("20000", "50000")
    runtime.ok("update", "--cpu-share", "512", cid)
    assert read_cgroup(pid, "cpu", "cpu.shares", "cpu.weight") == (
        "20" if V2 else "512"
    )
    assert saved_resources(runtime, cid)["cpu"] == {
        "shares": 512,
        "quota": 20000,
        "period": 50000,
    }


@pytest.mark.cgroup_v2
def test_cpu_quota_throttles_a_busy_loop(runtime, bundle, tmp_path):
    # 10% of one CPU: the kernel throttles the loop in most periods, and
    # counts it in cpu.stat (same keys on v1 and v2) and in events --stats.
    set_args(bundle, "sh", "-c", "while :; do :; done")
    set_resources(bundle, cpu={"quota": 5000, "period": 50000})
    cid, pid = launch(runtime, bundle, tmp_path)
    stat = os.path.join(cgroup_dir(pid, "cpu"), "cpu.stat")
    wait_for(
        lambda: read_keyed(stat)["nr_throttled"] >= 2, timeout=60, what="throttling"
    )
    data = json.loads(runtime.ok("events", "--stats", cid).stdout)["data"]
    assert data["cpu"]["throttling"]["throttledPeriods"] >= 2
    runtime.ok("delete", "--force", cid)


@needs_v1
def test_update_from_a_file_and_cpuset(runtime, sleeper, tmp_path):
    cid, pid = launch(runtime, sleeper, tmp_path)
    doc = tmp_path / "resources.json"
    doc.write_text(json.dumps({"cpu": {"cpus": "0"}, "blockIO": {}}))
    runtime.ok("update", "--resources", str(doc), cid)
    assert read(os.path.join(cgroup_dir(pid, "cpuset"), "cpuset.cpus")) == "0"
    assert saved_resources(runtime, cid)["cpu"] == {"cpus": "0"}


def test_update_refusals(runtime, sleeper, tmp_path):
    cid, pid = launch(runtime, sleeper, tmp_path)
    fails_with(
        runtime("update", "--memory", "12x", cid),
        "invalid value for memory: invalid size: '12x'",
    )
    fails_with(
        runtime("update", "--mem-bw-schema", "MB:0=20", cid),
        "Intel RDT/MBA: memory bandwidth schema is not enabled",
    )
    fails_with(
        runtime(
            "update", "-r", "-", cid, input='{"memory": {"limit": "1G"}}', stdin=None
        ),
        'invalid resources (stdin): memory.limit: expected an integer, got "1G"',
    )
    fails_with(
        runtime("update", cid, "extra"), '"update" requires exactly 1 argument(s)'
    )
    warned = runtime("update", "--kernel-memory", "10M", cid)
    assert warned.returncode == 0
    assert "Kernel memory settings are ignored" in warned.stderr
    runtime.ok("kill", cid, "KILL")
    assert reap(pid) == 137
    fails_with(runtime("update", "--memory", "64M", cid), "container not running")


# ------------------------------------------------------------------ events


@pytest.mark.cgroup_v2
def test_events_stats_once(runtime, sleeper, tmp_path):
    set_resources(sleeper, memory={"limit": 64 * MIB}, pids={"limit": 20})
    cid, pid = launch(runtime, sleeper, tmp_path)
    out = runtime.ok("events", "--stats", cid).stdout
    assert out.endswith("}\n") and out.count("\n") == 1
    event = json.loads(out)
    assert list(event) == ["type", "id", "data"]
    assert event["type"] == "stats" and event["id"] == cid
    data = event["data"]
    assert list(data) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]
    assert data["pids"] == {"current": 1, "limit": 20}
    assert data["memory"]["usage"]["limit"] == 64 * MIB
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    assert "raw" in data["memory"]
    runtime.ok("kill", cid, "KILL")
    assert reap(pid) == 137
    fails_with(
        runtime("events", "--stats", cid), f"container with id {cid} is not running"
    )


def test_events_flag_errors(runtime, sleeper, tmp_path):
    cid, _pid = launch(runtime, sleeper, tmp_path)
    fails_with(
        runtime("events", "--interval", "5", cid),
        'invalid value "5" for flag -interval: parse error',
    )
    fails_with(
        runtime("events", "--interval", "0s", cid),
        "duration interval must be greater than 0",
    )


def read_line(proc: subprocess.Popen, timeout: float) -> dict:
    """The next JSON event from ``events`` (or fail after ``timeout``)."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), "no event in time"
    line = proc.stdout.readline()
    assert line, f"events ended: {proc.stderr.read()}"
    return json.loads(line)


@pytest.mark.cgroup_v2
def test_oom_kill_is_reported_and_events_ends(runtime, bundle, tmp_path):
    # Init waits for /go, then allocates past its limit: the OOM killer
    # takes it (exit 137) and `events` reports it, then ends by itself.
    set_args(
        bundle,
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 0.05; done; "
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
    )
    set_resources(bundle, memory={"limit": 16 * MIB, "swap": 16 * MIB})
    cid, pid = launch(runtime, bundle, tmp_path)
    memory = cgroup_dir(pid, "memory")
    proc = subprocess.Popen(
        runtime.argv("events", "--interval", "100ms", cid),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = read_line(proc, timeout=120)
        assert first["type"] == "stats"  # the OOM watch is in place
        (bundle.rootfs / "go").touch()
        event = read_line(proc, timeout=120)
        while event["type"] == "stats":
            event = read_line(proc, timeout=120)
        assert event == {"type": "oom", "id": cid}
        assert reap(pid, timeout=120) == 137
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        # The kernel's own count: v1 memory.oom_control, v2 memory.events.
        counters = read_keyed(
            os.path.join(memory, "memory.events" if V2 else "memory.oom_control")
        )
        assert counters["oom_kill"] >= 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- ps


def test_ps_json_and_table(runtime, bundle, tmp_path):
    set_args(bundle, "sh", "-c", "sleep 1000 & sleep 1000 & wait")
    cid, pid = launch(runtime, bundle, tmp_path)
    out = wait_for(
        lambda: (
            (o := runtime.ok("ps", "--format", "json", cid).stdout).count(",") == 2
            and o
        ),
        what="three processes",
    )
    pids = json.loads(out)
    assert out == json.dumps(pids, separators=(",", ":")) + "\n"
    assert pid in pids
    for p in pids:
        assert cgroup_dir(p, "pids") == cgroup_dir(pid, "pids")

    table = runtime.ok("ps", cid).stdout.splitlines()
    assert table[0].split()[:2] == ["UID", "PID"]
    assert sorted(int(line.split()[1]) for line in table[1:]) == sorted(pids)
    custom = runtime.ok("ps", cid, "-o", "pid,comm").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in custom[1:]) == ["sh", "sleep", "sleep"]
    fails_with(runtime("ps", "-f", "xml", cid), "invalid format option")
    fails_with(runtime("ps", cid, "-o", "comm"), "couldn't find PID field in ps output")


# ------------------------------------------------------ placement, devices


@pytest.mark.cgroup_v2
def test_default_placement_and_delete_removes_the_cgroup(runtime, sleeper, tmp_path):
    sleeper.edit(lambda c: c["linux"]["namespaces"].append({"type": "cgroup"}))
    cid, pid = launch(runtime, sleeper, tmp_path)
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        if "name=" not in line:
            assert line.endswith(f":/pyruntime/{cid}"), lines
    dirs = {cgroup_dir(pid, c) for c in ("memory", "pids", "cpu")}
    # The container's cgroup namespace is rooted at its own cgroup: seen from
    # that namespace, init is at "/".
    inside = subprocess.run(
        ["nsenter", "-t", str(pid), "-C", "cat", f"/proc/{pid}/cgroup"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert all(line.endswith(":/") for line in inside if "name=" not in line), inside
    runtime.ok("delete", "--force", cid)
    assert not any(os.path.exists(d) for d in dirs)


def test_relative_and_absolute_cgroups_path(runtime, sleeper, tmp_path):
    parent = f"pyruntime-test-{uuid.uuid4().hex[:8]}"
    try:
        sleeper.edit(lambda c: c["linux"].update(cgroupsPath=f"{parent}/rel"))
        cid, pid = launch(runtime, sleeper, tmp_path)
        assert cgroup_dir(pid, "pids").endswith(f"/{parent}/rel")
        runtime.ok("delete", "--force", cid)
        sleeper.edit(lambda c: c["linux"].update(cgroupsPath=f"/{parent}/abs"))
        cid, pid = launch(runtime, sleeper, tmp_path)
        assert cgroup_dir(pid, "memory").endswith(f"/{parent}/abs")
        runtime.ok("delete", "--force", cid)
    finally:
        from pyruntime.cgroups.host import mounted_hierarchies

        for mount in set(mounted_hierarchies().values()):
            for leaf in ("rel", "abs", ""):
                path = os.path.join(mount, parent, leaf)
                if os.path.isdir(path):
                    os.rmdir(path)


@pytest.mark.parametrize("how", ["stopped", "force"])
def test_delete_removes_the_parents_it_made_and_keeps_the_others(
    runtime, sleeper, tmp_path, how
):
    from pyruntime.cgroups.host import mounted_hierarchies

    mine = f"pyruntime-test-{uuid.uuid4().hex[:8]}"
    theirs = f"pyruntime-test-{uuid.uuid4().hex[:8]}"
    mounts = sorted(set(mounted_hierarchies().values()))
    pre_existing = [os.path.join(m, theirs) for m in mounts]
    for path in pre_existing:
        os.mkdir(path)
        for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset starts empty
            if os.path.exists(os.path.join(path, name)):
                top = os.path.join(os.path.dirname(path), name)
                with open(top) as src, open(os.path.join(path, name), "w") as dst:
                    dst.write(src.read().strip() or "\n")
    try:
        for parent in (mine, theirs):
            sleeper.edit(
                lambda c, p=parent: c["linux"].update(cgroupsPath=f"/{p}/a/leaf")
            )
            cid, pid = launch(runtime, sleeper, tmp_path)
            if how == "stopped":
                runtime.ok("kill", cid, "KILL")
                reap(pid)
                runtime.ok("delete", cid)
            else:
                runtime.ok("delete", "--force", cid)
        for m in mounts:
            assert not os.path.exists(os.path.join(m, mine)), m
            # Made by someone else: kept, though create made a/ below it.
            assert os.path.isdir(os.path.join(m, theirs)), m
            assert not os.path.exists(os.path.join(m, theirs, "a")), m
    finally:
        for m in mounts:
            for parent in (mine, theirs):
                for leaf in ("a/leaf", "a", ""):
                    path = os.path.join(m, parent, leaf)
                    if os.path.isdir(path):
                        os.rmdir(path)


def test_systemd_cgroup_driver_is_refused(runtime, sleeper):
    sleeper.edit(lambda c: c["linux"].update(cgroupsPath="system.slice:pyr:x"))
    cid = runtime.new_id()
    result = runtime.detached(
        "--systemd-cgroup", "create", "--bundle", str(sleeper.path), cid
    )
    assert result.returncode == 1
    assert "systemd cgroup driver is not supported" in result.stderr
    assert not (runtime.root / cid).exists()


@pytest.fixture
def driverless_node(tmp_path):
    """A character device 240:0 (no driver) on a tmpfs that allows devices.

    Temporary directories may be on ``nodev`` mounts (EACCES for any node),
    so the node gets a tmpfs of its own, unmounted afterwards.
    """
    from pyruntime.linux.syscalls import MNT_DETACH, mount, umount2

    directory = tmp_path / "devs"
    directory.mkdir()
    mount("tmpfs", str(directory), "tmpfs", 0, "mode=0755,size=64k")
    try:
        os.mknod(directory / "dev240", 0o20666, os.makedev(240, 0))
        yield directory
    finally:
        umount2(str(directory), MNT_DETACH)


@pytest.mark.cgroup_v2
def test_device_outside_the_allow_list_cannot_be_opened(
    runtime, bundle, driverless_node
):
    # Root in the container (every capability: the config names none) opens
    # a bound node and one it makes itself with mknod (allowed: creating a
    # node is not using it). When the cgroup lets the open through, the
    # kernel answers ENXIO (no driver); when it refuses, EPERM.
    bind = {"destination": "/devs", "type": "bind", "source": str(driverless_node)}
    bind["options"] = ["bind"]
    bundle.edit(lambda c: c["mounts"].append(bind))
    script = (
        "id -u; cat /devs/dev240; mknod /dev/own240 c 240 0 && cat /dev/own240; "
        "echo x > /dev/null && echo null-ok"
    )
    set_args(bundle, "sh", "-c", script)
    set_resources(bundle, devices=[{"allow": False, "access": "rwm"}])
    denied = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert denied.stdout.split() == ["0", "null-ok"], denied.stderr
    for node in ("/devs/dev240", "/dev/own240"):
        assert re.search(f"{node}.*Operation not permitted", denied.stderr), (
            denied.stderr
        )
    allow = {"allow": True, "type": "c", "major": 240, "minor": 0, "access": "rw"}
    set_resources(bundle, devices=[{"allow": False, "access": "rwm"}, allow])
    allowed = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert "null-ok" in allowed.stdout
    assert allowed.stderr.count("No such device or address") == 2, allowed.stderr


def test_linux_devices_nodes_stay_usable_under_a_deny_all(runtime, bundle):
    # runc allows every linux.devices node whatever the rules say. 240:0 has
    # no driver: allowed reads as ENXIO, denied as EPERM.
    node = {"path": "/dev/x", "type": "c", "major": 240, "minor": 0}
    bundle.edit(lambda c: c["linux"].update(devices=[{**node, "fileMode": 0o666}]))
    set_args(bundle, "sh", "-c", "cat /dev/x; echo done")
    set_resources(bundle, devices=[{"allow": False, "access": "rwm"}])
    result = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert "done" in result.stdout, result.stderr
    assert "No such device or address" in result.stderr, result.stderr


@pytest.mark.cgroup_v2
def test_pids_limit_stops_a_fork_bomb(runtime, bundle, tmp_path):
    # The inner shell forks until refused (and then gives up); the sleeps it
    # started stay, and init becomes one more sleep without forking.
    bomb = "for i in $(seq 1 30); do sleep 1000 & done"
    set_args(bundle, "sh", "-c", f"sh -c '{bomb}' 2>/dev/null; exec sleep 1000")
    set_resources(bundle, pids={"limit": 10})
    cid, pid = launch(runtime, bundle, tmp_path)
    directory = cgroup_dir(pid, "pids")

    def refused() -> int:
        return read_keyed(os.path.join(directory, "pids.events")).get("max", 0)

    wait_for(refused, timeout=120, what="a refused fork")
    wait_for(lambda: read(f"/proc/{pid}/comm") == "sleep", timeout=120, what="exec")
    assert 2 <= int(read(os.path.join(directory, "pids.current"))) <= 10
    stats = json.loads(runtime.ok("events", "--stats", cid).stdout)["data"]["pids"]
    assert stats["limit"] == 10 and stats["current"] <= 10


def read_keyed(path: str) -> dict[str, int]:
    pairs = (line.split() for line in read(path).splitlines())
    return {key: int(value) for key, value in pairs}
