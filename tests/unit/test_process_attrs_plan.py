"""Unit tests for the pure parts of security.process_attrs and security.lsm.

Spec objects in, system call arguments (or /proc writes, mount data) out; the
host's LSM detection is pointed at temporary files. Nothing here needs root
or changes the test process.
"""

from __future__ import annotations

import pytest

from pyruntime import features
from pyruntime.errors import SetupError, UnsupportedError
from pyruntime.security import lsm, process_attrs
from pyruntime.spec.model import (
    IoPriority,
    Linux,
    MemoryPolicy,
    Personality,
    Process,
    Rlimit,
    Scheduler,
    Spec,
)


@pytest.mark.parametrize(
    ("persona", "value"),
    [
        (Personality("LINUX"), 0x0),
        (Personality("LINUX32"), 0x8),
        (Personality("LINUX32", ("ADDR_NO_RANDOMIZE",)), 0x0040008),
        (Personality("LINUX", ("UNAME26", "READ_IMPLIES_EXEC")), 0x0420000),
    ],
)
def test_personality_value(persona: Personality, value: int) -> None:
    assert process_attrs.personality_value(persona) == value


@pytest.mark.parametrize(
    ("io", "value"),
    [
        (IoPriority("IOPRIO_CLASS_RT", 0), 1 << 13),
        (IoPriority("IOPRIO_CLASS_BE", 4), 2 << 13 | 4),
        (IoPriority("IOPRIO_CLASS_IDLE", 7), 3 << 13 | 7),
    ],
)
def test_ioprio_value(io: IoPriority, value: int) -> None:
    assert process_attrs.ioprio_value(io) == value


def attr_fields(attr) -> dict:
    return {name: getattr(attr, name) for name, _ in attr._fields_}


def test_sched_attr_of_a_deadline_policy() -> None:
    sched = Scheduler(
        "SCHED_DEADLINE",
        flags=("SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"),
        runtime=10_000,
        deadline=20_000,
        period=30_000,
    )
    assert attr_fields(process_attrs.sched_attr(sched)) == {
        "size": 0,  # filled in by sched_setattr
        "sched_policy": 6,
        "sched_flags": 0x05,
        "sched_nice": 0,
        "sched_priority": 0,
        "sched_runtime": 10_000,
        "sched_deadline": 20_000,
        "sched_period": 30_000,
        "sched_util_min": 0,
        "sched_util_max": 0,
    }


@pytest.mark.parametrize(
    ("sched", "policy", "nice", "priority"),
    [
        (Scheduler("SCHED_OTHER"), 0, 0, 0),
        (Scheduler("SCHED_BATCH", nice=-5), 3, -5, 0),
        (Scheduler("SCHED_FIFO", priority=42), 1, 0, 42),
        (Scheduler("SCHED_RR", priority=1), 2, 0, 1),
        (Scheduler("SCHED_IDLE", nice=19), 5, 19, 0),
    ],
)
def test_sched_attr_policy_nice_priority(sched, policy, nice, priority) -> None:
    attr = process_attrs.sched_attr(sched)
    assert (attr.sched_policy, attr.sched_nice, attr.sched_priority) == (
        policy,
        nice,
        priority,
    )


@pytest.mark.parametrize(
    ("policy", "args"),
    [
        (MemoryPolicy("MPOL_DEFAULT"), (0, ())),
        (MemoryPolicy("MPOL_LOCAL", ""), (4, ())),
        (MemoryPolicy("MPOL_PREFERRED"), (1, ())),
        (MemoryPolicy("MPOL_BIND", "0-2,5"), (2, (0, 1, 2, 5))),
        (
            MemoryPolicy("MPOL_BIND", "1", ("MPOL_F_NUMA_BALANCING",)),
            (2 | 1 << 13, (1,)),
        ),
        (
            MemoryPolicy("MPOL_INTERLEAVE", "0,1", ("MPOL_F_STATIC_NODES",)),
            (3 | 1 << 15, (0, 1)),
        ),
        (
            MemoryPolicy("MPOL_PREFERRED_MANY", "3", ("MPOL_F_RELATIVE_NODES",)),
            (5 | 1 << 14, (3,)),
        ),
    ],
)
def test_memory_policy_args(policy: MemoryPolicy, args) -> None:
    assert process_attrs.memory_policy_args(policy) == args


