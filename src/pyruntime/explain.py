"""``pyruntime explain``: the ordered plan of create, start and delete for a bundle.

Each step names the process that takes it (the runtime, the intermediate
process, init) and says what it does with this bundle's values: the state
directory, the cgroup directories and every file write planned for this
host's layout, the id maps, the namespaces joined and made, every mount,
the device nodes, the hooks with their arguments, the names, rlimits,
capabilities and seccomp filter, the program and its environment.

The order is the one ``process.init`` and ``container`` follow (see
docs/architecture.md); the values come from the runtime's own planners. It
is computed without changing anything: the config is decoded, the mount
table and the cgroup controllers are read, and that is all. Nothing is
created, not even the ``--root`` directory.
"""

from __future__ import annotations

import os

from pyruntime.check.context import Context, dig
from pyruntime.check.findings import CONFIG, ERROR, Report
from pyruntime.records import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RUNTIME, INTERMEDIATE, INIT = "runtime", "intermediate", "init"
COMMANDS = ("create", "start", "delete")
ACTOR_NAMES = {
    RUNTIME: "the runtime (in the host's namespaces)",
    INTERMEDIATE: "the intermediate process",
    INIT: "init (the future container process)",
}


@dataclass
class Plan:
    """The steps, in order, and what stopped the plan from being made."""

    bundle: str
    config: str
    container_id: str
    root: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, command: str, actor: str, what: str, details=()) -> None:
        """Append one step."""
        self.steps.append(
            {
                "n": len(self.steps) + 1,
                "command": command,
                "actor": actor,
                "what": what,
                "details": list(details),
            }
        )

    def as_dict(self) -> dict[str, Any]:
        """The plan as a JSON document."""
        return {
            "bundle": self.bundle,
            "config": self.config,
            "id": self.container_id,
            "root": self.root,
            "problems": self.problems,
            "steps": self.steps,
        }


def explain_bundle(
    bundle: str,
    config_name: str = "config.json",
    root: str = "/run/pyruntime",
    container_id: str | None = None,
    systemd_cgroup: bool = False,
) -> dict[str, Any]:
    """The plan for ``bundle`` as a JSON-ready dict (``problems`` if none)."""
    from pyruntime.check import config
    from pyruntime.check.plans import PLACEHOLDER_ID

    cid = container_id or PLACEHOLDER_ID
    plan = Plan(bundle, config_name, cid, root)
    report = Report(bundle=bundle, config=config_name)
    ctx = Context(bundle, config_name, report, systemd_cgroup=systemd_cgroup)
    config.check_config(ctx)
    problems = [f for f in report.of_severity(ERROR) if f.group == CONFIG]
    if ctx.spec is None or problems or ctx.process is None or ctx.rootfs is None:
        plan.problems = [f"{f.where}: {f.message}" for f in problems] or [
            "the config has no process or no root to explain"
        ]
        return plan.as_dict()
    for part in PARTS:
        part(plan, ctx)
    return plan.as_dict()


# --- create: the runtime ---------------------------------------------------------


def plan_preparation(plan: Plan, ctx: Context) -> None:
    """What the runtime does before anything exists."""
    details = [
        f"id `{plan.container_id}` checked (at most 255 characters of letters, "
        "digits and _ + . -)"
    ]
    details.append(f"{ctx.config_name} decoded and validated; rootfs `{ctx.rootfs}`")
    details.extend(capability_summary(ctx))
    details.extend(seccomp_summary(ctx))
    plan.add(
        "create",
        RUNTIME,
        "re-execute from a sealed in-memory copy of the "
        "interpreter, then read and check the bundle",
        details,
    )
    state = os.path.join(plan.root, plan.container_id)
    plan.add(
        "create",
        RUNTIME,
        f"make and lock the state directory `{state}`",
        ["state.json saved with status `creating`, then after each step"],
    )


def capability_summary(ctx: Context) -> list[str]:
    """One line on the capability plan."""
    from pyruntime.security.capabilities import capability_name

    plan = ctx.capabilities
    if plan is None:
        return ["capabilities: left as they are (no process.capabilities)"]
    kept = sorted(plan.requested())
    names = ", ".join(capability_name(n) for n in kept) or "none"
    return [f"capabilities checked against the host's bounding set: {names}"]


def seccomp_summary(ctx: Context) -> list[str]:
    """One line on the seccomp filter."""
    seccomp = dig(ctx.linux, "seccomp")
    if ctx.seccomp is None or seccomp is None:
        return []
    return [
        f"seccomp filter compiled with libseccomp: {len(ctx.seccomp.rules)} rules, "
        f"default action {seccomp.default_action}"
    ]


