"""``exec``: start a new process inside a running container (both sides).

Three processes take part, as in ``create`` (see :mod:`.protocol`). The
runtime (**R**) forks a *tenant* process (**T**) and moves it into the
container's cgroup; **T** joins every namespace of the container's init, then
forks the *exec process* (**E**), which lands in the container's pid
namespace; **T** exits at once, so that **E** is re-parented to the runtime
(a child subreaper) and, once the runtime exits, to the caller's subreaper.

They share one ``SOCK_SEQPACKET`` socketpair (JSON messages):

====  =================  =======================================================
from  type               meaning
====  =================  =======================================================
R     ``cgroup-joined``  R moved T into the container's cgroup: T goes on
T     ``tenant-pid``     E exists (``pid``: its pid in R's pid namespace)
R     ``go``             E may set up (R reaps T meanwhile: E becomes its child)
T/E   ``error``          setup failed (``message``); the sender exits
====  =================  =======================================================

E's end of the socket is close-on-exec: when R reads end-of-file without an
``error``, the program was exec'd (or E died, which ``waitpid`` tells).

Namespaces are those of init, read from ``/proc/<pid>/ns/*`` after checking
that the pid still names the container's init (its start time); only those
that differ from the runtime's own are joined, which is exactly the set the
container has (a namespace the container shares with the host is the
runtime's already). The user namespace comes first, so that the others,
which it owns, can be joined with its capabilities; a namespace it does not
own (a host network namespace joined at create time) is joined before it,
while the tenant still has the host's privileges. The mount namespace comes
last: its root is the container's root, and nothing may be imported from it.

:func:`run_tenant` is the child's whole entry point and takes nothing but the
request (plain, picklable data) and the channel, so that it can be started in
a freshly executed interpreter as well as after a plain ``fork``.
"""

from __future__ import annotations

import fcntl
import os
import sys

from pyruntime import log, namespaces
from pyruntime.errors import SetupError, StateError
from pyruntime.linux import signals
from pyruntime.linux import syscalls as sc
from pyruntime.linux.procfs import read_start_time
from pyruntime.process import init
from pyruntime.process.launcher import kill_and_reap, tell
from pyruntime.process.protocol import Channel
from pyruntime.records import dataclass, field
from pyruntime.security import capabilities as caps
from pyruntime.security import lsm, process_attrs
from pyruntime.state import jsonio

#: ioctl(2) on a namespace file: an fd of the user namespace owning it.
_NS_GET_USERNS = 0xB701
_PASSWD = "/etc/passwd"


@dataclass
class TenantRequest:
    """Everything the tenant and the exec process need, fixed before the fork.

    Plain data only (descriptors as numbers), so that it can be pickled.
    """

    container_id: str
    init_pid: int
    init_start: int | None
    #: The final process to run (a ``spec.model.Process``).
    process: object
    #: The container's ``linux`` object (personality, memory policy).
    linux: object | None = None
    #: The cgroup directories to join, as ``Manager.paths()``.
    cgroup_paths: dict = field(default_factory=dict)
    preserve_fds: int = 0
    #: ``process.capabilities`` as numbers (None: leave them alone).
    capabilities: object | None = None
    #: The container's compiled seccomp filter (a ``SeccompProgram``).
    seccomp: object | None = None
    seccomp_listener: str | None = None
    seccomp_metadata: str | None = None
    #: Connected sockets, by fd: the seccomp agent and the console receiver.
    listener_fd: int | None = None
    console_fd: int | None = None
    #: The container's state document (for the seccomp agent).
    state_document: bytes = b""
    runtime_pid: int = 0
    #: Descriptors only the runtime may hold, closed in the tenant first thing.
    runtime_only_fds: list[int] = field(default_factory=list)


# ------------------------------------------------------------- runtime side


