"""Capabilities and seccomp applied for real, in forked children.

No container is needed: a child of the test process does what init does
(keep-caps, setresuid, capability sets; no_new_privs and a seccomp filter),
then execs busybox. What the kernel lets the program see is read from its
``/proc/self/status`` and its exit status. The expectations for capabilities
are the ones runc 1.1.5 shows on this kind of host for the same configs.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyruntime.errors import SetupError, UnsupportedError
from pyruntime.linux import syscalls as sc
from pyruntime.security import capabilities as caps
from pyruntime.security import seccomp
from pyruntime.spec.model import Arg, Capabilities, Seccomp, Syscall

pytestmark = pytest.mark.root

BUSYBOX = "/bin/busybox"
NONROOT = 1000

if os.geteuid() != 0 or not os.path.exists(BUSYBOX):
    pytest.skip("needs root and /bin/busybox", allow_module_level=True)


@dataclass
class Outcome:
    status: int
    out: str
    err: str

    @property
    def exit_code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None


def wait_child(pid: int, timeout: float = 20) -> int:
    """waitpid with a deadline; the child is killed if it overruns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {timeout}s")


def fork_child(tmp_path: Path, setup, argv: list[str] | None):
    """Fork; the child runs ``setup()`` then execs ``argv`` (or exits 0)."""
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            os.chdir(tmp_path)
            # SIGSYS deaths would otherwise leave core files behind.
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            setup()
            if argv is not None:
                os.execv(argv[0], argv)
        except BaseException:  # reported through the err file
            os.write(2, traceback.format_exc().encode())
            code = 127
        os._exit(code)
    os.close(out_fd)
    os.close(err_fd)
    return pid, out_path, err_path


def run_child(tmp_path: Path, setup, argv: list[str] | None) -> Outcome:
    """Run ``setup`` then ``argv`` in a forked child; collect what it left."""
    pid, out_path, err_path = fork_child(tmp_path, setup, argv)
    status = wait_child(pid)
    return Outcome(status, out_path.read_text(), err_path.read_text())


def parse_caps(text: str) -> dict[str, int]:
    """``CapXxx:`` lines of /proc/<pid>/status as integers."""
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            found[key] = int(value.strip(), 16)
    return found


# --- capabilities -------------------------------------------------------------

N = ["CAP_NET_BIND_SERVICE"]
#: containerd's and Docker's default list.
DEFAULT_14 = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip
#: What ``runc spec`` writes: ambient without inheritable.
RUNC_SPEC = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
NEWEST = ["CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE", "CAP_SETPCAP"]

CONFIGS = {
    "default14": Capabilities(
        bounding=tuple(DEFAULT_14),
        effective=tuple(DEFAULT_14),
        permitted=tuple(DEFAULT_14),
    ),
    "runc-spec": Capabilities(
        bounding=tuple(RUNC_SPEC),
        effective=tuple(RUNC_SPEC),
        permitted=tuple(RUNC_SPEC),
        ambient=tuple(RUNC_SPEC),
    ),
    "empty": Capabilities((), (), (), (), ()),
    "nbs-everywhere": Capabilities(*(tuple(N),) * 5),
    "microservice": Capabilities(
        bounding=tuple(N),
        effective=tuple(N),
        inheritable=(),
        permitted=tuple(N),
        ambient=(),
    ),
    "newest": Capabilities(*(tuple(NEWEST),) * 5),
}


def mask(names) -> int:
    return caps.set_to_mask(frozenset(caps.CAPABILITIES[n] for n in names or ()))


def expected_after_exec(config: Capabilities, uid: int) -> dict[str, int]:
    """capabilities(7) for execve of a file without file capabilities."""
    plan = caps.plan_capabilities(config)
    bounding, inheritable = mask(config.bounding), mask(config.inheritable)
    ambient = caps.set_to_mask(plan.ambient)
    permitted = bounding | inheritable if uid == 0 else ambient
    return {
        "CapInh": inheritable,
        "CapPrm": permitted,
        "CapEff": permitted,
        "CapBnd": bounding,
        "CapAmb": ambient,
    }


def become_user_with(plan, uid: int, nnp: bool = False):
    """The init sequence: keep-caps, groups and ids, then the capability sets."""

    def setup():
        if nnp:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        caps.prepare_capabilities(plan)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        caps.apply_capabilities(plan)

    return setup


