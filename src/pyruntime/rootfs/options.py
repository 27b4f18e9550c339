"""Parsing of OCI mount options into what the mount system calls take.

Owns the table of every mount option pyruntime understands and the pure
function :func:`parse_mount_options` that turns a config's ``options`` list into
:class:`MountOptions`: mount(2) flags to set and to clear, propagation changes,
recursive mount_setattr(2) attributes and the filesystem data string. No I/O.

As the runtime-spec says, an option that is not in the table is passed to the
filesystem as data (``size=64m``, ``mode=755``, ``newinstance``...), in order,
comma-joined. Later options win over earlier ones (``ro,rw`` is read-write).
"""

from __future__ import annotations

import os

from pyruntime.linux.syscalls import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
    MS_BIND,
    MS_DIRSYNC,
    MS_I_VERSION,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
    ST_NOSYMFOLLOW,
)
from pyruntime.records import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_ATIME_VALUE_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME

# option -> (clear?, mount(2) flag). "defaults" is accepted and does nothing.
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "iversion": (False, MS_I_VERSION),
    "noiversion": (True, MS_I_VERSION),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
}

_PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# option -> (clear?, MOUNT_ATTR_* bit), applied with mount_setattr(AT_RECURSIVE).
_RECURSIVE_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

# The atime setting is one value, not a set of bits: the kernel wants the new
# value in attr_set and the whole MOUNT_ATTR__ATIME mask in attr_clr. Each
# option names the value it leaves the mounts with: "not noatime" and "not
# strictatime" are the kernel default, relatime; "not relatime" means
# updating atime on every access, strictatime (as mount(8) describes them).
_RECURSIVE_ATIME_OPTIONS: dict[str, int] = {
    "rnoatime": MOUNT_ATTR_NOATIME,
    "ratime": MOUNT_ATTR_RELATIME,
    "rrelatime": MOUNT_ATTR_RELATIME,
    "rnorelatime": MOUNT_ATTR_STRICTATIME,
    "rstrictatime": MOUNT_ATTR_STRICTATIME,
    "rnostrictatime": MOUNT_ATTR_RELATIME,
}

_OTHER_OPTIONS = ("bind", "rbind", "tmpcopyup")

# Parsed but not applied yet: requesting them fails with a clear error.
UNIMPLEMENTED_MOUNT_OPTIONS = ("idmap", "ridmap")

SUPPORTED_MOUNT_OPTIONS: tuple[str, ...] = tuple(
    sorted(
        {
            *_FLAG_OPTIONS,
            *_PROPAGATION_OPTIONS,
            *_RECURSIVE_FLAG_OPTIONS,
            *_RECURSIVE_ATIME_OPTIONS,
            *_OTHER_OPTIONS,
        }
    )
)
"""Every option name that has an effect, for the ``features`` command."""


@dataclass(frozen=True)
class MountOptions:
    """One mount's options, decoded.

    ``flags`` are the mount(2) flags to pass (without MS_BIND/MS_REC for bind
    mounts: see ``bind`` and ``recursive_bind``); ``clear_flags`` are the flags
    an option explicitly turned off (``rw``, ``suid``, ``atime``...), which
    matters when remounting a bind mount on top of its source's flags.
    ``propagation`` is the ordered list of propagation changes, each a full
    flag word for mount(2) (``MS_PRIVATE | MS_REC`` for ``rprivate``).
    ``attr_set``/``attr_clear`` are MOUNT_ATTR_* values for a recursive
    mount_setattr(2); ``data`` is the filesystem data string.
    """

    flags: int = 0
    clear_flags: int = 0
    propagation: tuple[int, ...] = ()
    attr_set: int = 0
    attr_clear: int = 0
    data: str = ""
    bind: bool = False
    recursive_bind: bool = False
    idmap: bool = False
    recursive_idmap: bool = False
    tmpcopyup: bool = False

    @property
    def has_recursive_attrs(self) -> bool:
        """Whether a recursive mount_setattr(2) is needed."""
        return bool(self.attr_set or self.attr_clear)