class TenantLaunch:
    """One run of the exec protocol, from fork to the program's ``execve``."""

    def __init__(self, req: TenantRequest, on_pid=None) -> None:
        self.req = req
        #: Called with the exec process's pid before it is let go.
        self.on_pid = on_pid
        self.tenant_pid = 0
        self.pid = 0

    def run(self) -> int:
        """Fork the tenant, drive the protocol; return the exec process's pid."""
        parent, child = Channel.pair()
        self.req.runtime_pid = os.getpid()
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        preload_for_children(self.req)
        log.debug(
            "fork the tenant process: it joins init's namespaces, then forks the "
            "exec process (a pid namespace takes children only)"
        )
        pid = os.fork()
        if pid == 0:
            parent.close()
            run_tenant(self.req, child)
        self.tenant_pid = pid
        child.close()
        close_handed_over(self.req)
        try:
            self.join_cgroup(parent)
            self.converse(parent)
        except BaseException:
            self.abort()
            raise
        finally:
            parent.close()
        return self.pid

    def join_cgroup(self, chan: Channel) -> None:
        """Move the tenant into the container's cgroup (or ``--cgroup``'s).

        The runtime does it, with the host's view of cgroupfs, while the
        tenant gets ready: the first write to a v1 ``cgroup.procs`` waits
        for an RCU grace period. ``execCPUAffinity.initial`` is the tenant's
        affinity before it joins (a cpuset resets it), set from here too. In
        a frozen cgroup the tenant stops where it is until ``resume``.
        """
        process_attrs.apply_initial_cpu_affinity(self.req.process, self.tenant_pid)
        paths = self.req.cgroup_paths
        if paths:
            from pyruntime.cgroups.files import add_to_cgroup

            directories = ", ".join(sorted(set(paths.values())))
            log.debug(
                f"join the tenant process to the container's cgroup ({directories})"
            )
            add_to_cgroup(paths, self.tenant_pid)
        chan.send("cgroup-joined")

    def converse(self, chan: Channel) -> None:
        """Answer the children until the program runs (end-of-file)."""
        while True:
            try:
                message = chan.receive()
            except EOFError:
                if not self.pid:
                    raise SetupError(self.describe_early_exit()) from None
                return
            kind = message["type"]
            if kind == "error":
                raise SetupError(message["message"])
            if kind == "tenant-pid":
                if self.on_pid is not None:
                    self.on_pid(message["pid"])
                tell(chan, "go")  # the process sets up while the tenant is reaped
                self.adopt(message["pid"])

    def adopt(self, pid: int) -> None:
        """Reap the tenant; the exec process is now our child."""
        self.pid = pid
        os.waitpid(self.tenant_pid, 0)
        self.tenant_pid = 0
        log.debug(f"exec process has pid {pid}")

    def describe_early_exit(self) -> str:
        """Say how the tenant ended when it hung up without a word."""
        try:
            _, status = os.waitpid(self.tenant_pid, 0)
        except ChildProcessError:
            return "exec: the tenant process exited during setup"
        self.tenant_pid = 0
        if os.WIFSIGNALED(status):
            name = signals.name_of(os.WTERMSIG(status))
            return f"exec: the tenant process was killed by {name} during setup"
        return "exec: the tenant process exited during setup"

    def abort(self) -> None:
        """Kill and reap the children after a failure."""
        kill_and_reap((self.tenant_pid, self.pid))


def preload_for_children(req: TenantRequest) -> None:
    """Import now what the children may need once they cannot import.

    Only what this exec uses: :mod:`socket` (with :mod:`selectors` and
    :mod:`enum`) serves the terminal and the seccomp agent alone, the
    terminal code (:mod:`pyruntime.console`, with :mod:`termios`) the
    terminal, the seccomp module a filter (loaded already to compile it).
    """
    if log.debug_enabled():
        import traceback  # noqa: F401 (init.report_error formats tracebacks)
    if req.process.terminal or req.listener_fd is not None:
        import socket  # noqa: F401 (open_terminal, load_filter)
    if req.process.terminal:
        from pyruntime import console  # noqa: F401 (open_terminal)
    if req.seccomp is not None:
        from pyruntime.security import seccomp  # noqa: F401 (load_filter)


def close_handed_over(req: TenantRequest) -> None:
    """The runtime's copies of the sockets the children now hold."""
    for fd in (req.listener_fd, req.console_fd):
        if fd is not None:
            os.close(fd)


# --------------------------------------------------------------- the tenant


