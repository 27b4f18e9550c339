"""Unit tests of cgroup placement: mount table parsing, paths, ownership.

The manager tests run on plain directories in a temp dir (rmdir and mkdir
behave the same there); the real cgroupfs is exercised in
tests/integration/test_cgroups_kernel.py.
"""

from __future__ import annotations

import os

import pytest

from pyruntime.cgroups import host, load_manager, open_manager, paths
from pyruntime.cgroups.manager import Manager
from pyruntime.errors import (
    ConfigError,
    InvalidIdError,
    StateCorruptError,
    UnsupportedError,
)

HYBRID_MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 80 0:32 /docker/abc /mnt/memory rw - cgroup cgroup rw,memory
"""

V1_COMOUNTED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/pids ro,relatime - cgroup cgroup rw,pids
34 31 0:31 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
"""

V2_MOUNTINFO = """\
30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 23 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
"""


def test_parse_hybrid():
    mounts = host.parse_mountinfo(HYBRID_MOUNTINFO)
    assert host.mode_of(mounts) == "hybrid"
    assert host.hierarchies_of(mounts) == {
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "memory": "/sys/fs/cgroup/memory",  # the bind mount of a sub-cgroup is ignored
        "freezer": "/sys/fs/cgroup/freezer",
        "systemd": "/sys/fs/cgroup/systemd",
        "unified": "/sys/fs/cgroup/unified",
    }


def test_parse_v1_comounted_and_readonly():
    mounts = host.parse_mountinfo(V1_COMOUNTED)
    assert host.mode_of(mounts) == "v1"
    assert host.hierarchies_of(mounts) == {
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "net_cls": "/sys/fs/cgroup/net_cls,net_prio",
        "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
    }


def test_parse_v2_ignores_named_v1_hierarchy():
    mounts = host.parse_mountinfo(V2_MOUNTINFO)
    assert host.mode_of(mounts) == "v2"
    assert host.hierarchies_of(mounts) == {"unified": "/sys/fs/cgroup"}


def test_parse_unescapes_mount_points():
    text = "30 23 0:26 / /srv/cg\\040x rw - cgroup2 cgroup2 rw\n"
    assert host.parse_mountinfo(text)[0].mountpoint == "/srv/cg x"


def test_no_cgroup_mounted():
    with pytest.raises(UnsupportedError, match="no cgroup filesystem"):
        host.mode_of([])


def test_detect_mode_on_this_host():
    assert host.detect_mode() in ("v1", "hybrid", "v2")
    assert isinstance(host.list_controllers(), list)


@pytest.mark.parametrize(
    ("cgroups_path", "expected"),
    [
        (None, "/pyruntime/c1"),
        ("", "/pyruntime/c1"),
        ("/a/b", "/a/b"),
        ("a/b", "/a/b"),  # relative: under the hierarchy root
        ("/a/../../b/", "/b"),  # cannot climb above the root
        ("//a//b", "/a/b"),
        ("machine.slice:libpod:c1", "/machine.slice:libpod:c1"),  # literal
    ],
)
def test_resolve_inner_path(cgroups_path, expected):
    assert paths.resolve_inner_path(cgroups_path, "c1") == expected


@pytest.mark.parametrize("cgroups_path", ["/", "..", "/a/.."])
def test_resolve_refuses_root(cgroups_path):
    with pytest.raises(ConfigError, match="root cgroup"):
        paths.resolve_inner_path(cgroups_path, "c1")


def test_resolve_refuses_systemd():
    with pytest.raises(
        UnsupportedError, match="systemd cgroup driver is not supported"
    ):
        paths.resolve_inner_path("system.slice:runc:c1", "c1", systemd=True)


def test_open_manager_refuses_systemd():
    with pytest.raises(UnsupportedError, match="systemd cgroup driver"):
        open_manager(None, "c1", systemd=True)


@pytest.mark.parametrize("bad_id", ["a/b", "..", ""])
def test_resolve_refuses_bad_default_id(bad_id):
    with pytest.raises(InvalidIdError):
        paths.resolve_inner_path(None, bad_id)


def test_join_hierarchies():
    result = paths.join_hierarchies(
        "/pyruntime/c1",
        {"memory": "/sys/fs/cgroup/memory", "unified": "/sys/fs/cgroup"},
    )
    assert result == {
        "memory": "/sys/fs/cgroup/memory/pyruntime/c1",
        "unified": "/sys/fs/cgroup/pyruntime/c1",
    }


def test_missing_ancestors():
    assert paths.missing_ancestors("/cg/a/b/c", "/cg") == [
        "/cg/a",
        "/cg/a/b",
        "/cg/a/b/c",
    ]
    with pytest.raises(ValueError):
        paths.missing_ancestors("/other/a", "/cg")