class _Builder:
    """Mutable accumulator for parse_mount_options."""

    def __init__(self) -> None:
        self.flags = 0
        self.clear_flags = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clear = 0
        self.data: list[str] = []
        self.bind = False
        self.recursive_bind = False
        self.idmap = False
        self.recursive_idmap = False
        self.tmpcopyup = False

    def add_flag(self, clear: bool, flag: int) -> None:
        if clear:
            self.flags &= ~flag
            self.clear_flags |= flag
        else:
            if flag & _ATIME_VALUE_FLAGS:
                # noatime, relatime and strictatime are one setting: the
                # last one named wins.
                self.flags &= ~_ATIME_VALUE_FLAGS
            self.flags |= flag
            self.clear_flags &= ~flag

    def add_recursive_flag(self, clear: bool, attr: int) -> None:
        if clear:
            self.attr_set &= ~attr
            self.attr_clear |= attr
        else:
            self.attr_set |= attr
            self.attr_clear &= ~attr

    def add_recursive_atime(self, value: int) -> None:
        self.attr_set = (self.attr_set & ~MOUNT_ATTR__ATIME) | value
        self.attr_clear |= MOUNT_ATTR__ATIME

    def add_other(self, option: str) -> None:
        if option in ("bind", "rbind"):
            self.bind = True
            self.recursive_bind = self.recursive_bind or option == "rbind"
        elif option in ("idmap", "ridmap"):
            self.idmap = True
            self.recursive_idmap = self.recursive_idmap or option == "ridmap"
        elif option == "tmpcopyup":
            self.tmpcopyup = True
        else:
            self.data.append(option)

    def build(self) -> MountOptions:
        return MountOptions(
            flags=self.flags,
            clear_flags=self.clear_flags,
            propagation=tuple(self.propagation),
            attr_set=self.attr_set,
            attr_clear=self.attr_clear,
            data=",".join(self.data),
            bind=self.bind,
            recursive_bind=self.recursive_bind,
            idmap=self.idmap,
            recursive_idmap=self.recursive_idmap,
            tmpcopyup=self.tmpcopyup,
        )


def parse_mount_options(options: Iterable[str] | None) -> MountOptions:
    """Decode an OCI ``mounts[].options`` list; unknown options become data."""
    builder = _Builder()
    for option in options or ():
        if option in _FLAG_OPTIONS:
            builder.add_flag(*_FLAG_OPTIONS[option])
        elif option in _PROPAGATION_OPTIONS:
            builder.propagation.append(_PROPAGATION_OPTIONS[option])
        elif option in _RECURSIVE_FLAG_OPTIONS:
            builder.add_recursive_flag(*_RECURSIVE_FLAG_OPTIONS[option])
        elif option in _RECURSIVE_ATIME_OPTIONS:
            builder.add_recursive_atime(_RECURSIVE_ATIME_OPTIONS[option])
        elif option:
            builder.add_other(option)
    return builder.build()


def propagation_flags(name: str | None) -> int | None:
    """Map a ``rootfsPropagation`` value to mount(2) flags; None when unset.

    Raises ValueError for a name that is not a propagation option.
    """
    if not name:
        return None
    try:
        return _PROPAGATION_OPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown mount propagation `{name}`") from None


# Per-mount flags a bind remount (MS_REMOUNT | MS_BIND) can change.
BIND_REMOUNT_FLAGS = (
    MS_RDONLY
    | MS_NOSUID
    | MS_NODEV
    | MS_NOEXEC
    | MS_NOATIME
    | MS_NODIRATIME
    | MS_RELATIME
    | MS_STRICTATIME
    | MS_NOSYMFOLLOW
)
_STATVFS_TO_MS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
    (ST_NOSYMFOLLOW, MS_NOSYMFOLLOW),
)


def mount_flags_from_statvfs(f_flag: int) -> int:
    """The MS_* per-mount flags a mount has, from statvfs(3)'s ``f_flag``."""
    flags = 0
    for st_flag, ms_flag in _STATVFS_TO_MS:
        if f_flag & st_flag:
            flags |= ms_flag
    if not flags & (MS_NOATIME | MS_RELATIME):
        flags |= MS_STRICTATIME
    return flags


def needs_bind_remount(options: MountOptions) -> bool:
    """Whether a bind mount must be remounted to apply per-mount flags."""
    return bool((options.flags | options.clear_flags) & BIND_REMOUNT_FLAGS)


def bind_remount_flags(current: int, flags: int, clear_flags: int) -> int:
    """Flags for ``mount(MS_REMOUNT | MS_BIND)`` applying options on a mount.

    A bind remount replaces all per-mount flags, and the kernel refuses
    (EPERM) to drop one that is locked, as the flags of a mount inherited from
    a more privileged mount namespace are. So the options act on top of the
    flags the mount has now (``current``, MS_* bits): whatever an option does
    not explicitly clear is kept. The atime setting is a single value: when the
    options choose one, it replaces the current one.
    """
    keep = current & BIND_REMOUNT_FLAGS & ~clear_flags
    if flags & _ATIME_VALUE_FLAGS:
        keep &= ~_ATIME_VALUE_FLAGS
    result = keep | (flags & BIND_REMOUNT_FLAGS)
    if not result & _ATIME_VALUE_FLAGS:
        # A remount naming no atime flag keeps the old setting: name the one
        # that "atime", "norelatime" or "nostrictatime" asked for.
        result |= _atime_after_clearing(current & clear_flags & _ATIME_VALUE_FLAGS)
    return MS_REMOUNT | MS_BIND | result


def _atime_after_clearing(cleared: int) -> int:
    if cleared & MS_RELATIME:
        return MS_STRICTATIME
    if cleared & (MS_NOATIME | MS_STRICTATIME):
        return MS_RELATIME
    return 0