def plan_cgroup(plan: Plan, ctx: Context) -> None:
    """The container's cgroup directories, then every write into them."""
    from pyruntime.check import plans
    from pyruntime.errors import RuntimeError_

    try:
        manager = plans.open_layout(ctx.spec, plan.container_id, ctx.systemd_cgroup)
    except RuntimeError_ as err:
        plan.add("create", RUNTIME, "make the cgroup", [f"would fail: {err}"])
        return
    dirs = manager.paths()
    unique = sorted(set(dirs.values()))
    details = [*unique]
    if "cpuset" in dirs:
        details.append(
            "new cpuset directories get cpuset.cpus and cpuset.mems "
            "copied from their parent"
        )
    if "unified" in dirs:
        details.append(
            "controllers enabled in cgroup.subtree_control on the way "
            "down the cgroup2 hierarchy"
        )
    plan.add(
        "create",
        RUNTIME,
        f"make the cgroup ({manager.mode}), in {len(unique)} hierarchies",
        details,
    )
    try:
        writes = plans.plan_writes(manager, plans.effective_resources(ctx.spec))
    except RuntimeError_ as err:
        plan.add("create", RUNTIME, "write the cgroup limits", [f"would fail: {err}"])
        return
    details = [describe_write(write, dirs) for write in writes.writes]
    details += [f"warning: {warning}" for warning in writes.warnings]
    if writes.device_rules:
        details.append(f"eBPF device filter with {len(writes.device_rules)} rules")
    if details:
        plan.add("create", RUNTIME, "write the cgroup limits, in this order", details)


def describe_write(write, dirs: dict[str, str]) -> str:
    """``<dir>/memory.limit_in_bytes = 536870912 (linux.resources.memory.limit)``."""
    path = os.path.join(
        dirs.get(write.hierarchy, f"<{write.hierarchy}>"), write.filename
    )
    text = f"{path} = {write.value}"
    if write.alternatives:
        others = ", ".join(f"{name} = {value}" for name, value in write.alternatives)
        text += f" (or, if missing: {others})"
    if write.optional:
        text += " (if the file exists)"
    return f"{text}   [{write.field}]"


def plan_launch(plan: Plan, ctx: Context) -> None:
    """exec.fifo and the first fork."""
    plan.add(
        "create",
        RUNTIME,
        "make exec.fifo, fork the intermediate process",
        ["init will hold exec.fifo open and wait on it until `start`"],
    )
    plan.add(
        "create",
        RUNTIME,
        "join the cgroup, on a second thread: write the intermediate's pid to each"
        " hierarchy's cgroup.procs, then init's, while the children set up",
        ["the first move waits for an RCU grace period; nothing before it needs"
         " the cgroup"],
    )  # fmt: skip


# --- create: the intermediate process -----------------------------------------------


def plan_intermediate(plan: Plan, ctx: Context) -> None:
    """Host checks, cgroup, early process attributes, namespaces, the fork."""
    plan.add(
        "create",
        INTERMEDIATE,
        "become non-dumpable (and die with the "
        "runtime); check LSM labels and hard rlimits against the host",
    )
    io = dig(ctx.process, "io_priority")
    if io is not None:
        plan.add(
            "create",
            INTERMEDIATE,
            f"set the I/O priority: {io.class_}, level {io.priority}",
        )
    oom = dig(ctx.process, "oom_score_adj")
    if oom is not None:
        plan.add("create", INTERMEDIATE, f"set oom_score_adj to {oom}")
    plan_namespaces(plan, ctx)
    plan.add(
        "create",
        INTERMEDIATE,
        "fork init, report its pid, exit",
        ["a new pid namespace applies only to the children of its maker"],
    )


