"""Thin ctypes wrappers for the system calls Python 3.11 does not expose.

This is the only module that calls libc directly. Each wrapper raises
:class:`OSError` with the errno, the operation and the path involved, so a
failure reads ``mount `proc` on `/proc`: operation not permitted``.

Numbers are for x86_64 (the syscall numbers of ``pivot_root``, ``openat2``,
``mount_setattr``, ``close_range`` and friends are the same on aarch64 for the
newer calls, listed below where they differ).
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Namespace flags (sched.h).
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# openat2(2) resolve flags.
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CLOSE_RANGE_CLOEXEC = 1 << 2

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

_X86_64 = {
    "pivot_root": 155,
    "setns": 308,
    "unshare": 272,
    "open_tree": 428,
    "move_mount": 429,
    "openat2": 437,
    "close_range": 436,
    "mount_setattr": 442,
    "pidfd_send_signal": 424,
    "keyctl": 250,
}
_AARCH64 = dict(_X86_64, pivot_root=41, setns=268, unshare=97, keyctl=219)
_NR = _AARCH64 if os.uname().machine == "aarch64" else _X86_64


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno).lower()}", path)
    return result


def _syscall(name: str, *args) -> int:
    return _libc.syscall(ctypes.c_long(_NR[name]), *args)


def _b(path: str | bytes | None) -> bytes | None:
    if path is None:
        return None
    return os.fsencode(path)


def mount(
    source: str | None,
    target: str,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2); ``target`` may be a ``/proc/self/fd/N`` path."""
    result = _libc.mount(
        _b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)
    )
    _check(result, f"mount `{source}` on `{target}`", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), f"unmount `{target}`", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    result = _syscall("pivot_root", _b(new_root), _b(put_old))
    _check(result, f"pivot_root to `{new_root}`", new_root)


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), f"unshare namespaces {flags:#x}")


def setns(fd: int, nstype: int) -> None:
    """setns(2)."""
    _check(_libc.setns(fd, nstype), f"setns type {nstype:#x}")


def sethostname(name: str) -> None:
    """sethostname(2) (in the current UTS namespace)."""
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), f"set hostname `{name}`")


