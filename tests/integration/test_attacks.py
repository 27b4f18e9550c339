"""The attacks runtimes are known for, reproduced through the CLI (issue 3, point 5).

Each test sets up what the attack needs (a hostile rootfs, a leaked
descriptor, a process of the container next to the runtime's) and checks
from the host that nothing outside the container was reached. The kernel
level of the same defences is in ``test_rootfs_kernel.py``.

- CVE-2021-30465 class: a mount destination that is a symlink to ``/``,
  ``..`` or a host path;
- CVE-2025-31133 class: a masked path or ``/dev/null`` or ``/dev/console``
  swapped for a symlink or a fake;
- CVE-2024-21626 class: ``process.cwd`` through ``/proc/self/fd``, or any
  descriptor of the runtime that reaches the host;
- CVE-2019-5736 class: overwriting the interpreter that runs the runtime
  through ``/proc/<pid>/exe``;
- what the runtime knows: its state directory, its environment, the host's
  processes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import reap
from tests.integration.test_process import assert_refused, create_refused, output_of

pytestmark = pytest.mark.root


def add_mount(bundle, mount: dict) -> None:
    bundle.edit(lambda c: c["mounts"].append(mount))


def host_mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as handle:
        return {line.split()[4] for line in handle}


def assert_no_new_host_mounts(before: set[str], *places) -> None:
    """No mount appeared on the host at ``/``, ``/etc`` or under ``places``.

    Other programs (an engine's test, say) may mount meanwhile: only the
    places an escape would reach are looked at.
    """
    new = host_mount_points() - before
    roots = [str(p) for p in places]
    bad = [m for m in new if m in ("/", "/etc") or any(m.startswith(r) for r in roots)]
    assert not bad, bad


# --- CVE-2021-30465: symlinked mount destinations ------------------------------


@pytest.mark.parametrize("target", ["/", "..", "../../../..", "HOST"])
def test_mount_destination_symlink_never_leaves_the_rootfs(
    runtime, bundle, tmp_path, target
):
    outside = tmp_path / "outside"
    outside.mkdir()
    if target == "HOST":
        target = str(outside)
    (bundle.rootfs / "trap").symlink_to(target)
    add_mount(bundle, {"destination": "/trap", "type": "tmpfs", "source": "tmpfs"})
    before = host_mount_points()
    bundle.edit(lambda c: c["process"].update(args=["touch", "/trap/inside-only"]))
    cid = runtime.new_id()
    result = runtime("run", "--bundle", str(bundle.path), cid)
    if target in ("/", "..", "../../../.."):
        # Inside the rootfs these all name its root: mounting there would
        # hide the whole image, so it is refused with a clear error.
        assert result.returncode == 1
        assert "is the root of the rootfs" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        # The host path is read as a path of the rootfs: the mount is there.
        assert (bundle.rootfs / str(outside).lstrip("/")).is_dir()
    assert list(outside.iterdir()) == []
    assert_no_new_host_mounts(before, tmp_path)
    assert not (Path("/") / "inside-only").exists()


def test_magic_link_in_a_destination_is_read_as_a_path_of_the_rootfs(runtime, bundle):
    # /magic -> /proc/self/root: on the host that is the host's root, but the
    # link is only read as text and resolved again inside the rootfs.
    (bundle.rootfs / "magic").symlink_to("/proc/self/root")
    add_mount(bundle, {"destination": "/magic/etc", "type": "tmpfs", "source": "tmpfs"})
    before = host_mount_points()
    out = output_of(runtime, bundle, "grep ' /etc ' /proc/self/mountinfo; ls /etc")
    assert "tmpfs" in out.splitlines()[0]
    assert len(out.splitlines()) == 1  # the tmpfs over the image's /etc is empty
    assert_no_new_host_mounts(before, bundle.path)


# --- CVE-2025-31133: masked paths and /dev/null, /dev/console --------------------


def test_masked_path_symlinked_to_a_host_file_masks_only_inside(
    runtime, bundle, tmp_path
):
    secret = tmp_path / "host-secret"
    secret.write_text("host data\n")
    (bundle.rootfs / "etc" / "masked").symlink_to(str(secret))
    bundle.edit(lambda c: c["linux"]["maskedPaths"].append("/etc/masked"))
    before = host_mount_points()
    output_of(runtime, bundle, "true")
    assert secret.read_text() == "host data\n"
    assert str(secret) not in host_mount_points() - before


@pytest.mark.parametrize("fake", ["symlink", "regular"])
def test_fake_dev_null_in_the_image_is_refused(runtime, bundle, tmp_path, fake):
    # No /dev tmpfs: the image's own /dev is used, and its "null" is hostile.
    secret = tmp_path / "core_pattern_stand_in"
    secret.write_text("untouched\n")
    bundle.edit(
        lambda c: c.update(
            mounts=[m for m in c["mounts"] if m["destination"] == "/proc"]
        )
    )
    dev = bundle.rootfs / "dev"
    for entry in dev.iterdir():
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
    null = dev / "null"
    if fake == "symlink":
        null.symlink_to(str(secret))
    else:
        null.write_text("not the null device\n")
    bundle.edit(lambda c: c["linux"].update(devices=[]))
    line = create_refused(runtime, bundle, "/dev/null")
    assert "null" in line
    assert secret.read_text() == "untouched\n"


def test_dev_console_symlink_is_not_followed(runtime, bundle, tmp_path):
    secret = tmp_path / "host-file"
    secret.write_text("untouched\n")
    bundle.edit(
        lambda c: c.update(
            mounts=[m for m in c["mounts"] if m["destination"] != "/dev"]
        )
    )
    console = bundle.rootfs / "dev" / "console"
    if console.exists() or console.is_symlink():
        console.unlink()
    console.symlink_to(str(secret))
    # Without a terminal the runtime must not touch /dev/console at all; the
    # default devices are created over what the image has, never through it.
    output_of(runtime, bundle, "true")
    assert secret.read_text() == "untouched\n"
    assert str(secret) not in host_mount_points()


def test_dev_console_symlink_is_refused_for_a_terminal(runtime, bundle, tmp_path):
    from tests.integration.test_process import ConsoleReceiver

    bundle.edit(
        lambda c: c.update(
            mounts=[m for m in c["mounts"] if m["destination"] != "/dev"]
        )
    )
    console = bundle.rootfs / "dev" / "console"
    if console.exists() or console.is_symlink():
        console.unlink()
    console.symlink_to("/proc/sysrq-trigger")
    bundle.edit(lambda c: c["process"].update(terminal=True))
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    try:
        cid = runtime.new_id()
        result = runtime.create(bundle, cid, "--console-socket", receiver.path)
    finally:
        receiver.close()
    assert_refused(runtime, result, cid, "/dev/console", "/proc/sysrq-trigger")


# --- CVE-2024-21626: descriptors and cwd ---------------------------------------


@pytest.mark.parametrize("cwd", ["/proc/self/fd/3", "/proc/self/fd/4", "/proc/1/cwd"])
def test_cwd_through_proc_fd_never_reaches_the_host(runtime, bundle, cwd):
    bundle.edit(
        lambda c: c["process"].update(
            cwd=cwd, args=["sh", "-c", "ls ../../../../; cat /proc/self/mountinfo"]
        )
    )
    cid = runtime.new_id()
    result = runtime("run", "--bundle", str(bundle.path), cid)
    if result.returncode == 0:
        # Then the directory is one of the container's own.
        assert "pyruntime" not in result.stdout.split("\n", 1)[0]
        assert not os.path.exists(Path(result.stdout.split()[0]))
    else:
        assert "chdir to cwd" in result.stderr or cwd in result.stderr


def test_container_sees_only_stdio_and_preserved_fds(runtime, bundle, tmp_path):
    """fd 3 stands for the containerd shim's socket: never seen inside,
    unless ``--preserve-fds 1`` hands it on on purpose (then as fd 3)."""
    bundle.edit(
        lambda c: c["process"].update(
            args=["sh", "-c", "ls /proc/self/fd; ls -l /proc/self/fd/3; true"]
        )
    )
    for flags in ((), ("--preserve-fds", "1")):
        cid = runtime.new_id()
        argv = runtime.argv("run", "--bundle", str(bundle.path), *flags, cid)
        result = subprocess.run(
            ["sh", "-c", 'exec 3<"$0"; exec "$@"', str(tmp_path), *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        # ls opens the directory it lists: that is one fd above the others.
        seen = {line for line in result.stdout.splitlines() if line.isdigit()}
        if flags:
            assert seen == {"0", "1", "2", "3", "4"}, result.stdout
            assert str(tmp_path) in result.stdout
        else:
            assert seen == {"0", "1", "2", "3"}, result.stdout
            assert str(tmp_path) not in result.stdout


# --- CVE-2019-5736: the interpreter behind /proc/<pid>/exe ------------------------


def digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_init_runs_from_a_sealed_copy_of_the_interpreter(runtime, bundle, tmp_path):
    pid_file = tmp_path / "init.pid"
    cid = runtime.new_id()
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    pid = int(pid_file.read_text())
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.startswith("/memfd:pyruntime"), exe
    with open(f"/proc/{pid}/status") as handle:
        assert "\nSeccomp:" in handle.read()
    # Even the host's root cannot change the copy: it runs (ETXTBSY) and,
    # when it no longer does, it is still sealed against writes.
    with pytest.raises(OSError) as info:
        os.open(f"/proc/{pid}/exe", os.O_WRONLY)
    assert info.value.errno in (errno.ETXTBSY, errno.EPERM)
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    finally:
        os.close(fd)
    wanted = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW
    assert seals & wanted == wanted
    runtime.ok("delete", "--force", cid)
    reap(pid)


def test_created_init_is_not_dumpable(runtime, bundle, tmp_path):
    """Before exec, init's /proc files belong to the host's root, not to the
    container's user: nobody in the container may ptrace or read them."""
    bundle.edit(lambda c: c["process"].update(user={"uid": 1000, "gid": 1000}))
    pid_file = tmp_path / "init.pid"
    cid = runtime.new_id()
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    pid = int(pid_file.read_text())
    try:
        with open(f"/proc/{pid}/status") as handle:
            uids = next(line for line in handle if line.startswith("Uid:"))
        assert uids.split()[1:] == ["1000"] * 4  # already the container user
        # A dumpable process's /proc/<pid> files belong to its own uid.
        assert os.stat(f"/proc/{pid}/environ").st_uid == 0
        runtime.ok("start", cid)
        reap(pid)
    finally:
        runtime("delete", "--force", cid)


def test_container_cannot_overwrite_the_interpreter_through_proc_exe(
    runtime, bundle, tmp_path
):
    """A second container in the first one's pid namespace attacks its init.

    It holds every capability (CAP_SYS_PTRACE included), so being
    non-dumpable alone would not stop it; the sealed copy does.
    """
    import sys

    interpreter = os.path.realpath(sys.executable)
    before = digest(interpreter)
    pid_file = tmp_path / "victim.pid"
    victim = runtime.new_id("victim")
    assert runtime.create(bundle, victim, "--pid-file", str(pid_file)).returncode == 0
    victim_pid = int(pid_file.read_text())
    all_caps = [
        "CAP_SYS_PTRACE", "CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER", "CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID",
    ]  # fmt: skip
    script = (
        "for e in /proc/[0-9]*/exe; do "
        "  readlink $e; "
        "  (echo pwned >> $e) 2>&1 && echo WROTE $e; "
        "done; true"
    )

    def attacker(config):
        namespaces = config["linux"]["namespaces"]
        for ns in namespaces:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{victim_pid}/ns/pid"
        config["process"].update(
            args=["sh", "-c", script],
            noNewPrivileges=False,
            capabilities={s: all_caps for s in ("bounding", "effective", "permitted")},
        )

    attack_bundle = bundle.__class__(tmp_path / "attacker", bundle.template)
    attack_bundle.path.mkdir()
    attack_bundle.write(bundle.config).edit(attacker)
    result = runtime("run", "--bundle", str(attack_bundle.path), runtime.new_id("a"))
    runtime.ok("delete", "--force", victim)
    reap(victim_pid)
    assert result.returncode == 0, result.stderr
    assert "WROTE" not in result.stdout
    assert "/memfd:pyruntime" in result.stdout or "denied" in result.stdout
    assert digest(interpreter) == before


# --- what the runtime knows ------------------------------------------------------


def test_container_sees_neither_state_nor_environment_nor_host_processes(
    runtime, bundle
):
    script = (
        "ls /proc | grep -c '^[0-9]'; "
        f"ls {runtime.root} 2>&1 | head -1; "
        "cat /proc/1/environ | tr '\\0' '\\n' | sort; "
        "echo END"
    )
    bundle.edit(lambda c: c["process"].update(args=["sh", "-c", script]))
    env = dict(os.environ, PYRUNTIME_TEST_SECRET="do-not-leak")
    result = runtime(
        "run", "--bundle", str(bundle.path), runtime.new_id(), env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # sh itself, and the ls/grep/cat/... pipeline: all pid-namespace children.
    assert int(lines[0]) <= 6
    assert "No such file or directory" in lines[1]
    assert "do-not-leak" not in result.stdout
    environ = lines[2 : lines.index("END")]
    assert set(environ) == set(bundle.config["process"]["env"])
