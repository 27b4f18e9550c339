"""The runtime's side of ``create``: fork the children and answer them.

See :mod:`pyruntime.process.protocol` for the message table. The runtime is a
child subreaper while it creates the container: when the intermediate process
exits, init is re-parented to the runtime, which can then reap it on failure;
when the runtime exits, init moves on to the caller's subreaper (the
containerd shim or conmon), which is what engines expect.
"""

from __future__ import annotations

import os

from pyruntime import hooks, log, namespaces
from pyruntime.errors import SetupError
from pyruntime.linux import signals
from pyruntime.linux import syscalls as sc
from pyruntime.process.protocol import Channel
from pyruntime.records import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class InitRequest:
    """Everything the children need, fixed before the first fork."""

    container_id: str
    spec: object
    bundle: str
    rootfs: str
    oci_version: str
    runtime_name: str
    cgroup: object | None
    fifo_fd: int
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    console_sock: object | None = None
    runtime_pid: int = 0
    annotations: dict = field(default_factory=dict)
    executable: str = ""
    #: Descriptors only the runtime may hold, closed in the children first
    #: thing (the state directory's lock would otherwise outlive ``create``).
    runtime_only_fds: list[int] = field(default_factory=list)
    #: ``process.capabilities`` as numbers (None: leave them alone).
    capabilities: object | None = None
    #: The compiled seccomp filter, loaded by init as late as it can be.
    seccomp: object | None = None
    seccomp_listener: str | None = None
    seccomp_metadata: str | None = None
    #: init's connection to the seccomp agent (made before pivot_root).
    listener_sock: object | None = None

    def hook_state(self, status: str, pid: int) -> bytes:
        """The state document hooks read on stdin."""
        return hooks.state_document(
            self.oci_version,
            self.container_id,
            status,
            pid,
            self.bundle,
            self.annotations,
        )


def preload_for_children(req: InitRequest) -> None:
    """Import now what init needs once it can no longer import.

    After ``pivot_root`` init sees only the container's files. The terminal
    code (:mod:`pyruntime.console`, with :mod:`termios`, and :mod:`socket`,
    with :mod:`selectors` and :mod:`enum`, to send the pty master) serves a
    terminal alone, and the seccomp module a filter alone (the runtime has
    loaded it to compile the filter).
    """
    if req.console_sock is not None:
        import socket  # noqa: F401 (console.send_master, after pivot_root)

        from pyruntime import console  # noqa: F401 (set_up_console)
    if req.seccomp is not None:
        from pyruntime.security import seccomp  # noqa: F401 (load_seccomp_filter)


def describe_maps(mappings) -> str:
    """``0->200000 (1), 10001->200001 (1)`` for a list of id mappings."""
    return (
        ", ".join(f"{m.container_id}->{m.host_id} ({m.size})" for m in mappings or ())
        or "none"
    )