def plan_namespaces(plan: Plan, ctx: Context) -> None:
    """Joins in joining order, the user namespace and its maps, the rest."""
    from pyruntime.namespaces import ORDER, format_id_map

    joined = {ns.type: ns.path for ns in ctx.namespaces() if ns.path}
    for kind in ORDER:
        if kind in joined:
            plan.add(
                "create", INTERMEDIATE, f"join the {kind} namespace `{joined[kind]}`"
            )
    if ctx.new_namespace("user"):
        linux = ctx.linux
        maps = [
            "uid_map: " + format_id_map(linux.uid_mappings or ()).strip(),
            "gid_map: " + format_id_map(linux.gid_mappings or ()).strip(),
        ]
        maps = [line.replace("\n", ", ") for line in maps]
        plan.add(
            "create",
            INTERMEDIATE,
            "make a user namespace; the runtime writes its id maps",
            maps,
        )
    new = [
        ns.type
        for ns in ctx.namespaces()
        if not ns.path and ns.type not in ("user", "cgroup")
    ]
    if new:
        plan.add("create", INTERMEDIATE, "make new namespaces: " + ", ".join(new))
    if ctx.linux and ctx.linux.time_offsets and ctx.new_namespace("time"):
        offsets = [
            f"{clock}: {o.secs or 0} s {o.nanosecs or 0} ns"
            for clock, o in ctx.linux.time_offsets.items()
        ]
        plan.add("create", INTERMEDIATE, "write the time namespace offsets", offsets)
    if ctx.has_namespace("user"):
        plan.add(
            "create",
            INTERMEDIATE,
            "become root of the user namespace (when its uid 0 is mapped)",
        )


# --- create: init --------------------------------------------------------------------


def plan_init_filesystem(plan: Plan, ctx: Context) -> None:
    """Session, loopback, the rootfs and every mount, /dev."""
    details = []
    if ctx.new_namespace("network"):
        details.append("bring up lo in the new network namespace")
    plan.add("create", INIT, "start a new session", details)
    if ctx.new_namespace("cgroup"):
        plan.add(
            "create",
            INIT,
            "wait until the runtime has moved init into the cgroup, then make the"
            " cgroup namespace (its root is the container's cgroup)",
        )
    propagation = dig(ctx.linux, "rootfs_propagation")
    private = propagation in ("private", "rprivate")
    plan.add(
        "create",
        INIT,
        f"make every mount {'rprivate' if private else 'rslave'}"
        f", then bind the rootfs onto itself",
        [ctx.rootfs],
    )
    mounts = [describe_mount(m, ctx.bundle) for m in dig(ctx.spec, "mounts") or ()]
    if mounts:
        plan.add(
            "create",
            INIT,
            "mount, in this order (each destination resolved inside the rootfs)",
            mounts,
        )
    plan_devices(plan, ctx)
    if not ctx.new_namespace("cgroup"):
        plan.add(
            "create",
            INIT,
            "wait until the runtime has moved init into the cgroup: everything"
            " from here on runs in it",
        )


def describe_mount(mount, bundle: str) -> str:
    """``tmpfs on /tmp (nosuid,nodev,size=64m)`` or ``bind <host> on <dest>``."""
    from pyruntime.check.rootview import bind_source_path, is_bind

    options = ",".join(mount.options or ()) or "no options"
    if is_bind(mount):
        return (
            f"bind {bind_source_path(mount, bundle)} on {mount.destination} ({options})"
        )
    return f"{mount.type or 'none'} on {mount.destination} ({options})"


def plan_devices(plan: Plan, ctx: Context) -> None:
    """Device nodes and /dev links, unless /dev is bound from elsewhere."""
    from pyruntime.check.rootview import RootView
    from pyruntime.rootfs.devices import DEV_SYMLINKS, merge_devices, needs_dev_setup

    mounts = dig(ctx.spec, "mounts") or ()
    if not needs_dev_setup(mounts):
        return
    devices = merge_devices(dig(ctx.linux, "devices") or ())
    how = (
        "bound from the host (user namespace)"
        if ctx.has_namespace("user")
        else ("made with mknod")
    )
    where = "in the /dev mount"
    if RootView(ctx.rootfs, mounts, ctx.bundle).covering_mount("/dev") is None:
        where = f"in the rootfs directory itself ({ctx.rootfs}/dev)"
    nodes = [f"{d.path} ({d.type} {d.major}:{d.minor})" for d in devices]
    links = [f"{path} -> {target}" for target, path in DEV_SYMLINKS]
    plan.add("create", INIT, f"device nodes, {how}, {where}", nodes)
    plan.add("create", INIT, "the /dev links", [*links, "/dev/ptmx -> pts/ptmx"])


def plan_runtime_hooks(plan: Plan, ctx: Context) -> None:
    """prestart and createRuntime (runtime), createContainer (init)."""
    for attr, name, actor in (
        ("prestart", "prestart", RUNTIME),
        ("create_runtime", "createRuntime", RUNTIME),
        ("create_container", "createContainer", INIT),
    ):
        add_hooks(plan, ctx, "create", actor, attr, name)