@pytest.mark.parametrize("nnp", [False, True], ids=["", "nnp"])
@pytest.mark.parametrize("uid", [0, NONROOT])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_capabilities_seen_by_program_follow_kernel_rules(tmp_path, name, uid, nnp):
    config = CONFIGS[name]
    plan = caps.plan_capabilities(config)
    argv = [BUSYBOX, "grep", "Cap", "/proc/self/status"]
    outcome = run_child(tmp_path, become_user_with(plan, uid, nnp), argv)
    assert outcome.exit_code == 0, outcome.err
    assert parse_caps(outcome.out) == expected_after_exec(config, uid)


@pytest.mark.parametrize("uid", [0, NONROOT])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_capabilities_in_init_are_exactly_the_config(tmp_path, name, uid):
    config = CONFIGS[name]
    plan = caps.plan_capabilities(config)

    def setup():
        become_user_with(plan, uid)()
        with open("/proc/self/status") as handle:
            os.write(1, handle.read().encode())

    outcome = run_child(tmp_path, setup, None)
    assert outcome.exit_code == 0, outcome.err
    assert parse_caps(outcome.out) == {
        "CapInh": mask(config.inheritable),
        "CapPrm": mask(config.permitted),
        "CapEff": mask(config.effective),
        "CapBnd": mask(config.bounding),
        "CapAmb": caps.set_to_mask(plan.ambient),
    }


def test_capabilities_match_runc_for_the_seeds(tmp_path):
    # Values printed by runc 1.1.5 for the same configs on this host.
    seen = {}
    for name, uid in [("default14", 0), ("microservice", 1001), ("runc-spec", 0)]:
        plan = caps.plan_capabilities(CONFIGS[name])
        argv = [BUSYBOX, "grep", "Cap", "/proc/self/status"]
        outcome = run_child(tmp_path, become_user_with(plan, uid), argv)
        seen[name] = parse_caps(outcome.out)
    assert seen["default14"]["CapEff"] == 0xA80425FB
    assert seen["microservice"] == {
        "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0x400, "CapAmb": 0,
    }  # fmt: skip
    assert seen["runc-spec"]["CapPrm"] == 0x20000420
    assert seen["runc-spec"]["CapAmb"] == 0


def test_capabilities_without_keepcaps_are_lost(tmp_path):
    plan = caps.plan_capabilities(CONFIGS["nbs-everywhere"])

    def setup():
        os.setresgid(NONROOT, NONROOT, NONROOT)
        os.setresuid(NONROOT, NONROOT, NONROOT)
        caps.apply_capabilities(plan)

    outcome = run_child(tmp_path, setup, None)
    assert outcome.exit_code == 127
    assert "from the bounding set: operation not permitted" in outcome.err


def test_capabilities_absent_object_leaves_root_alone(tmp_path):
    argv = [BUSYBOX, "grep", "Cap", "/proc/self/status"]
    outcome = run_child(tmp_path, become_user_with(None, 0), argv)
    host = caps.set_to_mask(caps.read_host_bounding_set())
    assert parse_caps(outcome.out)["CapBnd"] == host
    assert parse_caps(outcome.out)["CapEff"] == host


def test_capabilities_host_check_names_missing_capability():
    host = caps.read_host_bounding_set()
    if caps.CAPABILITIES["CAP_SYS_RESOURCE"] in host:
        pytest.skip("this host has CAP_SYS_RESOURCE in its bounding set")
    plan = caps.plan_capabilities(Capabilities(bounding=("CAP_SYS_RESOURCE",)))
    with pytest.raises(UnsupportedError) as info:
        caps.check_host_capabilities(plan)
    assert str(info.value) == (
        "capability CAP_SYS_RESOURCE is not in this host's bounding set: the "
        "container cannot have it"
    )
    caps.check_host_capabilities(caps.plan_capabilities(CONFIGS["default14"]))


# --- seccomp ------------------------------------------------------------------


def filtered(plan, *, nnp: bool = True, uid: int | None = None, then=None):
    """A child set-up: optional user switch, no_new_privs, load the filter."""
    program = seccomp.compile_seccomp(plan)

    def setup():
        if uid is not None:
            empty = caps.plan_capabilities(Capabilities((), (), (), (), ()))
            caps.prepare_capabilities(empty)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            caps.apply_capabilities(empty)
        if nnp:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        fd = seccomp.load_seccomp(program)
        if then is not None:
            then(fd)

    return setup


