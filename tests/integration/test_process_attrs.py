"""Process attributes through the CLI (issue 3, points 6 and 7).

LSM labels, personality, ioPriority, scheduler, memoryPolicy,
execCPUAffinity, and the bounds of oomScoreAdj and rlimits. Each setting is
observed where it shows: from the host, on the container's init between
``create`` and ``start`` (``/proc/<pid>/...``, ``ioprio_get``,
``sched_getattr``), or from inside the container. Every refusal must be one
error line, exit status 1, and nothing left behind.

runc 1.1.5 knows only apparmorProfile, selinuxLabel, mountLabel, oomScoreAdj
and rlimits of these; tests of the rest, and our exact wording, are marked
``ours_only`` and skipped with ``PYRUNTIME_TEST_RUNTIME=runc``.
"""

from __future__ import annotations

import os
import resource
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyruntime.linux import syscalls as sc
from pyruntime.security import lsm
from tests.conftest import reap, runtime_command
from tests.integration.test_process import (
    assert_refused,
    create_refused,
    output_of,
    status_field,
)

pytestmark = pytest.mark.root

OURS = any("pyruntime" in part for part in runtime_command())
ours_only = pytest.mark.skipif(not OURS, reason="pyruntime's own behaviour")
RT_CGROUP = Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")
CPUS = sorted(os.sched_getaffinity(0))


def set_process(bundle, **fields) -> None:
    bundle.edit(lambda c: c["process"].update(fields))


def set_linux(bundle, **fields) -> None:
    bundle.edit(lambda c: c["linux"].update(fields))