def test_rlimit_numbers_and_infinity() -> None:
    assert process_attrs.rlimit_number("RLIMIT_NOFILE") == 7
    assert process_attrs.rlimit_number("RLIMIT_LOCKS") == 10
    assert process_attrs.as_unsigned(-1) == (1 << 64) - 1
    assert process_attrs.as_unsigned(1024) == 1024


def nofile(hard: int) -> Process:
    return Process(args=("sh",), cwd="/", rlimits=(Rlimit("RLIMIT_NOFILE", hard, 1),))


def test_rlimit_above_the_hard_limit_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(process_attrs, "has_effective_capability", lambda n: False)
    monkeypatch.setattr(process_attrs.resource, "getrlimit", lambda n: (8, 4096))
    process_attrs.check_rlimits_raisable(nofile(4096))
    with pytest.raises(UnsupportedError) as caught:
        process_attrs.check_rlimits_raisable(nofile(4097))
    assert str(caught.value) == (
        "process.rlimits[0].hard: cannot raise RLIMIT_NOFILE to 4097: the current "
        "hard limit is 4096 and raising it needs CAP_SYS_RESOURCE, which this "
        "runtime does not have"
    )


def test_rlimit_nofile_above_nr_open_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(process_attrs, "has_effective_capability", lambda n: True)
    monkeypatch.setattr(process_attrs, "read_nr_open", lambda: 1 << 20)
    process_attrs.check_rlimits_raisable(nofile(1 << 20))
    with pytest.raises(UnsupportedError) as caught:
        process_attrs.check_rlimits_raisable(nofile((1 << 20) + 1))
    assert str(caught.value) == (
        "process.rlimits[0].hard: cannot raise RLIMIT_NOFILE to 1048577: the "
        "kernel's maximum (fs.nr_open) is 1048576"
    )


# --- LSM ---------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Point the LSM detection at files under ``tmp_path``; returns a setter."""
    lsm_list = tmp_path / "lsm"
    apparmor = tmp_path / "apparmor-enabled"
    selinuxfs = tmp_path / "selinux"
    monkeypatch.setattr(lsm, "LSM_LIST", str(lsm_list))
    monkeypatch.setattr(lsm, "APPARMOR_ENABLED", str(apparmor))
    monkeypatch.setattr(lsm, "SELINUX_FS", str(selinuxfs))

    def set_host(active: str | None, apparmor_flag: str | None, selinux: bool):
        if active is not None:
            lsm_list.write_text(active)
        if apparmor_flag is not None:
            apparmor.write_text(apparmor_flag)
        if selinux:
            selinuxfs.mkdir()
            (selinuxfs / "enforce").write_text("1")

    return set_host


@pytest.mark.parametrize(
    ("active", "flag", "selinux", "expected"),
    [
        (None, None, False, (False, False)),
        ("capability,yama", "N", False, (False, False)),
        ("capability,apparmor", "Y\n", False, (True, False)),
        (None, "Y", False, (True, False)),
        ("capability,yama", "Y", False, (False, False)),  # built in, not active
        ("capability,selinux", None, True, (False, True)),
        (None, None, True, (False, True)),
        ("capability,apparmor", "Y", True, (True, False)),
    ],
)
def test_lsm_detection(host, active, flag, selinux, expected) -> None:
    host(active, flag, selinux)
    assert (lsm.apparmor_enabled(), lsm.selinux_enabled()) == expected


LABELLED = Spec(
    oci_version="1.2.0",
    process=Process(
        args=("sh",),
        cwd="/",
        apparmor_profile="docker-default",
        selinux_label="system_u:system_r:container_t:s0",
    ),
    linux=Linux(mount_label="system_u:object_r:container_file_t:s0"),
)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            LABELLED,
            "process.apparmorProfile: cannot apply profile `docker-default`: "
            "AppArmor is not enabled on this host",
        ),
        (
            Spec(
                oci_version="1.2.0",
                process=Process(args=("sh",), cwd="/", selinux_label="u:r:t:s0"),
            ),
            "process.selinuxLabel: cannot apply label `u:r:t:s0`: SELinux is not "
            "enabled on this host",
        ),
        (
            Spec(oci_version="1.2.0", linux=Linux(mount_label="u:object_r:t:s0")),
            "linux.mountLabel: cannot label mounts `u:object_r:t:s0`: SELinux is "
            "not enabled on this host",
        ),
    ],
)
def test_labels_refused_without_their_lsm(host, spec: Spec, message: str) -> None:
    host(None, None, False)
    with pytest.raises(UnsupportedError) as caught:
        lsm.check_labels_supported(spec)
    assert str(caught.value) == message


