"""Everything the container's init process does to its filesystem.

Called in this order by the init process, inside its new mount namespace, as
root in its namespaces::

    prepare_rootfs(...)      # propagation, rootfs bind, config mounts, /dev
    # (createContainer hooks run here)
    enter_rootfs(...)        # pivot_root, or MS_MOVE + chroot with --no-pivot
    finalize_rootfs(...)     # read-only /, rootfsPropagation
    mask_paths(...)          # linux.maskedPaths
    readonly_paths(...)      # linux.readonlyPaths
    mount_console(...)       # only with a terminal

Security rule for the whole package: a path inside the rootfs is never given
to the kernel as a string. It is resolved by :mod:`.paths` (symlinks followed
as if the rootfs were ``/``, never out of it) into an fd, checked to be inside
the rootfs, and mounted on as ``/proc/self/fd/N``.

Modules: ``options`` (pure option parsing), ``paths`` (resolution),
``binds`` (bind/remount primitives), ``mounts`` (config mounts), ``cgroupfs``,
``copyup`` (tmpcopyup), ``devices``, ``pivot``, ``masks``.
"""

from __future__ import annotations

from pyruntime.errors import SetupError
from pyruntime.rootfs.binds import describe_errno
from pyruntime.rootfs.devices import (
    create_dev_symlinks,
    create_devices,
    mount_console,
    needs_dev_setup,
)
from pyruntime.rootfs.masks import mask_paths, readonly_paths
from pyruntime.rootfs.mounts import MountContext, mount_all
from pyruntime.rootfs.options import (
    SUPPORTED_MOUNT_OPTIONS,
    MountOptions,
    parse_mount_options,
)
from pyruntime.rootfs.paths import RootHandle
from pyruntime.rootfs.pivot import (
    bind_rootfs,
    enter_rootfs,
    finalize_rootfs,
    make_root_unshared,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = [
    "SUPPORTED_MOUNT_OPTIONS",
    "MountOptions",
    "enter_rootfs",
    "finalize_rootfs",
    "mask_paths",
    "mount_console",
    "parse_mount_options",
    "prepare_rootfs",
    "readonly_paths",
]


def prepare_rootfs(
    rootfs_path: str,
    mounts: Sequence[Any],
    devices: Sequence[Any],
    *,
    propagation: str | None,
    in_userns: bool,
    bundle: str,
    mount_label: str | None = None,
    cgroup_paths: dict[str, str] | None = None,
) -> None:
    """Set up the rootfs before pivot_root: mounts, devices, /dev symlinks.

    ``mount_label`` (``linux.mountLabel``) becomes the ``context=`` option of
    every new file system that takes one. ``cgroup_paths`` maps a cgroup
    hierarchy directory name to the container's host cgroup directory, for
    ``cgroup`` mounts (see :mod:`.cgroupfs`).
    """
    if not rootfs_path.startswith("/"):
        raise SetupError(f"rootfs `{rootfs_path}` is not an absolute path")
    make_root_unshared(propagation)
    bind_rootfs(rootfs_path)
    # Opened only now, so that it names the bind mount that pivot_root uses.
    try:
        root = RootHandle(rootfs_path)
    except OSError as err:
        raise SetupError(f"open rootfs `{rootfs_path}`: {describe_errno(err)}") from err
    try:
        context = MountContext(root, in_userns, bundle, cgroup_paths, mount_label)
        mount_all(context, mounts)
        if needs_dev_setup(mounts):
            create_devices(root, devices or (), in_userns)
            create_dev_symlinks(root)
    finally:
        root.close()
