"""pyruntime.rootfs against the real kernel (root only).

Each test builds a tiny busybox rootfs in its own temp dir, then runs the
rootfs functions in a forked child that has its own mount, pid, UTS and IPC
namespaces (and optionally a user namespace), as pid 1 of the new pid
namespace. The child reports what it observes as JSON over a pipe; the parent
asserts. Every mount lives in the child's mount namespace and vanishes with
it; the host's mount table is compared before and after each test.

After pivot_root the host's Python library is out of reach: every module the
child uses is imported at the top of this file, never lazily.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import stat
import traceback
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from pyruntime import rootfs
from pyruntime.errors import SetupError
from pyruntime.linux import syscalls as sc

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="needs busybox"),
]

TIMEOUT = 30
HOST_HAS_KCORE = os.path.exists("/proc/kcore")
BUSYBOX_APPLETS = ("sh", "cat", "ls", "echo", "mount", "true")


def make_mount(destination, type_=None, source=None, options=None):
    return SimpleNamespace(
        destination=destination,
        type=type_,
        source=source,
        options=tuple(options) if options is not None else None,
        uid_mappings=None,
        gid_mappings=None,
    )


def make_device(
    type_, path, major=None, minor=None, file_mode=None, uid=None, gid=None
):
    return SimpleNamespace(
        type=type_,
        path=path,
        major=major,
        minor=minor,
        file_mode=file_mode,
        uid=uid,
        gid=gid,
    )


def default_mounts():
    """The mounts of runc's default spec."""
    return [
        make_mount("/proc", "proc", "proc"),
        make_mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            ["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        make_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        make_mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        make_mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        make_mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        make_mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            ["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]


# --------------------------------------------------------------------------
# Fixtures: rootfs, host mount table guard


def build_rootfs(path: str) -> None:
    os.makedirs(os.path.join(path, "bin"))
    for name in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(path, name), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(path, "bin", "busybox"))
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", os.path.join(path, "bin", applet))
    with open(os.path.join(path, "etc", "hostname"), "w") as f:
        f.write("image\n")


@pytest.fixture
def bundle(tmp_path):
    path = tmp_path / "bundle"
    build_rootfs(str(path / "rootfs"))
    return str(path)


def read_host_mountinfo() -> list[tuple[str, str]]:
    entries = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            entries.append((fields[4], " ".join(fields[dash + 1 : dash + 3])))
    return entries


def relevant_to(entries, tmp_root):
    """Host mounts this test could disturb: system mounts and its own dirs."""
    system = ("/", "/proc", "/sys", "/dev", "/tmp")
    return sorted(
        entry
        for entry in entries
        if entry[0] in system or entry[0].startswith(("/sys/", "/dev/", str(tmp_root)))
    )


@pytest.fixture(autouse=True)
def host_mounts_unchanged(tmp_path):
    before = relevant_to(read_host_mountinfo(), tmp_path)
    yield
    after = relevant_to(read_host_mountinfo(), tmp_path)
    assert after == before, "the host's mount table changed"


# --------------------------------------------------------------------------
# Running code in a container-like child


def run_isolated(
    body: Callable[[], object],
    *,
    userns: bool = False,
    before_userns: Callable[[], None] | None = None,
) -> dict:
    """Run ``body`` as pid 1 of new namespaces; return its result or error."""
    result_r, result_w = os.pipe()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            for fd in (result_r, ready_r, go_w):
                os.close(fd)
            child_main(body, result_w, ready_w, go_r, userns, before_userns)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    for fd in (result_w, ready_w, go_r):
        os.close(fd)
    try:
        if userns:
            wait_readable(ready_r)
            assert os.read(ready_r, 1) == b"u"
            write_id_maps(pid)
        os.write(go_w, b"g")
        data = read_all(result_r)
    finally:
        for fd in (result_r, ready_r, go_w):
            os.close(fd)
        reap(pid)
    assert data, "the child reported nothing"
    return json.loads(data)