def rule(names, action, errno_ret=None, args=None) -> Syscall:
    args = tuple(args) if args else None
    return Syscall(names=tuple(names), action=action, errno_ret=errno_ret, args=args)


def allow_except(*rules_, **kw) -> seccomp.SeccompPlan:
    return seccomp.plan_seccomp(
        Seccomp(default_action="SCMP_ACT_ALLOW", syscalls=tuple(rules_), **kw)
    )


def test_seccomp_errno_rule_blocks_mkdir(tmp_path):
    plan = allow_except(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO"))
    outcome = run_child(tmp_path, filtered(plan), [BUSYBOX, "mkdir", "blocked"])
    assert outcome.exit_code == 1
    assert "Operation not permitted" in outcome.err
    assert not (tmp_path / "blocked").exists()


def test_seccomp_status_shows_filter_mode(tmp_path):
    plan = allow_except(rule(["mkdir"], "SCMP_ACT_ERRNO"))
    argv = [BUSYBOX, "grep", "^Seccomp", "/proc/self/status"]
    outcome = run_child(tmp_path, filtered(plan), argv)
    lines = dict(line.split(":\t") for line in outcome.out.splitlines())
    assert lines["Seccomp"] == "2"
    assert lines["Seccomp_filters"] == "1"


def test_seccomp_errno_ret_per_rule(tmp_path):
    plan = allow_except(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno.EROFS))
    outcome = run_child(tmp_path, filtered(plan), [BUSYBOX, "mkdir", "x"])
    assert "Read-only file system" in outcome.err


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"])
def test_seccomp_kill_ends_program_with_sigsys(tmp_path, action):
    plan = allow_except(rule(["uname"], action))
    outcome = run_child(tmp_path, filtered(plan), [BUSYBOX, "uname"])
    assert outcome.signal == signal.SIGSYS
    assert outcome.out == ""


def test_seccomp_trap_delivers_sigsys(tmp_path):
    plan = allow_except(rule(["uname"], "SCMP_ACT_TRAP"))
    outcome = run_child(tmp_path, filtered(plan), [BUSYBOX, "uname"])
    assert outcome.signal == signal.SIGSYS


def test_seccomp_log_lets_call_through(tmp_path):
    plan = allow_except(rule(["uname"], "SCMP_ACT_LOG"))
    outcome = run_child(tmp_path, filtered(plan), [BUSYBOX, "uname"])
    assert outcome.exit_code == 0, outcome.err
    assert outcome.out == "Linux\n"


def test_seccomp_masked_eq_matches_mode_bits(tmp_path):
    # Refuse chmod to modes with no group/other bits: (mode & 077) == 0.
    masked = Arg(index=1, value=0o077, value_two=0, op="SCMP_CMP_MASKED_EQ")
    plan = allow_except(rule(["chmod"], "SCMP_ACT_ERRNO", errno.EACCES, [masked]))
    (tmp_path / "f").touch()
    private = run_child(tmp_path, filtered(plan), [BUSYBOX, "chmod", "700", "f"])
    assert "Permission denied" in private.err
    shared = run_child(tmp_path, filtered(plan), [BUSYBOX, "chmod", "755", "f"])
    assert shared.exit_code == 0, shared.err
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o755


def test_seccomp_same_argument_twice_means_either(tmp_path):
    either = [
        Arg(index=1, value=0o700, op="SCMP_CMP_EQ"),
        Arg(index=1, value=0o711, op="SCMP_CMP_EQ"),
    ]
    plan = allow_except(rule(["chmod"], "SCMP_ACT_ERRNO", errno.EACCES, either))
    (tmp_path / "f").touch()
    for mode, refused in [("700", True), ("711", True), ("755", False)]:
        outcome = run_child(tmp_path, filtered(plan), [BUSYBOX, "chmod", mode, "f"])
        assert ("Permission denied" in outcome.err) == refused, mode


def test_seccomp_conditions_on_different_arguments_all_apply(tmp_path):
    # kill(pid, sig): refused only when sig == SIGUSR1 and pid > 1.
    both = [
        Arg(index=1, value=signal.SIGUSR1, op="SCMP_CMP_EQ"),
        Arg(index=0, value=1, op="SCMP_CMP_GT"),
    ]
    plan = allow_except(rule(["kill"], "SCMP_ACT_ERRNO", errno.EACCES, both))
    script = "kill -USR1 $$ 2>&1; kill -0 $$ && echo alive"
    argv = [BUSYBOX, "sh", "-c", "trap 'echo got' USR1; " + script]
    outcome = run_child(tmp_path, filtered(plan), argv)
    assert "Permission denied" in outcome.out
    assert "got" not in outcome.out
    assert "alive" in outcome.out


