"""Capabilities, no_new_privs and seccomp through the CLI (issue 3, points 1-3).

``test_security_kernel.py`` checks the security modules in forked children;
this file checks that ``create``/``run`` really apply them to the container's
process: what the kernel reports in the container's ``/proc/self/status``,
what a filtered system call returns inside the container, and that every
refused configuration ends in one error line with nothing left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading

import pytest

from tests.integration.test_process import assert_refused, create_refused

pytestmark = pytest.mark.root

ALL_DEFAULT = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
NUMBERS = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_RAW": 13,
    "CAP_SYS_CHROOT": 18,
    "CAP_MKNOD": 27,
    "CAP_AUDIT_WRITE": 29,
    "CAP_SETFCAP": 31,
}


def mask(names) -> str:
    value = 0
    for name in names:
        value |= 1 << NUMBERS[name]
    return f"{value:016x}"


def status_of(runtime, bundle, edit, script="cat /proc/self/status") -> dict:
    """Run ``script`` in a container configured by ``edit``; parse key: value."""
    result = run_in(runtime, bundle, edit, script)
    assert result.returncode == 0, result.stderr
    fields = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def run_in(runtime, bundle, edit, script: str):
    def change(config):
        config["process"]["args"] = ["sh", "-c", script]
        edit(config)

    bundle.edit(change)
    return runtime("run", "--bundle", str(bundle.path), runtime.new_id())


def caps(**sets):
    def edit(config):
        config["process"]["capabilities"] = sets

    return edit


# --- capabilities -------------------------------------------------------------


def test_capabilities_root_gets_the_configured_sets(runtime, bundle):
    bounding = ALL_DEFAULT
    effective = ["CAP_CHOWN", "CAP_KILL"]
    seen = status_of(
        runtime,
        bundle,
        caps(
            bounding=bounding,
            effective=effective,
            permitted=[*effective, "CAP_SETUID"],
            inheritable=["CAP_KILL"],
        ),
    )
    assert seen["CapBnd"] == mask(bounding)
    # execve as uid 0 makes the effective set the permitted one (the kernel's
    # rule for root; runc shows the same).
    assert seen["CapEff"] == mask([*effective, "CAP_SETUID"])
    assert seen["CapPrm"] == mask([*effective, "CAP_SETUID"])
    assert seen["CapInh"] == mask(["CAP_KILL"])
    assert seen["CapAmb"] == mask([])


def test_capabilities_non_root_user_keeps_ambient(runtime, bundle):
    wanted = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]

    def edit(config):
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        caps(
            bounding=wanted,
            effective=wanted,
            permitted=wanted,
            inheritable=wanted,
            ambient=wanted,
        )(config)

    seen = status_of(runtime, bundle, edit)
    assert seen["Uid"].split()[0] == "1000"
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert seen[key] == mask(wanted), key


def test_capabilities_non_root_without_ambient_loses_them_at_exec(runtime, bundle):
    def edit(config):
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        caps(bounding=["CAP_KILL"], effective=["CAP_KILL"], permitted=["CAP_KILL"])(
            config
        )

    seen = status_of(runtime, bundle, edit)
    assert seen["CapBnd"] == mask(["CAP_KILL"])
    assert seen["CapEff"] == seen["CapPrm"] == seen["CapAmb"] == mask([])


def test_capabilities_empty_object_drops_everything(runtime, bundle):
    seen = status_of(runtime, bundle, caps())
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert seen[key] == "0000000000000000", key


def test_capabilities_dropped_chown_is_refused_inside(runtime, bundle):
    no_chown = [c for c in ALL_DEFAULT if c not in ("CAP_CHOWN", "CAP_DAC_OVERRIDE")]
    edit = caps(bounding=no_chown, effective=no_chown, permitted=no_chown)
    result = run_in(runtime, bundle, edit, "touch /tmp/f && chown 1234 /tmp/f")
    assert result.returncode == 1
    assert "Operation not permitted" in result.stderr


def test_capabilities_unknown_name_is_an_error(runtime, bundle):
    bundle.edit(
        lambda c: c["process"].update(
            capabilities={"bounding": ["CAP_CHOWN", "CAP_NO_SUCH"]}
        )
    )
    line = create_refused(runtime, bundle, "CAP_NO_SUCH")
    assert "process.capabilities.bounding[1]" in line


def test_capabilities_the_host_lacks_are_named(runtime, bundle):
    with open("/proc/self/status") as handle:
        bnd = next(int(x.split()[1], 16) for x in handle if x.startswith("CapBnd"))
    if bnd >> 24 & 1:
        pytest.skip("this host has CAP_SYS_RESOURCE in its bounding set")
    bundle.edit(
        lambda c: c["process"].update(capabilities={"bounding": ["CAP_SYS_RESOURCE"]})
    )
    create_refused(runtime, bundle, "CAP_SYS_RESOURCE", "bounding set")


# --- no_new_privs ---------------------------------------------------------------


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges_is_what_the_config_says(runtime, bundle, nnp):
    seen = status_of(
        runtime, bundle, lambda c: c["process"].update(noNewPrivileges=nnp)
    )
    assert seen["NoNewPrivs"] == ("1" if nnp else "0")


# --- seccomp --------------------------------------------------------------------


def seccomp_config(default="SCMP_ACT_ALLOW", syscalls=(), **extra):
    def edit(config):
        config["linux"]["seccomp"] = {
            "defaultAction": default,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": list(syscalls),
            **extra,
        }

    return edit


MKDIRS = ["mkdir", "mkdirat"]


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_errno_rule_applies_inside(runtime, bundle, nnp):
    def edit(config):
        config["process"]["noNewPrivileges"] = nnp
        seccomp_config(
            syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        )(config)

    result = run_in(
        runtime, bundle, edit, "mkdir /tmp/x; echo rc=$?; cat /proc/1/status"
    )
    assert result.returncode == 0, result.stderr
    assert "Permission denied" in result.stderr
    assert "rc=1" in result.stdout
    assert "Seccomp:\t2" in result.stdout


def test_seccomp_kill_process_kills_the_container(runtime, bundle):
    edit = seccomp_config(
        syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_KILL_PROCESS"}]
    )
    result = run_in(runtime, bundle, edit, "exec mkdir /tmp/x")
    assert result.returncode == 128 + signal.SIGSYS


def test_seccomp_argument_condition(runtime, bundle):
    # Deny only personality(0xffffffff) queries? Use umask: deny umask(0777).
    rule = {
        "names": ["umask"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 1,
        "args": [{"index": 0, "value": 0o777, "op": "SCMP_CMP_EQ"}],
    }
    result = run_in(
        runtime,
        bundle,
        seccomp_config(syscalls=[rule]),
        "umask 022 && echo ok-022; umask 0777 && echo ok-777",
    )
    assert "ok-022" in result.stdout


def test_seccomp_default_errno_ret(runtime, bundle):
    allowed = [
        "execve", "brk", "mmap", "munmap", "mprotect", "arch_prctl", "exit_group",
        "read", "write", "open", "openat", "close", "fstat", "newfstatat", "stat",
        "getuid", "geteuid", "getpid", "getppid", "rt_sigaction", "rt_sigprocmask",
        "set_tid_address", "ioctl", "fcntl", "uname", "access", "lseek", "getcwd",
        "rt_sigreturn", "exit", "wait4", "clone", "fork", "vfork", "prlimit64",
        "getrandom", "setpgid", "getpgrp", "readlink", "poll", "dup2", "statx",
    ]  # fmt: skip
    edit = seccomp_config(
        default="SCMP_ACT_ERRNO",
        defaultErrnoRet=38,  # ENOSYS
        syscalls=[{"names": allowed, "action": "SCMP_ACT_ALLOW"}],
    )
    result = run_in(runtime, bundle, edit, "mkdir /tmp/x")
    assert result.returncode != 0
    assert "Function not implemented" in result.stderr


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("defaultAction", "SCMP_ACT_BOGUS", ["SCMP_ACT_BOGUS"]),
        ("architectures", ["SCMP_ARCH_NOPE"], ["SCMP_ARCH_NOPE"]),
        ("flags", ["SECCOMP_FILTER_FLAG_NOPE"], ["SECCOMP_FILTER_FLAG_NOPE"]),
    ],
)
def test_seccomp_bad_values_are_refused(runtime, bundle, field, value, words):
    def edit(config):
        seccomp_config()(config)
        config["linux"]["seccomp"][field] = value

    bundle.edit(edit)
    create_refused(runtime, bundle, *words)


def test_seccomp_unknown_syscall_is_skipped_with_a_warning(runtime, bundle):
    edit = seccomp_config(
        syscalls=[{"names": ["mkdir", "no_such_call"], "action": "SCMP_ACT_ERRNO"}]
    )
    result = run_in(runtime, bundle, edit, "mkdir /tmp/x; echo rc=$?")
    assert "rc=1" in result.stdout
    assert "no_such_call" in result.stderr


def test_seccomp_rule_of_unknown_names_only_is_refused(runtime, bundle):
    bundle.edit(
        seccomp_config(
            syscalls=[
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["no_such_call", "nor_this"], "action": "SCMP_ACT_ERRNO"},
            ]
        )
    )
    line = create_refused(runtime, bundle, "linux.seccomp.syscalls[1].names")
    assert "no_such_call, nor_this" in line
    assert "no effect" in line


def test_seccomp_notify_fd_reaches_the_listener(runtime, bundle, tmp_path):
    path = str(tmp_path / "agent.sock")
    received: dict = {}
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(30)

    def agent():
        try:
            conn, _ = server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
            received["message"] = json.loads(data)
            received["fds"] = fds
            # Closing the listener makes the notified syscalls fail (ENOSYS).
            for fd in fds:
                os.close(fd)
        except OSError as err:
            received["error"] = err

    thread = threading.Thread(target=agent)
    thread.start()
    try:
        edit = seccomp_config(
            syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_NOTIFY"}],
            listenerPath=path,
            listenerMetadata="hello",
        )
        cid_result = run_in(runtime, bundle, edit, "mkdir /tmp/x; echo rc=$?")
    finally:
        thread.join(40)
        server.close()
    assert "error" not in received, received
    message = received["message"]
    assert message["fds"] == ["seccompFd"]
    assert message["metadata"] == "hello"
    assert message["state"]["id"].startswith("t-")
    assert len(received["fds"]) == 1
    assert "rc=1" in cid_result.stdout, cid_result.stderr


def test_seccomp_listener_that_is_not_there_fails_create(runtime, bundle, tmp_path):
    bundle.edit(
        seccomp_config(
            syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_NOTIFY"}],
            listenerPath=str(tmp_path / "nobody.sock"),
        )
    )
    bundle.edit(lambda c: c["process"].update(noNewPrivileges=False))
    cid = runtime.new_id()
    result = runtime.create(bundle, cid)
    assert_refused(runtime, result, cid, "seccomp agent", "nobody.sock")


# --- the cache of compiled seccomp programs -------------------------------------


def cached_run(runtime, bundle, cache, script: str):
    """``run`` with the debug log on and its own seccomp cache directory."""
    bundle.edit(lambda config: config["process"].update(args=["sh", "-c", script]))
    env = {**os.environ, "PYRUNTIME_CACHE_DIR": str(cache)}
    return runtime("--debug", "run", "--bundle", str(bundle.path), runtime.new_id(),
                   env=env)  # fmt: skip


def test_seccomp_program_is_compiled_once_then_read_from_the_cache(
    runtime, bundle, tmp_path
):
    cache = tmp_path / "cache"
    bundle.edit(
        seccomp_config(
            syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        )
    )
    runs = [cached_run(runtime, bundle, cache, "mkdir /tmp/x; echo rc=$?")
            for _ in range(2)]  # fmt: skip
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert "rc=1" in result.stdout  # the filter works both times
        assert "Permission denied" in result.stderr
    assert "compiled and kept in the cache" in runs[0].stderr
    assert "read from the cache" not in runs[0].stderr
    assert "read from the cache" in runs[1].stderr
    files = list((cache / "seccomp").iterdir())
    assert len(files) == 1 and files[0].suffix == ".bpf"
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"


def test_seccomp_cache_entry_is_per_filter(runtime, bundle, tmp_path):
    cache = tmp_path / "cache"
    for names in (["mkdir", "mkdirat"], ["rmdir"]):
        bundle.edit(
            seccomp_config(syscalls=[{"names": names, "action": "SCMP_ACT_ERRNO"}])
        )
        result = cached_run(runtime, bundle, cache, "mkdir /tmp/x; echo rc=$?")
        assert result.returncode == 0, result.stderr
    # Two filters, two programs: the second run did not reuse the first's.
    assert "rc=0" in result.stdout
    assert len(list((cache / "seccomp").iterdir())) == 2


def test_seccomp_cache_others_can_write_is_not_used(runtime, bundle, tmp_path):
    cache = tmp_path / "cache"
    bundle.edit(
        seccomp_config(syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_ERRNO"}])
    )
    assert cached_run(runtime, bundle, cache, "true").returncode == 0
    (cache / "seccomp").chmod(0o777)
    # A program anybody could have replaced: compiled again, not read.
    (program,) = (cache / "seccomp").iterdir()
    program.write_bytes(program.read_bytes()[:40])
    result = cached_run(runtime, bundle, cache, "mkdir /tmp/x; echo rc=$?")
    assert result.returncode == 0, result.stderr
    assert "rc=1" in result.stdout
    assert "not ours alone" in result.stderr
    assert "read from the cache" not in result.stderr


def test_seccomp_damaged_cache_file_is_compiled_again(runtime, bundle, tmp_path):
    cache = tmp_path / "cache"
    bundle.edit(
        seccomp_config(syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_ERRNO"}])
    )
    assert cached_run(runtime, bundle, cache, "true").returncode == 0
    (program,) = (cache / "seccomp").iterdir()
    program.write_bytes(program.read_bytes()[:-3])  # not whole instructions
    result = cached_run(runtime, bundle, cache, "mkdir /tmp/x; echo rc=$?")
    assert result.returncode == 0, result.stderr
    assert "rc=1" in result.stdout
    assert "read from the cache" not in result.stderr
    assert "compiled and kept in the cache" in result.stderr


def test_seccomp_cache_keeps_the_unknown_syscall_warning(runtime, bundle, tmp_path):
    cache = tmp_path / "cache"
    bundle.edit(
        seccomp_config(
            syscalls=[{"names": ["mkdir", "no_such_call"], "action": "SCMP_ACT_ERRNO"}]
        )
    )
    for _ in range(2):
        result = cached_run(runtime, bundle, cache, "true")
        assert result.returncode == 0, result.stderr
        assert "left out of the filter: no_such_call" in result.stderr


def test_seccomp_cache_off_when_the_variable_is_empty(runtime, bundle, tmp_path):
    bundle.edit(
        seccomp_config(syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_ERRNO"}])
    )
    result = cached_run(runtime, bundle, "", "mkdir /tmp/x; echo rc=$?")
    assert result.returncode == 0, result.stderr
    assert "rc=1" in result.stdout
    assert "kept in the cache" not in result.stderr
    assert "read from the cache" not in result.stderr


def test_check_reads_the_seccomp_cache_but_never_writes_it(runtime, bundle, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "PYRUNTIME_CACHE_DIR": str(cache)}
    bundle.edit(
        seccomp_config(syscalls=[{"names": MKDIRS, "action": "SCMP_ACT_ERRNO"}])
    )
    checked = runtime("--debug", "check", str(bundle.path), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not cache.exists()  # check compiled it and wrote nothing
    assert cached_run(runtime, bundle, cache, "true").returncode == 0
    again = runtime("--debug", "check", str(bundle.path), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "read from the cache" in again.stderr
    assert len(list((cache / "seccomp").iterdir())) == 1
