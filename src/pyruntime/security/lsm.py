"""AppArmor and SELinux labels: is the LSM there, and applying the labels.

This module owns ``process.apparmorProfile``, ``process.selinuxLabel`` and
``linux.mountLabel`` at run time (their syntax is checked in
``spec.process_rules``):

- :func:`check_labels_supported` refuses a label whose LSM the host has not
  enabled, with one line naming the JSON path. It runs in the runtime's
  intermediate process, before any namespace is entered; ``exec`` calls
  :func:`check_process_labels` for its process the same way.
- :func:`apply_exec_labels` asks the LSM to confine the next ``execve``: an
  AppArmor ``exec <profile>`` request, or the SELinux exec context. Both are
  written to the calling thread's ``attr`` files in /proc, so the container's
  /proc must be mounted; init calls it before the capabilities are dropped.
- :func:`apply_keyring_label` gives the session keyring the process label
  (SELinux), before the keyring is joined.
- :func:`label_mount_data` adds the ``context=`` option that labels a mount
  for SELinux; the rootfs code passes each mount's data through it.

A host without the LSM never reaches the appliers: the check refuses first.
"""

from __future__ import annotations

import errno
import os

from pyruntime.errors import SetupError, UnsupportedError

#: Where the kernel lists the active LSMs (securityfs; may be unmounted).
LSM_LIST = "/sys/kernel/security/lsm"
APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
SELINUX_FS = "/sys/fs/selinux"
#: The calling thread's LSM attributes. AppArmor has its own directory since
#: Linux 5.8; before that it shares the generic files.
ATTR_DIR = "/proc/thread-self/attr"
#: Filesystems that do not take ``context=`` (labelled otherwise, or bind).
UNLABELLED_FS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "mqueue", "bind"})


# --- what the host has -------------------------------------------------------------


def active_lsms() -> frozenset[str] | None:
    """The LSMs the kernel runs, or None when securityfs does not say."""
    try:
        with open(LSM_LIST) as handle:
            return frozenset(filter(None, handle.read().strip().split(",")))
    except OSError:
        return None


def apparmor_enabled() -> bool:
    """True when AppArmor is built in, enabled and active."""
    lsms = active_lsms()
    if lsms is not None and "apparmor" not in lsms:
        return False
    try:
        with open(APPARMOR_ENABLED) as handle:
            return handle.read().strip().startswith("Y")
    except OSError:
        return False


def selinux_enabled() -> bool:
    """True when SELinux is active (its file system is mounted)."""
    lsms = active_lsms()
    if lsms is not None and "selinux" not in lsms:
        return False
    return os.path.exists(os.path.join(SELINUX_FS, "enforce"))


# --- refusing what the host cannot do ---------------------------------------------


def check_labels_supported(spec) -> None:
    """Refuse LSM labels the host cannot apply, before anything changes."""
    if spec.process is not None:
        check_process_labels(spec.process)
    mount_label = spec.linux.mount_label if spec.linux else None
    if mount_label and not selinux_enabled():
        raise UnsupportedError(
            f"linux.mountLabel: cannot label mounts `{mount_label}`: "
            "SELinux is not enabled on this host"
        )


def check_process_labels(process, where: str = "process") -> None:
    """Refuse ``apparmorProfile``/``selinuxLabel`` without their LSM."""
    if process.apparmor_profile and not apparmor_enabled():
        raise UnsupportedError(
            f"{where}.apparmorProfile: cannot apply profile "
            f"`{process.apparmor_profile}`: AppArmor is not enabled on this host"
        )
    if process.selinux_label and not selinux_enabled():
        raise UnsupportedError(
            f"{where}.selinuxLabel: cannot apply label `{process.selinux_label}`: "
            "SELinux is not enabled on this host"
        )


# --- applying the labels -----------------------------------------------------------


def apply_exec_labels(process) -> None:
    """Have the next ``execve`` enter the AppArmor profile and SELinux context."""
    if process.apparmor_profile:
        write_attr(
            apparmor_exec_path(),
            apparmor_exec_request(process.apparmor_profile),
            f"apply AppArmor profile `{process.apparmor_profile}`",
        )
    if process.selinux_label:
        write_attr(
            os.path.join(ATTR_DIR, "exec"),
            process.selinux_label.encode(),
            f"set SELinux exec label `{process.selinux_label}`",
        )


def apply_keyring_label(process) -> None:
    """Label the session keyring init is about to join (SELinux only)."""
    if process.selinux_label:
        write_attr(
            os.path.join(ATTR_DIR, "keycreate"),
            process.selinux_label.encode(),
            f"set SELinux keyring label `{process.selinux_label}`",
        )


def apparmor_exec_request(profile: str) -> bytes:
    """What AppArmor reads as "change to ``profile`` at the next exec"."""
    return f"exec {profile}".encode()


def apparmor_exec_path(attr_dir: str | None = None) -> str:
    """AppArmor's own ``exec`` file when the kernel has one, else the shared one."""
    attr_dir = attr_dir or ATTR_DIR
    own = os.path.join(attr_dir, "apparmor", "exec")
    return own if os.path.exists(own) else os.path.join(attr_dir, "exec")


def write_attr(path: str, data: bytes, what: str) -> None:
    """One write of an LSM attribute file, with an error saying what failed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        hint = " (is /proc mounted in the container?)"
        hint = hint if err.errno == errno.ENOENT else ""
        raise SetupError(
            f"{what}: open `{path}`: {os.strerror(err.errno).lower()}{hint}"
        ) from err
    try:
        os.write(fd, data)
    except OSError as err:
        raise SetupError(
            f"{what}: write `{path}`: {os.strerror(err.errno).lower()}"
        ) from err
    finally:
        os.close(fd)


def label_mount_data(fstype: str | None, data: str, mount_label: str | None) -> str:
    """``data`` with ``context="<label>"`` added, for file systems that take it.

    Unchanged without a label, for bind mounts and the file systems in
    :data:`UNLABELLED_FS`, and when the data already sets a context.
    """
    if not mount_label or not fstype or fstype in UNLABELLED_FS:
        return data
    options = [item for item in data.split(",") if item]
    if any(item.split("=", 1)[0] in ("context", "fscontext") for item in options):
        return data
    return ",".join([*options, f'context="{mount_label}"'])
