"""The ``features`` document: what this runtime really implements.

containerd reads it to decide what to ask for (recursive read-only mounts,
idmapped mounts, user namespaces), so it lists only what works, never what is
merely parsed. Anything left out here is reported as an error when a config
asks for it.
"""

from __future__ import annotations

from pyruntime import OCI_VERSION, __version__

HOOKS = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
]
NAMESPACES = ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]


def cgroup_support() -> dict:
    """Which cgroup hierarchies the cgroupfs driver handles."""
    return {
        "v1": True,
        "v2": True,
        "systemd": False,
        "systemdUser": False,
        "rdma": True,
    }


def mount_options() -> list[str]:
    """Mount options the rootfs code applies."""
    from pyruntime.rootfs.options import SUPPORTED_MOUNT_OPTIONS

    return sorted(SUPPORTED_MOUNT_OPTIONS)


def memory_policy_support() -> dict:
    """The ``linux.memoryPolicy`` modes and flags passed to set_mempolicy(2)."""
    from pyruntime.spec.process_rules import MPOL_FLAGS, MPOL_MODES

    return {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)}


def lsm_support() -> dict:
    """AppArmor and SELinux, as the features document reports them.

    The labels are applied where the host runs the LSM (``security.lsm``),
    but that code has not yet run against a live AppArmor or SELinux host,
    so both stay false until it has. A config asking for a label on a host
    without the LSM is refused either way.
    """
    return {"apparmor": {"enabled": False}, "selinux": {"enabled": False}}


def features_document() -> dict:
    """Build the runtime-spec features JSON."""
    from pyruntime.security.capabilities import known_capabilities
    from pyruntime.security.seccomp import feature_lists

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": known_capabilities(),
            "cgroup": cgroup_support(),
            "seccomp": feature_lists(),
            **lsm_support(),
            "intelRdt": {"enabled": False},
            "memoryPolicy": memory_policy_support(),
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {
            "io.github.pyruntime.version": __version__,
        },
    }
