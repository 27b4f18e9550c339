"""The default config.json that ``pyruntime spec`` writes.

This module owns the template: the same document ``runc spec`` (and
``runc spec --rootless``) writes, key order included, with our own
``ociVersion``. It is data, built fresh on each call so callers may change it.
"""

from __future__ import annotations

import json
import os

from pyruntime import OCI_VERSION
from pyruntime.errors import describe_oserror
from pyruntime.spec.decode import CONFIG_NAME, plain_config_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
_READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def default_spec(rootless: bool = False) -> dict[str, Any]:
    """Return the default config as a JSON-ready dict (runc's template)."""
    return {
        "ociVersion": OCI_VERSION,
        "process": default_process(),
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": default_mounts(rootless),
        "linux": rootless_linux() if rootless else default_linux(),
    }


def write_default_spec(bundle_dir: str, rootless: bool = False) -> str:
    """Write the default config.json into ``bundle_dir``; return its path.

    Refuses to overwrite an existing file, as runc does.
    """
    path = os.path.join(bundle_dir, CONFIG_NAME)
    text = json.dumps(default_spec(rootless), indent="\t")
    try:
        # "x" makes the existence check and the creation one atomic step.
        with open(path, "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise plain_config_error(
            f"File {CONFIG_NAME} exists. Remove it first"
        ) from None
    except OSError as err:
        raise plain_config_error(f"write `{path}`: {describe_oserror(err)}") from err
    return path


def default_process() -> dict[str, Any]:
    """The template's ``process``: an interactive ``sh`` as root."""
    return {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ],
        "cwd": "/",
        "capabilities": {
            key: list(_CAPABILITIES)
            for key in ("bounding", "effective", "permitted", "ambient")
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def default_mounts(rootless: bool) -> list[dict[str, Any]]:
    """The template's ``mounts``.

    Rootless differs in two places, both because an unprivileged user cannot
    do the privileged variant: devpts gets no ``gid=5`` (that group is not
    mapped) and /sys is a read-only rbind of the host's instead of a new sysfs
    (which needs a network namespace owned by the user).
    """
    devpts_options = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts_options.append("gid=5")
    sysfs = {"type": "sysfs", "source": "sysfs"}
    sysfs_options = ["nosuid", "noexec", "nodev", "ro"]
    if rootless:
        sysfs = {"type": "none", "source": "/sys"}
        sysfs_options = ["rbind", *sysfs_options]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        mount("/dev", "tmpfs", "tmpfs", "nosuid strictatime mode=755 size=65536k"),
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": devpts_options,
        },
        mount("/dev/shm", "tmpfs", "shm", "nosuid noexec nodev mode=1777 size=65536k"),
        mount("/dev/mqueue", "mqueue", "mqueue", "nosuid noexec nodev"),
        {"destination": "/sys", **sysfs, "options": sysfs_options},
        mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid noexec nodev relatime ro"),
    ]


def mount(destination: str, type_: str, source: str, options: str) -> dict[str, Any]:
    """One mount entry in runc's key order; ``options`` is space-separated."""
    return {
        "destination": destination,
        "type": type_,
        "source": source,
        "options": options.split(),
    }


def default_linux() -> dict[str, Any]:
    """The template's ``linux`` section: deny all devices, five namespaces."""
    return {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [
            {"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")
        ],
        "maskedPaths": list(_MASKED_PATHS),
        "readonlyPaths": list(_READONLY_PATHS),
    }


def rootless_linux() -> dict[str, Any]:
    """The rootless ``linux`` section.

    The caller's own uid/gid become root in a new user namespace; the network
    namespace is dropped (the host's is kept, so networking works without
    privileges) and so are the device rules (no cgroup to write them to).
    """
    return {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
        "namespaces": [
            {"type": kind} for kind in ("pid", "ipc", "uts", "mount", "user")
        ],
        "maskedPaths": list(_MASKED_PATHS),
        "readonlyPaths": list(_READONLY_PATHS),
    }