def test_labels_accepted_with_their_lsm(host) -> None:
    host("apparmor", "Y", False)
    apparmor_only = Spec(
        oci_version="1.2.0",
        process=Process(args=("sh",), cwd="/", apparmor_profile="p"),
    )
    lsm.check_labels_supported(apparmor_only)
    with pytest.raises(UnsupportedError):
        lsm.check_labels_supported(LABELLED)  # SELinux is still missing


def test_no_labels_need_no_lsm(host) -> None:
    host(None, None, False)
    empty = Process(args=("sh",), cwd="/", apparmor_profile="", selinux_label="")
    lsm.check_labels_supported(Spec(oci_version="1.2.0", process=empty))


def test_apparmor_request_and_path(tmp_path) -> None:
    assert lsm.apparmor_exec_request("docker-default") == b"exec docker-default"
    assert lsm.apparmor_exec_path(str(tmp_path)) == str(tmp_path / "exec")
    (tmp_path / "apparmor").mkdir()
    (tmp_path / "apparmor" / "exec").write_text("")
    assert lsm.apparmor_exec_path(str(tmp_path)) == str(tmp_path / "apparmor/exec")


def test_exec_labels_are_written_to_the_attr_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lsm, "ATTR_DIR", str(tmp_path))
    (tmp_path / "apparmor").mkdir()
    for name in ("exec", "apparmor/exec", "keycreate"):
        (tmp_path / name).write_text("")
    process = LABELLED.process
    lsm.apply_exec_labels(process)
    lsm.apply_keyring_label(process)
    assert (tmp_path / "apparmor/exec").read_text() == "exec docker-default"
    assert (tmp_path / "exec").read_text() == "system_u:system_r:container_t:s0"
    assert (tmp_path / "keycreate").read_text() == "system_u:system_r:container_t:s0"


def test_attr_write_failure_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lsm, "ATTR_DIR", str(tmp_path / "missing"))
    with pytest.raises(SetupError) as caught:
        lsm.apply_exec_labels(Process(args=("sh",), cwd="/", selinux_label="u:r:t"))
    assert str(caught.value) == (
        f"set SELinux exec label `u:r:t`: open `{tmp_path}/missing/exec`: no such "
        "file or directory (is /proc mounted in the container?)"
    )


LABEL = "system_u:object_r:container_file_t:s0"


@pytest.mark.parametrize(
    ("fstype", "data", "label", "expected"),
    [
        (
            "tmpfs",
            "mode=755,size=65536k",
            LABEL,
            f'mode=755,size=65536k,context="{LABEL}"',
        ),
        ("devpts", "", LABEL, f'context="{LABEL}"'),
        ("tmpfs", "mode=755", None, "mode=755"),
        ("tmpfs", "mode=755", "", "mode=755"),
        ("proc", "", LABEL, ""),
        ("sysfs", "", LABEL, ""),
        ("mqueue", "", LABEL, ""),
        ("bind", "", LABEL, ""),
        (None, "", LABEL, ""),
        ("tmpfs", 'context="a:b:c:s0"', LABEL, 'context="a:b:c:s0"'),
    ],
)
def test_label_mount_data(fstype, data, label, expected) -> None:
    assert lsm.label_mount_data(fstype, data, label) == expected


# --- features ----------------------------------------------------------------------


def test_features_list_memory_policy_and_no_lsm_or_rdt() -> None:
    linux = features.features_document()["linux"]
    assert linux["apparmor"] == {"enabled": False}
    assert linux["selinux"] == {"enabled": False}
    assert linux["intelRdt"] == {"enabled": False}
    assert linux["memoryPolicy"] == {
        "modes": [
            "MPOL_BIND",
            "MPOL_DEFAULT",
            "MPOL_INTERLEAVE",
            "MPOL_LOCAL",
            "MPOL_PREFERRED",
            "MPOL_PREFERRED_MANY",
            "MPOL_WEIGHTED_INTERLEAVE",
        ],
        "flags": [
            "MPOL_F_NUMA_BALANCING",
            "MPOL_F_RELATIVE_NODES",
            "MPOL_F_STATIC_NODES",
        ],
    }