class Launch:
    """One run of the creation protocol, from fork to ``ready``."""

    def __init__(self, req: InitRequest, on_init_pid: Callable[[int], None]) -> None:
        self.req = req
        self.on_init_pid = on_init_pid
        self.intermediate_pid = 0
        self.init_pid = 0
        self.joining: BackgroundJoin | None = None

    def run(self) -> int:
        """Fork, drive the protocol until init is ready; return init's pid."""
        parent, child = Channel.pair()
        self.req.runtime_pid = os.getpid()
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        log.debug(
            "fork the intermediate process: it joins the namespaces, then forks "
            "init (a new pid namespace takes children only)"
        )
        preload_for_children(self.req)
        pid = os.fork()
        if pid == 0:
            parent.close()
            for fd in self.req.runtime_only_fds:
                os.close(fd)
            from pyruntime.process.init import run_intermediate

            run_intermediate(self.req, child)
        self.intermediate_pid = pid
        child.close()
        if self.req.console_sock is not None:
            self.req.console_sock.close()
        try:
            self.start_join()
            self.converse(parent)
        except BaseException:
            self.abort()
            raise
        finally:
            parent.close()
        return self.init_pid

    def start_join(self) -> None:
        """Start moving the intermediate process into the cgroup, on a thread.

        The first write to a ``cgroup.procs`` after a quiet while waits for
        an RCU grace period (5 to 15 ms with a 250 Hz tick: as long as the
        rest of ``create`` on the runtime's side). So the move runs on a thread of
        its own (the write releases the interpreter lock) while the main
        thread answers the children: the intermediate process makes the
        namespaces and forks init, init sets its filesystem up. None of that
        depends on the cgroup; what does waits for :meth:`join_init`.
        """
        cgroup = self.req.cgroup
        if cgroup is None:
            return
        paths = ", ".join(sorted(set(cgroup.paths().values())))
        log.debug(
            "join the intermediate process to the container's cgroup "
            f"({paths}), on a second thread: the first move waits for an RCU "
            "grace period, and the children set up meanwhile"
        )
        self.joining = BackgroundJoin(cgroup.add_process, self.intermediate_pid)

    def join_init(self, chan: Channel) -> None:
        """Move init into the cgroup too, then tell it so.

        init may have been forked before the intermediate process was in the
        cgroup, so it is moved itself; the grace period is behind by then and
        the writes are quick. init waits for ``cgroup-joined`` before its
        cgroup namespace is made and before the runtime runs any hook: both
        must find it in the container's cgroup.
        """
        if self.joining is not None:
            self.joining.wait()
            log.debug("join init to the container's cgroup: nothing of it runs outside")
            try:
                self.req.cgroup.add_process(self.init_pid)
            except SetupError:
                if not has_exited(self.init_pid):
                    raise
                return  # init failed while it set up: its words come next
        tell(chan, "cgroup-joined")

    def converse(self, chan: Channel) -> None:
        """Answer the children's messages until init says ``ready``."""
        while True:
            try:
                message = chan.receive()
            except EOFError:
                raise SetupError(self.describe_early_exit()) from None
            kind = message["type"]
            if kind == "error":
                raise SetupError(message["message"])
            if kind == "map-ids":
                self.map_ids()
                tell(chan, "ids-mapped")
            elif kind == "init-pid":
                log.debug(f"container init has pid {message['pid']}")
                # init sets itself up while the runtime reaps the intermediate
                # process and records init's pid: nothing init does before it
                # asks again is seen outside its namespaces, and if the
                # runtime dies meanwhile, init reads end-of-file and exits.
                tell(chan, "go")
                self.adopt_init(message["pid"])
                self.join_init(chan)
            elif kind == "mounts-ready":
                self.run_runtime_hooks()
                tell(chan, "hooks-done")
            elif kind == "ready":
                return

    def map_ids(self) -> None:
        """Write the intermediate process's uid/gid maps."""
        linux = self.req.spec.linux
        log.debug(
            "write uid_map and gid_map of the new user namespace: uids "
            + describe_maps(linux.uid_mappings)
            + ", gids "
            + describe_maps(linux.gid_mappings)
        )
        namespaces.write_id_maps(
            self.intermediate_pid,
            linux.uid_mappings,
            linux.gid_mappings,
            deny_setgroups=os.geteuid() != 0,
        )

    def adopt_init(self, pid: int) -> None:
        """Reap the intermediate process; init is now our child."""
        self.init_pid = pid
        os.waitpid(self.intermediate_pid, 0)
        self.intermediate_pid = 0
        self.on_init_pid(pid)

    def run_runtime_hooks(self) -> None:
        """prestart then createRuntime, in the runtime's namespaces."""
        state = self.req.hook_state("creating", self.init_pid)
        log.debug("mounts are made; run prestart and createRuntime hooks on the host")
        for phase in ("prestart", "create_runtime"):
            phase_hooks = hooks.hooks_of(self.req.spec, phase)
            if phase_hooks:
                hooks.run_hooks(phase, phase_hooks, state, cwd=self.req.bundle)

    def describe_early_exit(self) -> str:
        """Say how the children ended when they hung up without a word."""
        for pid in (self.intermediate_pid, self.init_pid):
            if pid:
                try:
                    _, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if os.WIFSIGNALED(status):
                    if os.WTERMSIG(status) == signals.SIGKILL and self.oom_killed():
                        return describe_oom_kill(self.req.spec)
                    name = signals.name_of(os.WTERMSIG(status))
                    return f"container init was killed by {name} during setup"
        return "container init exited during setup"

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer struck in the container's cgroup."""
        cgroup = self.req.cgroup
        return cgroup is not None and cgroup.oom_kills() > 0

    def abort(self) -> None:
        """Kill and reap whatever children exist after a failure.

        A move into the cgroup still under way is waited for first: its pid
        must not be reaped (and perhaps reused) before the write is done.
        """
        if self.joining is not None:
            self.joining.wait()
        kill_and_reap((self.intermediate_pid, self.init_pid))


class BackgroundJoin:
    """A move of one process into the container's cgroup, on its own thread.

    ``add`` writes a pid into the cgroup. The process moved first is the
    runtime's child, whose own child is then moved by the main thread (see
    :meth:`Launch.join_init`).
    """

    def __init__(self, add: Callable[[int], None], pid: int) -> None:
        import _thread  # the C module: threading would import a dozen more

        self.add = add
        self.done = _thread.allocate_lock()
        self.done.acquire()
        _thread.start_new_thread(self.move, (pid,))

    def move(self, pid: int) -> None:
        """Write ``pid`` into the cgroup; a failure is left to the next move.

        The child may already have exited (no such process); a cgroup that
        refuses processes refuses its child next, and that is the error the
        runtime reports.
        """
        try:
            self.add(pid)
        except Exception as err:
            log.debug(f"process {pid} did not join the cgroup: {err}")
        finally:
            self.done.release()

    def wait(self) -> None:
        """Return once the move is over (at once when it already is)."""
        with self.done:
            pass


def describe_oom_kill(spec) -> str:
    """The error of an init the OOM killer took, naming the limit it hit."""
    linux = spec.linux
    resources = linux.resources if linux else None
    memory = resources.memory if resources else None
    limit = memory.limit if memory else None
    text = "container init was killed by the out-of-memory killer during setup"
    if limit is not None and limit > 0:
        text += (
            f": linux.resources.memory.limit ({limit} bytes) is less than init"
            " needs to set the container up"
        )
    return text


def tell(chan: Channel, kind: str) -> None:
    """Send ``kind`` to the children; one that hung up says why on the next read.

    A child that failed sends ``error`` and exits, perhaps while the runtime
    was busy: the send then finds the socket closed (EPIPE), and the error,
    still queued, is read next.
    """
    try:
        chan.send(kind)
    except (BrokenPipeError, ConnectionResetError):
        pass


def has_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited (it is not reaped: see waitid)."""
    try:
        return (
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        )
    except ChildProcessError:
        return True


def kill_and_reap(pids) -> None:
    """SIGKILL and reap each of our children in ``pids`` (0: none there)."""
    for pid in pids:
        if not pid:
            continue
        try:
            os.kill(pid, signals.SIGKILL)
        except ProcessLookupError:
            continue
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