def child_main(body, result_w, ready_w, go_r, userns, before_userns):
    if before_userns is not None:
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        before_userns()
    if userns:
        sc.unshare(sc.CLONE_NEWUSER)
        os.write(ready_w, b"u")
    assert os.read(go_r, 1) == b"g"
    sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC)
    init = os.fork()
    if init == 0:
        try:
            sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
            try:
                payload = {"ok": True, "result": body()}
            except BaseException as err:
                payload = {
                    "ok": False,
                    "type": type(err).__name__,
                    "message": str(err),
                    "traceback": traceback.format_exc(),
                }
            os.write(result_w, json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.waitpid(init, 0)


def write_id_maps(pid: int) -> None:
    # Identity maps: root in the namespace is host root, yet the namespace
    # has no privilege over the host (no mknod, locked mount flags).
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("0 0 65536\n")


def wait_readable(fd: int) -> None:
    ready, _, _ = select.select([fd], [], [], TIMEOUT)
    if not ready:
        raise TimeoutError("the child did not answer")


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        wait_readable(fd)
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def reap(pid: int) -> None:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def unwrap(report: dict):
    if not report["ok"]:
        pytest.fail(
            f"child failed: {report['type']}: {report['message']}\n"
            f"{report['traceback']}"
        )
    return report["result"]


# --------------------------------------------------------------------------
# Observations made inside the child


def read_mountinfo() -> list[dict]:
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            mounts.append(
                {
                    "point": fields[4].replace("\\040", " "),
                    "options": fields[5].split(","),
                    "tags": fields[6:dash],
                    "fstype": fields[dash + 1],
                    "source": fields[dash + 2],
                    "super": fields[dash + 3].split(","),
                }
            )
    return mounts


def mount_at(mounts: list[dict], point: str) -> dict:
    found = [m for m in mounts if m["point"] == point]
    assert found, f"no mount at {point}: {[m['point'] for m in mounts]}"
    return found[-1]


def describe_node(path: str) -> dict:
    st = os.lstat(path)
    return {
        "mode": st.st_mode,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def try_write(path: str) -> str:
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as err:
        return errno.errorcode[err.errno]
    return "ok"


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


# --------------------------------------------------------------------------
# The full sequence


def test_rootfs_full_sequence_runc_default_config(bundle, tmp_path):
    rootfs_path = os.path.join(bundle, "rootfs")
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("hi")
    mounts = [
        *default_mounts(),
        make_mount("/data", None, str(data), ["rbind", "ro", "nosuid"]),
        make_mount("/etc/hosts-file", "bind", str(data / "hello"), ["bind"]),
        make_mount("/scratch", "tmpfs", "tmpfs", ["size=1m", "mode=700", "noexec"]),
    ]
    devices = [
        make_device("c", "/dev/mynull", 1, 3, 0o620, 1000, 1001),
        make_device("p", "/dev/myfifo", file_mode=0o600),
        make_device("c", "/dev/null", 1, 3, 0o660),
    ]
    masked = [
        "/proc/kcore",
        "/proc/version",
        "/sys/firmware",
        "/proc/no-such",
        "/proc/acpi",
    ]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            mounts,
            devices,
            propagation=None,
            in_userns=False,
            bundle=bundle,
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        rootfs.finalize_rootfs(readonly=True, propagation="rshared")
        rootfs.mask_paths(masked)
        rootfs.readonly_paths(["/proc/sys", "/proc/sysrq-trigger", "/nope"])
        nodes = {
            path: describe_node(path)
            for path in (
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                "/dev/mynull",
                "/dev/myfifo",
            )
        }
        return {
            "mounts": read_mountinfo(),
            "nodes": nodes,
            "links": {
                path: os.readlink(path)
                for path in (
                    "/dev/fd",
                    "/dev/stdin",
                    "/dev/stdout",
                    "/dev/stderr",
                    "/dev/ptmx",
                )
            },
            "core": os.readlink("/dev/core") if os.path.lexists("/dev/core") else None,
            "cwd": os.getcwd(),
            "root_listing": sorted(os.listdir("/")),
            "write_root": try_write("/newfile"),
            "write_tmp_dir": try_write("/tmp/x"),
            "write_scratch": try_write("/scratch/x"),
            "write_data": try_write("/data/x"),
            "write_hostname": try_write("/proc/sys/kernel/hostname"),
            "masked_file": read_text("/proc/version"),
            "firmware": os.listdir("/sys/firmware"),
            "hosts_file": read_text("/etc/hosts-file"),
            "tmp_path_visible": os.path.exists(str(tmp_path)),
            "busybox": os.path.exists("/bin/busybox"),
        }

    result = unwrap(run_isolated(body))
    mounts = result["mounts"]
    root = mount_at(mounts, "/")
    assert "ro" in root["options"]
    assert any(tag.startswith("shared:") for tag in root["tags"])
    assert not any(str(tmp_path) in m["point"] for m in mounts)
    assert mount_at(mounts, "/proc")["fstype"] == "proc"
    dev = mount_at(mounts, "/dev")
    assert dev["fstype"] == "tmpfs" and "nosuid" in dev["options"]
    pts = mount_at(mounts, "/dev/pts")
    assert pts["fstype"] == "devpts"
    assert {"ptmxmode=666", "mode=620", "gid=5"} <= set(pts["super"])
    shm = mount_at(mounts, "/dev/shm")
    assert {"nosuid", "nodev", "noexec"} <= set(shm["options"])
    assert "size=65536k" in shm["super"]
    assert mount_at(mounts, "/dev/mqueue")["fstype"] == "mqueue"
    sys_mount = mount_at(mounts, "/sys")
    assert sys_mount["fstype"] == "sysfs" and "ro" in sys_mount["options"]
    cgroup = mount_at(mounts, "/sys/fs/cgroup")
    assert "ro" in cgroup["options"]
    data_mount = mount_at(mounts, "/data")
    assert {"ro", "nosuid"} <= set(data_mount["options"])
    scratch = mount_at(mounts, "/scratch")
    assert "noexec" in scratch["options"] and "mode=700" in scratch["super"]
    assert mount_at(mounts, "/proc/version")["fstype"] == "tmpfs"  # the /dev tmpfs
    assert result["masked_file"] == ""
    assert result["firmware"] == []
    assert "ro" in mount_at(mounts, "/sys/firmware")["options"]
    assert "ro" in mount_at(mounts, "/proc/sys")["options"]

    nodes = result["nodes"]
    for path, (major, minor) in {
        "/dev/zero": (1, 5),
        "/dev/full": (1, 7),
        "/dev/random": (1, 8),
        "/dev/urandom": (1, 9),
        "/dev/tty": (5, 0),
    }.items():
        assert stat.S_ISCHR(nodes[path]["mode"])
        assert (nodes[path]["major"], nodes[path]["minor"]) == (major, minor)
        assert stat.S_IMODE(nodes[path]["mode"]) == 0o666
    # A config device replaces the default one of the same path.
    assert stat.S_IMODE(nodes["/dev/null"]["mode"]) == 0o660
    mynull = nodes["/dev/mynull"]
    assert stat.S_ISCHR(mynull["mode"]) and stat.S_IMODE(mynull["mode"]) == 0o620
    assert (mynull["uid"], mynull["gid"]) == (1000, 1001)
    assert stat.S_ISFIFO(nodes["/dev/myfifo"]["mode"])
    assert result["links"] == {
        "/dev/fd": "/proc/self/fd",
        "/dev/stdin": "/proc/self/fd/0",
        "/dev/stdout": "/proc/self/fd/1",
        "/dev/stderr": "/proc/self/fd/2",
        "/dev/ptmx": "pts/ptmx",
    }
    assert result["core"] == ("/proc/kcore" if HOST_HAS_KCORE else None)
    assert result["cwd"] == "/"
    assert {"bin", "proc", "sys", "dev", "data", "scratch"} <= set(
        result["root_listing"]
    )
    assert result["write_root"] == "EROFS"
    assert result["write_tmp_dir"] == "EROFS"
    assert result["write_scratch"] == "ok"
    assert result["write_data"] == "EROFS"
    assert result["write_hostname"] == "EROFS"
    assert result["hosts_file"] == "hi"
    assert not result["tmp_path_visible"]
    assert result["busybox"]


def test_rootfs_no_pivot_and_relative_bind_source(bundle):
    rootfs_path = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(bundle, "shared"))
    with open(os.path.join(bundle, "shared", "f"), "w") as f:
        f.write("bundle-relative")
    mounts = [
        make_mount("/proc", "proc", "proc"),
        make_mount("/mnt", None, "shared", ["bind"]),
    ]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            mounts,
            (),
            propagation="rprivate",
            in_userns=False,
            bundle=bundle,
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=True)
        rootfs.finalize_rootfs(readonly=False, propagation="rprivate")
        return {
            "f": read_text("/mnt/f"),
            "busybox": os.path.exists("/bin/busybox"),
            "write_root": try_write("/newfile"),
        }

    result = unwrap(run_isolated(body))
    assert result == {"f": "bundle-relative", "busybox": True, "write_root": "ok"}
    assert os.path.exists(os.path.join(rootfs_path, "newfile"))


