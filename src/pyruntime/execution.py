"""``exec``: run a new process in an existing container (the runtime's side).

The steps, in order:

1. read the container's state without its lock (an exec that runs for hours
   must not hold up ``kill``, ``delete``, or the ``resume`` that a paused
   container waits for) and refuse a stopped container, and a paused one
   unless ``--ignore-paused``, with runc's words;
2. build the process: the ``--process`` file, or the container's own
   ``process`` (from the config saved at create time) with the flags merged
   on top, as runc does; the file is decoded and checked like config.json,
   so a mistake names its JSON path;
3. check the terminal flags and the preserved descriptors, resolve
   ``--cgroup``, plan the capabilities and compile the container's seccomp
   filter, all before any process exists;
4. fork the tenant (:mod:`pyruntime.process.tenant`), which joins the
   container and execs the program;
5. write the pid file; with ``--detach`` return 0, otherwise wait for the
   program (relaying signals, and the terminal when there is one) and return
   its exit status, 128+N when signal N killed it.

What the process JSON leaves out comes from the container, as the container's
init had it: ``env``, ``capabilities``, ``rlimits``, ``noNewPrivileges`` and
the LSM labels (a missing ``user`` is root, as in runc); the seccomp filter,
personality, memory policy, cgroup and namespaces are always the
container's.
"""

from __future__ import annotations

import os

from pyruntime import hooks, log
from pyruntime.errors import (
    ConfigError,
    SetupError,
    StateError,
    UsageError,
)
from pyruntime.records import dataclass
from pyruntime.spec import model
from pyruntime.state import jsonio
from pyruntime.state import status as st
from pyruntime.state.store import ContainerState, open_container, validate_id


@dataclass
class ExecOptions:
    """The flags of ``exec``."""

    args: tuple[str, ...] = ()
    process_file: str | None = None
    cwd: str | None = None
    env: tuple[str, ...] = ()
    user: str | None = None
    additional_gids: tuple[int, ...] = ()
    caps: tuple[str, ...] = ()
    no_new_privs: bool = False
    apparmor: str | None = None
    process_label: str | None = None
    tty: bool = False
    console_socket: str | None = None
    detach: bool = False
    pid_file: str | None = None
    preserve_fds: int = 0
    cgroups: tuple[str, ...] = ()
    ignore_paused: bool = False


def exec_process(root: str, container_id: str, opts: ExecOptions) -> int:
    """Run a process in a container; its exit status (0 when detached)."""
    from pyruntime.container import check_preserved_fds
    from pyruntime.reexec import require_sealed

    validate_id(container_id)
    require_sealed()
    state = load_running(root, container_id, opts.ignore_paused)
    if opts.process_file is None and not opts.args:
        raise UsageError("process args cannot be empty")
    spec = saved_spec(state)
    process = build_process(spec.process, opts)
    cgroup_paths = exec_cgroup_paths(state.cgroup_paths, opts.cgroups)
    check_terminal(process, opts)
    check_preserved_fds(opts.preserve_fds)
    req = plan_request(state, spec, process, cgroup_paths, opts)
    return launch(req, opts)


# ------------------------------------------------------------------ status


def load_running(root: str, container_id: str, ignore_paused: bool):
    """The saved state of a container exec may enter (runc's refusals)."""
    with open_container(root, container_id, lock=False) as cdir:
        state = cdir.load()
        status = st.current_status(cdir, state)
    if status == st.STOPPED:
        raise StateError("cannot exec in a stopped container")
    if status == st.PAUSED and not ignore_paused:
        raise StateError(
            "cannot exec in a paused container (use --ignore-paused to override)"
        )
    if status == st.CREATING:
        raise StateError("cannot exec in a container that is still being created")
    return state


def saved_spec(state: ContainerState):
    """The config saved at create time, decoded again."""
    from pyruntime.spec import decode_spec

    return decode_spec(jsonio.dumps(state.config), "saved config")


