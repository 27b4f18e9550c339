"""Mount option parsing and bind-remount flag computation (pure, no root)."""

from __future__ import annotations

import os

import pytest

from pyruntime.linux import syscalls as sc
from pyruntime.rootfs.cgroupfs import parse_cgroup_mounts
from pyruntime.rootfs.options import (
    SUPPORTED_MOUNT_OPTIONS,
    UNIMPLEMENTED_MOUNT_OPTIONS,
    MountOptions,
    bind_remount_flags,
    mount_flags_from_statvfs,
    needs_bind_remount,
    parse_mount_options,
    propagation_flags,
)

FLAG_CASES = [
    ("ro", sc.MS_RDONLY, "rw"),
    ("nosuid", sc.MS_NOSUID, "suid"),
    ("nodev", sc.MS_NODEV, "dev"),
    ("noexec", sc.MS_NOEXEC, "exec"),
    ("sync", sc.MS_SYNCHRONOUS, "async"),
    ("mand", sc.MS_MANDLOCK, "nomand"),
    ("noatime", sc.MS_NOATIME, "atime"),
    ("nodiratime", sc.MS_NODIRATIME, "diratime"),
    ("relatime", sc.MS_RELATIME, "norelatime"),
    ("strictatime", sc.MS_STRICTATIME, "nostrictatime"),
    ("lazytime", sc.MS_LAZYTIME, "nolazytime"),
    ("iversion", sc.MS_I_VERSION, "noiversion"),
    ("nosymfollow", sc.MS_NOSYMFOLLOW, "symfollow"),
    ("silent", sc.MS_SILENT, "loud"),
]


@pytest.mark.parametrize(("option", "flag", "opposite"), FLAG_CASES)
def test_flag_option_sets_and_opposite_clears(option, flag, opposite):
    parsed = parse_mount_options([option])
    assert parsed.flags == flag
    assert parsed.clear_flags == 0
    cleared = parse_mount_options([option, opposite])
    assert cleared.flags == 0
    assert cleared.clear_flags == flag
    again = parse_mount_options([opposite, option])
    assert again.flags == flag
    assert again.clear_flags == 0


@pytest.mark.parametrize(
    ("option", "flag"),
    [("dirsync", sc.MS_DIRSYNC), ("remount", sc.MS_REMOUNT), ("defaults", 0)],
)
def test_one_way_flag_options(option, flag):
    parsed = parse_mount_options([option])
    assert parsed.flags == flag
    assert parsed.data == ""


def test_runc_default_shm_options():
    parsed = parse_mount_options(
        ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
    )
    assert parsed.flags == sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_NODEV
    assert parsed.data == "mode=1777,size=65536k"
    assert not parsed.bind


def test_unknown_options_become_data_in_order():
    parsed = parse_mount_options(
        ["newinstance", "ro", "ptmxmode=0666", "mode=0620", "gid=5", "weird"]
    )
    assert parsed.data == "newinstance,ptmxmode=0666,mode=0620,gid=5,weird"
    assert parsed.flags == sc.MS_RDONLY


@pytest.mark.parametrize("options", [None, [], ["", ""]])
def test_empty_options(options):
    assert parse_mount_options(options) == MountOptions()


def test_bind_and_rbind():
    bind = parse_mount_options(["bind", "ro"])
    assert bind.bind and not bind.recursive_bind
    assert bind.flags == sc.MS_RDONLY
    rbind = parse_mount_options(["rbind"])
    assert rbind.bind and rbind.recursive_bind
    both = parse_mount_options(["rbind", "bind"])
    assert both.recursive_bind
    assert sc.MS_BIND & (bind.flags | rbind.flags) == 0


