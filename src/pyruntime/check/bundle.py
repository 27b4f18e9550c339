"""The bundle stage: the files and paths the config names, as create will use them.

Checked in the order create meets them: the rootfs, the ids the container runs
as, namespace paths, mount sources and mount points, device nodes, the
program and its working directory, and the hook programs. Every check reads;
none creates, opens for writing or mounts anything.
"""

from __future__ import annotations

import os
import stat

from pyruntime.check.context import Context, dig
from pyruntime.check.findings import BUNDLE, CONFIG
from pyruntime.check.rootview import (
    SEARCH,
    Identity,
    RootView,
    bind_source_path,
    blocked_on_the_way,
    clean,
    host_id,
    is_bind,
    may_create_in,
)
from pyruntime.errors import RuntimeError_

#: Hook phases in the order they run, and whether a failure stops the container.
HOOK_PHASES = (
    ("prestart", "prestart", True),
    ("create_runtime", "createRuntime", True),
    ("create_container", "createContainer", True),
    ("start_container", "startContainer", True),
    ("poststart", "poststart", False),
    ("poststop", "poststop", False),
)


def check_bundle(ctx: Context) -> None:
    """Every check of the bundle's files and paths."""
    ctx.run(check_user_mapped)
    ctx.run(check_namespace_paths)
    view = ctx.rootfs and rootfs_view(ctx)
    if view:
        ctx.run(check_rootfs_reachable)
        ctx.run(check_bind_sources)
        ctx.run(check_mount_points, view)
        ctx.run(check_device_nodes, view)
        ctx.run(check_executable, view)
        ctx.run(check_cwd, view)
    ctx.run(check_hooks)
    ctx.run(check_terminal)


def rootfs_view(ctx: Context) -> RootView | None:
    """The rootfs as a RootView, or None after reporting why it cannot be."""
    rootfs = ctx.rootfs
    if not os.path.isdir(rootfs):
        ctx.report.error(
            BUNDLE,
            "rootfs",
            "root.path",
            f"the rootfs `{rootfs}` does not exist or is not a directory",
            "unpack or build the root filesystem there, or correct root.path",
        )
        return None
    return RootView(rootfs, dig(ctx.spec, "mounts"), ctx.bundle)


# --- identities ------------------------------------------------------------------


def setup_identity(ctx: Context) -> Identity | None:
    """Who sets the container up: container root, as a host uid (None: unknown)."""
    if not ctx.new_namespace("user"):
        return None if ctx.has_namespace("user") else Identity(0, 0)
    uids, gids = ctx.linux.uid_mappings, ctx.linux.gid_mappings
    uid, gid = host_id(0, uids), host_id(0, gids)
    # Unmapped, container root keeps the runtime's host ids.
    return Identity(uid or 0, gid or 0, userns=(uids, gids))


def process_identity(ctx: Context) -> Identity | None:
    """Who runs the program (None: unknown, or its ids are not mapped)."""
    user = dig(ctx.process, "user")
    uid, gid = (user.uid, user.gid) if user else (0, 0)
    groups = tuple(dig(user, "additional_gids") or ())
    if not ctx.new_namespace("user"):
        if ctx.has_namespace("user"):
            return None
        return Identity(uid, gid, frozenset(groups), root=uid == 0)
    uids, gids = ctx.linux.uid_mappings, ctx.linux.gid_mappings
    host_uid, host_gid = host_id(uid, uids), host_id(gid, gids)
    host_groups = [host_id(g, gids) for g in groups]
    if host_uid is None or host_gid is None or None in host_groups:
        return None
    return Identity(
        host_uid, host_gid, frozenset(host_groups), uid == 0, userns=(uids, gids)
    )


def check_user_mapped(ctx: Context) -> None:
    """process.user must be mapped in a new user namespace (setresuid fails)."""
    if ctx.process is None or not ctx.new_namespace("user"):
        return
    user = ctx.process.user
    uid, gid = (user.uid, user.gid) if user else (0, 0)
    uids, gids = ctx.linux.uid_mappings, ctx.linux.gid_mappings
    wanted = [
        ("process.user.uid", uid, "uidMappings", uids),
        ("process.user.gid", gid, "gidMappings", gids),
    ]
    for index, extra in enumerate(dig(user, "additional_gids") or ()):
        where = f"process.user.additionalGids[{index}]"
        wanted.append((where, extra, "gidMappings", gids))
    for where, number, key, mappings in wanted:
        if mappings and host_id(number, mappings) is None:
            ctx.report.error(
                CONFIG,
                "user-unmapped",
                where,
                f"{number} is not mapped in the user namespace (linux.{key}): "
                "the switch to this id would fail",
                f"add a linux.{key} entry that covers {number}",
            )