# ----------------------------------------------------------------- process


def build_process(container_process, opts: ExecOptions):
    """The process to run: the file's, or the container's merged with flags."""
    if opts.process_file is not None:
        process = read_process_file(opts.process_file)
        process = inherit_from_container(process, container_process)
        source = f"process file `{opts.process_file}`"
    else:
        process = merge_flags(container_process, opts)
        source = "exec process"
    check_process(process, source)
    return process


def read_process_file(path: str):
    """Decode ``--process`` (a runtime-spec ``process`` object)."""
    from pyruntime.spec.decode import decode_process

    source = f"process file `{path}`"
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise ConfigError([f"read: {os.strerror(err.errno).lower()}"], source) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError([f"byte {err.start}: not valid UTF-8"], source) from None
    return decode_process(text, source)


def inherit_from_container(process, container):
    """Fill what the process file leaves out from the container's process."""
    from pyruntime.spec.model import User

    changes = {}
    if process.env is None:
        changes["env"] = container.env
    if process.capabilities is None:
        changes["capabilities"] = container.capabilities
    if not process.rlimits:
        changes["rlimits"] = container.rlimits
    if process.no_new_privileges is None:
        changes["no_new_privileges"] = container.no_new_privileges
    if process.apparmor_profile is None:
        changes["apparmor_profile"] = container.apparmor_profile
    if process.selinux_label is None:
        changes["selinux_label"] = container.selinux_label
    if process.user is None:
        changes["user"] = User(uid=0, gid=0)
    return model.replace(process, **changes)


def merge_flags(container, opts: ExecOptions):
    """The container's process with the command line's changes, as runc's."""
    changes = {
        "args": opts.args,
        "env": (*(container.env or ()), *opts.env),
        "terminal": opts.tty,
        "user": merge_user(container.user, opts),
        "capabilities": add_capabilities(container.capabilities, opts.caps),
    }
    if opts.cwd:
        changes["cwd"] = opts.cwd
    if opts.apparmor:
        changes["apparmor_profile"] = opts.apparmor
    if opts.process_label:
        changes["selinux_label"] = opts.process_label
    if opts.no_new_privs:
        changes["no_new_privileges"] = True
    return model.replace(container, **changes)


def merge_user(user, opts: ExecOptions):
    """``--user uid[:gid]`` and ``--additional-gids`` over the container's user."""
    from pyruntime.spec.model import User

    user = user or User(uid=0, gid=0)
    if opts.user:
        uid, gid = parse_user(opts.user)
        user = model.replace(user, uid=uid, gid=user.gid if gid is None else gid)
    for gid in opts.additional_gids:
        if gid < 0:
            raise UsageError(f"additional-gids must be a positive number {gid}")
    if opts.additional_gids:
        gids = (*(user.additional_gids or ()), *opts.additional_gids)
        user = model.replace(user, additional_gids=gids)
    return user


def parse_user(text: str) -> tuple[int, int | None]:
    """``uid`` or ``uid:gid``, both numbers (runc takes no names here)."""
    uid_text, sep, gid_text = text.partition(":")
    uid = parse_id(uid_text, "uid", text)
    gid = parse_id(gid_text, "gid", text) if sep else None
    return uid, gid


def parse_id(text: str, kind: str, flag: str) -> int:
    """One numeric id of ``--user``."""
    if not text.isdigit() or int(text) >= 2**32:
        raise UsageError(f'--user "{flag}": {kind} "{text}" is not a number')
    return int(text)