def add_hooks(plan: Plan, ctx: Context, command: str, actor: str, attr, name):
    """One hook phase as one step (nothing when the phase has no hook)."""
    phase = dig(ctx.spec, "hooks", attr) or ()
    if not phase:
        return
    lines = []
    for hook in phase:
        argv = " ".join(hook.args or (hook.path,))
        timeout = f", timeout {hook.timeout} s" if hook.timeout else ""
        lines.append(f"{hook.path}: argv `{argv}`{timeout}")
    plan.add(command, actor, f"run the {name} hooks (state JSON on stdin)", lines)


def plan_init_process(plan: Plan, ctx: Context) -> None:
    """From pivot_root to the wait on exec.fifo."""
    plan.add("create", INIT, f"pivot_root into `{ctx.rootfs}`; empty sys.path")
    if dig(ctx.process, "terminal"):
        plan.add("create", INIT, "allocate the terminal, send it to --console-socket")
    plan_names(plan, ctx)
    plan.add("create", INIT, f"make `{ctx.process.cwd}` if it is missing")
    plan_protection(plan, ctx)
    plan.add("create", INIT, "join a new session keyring (unless --no-new-keyring)")
    plan_rlimits(plan, ctx)
    plan_process_attributes(plan, ctx)
    plan_privileges(plan, ctx)
    plan.add(
        "create",
        INIT,
        f"chdir to `{ctx.process.cwd}`; find "
        f"`{ctx.process.args[0]}` on the container's PATH; say `ready`",
    )
    plan.add(
        "create",
        RUNTIME,
        "save status `created`, write --pid-file, exit",
        ["init waits on exec.fifo; it is re-parented to the caller"],
    )


def plan_names(plan: Plan, ctx: Context) -> None:
    """Hostname, domainname and sysctls, inside the namespaces."""
    details = []
    for key in ("hostname", "domainname"):
        value = dig(ctx.spec, key)
        if value is not None:
            details.append(f"{key} {value}")
    for key, value in (dig(ctx.linux, "sysctl") or {}).items():
        details.append(f"sysctl {key} = {value}")
    if details:
        plan.add("create", INIT, "set names and sysctls", details)


def plan_protection(plan: Plan, ctx: Context) -> None:
    """Read-only root, masked and read-only paths."""
    details = []
    if dig(ctx.spec, "root", "readonly"):
        details.append("remount / read-only")
    masked = dig(ctx.linux, "masked_paths") or ()
    if masked:
        details.append("mask (tmpfs or /dev/null over): " + ", ".join(masked))
    readonly = dig(ctx.linux, "readonly_paths") or ()
    if readonly:
        details.append("make read-only: " + ", ".join(readonly))
    if details:
        plan.add("create", INIT, "protect the file system", details)


def plan_rlimits(plan: Plan, ctx: Context) -> None:
    """setrlimit for each rlimit."""
    rlimits = dig(ctx.process, "rlimits") or ()
    if rlimits:
        lines = [f"{r.type}: soft {r.soft}, hard {r.hard}" for r in rlimits]
        plan.add("create", INIT, "set the rlimits", lines)


def plan_process_attributes(plan: Plan, ctx: Context) -> None:
    """Personality, memory policy, CPU affinity, scheduler, LSM labels."""
    details = []
    persona = dig(ctx.linux, "personality")
    if persona is not None:
        details.append(f"personality {persona.domain}")
    policy = dig(ctx.linux, "memory_policy")
    if policy is not None:
        details.append(f"memory policy {policy.mode} {policy.nodes or ''}".strip())
    sched = dig(ctx.process, "scheduler")
    if sched is not None:
        details.append(f"scheduler {sched.policy}")
    for key, attr in (
        ("AppArmor profile", "apparmor_profile"),
        ("SELinux label", "selinux_label"),
    ):
        value = dig(ctx.process, attr)
        if value:
            details.append(f"{key} {value} for the next execve")
    if details:
        plan.add("create", INIT, "set the process attributes", details)


def plan_privileges(plan: Plan, ctx: Context) -> None:
    """no_new_privs, seccomp (without it), the user, the capabilities."""
    process = ctx.process
    if process.no_new_privileges:
        plan.add("create", INIT, "set no_new_privs")
    if ctx.seccomp is not None and not process.no_new_privileges:
        plan.add(
            "create",
            INIT,
            "load the seccomp filter (now: without "
            "no_new_privs it needs CAP_SYS_ADMIN, still held)",
        )
    user = process.user
    uid, gid = (user.uid, user.gid) if user else (0, 0)
    groups = ", ".join(str(g) for g in dig(user, "additional_gids") or ()) or "none"
    plan.add(
        "create", INIT, f"switch to uid {uid}, gid {gid}, additional groups {groups}"
    )
    plan_capabilities(plan, ctx)