# --- namespaces -------------------------------------------------------------------


def check_namespace_paths(ctx: Context) -> None:
    """Namespace paths name namespace files of the right type; host rules."""
    from pyruntime import namespaces

    for index, ns in enumerate(ctx.namespaces()):
        if not ns.path or ns.type not in namespaces.NAMESPACES:
            continue
        try:
            os.close(namespaces.open_namespace(ns.type, ns.path))
        except RuntimeError_ as err:
            ctx.report.error(
                BUNDLE,
                "namespace-path",
                f"linux.namespaces[{index}].path",
                str(err),
                namespace_hint(ns.type, ns.path),
            )
    check_namespace_rules(ctx, namespaces)


def namespace_hint(kind: str, path: str) -> str:
    """What to do about a namespace path that cannot be joined."""
    from pyruntime.namespaces import NAMESPACES

    name = NAMESPACES[kind][1]
    if path.startswith("/sys/fs/cgroup"):
        return (
            "this is where cgroup directories live: a namespace path names a "
            f"namespace file, such as /proc/<pid>/ns/{name}; or drop `path` "
            "to get a new namespace"
        )
    if kind == "network" and "/netns/" in path:
        name = os.path.basename(path)
        return f"make it with `ip netns add {name}`, or drop `path` to get a new one"
    return (
        f"give a namespace file such as /proc/<pid>/ns/{name}, or drop `path` "
        "to get a new namespace"
    )


def check_namespace_rules(ctx: Context, namespaces) -> None:
    """The host-side namespace rules the intermediate process enforces."""
    nss = ctx.namespaces()
    try:
        namespaces.require_private_mount_namespace(nss)
    except RuntimeError_ as err:
        message = str(err).removeprefix("linux.namespaces: ")
        ctx.report.error(
            CONFIG,
            "namespaces",
            "linux.namespaces",
            message,
            'add {"type": "mount"} to linux.namespaces',
        )
    linux = ctx.linux
    try:
        namespaces.refuse_host_changes(
            nss,
            dig(linux, "sysctl"),
            dig(ctx.spec, "hostname"),
            dig(ctx.spec, "domainname"),
        )
    except RuntimeError_ as err:
        ctx.report.error(
            BUNDLE,
            "namespaces",
            "linux.namespaces",
            str(err),
            "make a namespace for the container, or drop the setting",
        )


# --- the rootfs and mounts ---------------------------------------------------------


def check_rootfs_reachable(ctx: Context) -> None:
    """Container root must reach the rootfs when it is not host root."""
    who = setup_identity(ctx)
    if who is None or who.uid == 0:
        return
    blocked = blocked_on_the_way(ctx.rootfs, who)
    if blocked:
        ctx.report.error(
            BUNDLE,
            "rootfs-unreachable",
            "root.path",
            f"container root ({who.describe()}) cannot reach the rootfs: "
            f"`{blocked}` is mode {mode_of(blocked)} and not searchable for it",
            "make every directory on the way searchable (chmod o+x), or keep "
            "the bundle somewhere that is",
        )


def check_bind_sources(ctx: Context) -> None:
    """Every bind mount's source exists (relative ones: in the bundle)."""
    who = setup_identity(ctx)
    for index, mount in enumerate(dig(ctx.spec, "mounts") or ()):
        if not is_bind(mount):
            continue
        where = f"mounts[{index}].source"
        source = bind_source_path(mount, ctx.bundle)
        if not mount.source:
            ctx.report.error(
                BUNDLE,
                "bind-source",
                where,
                f"bind mount on `{mount.destination}` has no source",
                "name the host path to bind",
            )
        elif not os.path.exists(source):
            ctx.report.error(
                BUNDLE,
                "bind-source",
                where,
                f"bind source `{source}` does not exist on the host",
                "create it, or correct the path (a relative source is relative "
                "to the bundle)",
            )
        elif who is not None and who.uid != 0 and blocked_on_the_way(source, who):
            blocked = blocked_on_the_way(source, who)
            ctx.report.error(
                BUNDLE,
                "bind-source",
                where,
                f"container root ({who.describe()}) cannot reach `{source}`: "
                f"`{blocked}` is not searchable for it",
                "make the directories on the way searchable (chmod o+x)",
            )


