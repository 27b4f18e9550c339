"""The container lifecycle: create, start, run, state, kill, delete, list.

This is the only module that combines the state directory with processes and
cgroups. Each public function is one CLI command, without the CLI.

The create sequence, in order:

1. check the id, load and validate config.json, check the rootfs (nothing
   on disk yet);
2. make and lock ``<root>/<id>``, save state ``creating``;
3. make the cgroup and apply its limits; make ``exec.fifo``;
4. fork the children (:mod:`pyruntime.process.launcher`); save init's pid
   the moment it is known, so that ``delete --force`` can always find it;
5. on ``ready``: save state ``created``, write the pid file, return.

Any failure on the way destroys what was made: init is killed, the cgroup and
the state directory removed, poststop hooks run.
"""

from __future__ import annotations

import os
import time

from pyruntime import OCI_VERSION, hooks, log
from pyruntime.errors import (
    ContainerNotFoundError,
    RuntimeError_,
    SetupError,
    StateCorruptError,
    StateError,
    UsageError,
)
from pyruntime.linux import signals
from pyruntime.linux.procfs import read_start_time
from pyruntime.records import dataclass
from pyruntime.state import status as st
from pyruntime.state.store import (
    ContainerDir,
    ContainerState,
    create_container_dir,
    open_container,
    validate_id,
)
from pyruntime.state.view import now_rfc3339


@dataclass
class CreateOptions:
    """The flags of ``create`` and ``run``."""

    bundle: str
    pid_file: str | None = None
    console_socket: str | None = None
    #: For a foreground ``run`` with a terminal and no console socket: the
    #: end of a socketpair init sends the pty master to; the runtime relays.
    console_relay: object | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    systemd_cgroup: bool = False


# --------------------------------------------------------------------- create


def load_bundle(opts: CreateOptions):
    """Load and validate ``<bundle>/config.json`` for ``create``."""
    from pyruntime.spec import check_spec, load_spec
    from pyruntime.spec.validate import require_process

    spec = load_spec(opts.bundle)
    check_spec(spec)
    require_process(spec)
    check_terminal(spec, opts)
    check_namespace_paths(spec)
    return spec


def plan_security(spec):
    """Capabilities and seccomp checked and compiled before anything is made.

    The seccomp program is compiled here, in the runtime, so that init only
    has to load it (one system call, no library) and so that a bad filter
    fails ``create`` before a single process exists.
    """
    from pyruntime.security import capabilities as caps
    from pyruntime.security import process_attrs

    # LSM labels without their LSM, rlimits above what may be raised.
    process_attrs.check_host_support(spec)
    cap_plan = caps.plan_capabilities(spec.process.capabilities)
    caps.check_host_capabilities(cap_plan)
    if cap_plan is not None:
        caps.load_backend()
    config = spec.linux.seccomp if spec.linux else None
    if config is None:
        return cap_plan, None, None
    from pyruntime.security import seccomp, seccomp_cache

    filter_plan = seccomp.plan_seccomp(config)
    if filter_plan is None:
        return cap_plan, None, None
    log.debug(
        f"compile the seccomp filter now, in the runtime: {len(filter_plan.rules)}"
        " rules (or read the program compiled for them before from the cache);"
        " init will only load it"
    )
    program = seccomp_cache.compile_with_cache(filter_plan)
    return cap_plan, filter_plan, program


def check_namespace_paths(spec) -> None:
    """Refuse namespace paths that are not namespace files, before any change."""
    from pyruntime.namespaces import open_joined

    linux = spec.linux
    for _, fd in open_joined(linux.namespaces if linux else ()):
        os.close(fd)


def check_terminal(spec, opts: CreateOptions) -> None:
    """The console socket goes with ``process.terminal``, as in runc."""
    if spec.process.terminal and not (opts.console_socket or opts.console_relay):
        raise UsageError(
            "cannot allocate tty if runc will detach without setting console socket"
        )
    if not spec.process.terminal and opts.console_socket:
        raise UsageError(
            "cannot use console socket if runc will not detach or allocate tty"
        )


def check_preserved_fds(count: int) -> None:
    """Every fd named by ``--preserve-fds`` must exist."""
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError as err:
            raise UsageError(
                f"unable to stat preserved-fd {fd - 3} (fd {fd}): {err.strerror}"
            ) from None