def plan_capabilities(plan: Plan, ctx: Context) -> None:
    """The five sets, and how many capabilities leave the bounding set."""
    from pyruntime.security.capabilities import (
        SETS,
        capability_name,
        last_capability,
    )

    caps = ctx.capabilities
    if caps is None:
        return
    lines = []
    for name in SETS:
        numbers = sorted(getattr(caps, name))
        lines.append(f"{name}: " + (", ".join(map(capability_name, numbers)) or "none"))
    if caps.ignored_ambient:
        lines.append(
            "ambient, asked but not raised (not both permitted and "
            "inheritable): " + ", ".join(caps.ignored_ambient)
        )
    dropped = last_capability() + 1 - len(caps.bounding)
    plan.add(
        "create",
        INIT,
        f"set the capability sets ({dropped} capabilities "
        "dropped from the bounding set)",
        lines,
    )


# --- start and delete ---------------------------------------------------------------


def plan_start(plan: Plan, ctx: Context) -> None:
    """The start byte, startContainer hooks, seccomp, execve, poststart."""
    plan.add(
        "start", RUNTIME, "check the status is `created`, write one byte to exec.fifo"
    )
    add_hooks(plan, ctx, "start", INIT, "start_container", "startContainer")
    plan.add(
        "start",
        INIT,
        "mark every descriptor above stdio (and --preserve-fds) close-on-exec",
    )
    if ctx.seccomp is not None and ctx.process.no_new_privileges:
        plan.add(
            "start",
            INIT,
            "load the seccomp filter (the last step: with "
            "no_new_privs nothing of the runtime runs under it)",
        )
    env = ctx.process.env or ()
    plan.add(
        "start",
        INIT,
        f"execve `{ctx.process.args[0]}`",
        [
            f"argv: {' '.join(ctx.process.args)}",
            f"environment: {len(env)} "
            "variables"
            + (": " + ", ".join(e.split("=")[0] for e in env) if env else ""),
        ],
    )
    plan.add("start", RUNTIME, "remove exec.fifo, save status `running`")
    add_hooks(plan, ctx, "start", RUNTIME, "poststart", "poststart")


def plan_delete(plan: Plan, ctx: Context) -> None:
    """Kill, remove the cgroup and the state, poststop hooks."""
    plan.add(
        "delete",
        RUNTIME,
        "SIGKILL init if it lives (a running container "
        "needs --force), then whatever is left in the cgroup",
    )
    plan.add(
        "delete",
        RUNTIME,
        "remove the cgroup directories and "
        f"`{os.path.join(plan.root, plan.container_id)}`",
    )
    add_hooks(plan, ctx, "delete", RUNTIME, "poststop", "poststop")


#: The parts of the plan, in the order they happen.
PARTS = (
    plan_preparation,
    plan_cgroup,
    plan_launch,
    plan_intermediate,
    plan_init_filesystem,
    plan_runtime_hooks,
    plan_init_process,
    plan_start,
    plan_delete,
)


# --- text ------------------------------------------------------------------------


def render_text(plan: dict[str, Any]) -> str:
    """The plan as numbered steps, grouped by command and by process."""
    lines = [
        f"bundle: {plan['bundle']} ({plan['config']}), container id "
        f"{plan['id']}, root {plan['root']}"
    ]
    if plan["problems"]:
        lines.append(
            "cannot explain this bundle: its config has problems "
            "(`pyruntime check` lists them all):"
        )
        lines += [f"  {problem}" for problem in plan["problems"]]
        return "\n".join(lines) + "\n"
    lines.append(
        "Nothing has been done: this is what create, start and delete would do."
    )
    command = actor = None
    for step in plan["steps"]:
        if step["command"] != command:
            command, actor = step["command"], None
            lines += ["", command]
        if step["actor"] != actor:
            actor = step["actor"]
            lines.append(f"  {ACTOR_NAMES[actor]}")
        lines.append(f"    {step['n']:>2}. {step['what']}")
        lines += [f"        {detail}" for detail in step["details"]]
    return "\n".join(lines) + "\n"


def render_json(plan: dict[str, Any]) -> str:
    """The plan as indented JSON."""
    from pyruntime.check.render import indented_json

    return indented_json(plan)