def test_rootfs_recursive_attributes_and_propagation(bundle, tmp_path):
    rootfs_path = os.path.join(bundle, "rootfs")
    source = tmp_path / "tree"
    (source / "sub").mkdir(parents=True)

    def body():
        # A submount in the source (only in this child's namespace).
        sc.mount("tmpfs", str(source / "sub"), "tmpfs", 0, "size=1m")
        mounts = [
            make_mount("/proc", "proc", "proc"),
            make_mount(
                "/tree",
                None,
                str(source),
                ["rbind", "rro", "rnosuid", "rnoatime", "rprivate"],
            ),
            make_mount("/plain", None, str(source), ["bind", "ro", "unbindable"]),
        ]
        rootfs.prepare_rootfs(
            rootfs_path, mounts, (), propagation=None, in_userns=False, bundle=bundle
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        return {
            "mounts": read_mountinfo(),
            "write_sub": try_write("/tree/sub/x"),
            "plain_sub": os.listdir("/plain/sub"),
        }

    result = unwrap(run_isolated(body))
    mounts = result["mounts"]
    for point in ("/tree", "/tree/sub"):
        options = set(mount_at(mounts, point)["options"])
        assert {"ro", "nosuid", "noatime"} <= options, point
        assert not any(
            t.startswith(("shared", "master")) for t in mount_at(mounts, point)["tags"]
        )
    assert result["write_sub"] == "EROFS"
    # A non-recursive bind does not bring the submount along.
    assert "unbindable" in mount_at(mounts, "/plain")["tags"]
    assert not [m for m in mounts if m["point"] == "/plain/sub"]


def test_rootfs_tmpcopyup(bundle):
    rootfs_path = os.path.join(bundle, "rootfs")
    etc = os.path.join(rootfs_path, "etc")
    os.makedirs(os.path.join(etc, "sub"))
    with open(os.path.join(etc, "sub", "file"), "w") as f:
        f.write("content")
    os.chmod(os.path.join(etc, "sub", "file"), 0o640)
    os.chown(os.path.join(etc, "sub", "file"), 123, 456)
    os.symlink("/host/absolute", os.path.join(etc, "link"))
    mounts = [
        make_mount("/proc", "proc", "proc"),
        make_mount("/etc", "tmpfs", "tmpfs", ["tmpcopyup", "ro", "size=1m"]),
    ]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path, mounts, (), propagation=None, in_userns=False, bundle=bundle
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        st = os.stat("/etc/sub/file")
        return {
            "mounts": read_mountinfo(),
            "content": read_text("/etc/sub/file"),
            "hostname": read_text("/etc/hostname"),
            "link": os.readlink("/etc/link"),
            "mode": stat.S_IMODE(st.st_mode),
            "owner": [st.st_uid, st.st_gid],
            "write": try_write("/etc/new"),
        }

    result = unwrap(run_isolated(body))
    etc_mount = mount_at(result["mounts"], "/etc")
    assert etc_mount["fstype"] == "tmpfs" and "ro" in etc_mount["options"]
    assert result["content"] == "content" and result["hostname"] == "image\n"
    assert result["link"] == "/host/absolute"
    assert result["mode"] == 0o640 and result["owner"] == [123, 456]
    assert result["write"] == "EROFS"


def test_rootfs_cgroup_paths_bound_read_only(bundle, tmp_path):
    rootfs_path = os.path.join(bundle, "rootfs")
    fake = tmp_path / "fakecg"
    (fake / "memory").mkdir(parents=True)
    (fake / "memory" / "memory.limit_in_bytes").write_text("123\n")
    (fake / "cpu,cpuacct").mkdir()
    mounts = [
        make_mount("/proc", "proc", "proc"),
        make_mount("/sys", "sysfs", "sysfs", ["ro"]),
        make_mount("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid"]),
    ]
    cgroup_paths = {
        "memory": str(fake / "memory"),
        "cpu,cpuacct": str(fake / "cpu,cpuacct"),
    }

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            mounts,
            (),
            propagation=None,
            in_userns=False,
            bundle=bundle,
            cgroup_paths=cgroup_paths,
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        return {
            "mounts": read_mountinfo(),
            "listing": sorted(os.listdir("/sys/fs/cgroup")),
            "cpu_link": os.readlink("/sys/fs/cgroup/cpu"),
            "limit": read_text("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "write": try_write("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        }

    result = unwrap(run_isolated(body))
    assert result["listing"] == ["cpu", "cpu,cpuacct", "cpuacct", "memory"]
    assert result["cpu_link"] == "cpu,cpuacct"
    assert result["limit"] == "123\n"
    assert result["write"] == "EROFS"
    for point in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory"):
        assert {"ro", "nosuid"} <= set(mount_at(result["mounts"], point)["options"])


def test_rootfs_cgroup_host_hierarchies(bundle):
    rootfs_path = os.path.join(bundle, "rootfs")
    mounts = [
        m
        for m in default_mounts()
        if m.destination in ("/proc", "/sys", "/sys/fs/cgroup")
    ]

    def body():
        sc.unshare(sc.CLONE_NEWCGROUP)
        rootfs.prepare_rootfs(
            rootfs_path, mounts, (), propagation=None, in_userns=False, bundle=bundle
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        return {
            "mounts": read_mountinfo(),
            "listing": sorted(os.listdir("/sys/fs/cgroup")),
        }

    host = sorted(
        name
        for name in os.listdir("/sys/fs/cgroup")
        if os.path.ismount(os.path.join("/sys/fs/cgroup", name))
    )
    result = unwrap(run_isolated(body))
    if os.path.ismount("/sys/fs/cgroup") and not host:
        assert mount_at(result["mounts"], "/sys/fs/cgroup")["fstype"] == "cgroup2"
        return
    assert set(host) <= set(result["listing"])
    for name in host:
        mount = mount_at(result["mounts"], f"/sys/fs/cgroup/{name}")
        assert mount["fstype"] in ("cgroup", "cgroup2")
        assert "ro" in mount["options"]
        assert mount["source"] != "none"


# --------------------------------------------------------------------------
# Attacks: symlinks in the image must not redirect anything to the host


def snapshot(path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(top, name), path)
        for top, dirs, files in os.walk(path)
        for name in dirs + files
    )


@pytest.fixture
def host_dir(tmp_path):
    path = tmp_path / "hostdir"
    path.mkdir()
    (path / "precious").write_text("host data")
    return path


@pytest.mark.parametrize("link", ["HOST", "/", "../../..", "../../../../../../..", "."])
@pytest.mark.parametrize("kind", ["tmpfs", "bind", "nested"])
def test_rootfs_symlinked_destination_stays_inside(
    bundle, tmp_path, host_dir, link, kind
):
    rootfs_path = os.path.join(bundle, "rootfs")
    target = str(host_dir) if link == "HOST" else link
    os.symlink(target, os.path.join(rootfs_path, "evil"))
    bind_source = tmp_path / "bindsrc"
    bind_source.mkdir()
    (bind_source / "marker").write_text("from bind")
    if kind == "tmpfs":
        mount = make_mount("/evil", "tmpfs", "tmpfs", ["size=1m"])
    elif kind == "bind":
        mount = make_mount("/evil", None, str(bind_source), ["rbind", "ro"])
    else:
        mount = make_mount("/evil/created/deeper", "tmpfs", "tmpfs", ["size=1m"])
    before = snapshot(host_dir)

    def body():
        before = [m["point"] for m in read_mountinfo()]
        rootfs.prepare_rootfs(
            rootfs_path, [mount], (), propagation=None, in_userns=False, bundle=bundle
        )
        after = [m["point"] for m in read_mountinfo()]
        for point in before:
            after.remove(point)
        return after

    report = run_isolated(body)
    assert snapshot(host_dir) == before
    assert not os.path.exists(host_dir / "created")
    if not report["ok"]:
        # Refusing is acceptable: here, a link back to the rootfs root itself.
        assert report["type"] == "SetupError", report
        assert (
            report["message"] == "mount destination `/evil` is the root of the rootfs"
        )
        assert link != "HOST" and kind != "nested"
        return
    new_points = report["result"]
    assert new_points[0] == rootfs_path  # the rootfs bound onto itself
    assert len(new_points) >= 2
    for point in new_points:
        assert point == rootfs_path or point.startswith(rootfs_path + "/")


def test_rootfs_absolute_symlink_lands_at_same_path_inside(bundle, host_dir):
    rootfs_path = os.path.join(bundle, "rootfs")
    os.symlink(str(host_dir), os.path.join(rootfs_path, "evil"))

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            [make_mount("/evil", "tmpfs", "tmpfs")],
            (),
            propagation=None,
            in_userns=False,
            bundle=bundle,
        )
        return [m["point"] for m in read_mountinfo()]

    points = unwrap(run_isolated(body))
    assert rootfs_path + str(host_dir) in points
    assert str(host_dir) not in points


