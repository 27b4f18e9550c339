"""Namespaces through the CLI: each new, each joined by path (issue 2, point 6).

A new namespace is seen from inside the container (``readlink
/proc/self/ns/X`` differs from the test process's, plus what the namespace
changes: pid 1, only ``lo`` and up, hostname, id maps, cgroup root, clock
offsets). A joined one is held by a process the test starts (``unshare ...
sleep``, or a first container for the user namespace) and the container's
namespace inode must be the holder's. Bad namespace paths are refused with
one error line naming the path, and leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import (
    Bundle,
    create_refused,
    reap,
)

pytestmark = pytest.mark.root

#: OCI namespace type -> name under /proc/<pid>/ns/.
PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}
ID_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
HOST_UID = 100000


def ns_of(pid: int | str, ns_type: str) -> str:
    """``type:[inode]`` of a process's namespace."""
    return os.readlink(f"/proc/{pid}/ns/{PROC_NAMES[ns_type]}")


def add_namespaces(config: dict, *entries: dict) -> None:
    """Add (or replace) namespace entries in a config."""
    kinds = {entry["type"] for entry in entries}
    kept = [ns for ns in config["linux"]["namespaces"] if ns["type"] not in kinds]
    config["linux"]["namespaces"] = kept + list(entries)


def use_userns(config: dict) -> None:
    """A new user namespace mapping container 0..65535 to host 100000..."""
    add_namespaces(config, {"type": "user"})
    config["linux"]["uidMappings"] = ID_MAP
    config["linux"]["gidMappings"] = ID_MAP


def run_script(runtime, bundle, script: str):
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", script]))
    return runtime("run", "--bundle", str(bundle.path), runtime.new_id())


