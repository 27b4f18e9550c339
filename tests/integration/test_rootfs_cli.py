"""The root filesystem through the CLI (issue 2, point 7).

tests/integration/test_rootfs_kernel.py drives the rootfs package directly;
here the same features are asked for in config.json and observed from inside
the container: its /proc/self/mountinfo, ``stat`` of its files and devices,
its sysctls. Host-side checks make sure nothing leaked out of the rootfs.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import create_refused, reap

pytestmark = pytest.mark.root


@dataclass
class MountInfo:
    """One /proc/<pid>/mountinfo line."""

    target: str
    options: set[str]
    tags: list[str]
    fstype: str
    source: str
    super_options: set[str]

    @classmethod
    def parse(cls, line: str) -> MountInfo:
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, source, super_options = right.split(" ", 2)
        return cls(
            target=fields[4],
            options=set(fields[5].split(",")),
            tags=fields[6:],
            fstype=fstype,
            source=source,
            super_options=set(super_options.strip().split(",")),
        )


def mount_table(text: str) -> list[MountInfo]:
    return [MountInfo.parse(line) for line in text.splitlines() if " - " in line]


def mounted_at(table: list[MountInfo], target: str) -> MountInfo:
    """The topmost mount on ``target``."""
    found = [entry for entry in table if entry.target == target]
    assert found, f"nothing mounted on {target}"
    return found[-1]


def run_script(runtime, bundle, script: str, *flags: str):
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", script]))
    cid = runtime.new_id()
    return runtime("run", "--bundle", str(bundle.path), *flags, cid)


def output_of(runtime, bundle, script: str, *flags: str) -> str:
    result = run_script(runtime, bundle, script, *flags)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def container_mounts(runtime, bundle, *flags: str) -> list[MountInfo]:
    return mount_table(output_of(runtime, bundle, "cat /proc/self/mountinfo", *flags))


def add_mounts(bundle, *mounts: dict) -> None:
    bundle.edit(lambda c: c["mounts"].extend(mounts))


def host_mount_targets() -> set[str]:
    with open("/proc/self/mountinfo") as handle:
        return {line.split()[4] for line in handle}


@pytest.fixture
def host_dir(tmp_path):
    """A host directory with a file, to bind into containers."""
    path = tmp_path / "host-data"
    path.mkdir()
    (path / "file.txt").write_text("from the host\n")
    return path


@pytest.fixture
def host_dir_with_submount(host_dir):
    """``host_dir`` with a tmpfs mounted on its ``sub`` directory."""
    sub = host_dir / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", sub], check=True)
    try:
        (sub / "inner.txt").write_text("in the submount\n")
        yield host_dir
    finally:
        subprocess.run(["umount", "-l", sub], check=False)


# ------------------------------------------------------------------ the root


def test_readonly_root(runtime, bundle):
    bundle.edit(lambda c: c["root"].update(readonly=True))
    result = run_script(runtime, bundle, "touch /x; echo ok > /dev/shm/y && echo shm")
    assert result.returncode == 0, result.stderr
    assert "Read-only file system" in result.stderr
    assert result.stdout == "shm\n"
    assert not (bundle.rootfs / "x").exists()


def test_readonly_root_shows_in_mountinfo(runtime, bundle):
    bundle.edit(lambda c: c["root"].update(readonly=True))
    assert "ro" in mounted_at(container_mounts(runtime, bundle), "/").options


def test_writable_root_by_default(runtime, bundle):
    assert output_of(runtime, bundle, "touch /x && echo ok") == "ok\n"
    assert (bundle.rootfs / "x").exists()


@pytest.fixture
def shared_rootfs(bundle):
    """Make the bundle's rootfs a shared mount on the host.

    Without a shared peer on the host (this machine's / is private) a slave
    mount has no master and looks private: propagation could not be seen.
    """
    rootfs = str(bundle.rootfs)
    subprocess.run(["mount", "--bind", rootfs, rootfs], check=True)
    mounted = [rootfs]
    try:
        subprocess.run(["mount", "--make-shared", rootfs], check=True)
        yield mounted
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", target], check=False)


@pytest.mark.parametrize(
    ("propagation", "present", "absent"),
    [
        ("shared", ["shared:"], []),
        ("rslave", ["master:"], ["shared:"]),
        ("private", [], ["shared:", "master:"]),
        ("rprivate", [], ["shared:", "master:"]),
        ("unbindable", ["unbindable"], ["shared:"]),
    ],
)
def test_rootfs_propagation(
    runtime, bundle, shared_rootfs, propagation, present, absent
):
    bundle.edit(lambda c: c["linux"].update(rootfsPropagation=propagation))
    tags = mounted_at(container_mounts(runtime, bundle), "/").tags
    for tag in present:
        assert any(t.startswith(tag) for t in tags), tags
    for tag in absent:
        assert not any(t.startswith(tag) for t in tags), tags


@pytest.mark.parametrize(
    ("propagation", "seen"), [("rslave", True), ("private", False)]
)
def test_rootfs_propagation_of_a_host_mount(
    runtime, bundle, shared_rootfs, tmp_path, propagation, seen
):
    (bundle.rootfs / "mnt").mkdir(exist_ok=True)

    def edit(config):
        config["linux"]["rootfsPropagation"] = propagation
        config["process"]["args"] = ["sleep", "30"]

    bundle.edit(edit)
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    result = runtime.create(bundle, cid, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    late = str(bundle.rootfs / "mnt")
    subprocess.run(["mount", "-t", "tmpfs", "late", late], check=True)
    shared_rootfs.append(late)
    with open(f"/proc/{pid}/mountinfo") as handle:
        targets = [line.split()[4] for line in handle]
    assert ("/mnt" in targets) is seen, targets
    runtime.ok("delete", cid)
    assert reap(pid) == 137


def test_container_mounts_do_not_reach_the_host(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "30"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    pid = int(pid_file.read_text())
    assert str(bundle.rootfs) not in " ".join(host_mount_targets())
    runtime.ok("delete", cid)
    assert reap(pid) == 137


# ------------------------------------------------------------------ mounts


def test_mounts_in_order_with_options(runtime, bundle, host_dir):
    add_mounts(
        bundle,
        {
            "destination": "/data",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=710"],
        },
        {
            "destination": "/data/host",
            "type": "bind",
            "source": str(host_dir),
            "options": ["bind", "ro", "noatime"],
        },
        {
            "destination": "/data/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["strictatime", "nodiratime", "mode=1777"],
        },
    )
    out = output_of(
        runtime,
        bundle,
        "stat -c '%a %n' /data /data/scratch; cat /data/host/file.txt; "
        "touch /data/host/new 2>&1; cat /proc/self/mountinfo",
    )
    lines = out.splitlines()
    assert lines[0] == "710 /data"
    assert lines[1] == "1777 /data/scratch"
    assert lines[2] == "from the host"
    assert "Read-only file system" in lines[3]
    table = mount_table("\n".join(lines[4:]))
    targets = [entry.target for entry in table]
    order = [targets.index(t) for t in ("/data", "/data/host", "/data/scratch")]
    assert order == sorted(order), targets
    data = mounted_at(table, "/data")
    assert data.fstype == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= data.options
    assert "size=1024k" in data.super_options
    host = mounted_at(table, "/data/host")
    assert {"ro", "noatime"} <= host.options
    scratch = mounted_at(table, "/data/scratch")
    assert "nodiratime" in scratch.options
    assert not {"relatime", "noatime"} & scratch.options  # strictatime
    assert not (host_dir / "new").exists()


def test_bind_is_not_recursive_and_rbind_is(runtime, bundle, host_dir_with_submount):
    source = str(host_dir_with_submount)
    add_mounts(
        bundle,
        {
            "destination": "/plain",
            "type": "bind",
            "source": source,
            "options": ["bind"],
        },
        {
            "destination": "/deep",
            "type": "bind",
            "source": source,
            "options": ["rbind"],
        },
    )
    out = output_of(runtime, bundle, "ls /plain/sub; echo --; cat /deep/sub/inner.txt")
    plain, deep = out.split("--\n")
    assert plain == ""  # the empty directory under the submount
    assert deep == "in the submount\n"


def test_recursive_read_only_bind(runtime, bundle, host_dir_with_submount):
    source = str(host_dir_with_submount)
    add_mounts(
        bundle,
        {
            "destination": "/deep",
            "type": "bind",
            "source": source,
            "options": ["rbind", "rro"],
        },
    )
    result = run_script(runtime, bundle, "touch /deep/a; touch /deep/sub/b")
    assert result.stderr.count("Read-only file system") == 2, result.stderr
    assert not (host_dir_with_submount / "sub" / "b").exists()


def test_mount_propagation_option(runtime, bundle, host_dir):
    add_mounts(
        bundle,
        {
            "destination": "/shared",
            "type": "bind",
            "source": str(host_dir),
            "options": ["rbind", "rshared"],
        },
        {
            "destination": "/private",
            "type": "bind",
            "source": str(host_dir),
            "options": ["rbind", "rprivate"],
        },
    )
    table = container_mounts(runtime, bundle)
    assert any(t.startswith("shared:") for t in mounted_at(table, "/shared").tags)
    assert mounted_at(table, "/private").tags == []


def test_special_filesystems_present(runtime, bundle):
    add_mounts(
        bundle,
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    )
    out = output_of(
        runtime,
        bundle,
        "cat /proc/self/mountinfo; echo --; ls /sys/fs/cgroup; "
        "cat /sys/fs/cgroup/memory/cgroup.procs",
    )
    info, listing = out.split("--\n")
    table = mount_table(info)
    expected = {
        "/proc": "proc",
        "/sys": "sysfs",
        "/dev": "tmpfs",
        "/dev/pts": "devpts",
        "/dev/shm": "tmpfs",
        "/dev/mqueue": "mqueue",
    }
    for target, fstype in expected.items():
        assert mounted_at(table, target).fstype == fstype, target
    assert "ro" in mounted_at(table, "/sys").options
    assert "ptmxmode=666" in mounted_at(table, "/dev/pts").super_options
    cgroups = [entry for entry in table if entry.target.startswith("/sys/fs/cgroup")]
    assert cgroups, "no cgroup mount"
    names = listing.split()
    assert "memory" in names and "pids" in names
    assert "1" in names, "the container's own cgroup is not the one mounted"


def test_mount_with_unknown_filesystem_is_refused(runtime, bundle):
    add_mounts(bundle, {"destination": "/x", "type": "nosuchfs", "source": "none"})
    create_refused(runtime, bundle, "/x", "no such device")


def test_missing_bind_source_is_refused(runtime, bundle, tmp_path):
    missing = str(tmp_path / "missing")
    add_mounts(
        bundle,
        {"destination": "/x", "type": "bind", "source": missing, "options": ["bind"]},
    )
    create_refused(runtime, bundle, missing, "no such file or directory")


# ------------------------------------------------- symlinks and pivot_root


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_symlinked_destination_stays_in_the_rootfs(runtime, bundle, tmp_path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    if kind == "absolute":
        target = str(outside)
    else:
        target = "../" * (len(bundle.rootfs.parts) + 2) + str(outside).lstrip("/")
    (bundle.rootfs / "escape").symlink_to(target)
    add_mounts(
        bundle,
        {"destination": "/escape", "type": "tmpfs", "source": "tmpfs"},
    )
    script = "touch /escape/made-inside; grep -c tmpfs /proc/self/mountinfo"
    assert int(output_of(runtime, bundle, script)) >= 3
    assert list(outside.iterdir()) == [], "the mount reached the host directory"
    assert str(outside) not in host_mount_targets()


def test_no_pivot(runtime, bundle, tmp_path):
    (bundle.rootfs / "marker").write_text("in the rootfs\n")
    out = output_of(runtime, bundle, "cat /marker; ls /", "--no-pivot")
    marker, *listing = out.splitlines()
    assert marker == "in the rootfs"
    assert {"bin", "marker", "proc"} <= set(listing)


# ---------------------------------------------------------------- devices


def test_default_devices_and_links(runtime, bundle):
    script = (
        "for d in null zero full random urandom tty; do "
        "stat -c '%n %F %t:%T %a' /dev/$d; done; "
        "for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); "
        "done; echo x > /dev/null && head -c 4 /dev/zero | wc -c"
    )
    lines = output_of(runtime, bundle, script).splitlines()
    numbers = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8"}
    numbers.update(urandom="1:9", tty="5:0")
    for line, (name, number) in zip(lines, numbers.items(), strict=False):
        assert line == f"/dev/{name} character special file {number} 666", line
    links = dict(line.split() for line in lines[6:11])
    assert links == {
        "/dev/fd": "/proc/self/fd",
        "/dev/stdin": "/proc/self/fd/0",
        "/dev/stdout": "/proc/self/fd/1",
        "/dev/stderr": "/proc/self/fd/2",
        "/dev/ptmx": "pts/ptmx",
    }
    assert lines[11] == "4"


def test_configured_devices_with_mode_and_owner(runtime, bundle):
    devices = [
        {
            "path": "/dev/mynull",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o620,
            "uid": 1000,
            "gid": 5,
        },
        {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o600},
    ]
    bundle.edit(lambda c: c["linux"].update(devices=devices))
    script = (
        "ls -ln /dev/mynull; stat -c '%F %t:%T %a %u %g' /dev/mynull "
        "/dev/sub/myzero /dev/myfifo"
    )
    ls_line, mynull, myzero, myfifo = output_of(runtime, bundle, script).splitlines()
    assert ls_line.split()[:4] == ["crw--w----", "1", "1000", "5"]
    assert mynull == "character special file 1:3 620 1000 5"
    assert myzero.startswith("character special file 1:5 ")
    assert myfifo == "fifo 0:0 600 0 0"


def test_device_with_relative_path_is_refused(runtime, bundle):
    devices = [{"path": "dev/x", "type": "c", "major": 1, "minor": 3}]
    bundle.edit(lambda c: c["linux"].update(devices=devices))
    create_refused(runtime, bundle, "linux.devices[0].path")


# ------------------------------------------------------- names and sysctls


def test_hostname_without_uts_namespace_is_refused(runtime, bundle):
    def edit(config):
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "uts"
        ]

    bundle.edit(edit)
    create_refused(runtime, bundle, "hostname", "UTS namespace")


def test_namespaced_sysctls_applied(runtime, bundle):
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_shmmax = Path("/proc/sys/kernel/shmmax").read_text()
    sysctl = {
        "net.ipv4.ip_forward": "1",
        "net.ipv4.ping_group_range": "0 0",
        "kernel.shmmax": "4294967296",
        "kernel.msgmax": "16384",
    }
    bundle.edit(lambda c: c["linux"].update(sysctl=sysctl))
    out = output_of(
        runtime,
        bundle,
        "cd /proc/sys; cat net/ipv4/ip_forward net/ipv4/ping_group_range "
        "kernel/shmmax kernel/msgmax",
    )
    assert out.split("\n")[:4] == ["1", "0\t0", "4294967296", "16384"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward
    assert Path("/proc/sys/kernel/shmmax").read_text() == host_shmmax


def test_non_namespaced_sysctl_is_refused(runtime, bundle):
    bundle.edit(lambda c: c["linux"].update(sysctl={"vm.swappiness": "10"}))
    create_refused(runtime, bundle, "vm.swappiness", "host")


def test_sysctl_without_its_namespace_is_refused(runtime, bundle):
    def edit(config):
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"
        ]
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    bundle.edit(edit)
    create_refused(runtime, bundle, "net.ipv4.ip_forward", "network")


def join_host_namespace(config: dict, ns_type: str, name: str) -> None:
    """Replace the new ``ns_type`` namespace by the test process's (the host's)."""
    kept = [ns for ns in config["linux"]["namespaces"] if ns["type"] != ns_type]
    path = f"/proc/{os.getpid()}/ns/{name}"
    config["linux"]["namespaces"] = [*kept, {"type": ns_type, "path": path}]


def test_sysctl_in_the_joined_host_network_namespace_is_refused(runtime, bundle):
    before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    wanted = "0" if before.strip() == "1" else "1"

    def edit(config):
        join_host_namespace(config, "network", "net")
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": wanted}

    bundle.edit(edit)
    create_refused(runtime, bundle, "net.ipv4.ip_forward", "host's network namespace")
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == before


def test_sysctl_in_the_joined_host_ipc_namespace_is_refused(runtime, bundle):
    def edit(config):
        join_host_namespace(config, "ipc", "ipc")
        config["linux"]["sysctl"] = {"kernel.msgmax": "12345"}

    bundle.edit(edit)
    create_refused(runtime, bundle, "kernel.msgmax", "host's ipc namespace")


def test_hostname_in_the_joined_host_uts_namespace_is_refused(runtime, bundle):
    before = os.uname().nodename
    bundle.edit(lambda c: join_host_namespace(c, "uts", "uts"))
    create_refused(runtime, bundle, "hostname", "host's uts namespace")
    assert os.uname().nodename == before


def test_host_network_namespace_can_be_joined(runtime, bundle):
    bundle.edit(lambda c: join_host_namespace(c, "network", "net"))
    out = output_of(runtime, bundle, "readlink /proc/self/ns/net")
    assert out.strip() == os.readlink("/proc/self/ns/net")


def test_unknown_sysctl_is_refused(runtime, bundle):
    sysctl = {"net.ipv4.no_such_knob": "1"}
    bundle.edit(lambda c: c["linux"].update(sysctl=sysctl))
    create_refused(runtime, bundle, "net.ipv4.no_such_knob")