def run_tenant(req: TenantRequest, chan: Channel) -> None:
    """Join the container's cgroup and namespaces, fork the process, exit."""
    log.set_actor("tenant")
    try:
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        close_runtime_fds(req)
        sc.prctl(sc.PR_SET_PDEATHSIG, signals.SIGKILL)
        if os.getppid() != req.runtime_pid:
            os._exit(1)
        process_attrs.apply_io_priority(req.process)
        init.set_oom_score_adj(req.process)
        chan.expect("cgroup-joined")  # the runtime moved us (Launch.join_cgroup)
        process_attrs.apply_final_cpu_affinity(req.process)
        opened = open_init_namespaces(req.init_pid, req.init_start)
        join_namespaces(opened)
        seal_imports()
        pid = os.fork()
        if pid == 0:
            run_exec_process(req, chan)
        chan.send("tenant-pid", pid=pid)
    except BaseException as err:
        init.report_error(chan, err)
        os._exit(1)
    os._exit(0)


def close_runtime_fds(req: TenantRequest) -> None:
    """Close what only the runtime may hold (before anything else happens)."""
    for fd in req.runtime_only_fds:
        try:
            os.close(fd)
        except OSError:
            pass


def open_init_namespaces(pid: int, start: int | None) -> list[tuple[str, int]]:
    """Open init's namespaces that differ from ours, in joining order.

    A pidfd holds init while its /proc files are opened; its start time is
    checked before and after, so a recycled pid is never entered.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise stopped_error(pid) from None
    opened: list[tuple[str, int]] = []
    try:
        check_init(pid, start)
        for ns_type in namespaces.ORDER:
            fd = open_namespace_of(pid, ns_type)
            if fd is not None:
                opened.append((ns_type, fd))
        check_init(pid, start)
    except BaseException:
        for _, fd in opened:
            os.close(fd)
        raise
    finally:
        os.close(pidfd)
    return opened


def stopped_error(pid: int) -> StateError:
    """The container's init went away while exec was starting."""
    return StateError(f"cannot exec in a stopped container (init pid {pid} exited)")


def check_init(pid: int, start: int | None) -> None:
    """Refuse a pid that no longer names the container's init."""
    if read_start_time(pid) != start:
        raise stopped_error(pid)


def open_namespace_of(pid: int, ns_type: str) -> int | None:
    """Open ``/proc/<pid>/ns/<name>``; None when it is ours or unknown here."""
    name = namespaces.NAMESPACES[ns_type][1]
    try:
        fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # a namespace type this kernel does not have
    except ProcessLookupError:
        raise stopped_error(pid) from None
    try:
        own = os.stat(f"/proc/self/ns/{name}")
    except FileNotFoundError:
        own = None
    info = os.fstat(fd)
    if own is not None and (info.st_dev, info.st_ino) == (own.st_dev, own.st_ino):
        os.close(fd)
        return None
    return fd


def join_namespaces(opened: list[tuple[str, int]]) -> None:
    """setns() into each opened namespace, in :func:`joining_order`."""
    for ns_type, fd in joining_order(opened):
        log.debug(f"join init's {ns_type} namespace")
        namespaces.join_namespace(ns_type, fd)


