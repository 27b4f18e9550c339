"""pyruntime.cgroups against the real kernel (root only).

Every test works in its own cgroup ``/pyruntime-test-<random>`` and on
processes it starts itself; the fixtures kill those processes and remove the
cgroups even when a test fails. Tests marked ``cgroup_v2`` need a pure v2
host (run them in a VM on hybrid machines); the others run on any layout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from pyruntime.cgroups import detect_mode, list_controllers, load_manager, open_manager
from pyruntime.errors import SetupError, UnsupportedError

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="cgroup tests need root"),
]

MODE = detect_mode() if os.geteuid() == 0 else "unknown"
needs_v2 = pytest.mark.skipif(
    MODE != "v2", reason=f"needs a pure cgroup v2 host (this host is {MODE})"
)
needs_v1 = pytest.mark.skipif(
    MODE not in ("v1", "hybrid"),
    reason=f"needs cgroup v1 controllers (this host is {MODE})",
)

MIB = 1024 * 1024


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def proc_state(pid: int) -> str:
    data = read(f"/proc/{pid}/stat")
    return data[data.rindex(")") + 2]


@pytest.fixture
def cgroup_path():
    return f"/pyruntime-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def procs():
    """Start processes for a test; kill and reap them all afterwards."""
    started: list[subprocess.Popen] = []

    def start(*argv: str, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(list(argv), **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def manager(cgroup_path, procs):
    """A created manager; killed, thawed and destroyed after the test."""
    del procs  # requested so that it tears down after this fixture
    mgr = open_manager(cgroup_path, "unused")
    try:
        mgr.create()
        yield mgr
    finally:
        cleanup(mgr)


def cleanup(mgr) -> None:
    if not mgr.exists():
        return
    try:
        mgr.kill_all(signal.SIGKILL)
        mgr.thaw()
    finally:
        wait_for(lambda: not mgr.pids(), what="processes to exit")
        mgr.destroy()


def start_blocked(procs, *argv: str) -> subprocess.Popen:
    """Start ``argv`` behind a ``read``, so it forks only once released."""
    script = 'read _go; exec "$@"'
    return procs("sh", "-c", script, "sh", *argv, stdin=subprocess.PIPE, text=True)


def release(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


def file_for(mgr, hierarchy: str, name: str) -> str:
    return os.path.join(mgr.paths()[hierarchy], name)


# ------------------------------------------------------------ any layout


def test_cgroups_created_in_every_hierarchy(manager, cgroup_path):
    saved = manager.paths()
    assert saved and manager.exists()
    for directory in saved.values():
        assert directory.endswith(cgroup_path)
        assert os.path.isdir(directory)
    if MODE == "hybrid":
        assert "unified" in saved and "memory" in saved
    assert set(list_controllers()) >= {"memory", "pids"}


def test_cgroups_add_process_and_pids(manager, procs, cgroup_path):
    proc = start_blocked(procs, "sh", "-c", "sleep 30 & sleep 30 & wait")
    manager.add_process(proc.pid)
    release(proc)
    pids = wait_for(lambda: len(manager.pids()) == 3 and manager.pids(), what="3 pids")
    assert proc.pid in pids
    for line in read(f"/proc/{proc.pid}/cgroup").splitlines():
        assert line.endswith(cgroup_path), line


def test_cgroups_freeze_and_thaw(manager, procs, tmp_path):
    counter = tmp_path / "counter"
    loop = f"i=0; while :; do i=$((i+1)); echo $i > {counter}; sleep 0.01; done"
    proc = start_blocked(procs, "sh", "-c", loop)
    manager.add_process(proc.pid)
    release(proc)
    wait_for(
        lambda: counter.exists() and int(counter.read_text() or 0) > 3, what="loop"
    )

    manager.freeze()
    assert manager.is_frozen()
    if MODE != "v2":
        # The v1 freezer parks tasks in uninterruptible sleep.
        assert proc_state(proc.pid) in ("D", "T")
    before = counter.read_text()
    time.sleep(0.3)
    assert counter.read_text() == before

    manager.thaw()
    assert not manager.is_frozen()
    assert proc_state(proc.pid) not in ("D", "T")
    wait_for(lambda: counter.read_text() != before, what="loop to run again")


def test_cgroups_kill_all_sigterm(manager, procs):
    proc = start_blocked(procs, "sh", "-c", "sleep 30 & sleep 30 & wait")
    manager.add_process(proc.pid)
    release(proc)
    wait_for(lambda: len(manager.pids()) == 3, what="3 pids")
    manager.kill_all(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM
    wait_for(lambda: not manager.pids(), what="cgroup to empty")
    assert not manager.is_frozen()


def test_cgroups_kill_all_sigkill_while_frozen(manager, procs):
    proc = start_blocked(procs, "sh", "-c", "sleep 30 & wait")
    manager.add_process(proc.pid)
    release(proc)
    wait_for(lambda: len(manager.pids()) == 2, what="2 pids")
    manager.freeze()
    manager.kill_all(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: not manager.pids(), what="cgroup to empty")


def test_cgroups_destroy_removes_every_dir(cgroup_path, procs):
    mgr = open_manager(f"{cgroup_path}/inner", "unused")
    try:
        mgr.create()
        proc = procs("sleep", "30")
        mgr.add_process(proc.pid)
        top = [d[: -len("/inner")] for d in mgr.paths().values()]
        mgr.kill_all(signal.SIGKILL)
        proc.wait(timeout=10)
        mgr.destroy()
        assert not mgr.exists()
        assert not any(os.path.exists(d) for d in top)
        mgr.destroy()  # already gone: no error
    finally:
        cleanup(mgr)


def test_cgroups_destroy_busy_cgroup_fails(manager, procs):
    proc = procs("sleep", "30")
    manager.add_process(proc.pid)
    with pytest.raises(SetupError, match=r"remove cgroup .*: device or resource busy"):
        manager.destroy()


def test_cgroups_load_manager_from_saved_paths(manager, procs):
    proc = procs("sleep", "30")
    manager.add_process(proc.pid)
    loaded = load_manager(manager.paths())
    assert loaded.pids() == [proc.pid]
    loaded.kill_all(signal.SIGKILL)
    proc.wait(timeout=10)
    loaded.destroy()
    assert not loaded.exists()


def test_cgroups_stats_shape(manager, procs):
    manager.apply({"pids": {"limit": 10}, "memory": {"limit": 64 * MIB}})
    proc = procs("sleep", "30")
    manager.add_process(proc.pid)
    stats = manager.stats()
    assert set(stats) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert stats["pids"] == {"current": 1, "limit": 10}
    assert stats["memory"]["usage"]["limit"] == 64 * MIB
    # runc's shape: zero counters are left out, kernel and user never are.
    assert {"kernel", "user"} <= set(stats["cpu"]["usage"])
    assert stats["intel_rdt"] == {} and stats["network_interfaces"] is None


# --------------------------------------------------------- v1 and hybrid


@needs_v1
def test_cgroups_v1_limits_read_back(manager, procs):
    manager.apply(
        {
            "memory": {"limit": 64 * MIB, "swap": 128 * MIB, "reservation": 32 * MIB},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 42},
        }
    )
    proc = procs("sleep", "30")
    manager.add_process(proc.pid)
    assert read(file_for(manager, "memory", "memory.limit_in_bytes")) == str(64 * MIB)
    assert read(file_for(manager, "memory", "memory.soft_limit_in_bytes")) == str(
        32 * MIB
    )
    memsw = file_for(manager, "memory", "memory.memsw.limit_in_bytes")
    if os.path.exists(memsw):
        assert read(memsw) == str(128 * MIB)
    assert read(file_for(manager, "pids", "pids.max")) == "42"
    assert read(file_for(manager, "cpu", "cpu.cfs_quota_us")) == "50000"
    assert read(file_for(manager, "cpu", "cpu.cfs_period_us")) == "100000"
    assert read(file_for(manager, "cpu", "cpu.shares")) == "512"


@needs_v1
def test_cgroups_v1_update_raises_and_lowers_memory(manager):
    # Raising memory above the current memsw (and back) needs the right order.
    manager.apply({"memory": {"limit": 64 * MIB, "swap": 64 * MIB}})
    manager.apply({"memory": {"limit": 256 * MIB, "swap": 512 * MIB}})
    assert read(file_for(manager, "memory", "memory.limit_in_bytes")) == str(256 * MIB)
    manager.apply({"memory": {"limit": 32 * MIB, "swap": 48 * MIB}})
    assert read(file_for(manager, "memory", "memory.limit_in_bytes")) == str(32 * MIB)
    manager.apply({"memory": {"limit": -1}})
    assert int(read(file_for(manager, "memory", "memory.limit_in_bytes"))) > 2**60


@needs_v1
def test_cgroups_v1_cpuset_seeded_from_parent(manager):
    cpus = read(file_for(manager, "cpuset", "cpuset.cpus"))
    assert cpus == read(
        os.path.join(os.path.dirname(manager.paths()["cpuset"]), "cpuset.cpus")
    )
    assert read(file_for(manager, "cpuset", "cpuset.mems"))


@needs_v1
def test_cgroups_v1_cpuset_fills_a_parent_left_empty(cgroup_path, procs):
    # A parallel create made the shared parent but has not filled it in yet:
    # this create must fill it (and its own cgroup) before a task can enter.
    child = open_manager(f"{cgroup_path}/child", "unused")
    parent_dir = os.path.dirname(child.paths()["cpuset"])
    os.mkdir(parent_dir)
    try:
        assert read(os.path.join(parent_dir, "cpuset.cpus")) == ""
        child.create()
        try:
            assert read(file_for(child, "cpuset", "cpuset.cpus"))
            assert read(file_for(child, "cpuset", "cpuset.mems"))
            proc = start_blocked(procs, "true")
            child.add_process(proc.pid)
            release(proc)
            assert proc.wait(timeout=10) == 0
        finally:
            cleanup(child)
    finally:
        if os.path.isdir(parent_dir):
            os.rmdir(parent_dir)


@needs_v1
def test_cgroups_v1_device_rules(manager):
    manager.apply(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rw"},
            ]
        }
    )
    rules = set(read(file_for(manager, "devices", "devices.list")).splitlines())
    # The given rules, then the devices every container gets (mknod of any
    # node, /dev/null, zero, full, random, urandom, tty, ptmx, pts, tun).
    assert rules == {
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
    }


@needs_v1
def test_cgroups_v1_device_rules_and_nodes(manager, procs, driverless_node):
    manager.apply(
        {"devices": [{"allow": False, "access": "rwm"}]},
        linux_devices=[{"path": "/dev/x", "type": "c", "major": 240, "minor": 0}],
    )
    rules = read(file_for(manager, "devices", "devices.list")).splitlines()
    assert "c 240:0 rwm" in rules and "a *:* rwm" not in rules
    out, err = open_devices_inside(manager, procs, driverless_node)
    assert "null-ok" in out
    assert "No such device or address" in err, err


@needs_v1
def test_cgroups_v1_write_error_names_value_and_file(manager):
    # A CPU this machine does not have: the kernel refuses the write.
    cpu = os.cpu_count() + 4000
    with pytest.raises(SetupError) as err:
        manager.apply({"cpu": {"cpus": str(cpu)}})
    path = file_for(manager, "cpuset", "cpuset.cpus")
    assert re.fullmatch(
        rf"write `{cpu}` to `{re.escape(path)}`: [a-z][a-z ]+", str(err.value)
    )


@needs_v1
def test_cgroups_v1_blkio_weight(manager):
    blkio = manager.paths().get("blkio")
    if blkio is None:
        pytest.skip("the v1 blkio controller is not mounted")
    names = [
        n
        for n in ("blkio.weight", "blkio.bfq.weight")
        if os.path.exists(f"{blkio}/{n}")
    ]
    if names:
        manager.apply({"blockIO": {"weight": 300}})
        assert read(f"{blkio}/{names[0]}") == "300"
    else:
        with pytest.raises(UnsupportedError, match=r"`blkio\.weight` and"):
            manager.apply({"blockIO": {"weight": 300}})


@needs_v1
def test_cgroups_v1_unsupported_value_names_the_file(manager):
    blkio = manager.paths().get("blkio")
    if blkio is None or os.path.exists(f"{blkio}/blkio.leaf_weight"):
        pytest.skip("this host has CFQ leaf weights")
    with pytest.raises(UnsupportedError) as err:
        manager.apply({"blockIO": {"leafWeight": 300}, "pids": {"limit": 5}})
    assert str(err.value) == (
        "cannot apply linux.resources.blockIO.leafWeight: `blkio.leaf_weight` "
        "does not exist on this host (cgroup v1 blkio without CFQ; BFQ has no "
        "leaf weights)"
    )
    # Checked before writing anything: pids.max is untouched.
    assert read(file_for(manager, "pids", "pids.max")) == "max"


@needs_v1
def test_cgroups_v1_unmounted_controller_is_unsupported(manager):
    if "net_cls" in manager.paths():
        pytest.skip("net_cls is mounted here")
    with pytest.raises(UnsupportedError, match="`net_cls` is not mounted"):
        manager.apply({"network": {"classID": 0x100001}})


@pytest.mark.skipif(MODE != "hybrid", reason=f"needs a hybrid host (this is {MODE})")
def test_cgroups_hybrid_hugetlb_in_unified(manager):
    unified = manager.paths()["unified"]
    if "hugetlb" in manager.paths() or not os.path.exists(f"{unified}/hugetlb.2MB.max"):
        pytest.skip("hugetlb is not in the cgroup2 hierarchy here")
    manager.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MIB}]})
    assert read(f"{unified}/hugetlb.2MB.max") == str(4 * MIB)


@pytest.mark.skipif(MODE != "hybrid", reason=f"needs a hybrid host (this is {MODE})")
def test_cgroups_hybrid_unified_key_for_v1_controller_refused(manager):
    with pytest.raises(UnsupportedError) as err:
        manager.apply({"unified": {"memory.high": "1000000"}})
    assert str(err.value) == (
        "cannot apply linux.resources.unified.memory.high: `memory.high` does not "
        "exist on this host (controller `memory` is bound to a cgroup v1 "
        "hierarchy on this host, not to the cgroup v2 one)"
    )


# ------------------------------------------------------------------- pure v2


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_limits_read_back(manager, procs):
    manager.apply(
        {
            "memory": {"limit": 64 * MIB, "swap": 96 * MIB, "reservation": 16 * MIB},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "pids": {"limit": 42},
        }
    )
    proc = procs("sleep", "30")
    manager.add_process(proc.pid)
    unified = manager.paths()["unified"]
    assert read(f"{unified}/memory.max") == str(64 * MIB)
    assert read(f"{unified}/memory.low") == str(16 * MIB)
    if os.path.exists(f"{unified}/memory.swap.max"):
        assert read(f"{unified}/memory.swap.max") == str(32 * MIB)
    assert read(f"{unified}/cpu.max") == "50000 100000"
    assert read(f"{unified}/cpu.weight") == "39"
    assert read(f"{unified}/pids.max") == "42"
    assert (
        read(f"/proc/{proc.pid}/cgroup")
        == f"0::{manager.paths()['unified'][len('/sys/fs/cgroup') :]}"
    )


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_unlimited_and_unified(manager):
    manager.apply(
        {"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}}
    )
    unified = manager.paths()["unified"]
    assert read(f"{unified}/memory.max") == "max"
    assert read(f"{unified}/cpu.max") == "max 100000"
    assert read(f"{unified}/pids.max") == "max"
    manager.apply({"unified": {"memory.high": "33554432"}})
    assert read(f"{unified}/memory.high") == "33554432"
    with pytest.raises(UnsupportedError, match="hierarchy has no `nosuch` controller"):
        manager.apply({"unified": {"nosuch.knob": "1"}})


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_controllers_enabled(manager):
    controllers = read(os.path.join(manager.paths()["unified"], "cgroup.controllers"))
    assert {"memory", "pids", "cpu"} <= set(controllers.split())


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_memory_limit_enforced(manager, procs):
    manager.apply({"memory": {"limit": 32 * MIB, "swap": 32 * MIB}})
    hog = (
        "import sys; sys.stdin.readline(); b = bytearray(128 * 1024 * 1024); "
        "b[::4096] = b'x' * 32768"
    )
    proc = procs(sys_executable(), "-c", hog, stdin=subprocess.PIPE, text=True)
    manager.add_process(proc.pid)
    release(proc)
    assert proc.wait(timeout=300) == -signal.SIGKILL
    events = read(os.path.join(manager.paths()["unified"], "memory.events"))
    assert "oom_kill 1" in events


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_check_before_update(manager, procs):
    # Allocate only once inside the cgroup: memory is charged where it was
    # first touched, and stays there when the process moves.
    hold = (
        "import sys, time; sys.stdin.readline(); b = bytearray(16 * 1024 * 1024); "
        "b[::4096] = b'x' * 4096; time.sleep(120)"
    )
    proc = procs(sys_executable(), "-c", hold, stdin=subprocess.PIPE, text=True)
    manager.add_process(proc.pid)
    release(proc)
    unified = manager.paths()["unified"]
    wait_for(
        lambda: int(read(f"{unified}/memory.current")) > 8 * MIB,
        timeout=120,
        what="usage",
    )
    with pytest.raises(SetupError, match="below the current usage"):
        manager.apply({"memory": {"limit": 4 * MIB, "checkBeforeUpdate": True}})
    assert read(f"{unified}/memory.max") == "max"


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_refuses_realtime(manager):
    with pytest.raises(UnsupportedError, match="realtime"):
        manager.apply({"cpu": {"realtimeRuntime": 1000}})


def sys_executable() -> str:
    import sys

    return sys.executable


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_cpuset_hugetlb_and_io_weight(manager):
    unified = manager.paths()["unified"]
    resources = {"cpu": {"cpus": "0", "mems": "0"}}
    if os.path.exists(f"{unified}/hugetlb.2MB.max"):
        resources["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 * MIB}]
    manager.apply(resources)
    assert read(f"{unified}/cpuset.cpus") == "0"
    if "hugepageLimits" in resources:
        assert read(f"{unified}/hugetlb.2MB.max") == str(4 * MIB)
    weights = [
        n for n in ("io.bfq.weight", "io.weight") if os.path.exists(f"{unified}/{n}")
    ]
    if weights:
        manager.apply({"blockIO": {"weight": 500}})
        expected = "500" if weights[0] == "io.bfq.weight" else "4950"
        assert expected in read(f"{unified}/{weights[0]}")
    else:
        with pytest.raises(
            UnsupportedError, match=r"`io\.bfq\.weight` and `io\.weight`"
        ):
            manager.apply({"blockIO": {"weight": 500}})


@pytest.mark.cgroup_v2
@needs_v2
def test_cgroups_v2_devices_filter(manager, procs, driverless_node):
    manager.apply(
        {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 9}}
    )
    assert read(os.path.join(manager.paths()["unified"], "pids.max")) == "9"
    out, err = open_devices_inside(manager, procs, driverless_node)
    assert "null-ok" in out
    assert "Operation not permitted" in err, err


# ------------------------------------------------ any host with cgroup v2


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
        node = directory / "dev240"
        os.mknod(node, 0o20666, os.makedev(240, 0))
        yield node
    finally:
        umount2(str(directory), MNT_DETACH)


def open_devices_inside(manager, procs, node) -> tuple[str, str]:
    """From inside the cgroup, open a driverless node and /dev/null.

    With no driver behind major 240, an open the cgroup lets through fails
    with ENXIO; one it refuses fails with EPERM.
    """
    script = f"read _go; cat {node}; echo x > /dev/null && echo null-ok"
    proc = procs(
        "sh",
        "-c",
        script,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    manager.add_process(proc.pid)
    return proc.communicate("go\n", timeout=120)


@pytest.mark.skipif(MODE == "v1", reason="needs a cgroup v2 hierarchy")
def test_cgroups_ebpf_device_filter_attached(manager, procs, driverless_node):
    from pyruntime.cgroups.devices import effective_rules
    from pyruntime.cgroups.ebpf import install_device_filter

    unified = manager.paths().get("unified")
    if unified is None:
        pytest.skip("no writable cgroup2 hierarchy")
    rules = effective_rules(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 240, "minor": 1, "access": "rw"},
        ]
    )
    install_device_filter(unified, rules)
    out, err = open_devices_inside(manager, procs, driverless_node)
    assert "null-ok" in out, err
    assert "Operation not permitted" in err, err


@pytest.mark.cgroup_v2
def test_cgroups_oom_watcher_counts_a_kill(manager, procs):
    from pyruntime.cgroups.oom import open_oom_watcher

    manager.apply({"memory": {"limit": 16 * MIB, "swap": 16 * MIB}})
    watcher = open_oom_watcher(manager.paths())
    try:
        assert watcher.count() == 0
        hog = "read _go; exec dd if=/dev/zero of=/dev/null bs=64M count=1"
        proc = procs("sh", "-c", hog, stdin=subprocess.PIPE, text=True)
        manager.add_process(proc.pid)
        proc.communicate("go\n", timeout=300)
        assert proc.returncode == -signal.SIGKILL
        assert wait_for(watcher.count, timeout=30, what="an OOM notification") >= 1
    finally:
        watcher.close()