def test_rootfs_symlinked_parent_directories(bundle, tmp_path, host_dir):
    rootfs_path = os.path.join(bundle, "rootfs")
    shutil.rmtree(os.path.join(rootfs_path, "etc"))
    os.symlink("/", os.path.join(rootfs_path, "etc"))
    os.symlink(str(host_dir), os.path.join(rootfs_path, "var"))
    shutil.rmtree(os.path.join(rootfs_path, "dev"))
    os.symlink(str(host_dir), os.path.join(rootfs_path, "dev"))
    before = snapshot(host_dir)
    mounts = [
        make_mount("/etc/x", "tmpfs", "tmpfs"),
        make_mount("/var/lib/y", "tmpfs", "tmpfs"),
    ]
    devices = [make_device("c", "/dev/evilnull", 1, 3)]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            mounts,
            devices,
            propagation=None,
            in_userns=False,
            bundle=bundle,
        )
        return [m["point"] for m in read_mountinfo()]

    points = unwrap(run_isolated(body))
    assert snapshot(host_dir) == before
    assert rootfs_path + "/x" in points
    assert rootfs_path + str(host_dir) + "/lib/y" in points
    # Devices and /dev symlinks went to the in-rootfs copy of the path.
    inside = rootfs_path + str(host_dir)
    assert stat.S_ISCHR(os.lstat(os.path.join(inside, "evilnull")).st_mode)
    assert os.readlink(os.path.join(inside, "fd")) == "/proc/self/fd"
    assert not os.path.exists("/x")