def add_capabilities(capabilities, names: tuple[str, ...]):
    """``--cap``: add to bounding, effective, permitted (and ambient, as runc).

    Ambient gets them only when the container lists inheritable capabilities
    (without inheritable ones they could not become ambient). A container
    without a ``capabilities`` object keeps all of root's: nothing to add.
    """
    from pyruntime.security.capabilities import capability_number

    for name in names:
        if capability_number(name) is None:
            raise UsageError(f'--cap "{name}": unknown capability')
    if capabilities is None or not names:
        return capabilities
    added = tuple(name.upper() for name in names)
    changes = {
        set_name: (*(getattr(capabilities, set_name) or ()), *added)
        for set_name in ("bounding", "effective", "permitted")
    }
    if capabilities.inheritable is not None:
        changes["ambient"] = (*(capabilities.ambient or ()), *added)
    return model.replace(capabilities, **changes)


def check_process(process, source: str) -> None:
    """The rules config.json's process obeys, with paths relative to it."""
    from pyruntime.spec import model
    from pyruntime.spec import validate as rules

    spec = model.Spec(oci_version="1.0.0", process=process)
    checks = (
        rules.check_process_args,
        rules.check_process_cwd,
        rules.check_rlimits,
        rules.check_oom_score_adj,
        rules.check_console_size,
        rules.check_process_attrs,
    )
    problems = [problem for check in checks for problem in check(spec)]
    if problems:
        raise ConfigError([p.removeprefix("process.") for p in problems], source)


def check_terminal(process, opts: ExecOptions) -> None:
    """The console socket goes with a terminal and ``--detach`` (runc's rule)."""
    if opts.detach and process.terminal and not opts.console_socket:
        raise UsageError(
            "cannot allocate tty if runc will detach without setting console socket"
        )
    if opts.console_socket and not (opts.detach and process.terminal):
        raise UsageError(
            "cannot use console socket if runc will not detach or allocate tty"
        )


# ------------------------------------------------------------------ cgroup


def exec_cgroup_paths(saved: dict, flags: tuple[str, ...]) -> dict:
    """The container's cgroup directories, moved down by ``--cgroup``."""
    if not flags:
        return dict(saved)
    paths = dict(saved)
    subpaths = parse_cgroup_flags(flags)
    if "" in subpaths:
        arg, sub = subpaths[""]
        paths = {key: below(base, sub, arg) for key, base in saved.items()}
    for controller, (arg, sub) in subpaths.items():
        if controller:
            move_controller(paths, saved, controller, sub, arg)
    for directory in sorted(set(paths.values())):
        if not os.path.isdir(directory):
            raise SetupError(f"--cgroup: cgroup `{directory}` does not exist")
    return paths


