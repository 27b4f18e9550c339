"""The host stage: what this kernel, this host and pyruntime can give the bundle.

Cgroup resources are in :mod:`.cgroups`. Here: capabilities against the
host's bounding set (the runtime's own check), rlimits and ``oomScoreAdj``
that need CAP_SYS_RESOURCE, LSM labels, seccomp actions, flags, architectures
and syscall names (the filter is compiled, as create compiles it), namespace
kinds and filesystem types the kernel has, and mount features pyruntime does
not have yet.
"""

from __future__ import annotations

import os

from pyruntime.check.cgroups import check_cgroups
from pyruntime.check.context import Context, dig
from pyruntime.check.findings import HOST, split_problem
from pyruntime.errors import RuntimeError_
from pyruntime.spec import model

CAP_SYS_RESOURCE = 24
#: seccomp actions -> their names in /proc/sys/kernel/seccomp/actions_avail.
SECCOMP_ACTION_NAMES = {
    "SCMP_ACT_KILL": "kill_thread",
    "SCMP_ACT_KILL_THREAD": "kill_thread",
    "SCMP_ACT_KILL_PROCESS": "kill_process",
    "SCMP_ACT_TRAP": "trap",
    "SCMP_ACT_ERRNO": "errno",
    "SCMP_ACT_TRACE": "trace",
    "SCMP_ACT_ALLOW": "allow",
    "SCMP_ACT_LOG": "log",
    "SCMP_ACT_NOTIFY": "user_notif",
}
NATIVE_ARCHITECTURES = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
#: Namespace kinds whose /proc/self/ns entry appeared late, with the version.
NAMESPACE_SINCE = {"cgroup": "4.6", "time": "5.6"}


def check_host(ctx: Context) -> None:
    """Every host feasibility check."""
    ctx.run(check_cgroups)
    ctx.run(check_capabilities)
    ctx.run(check_rlimits)
    ctx.run(check_oom_score_adj)
    ctx.run(check_lsm_labels)
    ctx.run(check_seccomp)
    ctx.run(check_namespace_kinds)
    ctx.run(check_mount_features)


def describe_host() -> dict:
    """What the report says about the host."""
    from pyruntime.cgroups.host import detect_mode, list_controllers

    host = os.uname()  # what platform.release() and platform.machine() say
    try:
        mode, controllers = detect_mode(), list_controllers()
    except RuntimeError_:
        mode, controllers = "none", []
    return {
        "kernel": host.release,
        "arch": host.machine,
        "cgroup": mode,
        "controllers": controllers,
        "lsm": active_lsms(),
    }


# --- privileges -------------------------------------------------------------------


def own_effective_capabilities() -> frozenset[int]:
    """The effective capability set of this process (the runtime's peer)."""
    from pyruntime.security.capabilities import mask_to_set

    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("CapEff:"):
                return mask_to_set(int(line.split()[1], 16))
    return frozenset()


def check_capabilities(ctx: Context) -> None:
    """Every capability asked for must be in the host's bounding set."""
    from pyruntime.security.capabilities import check_host_capabilities

    try:
        check_host_capabilities(ctx.capabilities)
    except RuntimeError_ as err:
        ctx.report.error(
            HOST,
            "capability",
            "process.capabilities",
            str(err),
            "drop it from the config, or run on a host that has it",
        )


def check_rlimits(ctx: Context) -> None:
    """Hard limits the runtime could not raise (its own pre-check, per item)."""
    from pyruntime.security.process_attrs import check_rlimits_raisable

    process = ctx.process
    items = list(dig(process, "rlimits") or ())
    for _ in range(len(items)):
        try:
            check_rlimits_raisable(model.replace(process, rlimits=tuple(items)))
        except RuntimeError_ as err:
            where, message = split_problem(str(err))
            ctx.report.error(
                HOST,
                "rlimit",
                where,
                message,
                "lower the hard limit to what this host allows",
            )
            index = rlimit_index(where)
            # The runtime stops at the first; look at the others as well.
            items[index] = model.replace(items[index], soft=0, hard=0)
            continue
        return


def rlimit_index(where: str) -> int:
    """The index in ``process.rlimits[2].hard``."""
    return int(where.partition("rlimits[")[2].partition("]")[0])