def setdomainname(name: str) -> None:
    """setdomainname(2) (in the current UTS namespace)."""
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)), f"set domainname `{name}`")


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` with resolve restrictions."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    result = _syscall(
        "openat2",
        ctypes.c_int(dirfd),
        _b(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    return _check(result, f"open `{path}`", path)


def close_range_cloexec(first: int) -> None:
    """Mark every descriptor from ``first`` upwards close-on-exec."""
    result = _syscall(
        "close_range",
        ctypes.c_uint(first),
        ctypes.c_uint(0xFFFFFFFF),
        ctypes.c_uint(CLOSE_RANGE_CLOEXEC),
    )
    _check(result, "close_range")


def prctl(option: int, arg2: int = 0) -> int:
    """prctl(2) with one argument."""
    result = _libc.prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    return _check(result, f"prctl({option})")


def join_session_keyring(name: str | None) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): give the container a new keyring."""
    KEYCTL_JOIN_SESSION_KEYRING = 1
    result = _syscall("keyctl", ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name))
    _check(result, "join session keyring")


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2): signal exactly the process the pidfd refers to."""
    result = _syscall(
        "pidfd_send_signal",
        ctypes.c_int(pidfd),
        ctypes.c_int(sig),
        None,
        ctypes.c_uint(0),
    )
    _check(result, f"send signal {sig}")


# Filesystem and mount helpers used by pyruntime.rootfs.

MS_I_VERSION = 1 << 23

AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# mount_setattr(2) attributes (linux/mount.h). The atime values are an enum
# inside MOUNT_ATTR__ATIME, not independent bits.
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# statfs(2) f_flags bit Python's os module does not name.
ST_NOSYMFOLLOW = 0x2000

# statfs(2) f_type of procfs.
PROC_SUPER_MAGIC = 0x9FA0


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int,
    attr_set: int = 0,
    attr_clr: int = 0,
    propagation: int = 0,
    userns_fd: int = 0,
) -> None:
    """mount_setattr(2): change mount attributes, recursively with AT_RECURSIVE.

    Pass ``path=""`` with ``AT_EMPTY_PATH`` to act on the mount ``dirfd`` is
    the root of.
    """
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    result = _syscall(
        "mount_setattr",
        ctypes.c_int(dirfd),
        _b(path),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(result, f"set mount attributes of `{path or dirfd}`", path or None)


def fstatfs_type(fd: int) -> int:
    """fstatfs(2) ``f_type`` (the filesystem magic) of ``fd``; O_PATH fds work."""
    # struct statfs is 120 bytes on 64-bit Linux; f_type (a long) comes first.
    buf = ctypes.create_string_buffer(256)
    _check(_libc.fstatfs(ctypes.c_int(fd), buf), f"statfs fd {fd}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


# Capabilities and seccomp, used by pyruntime.security.

PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def prctl_args(
    option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0
) -> int:
    """prctl(2) with all four arguments (PR_CAP_AMBIENT needs three)."""
    result = _libc.prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(arg3),
        ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    return _check(result, f"prctl({option}, {arg2}, {arg3})")


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2), version 3: ``(effective, permitted, inheritable)`` as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), f"capget of pid {pid}")
    return tuple(  # type: ignore[return-value]
        getattr(data[0], name) | (getattr(data[1], name) << 32)
        for name in ("effective", "permitted", "inheritable")
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2), version 3, on the calling thread; masks are 64-bit."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index, shift in enumerate((0, 32)):
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


# seccomp(2): operations and SECCOMP_FILTER_FLAG_* bits (linux/seccomp.h).
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

# glibc has no seccomp() wrapper; the number is not in _NR above so that
# table stays as it was.
_NR_SECCOMP = 277 if os.uname().machine == "aarch64" else 317


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(program: bytes | None, flags: int) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER): install a classic BPF program.

    ``program`` is an array of ``struct sock_filter`` (8 bytes each). Returns
    the listener fd with ``SECCOMP_FILTER_FLAG_NEW_LISTENER``, else 0.
    ``None`` passes a NULL program: the kernel checks ``flags`` first and
    answers EFAULT when it knows them, EINVAL when it does not (a probe).
    """
    pointer = None
    if program is not None:
        buffer = ctypes.create_string_buffer(program, len(program))
        prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
        pointer = ctypes.byref(prog)
    result = _libc.syscall(
        ctypes.c_long(_NR_SECCOMP),
        ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(flags),
        pointer,
    )
    return _check(result, "load seccomp filter")


# Process attributes, used by pyruntime.security.process_attrs: I/O priority,
# scheduling, NUMA memory policy, personality and CPU affinity. The tables of
# spec names to kernel values live in pyruntime.spec.process_rules (no
# ctypes there). Own syscall table, so the one above stays as it was.

_NR_PROCESS = {
    "x86_64": {
        "ioprio_set": 251,
        "ioprio_get": 252,
        "set_mempolicy": 238,
        "get_mempolicy": 239,
        "sched_setattr": 314,
        "sched_getattr": 315,
    },
    "aarch64": {
        "ioprio_set": 30,
        "ioprio_get": 31,
        "set_mempolicy": 237,
        "get_mempolicy": 236,
        "sched_setattr": 274,
        "sched_getattr": 275,
    },
}.get(os.uname().machine, {})

IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13

#: personality(2) argument that only reads the current persona.
PERSONALITY_QUERY = 0xFFFFFFFF

_ULONG_BITS = ctypes.sizeof(ctypes.c_ulong) * 8


def _process_syscall(name: str, *args) -> int:
    number = _NR_PROCESS.get(name)
    if number is None:
        ctypes.set_errno(38)  # ENOSYS: no number known for this machine
        return -1
    return _libc.syscall(ctypes.c_long(number), *args)


def ioprio_set(ioprio: int, pid: int = 0) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, pid, ioprio); pid 0 is the caller."""
    result = _process_syscall(
        "ioprio_set",
        ctypes.c_int(IOPRIO_WHO_PROCESS),
        ctypes.c_int(pid),
        ctypes.c_int(ioprio),
    )
    _check(result, f"ioprio_set({ioprio:#x})")


def ioprio_get(pid: int = 0) -> int:
    """ioprio_get(IOPRIO_WHO_PROCESS, pid): ``class << 13 | level``."""
    result = _process_syscall(
        "ioprio_get", ctypes.c_int(IOPRIO_WHO_PROCESS), ctypes.c_int(pid)
    )
    return _check(result, f"ioprio_get of pid {pid}")


class SchedAttr(ctypes.Structure):
    """struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def sched_setattr(attr: SchedAttr, pid: int = 0) -> None:
    """sched_setattr(2) on ``pid`` (0: the calling thread)."""
    attr.size = ctypes.sizeof(SchedAttr)
    result = _process_syscall(
        "sched_setattr", ctypes.c_int(pid), ctypes.byref(attr), ctypes.c_uint(0)
    )
    _check(result, "sched_setattr")


def sched_getattr(pid: int = 0) -> SchedAttr:
    """sched_getattr(2) of ``pid`` (0: the calling thread)."""
    attr = SchedAttr()
    result = _process_syscall(
        "sched_getattr",
        ctypes.c_int(pid),
        ctypes.byref(attr),
        ctypes.c_uint(ctypes.sizeof(SchedAttr)),
        ctypes.c_uint(0),
    )
    _check(result, f"sched_getattr of pid {pid}")
    return attr


def _node_mask(nodes) -> tuple[ctypes.Array | None, int]:
    """A ``unsigned long[]`` bitmask of ``nodes`` and its ``maxnode`` argument."""
    nodes = list(nodes)
    if not nodes:
        return None, 0
    words = max(nodes) // _ULONG_BITS + 1
    mask = (ctypes.c_ulong * words)()
    for node in nodes:
        mask[node // _ULONG_BITS] |= 1 << (node % _ULONG_BITS)
    # The kernel reads maxnode - 1 bits: one more than the mask holds.
    return mask, words * _ULONG_BITS + 1


def set_mempolicy(mode: int, nodes=()) -> None:
    """set_mempolicy(2); ``mode`` includes the MPOL_F_* flags."""
    mask, maxnode = _node_mask(nodes)
    result = _process_syscall(
        "set_mempolicy", ctypes.c_int(mode), mask, ctypes.c_ulong(maxnode)
    )
    _check(result, "set_mempolicy")


def get_mempolicy(max_nodes: int = 1024) -> tuple[int, list[int]]:
    """get_mempolicy(2) of the calling thread: ``(mode | flags, nodes)``."""
    words = (max_nodes + _ULONG_BITS - 1) // _ULONG_BITS
    mask = (ctypes.c_ulong * words)()
    mode = ctypes.c_int(0)
    result = _process_syscall(
        "get_mempolicy",
        ctypes.byref(mode),
        mask,
        ctypes.c_ulong(words * _ULONG_BITS),
        None,
        ctypes.c_ulong(0),
    )
    _check(result, "get_mempolicy")
    nodes = [
        index * _ULONG_BITS + bit
        for index, word in enumerate(mask)
        for bit in range(_ULONG_BITS)
        if word >> bit & 1
    ]
    return mode.value, nodes


def personality(persona: int) -> int:
    """personality(2): set the persona, return the previous one.

    :data:`PERSONALITY_QUERY` only reads it.
    """
    _libc.personality.restype = ctypes.c_int
    result = _libc.personality(ctypes.c_ulong(persona))
    return _check(result, f"personality({persona:#x})")


def sched_setaffinity(cpus, pid: int = 0) -> None:
    """sched_setaffinity(2) through Python's own wrapper, with our wording."""
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as err:
        raise OSError(
            err.errno, f"sched_setaffinity: {os.strerror(err.errno).lower()}"
        ) from None