def test_open_manager_paths_are_json_and_reloadable():
    mgr = open_manager("/pyruntime-unit/x", "x")
    saved = mgr.paths()
    assert all(v.endswith("/pyruntime-unit/x") for v in saved.values())
    assert load_manager(saved).paths() == saved
    assert load_manager(saved).mode == host.detect_mode()


@pytest.mark.parametrize("saved", [{}, {"memory": "relative/path"}, {"memory": 3}])
def test_load_manager_refuses_bad_state(saved):
    with pytest.raises(StateCorruptError):
        load_manager(saved)


# --------------------------------------------------- ownership on plain dirs


@pytest.fixture
def fake_mounts(tmp_path):
    mounts = {key: str(tmp_path / key) for key in ("memory", "pids")}
    for mount in mounts.values():
        os.mkdir(mount)
    return mounts


def test_create_records_only_new_dirs_and_destroy_removes_them(fake_mounts):
    os.makedirs(f"{fake_mounts['memory']}/shared")  # not ours
    dirs = paths.join_hierarchies("/shared/mid/c1", fake_mounts)
    mgr = Manager(dirs, mounts=fake_mounts)
    mgr.create()
    assert mgr.created_dirs() == [
        f"{fake_mounts['memory']}/shared/mid",
        f"{fake_mounts['memory']}/shared/mid/c1",
        f"{fake_mounts['pids']}/shared",
        f"{fake_mounts['pids']}/shared/mid",
        f"{fake_mounts['pids']}/shared/mid/c1",
    ]
    assert mgr.exists()
    os.mkdir(f"{dirs['memory']}/nested")  # made by the container: goes too
    mgr.destroy()
    assert not mgr.exists()
    assert os.listdir(f"{fake_mounts['memory']}/shared") == []
    assert os.listdir(fake_mounts["pids"]) == []
    mgr.destroy()  # already gone: fine


def test_destroy_keeps_shared_parent_in_use(fake_mounts):
    first = Manager(paths.join_hierarchies("/p/a", fake_mounts), mounts=fake_mounts)
    second = Manager(paths.join_hierarchies("/p/b", fake_mounts), mounts=fake_mounts)
    first.create()
    second.create()
    first.destroy()
    assert os.path.isdir(f"{fake_mounts['memory']}/p/b")
    second.destroy()
    # "p" was made by the first manager, which left it while it was in use;
    # the second found it existing, so it is not the second's to remove.
    assert os.listdir(f"{fake_mounts['memory']}/p") == []


def test_loaded_manager_removes_leaf_not_parents(fake_mounts):
    mgr = Manager(paths.join_hierarchies("/p/a", fake_mounts), mounts=fake_mounts)
    mgr.create()
    loaded = load_manager(mgr.paths())
    loaded.destroy()
    assert not loaded.exists()
    assert os.path.isdir(f"{fake_mounts['memory']}/p")


def test_existing_leaf_is_not_removed(fake_mounts):
    os.makedirs(f"{fake_mounts['memory']}/pre/c1")
    mgr = Manager(paths.join_hierarchies("/pre/c1", fake_mounts), mounts=fake_mounts)
    mgr.create()
    mgr.destroy()
    assert os.path.isdir(f"{fake_mounts['memory']}/pre/c1")
    assert not os.path.exists(f"{fake_mounts['pids']}/pre")


def test_apply_reports_missing_controller_and_file(fake_mounts):
    mgr = Manager(paths.join_hierarchies("/c", fake_mounts), mounts=fake_mounts)
    mgr.create()
    with pytest.raises(UnsupportedError) as err:
        mgr.apply({"network": {"classID": 1}})
    assert str(err.value) == (
        "cannot apply linux.resources.network.classID: `net_cls.classid` does not "
        "exist on this host (cgroup v1 controller `net_cls` is not mounted)"
    )
    with pytest.raises(
        UnsupportedError, match=r"`memory.limit_in_bytes` does not exist"
    ):
        mgr.apply({"memory": {"limit": 100}})


def test_apply_checks_every_file_before_writing(fake_mounts):
    mgr = Manager(paths.join_hierarchies("/c", fake_mounts), mounts=fake_mounts)
    mgr.create()
    pids_max = f"{mgr.paths()['pids']}/pids.max"
    # An empty plain file: cgroup writes do not truncate, a real one would.
    open(pids_max, "w").close()
    with pytest.raises(UnsupportedError, match=r"memory\.limit_in_bytes"):
        mgr.apply({"pids": {"limit": 5}, "memory": {"limit": 100}})
    with open(pids_max) as f:
        assert f.read() == ""  # nothing was written
    mgr.apply({"pids": {"limit": 5}})
    with open(pids_max) as f:
        assert f.read() == "5"
    os.remove(pids_max)
    mgr.destroy()