@contextmanager
def created_init(runtime, bundle, tmp_path, cid: str | None = None):
    """``create`` a container running ``sleep``; yield init's pid; delete it."""
    bundle.edit(lambda c: c["process"].update(args=["sleep", "30"]))
    cid = cid or runtime.new_id()
    pid_file = tmp_path / f"{cid}.pid"
    result = runtime.create(bundle, cid, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    try:
        yield cid, pid
    finally:
        runtime("delete", "--force", cid)
        reap(pid)


def refusal(runtime, bundle, ours: tuple[str, ...], theirs: tuple[str, ...] = ()):
    """``create`` fails cleanly; with our runtime, the line says ``ours``."""
    return create_refused(runtime, bundle, *(ours if OURS else theirs))


# ------------------------------------------------------------------ LSM labels

no_apparmor = pytest.mark.skipif(lsm.apparmor_enabled(), reason="AppArmor is on")
no_selinux = pytest.mark.skipif(lsm.selinux_enabled(), reason="SELinux is on")


@no_apparmor
def test_apparmor_profile_refused_without_apparmor(runtime, bundle):
    set_process(bundle, apparmorProfile="docker-default")
    line = refusal(
        runtime,
        bundle,
        ("process.apparmorProfile", "`docker-default`", "AppArmor is not enabled"),
        ("apparmor",),
    )
    if OURS:
        assert (
            "process.apparmorProfile: cannot apply profile `docker-default`: "
            "AppArmor is not enabled on this host" in line
        ), line


@no_selinux
def test_selinux_label_refused_without_selinux(runtime, bundle):
    set_process(bundle, selinuxLabel="system_u:system_r:container_t:s0")
    refusal(
        runtime,
        bundle,
        ("process.selinuxLabel", "container_t", "SELinux is not enabled on this host"),
        ("selinux",),
    )


@no_selinux
def test_mount_label_refused_without_selinux(runtime, bundle):
    # runc tries the mounts with context= and fails on the first one.
    set_linux(bundle, mountLabel="system_u:object_r:container_file_t:s0")
    refusal(
        runtime,
        bundle,
        ("linux.mountLabel", "SELinux is not enabled on this host"),
        ("context=",),
    )


@ours_only
def test_malformed_selinux_label_is_a_config_error(runtime, bundle):
    set_process(bundle, selinuxLabel="container_t")
    refusal(runtime, bundle, ("invalid config.json", "process.selinuxLabel"))


def test_empty_labels_mean_none(runtime, bundle):
    set_process(bundle, apparmorProfile="", selinuxLabel="")
    set_linux(bundle, mountLabel="")
    assert output_of(runtime, bundle, "echo ok") == "ok\n"


@pytest.mark.skipif(not lsm.apparmor_enabled(), reason="needs AppArmor")
def test_apparmor_profile_applied(runtime, bundle):
    set_process(bundle, apparmorProfile="unconfined")
    assert output_of(runtime, bundle, "cat /proc/self/attr/current") == ("unconfined\n")


@pytest.mark.skipif(not lsm.selinux_enabled(), reason="needs SELinux")
def test_selinux_label_applied(runtime, bundle):
    label = Path("/proc/self/attr/current").read_text().strip("\0\n")
    set_process(bundle, selinuxLabel=label)
    out = output_of(runtime, bundle, "cat /proc/self/attr/current")
    assert out.strip("\0\n") == label


# ------------------------------------------------------------- oomScoreAdj, rlimits


def has_cap_sys_resource() -> bool:
    """Whether the test process (so the runtime it starts) has CAP_SYS_RESOURCE."""
    return bool(sc.capget()[0] >> 24 & 1)


@pytest.mark.parametrize("value", [1001, -1001])
def test_oom_score_adj_outside_bounds_is_refused(runtime, bundle, value):
    set_process(bundle, oomScoreAdj=value)
    cid = runtime.new_id()
    result = runtime.create(bundle, cid)
    if not OURS:  # runc fails too, but its nsexec prints two lines
        assert result.returncode == 1
        return
    line = assert_refused(runtime, result, cid, "invalid config.json")
    assert f"process.oomScoreAdj: {value} is outside -1000..1000" in line, line


@pytest.mark.parametrize("value", [1000, -1000])
def test_oom_score_adj_at_the_bounds(runtime, bundle, value):
    lowering = value < int(Path("/proc/self/oom_score_adj").read_text())
    if lowering and not has_cap_sys_resource():
        pytest.skip("lowering oom_score_adj needs CAP_SYS_RESOURCE")
    set_process(bundle, oomScoreAdj=value)
    out = output_of(runtime, bundle, "cat /proc/self/oom_score_adj")
    assert out == f"{value}\n"


def test_rlimit_above_the_hard_limit_is_refused_with_its_path(runtime, bundle):
    if has_cap_sys_resource():
        pytest.skip("this runtime may raise hard limits (CAP_SYS_RESOURCE)")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = [
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NOFILE", "soft": 64, "hard": hard + 1},
    ]
    set_process(bundle, rlimits=limits)
    line = refusal(runtime, bundle, ("process.rlimits[1].hard",), ("rlimit",))
    if OURS:
        assert (
            f"process.rlimits[1].hard: cannot raise RLIMIT_NOFILE to {hard + 1}: "
            f"the current hard limit is {hard} and raising it needs "
            "CAP_SYS_RESOURCE, which this runtime does not have" in line
        ), line


# ----------------------------------------------------------------- personality


@ours_only
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="LINUX32 on x86_64")
def test_personality_linux32(runtime, bundle, tmp_path):
    set_linux(bundle, personality={"domain": "LINUX32"})
    with created_init(runtime, bundle, tmp_path) as (_, pid):
        assert Path(f"/proc/{pid}/personality").read_text() == "00000008\n"
    assert output_of(runtime, bundle, "uname -m") == "i686\n"


@ours_only
def test_personality_flags(runtime, bundle):
    flags = ["ADDR_NO_RANDOMIZE", "UNAME26"]
    set_linux(bundle, personality={"domain": "LINUX", "flags": flags})
    out = output_of(runtime, bundle, "cat /proc/1/personality; uname -r")
    persona, release = out.splitlines()
    assert persona == "00060000"
    assert release.startswith("2.6."), release  # what UNAME26 reports


@ours_only
def test_unknown_personality_is_a_config_error(runtime, bundle):
    set_linux(bundle, personality={"domain": "LINUX64"})
    refusal(runtime, bundle, ("linux.personality.domain", "LINUX64"))


# ----------------------------------------------------------------- ioPriority


@ours_only
@pytest.mark.parametrize(
    ("klass", "level", "value"),
    [
        ("IOPRIO_CLASS_BE", 5, 2 << 13 | 5),
        ("IOPRIO_CLASS_IDLE", 0, 3 << 13),
        ("IOPRIO_CLASS_RT", 2, 1 << 13 | 2),
    ],
)
def test_io_priority(runtime, bundle, tmp_path, klass, level, value):
    set_process(bundle, ioPriority={"class": klass, "priority": level})
    with created_init(runtime, bundle, tmp_path) as (cid, pid):
        assert sc.ioprio_get(pid) == value
        runtime.ok("start", cid)
        assert sc.ioprio_get(pid) == value  # the program keeps it