def test_rootfs_destination_into_proc_refused(bundle):
    rootfs_path = os.path.join(bundle, "rootfs")
    os.symlink("proc/sys", os.path.join(rootfs_path, "sneaky"))
    mounts = [
        make_mount("/proc", "proc", "proc"),
        make_mount("/sneaky/kernel", "tmpfs", "tmpfs"),
    ]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path, mounts, (), propagation=None, in_userns=False, bundle=bundle
        )

    report = run_isolated(body)
    assert not report["ok"]
    assert report["type"] == "SetupError"
    assert "inside /proc" in report["message"]


def test_rootfs_symlink_loop_fails_cleanly(bundle):
    rootfs_path = os.path.join(bundle, "rootfs")
    os.symlink("loop2", os.path.join(rootfs_path, "loop1"))
    os.symlink("loop1", os.path.join(rootfs_path, "loop2"))

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            [make_mount("/loop1/x", "tmpfs", "tmpfs")],
            (),
            propagation=None,
            in_userns=False,
            bundle=bundle,
        )

    report = run_isolated(body)
    assert not report["ok"] and report["type"] == "SetupError"
    assert report["message"].startswith("mount `tmpfs` on `/loop1/x` (rootfs ")
    assert "too many levels of symbolic links" in report["message"]


def test_rootfs_missing_bind_source_message(bundle, tmp_path):
    rootfs_path = os.path.join(bundle, "rootfs")
    missing = str(tmp_path / "nope")

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            [make_mount("/m", None, missing, ["bind"])],
            (),
            propagation=None,
            in_userns=False,
            bundle=bundle,
        )

    report = run_isolated(body)
    assert report["type"] == "SetupError"
    assert report["message"] == (
        f"mount `{missing}` on `/m` (rootfs `{rootfs_path}`): no such file or directory"
    )