def parse_cgroup_flags(flags: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """``[ctrl[,ctrl]:]path`` arguments as {controller or "": (arg, path)}."""
    result: dict[str, tuple[str, str]] = {}
    for arg in flags:
        parts = arg.split(":")
        if len(parts) > 2:
            raise UsageError(f"invalid --cgroup argument: {arg}")
        if len(parts) == 1:
            if len(flags) != 1:
                raise UsageError(
                    f"invalid --cgroup argument: {arg} (missing <controller>: prefix)"
                )
            result[""] = (arg, arg)
            continue
        for controller in parts[0].split(","):
            if not controller:
                raise UsageError(
                    f"invalid --cgroup argument: {arg} (empty <controller> prefix)"
                )
            if controller in result:
                raise UsageError(
                    "invalid --cgroup argument(s): controller "
                    f"{controller} specified multiple times"
                )
            result[controller] = (arg, parts[1])
    return result


def move_controller(paths: dict, saved: dict, controller: str, sub: str, arg):
    """Point one controller (and those mounted with it) at a sub-cgroup."""
    key = "systemd" if controller == "name=systemd" else controller
    if key not in saved:
        raise UsageError(
            f"invalid --cgroup argument: {arg} (the container has no "
            f"{controller} cgroup)"
        )
    base = saved[key]
    for other, directory in saved.items():
        if directory == base:
            paths[other] = below(base, sub, arg)


def below(base: str, sub: str, arg: str) -> str:
    """``sub`` inside ``base``; a path that climbs out of it is refused."""
    joined = os.path.normpath(os.path.join(base, sub.lstrip("/")))
    if joined != base and not joined.startswith(base + "/"):
        raise UsageError(
            f"invalid --cgroup argument: {arg} (outside the container's cgroup)"
        )
    return joined


# ------------------------------------------------------------ the children


def plan_request(state, spec, process, cgroup_paths: dict, opts: ExecOptions):
    """Plan security and build the tenant's request (nothing forked yet)."""
    from pyruntime.process.tenant import TenantRequest
    from pyruntime.security import capabilities as caps
    from pyruntime.security import lsm, process_attrs

    # LSM labels without their LSM, rlimits above what may be raised.
    lsm.check_process_labels(process)
    process_attrs.check_rlimits_raisable(process)
    cap_plan = caps.plan_capabilities(process.capabilities)
    caps.check_host_capabilities(cap_plan)
    if cap_plan is not None:
        caps.load_backend()
    filter_plan, program = plan_filter(spec)
    return TenantRequest(
        container_id=state.id,
        init_pid=state.pid,
        init_start=state.pid_start,
        process=process,
        linux=spec.linux,
        cgroup_paths=cgroup_paths,
        preserve_fds=opts.preserve_fds,
        capabilities=cap_plan,
        seccomp=program,
        seccomp_listener=filter_plan.listener_path if filter_plan else None,
        seccomp_metadata=filter_plan.listener_metadata if filter_plan else None,
        state_document=hooks.state_document(
            state.oci_version,
            state.id,
            st.RUNNING,
            state.pid,
            state.bundle,
            state.annotations,
        ),
    )


def plan_filter(spec):
    """The container's seccomp plan and compiled program (None, None: none)."""
    config = spec.linux.seccomp if spec.linux else None
    if config is None:
        return None, None
    from pyruntime.security import seccomp, seccomp_cache

    filter_plan = seccomp.plan_seccomp(config)
    if filter_plan is None:
        return None, None
    return filter_plan, seccomp_cache.compile_with_cache(filter_plan)


def launch(req, opts: ExecOptions) -> int:
    """Connect the sockets, fork, write the pid file, wait unless detached."""
    from pyruntime.container import write_pid_file
    from pyruntime.process.tenant import TenantLaunch

    relay = connect_sockets(req, opts)
    forwarded: dict = {}

    def on_pid(pid: int) -> None:
        # In the foreground, signals go to the process from the moment it
        # exists: it may run the program before the protocol is over.
        if not opts.detach:
            from pyruntime.container import forward_signals

            forwarded.update(forward_signals(pid))

    try:
        pid = TenantLaunch(req, on_pid).run()
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        log.debug(f"exec process {pid} started")
        if opts.detach:
            return 0
        return wait_foreground(pid, relay)
    finally:
        if forwarded:
            from pyruntime.container import restore_signals

            restore_signals(forwarded)
        if relay is not None:
            relay.close()


def connect_sockets(req, opts: ExecOptions):
    """The seccomp agent and console connections, made while we see the host.

    Returns the runtime's end of the terminal pair in the foreground with a
    terminal (the runtime relays it), else None.
    """
    if req.seccomp is not None and req.seccomp.notify:
        from pyruntime.security import seccomp

        req.listener_fd = seccomp.connect_listener(req.seccomp_listener).detach()
    if not req.process.terminal:
        return None
    if opts.console_socket:
        from pyruntime.console import connect_console_socket

        req.console_fd = connect_console_socket(opts.console_socket).detach()
        return None
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    req.console_fd = theirs.detach()
    return ours


def wait_foreground(pid: int, relay) -> int:
    """Wait for the program (signals are relayed), relay the terminal; its status."""
    from pyruntime.container import wait_init

    if relay is not None:
        from pyruntime.console import relay_terminal

        relay_terminal(relay, pid)
    return wait_init(pid)


# ---------------------------------------------------------------- terminal