@pytest.mark.parametrize(
    ("option", "flags"),
    [
        ("private", sc.MS_PRIVATE),
        ("rprivate", sc.MS_PRIVATE | sc.MS_REC),
        ("shared", sc.MS_SHARED),
        ("rshared", sc.MS_SHARED | sc.MS_REC),
        ("slave", sc.MS_SLAVE),
        ("rslave", sc.MS_SLAVE | sc.MS_REC),
        ("unbindable", sc.MS_UNBINDABLE),
        ("runbindable", sc.MS_UNBINDABLE | sc.MS_REC),
    ],
)
def test_propagation_options(option, flags):
    parsed = parse_mount_options(["bind", option])
    assert parsed.propagation == (flags,)
    assert parsed.flags == 0
    assert propagation_flags(option) == flags


def test_propagation_keeps_order():
    parsed = parse_mount_options(["rshared", "ro", "private"])
    assert parsed.propagation == (sc.MS_SHARED | sc.MS_REC, sc.MS_PRIVATE)


def test_propagation_flags_unset_and_unknown():
    assert propagation_flags(None) is None
    assert propagation_flags("") is None
    with pytest.raises(ValueError, match="sideways"):
        propagation_flags("sideways")


RECURSIVE_CASES = [
    ("rro", sc.MOUNT_ATTR_RDONLY, "rrw"),
    ("rnosuid", sc.MOUNT_ATTR_NOSUID, "rsuid"),
    ("rnodev", sc.MOUNT_ATTR_NODEV, "rdev"),
    ("rnoexec", sc.MOUNT_ATTR_NOEXEC, "rexec"),
    ("rnodiratime", sc.MOUNT_ATTR_NODIRATIME, "rdiratime"),
    ("rnosymfollow", sc.MOUNT_ATTR_NOSYMFOLLOW, "rsymfollow"),
]


@pytest.mark.parametrize(("option", "attr", "opposite"), RECURSIVE_CASES)
def test_recursive_attribute_options(option, attr, opposite):
    parsed = parse_mount_options([option])
    assert (parsed.attr_set, parsed.attr_clear) == (attr, 0)
    assert parsed.has_recursive_attrs
    assert parsed.flags == 0
    cleared = parse_mount_options([option, opposite])
    assert (cleared.attr_set, cleared.attr_clear) == (0, attr)
    assert cleared.has_recursive_attrs


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("rnoatime", sc.MOUNT_ATTR_NOATIME),
        ("ratime", sc.MOUNT_ATTR_RELATIME),
        ("rrelatime", sc.MOUNT_ATTR_RELATIME),
        ("rnorelatime", sc.MOUNT_ATTR_STRICTATIME),
        ("rstrictatime", sc.MOUNT_ATTR_STRICTATIME),
        ("rnostrictatime", sc.MOUNT_ATTR_RELATIME),
    ],
)
def test_recursive_atime_is_one_value_with_full_clear_mask(option, value):
    parsed = parse_mount_options([option])
    assert parsed.attr_set == value
    # The kernel rejects a partial MOUNT_ATTR__ATIME in attr_clr.
    assert parsed.attr_clear == sc.MOUNT_ATTR__ATIME
    assert parsed.has_recursive_attrs


def test_recursive_atime_last_wins_and_combines_with_flags():
    parsed = parse_mount_options(["rnoatime", "rro", "rstrictatime"])
    assert parsed.attr_set == sc.MOUNT_ATTR_STRICTATIME | sc.MOUNT_ATTR_RDONLY
    assert parsed.attr_clear == sc.MOUNT_ATTR__ATIME


def test_atime_flags_last_one_wins():
    assert parse_mount_options(["noatime", "strictatime"]).flags == sc.MS_STRICTATIME
    assert parse_mount_options(["strictatime", "relatime"]).flags == sc.MS_RELATIME
    both = parse_mount_options(["noatime", "nodiratime"])
    assert both.flags == sc.MS_NOATIME | sc.MS_NODIRATIME


def test_idmap_and_tmpcopyup_are_parsed():
    assert parse_mount_options(["idmap"]).idmap
    ridmap = parse_mount_options(["ridmap"])
    assert ridmap.idmap and ridmap.recursive_idmap
    assert parse_mount_options(["tmpcopyup"]).tmpcopyup
    assert parse_mount_options(["idmap", "tmpcopyup"]).data == ""