@pytest.mark.parametrize("fake", ["regular", "symlink", "wrong-device"])
def test_mask_paths_refuses_fake_dev_null(bundle, tmp_path, fake):
    rootfs_path = os.path.join(bundle, "rootfs")
    secret = tmp_path / "secret"
    secret.write_text("secret")
    dev_null = os.path.join(rootfs_path, "dev", "null")
    if fake == "regular":
        with open(dev_null, "w") as f:
            f.write("not null")
    elif fake == "symlink":
        os.symlink("/proc/self/environ", dev_null)
    else:
        os.mknod(dev_null, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    # No /dev mount: the image's /dev (and its fake null) is used as is.
    mounts = [make_mount("/proc", "proc", "proc")]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path, mounts, (), propagation=None, in_userns=False, bundle=bundle
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        try:
            rootfs.mask_paths(["/proc/version"])
        except SetupError as err:
            return {"error": str(err), "masked": os.path.ismount("/proc/version")}
        return {"error": None}

    result = unwrap(run_isolated(body))
    assert result["error"] is not None
    assert "`/dev/null` is not the null device" in result["error"] or (
        "/dev/null" in result["error"]
    )
    assert not result["masked"]


def test_mask_and_readonly_paths_follow_symlinks_only_inside(bundle):
    rootfs_path = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs_path, "secrets"))
    with open(os.path.join(rootfs_path, "secrets", "key"), "w") as f:
        f.write("k")
    os.symlink("/../../secrets", os.path.join(rootfs_path, "alias"))
    mounts = [m for m in default_mounts() if m.destination in ("/proc", "/dev")]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path, mounts, (), propagation=None, in_userns=False, bundle=bundle
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        rootfs.readonly_paths(["/alias"])
        rootfs.mask_paths(["/alias/key"])
        return {
            "key": read_text("/secrets/key"),
            "write": try_write("/secrets/new"),
            "points": [m["point"] for m in read_mountinfo()],
        }

    result = unwrap(run_isolated(body))
    assert result["key"] == ""
    assert result["write"] == "EROFS"
    assert {"/secrets", "/secrets/key"} <= set(result["points"])


