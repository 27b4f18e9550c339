"""The child side of ``create``: the intermediate process and the container's init.

Both functions here run in forked children and never return: they end in
``os._exit`` or ``os.execve``. Read them top to bottom: they are the
container's set-up sequence, one named step per line.

Everything init needs after ``pivot_root`` must already be imported by then:
once inside the container's root, ``sys.path`` is emptied so that a lazy
import can never load Python code from the container's file system.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
import sys

from pyruntime import hooks, log, namespaces, network, rootfs
from pyruntime.errors import SetupError
from pyruntime.linux import signals
from pyruntime.linux import syscalls as sc
from pyruntime.process.fifo import report_start_failure
from pyruntime.process.protocol import Channel
from pyruntime.security import capabilities as caps
from pyruntime.security import lsm, process_attrs
from pyruntime.state import jsonio

#: Signals that end a created-but-not-started init: as pid 1 of its pid
#: namespace it would otherwise ignore them (no default action for init).
_FATAL_WHILE_WAITING = (
    signals.SIGTERM,
    signals.SIGINT,
    signals.SIGHUP,
    signals.SIGQUIT,
    signals.SIGUSR1,
    signals.SIGUSR2,
)


def run_intermediate(req, chan: Channel) -> None:
    """Join and make the namespaces, fork init, report its pid.

    The runtime moves this process into the container's cgroup meanwhile, on
    a thread (:meth:`~pyruntime.process.launcher.Launch.start_join`): nothing
    done here depends on it, and init is moved in before it needs to be.
    """
    log.set_actor("intermediate")
    try:
        # Nobody in the container may ptrace us or open our /proc files;
        # execve of the user program makes it dumpable again.
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        sc.prctl(sc.PR_SET_PDEATHSIG, signals.SIGKILL)
        if os.getppid() != req.runtime_pid:
            os._exit(1)
        close_caller_fds(3 + req.preserve_fds)
        process_attrs.apply_io_priority(req.spec.process)
        set_oom_score_adj(req.spec.process)
        enter_namespaces(req, chan)
        pid = os.fork()
        if pid == 0:
            run_init(req, chan)
        chan.send("init-pid", pid=pid)
    except BaseException as err:
        report_error(chan, err)
        os._exit(1)
    os._exit(0)


def close_caller_fds(first: int) -> None:
    """Close what the caller passed beyond stdio and ``--preserve-fds``.

    The runtime's own descriptors are close-on-exec (Python opens them so);
    a descriptor without that flag came from the caller (containerd's shim
    hands one on fd 3) and must not stay open in the container's init while
    it waits for ``start``, nor reach the program.
    """
    import fcntl

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < first:
            continue
        try:
            if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                os.close(fd)
        except OSError:
            pass  # the directory's own fd, already gone


def set_oom_score_adj(process) -> None:
    """Apply ``process.oomScoreAdj``; children inherit it."""
    if process.oom_score_adj is None:
        return
    log.debug(f"set oom_score_adj to {process.oom_score_adj}; init inherits it")
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(process.oom_score_adj))
    except OSError as err:
        raise SetupError(
            f"set oomScoreAdj to {process.oom_score_adj}: {err.strerror.lower()}"
        ) from err


def enter_namespaces(req, chan: Channel) -> None:
    """Join the namespaces given by path, then create the new ones.

    Every join comes first, as host root: a namespace the host owns (a named
    network namespace, say) can no longer be joined once a new user namespace
    has taken away the host capabilities. ``open_joined`` orders the joined
    user namespace first, so the others may also belong to it.
    """
    linux = req.spec.linux
    nss = linux.namespaces if linux else ()
    namespaces.require_private_mount_namespace(nss)
    namespaces.refuse_host_changes(
        nss, linux.sysctl if linux else None, req.spec.hostname, req.spec.domainname
    )
    paths = {ns.type: ns.path for ns in nss if ns.path}
    for ns_type, fd in namespaces.open_joined(nss):
        log.debug(f"join {ns_type} namespace `{paths[ns_type]}`")
        namespaces.join_namespace(ns_type, fd, paths[ns_type])
    if namespaces.wants_new(nss, "user"):
        log.debug("create user namespace; asking the runtime to write id maps")
        namespaces.create_namespaces(sc.CLONE_NEWUSER)
        chan.send("map-ids")
        chan.expect("ids-mapped")
    # The cgroup namespace is init's to make, once it is in the cgroup (its
    # root is the cgroup of its maker): see wait_for_cgroup.
    flags = namespaces.new_namespace_flags(nss) & ~sc.CLONE_NEWCGROUP
    if flags:
        log.debug(f"create namespaces {namespaces.describe_flags(flags)}")
        namespaces.create_namespaces(flags)
    offsets = linux.time_offsets if linux else None
    if offsets and namespaces.wants_new(nss, "time"):
        log.debug(f"write the time namespace offsets {dict(offsets)}")
        namespaces.write_time_offsets(offsets)
    if namespaces.has_namespace(nss, "user"):
        become_root(req)


def become_root(req) -> None:
    """Become uid/gid 0 of the container's user namespace, when it is mapped.

    Done last: changing ids makes the process non-dumpable, which hands its
    /proc/self files to the host's root, and the time offsets above are
    written through /proc/self.
    """
    nss = req.spec.linux.namespaces
    if namespaces.wants_new(nss, "user") and not _mapped_root(req):
        return
    log.debug("become uid 0 and gid 0 of the user namespace")
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as err:
        if namespaces.wants_new(nss, "user"):
            raise SetupError(
                f"become root in the new user namespace: {err.strerror.lower()}"
            ) from err
        # A joined user namespace may not map 0: stay the (overflow) user.
        log.debug(f"stay unmapped in the joined user namespace: {err.strerror}")


def _mapped_root(req) -> bool:
    return any(m.container_id == 0 for m in req.spec.linux.uid_mappings or ())


def report_error(chan: Channel, err: BaseException) -> None:
    """Tell the runtime why set-up failed."""
    message = str(err) or type(err).__name__
    if log.debug_enabled() and not isinstance(err, SetupError):
        import traceback

        log.debug("".join(traceback.format_exception(err)))
    try:
        chan.send("error", message=message)
    except OSError:
        pass


def run_init(req, chan: Channel) -> None:
    """Set the container up, wait for ``start``, exec the user program."""
    log.set_actor("init")
    try:
        install_exit_handlers()
        chan.expect("go")
        set_up_container(req, chan)
        chan.send("ready")
        chan.close()
    except BaseException as err:
        report_error(chan, err)
        os._exit(1)
    wait_for_start(req)
    try:
        exec_user_program(req)
    except BaseException as err:
        message = describe_exec_error(req, err)
        # start waits on exec.fifo: the message makes it fail with our words.
        if not report_start_failure(req.fifo_fd, message):
            os.write(2, f"{req.runtime_name}: {message}\n".encode())
        os._exit(1)


def describe_exec_error(req, err: BaseException) -> str:
    """The line a failed exec leaves on stderr (runc's wording for OSError)."""
    if isinstance(err, OSError) and err.errno is not None:
        return f"exec {req.executable}: {os.strerror(err.errno).lower()}"
    return str(err) or type(err).__name__


def install_exit_handlers() -> None:
    """Let termination signals end init while it waits to be started."""
    for sig in _FATAL_WHILE_WAITING:
        signals.signal(sig, lambda signum, _frame: os._exit(128 + signum))


def wait_for_cgroup(chan: Channel, make_namespace: bool) -> None:
    """Wait until the runtime has moved init into the container's cgroup.

    Before the cgroup namespace is made (its root is the cgroup init is in)
    and before the runtime runs the prestart and createRuntime hooks, which
    may look at init's cgroup; everything after runs inside it.
    """
    chan.expect("cgroup-joined")
    if make_namespace:
        log.debug("create the cgroup namespace: its root is the container's cgroup")
        namespaces.create_namespaces(sc.CLONE_NEWCGROUP)


def set_up_container(req, chan: Channel) -> None:
    """Every step between namespaces and ``ready``."""
    spec = req.spec
    linux = spec.linux
    nss = linux.namespaces if linux else ()
    # A session of its own, terminal or not (as runc): the caller's terminal
    # then signals only the runtime, which forwards, never the container too.
    os.setsid()
    cgroupns = namespaces.wants_new(nss, "cgroup")
    if cgroupns:
        wait_for_cgroup(chan, make_namespace=True)
    if namespaces.wants_new(nss, "network"):
        log.debug("bring up lo in the new network namespace")
        network.bring_up_loopback()
    if namespaces.wants_new(nss, "mount") or namespaces.has_namespace(nss, "mount"):
        prepare_filesystem(req)
    if not cgroupns:
        wait_for_cgroup(chan, make_namespace=False)
    chan.send("mounts-ready")
    chan.expect("hooks-done")
    run_create_container_hooks(req)
    req.listener_sock = connect_seccomp_listener(req)
    enter_root(req)
    set_up_console(req)
    set_names(spec)
    apply_sysctls(linux.sysctl if linux else None)
    make_cwd(spec.process.cwd)
    protect_filesystem(req)
    lsm.apply_keyring_label(spec.process)
    if not req.no_new_keyring:
        join_new_keyring()
    apply_rlimits(spec.process.rlimits)
    process_attrs.apply_personality(linux)
    process_attrs.apply_memory_policy(linux)
    process_attrs.apply_scheduler(spec.process)
    lsm.apply_exec_labels(spec.process)
    set_no_new_privileges(spec.process.no_new_privileges)
    give_stdio_to_user(spec.process.user, [0, 1, 2])
    if not spec.process.no_new_privileges:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
        # while init still has every capability, as runc does.
        load_seccomp_filter(req, "creating")
    caps.prepare_capabilities(req.capabilities)
    switch_user(spec.process.user)
    drop_capabilities(req.capabilities)
    change_directory(spec.process.cwd)
    req.executable = find_executable(spec.process.args[0], process_env(spec.process))


def connect_seccomp_listener(req):
    """Connect to ``linux.seccomp.listenerPath`` while the host's paths are seen.

    The socket lives on the host: after pivot_root init could not reach it,
    and after the filter is loaded ``socket``/``connect`` may be denied.
    """
    if req.seccomp is None or not req.seccomp.notify:
        return None
    from pyruntime.security import seccomp  # loaded: the runtime compiled it

    log.debug(f"connect to the seccomp agent at `{req.seccomp_listener}`")
    return seccomp.connect_listener(req.seccomp_listener)


def load_seccomp_filter(req, status: str) -> None:
    """Load the compiled filter; hand its notify fd to the agent, if any."""
    if req.seccomp is None:
        return
    from pyruntime.security import seccomp  # loaded: the runtime compiled it

    log.debug(f"load the seccomp filter ({len(req.seccomp.bpf) // 8} BPF instructions)")
    fd = seccomp.load_seccomp(req.seccomp)
    if fd is None:
        return
    state = jsonio.loads(req.hook_state(status, os.getpid()).decode())
    message = seccomp.listener_message(state, os.getpid(), req.seccomp_metadata)
    seccomp.send_listener(req.listener_sock, fd, message)
    os.close(fd)
    req.listener_sock.close()


def drop_capabilities(plan) -> None:
    """Bounding, effective, permitted, inheritable and ambient sets, exactly."""
    if plan is not None:
        log.debug("set the capability sets; drop the rest from the bounding set")
    caps.apply_capabilities(plan)


def prepare_filesystem(req) -> None:
    """Mounts, devices and links inside the rootfs (still before pivot)."""
    linux = req.spec.linux
    log.debug(f"prepare rootfs `{req.rootfs}`")
    rootfs.prepare_rootfs(
        req.rootfs,
        req.spec.mounts or (),
        (linux.devices if linux else None) or (),
        propagation=linux.rootfs_propagation if linux else None,
        in_userns=namespaces.has_namespace(linux.namespaces if linux else (), "user"),
        bundle=req.bundle,
        mount_label=linux.mount_label if linux else None,
        cgroup_paths=req.cgroup.paths() if req.cgroup else None,
    )


def run_create_container_hooks(req) -> None:
    """createContainer hooks: in the container's namespaces, before pivot."""
    phase = hooks.hooks_of(req.spec, "create_container")
    if phase:
        log.debug("run createContainer hooks in the container's namespaces")
        state = req.hook_state("creating", os.getpid())
        hooks.run_hooks("create_container", phase, state, cwd=req.rootfs)


def enter_root(req) -> None:
    """pivot_root (or move + chroot) into the rootfs; seal Python's imports."""
    log.debug("pivot_root" if not req.no_pivot else "move rootfs onto / and chroot")
    rootfs.enter_rootfs(req.rootfs, no_pivot=req.no_pivot)
    # From here on the file system is the container's: never import from it.
    sys.path.clear()
    sys.path_importer_cache.clear()


def set_up_console(req) -> None:
    """Allocate the pty, bind it over /dev/console, send the master.

    The slave becomes init's controlling terminal and stdio now, at create,
    as in runc: the caller's own stdio (a pipe containerd's shim reads to its
    end) must not stay open in the container until ``start``.
    """
    if not req.spec.process.terminal:
        return
    from pyruntime import console  # loaded by preload_for_children

    size = req.spec.process.console_size
    master, slave, slave_path = console.open_pty(
        size.height if size else None, size.width if size else None
    )
    log.debug(f"open the terminal {slave_path}; bind it over /dev/console")
    rootfs.mount_console(slave_path)
    log.debug("send the pty master to the console socket")
    console.send_master(req.console_sock, master)
    console.make_controlling_terminal(slave)


def set_names(spec) -> None:
    """Hostname and domainname, in the container's UTS namespace."""
    if spec.hostname is not None:
        log.debug(f"set hostname `{spec.hostname}`")
        sc.sethostname(spec.hostname)
    if spec.domainname is not None:
        log.debug(f"set domainname `{spec.domainname}`")
        sc.setdomainname(spec.domainname)


def apply_sysctls(sysctl: dict | None) -> None:
    """Write namespaced sysctls under /proc/sys (validated as namespaced)."""
    for key, value in (sysctl or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        log.debug(f"set sysctl {key}={value} (namespaced: the host keeps its own)")
        try:
            with open(path, "w") as handle:
                handle.write(value)
        except OSError as err:
            raise SetupError(
                f"set sysctl `{key}` to `{value}`: {err.strerror.lower()}"
            ) from err


def make_cwd(cwd: str) -> None:
    """Create ``process.cwd`` if missing, as runc does (before a read-only root)."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError:
        pass  # reported by change_directory, with runc's wording


def protect_filesystem(req) -> None:
    """Read-only root, then masked and read-only paths."""
    linux = req.spec.linux
    root = req.spec.root
    if root and root.readonly:
        log.debug("remount the root read-only")
    rootfs.finalize_rootfs(
        readonly=bool(root and root.readonly),
        propagation=linux.rootfs_propagation if linux else None,
    )
    if linux and linux.masked_paths:
        rootfs.mask_paths(linux.masked_paths)
    if linux and linux.readonly_paths:
        rootfs.readonly_paths(linux.readonly_paths)


def join_new_keyring() -> None:
    """Give the container its own session keyring (unless --no-new-keyring)."""
    log.debug("join a new session keyring: the host's keys stay out of reach")
    try:
        sc.join_session_keyring(None)
    except OSError as err:
        log.debug(f"no new session keyring: {err.strerror}")


#: rlimits Python's resource module does not name (Linux numbering).
_EXTRA_RLIMITS = {"RLIMIT_LOCKS": 10}


def apply_rlimits(rlimits) -> None:
    """setrlimit() for each ``process.rlimits`` entry."""
    for item in rlimits or ():
        log.debug(f"set {item.type} to soft {item.soft}, hard {item.hard}")
        number = getattr(resource, item.type, None)
        if number is None:
            number = _EXTRA_RLIMITS[item.type]
        try:
            resource.setrlimit(number, (as_rlim(item.soft), as_rlim(item.hard)))
        except (OSError, ValueError) as err:
            _, current_hard = resource.getrlimit(number)
            raise SetupError(
                f"set {item.type} to soft {item.soft} hard {item.hard}: "
                f"{getattr(err, 'strerror', None) or err} (the current hard limit "
                f"is {current_hard}; raising it needs CAP_SYS_RESOURCE)"
            ) from err


def as_rlim(value: int) -> int:
    """A uint64 limit as the signed value Python passes to setrlimit().

    The spec's limits are unsigned 64-bit; 2**64-1 is RLIM_INFINITY, which
    Python spells -1 and refuses as a positive number.
    """
    return value - (1 << 64) if value >= 1 << 63 else value


def set_no_new_privileges(enabled: bool | None) -> None:
    """prctl(PR_SET_NO_NEW_PRIVS) when ``process.noNewPrivileges``."""
    if enabled:
        log.debug("set no_new_privs: setuid binaries and file caps grant nothing")
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def give_stdio_to_user(user, fds: list[int]) -> None:
    """Make the program's stdio belong to ``process.user``, as runc does.

    A program that reopens its output (``echo > /dev/stdout`` opens
    /proc/self/fd/1 anew) is checked against the inode's owner: the caller's
    pipe or the pty would otherwise refuse a non-root user. Only the uid
    changes; /dev/null is left alone, and so is anything this user namespace
    may not chown (EPERM, EINVAL) or a read-only file system (EROFS).
    """
    uid = user.uid if user else 0
    try:
        null = os.stat("/dev/null")
    except OSError:
        null = None
    for fd in fds:
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        if info.st_uid == uid or (
            null is not None
            and stat.S_ISCHR(info.st_mode)
            and info.st_rdev == null.st_rdev
        ):
            continue
        try:
            os.fchown(fd, uid, -1)
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EINVAL, errno.EROFS):
                raise SetupError(
                    f"give stdio fd {fd} to uid {uid}: {err.strerror.lower()}"
                ) from err


def switch_user(user) -> None:
    """Become ``process.user``: groups first, then gid, then uid."""
    uid = user.uid if user else 0
    gid = user.gid if user else 0
    groups = list(user.additional_gids or ()) if user else []
    log.debug(f"switch to uid {uid}, gid {gid}, groups {groups or 'none'}")
    try:
        os.setgroups(groups)
    except PermissionError:
        if groups:
            raise SetupError(
                "set additional groups: not permitted (setgroups is denied in "
                "this user namespace)"
            ) from None
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as err:
        raise SetupError(
            f"switch to user {uid}:{gid}: {err.strerror.lower()} (is it mapped "
            "in the user namespace?)"
        ) from err
    if user and user.umask is not None:
        os.umask(user.umask)
    else:
        os.umask(0o022)


def change_directory(cwd: str) -> None:
    """chdir to ``process.cwd`` as the container user."""
    log.debug(f"change directory to `{cwd}` as the container user")
    try:
        os.chdir(cwd)
    except OSError as err:
        raise SetupError(
            f'unable to start container process: chdir to cwd ("{cwd}") set in '
            f"config.json failed: {err.strerror.lower()}"
        ) from err


def process_env(process) -> dict[str, str]:
    """``process.env`` as a dict (later entries win, as in execve users)."""
    env = {}
    for item in process.env or ():
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return env


def find_executable(name: str, env: dict[str, str]) -> str:
    """Look ``args[0]`` up on the container's PATH, with runc's error wording."""
    prefix = "unable to start container process: exec"
    if "/" in name:
        try:
            os.stat(name)
        except OSError as err:
            raise SetupError(
                f'{prefix}: "{name}": stat {name}: {err.strerror.lower()}'
            ) from err
        if not os.access(name, os.X_OK):
            raise SetupError(f'{prefix}: "{name}": permission denied')
        return name
    for directory in env.get("PATH", "").split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SetupError(f'{prefix}: "{name}": executable file not found in $PATH')


def wait_for_start(req) -> None:
    """Block on exec.fifo until ``start`` writes its byte."""
    log.debug("ready; waiting on exec.fifo for start")
    while True:
        try:
            data = os.read(req.fifo_fd, 1)
        except InterruptedError:
            continue
        if data:
            break
    # exec.fifo stays open until just before execve: start waits for it to
    # close, and reads from it why init failed if a step before did.
    for sig in _FATAL_WHILE_WAITING:
        signals.signal(sig, signals.SIG_DFL)


def exec_user_program(req) -> None:
    """startContainer hooks, descriptors, then execve: the pid stays the same."""
    process = req.spec.process
    phase = hooks.hooks_of(req.spec, "start_container")
    if phase:
        log.debug("run startContainer hooks in the container")
        state = req.hook_state("created", os.getpid())
        hooks.run_hooks("start_container", phase, state, cwd="/")
    log.debug(
        f"close every descriptor but stdio and {req.preserve_fds} preserved; "
        f"exec {req.executable}"
    )
    keep_descriptors(req.preserve_fds)
    env = process_env(process)
    args = list(process.args)
    if process.no_new_privileges:
        # With no_new_privs the filter can wait until the very last moment:
        # nothing of the runtime's own work runs under it.
        load_seccomp_filter(req, "running")
    # Release start now, as runc's init does: what is left is execve itself,
    # whose failure init reports on its own stderr (the program's exit
    # status tells the caller). An engine that watches the cgroup for OOM
    # after start returns then misses nothing the program does.
    os.close(req.fifo_fd)
    os.execve(req.executable, args, env)


def keep_descriptors(preserve_fds: int) -> None:
    """Close on exec everything but stdio and the ``--preserve-fds`` ones."""
    first = 3 + preserve_fds
    sc.close_range_cloexec(first)
    for fd in range(3, first):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