def test_supported_list():
    names = set(SUPPORTED_MOUNT_OPTIONS)
    assert list(SUPPORTED_MOUNT_OPTIONS) == sorted(names)
    for option, _, opposite in FLAG_CASES + RECURSIVE_CASES:
        assert {option, opposite} <= names
    assert {"bind", "rbind", "tmpcopyup", "rnoatime", "ratime", "rprivate"} <= names
    assert not names & set(UNIMPLEMENTED_MOUNT_OPTIONS)
    # Every listed option is understood (none falls through to data).
    for option in SUPPORTED_MOUNT_OPTIONS:
        assert parse_mount_options([option]).data == ""


def test_needs_bind_remount():
    assert not needs_bind_remount(parse_mount_options(["rbind"]))
    assert not needs_bind_remount(parse_mount_options(["rbind", "rprivate"]))
    assert needs_bind_remount(parse_mount_options(["bind", "ro"]))
    assert needs_bind_remount(parse_mount_options(["bind", "suid"]))
    assert needs_bind_remount(parse_mount_options(["bind", "noatime"]))


BASE = sc.MS_REMOUNT | sc.MS_BIND


def test_bind_remount_keeps_flags_of_the_source():
    current = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME
    flags = bind_remount_flags(current, sc.MS_RDONLY, 0)
    assert flags == BASE | current | sc.MS_RDONLY


def test_bind_remount_explicit_clear_wins():
    current = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_RDONLY | sc.MS_RELATIME
    flags = bind_remount_flags(current, 0, sc.MS_RDONLY | sc.MS_NOSUID)
    assert flags == BASE | sc.MS_NODEV | sc.MS_RELATIME


def test_bind_remount_atime_value_replaced():
    current = sc.MS_NOATIME | sc.MS_NODIRATIME
    flags = bind_remount_flags(current, sc.MS_STRICTATIME, 0)
    assert flags == BASE | sc.MS_STRICTATIME | sc.MS_NODIRATIME


@pytest.mark.parametrize(
    ("current", "cleared", "expected"),
    [
        (sc.MS_NOATIME, sc.MS_NOATIME, sc.MS_RELATIME),
        (sc.MS_RELATIME, sc.MS_RELATIME, sc.MS_STRICTATIME),
        (sc.MS_STRICTATIME, sc.MS_STRICTATIME, sc.MS_RELATIME),
    ],
)
def test_bind_remount_cleared_atime_names_the_new_value(current, cleared, expected):
    # With no atime flag at all a remount would silently keep the old one.
    assert bind_remount_flags(current, 0, cleared) == BASE | expected


def test_mount_flags_from_statvfs():
    f_flag = os.ST_RDONLY | os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC
    assert mount_flags_from_statvfs(f_flag | os.ST_RELATIME) == (
        sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME
    )
    assert mount_flags_from_statvfs(os.ST_NOATIME | os.ST_NODIRATIME) == (
        sc.MS_NOATIME | sc.MS_NODIRATIME
    )
    assert mount_flags_from_statvfs(0) == sc.MS_STRICTATIME
    assert mount_flags_from_statvfs(sc.ST_NOSYMFOLLOW | os.ST_RELATIME) == (
        sc.MS_NOSYMFOLLOW | sc.MS_RELATIME
    )


HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:39 / /mnt/with\\040space rw shared:3 - cgroup cgroup rw,release_agent=/x,pids
"""


def test_parse_cgroup_mounts_selectors():
    found = parse_cgroup_mounts(HYBRID_MOUNTINFO)
    assert [entry.mountpoint for entry in found] == [
        "/sys/fs/cgroup/cpu,cpuacct",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/mnt/with space",
    ]
    assert [entry.selector for entry in found] == [
        "cpu,cpuacct",
        "name=systemd",
        None,
        "pids",
    ]