#: The allowlist of the "financial" seed config (default action ERRNO).
_FINANCIAL_NAMES = """
read write open close stat fstat lstat poll lseek mmap mprotect munmap brk
rt_sigaction rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev
access pipe select sched_yield mremap msync mincore madvise dup dup2 pause
nanosleep getitimer alarm setitimer getpid sendfile socket connect accept sendto
recvfrom sendmsg recvmsg shutdown bind listen getsockname getpeername socketpair
setsockopt getsockopt clone fork vfork execve exit wait4 kill uname fcntl flock
fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir
rmdir creat link unlink symlink readlink chmod fchmod chown fchown lchown umask
gettimeofday getrlimit getrusage sysinfo times getuid syslog getgid setuid
setgid geteuid getegid setpgid getppid getpgrp setsid setreuid setregid
getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid
setfsgid getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo
rt_sigsuspend sigaltstack utime mknod personality ustat statfs fstatfs sysfs
getpriority setpriority sched_setparam sched_getparam sched_setscheduler
sched_getscheduler sched_get_priority_max sched_get_priority_min
sched_rr_get_interval mlock munlock mlockall munlockall vhangup prctl arch_prctl
adjtimex setrlimit chroot sync acct settimeofday mount umount2 swapon swapoff
reboot sethostname setdomainname gettid readahead setxattr lsetxattr fsetxattr
getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr removexattr
lremovexattr fremovexattr tkill time futex sched_setaffinity sched_getaffinity
set_thread_area io_setup io_destroy io_getevents io_submit io_cancel
get_thread_area lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old
remap_file_pages getdents64 set_tid_address restart_syscall semtimedop
fadvise64 timer_create timer_settime timer_gettime timer_getoverrun
timer_delete clock_settime clock_gettime clock_getres clock_nanosleep
exit_group epoll_wait epoll_ctl tgkill utimes mbind set_mempolicy
get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
mq_getsetattr waitid add_key request_key keyctl ioprio_set ioprio_get
inotify_init inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat
mknodat fchownat futimesat newfstatat unlinkat renameat linkat symlinkat
readlinkat fchmodat faccessat pselect6 ppoll unshare set_robust_list
get_robust_list splice tee sync_file_range vmsplice move_pages utimensat
epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime
timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2
inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open recvmmsg
fanotify_init fanotify_mark prlimit64 name_to_handle_at open_by_handle_at
clock_adjtime syncfs sendmmsg setns getcpu process_vm_readv process_vm_writev
"""
FINANCIAL_ALLOWLIST = _FINANCIAL_NAMES.split()


def financial_plan(**kw) -> seccomp.SeccompPlan:
    return seccomp.plan_seccomp(
        Seccomp(
            default_action="SCMP_ACT_ERRNO",
            architectures=("SCMP_ARCH_X86_64",),
            syscalls=(rule(FINANCIAL_ALLOWLIST, "SCMP_ACT_ALLOW"),),
            **kw,
        )
    )


def test_seccomp_financial_allowlist_runs_busybox_shell(tmp_path):
    plan = financial_plan()
    argv = [BUSYBOX, "sh", "-c", "echo ok; ls / >/dev/null; id -u"]
    outcome = run_child(tmp_path, filtered(plan, uid=10001), argv)
    assert outcome.exit_code == 0, outcome.err
    assert outcome.out == "ok\n10001\n"


def test_seccomp_financial_allowlist_refuses_the_rest(tmp_path):
    plan = financial_plan(default_errno_ret=errno.ENXIO)
    argv = [BUSYBOX, "pivot_root", "/a", "/b"]
    outcome = run_child(tmp_path, filtered(plan, uid=10001), argv)
    assert outcome.exit_code == 1
    assert "No such device or address" in outcome.err