def create(root: str, container_id: str, opts: CreateOptions) -> ContainerState:
    """Create a container and leave its init waiting for ``start``."""
    from pyruntime.reexec import require_sealed

    validate_id(container_id)
    require_sealed()
    check_preserved_fds(opts.preserve_fds)
    spec = load_bundle(opts)
    log.debug(f"config.json of `{opts.bundle}` is valid")
    security = plan_security(spec)
    check_rootfs(rootfs_path(spec, opts.bundle))
    cdir = create_container_dir(root, container_id)
    log.debug(f"state directory `{cdir.path}` made and locked; status creating")
    try:
        state = initial_state(container_id, spec, opts)
        cdir.save(state)
        return build_container(cdir, state, spec, opts, security)
    except BaseException as err:
        destroy_failed(cdir, spec, err)
        raise
    finally:
        cdir.close()


def initial_state(container_id: str, spec, opts: CreateOptions) -> ContainerState:
    """The ``creating`` state saved before anything else is made."""
    return ContainerState(
        id=container_id,
        bundle=opts.bundle,
        rootfs=rootfs_path(spec, opts.bundle),
        annotations=dict(spec.annotations or {}),
        config=spec.raw,
        oci_version=OCI_VERSION,
        systemd_cgroup=opts.systemd_cgroup,
    )


def rootfs_path(spec, bundle: str) -> str:
    """``root.path``, made absolute against the bundle."""
    rootfs = spec.root.path
    if not os.path.isabs(rootfs):
        rootfs = os.path.join(bundle, rootfs)
    return os.path.normpath(rootfs)


def build_container(cdir: ContainerDir, state, spec, opts, security) -> ContainerState:
    """Steps 3 to 5 of the create sequence."""
    from pyruntime.process.launcher import InitRequest, Launch

    cap_plan, filter_plan, program = security
    cgroup = make_cgroup(cdir, state, spec, opts)
    fifo_fd = make_fifo(cdir)
    req = InitRequest(
        container_id=state.id,
        spec=hooks.with_container_env(spec),
        bundle=state.bundle,
        rootfs=state.rootfs,
        oci_version=OCI_VERSION,
        runtime_name="pyruntime",
        cgroup=cgroup,
        fifo_fd=fifo_fd,
        no_pivot=opts.no_pivot,
        no_new_keyring=opts.no_new_keyring,
        preserve_fds=opts.preserve_fds,
        annotations=state.annotations,
        runtime_only_fds=[cdir.fd],
        capabilities=cap_plan,
        seccomp=program,
        seccomp_listener=filter_plan.listener_path if filter_plan else None,
        seccomp_metadata=filter_plan.listener_metadata if filter_plan else None,
    )
    if spec.process.terminal:
        from pyruntime.console import connect_console_socket

        if opts.console_relay is not None:
            req.console_sock = opts.console_relay
        else:
            req.console_sock = connect_console_socket(opts.console_socket)

    def record_pid(pid: int) -> None:
        state.pid = pid
        state.pid_start = read_start_time(pid)
        cdir.save_cleanup(state)
        cdir.save(state)

    try:
        Launch(req, record_pid).run()
    finally:
        os.close(fifo_fd)
    state.status = st.CREATED
    state.created = now_rfc3339()
    cdir.save(state)
    if opts.pid_file:
        write_pid_file(opts.pid_file, state.pid)
    log.debug(f"container {state.id} created, init pid {state.pid}")
    return state


def check_rootfs(rootfs: str) -> None:
    """The rootfs must be a directory (checked before anything is made)."""
    if not os.path.isdir(rootfs):
        raise SetupError(f"rootfs `{rootfs}` does not exist or is not a directory")


def make_cgroup(cdir: ContainerDir, state, spec, opts):
    """Create the container's cgroup, record it, apply its limits."""
    from pyruntime.cgroups import open_manager

    linux = spec.linux
    manager = open_manager(
        linux.cgroups_path if linux else None,
        state.id,
        systemd=opts.systemd_cgroup,
    )
    state.cgroup_paths = manager.paths()
    # Saved first, twice: delete --force must find what create made even if
    # state.json gets damaged later.
    cdir.save_cleanup(state)
    cdir.save(state)
    log.debug("create the cgroup and write its limits, before any process exists")
    manager.create()
    created = set(manager.created_dirs())
    if not (linux and linux.cgroups_path):
        # The default parent (`pyruntime`) is ours by name: whichever of its
        # containers leaves it empty removes it, whoever made it.
        created |= {os.path.dirname(p) for p in manager.paths().values()}
    state.cgroup_created = sorted(created, key=lambda d: d.count("/"))
    cdir.save_cleanup(state)
    linux_raw = spec.raw.get("linux") or {}
    # linux.devices nodes are allowed by the device rules, as in runc.
    manager.apply(linux_raw.get("resources"), linux_devices=linux_raw.get("devices"))
    return manager