@ours_only
def test_io_priority_out_of_range_is_a_config_error(runtime, bundle):
    set_process(bundle, ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 8})
    line = refusal(runtime, bundle, ("invalid config.json",))
    assert "process.ioPriority.priority: 8 is outside 0..7" in line, line


# ------------------------------------------------------------------ scheduler


@ours_only
@pytest.mark.parametrize(
    ("sched", "policy", "nice"),
    [
        ({"policy": "SCHED_BATCH", "nice": 5}, 3, 5),
        ({"policy": "SCHED_IDLE"}, 5, 0),
        ({"policy": "SCHED_OTHER", "nice": -3}, 0, -3),
    ],
)
def test_scheduler_policy_and_nice(runtime, bundle, tmp_path, sched, policy, nice):
    set_process(bundle, scheduler=sched)
    with created_init(runtime, bundle, tmp_path) as (cid, pid):
        attr = sc.sched_getattr(pid)
        assert (attr.sched_policy, attr.sched_nice) == (policy, nice)
        runtime.ok("start", cid)
        assert sc.sched_getattr(pid).sched_policy == policy


@ours_only
@pytest.mark.skipif(not RT_CGROUP.exists(), reason="needs CONFIG_RT_GROUP_SCHED")
def test_scheduler_fifo_with_realtime_runtime(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    resources = {"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}
    set_linux(bundle, cgroupsPath=f"/{cid}", resources=resources)
    set_process(bundle, scheduler={"policy": "SCHED_FIFO", "priority": 10})
    with created_init(runtime, bundle, tmp_path, cid) as (_, pid):
        attr = sc.sched_getattr(pid)
        assert (attr.sched_policy, attr.sched_priority) == (1, 10)


@ours_only
@pytest.mark.skipif(not RT_CGROUP.exists(), reason="needs CONFIG_RT_GROUP_SCHED")
def test_scheduler_fifo_without_realtime_runtime_is_refused(runtime, bundle):
    set_process(bundle, scheduler={"policy": "SCHED_FIFO", "priority": 10})
    refusal(
        runtime,
        bundle,
        ("set scheduler SCHED_FIFO: operation not permitted", "realtimeRuntime"),
    )


@ours_only
def test_scheduler_deadline(runtime, bundle, tmp_path):
    sched = {
        "policy": "SCHED_DEADLINE",
        "runtime": 1_000_000,
        "deadline": 5_000_000,
        "period": 10_000_000,
    }
    set_process(bundle, scheduler=sched)
    with created_init(runtime, bundle, tmp_path) as (cid, pid):
        attr = sc.sched_getattr(pid)
        assert attr.sched_policy == 6
        assert (attr.sched_runtime, attr.sched_deadline, attr.sched_period) == (
            1_000_000,
            5_000_000,
            10_000_000,
        )
        runtime.ok("start", cid)
        assert sc.sched_getattr(pid).sched_policy == 6


DEADLINE_REFUSALS = {
    "runtime-above-deadline": (
        {"runtime": 3_000_000, "deadline": 2_000_000, "period": 4_000_000},
        "process.scheduler: runtime 3000000 is greater than deadline 2000000 "
        "(SCHED_DEADLINE needs runtime <= deadline <= period)",
    ),
    "deadline-above-period": (
        {"runtime": 1_000_000, "deadline": 5_000_000, "period": 4_000_000},
        "process.scheduler: deadline 5000000 is greater than period 4000000 "
        "(SCHED_DEADLINE needs runtime <= deadline <= period)",
    ),
    "zero-runtime": (
        {"runtime": 0, "deadline": 5_000_000},
        "process.scheduler.runtime: SCHED_DEADLINE needs a non-zero runtime",
    ),
    "no-deadline": (
        {"runtime": 1_000_000},
        "process.scheduler.deadline: SCHED_DEADLINE needs a non-zero deadline",
    ),
}


@ours_only
@pytest.mark.parametrize(
    ("params", "message"), DEADLINE_REFUSALS.values(), ids=DEADLINE_REFUSALS
)
def test_scheduler_deadline_validation(runtime, bundle, params, message):
    set_process(bundle, scheduler={"policy": "SCHED_DEADLINE", **params})
    line = refusal(runtime, bundle, ("invalid config.json",))
    assert message in line, line


@ours_only
def test_scheduler_deadline_period_out_of_kernel_bounds(runtime, bundle):
    # Valid for the spec, but below kernel.sched_deadline_period_min_us.
    sched = {"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 4000}
    set_process(bundle, scheduler=sched)
    refusal(
        runtime,
        bundle,
        ("set scheduler SCHED_DEADLINE: invalid argument", "sched_deadline_period"),
    )


@ours_only
def test_scheduler_deadline_with_start_container_hooks_is_refused(runtime, bundle):
    sched = {"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 5_000_000}
    set_process(bundle, scheduler=sched)
    bundle.edit(lambda c: c.update(hooks={"startContainer": [{"path": "/bin/true"}]}))
    refusal(runtime, bundle, ("cannot fork", "SCHED_FLAG_RESET_ON_FORK"))


@ours_only
def test_scheduler_priority_for_a_non_realtime_policy_is_refused(runtime, bundle):
    set_process(bundle, scheduler={"policy": "SCHED_OTHER", "priority": 5})
    refusal(runtime, bundle, ("process.scheduler.priority", "only SCHED_FIFO"))


@ours_only
def test_scheduler_iso_is_refused_by_mainline_linux(runtime, bundle):
    set_process(bundle, scheduler={"policy": "SCHED_ISO"})
    refusal(runtime, bundle, ("SCHED_ISO", "mainline Linux"))


# --------------------------------------------------------------- memoryPolicy


def numa_policies(pid: int | str) -> set[str]:
    """The policy column of /proc/<pid>/numa_maps."""
    with open(f"/proc/{pid}/numa_maps") as handle:
        return {line.split()[1] for line in handle}


@ours_only
@pytest.mark.parametrize(
    ("policy", "shown"),
    [
        ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
        (
            {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
            "bind=static:0",
        ),
        ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
        ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
        ({"mode": "MPOL_LOCAL"}, "local"),
    ],
)
def test_memory_policy(runtime, bundle, tmp_path, policy, shown):
    set_linux(bundle, memoryPolicy=policy)
    with created_init(runtime, bundle, tmp_path) as (cid, pid):
        assert numa_policies(pid) == {shown}
        runtime.ok("start", cid)
        assert numa_policies(pid) == {shown}  # sleep's own mappings


@ours_only
def test_memory_policy_on_a_node_the_host_lacks_is_refused(runtime, bundle):
    allowed = status_field(os.getpid(), "Mems_allowed_list")
    missing = max(int(part.split("-")[-1]) for part in allowed.split(",")) + 1
    set_linux(bundle, memoryPolicy={"mode": "MPOL_BIND", "nodes": str(missing)})
    line = refusal(runtime, bundle, (f"on nodes {missing}: invalid argument",))
    assert f"(this process may use nodes {allowed})" in line


@ours_only
def test_memory_policy_flags_are_checked(runtime, bundle):
    policy = {"mode": "MPOL_PREFERRED", "nodes": "0"}
    set_linux(bundle, memoryPolicy=dict(policy, flags=["MPOL_F_NUMA_BALANCING"]))
    refusal(runtime, bundle, ("MPOL_F_NUMA_BALANCING needs mode MPOL_BIND",))


# ------------------------------------------------------------ execCPUAffinity


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs")
def test_exec_cpu_affinity_does_not_apply_to_init(runtime, bundle, tmp_path):
    # The runtime-spec: execCPUAffinity "is not applicable to the container's
    # init process"; it is for processes started by exec.
    affinity = {"initial": str(CPUS[0]), "final": str(CPUS[-1])}
    set_process(bundle, execCPUAffinity=affinity)
    everything = status_field(os.getpid(), "Cpus_allowed_list")
    with created_init(runtime, bundle, tmp_path) as (cid, pid):
        assert status_field(pid, "Cpus_allowed_list") == everything
        runtime.ok("start", cid)
        assert status_field(pid, "Cpus_allowed_list") == everything


@ours_only
def test_exec_cpu_affinity_syntax_is_a_config_error(runtime, bundle):
    set_process(bundle, execCPUAffinity={"initial": "0-"})
    refusal(runtime, bundle, ("process.execCPUAffinity.initial", "not a number"))


# ------------------------------------------------------------------- intelRdt


@ours_only
def test_intel_rdt_is_refused(runtime, bundle):
    set_linux(bundle, intelRdt={"closID": "gold"})
    refusal(runtime, bundle, ("linux.intelRdt", "not supported by pyruntime"))
