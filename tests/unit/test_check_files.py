"""What ``pyruntime check`` looks at on disk: cgroup files and the container's view.

The cgroup cases build small fake hierarchies in a temporary directory; the
RootView cases a tiny rootfs with links and mounts. Nothing here needs root.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from pyruntime.cgroups.writes import Write
from pyruntime.check import cgroups
from pyruntime.check.rootview import (
    SEARCH,
    WRITE,
    Identity,
    RootView,
    blocked_on_the_way,
    clean,
    host_id,
    may_create_in,
)
from pyruntime.spec.model import IDMapping, Mount

# --- cgroup files ---------------------------------------------------------------


def v1_write(controller: str, filename: str, value="1", alternatives=()) -> Write:
    return Write(
        controller,
        filename,
        value,
        "linux.resources.x",
        controller,
        alternatives=alternatives,
    )


def v2_write(controller: str, filename: str, value="1") -> Write:
    return Write(controller, filename, value, "linux.resources.x", "unified")


def make_files(directory: Path, *names: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("")
    return directory


def test_a_file_in_the_nearest_existing_cgroup_is_found(tmp_path):
    root = make_files(tmp_path / "memory", "memory.limit_in_bytes")
    parent = make_files(root / "pyruntime", "memory.limit_in_bytes")
    probe = cgroups.nearest_existing(str(parent / "c1"), str(root))
    assert probe == str(parent)
    write = v1_write("memory", "memory.limit_in_bytes")
    assert cgroups.find_file(write, probe, str(root)) == ("memory.limit_in_bytes", "1")


def test_a_missing_file_below_the_root_is_missing(tmp_path):
    root = make_files(tmp_path / "blkio")
    parent = make_files(root / "pyruntime", "blkio.throttle.read_bps_device")
    write = v1_write("blkio", "blkio.weight", alternatives=(("blkio.bfq.weight", "5"),))
    assert cgroups.find_file(write, str(parent), str(root)) is None
    make_files(parent, "blkio.bfq.weight")
    found = cgroups.find_file(write, str(parent), str(root))
    assert found == ("blkio.bfq.weight", "5")


def test_files_that_never_exist_at_the_root(tmp_path):
    pids = make_files(tmp_path / "pids", "pids.current")
    assert cgroups.find_file(v1_write("pids", "pids.max"), str(pids), str(pids))
    blkio = make_files(tmp_path / "blkio", "blkio.throttle.read_bps_device")
    weight = v1_write(
        "blkio", "blkio.weight", alternatives=(("blkio.bfq.weight", "5"),)
    )
    assert cgroups.find_file(weight, str(blkio), str(blkio)) is None
    make_files(blkio, "blkio.bfq.io_service_bytes")  # BFQ is there
    assert cgroups.find_file(weight, str(blkio), str(blkio)) == (
        "blkio.bfq.weight",
        "5",
    )
    memory = make_files(tmp_path / "memory")
    kmem = v1_write("memory", "memory.kmem.limit_in_bytes")
    assert cgroups.find_file(kmem, str(memory), str(memory)) is None


def test_v2_files_follow_the_root_controllers(tmp_path):
    root = make_files(tmp_path / "unified")
    (root / "cgroup.controllers").write_text("cpu pids\n")
    assert cgroups.find_file(v2_write("pids", "pids.max"), str(root), str(root))
    assert not cgroups.find_file(v2_write("memory", "memory.max"), str(root), str(root))
    # Below the root, a controller not enabled yet is judged from the root.
    parent = make_files(root / "pyruntime", "cgroup.procs")
    (parent / "cgroup.controllers").write_text("cpu\n")
    assert cgroups.find_file(v2_write("pids", "pids.max"), str(parent), str(root))
    # An enabled controller whose file is missing: really missing.
    assert not cgroups.find_file(v2_write("cpu", "cpu.idle"), str(parent), str(root))


#: The patterns the string code of check.cgroups stands for.
DEVICE_FILES = r"^(blkio\.(throttle\.|bfq\.|leaf_)?\w*device|io\.\w+)$"
DEVICE_VALUE = r"^(\d+):(\d+) "


@pytest.mark.parametrize(
    "name",
    [
        *("io.max", "io.weight", "io.bfq.weight", "io.", "io.a-b", "iox.max"),
        *("blkio.weight_device", "blkio.leaf_weight_device", "blkio.device"),
        *("blkio.throttle.read_bps_device", "blkio.throttle.device"),
        *("blkio.bfq.weight_device", "blkio.throttle.bfq.device"),
        *("blkio.weight", "blkio.bfq.weight", "blkio.x-device", "blkio.a.device"),
        *("blkio.throttle.io_serviced", "devices.allow", "cpu.max", "", "io"),
    ],
)
def test_device_files_as_the_pattern_says(name):
    assert cgroups.is_device_file(name) == bool(re.match(DEVICE_FILES, name))


@pytest.mark.parametrize(
    "value",
    [
        *("8:0 100", "254:0 rbps=1 wbps=2", "8:0", "8:0  1", " 8:0 1", "8:a 1"),
        *("8:0:1 2", "a:0 1", ":0 1", "8: 1", "8:0\t1", "1\u0661:0 1", ""),
    ],
)
def test_device_values_as_the_pattern_says(value):
    match = re.match(DEVICE_VALUE, value)
    assert cgroups.device_of(value) == (f"{match[1]}:{match[2]}" if match else None)


@pytest.mark.parametrize(
    ("text", "numbers", "canonical"),
    [("0-3,5", {0, 1, 2, 3, 5}, "0-3,5"), ("7", {7}, "7"), ("1,0", {0, 1}, "0-1")],
)
def test_cpu_lists(text, numbers, canonical):
    assert cgroups.parse_list(text) == numbers
    assert cgroups.format_list(numbers) == canonical


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "0-"])
def test_bad_cpu_lists(text):
    with pytest.raises(ValueError):
        cgroups.parse_list(text)


# --- ids and permissions -------------------------------------------------------------


MAPS = (IDMapping(0, 100000, 10), IDMapping(1000, 201000, 1))


def test_host_ids():
    assert host_id(0, MAPS) == 100000
    assert host_id(9, MAPS) == 100009
    assert host_id(1000, MAPS) == 201000
    assert host_id(10, MAPS) is None
    assert host_id(5, ()) is None


def fake_stat(mode: int, uid=0, gid=0) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


def test_permissions_follow_the_kernel_rules():
    directory = stat.S_IFDIR | 0o755
    host_root = Identity(0, 0)
    mapped_root = Identity(100000, 100000, userns=(MAPS, MAPS))
    assert host_root.may(fake_stat(directory), WRITE | SEARCH)
    # Container root has no power over a directory of the host's root...
    assert not mapped_root.may(fake_stat(directory), WRITE)
    assert mapped_root.may(fake_stat(directory), SEARCH)
    # ...but it has over one whose owner is mapped into its namespace.
    assert mapped_root.may(fake_stat(directory, 100005, 100005), WRITE)
    user = Identity(1000, 1000, root=False)
    program = stat.S_IFREG | 0o750
    assert not user.may(fake_stat(program), SEARCH)
    assert Identity(1000, 0, root=False).may(fake_stat(program), SEARCH)
    assert not host_root.may(fake_stat(stat.S_IFREG | 0o644), SEARCH)


@pytest.fixture
def open_dir():
    """A world-searchable directory (pytest's tmp_path is not)."""
    path = Path(tempfile.mkdtemp(prefix="pyrt-check-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_reaching_and_creating(open_dir):
    closed = open_dir / "closed"
    closed.mkdir(mode=0o700)
    target = closed / "rootfs"
    target.mkdir()
    somebody = Identity(100000, 100000, userns=(MAPS, MAPS))
    assert blocked_on_the_way(str(target), somebody) == str(closed)
    assert blocked_on_the_way(str(target), Identity(0, 0)) is None
    assert may_create_in(str(target / "a" / "b"), Identity(0, 0)) == (True, str(target))
    allowed, parent = may_create_in(str(target / "x"), somebody)
    assert (allowed, parent) == (False, str(target))


# --- the container's view -------------------------------------------------------------


@pytest.fixture
def view(tmp_path: Path) -> RootView:
    rootfs = tmp_path / "rootfs"
    for directory in ("bin", "usr/bin", "etc"):
        (rootfs / directory).mkdir(parents=True)
    (rootfs / "bin" / "busybox").write_text("")
    (rootfs / "usr" / "bin" / "sh").symlink_to("../../bin/busybox")
    (rootfs / "escape").symlink_to("/etc/hostname")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file").write_text("x")
    mounts = (
        Mount("/tmp", "tmpfs", "tmpfs"),
        Mount("/srv/data", "bind", "data", ("rbind",)),
    )
    return RootView(str(rootfs), mounts, str(tmp_path))


def test_paths_resolve_inside_the_rootfs(view):
    sh = view.locate("/usr/bin/sh")
    assert (sh.kind, sh.exists) == ("rootfs", True)
    assert sh.host_path == os.path.join(view.rootfs, "bin/busybox")
    # A link out of the rootfs stays inside it: /etc/hostname of the rootfs.
    escape = view.locate("/escape")
    assert (escape.kind, escape.exists) == ("rootfs", False)
    assert escape.host_path.startswith(view.rootfs)


def test_paths_on_mounts(view):
    data = view.locate("/srv/data/file")
    assert (data.kind, data.exists) == ("bind", True)
    assert data.host_path == os.path.join(view.bundle, "data", "file")
    tmp = view.locate("/tmp/anything")
    assert (tmp.kind, tmp.host_path) == ("mount", None)
    # Mounts count only from their place in the list on.
    assert view.locate("/tmp/x", before=0).kind == "rootfs"


def test_clean():
    assert clean("//a/./b/") == "/a/b"
    assert clean("a/../../b") == "/b"
    assert clean("") == "/"