def check_mount_points(ctx: Context, view: RootView) -> None:
    """Mount points missing from the rootfs must be creatable by container root."""
    from pyruntime.rootfs.mounts import check_destination

    who = setup_identity(ctx)
    for index, mount in enumerate(view.mounts):
        where = f"mounts[{index}].destination"
        destination = clean(mount.destination)
        try:
            source = bind_source_path(mount, ctx.bundle) if is_bind(mount) else ""
            check_destination(destination, mount, is_bind(mount), source)
        except (OSError, RuntimeError_) as err:
            ctx.report.error(
                CONFIG, "mount-destination", where, str(err), "mount somewhere else"
            )
            continue
        location = view.locate(destination, before=index)
        if location.exists or location.kind == "mount" or who is None:
            continue
        allowed, parent = may_create_in(location.host_path, who)
        if not allowed:
            ctx.report.error(
                BUNDLE,
                "mount-point",
                where,
                f"`{destination}` does not exist, and container root "
                f"({who.describe()}) may not create it in `{parent}`",
                "create the directory in the rootfs beforehand",
            )


def check_device_nodes(ctx: Context, view: RootView) -> None:
    """Where /dev's nodes and links will be made, and whether they can be."""
    from pyruntime.rootfs.devices import merge_devices, needs_dev_setup

    if not needs_dev_setup(view.mounts):
        return
    who = setup_identity(ctx)
    in_userns = ctx.has_namespace("user")
    devices = merge_devices(dig(ctx.linux, "devices") or ())
    if view.covering_mount("/dev") is None:
        dev_in_rootfs(ctx, view, who)
    for device in devices:
        if in_userns and device.type != "p" and not os.path.exists(device.path):
            ctx.report.error(
                BUNDLE,
                "device-nodes",
                "linux.devices",
                f"`{device.path}` does not exist on the host: in a user namespace "
                "the host's node is bound into the container",
                "remove the device, or create the node on the host",
            )


def dev_in_rootfs(ctx: Context, view: RootView, who: Identity | None) -> None:
    """Without a /dev mount, nodes and links are made in the rootfs itself."""
    dev = view.host_path("/dev")
    allowed, parent = (True, dev) if who is None else may_create_in(dev + "/x", who)
    if allowed:
        ctx.report.warning(
            BUNDLE,
            "dev-in-rootfs",
            "mounts",
            f"nothing is mounted on /dev: the device nodes and /dev links are "
            f"made in `{dev}`, which changes the image",
            "mount a tmpfs on /dev (as the config of `pyruntime spec` does)",
        )
        return
    ctx.report.error(
        BUNDLE,
        "device-nodes",
        "mounts",
        f"nothing is mounted on /dev, so the device nodes would be made in "
        f"`{parent}`, and container root ({who.describe()}) may not write there",
        "mount a tmpfs on /dev (as the config of `pyruntime spec` does)",
    )


# --- the program --------------------------------------------------------------------


def check_executable(ctx: Context, view: RootView) -> None:
    """``process.args[0]`` is an executable file the container user may run."""
    args = dig(ctx.process, "args")
    if not args:
        return
    name, cwd = args[0], dig(ctx.process, "cwd") or "/"
    who = process_identity(ctx)
    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(cwd, name)]
    else:
        path = env_value(dig(ctx.process, "env"), "PATH") or ""
        candidates = [os.path.join(cwd, d or ".", name) for d in path.split(":")]
    for candidate in candidates:
        verdict = judge_executable(view, candidate, who)
        if verdict == "ok":
            return
        if "/" in name:
            ctx.report.error(
                BUNDLE,
                "executable",
                "process.args[0]",
                verdict,
                executable_hint(verdict),
            )
            return
    path = env_value(dig(ctx.process, "env"), "PATH")
    where_from = f"its PATH ({path})" if path else "process.env, which has no PATH"
    ctx.report.error(
        BUNDLE,
        "executable",
        "process.args[0]",
        f"`{name}` is not found in the container along {where_from}",
        "give the program's absolute path, or add PATH to process.env",
    )


def judge_executable(view: RootView, path: str, who: Identity | None) -> str:
    """``ok``, or what is wrong with running ``path``."""
    location = view.locate(path)
    if location.kind == "mount":
        return "ok"  # on a filesystem made at create: nothing to look at yet
    if not location.exists:
        return f"`{path}` does not exist in the container"
    try:
        info = os.stat(location.host_path)
    except OSError:
        return f"`{path}` is a dangling link in the container"
    if not stat.S_ISREG(info.st_mode):
        return f"`{path}` is not a regular file"
    if who is not None and not who.may(info, SEARCH):
        return f"`{path}` (mode {stat.S_IMODE(info.st_mode):o}) is not executable"
    return "ok"