def check_oom_score_adj(ctx: Context) -> None:
    """Lowering oom_score_adj needs CAP_SYS_RESOURCE (set before any namespace)."""
    value = dig(ctx.process, "oom_score_adj")
    if value is None or CAP_SYS_RESOURCE in own_effective_capabilities():
        return
    try:
        with open("/proc/self/oom_score_adj", encoding="utf-8") as handle:
            current = int(handle.read())
    except (OSError, ValueError):
        return
    if value < current:
        ctx.report.error(
            HOST,
            "oom-score-adj",
            "process.oomScoreAdj",
            f"{value} is below the runtime's own {current}, and lowering it needs "
            "CAP_SYS_RESOURCE, which the runtime does not have on this host",
            f"use a value of at least {current}",
        )


# --- labels -----------------------------------------------------------------------


def active_lsms() -> list[str]:
    """The label-based LSMs enabled on this host."""
    from pyruntime.security import lsm

    found = []
    if lsm.apparmor_enabled():
        found.append("apparmor")
    if lsm.selinux_enabled():
        found.append("selinux")
    return found


def check_lsm_labels(ctx: Context) -> None:
    """Labels whose LSM this host lacks: the runtime's own check, label by label."""
    from pyruntime.security import lsm

    for spec in one_label_each(ctx.spec):
        try:
            lsm.check_labels_supported(spec)
        except RuntimeError_ as err:
            where, message = split_problem(str(err))
            ctx.report.error(
                HOST,
                "lsm",
                where,
                message,
                "remove the label, or run on a host with that LSM",
            )


def one_label_each(spec) -> list:
    """Copies of ``spec`` keeping one LSM label each (the check stops at one)."""
    replace = model.replace
    copies = [replace(spec, process=None)]  # linux.mountLabel alone
    process, linux = spec.process, spec.linux
    if process is None:
        return copies
    unlabelled = (
        replace(spec, linux=replace(linux, mount_label=None)) if linux else spec
    )
    for other in ("selinux_label", "apparmor_profile"):
        copies.append(replace(unlabelled, process=replace(process, **{other: None})))
    return copies


# --- seccomp ----------------------------------------------------------------------


def check_seccomp(ctx: Context) -> None:
    """Actions, flags and architectures against this kernel; then compile."""
    seccomp = dig(ctx.linux, "seccomp")
    if seccomp is None or ctx.seccomp is None:
        return
    if not kernel_has_seccomp():
        ctx.report.error(
            HOST,
            "seccomp",
            "linux.seccomp",
            "this kernel has no seccomp filters",
            "remove linux.seccomp, or use a kernel with seccomp",
        )
        return
    check_seccomp_actions(ctx, seccomp)
    check_seccomp_flags(ctx, seccomp)
    check_seccomp_architectures(ctx, seccomp)
    compile_filter(ctx, seccomp)