def test_seccomp_financial_allowlist_leaves_unshare_to_capabilities(tmp_path):
    # unshare is on the list: without capabilities the kernel refuses anyway.
    argv = [BUSYBOX, "unshare", "-n", "true"]
    outcome = run_child(tmp_path, filtered(financial_plan(), uid=10001), argv)
    assert outcome.exit_code == 1
    assert "Operation not permitted" in outcome.err


def test_seccomp_without_nnp_needs_cap_sys_admin(tmp_path):
    plan = allow_except(rule(["mkdir"], "SCMP_ACT_ERRNO"))
    outcome = run_child(tmp_path, filtered(plan, nnp=False, uid=NONROOT), None)
    assert outcome.exit_code == 127
    assert "load seccomp filter: permission denied" in outcome.err
    root = run_child(tmp_path, filtered(plan, nnp=False), [BUSYBOX, "true"])
    assert root.exit_code == 0, root.err


@pytest.mark.parametrize(
    "flags",
    [
        ("SECCOMP_FILTER_FLAG_LOG",),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"),
        ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",),
        (),
    ],
)
def test_seccomp_flags_load(tmp_path, flags):
    plan = allow_except(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO"), flags=flags)
    outcome = run_child(tmp_path, filtered(plan), [BUSYBOX, "mkdir", "x"])
    assert "Operation not permitted" in outcome.err


def test_seccomp_unknown_syscall_is_skipped_with_warning(monkeypatch):
    warnings = []
    monkeypatch.setattr(seccomp.log, "warning", warnings.append)
    plan = allow_except(rule(["mkdir", "no_such_syscall"], "SCMP_ACT_ERRNO"))
    program = seccomp.compile_seccomp(plan)
    assert program.skipped == ("no_such_syscall",)
    assert warnings == [
        "seccomp: syscalls unknown to libseccomp, left out of the filter: "
        "no_such_syscall"
    ]


# --- seccomp notify -----------------------------------------------------------

# linux/seccomp.h: struct seccomp_notif is 80 bytes, seccomp_notif_resp 24.
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101


def receive_notification(fd: int, timeout: float = 10) -> tuple[int, int, int]:
    """(id, pid, syscall number) of the next notification."""
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, "no seccomp notification arrived"
    buf = bytearray(80)
    fcntl.ioctl(fd, NOTIF_RECV, buf)
    notif_id, pid, _flags, nr = struct.unpack_from("=QIIi", buf)
    return notif_id, pid, nr


def answer_notification(fd: int, notif_id: int, err: int) -> None:
    fcntl.ioctl(fd, NOTIF_SEND, bytearray(struct.pack("=QqiI", notif_id, 0, -err, 0)))


def test_seccomp_notify_hands_listener_to_agent(tmp_path):
    import pyseccomp

    path = str(tmp_path / "agent.sock")
    plan = allow_except(
        rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY"),
        listener_path=path,
        listener_metadata="agent-data",
    )
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 0}

    def hand_over(fd):
        message = seccomp.listener_message(state, os.getpid(), plan.listener_metadata)
        seccomp.send_to_listener(plan.listener_path, fd, message)
        os.close(fd)

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        server.settimeout(10)
        pid, _, err_path = fork_child(
            tmp_path, filtered(plan, then=hand_over), [BUSYBOX, "mkdir", "d"]
        )
        try:
            conn, _ = server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
            message = json.loads(data)
            assert message == {
                "ociVersion": "1.2.0",
                "fds": ["seccompFd"],
                "pid": pid,
                "metadata": "agent-data",
                "state": state,
            }
            (listener,) = fds
            notif_id, who, nr = receive_notification(listener)
            assert who == pid
            assert nr in {
                pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, n)
                for n in ("mkdir", "mkdirat")
            }
            answer_notification(listener, notif_id, errno.EACCES)
            os.close(listener)
            status = wait_child(pid)
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
    assert os.WEXITSTATUS(status) == 1
    assert "Permission denied" in err_path.read_text()
    assert not (tmp_path / "d").exists()


def test_seccomp_load_errors_are_setup_errors(tmp_path):
    # An unknown flag bit: the kernel refuses before looking at the program.
    program = seccomp.SeccompProgram(
        bpf=b"\x06" + b"\x00" * 7, flags=1 << 20, notify=False
    )

    def setup():
        with pytest.raises(SetupError) as info:
            seccomp.load_seccomp(program)
        os.write(1, str(info.value).encode())

    outcome = run_child(tmp_path, setup, None)
    assert outcome.out == "load seccomp filter: invalid argument"