# --------------------------------------------------------------------------
# User namespace: no mknod, locked flags, sysfs without a network namespace


def test_rootfs_in_user_namespace(bundle, tmp_path):
    rootfs_path = os.path.join(bundle, "rootfs")
    locked = tmp_path / "locked"
    locked.mkdir()

    def lock_source():
        # Mounted before the user namespace: its flags become locked in there.
        sc.mount(
            "tmpfs",
            str(locked),
            "tmpfs",
            sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
            "size=1m",
        )
        with open(locked / "f", "w") as f:
            f.write("locked")

    mounts = [
        make_mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        make_mount("/dev", "tmpfs", "tmpfs", ["nosuid", "mode=755"]),
        make_mount("/sys", "sysfs", "sysfs", ["ro", "nosuid", "noexec", "nodev"]),
        make_mount("/locked", None, str(locked), ["bind", "ro"]),
    ]
    devices = [make_device("c", "/dev/kmsg", 1, 11, 0o600)]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path,
            mounts,
            devices,
            propagation=None,
            in_userns=True,
            bundle=bundle,
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        rootfs.finalize_rootfs(readonly=True, propagation=None)
        rootfs.mask_paths(["/proc/version"])
        return {
            "mounts": read_mountinfo(),
            "null": describe_node("/dev/null"),
            "kmsg": describe_node("/dev/kmsg"),
            "locked": read_text("/locked/f"),
            "masked_file": read_text("/proc/version"),
            "write_root": try_write("/x"),
        }

    result = unwrap(run_isolated(body, userns=True, before_userns=lock_source))
    mounts = result["mounts"]
    null = result["null"]
    assert stat.S_ISCHR(null["mode"]) and (null["major"], null["minor"]) == (1, 3)
    assert mount_at(mounts, "/dev/null")["fstype"] == "devtmpfs"
    sys_mount = mount_at(mounts, "/sys")
    assert "ro" in sys_mount["options"]
    locked_mount = mount_at(mounts, "/locked")
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(locked_mount["options"])
    assert result["locked"] == "locked"
    assert result["masked_file"] == ""
    assert result["write_root"] == "EROFS"
    kmsg = result["kmsg"]
    assert stat.S_ISCHR(kmsg["mode"]) and (kmsg["major"], kmsg["minor"]) == (1, 11)


