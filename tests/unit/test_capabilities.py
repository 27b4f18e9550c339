"""Capability names and the capability plan (no privileges needed)."""

from __future__ import annotations

import pytest

from pyruntime.errors import ConfigError, UnsupportedError
from pyruntime.security import capabilities as caps
from pyruntime.spec.model import Capabilities


def numbers(*names: str) -> frozenset[int]:
    return frozenset(caps.CAPABILITIES[name] for name in names)


def test_capability_table_is_contiguous_up_to_checkpoint_restore():
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))
    assert caps.CAPABILITIES["CAP_PERFMON"] == 38
    assert caps.CAPABILITIES["CAP_BPF"] == 39
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("CAP_CHOWN", 0),
        ("CAP_NET_BIND_SERVICE", 10),
        ("CAP_SYS_ADMIN", 21),
        ("cap_sys_admin", 21),
        ("Cap_Bpf", 39),
        ("CAP_FOO", None),
        ("SYS_ADMIN", None),
        ("", None),
    ],
)
def test_capability_number_resolves_names(name, number):
    assert caps.capability_number(name) == number


def test_capability_name_of_unnamed_number():
    assert caps.capability_name(40) == "CAP_CHECKPOINT_RESTORE"
    assert caps.capability_name(41) == "CAP_41"


def test_known_capabilities_stop_at_kernel_last_cap(tmp_path, monkeypatch):
    last = tmp_path / "cap_last_cap"
    last.write_text("37\n")
    monkeypatch.setattr(caps, "_CAP_LAST_CAP", str(last))
    known = caps.known_capabilities()
    assert known[0] == "CAP_CHOWN"
    assert known[-1] == "CAP_AUDIT_READ"
    assert len(known) == 38


def test_known_capabilities_without_cap_last_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(caps, "_CAP_LAST_CAP", str(tmp_path / "missing"))
    assert caps.known_capabilities()[-1] == "CAP_CHECKPOINT_RESTORE"


def test_plan_capabilities_absent_object_changes_nothing():
    assert caps.plan_capabilities(None) is None


def test_plan_capabilities_missing_sets_are_empty():
    plan = caps.plan_capabilities(Capabilities(bounding=("CAP_KILL",)))
    assert plan.bounding == numbers("CAP_KILL")
    assert plan.effective == plan.permitted == plan.inheritable == frozenset()
    assert plan.ambient == frozenset()


def test_plan_capabilities_accepts_any_case():
    plan = caps.plan_capabilities(
        Capabilities(bounding=("cap_kill", "CAP_BPF"), permitted=("Cap_Kill",))
    )
    assert plan.bounding == numbers("CAP_KILL", "CAP_BPF")
    assert plan.permitted == numbers("CAP_KILL")


def test_plan_capabilities_unknown_name_is_config_error_with_path():
    config = Capabilities(
        bounding=("CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_FOO"),
    )
    with pytest.raises(ConfigError) as info:
        caps.plan_capabilities(config)
    assert info.value.problems == [
        'process.capabilities.bounding[3]: unknown capability "CAP_FOO"'
    ]
    assert str(info.value) == (
        "invalid config.json: process.capabilities.bounding[3]: unknown capability "
        '"CAP_FOO"'
    )


def test_plan_capabilities_reports_every_problem():
    config = Capabilities(
        bounding=("CAP_BAR",),
        effective=("CAP_KILL",),
        inheritable=("CAP_CHOWN",),
        ambient=("NET_ADMIN",),
    )
    with pytest.raises(ConfigError) as info:
        caps.plan_capabilities(config)
    assert info.value.problems == [
        'process.capabilities.bounding[0]: unknown capability "CAP_BAR"',
        'process.capabilities.ambient[0]: unknown capability "NET_ADMIN"',
        "process.capabilities.effective: CAP_KILL is not in permitted (a "
        "capability must be permitted to be effective)",
        "process.capabilities.inheritable: CAP_CHOWN is not in bounding (the "
        "kernel refuses inheritable capabilities outside it)",
    ]


def test_plan_capabilities_ambient_needs_permitted_and_inheritable():
    runc_spec = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    plan = caps.plan_capabilities(
        Capabilities(
            bounding=runc_spec,
            effective=runc_spec,
            permitted=runc_spec,
            inheritable=("CAP_KILL",),
            ambient=runc_spec,
        )
    )
    assert plan.ambient == numbers("CAP_KILL")
    assert plan.ignored_ambient == ("CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE")


def test_check_host_capabilities_names_the_missing_one():
    plan = caps.plan_capabilities(
        Capabilities(bounding=("CAP_KILL", "CAP_SYS_RESOURCE"))
    )
    with pytest.raises(UnsupportedError) as info:
        caps.check_host_capabilities(plan, host_bounding=numbers("CAP_KILL"))
    assert str(info.value) == (
        "capability CAP_SYS_RESOURCE is not in this host's bounding set: the "
        "container cannot have it"
    )


def test_check_host_capabilities_names_several():
    resource = ("CAP_SYS_RESOURCE",)
    plan = caps.plan_capabilities(
        Capabilities(bounding=("CAP_BPF",), effective=resource, permitted=resource)
    )
    with pytest.raises(UnsupportedError) as info:
        caps.check_host_capabilities(plan, host_bounding=frozenset())
    assert str(info.value) == (
        "capabilities CAP_SYS_RESOURCE, CAP_BPF are not in this host's bounding "
        "set: the container cannot have them"
    )


def test_check_host_capabilities_passes_when_host_has_all():
    plan = caps.plan_capabilities(Capabilities(*(("CAP_KILL",),) * 5))
    caps.check_host_capabilities(plan, host_bounding=numbers("CAP_KILL", "CAP_BPF"))
    caps.check_host_capabilities(None, host_bounding=frozenset())


def test_masks_round_trip():
    some = numbers("CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE")
    assert caps.set_to_mask(some) == (1 << 0) | (1 << 10) | (1 << 40)
    assert caps.mask_to_set(caps.set_to_mask(some)) == some
    assert caps.set_to_mask(frozenset()) == 0