def joining_order(opened: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Namespaces the user namespace does not own, then it, then the rest."""
    user = next((fd for ns_type, fd in opened if ns_type == "user"), None)
    others = [(ns_type, fd) for ns_type, fd in opened if ns_type != "user"]
    if user is None:
        return others
    foreign = [item for item in others if not owned_by(item[1], user)]
    owned = [item for item in others if item not in foreign]
    return [*foreign, ("user", user), *owned]


def owned_by(fd: int, user_fd: int) -> bool:
    """Tell whether the namespace ``fd`` belongs to the user namespace ``user_fd``."""
    try:
        owner = fcntl.ioctl(fd, _NS_GET_USERNS)
    except OSError:
        return True  # owned by an ancestor we cannot see: join it with the rest
    try:
        mine, theirs = os.fstat(owner), os.fstat(user_fd)
    finally:
        os.close(owner)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def seal_imports() -> None:
    """The file system is the container's now: never import from it."""
    sys.path.clear()
    sys.path_importer_cache.clear()


# --------------------------------------------------------- the exec process


def run_exec_process(req: TenantRequest, chan: Channel) -> None:
    """Set the process up inside the container and exec the program."""
    log.set_actor("exec")
    try:
        chan.expect("go")
        env = set_up_process(req)
        executable = find_program(req.process, env)
    except BaseException as err:
        init.report_error(chan, err)
        os._exit(1)
    try:
        exec_program(req, executable, env)
    except BaseException as err:
        init.report_error(chan, describe_exec_failure(executable, err))
        os._exit(1)


def set_up_process(req: TenantRequest) -> dict[str, str]:
    """Every step between the namespaces and the program lookup."""
    process = req.process
    user = process.user
    os.setsid()
    enter_container_root()
    env = process_environment(process)
    open_terminal(req)
    lsm.apply_keyring_label(process)
    init.join_new_keyring()
    init.apply_rlimits(process.rlimits)
    process_attrs.apply_personality(req.linux)
    process_attrs.apply_memory_policy(req.linux)
    process_attrs.apply_scheduler(process)
    lsm.apply_exec_labels(process)
    init.set_no_new_privileges(process.no_new_privileges)
    init.give_stdio_to_user(user, [0, 1, 2])
    if not process.no_new_privileges:
        # Loading a filter without no_new_privs needs CAP_SYS_ADMIN.
        load_filter(req)
    caps.prepare_capabilities(req.capabilities)
    init.switch_user(user)
    init.drop_capabilities(req.capabilities)
    init.change_directory(process.cwd)
    return env


def enter_container_root() -> None:
    """Start from ``/`` of the container's mount namespace.

    setns() into a mount namespace already sets root and working directory
    to that namespace's root, which is the container's root filesystem; this
    makes it explicit and leaves no directory of the host's open.
    """
    os.chdir("/")
    os.chroot(".")


def process_environment(process) -> dict[str, str]:
    """``process.env``, plus ``HOME`` from the container's passwd when unset."""
    env = init.process_env(process)
    if "HOME" not in env:
        uid = process.user.uid if process.user else 0
        env["HOME"] = home_directory(uid)
    return env


def home_directory(uid: int) -> str:
    """The home of ``uid`` in the container's /etc/passwd, else ``/``."""
    try:
        with open(_PASSWD, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def open_terminal(req: TenantRequest) -> None:
    """A pty from the container's devpts; the master goes to the console socket.

    The slave becomes the controlling terminal and stdio at once: the
    caller's own stdio (a pipe the containerd shim reads to its end) is not
    the program's when it has a terminal.
    """
    if not req.process.terminal:
        return
    import socket  # loaded by preload_for_children

    from pyruntime import console  # loaded by preload_for_children

    size = req.process.console_size
    master, slave, slave_path = console.open_pty(
        size.height if size else None, size.width if size else None
    )
    log.debug(f"open the terminal {slave_path}; send its master to the console")
    console.send_master(socket.socket(fileno=req.console_fd), master)
    console.make_controlling_terminal(slave)


def load_filter(req: TenantRequest) -> None:
    """Load the container's filter; hand its notify fd to the agent, if any."""
    if req.seccomp is None:
        return
    from pyruntime.security import seccomp  # loaded: the runtime compiled it

    log.debug("load the seccomp filter")
    fd = seccomp.load_seccomp(req.seccomp)
    if fd is None:
        return
    import socket  # loaded by preload_for_children

    state = jsonio.loads(req.state_document.decode())
    message = seccomp.listener_message(state, os.getpid(), req.seccomp_metadata)
    with socket.socket(fileno=req.listener_fd) as sock:
        seccomp.send_listener(sock, fd, message)
    os.close(fd)


def find_program(process, env: dict[str, str]) -> str:
    """``args[0]`` on the container's PATH (runc's wording when missing)."""
    return init.find_executable(process.args[0], env)


def exec_program(req, executable: str, env: dict[str, str]) -> None:
    """Descriptors, the late seccomp filter, then execve."""
    init.keep_descriptors(req.preserve_fds)
    log.debug(f"exec {executable}")
    if req.process.no_new_privileges:
        # With no_new_privs the filter waits until the very last moment.
        load_filter(req)
    os.execve(executable, list(req.process.args), env)


def describe_exec_failure(executable: str, err: BaseException) -> BaseException:
    """The error of a failed execve, worded as runc's."""
    if isinstance(err, OSError) and err.errno is not None:
        reason = os.strerror(err.errno).lower()
        return SetupError(
            f"unable to start container process: exec {executable}: {reason}"
        )
    return err