def kernel_has_seccomp() -> bool:
    """Whether /proc/self/status has a Seccomp line."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        return any(line.startswith("Seccomp:") for line in handle)


def check_seccomp_actions(ctx: Context, seccomp) -> None:
    """Every action used must be one this kernel offers."""
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail", encoding="utf-8") as f:
            available = set(f.read().split())
    except OSError:
        return
    used = [("linux.seccomp.defaultAction", seccomp.default_action)]
    for index, syscall in enumerate(seccomp.syscalls or ()):
        used.append((f"linux.seccomp.syscalls[{index}].action", syscall.action))
    for where, action in used:
        kernel_name = SECCOMP_ACTION_NAMES.get(action)
        if kernel_name and kernel_name not in available:
            ctx.report.error(
                HOST,
                "seccomp-action",
                where,
                f"this kernel has no seccomp action {action}",
                "use an action listed in /proc/sys/kernel/seccomp/actions_avail",
            )


def check_seccomp_flags(ctx: Context, seccomp) -> None:
    """Flags asked for by name must be known to this kernel."""
    from pyruntime.security.seccomp import FLAGS, flag_supported

    for index, name in enumerate(seccomp.flags or ()):
        bits = FLAGS.get(name)
        if bits and not flag_supported(bits):
            ctx.report.error(
                HOST,
                "seccomp-flag",
                f"linux.seccomp.flags[{index}]",
                f"this kernel does not know {name}",
                "remove the flag",
            )


def check_seccomp_architectures(ctx: Context, seccomp) -> None:
    """A filter listing architectures but not this one still covers this one."""
    native = NATIVE_ARCHITECTURES.get(os.uname().machine)
    listed = seccomp.architectures
    if native and listed and native not in listed:
        ctx.report.warning(
            HOST,
            "seccomp-arch",
            "linux.seccomp.architectures",
            f"{native} (this host) is not listed: the filter applies to it anyway",
            f"add {native} to say what the filter is for",
        )


def compile_filter(ctx: Context, seccomp) -> None:
    """Build the filter with libseccomp, as create does before forking."""
    from pyruntime.security.seccomp import compile_seccomp
    from pyruntime.security.seccomp_cache import cached_program

    try:
        program = cached_program(ctx.seccomp) or compile_seccomp(ctx.seccomp)
    except RuntimeError_ as err:
        ctx.report.error(
            HOST,
            "seccomp",
            "linux.seccomp",
            str(err),
            "fix the rule named, or check libseccomp",
        )
        return
    skipped = set(program.skipped)
    for index, syscall in enumerate(seccomp.syscalls or ()):
        names = [name for name in syscall.names or () if name in skipped]
        if names:
            ctx.report.warning(
                HOST,
                "seccomp-syscall",
                f"linux.seccomp.syscalls[{index}].names",
                "unknown to this host's libseccomp, left out of the filter: "
                + ", ".join(names),
                "check the names; they get the default action",
            )


# --- kernel features -------------------------------------------------------------


def check_namespace_kinds(ctx: Context) -> None:
    """Every namespace kind asked for exists in this kernel (and is enabled)."""
    from pyruntime.namespaces import NAMESPACES

    for index, ns in enumerate(ctx.namespaces()):
        if ns.type not in NAMESPACES:
            continue
        name = NAMESPACES[ns.type][1]
        if not os.path.exists(f"/proc/self/ns/{name}"):
            since = NAMESPACE_SINCE.get(ns.type)
            extra = f" (Linux {since} and later have them)" if since else ""
            ctx.report.error(
                HOST,
                "namespace-kind",
                f"linux.namespaces[{index}]",
                f"this kernel has no {ns.type} namespaces{extra}",
                "remove it, or run on a newer kernel",
            )
        elif ns.type == "user" and not ns.path and user_namespaces_disabled():
            ctx.report.error(
                HOST,
                "namespace-kind",
                f"linux.namespaces[{index}]",
                "user namespaces are disabled on this host "
                "(user.max_user_namespaces is 0)",
                "raise user.max_user_namespaces (sysctl)",
            )


def user_namespaces_disabled() -> bool:
    """Whether the host allows no user namespace at all."""
    try:
        with open("/proc/sys/user/max_user_namespaces", encoding="utf-8") as f:
            return int(f.read()) == 0
    except (OSError, ValueError):
        return False


def kernel_filesystems() -> set[str]:
    """The filesystem types this kernel can mount."""
    try:
        with open("/proc/filesystems", encoding="utf-8") as handle:
            return {line.split()[-1] for line in handle if line.strip()}
    except OSError:
        return set()


def check_mount_features(ctx: Context) -> None:
    """Filesystem types the kernel has; mount features pyruntime lacks."""
    from pyruntime.check.rootview import is_bind
    from pyruntime.rootfs.mounts import check_mount_supported
    from pyruntime.rootfs.options import parse_mount_options

    filesystems = None
    for index, mount in enumerate(dig(ctx.spec, "mounts") or ()):
        where = f"mounts[{index}]"
        try:
            check_mount_supported(mount, parse_mount_options(mount.options))
        except RuntimeError_ as err:
            if "idmapped" in str(err):
                ctx.report.error(
                    HOST,
                    "idmap",
                    where,
                    str(err),
                    "remove the idmap option and the mount's id "
                    "mappings: pyruntime cannot make idmapped "
                    "mounts yet",
                )
        if is_bind(mount) or not mount.type or mount.type == "none":
            continue
        filesystems = kernel_filesystems() if filesystems is None else filesystems
        if filesystems and mount.type not in filesystems:
            ctx.report.error(
                HOST,
                "filesystem",
                f"{where}.type",
                f"this kernel cannot mount `{mount.type}` filesystems",
                "use a filesystem type listed in /proc/filesystems",
            )