def make_fifo(cdir: ContainerDir) -> int:
    """Make exec.fifo; init holds it open read-write and reads start's byte."""
    log.debug("make exec.fifo: init will block on it until start")
    os.mkfifo(cdir.fifo_path, 0o600)
    return os.open(cdir.fifo_path, os.O_RDWR | os.O_CLOEXEC)


def write_pid_file(path: str, pid: int) -> None:
    """Write the pid, no newline, atomically (temp file + rename)."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def destroy_failed(cdir: ContainerDir, spec, err: BaseException) -> None:
    """Undo a failed create: kill, remove cgroup and state, poststop hooks."""
    try:
        state = cdir.load()
    except RuntimeError_:
        state = None
    if state is not None:
        kill_init(state)
        remove_cgroup(state)
    cdir.remove()
    if state is not None and spec is not None:
        run_poststop(spec, state)


# ---------------------------------------------------------------------- start


def start(root: str, container_id: str) -> None:
    """Let a created container's init exec the user program.

    ``start`` returns once the program was exec'd (then poststart runs) or
    init failed before it (a startContainer hook, the exec itself): that is
    an error of ``start``, and the container is stopped, as the runtime-spec
    asks. Its state stays for ``delete``, which runs the poststop hooks.
    """
    with open_container(root, container_id) as cdir:
        state = load_state(cdir)
        status = st.current_status(cdir, state)
        refuse_start(status)
        log.debug("write the start byte to exec.fifo; wait until init execs or fails")
        failure = release_init(cdir, state)
        if failure is None:
            state.status = st.RUNNING
            cdir.save(state)
    if failure is not None:
        stop_failed_start(state)
        raise SetupError(failure)
    run_poststart(state)


def refuse_start(status: str) -> None:
    """Only a created container can be started (runc's messages)."""
    messages = {
        st.RUNNING: "cannot start an already running container",
        st.STOPPED: "cannot start a container that has stopped",
        st.PAUSED: "cannot start a container in the paused state",
        st.CREATING: "cannot start a container that is still being created",
    }
    if status in messages:
        raise StateError(messages[status])


def release_init(cdir: ContainerDir, state: ContainerState) -> str | None:
    """Hand init its start byte on exec.fifo; return init's failure, if any."""
    from pyruntime.process.fifo import release_init as handshake

    return handshake(cdir.fifo_path, state.pid)


def stop_failed_start(state: ContainerState) -> None:
    """Make sure init, which reported a failure, is gone before start returns."""
    try:
        wait_for_exit(state, timeout=1.0)
    except StateError:
        kill_init(state)


def run_poststart(state: ContainerState) -> None:
    """poststart hooks, after the user program was released."""
    spec_hooks = _saved_hooks(state, "poststart")
    if spec_hooks:
        doc = hooks.state_document(
            state.oci_version,
            state.id,
            st.RUNNING,
            state.pid,
            state.bundle,
            state.annotations,
        )
        hooks.run_hooks_warn("poststart", spec_hooks, doc, cwd=state.bundle)


def _saved_hooks(state: ContainerState, phase: str):
    """Decode one hook phase from the config saved at create time."""
    raw_hooks = (state.config or {}).get("hooks") or {}
    json_name = hooks.PHASE_NAMES[phase]
    if not raw_hooks.get(json_name):
        return ()
    import json

    from pyruntime.spec import decode_spec

    return hooks.hooks_of(decode_spec(json.dumps(state.config)), phase)


# ---------------------------------------------------------------------- state


def load_state(cdir: ContainerDir) -> ContainerState:
    """Read a container's saved state."""
    return cdir.load()


# ----------------------------------------------------------------------- kill


def kill(root: str, container_id: str, sig: int, all_processes: bool) -> None:
    """Send a signal to init (or, with ``--all``, to every process)."""
    with open_container(root, container_id, lock=False) as cdir:
        state = load_state(cdir)
        status = st.current_status(cdir, state)
    if status == st.STOPPED:
        if all_processes:
            return
        raise StateError("container not running")
    if all_processes and state.cgroup_paths:
        from pyruntime.cgroups import load_manager

        load_manager(state.cgroup_paths).kill_all(sig)
    else:
        st.signal_init(state, sig)
    if sig == signals.SIGKILL and status == st.PAUSED:
        thaw_after_kill(state)


def thaw_after_kill(state: ContainerState) -> None:
    """Let a frozen container die: a frozen task cannot act on SIGKILL.

    The v1 freezer holds a killed task until it is thawed; cgroup v2 lets it
    die anyway, and thawing the emptied cgroup does no harm there.
    """
    from pyruntime.cgroups import load_manager

    try:
        load_manager(state.cgroup_paths).thaw()
    except (OSError, RuntimeError_) as err:
        log.warning(f"kill: thaw `{state.id}` after SIGKILL: {err}")


# --------------------------------------------------------------------- delete


def delete(root: str, container_id: str, force: bool) -> None:
    """Remove a container: stopped or created always, running only with force."""
    try:
        cm = open_container(root, container_id)
        cdir = cm.__enter__()
    except ContainerNotFoundError:
        if force:
            return
        raise
    try:
        delete_locked(cdir, force)
    finally:
        cm.__exit__(None, None, None)


def delete_locked(cdir: ContainerDir, force: bool) -> None:
    """``delete`` once the directory is locked."""
    try:
        state = load_state(cdir)
    except StateCorruptError:
        if not force:
            raise
        log.warning(f"delete: state of `{cdir.id}` unreadable; removing what is left")
        remove_leftovers(cdir)
        return
    status = st.current_status(cdir, state)
    if status in (st.RUNNING, st.PAUSED) and not force:
        raise StateError(
            f"cannot delete container {cdir.id} that is not stopped: {status}"
        )
    destroy(cdir, state)


def destroy(cdir: ContainerDir, state: ContainerState) -> None:
    """Kill init, remove the cgroup and the state dir, run poststop hooks."""
    log.debug(f"delete `{state.id}`: kill what is left, remove its cgroup and state")
    kill_init(state)
    remove_cgroup(state)
    cdir.remove()
    run_poststop(None, state)


def kill_init(state: ContainerState) -> None:
    """SIGKILL init (thawing it first if frozen) and wait until it is gone."""
    if not st.init_alive(state):
        return
    if state.cgroup_paths:
        from pyruntime.cgroups import load_manager

        manager = load_manager(state.cgroup_paths, state.cgroup_created or None)
        try:
            manager.thaw()
        except (OSError, RuntimeError_):
            pass
    try:
        st.signal_init(state, signals.SIGKILL)
    except StateError:
        return
    wait_for_exit(state, timeout=10.0)


def wait_for_exit(state: ContainerState, timeout: float) -> None:
    """Poll until init is dead or reaped, up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while st.init_alive(state):
        if time.monotonic() > deadline:
            raise StateError("container init still running")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def remove_cgroup(state: ContainerState) -> None:
    """Kill what is left in the cgroup and remove it."""
    if not state.cgroup_paths:
        return
    from pyruntime.cgroups import load_manager

    manager = load_manager(state.cgroup_paths, state.cgroup_created or None)
    if manager.exists():
        try:
            manager.kill_all(signals.SIGKILL)
        except (OSError, RuntimeError_):
            pass
        manager.destroy()


def remove_leftovers(cdir: ContainerDir) -> None:
    """Clean a container whose state is unreadable: best effort, then rmdir.

    What to undo comes from cleanup.json (written next to state.json when the
    cgroup and init were made); without it, from the default cgroup location.
    """
    record = cdir.load_cleanup()
    leftover = ContainerState(id=cdir.id, bundle="", rootfs="")
    pid, start = record.get("pid"), record.get("pid_start")
    # Without its start time a pid could name an unrelated process by now.
    if type(pid) is int and pid > 0 and type(start) is int:
        leftover.pid, leftover.pid_start = pid, start
    paths = record.get("cgroup_paths")
    created = record.get("cgroup_created")
    try:
        kill_init(leftover)
    except (OSError, RuntimeError_):
        pass
    for manager in leftover_cgroups(cdir.id, paths, created):
        try:
            if manager.exists():
                manager.kill_all(signals.SIGKILL)
                manager.destroy()
        except (OSError, RuntimeError_):
            pass
    cdir.remove()


def leftover_cgroups(container_id: str, saved, created=None) -> list:
    """The cgroup that may hold a broken container's processes: the saved
    paths, or else the default location for its id."""
    from pyruntime.cgroups import load_manager, open_manager

    try:
        if not (isinstance(saved, dict) and saved):
            saved = open_manager(None, container_id).paths()
        # load_manager: the container's own directories are ours to remove,
        # and the parents create recorded making.
        if not (isinstance(created, list) and all(isinstance(d, str) for d in created)):
            created = None
        return [load_manager(saved, created or None)]
    except (OSError, RuntimeError_):
        return []


def run_poststop(spec, state: ContainerState) -> None:
    """poststop hooks: failures are warnings, the delete still succeeds."""
    if spec is not None:
        phase = hooks.hooks_of(spec, "poststop")
    else:
        phase = _saved_hooks(state, "poststop")
    if phase:
        doc = hooks.state_document(
            state.oci_version,
            state.id,
            st.STOPPED,
            0,
            state.bundle,
            state.annotations,
        )
        hooks.run_hooks_warn("poststop", phase, doc, cwd=state.bundle)


# ------------------------------------------------------------------------ run


def run(
    root: str, container_id: str, opts: CreateOptions, detach: bool, keep: bool
) -> int:
    """create + start; in the foreground wait, forward signals, delete.

    In the foreground without ``--console-socket``, a terminal the config
    asks for is relayed by the runtime itself, between its own stdio and the
    container's pty, as runc does. Without ``--keep`` the container is
    deleted afterwards, also when ``start`` failed.
    """
    relay = None
    if not detach and not opts.console_socket:
        relay = make_console_relay(opts)
    try:
        state = create(root, container_id, opts)
    finally:
        if opts.console_relay is not None:
            opts.console_relay.close()
    if detach:
        start(root, container_id)
        return 0
    try:
        code = run_foreground(root, container_id, state, relay)
    except BaseException:
        if not keep:
            delete_quietly(root, container_id)
        raise
    finally:
        if relay is not None:
            relay.close()
    if not keep:
        with open_container(root, container_id) as cdir:
            destroy(cdir, load_state(cdir))
    return code


def make_console_relay(opts: CreateOptions):
    """A socketpair: init's end goes in ``opts``, ours is returned.

    Made before the config is read, so for every foreground ``run``: from
    ``_socket``, the C module, as :mod:`socket` would cost more than the
    rest of ``run``'s set-up here (it is loaded only when a terminal is
    relayed).
    """
    import _socket

    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    opts.console_relay = theirs
    return ours


def run_foreground(root: str, container_id: str, state, relay) -> int:
    """start, then relay signals (and the terminal) until init exits."""
    handlers = forward_signals(state.pid)
    try:
        start(root, container_id)
        if relay is not None and state_terminal(state):
            from pyruntime.console import relay_terminal

            relay_terminal(relay, state.pid)
        return wait_init(state.pid)
    finally:
        restore_signals(handlers)


def state_terminal(state: ContainerState) -> bool:
    """Whether the saved config asked for a terminal."""
    process = (state.config or {}).get("process") or {}
    return bool(process.get("terminal"))


def delete_quietly(root: str, container_id: str) -> None:
    """Remove what a failed foreground ``run`` made (errors are only logged)."""
    try:
        with open_container(root, container_id) as cdir:
            destroy(cdir, load_state(cdir))
    except RuntimeError_ as err:
        log.warning(f"run: remove `{container_id}` after the failure: {err}")


def forward_signals(pid: int) -> dict:
    """Relay every catchable signal the runtime gets to init."""
    previous = {}
    skip = {
        signals.SIGCHLD,
        signals.SIGKILL,
        signals.SIGSTOP,
        signals.SIGWINCH,
        signals.SIGURG,
    }
    for sig in signals.valid_signals():
        if sig in skip or sig >= signals.SIGRTMIN:
            continue
        try:
            previous[sig] = signals.signal(sig, lambda s, _f: _relay(pid, s))
        except (OSError, ValueError):
            continue
    return previous


def restore_signals(previous: dict) -> None:
    """Put back the handlers :func:`forward_signals` saved."""
    for sig, handler in previous.items():
        signals.signal(sig, handler)


def _relay(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_init(pid: int) -> int:
    """Wait for init (our child: we are its subreaper); return its exit code."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