def output_of(runtime, bundle, script: str) -> str:
    result = run_script(runtime, bundle, script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.fixture
def open_bundle(runtime, rootfs_template):
    """A bundle any host uid can reach (for user namespaces).

    pytest's tmp_path sits below a 0700 directory, which a container root
    mapped to host uid 100000 could not traverse while setting up mounts.
    """
    path = Path(tempfile.mkdtemp(prefix="pyrt-ns-"))
    path.chmod(0o755)
    try:
        yield Bundle(path, rootfs_template).write()
    finally:
        runtime.cleanup()
        shutil.rmtree(path, ignore_errors=True)


class Holders:
    """Processes that hold a namespace open for a container to join."""

    def __init__(self) -> None:
        self.procs: list[tuple[subprocess.Popen, int]] = []

    def unshare(self, *flags: str, fork: bool = False) -> int:
        """``unshare FLAGS sleep``; return the pid of the process in the new ns."""
        argv = ["unshare", *flags, *(["--fork"] if fork else []), "sleep", "60"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        target = self.wait_for_sleep(proc, fork)
        self.procs.append((proc, target))
        return target

    @staticmethod
    def wait_for_sleep(proc: subprocess.Popen, fork: bool) -> int:
        """Wait until ``sleep`` runs (in the child, with --fork); its pid."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert proc.poll() is None, "unshare failed"
            pid = proc.pid
            if fork:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
                pid = int(children.split()[0]) if children.strip() else 0
            if pid and Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                return pid
            time.sleep(0.01)
        raise AssertionError("the namespace holder never started")

    def stop(self) -> None:
        for proc, target in self.procs:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.kill()
            proc.wait()


@pytest.fixture
def holders():
    made = Holders()
    try:
        yield made
    finally:
        made.stop()


# ------------------------------------------------------------ new namespaces


def test_every_namespace_new(runtime, open_bundle):
    def edit(config):
        use_userns(config)
        add_namespaces(config, {"type": "cgroup"}, {"type": "time"})

    open_bundle.edit(edit)
    names = " ".join(PROC_NAMES.values())
    out = output_of(
        runtime, open_bundle, f"for n in {names}; do readlink /proc/self/ns/$n; done"
    )
    inside = dict(zip(PROC_NAMES, out.split(), strict=True))
    for ns_type, seen in inside.items():
        assert seen.startswith(f"{PROC_NAMES[ns_type]}:["), seen
        assert seen != ns_of("self", ns_type), f"{ns_type} namespace is the host's"


def test_pid_namespace_program_is_pid_1(runtime, bundle):
    out = output_of(runtime, bundle, "echo $$; cd /proc; echo [0-9]*")
    pid, *pids = out.split()
    assert pid == "1"
    # Only the container's few processes are visible, none of the host's.
    assert "1" in pids and all(int(p) < 10 for p in pids), pids


def test_network_namespace_has_only_lo_and_it_is_up(runtime, bundle):
    out = output_of(
        runtime, bundle, "ls /sys/class/net; cat /sys/class/net/lo/flags; ip -o addr"
    )
    lines = out.splitlines()
    assert lines[0] == "lo"
    assert int(lines[1], 16) & 0x1, "lo is down"
    assert any("inet 127.0.0.1/8" in line for line in lines[2:]), out


def test_mount_namespace_hides_container_mounts_from_host(runtime, bundle, tmp_path):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "30"]))
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    pid = int(pid_file.read_text())
    assert ns_of(pid, "mount") != ns_of("self", "mount")
    with open("/proc/self/mountinfo") as handle:
        host_mounts = handle.read()
    assert str(bundle.rootfs) not in host_mounts
    with open(f"/proc/{pid}/mountinfo") as handle:
        container_mounts = [line.split()[4] for line in handle]
    assert "/" in container_mounts and "/proc" in container_mounts
    assert "/dev/pts" in container_mounts
    runtime.ok("delete", cid)
    assert reap(pid) == 137


def test_ipc_namespace_is_empty(runtime, bundle):
    # A host message queue must not be visible inside.
    made = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip("ipcmk is not available")
    qid = made.stdout.split(":")[-1].strip()
    try:
        out = output_of(runtime, bundle, "cat /proc/sysvipc/msg")
        assert len(out.splitlines()) == 1, out  # the header only
    finally:
        subprocess.run(["ipcrm", "-q", qid], check=False)


def test_uts_namespace_hostname_and_domainname(runtime, bundle):
    host = (os.uname().nodename, Path("/proc/sys/kernel/domainname").read_text())

    def edit(config):
        config["hostname"] = "box-one"
        config["domainname"] = "example.test"

    bundle.edit(edit)
    out = output_of(
        runtime, bundle, "hostname; cat /proc/sys/kernel/domainname; uname -n"
    )
    assert out == "box-one\nexample.test\nbox-one\n"
    after = (os.uname().nodename, Path("/proc/sys/kernel/domainname").read_text())
    assert after == host


def test_user_namespace_maps_ids(runtime, open_bundle):
    def edit(config):
        use_userns(config)
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}

    open_bundle.edit(edit)
    out = output_of(
        runtime,
        open_bundle,
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id",
    )
    uid_map, gid_map, setgroups, ident = out.splitlines()
    assert uid_map.split() == ["0", "100000", "65536"]
    assert gid_map.split() == ["0", "100000", "65536"]
    # The runtime is privileged: setgroups stays allowed, so the additional
    # groups could be set.
    assert setgroups == "allow"
    assert ident == "uid=1000(webapp) gid=1000(webapp) groups=5(tty)"


def test_user_namespace_seen_from_the_host(runtime, open_bundle, tmp_path):
    def edit(config):
        use_userns(config)
        config["process"]["args"] = ["sleep", "30"]
        config["process"]["user"] = {"uid": 1000, "gid": 1001}

    open_bundle.edit(edit)
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    result = runtime.create(open_bundle, cid, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    assert ns_of(pid, "user") != ns_of("self", "user")
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "100000", "65536"]
    runtime.ok("start", cid)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/comm").read_text().strip() != "sleep":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    assert fields["Uid"].split() == [str(HOST_UID + 1000)] * 4
    assert fields["Gid"].split() == [str(HOST_UID + 1001)] * 4
    runtime.ok("kill", cid, "KILL")
    assert reap(pid) == 137


def test_user_namespace_unmapped_user_is_refused(runtime, open_bundle):
    def edit(config):
        use_userns(config)
        config["process"]["user"] = {"uid": 70000, "gid": 0}

    open_bundle.edit(edit)
    create_refused(runtime, open_bundle, "70000")


def test_cgroup_namespace_root_is_the_containers_cgroup(runtime, bundle):
    bundle.edit(lambda c: add_namespaces(c, {"type": "cgroup"}))
    out = output_of(runtime, bundle, "cat /proc/self/cgroup")
    paths = [line.split(":", 2)[2] for line in out.splitlines()]
    assert paths and all(path == "/" for path in paths), out


def test_without_cgroup_namespace_the_host_path_shows(runtime, bundle):
    cid = runtime.new_id()
    bundle.edit(lambda c: c["process"].update(args=["cat", "/proc/self/cgroup"]))
    result = runtime("run", "--bundle", str(bundle.path), cid)
    assert result.returncode == 0, result.stderr
    paths = [line.split(":", 2)[2] for line in result.stdout.splitlines()]
    assert all(path.endswith(f"/{cid}") for path in paths), paths


def test_time_namespace_offsets(runtime, bundle):
    boottime = 20 * 86400

    def edit(config):
        add_namespaces(config, {"type": "time"})
        config["linux"]["timeOffsets"] = {
            "monotonic": {"secs": 10 * 86400, "nanosecs": 7},
            "boottime": {"secs": boottime},
        }

    bundle.edit(edit)
    before = float(Path("/proc/uptime").read_text().split()[0])
    out = output_of(runtime, bundle, "cat /proc/self/timens_offsets /proc/uptime")
    after = float(Path("/proc/uptime").read_text().split()[0])
    monotonic, boot, uptime = out.splitlines()
    assert monotonic.split() == ["monotonic", str(10 * 86400), "7"]
    assert boot.split() == ["boottime", str(boottime), "0"]
    inside = float(uptime.split()[0])
    assert before + boottime <= inside <= after + boottime


# -------------------------------------------------------- joined namespaces

UNSHARE_FLAGS = {
    "network": (["--net"], False),
    "ipc": (["--ipc"], False),
    "uts": (["--uts"], False),
    "mount": (["--mount"], False),
    "cgroup": (["--cgroup"], False),
    "pid": (["--pid"], True),
    "time": (["--time", "--boottime", "1000"], True),
}


@pytest.mark.parametrize("ns_type", sorted(UNSHARE_FLAGS))
def test_join_namespace_by_path(runtime, bundle, holders, ns_type):
    flags, fork = UNSHARE_FLAGS[ns_type]
    holder = holders.unshare(*flags, fork=fork)
    path = f"/proc/{holder}/ns/{PROC_NAMES[ns_type]}"
    bundle.edit(lambda c: add_namespaces(c, {"type": ns_type, "path": path}))
    name = PROC_NAMES[ns_type]
    out = output_of(runtime, bundle, f"readlink /proc/self/ns/{name}; echo $$")
    seen, pid = out.split()
    assert seen == ns_of(holder, ns_type)
    assert seen != ns_of("self", ns_type)
    if ns_type == "pid":
        assert pid != "1", "joined a pid namespace yet is its pid 1"


def test_join_user_namespace_of_a_first_container(runtime, open_bundle, tmp_path):
    first_id = runtime.new_id("first")
    pid_file = tmp_path / "first.pid"

    def first_config(config):
        use_userns(config)
        config["process"]["args"] = ["sleep", "30"]

    open_bundle.edit(first_config)
    result = runtime.create(open_bundle, first_id, "--pid-file", str(pid_file))
    assert result.returncode == 0, result.stderr
    first = int(pid_file.read_text())
    path = f"/proc/{first}/ns/user"

    def second_config(config):
        add_namespaces(config, {"type": "user", "path": path})
        config["linux"].pop("uidMappings")
        config["linux"].pop("gidMappings")
        config["process"]["user"] = {"uid": 1000, "gid": 1000}

    open_bundle.edit(second_config)
    out = output_of(
        runtime, open_bundle, "readlink /proc/self/ns/user; cat /proc/self/uid_map; id"
    )
    seen, uid_map, ident = out.splitlines()
    assert seen == ns_of(first, "user")
    assert uid_map.split() == ["0", "100000", "65536"]
    assert ident.startswith("uid=1000(webapp) gid=1000(webapp)")
    runtime.ok("delete", first_id)
    assert reap(first) == 137


def test_new_user_namespace_joins_a_host_network_namespace(
    runtime, open_bundle, holders
):
    # The host owns the holder's network namespace: it must be joined before
    # the new user namespace takes the host capabilities away.
    holder = holders.unshare("--net")
    path = f"/proc/{holder}/ns/net"

    def edit(config):
        use_userns(config)
        add_namespaces(config, {"type": "network", "path": path})
        # sysfs belongs to the network namespace's owner (the host's user
        # namespace): bind the host's /sys instead, as runc users must.
        for mount in config["mounts"]:
            if mount["destination"] == "/sys":
                mount.update(type="bind", source="/sys", options=["rbind", "ro"])

    open_bundle.edit(edit)
    out = output_of(
        runtime, open_bundle, "readlink /proc/self/ns/net; readlink /proc/self/ns/user"
    )
    net, user = out.split()
    assert net == ns_of(holder, "network")
    assert user != ns_of("self", "user")


# ---------------------------------------------------- invalid namespace paths


def test_missing_namespace_path_is_refused(runtime, bundle, tmp_path):
    path = str(tmp_path / "no-such-ns")
    bundle.edit(lambda c: add_namespaces(c, {"type": "network", "path": path}))
    create_refused(runtime, bundle, path, "network", "no such file or directory")


def test_directory_as_namespace_path_is_refused(runtime, bundle, tmp_path):
    # As the multi-tenant seed does with /sys/fs/cgroup/tenant-a.
    path = str(tmp_path)
    bundle.edit(lambda c: add_namespaces(c, {"type": "cgroup", "path": path}))
    create_refused(runtime, bundle, path, "directory")


def test_regular_file_as_namespace_path_is_refused(runtime, bundle, tmp_path):
    path = tmp_path / "netns"
    path.write_text("")
    bundle.edit(lambda c: add_namespaces(c, {"type": "network", "path": str(path)}))
    create_refused(runtime, bundle, str(path), "not a namespace file")


@pytest.mark.parametrize(
    ("ns_type", "given"), [("network", "ipc"), ("mount", "net"), ("user", "uts")]
)
def test_namespace_file_of_another_type_is_refused(
    runtime, bundle, holders, ns_type, given
):
    holder = holders.unshare("--net", "--ipc", "--uts")
    path = f"/proc/{holder}/ns/{given}"
    bundle.edit(lambda c: add_namespaces(c, {"type": ns_type, "path": path}))
    create_refused(runtime, bundle, path, ns_type, given)


def test_relative_namespace_path_is_refused(runtime, bundle):
    bundle.edit(
        lambda c: add_namespaces(c, {"type": "network", "path": "proc/1/ns/net"})
    )
    create_refused(runtime, bundle, "proc/1/ns/net", "not an absolute path")


def test_namespace_of_a_dead_process_is_refused(runtime, bundle):
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = f"/proc/{dead.pid}/ns/net"
    bundle.edit(lambda c: add_namespaces(c, {"type": "network", "path": path}))
    create_refused(runtime, bundle, path)


def test_no_mount_namespace_is_refused(runtime, bundle):
    def edit(config):
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "mount"
        ]

    bundle.edit(edit)
    create_refused(runtime, bundle, "mount namespace is required")


def test_joining_the_hosts_mount_namespace_is_refused(runtime, bundle):
    path = f"/proc/{os.getpid()}/ns/mnt"
    before = os.stat("/")
    bundle.edit(lambda c: add_namespaces(c, {"type": "mount", "path": path}))
    create_refused(runtime, bundle, path, "host's own")
    after = os.stat("/")
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
