"""Risky settings and capabilities that will not do what they say: warnings.

None of these stops a container: each is a place where the container gets
more than it needs, or less than the config suggests.

- capabilities: CAP_SYS_ADMIN without a user namespace; no
  ``process.capabilities`` at all (nothing is dropped); capabilities that the
  kernel's rules for ``execve`` grant or take away;
- a writable rootfs, no seccomp filter, no ``noNewPrivileges``;
- host namespaces shared (pid, network, ipc, uts) or joined;
- no device rules; /proc mounted without ``maskedPaths``.
"""

from __future__ import annotations

from pyruntime.check.context import Context, dig
from pyruntime.check.findings import CONFIG

CAP_SYS_ADMIN = 21
#: Namespaces whose absence means sharing something of the host's.
SHARED_NAMESPACES = ("pid", "network", "ipc", "uts")


def check_risks(ctx: Context) -> None:
    """Every risk warning."""
    if ctx.process is not None:
        ctx.run(check_capability_risks)
        ctx.run(check_no_new_privileges)
    ctx.run(check_writable_root)
    ctx.run(check_seccomp_present)
    ctx.run(check_shared_namespaces)
    ctx.run(check_device_rules)
    ctx.run(check_masked_paths)


def warn(ctx: Context, code: str, where: str, message: str, hint: str) -> None:
    """Record one risk warning (all of them are about the config)."""
    ctx.report.warning(CONFIG, code, where, message, hint)


def check_capability_risks(ctx: Context) -> None:
    """What the capability sets really give after execve."""
    from pyruntime.security.capabilities import capability_name

    uid = dig(ctx.process, "user", "uid") or 0
    plan = ctx.capabilities
    if dig(ctx.process, "capabilities") is None:
        whose = "every capability of the runtime" if uid == 0 else "a full bounding set"
        warn(
            ctx,
            "caps-kept",
            "process.capabilities",
            f"absent: nothing is dropped, the process keeps {whose}",
            "list the capabilities it needs (the five sets), even if none",
        )
        return
    if plan is None:
        return
    if CAP_SYS_ADMIN in plan.requested() and not ctx.has_namespace("user"):
        warn(
            ctx,
            "cap-sys-admin",
            "process.capabilities",
            "CAP_SYS_ADMIN without a user namespace: nearly the host's root",
            "drop CAP_SYS_ADMIN, or add a user namespace",
        )
    if plan.ignored_ambient:
        names = ", ".join(plan.ignored_ambient)
        warn(
            ctx,
            "caps-ignored",
            "process.capabilities.ambient",
            f"{names} not raised: an ambient capability must also be permitted "
            "and inheritable",
            "add them to inheritable and permitted, or drop them from ambient",
        )
    if uid == 0:
        after = plan.bounding | plan.inheritable
        if dig(ctx.process, "no_new_privileges"):
            after &= plan.permitted  # no_new_privs: execve grants nothing new
        gained = after - plan.effective
        if gained:
            names = ", ".join(capability_name(n) for n in sorted(gained))
            warn(
                ctx,
                "caps-gained",
                "process.capabilities.effective",
                f"the process runs as uid 0, so after execve it also has {names} "
                "(as root, it gets its bounding and inheritable sets)",
                "drop them from bounding to keep them out",
            )
        return
    lost = plan.effective - plan.ambient
    if lost:
        names = ", ".join(capability_name(n) for n in sorted(lost))
        warn(
            ctx,
            "caps-lost",
            "process.capabilities.effective",
            f"the process runs as uid {uid}: after execve it keeps only its ambient "
            f"capabilities, so {names} will not be effective",
            "add them to inheritable and ambient to keep them, or remove them",
        )


def check_no_new_privileges(ctx: Context) -> None:
    """Without no_new_privs, setuid programs can gain privileges."""
    if not dig(ctx.process, "no_new_privileges"):
        warn(
            ctx,
            "no-new-privileges",
            "process.noNewPrivileges",
            "not set: setuid and file-capability programs in the image can gain "
            "privileges",
            "set process.noNewPrivileges to true",
        )


def check_writable_root(ctx: Context) -> None:
    """A writable rootfs lets the container change its image."""
    if dig(ctx.spec, "root") is not None and not dig(ctx.spec, "root", "readonly"):
        warn(
            ctx,
            "writable-root",
            "root.readonly",
            "the rootfs is writable: the container can change its image",
            "set root.readonly to true; mount a tmpfs where it must write",
        )


def check_seccomp_present(ctx: Context) -> None:
    """Without a filter every system call is open to the container."""
    if ctx.process is not None and dig(ctx.linux, "seccomp") is None:
        warn(
            ctx,
            "no-seccomp",
            "linux.seccomp",
            "no seccomp filter: every system call is allowed",
            "add a seccomp profile, such as the default one of runc or Docker",
        )


def check_shared_namespaces(ctx: Context) -> None:
    """Namespaces left out (shared with the host) or joined from the host."""
    from pyruntime import namespaces

    for kind in SHARED_NAMESPACES:
        if not ctx.has_namespace(kind):
            warn(
                ctx,
                "host-namespace",
                "linux.namespaces",
                f"no {kind} namespace: the container shares the host's",
                f'add {{"type": "{kind}"}} to linux.namespaces',
            )
    for index, ns in enumerate(ctx.namespaces()):
        joined = ns.path and ns.type in namespaces.NAMESPACES and ns.type != "mount"
        if joined and namespaces.is_own_namespace(ns.type, ns.path):
            warn(
                ctx,
                "host-namespace",
                f"linux.namespaces[{index}].path",
                f"`{ns.path}` is the host's own {ns.type} namespace",
                "give the container a namespace of its own",
            )


def check_device_rules(ctx: Context) -> None:
    """No device rules: the device cgroup lets every device through."""
    if ctx.linux is not None and not dig(ctx.linux, "resources", "devices"):
        warn(
            ctx,
            "devices-unrestricted",
            "linux.resources.devices",
            "no device rules: the cgroup does not restrict device access",
            'start with {"allow": false, "access": "rwm"}; pyruntime then '
            "allows the usual devices",
        )


def check_masked_paths(ctx: Context) -> None:
    """A /proc without maskedPaths shows kernel files the container should not read."""
    mounts = dig(ctx.spec, "mounts") or ()
    has_proc = any(mount.type == "proc" for mount in mounts)
    if has_proc and not dig(ctx.linux, "masked_paths"):
        warn(
            ctx,
            "no-masked-paths",
            "linux.maskedPaths",
            "/proc is mounted but nothing is masked (/proc/kcore, /proc/keys...)",
            "add the maskedPaths of `pyruntime spec`",
        )