def test_mount_console_binds_the_pty(bundle):
    rootfs_path = os.path.join(bundle, "rootfs")
    mounts = [
        m for m in default_mounts() if m.destination in ("/proc", "/dev", "/dev/pts")
    ]

    def body():
        rootfs.prepare_rootfs(
            rootfs_path, mounts, (), propagation=None, in_userns=False, bundle=bundle
        )
        rootfs.enter_rootfs(rootfs_path, no_pivot=False)
        _master, slave = os.openpty()
        name = os.ttyname(slave)
        rootfs.mount_console(name)
        console, pty = os.stat("/dev/console"), os.fstat(slave)
        return {
            "name": name,
            "same": console.st_rdev == pty.st_rdev,
            "point": mount_at(read_mountinfo(), "/dev/console")["fstype"],
        }

    result = unwrap(run_isolated(body))
    assert result == {"name": "/dev/pts/0", "same": True, "point": "devpts"}


def test_idmapped_mount_is_refused_before_mounting(bundle):
    from pyruntime.errors import UnsupportedError
    from pyruntime.rootfs.mounts import MountContext, mount_entry
    from pyruntime.rootfs.paths import RootHandle

    root = RootHandle(os.path.join(bundle, "rootfs"))
    try:
        context = MountContext(root, in_userns=False, bundle=bundle)
        mount = make_mount("/data", None, "/srv", ["rbind", "idmap"])
        with pytest.raises(UnsupportedError, match="idmapped mounts"):
            mount_entry(context, mount)
    finally:
        root.close()
    assert not os.path.exists(os.path.join(bundle, "rootfs", "data"))


def test_prepare_rootfs_refuses_relative_rootfs(bundle):
    with pytest.raises(SetupError, match="not an absolute path"):
        rootfs.prepare_rootfs(
            "rootfs", (), (), propagation=None, in_userns=False, bundle=bundle
        )