def executable_hint(verdict: str) -> str:
    """What to do about the program."""
    if "not executable" in verdict:
        return "make it executable for the container user (chmod +x)"
    return "install the program in the rootfs, or correct process.args[0]"


def env_value(env, key: str) -> str | None:
    """The last ``KEY=value`` of ``process.env``."""
    value = None
    for item in env or ():
        name, sep, rest = item.partition("=")
        if sep and name == key:
            value = rest
    return value


def check_cwd(ctx: Context, view: RootView) -> None:
    """``process.cwd`` exists (or can be made) and the user may enter it."""
    cwd = dig(ctx.process, "cwd")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        return
    location = view.locate(cwd)
    if location.kind == "mount":
        return
    if location.exists:
        check_cwd_usable(ctx, cwd, location.host_path)
        return
    who = setup_identity(ctx)
    allowed, parent = (
        (True, "") if who is None else may_create_in(location.host_path, who)
    )
    if allowed:
        ctx.report.warning(
            BUNDLE,
            "cwd",
            "process.cwd",
            f"`{cwd}` does not exist in the container: it is created at create "
            f"(in `{location.host_path}`)",
            "create it in the image to leave the image untouched",
        )
        return
    ctx.report.error(
        BUNDLE,
        "cwd",
        "process.cwd",
        f"`{cwd}` does not exist, and container root ({who.describe()}) may not "
        f"create it in `{parent}`",
        "create the directory in the rootfs",
    )


def check_cwd_usable(ctx: Context, cwd: str, host_path: str) -> None:
    """An existing cwd must be a directory the container user may enter."""
    try:
        info = os.stat(host_path)
    except OSError:
        return
    who = process_identity(ctx)
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif who is not None and not who.may(info, SEARCH):
        problem = (
            f"(mode {stat.S_IMODE(info.st_mode):o}) may not be entered by the user"
        )
    else:
        return
    ctx.report.error(
        BUNDLE,
        "cwd",
        "process.cwd",
        f"`{cwd}` {problem}",
        "correct process.cwd, or the directory in the rootfs",
    )


# --- hooks -------------------------------------------------------------------------


def check_hooks(ctx: Context) -> None:
    """Each hook program exists and is executable (where it will run)."""
    for attr, key, fatal in HOOK_PHASES:
        for index, hook in enumerate(dig(ctx.spec, "hooks", attr) or ()):
            if not isinstance(hook.path, str) or not hook.path.startswith("/"):
                continue  # reported by validation
            problem = hook_problem(ctx, attr, hook.path)
            if problem is None:
                continue
            effect = "create fails" if fatal else "it only warns"
            if attr == "start_container":
                effect = "start fails"
            ctx.report.add(
                "error" if fatal else "warning",
                BUNDLE,
                "hook",
                f"hooks.{key}[{index}].path",
                f"{problem} ({key} hook: {effect})",
                "install the hook program there, or correct the path",
            )


def hook_problem(ctx: Context, phase: str, path: str) -> str | None:
    """What is wrong with a hook program, or None."""
    host_path = path
    if phase == "start_container":
        if not ctx.rootfs or not os.path.isdir(ctx.rootfs):
            return None
        view = RootView(ctx.rootfs, dig(ctx.spec, "mounts"), ctx.bundle)
        location = view.locate(path)
        if location.kind == "mount":
            return None
        host_path = location.host_path
        if not location.exists:
            return f"`{path}` does not exist in the container"
    try:
        info = os.stat(host_path)
    except OSError:
        return f"`{path}` does not exist"
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        return f"`{path}` is not an executable file"
    return None


def mode_of(path: str) -> str:
    """The permission bits of ``path`` in octal (``?`` if it cannot be read)."""
    try:
        return f"{stat.S_IMODE(os.stat(path).st_mode):o}"
    except OSError:
        return "?"


def check_terminal(ctx: Context) -> None:
    """A terminal needs a console socket from whoever calls create."""
    if dig(ctx.process, "terminal"):
        ctx.report.note(
            BUNDLE,
            "terminal",
            "process.terminal",
            "true: create needs --console-socket (engines pass one)",
            "set it to false to run the bundle without a terminal",
        )
