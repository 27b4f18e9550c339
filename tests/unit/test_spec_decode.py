"""Unit tests for pyruntime.spec.decode: config.json text -> Spec, every problem.

The five seed configs come from a public article on production OCI configs
(kept verbatim, comments included); the first one has ``//`` comments, which
JSON does not allow.
"""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import sys

import pytest

from pyruntime.errors import ConfigError
from pyruntime.spec import Spec, decode_spec, jsontext, load_spec, model, validate_spec
from pyruntime.spec.decode import decode_process, semver_major
from pyruntime.spec.defaults import default_spec

FINANCIAL = """\
{
    "ociVersion": "1.0.2",
    "process": {
        "terminal": false,
        "user": {
            "uid": 10001,
            "gid": 10001,
            "additionalGids": []
        },
        "args": ["/usr/local/bin/financial-app"],
        "env": [
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "APP_ENV=production",
            "LOG_LEVEL=warn"
        ],
        "cwd": "/app",
        "capabilities": {
            "effective": [],
            "bounding": [],
            "inheritable": [],
            "permitted": [],
            "ambient": []
        },
        "noNewPrivileges": true,
        "oomScoreAdj": 100,
        "rlimits": [
            {
                "type": "RLIMIT_NOFILE",
                "hard": 1024,
                "soft": 1024
            },
            {
                "type": "RLIMIT_NPROC",
                "hard": 100,
                "soft": 100
            }
        ]
    },
    "root": {
        "path": "rootfs",
        "readonly": true
    },
    "hostname": "financial-app-prod",
    "mounts": [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"]
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"]
        },
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=64m", "mode=1777"]
        },
        {
            "destination": "/var/log",
            "type": "bind",
            "source": "/host/var/log/containers",
            "options": ["bind", "rw", "nosuid", "nodev"]
        },
        {
            "destination": "/app/config",
            "type": "bind",
            "source": "/host/etc/financial-app",
            "options": ["bind", "ro", "nosuid", "nodev"]
        }
    ],
    "linux": {
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "user"}
        ],
        "uidMappings": [
            {
                "containerID": 10001,
                "hostID": 200001,
                "size": 1
            }
        ],
        "gidMappings": [
            {
                "containerID": 10001,
                "hostID": 200001,
                "size": 1
            }
        ],
        "resources": {
            "memory": {
                "limit": 2147483648,
                "reservation": 1073741824,
                "swappiness": 0,
                "disableOOMKiller": false
            },
            "cpu": {
                "shares": 1024,
                "quota": 200000,
                "period": 100000,
                "cpus": "0-1"
            },
            "pids": {
                "limit": 100
            },
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [
                    {
                        "major": 8,
                        "minor": 0,
                        "rate": 104857600
                    }
                ]
            }
        },
        "devices": [
            {
                "path": "/dev/null",
                "type": "c",
                "major": 1,
                "minor": 3,
                "fileMode": 438,
                "uid": 0,
                "gid": 0
            },
            {
                "path": "/dev/zero",
                "type": "c",
                "major": 1,
                "minor": 5,
                "fileMode": 438,
                "uid": 0,
                "gid": 0
            },
            {
                "path": "/dev/random",
                "type": "c",
                "major": 1,
                "minor": 8,
                "fileMode": 438,
                "uid": 0,
                "gid": 0
            },
            {
                "path": "/dev/urandom",
                "type": "c",
                "major": 1,
                "minor": 9,
                "fileMode": 438,
                "uid": 0,
                "gid": 0
            }
        ],
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {
                    "names": [
                        "read", "write", "open", "close", "stat", "fstat",
                        "lstat", "poll", "lseek", "mmap", "mprotect", "munmap",
                        "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
                        "ioctl", "pread64", "pwrite64", "readv", "writev",
                        "access", "pipe", "select", "sched_yield", "mremap",
                        "msync", "mincore", "madvise", "dup", "dup2",
                        "pause", "nanosleep", "getitimer", "alarm", "setitimer",
                        "getpid", "sendfile", "socket", "connect", "accept",
                        "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown",
                        "bind", "listen", "getsockname", "getpeername",
                        "socketpair", "setsockopt", "getsockopt", "clone",
                        "fork", "vfork", "execve", "exit", "wait4", "kill",
                        "uname", "fcntl", "flock", "fsync", "fdatasync",
                        "truncate", "ftruncate", "getdents", "getcwd",
                        "chdir", "fchdir", "rename", "mkdir", "rmdir",
                        "creat", "link", "unlink", "symlink", "readlink",
                        "chmod", "fchmod", "chown", "fchown", "lchown",
                        "umask", "gettimeofday", "getrlimit", "getrusage",
                        "sysinfo", "times", "getuid", "syslog", "getgid",
                        "setuid", "setgid", "geteuid", "getegid", "setpgid",
                        "getppid", "getpgrp", "setsid", "setreuid", "setregid",
                        "getgroups", "setgroups", "setresuid", "getresuid",
                        "setresgid", "getresgid", "getpgid", "setfsuid",
                        "setfsgid", "getsid", "capget", "capset", "rt_sigpending",
                        "rt_sigtimedwait", "rt_sigqueueinfo", "rt_sigsuspend",
                        "sigaltstack", "utime", "mknod", "personality",
                        "ustat", "statfs", "fstatfs", "sysfs", "getpriority",
                        "setpriority", "sched_setparam", "sched_getparam",
                        "sched_setscheduler", "sched_getscheduler",
                        "sched_get_priority_max", "sched_get_priority_min",
                        "sched_rr_get_interval", "mlock", "munlock",
                        "mlockall", "munlockall", "vhangup", "prctl",
                        "arch_prctl", "adjtimex", "setrlimit", "chroot",
                        "sync", "acct", "settimeofday", "mount", "umount2",
                        "swapon", "swapoff", "reboot", "sethostname",
                        "setdomainname", "gettid", "readahead", "setxattr",
                        "lsetxattr", "fsetxattr", "getxattr", "lgetxattr",
                        "fgetxattr", "listxattr", "llistxattr", "flistxattr",
                        "removexattr", "lremovexattr", "fremovexattr",
                        "tkill", "time", "futex", "sched_setaffinity",
                        "sched_getaffinity", "set_thread_area", "io_setup",
                        "io_destroy", "io_getevents", "io_submit", "io_cancel",
                        "get_thread_area", "lookup_dcookie", "epoll_create",
                        "epoll_ctl_old", "epoll_wait_old", "remap_file_pages",
                        "getdents64", "set_tid_address", "restart_syscall",
                        "semtimedop", "fadvise64", "timer_create",
                        "timer_settime", "timer_gettime", "timer_getoverrun",
                        "timer_delete", "clock_settime", "clock_gettime",
                        "clock_getres", "clock_nanosleep", "exit_group",
                        "epoll_wait", "epoll_ctl", "tgkill", "utimes",
                        "mbind", "set_mempolicy", "get_mempolicy", "mq_open",
                        "mq_unlink", "mq_timedsend", "mq_timedreceive",
                        "mq_notify", "mq_getsetattr", "waitid", "add_key",
                        "request_key", "keyctl", "ioprio_set", "ioprio_get",
                        "inotify_init", "inotify_add_watch", "inotify_rm_watch",
                        "migrate_pages", "openat", "mkdirat", "mknodat",
                        "fchownat", "futimesat", "newfstatat", "unlinkat",
                        "renameat", "linkat", "symlinkat", "readlinkat",
                        "fchmodat", "faccessat", "pselect6", "ppoll",
                        "unshare", "set_robust_list", "get_robust_list",
                        "splice", "tee", "sync_file_range", "vmsplice",
                        "move_pages", "utimensat", "epoll_pwait", "signalfd",
                        "timerfd_create", "eventfd", "fallocate",
                        "timerfd_settime", "timerfd_gettime", "accept4",
                        "signalfd4", "eventfd2", "epoll_create1", "dup3",
                        "pipe2", "inotify_init1", "preadv", "pwritev",
                        "rt_tgsigqueueinfo", "perf_event_open", "recvmmsg",
                        "fanotify_init", "fanotify_mark", "prlimit64",
                        "name_to_handle_at", "open_by_handle_at",
                        "clock_adjtime", "syncfs", "sendmmsg", "setns",
                        "getcpu", "process_vm_readv", "process_vm_writev"
                    ],
                    "action": "SCMP_ACT_ALLOW"
                }
            ]
        },
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/fs/selinux",
            "/sys/dev/block"
        ],
        "readonlyPaths": [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]
    },
    "hooks": {
        // Hook 系统详细配置请参考：OCI Hook 系统深度解析
        // https://github.com/your-repo/blog/blob/main/src/blogs/cloud-base/oci-08-hooks-deep-dive.md
        "createRuntime": [
            {
                "path": "/usr/local/bin/security-audit-hook",
                "args": ["security-audit-hook", "create"],
                "env": ["AUDIT_LOG=/var/log/security-audit.log"],
                "timeout": 30
            }
        ],
        "poststart": [
            {
                "path": "/usr/local/bin/health-check-hook",
                "args": ["health-check-hook", "start"],
                "timeout": 60
            }
        ],
        "poststop": [
            {
                "path": "/usr/local/bin/cleanup-hook",
                "args": ["cleanup-hook", "stop"],
                "timeout": 30
            }
        ]
    }
}
"""  # noqa: RUF001 (the article's comment has a full-width colon)

MICROSERVICE = """\
{
    "ociVersion": "1.0.2",
    "process": {
        "terminal": false,
        "user": {
            "uid": 1001,
            "gid": 1001
        },
        "args": ["/usr/local/bin/microservice"],
        "env": [
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "SERVICE_NAME=user-service",
            "SERVICE_VERSION=v1.2.3",
            "TRACE_ENABLED=true",
            "METRICS_ENABLED=true"
        ],
        "cwd": "/app",
        "capabilities": {
            "effective": ["CAP_NET_BIND_SERVICE"],
            "bounding": ["CAP_NET_BIND_SERVICE"],
            "inheritable": [],
            "permitted": ["CAP_NET_BIND_SERVICE"],
            "ambient": []
        },
        "noNewPrivileges": true
    },
    "root": {
        "path": "rootfs",
        "readonly": true
    },
    "linux": {
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"}
        ],
        "resources": {
            "memory": {
                "limit": 536870912,
                "reservation": 268435456
            },
            "cpu": {
                "shares": 512,
                "quota": 100000,
                "period": 100000
            },
            "pids": {
                "limit": 50
            }
        }
    }
}
"""

WEB_APP = """\
{
    "ociVersion": "1.0.2",
    "process": {
        "user": {
            "uid": 1000,
            "gid": 1000
        },
        "args": ["/usr/local/bin/web-app"],
        "env": [
            "GOMAXPROCS=4",
            "GOGC=100",
            "GODEBUG=gctrace=0"
        ]
    },
    "linux": {
        "resources": {
            "memory": {
                "limit": 4294967296,
                "reservation": 2147483648,
                "swappiness": 1
            },
            "cpu": {
                "shares": 2048,
                "quota": 400000,
                "period": 100000,
                "cpus": "0-3"
            },
            "blockIO": {
                "weight": 1000,
                "throttleReadBpsDevice": [
                    {
                        "major": 8,
                        "minor": 0,
                        "rate": 209715200
                    }
                ],
                "throttleWriteBpsDevice": [
                    {
                        "major": 8,
                        "minor": 0,
                        "rate": 104857600
                    }
                ]
            }
        }
    }
}
"""

DATA_PROCESSOR = """\
{
    "ociVersion": "1.0.2",
    "process": {
        "args": ["/usr/local/bin/data-processor"],
        "env": [
            "WORKER_THREADS=8",
            "BATCH_SIZE=1000",
            "MEMORY_POOL_SIZE=2G"
        ]
    },
    "linux": {
        "resources": {
            "memory": {
                "limit": 8589934592,
                "swappiness": 10
            },
            "cpu": {
                "cpus": "0-7",
                "idle": 0
            },
            "hugepageLimits": [
                {
                    "pageSize": "2MB",
                    "limit": 1073741824
                }
            ]
        }
    }
}
"""

MULTI_TENANT = """\
{
    "ociVersion": "1.0.2",
    "linux": {
        "namespaces": [
            {"type": "user"},
            {"type": "pid"},
            {"type": "network", "path": "/var/run/netns/tenant-a"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "cgroup", "path": "/sys/fs/cgroup/tenant-a"}
        ],
        "uidMappings": [
            {
                "containerID": 0,
                "hostID": 100000,
                "size": 65536
            }
        ],
        "gidMappings": [
            {
                "containerID": 0,
                "hostID": 100000,
                "size": 65536
            }
        ],
        "resources": {
            "unified": {
                "memory.max": "2147483648",
                "cpu.max": "200000 100000",
                "pids.max": "1000"
            }
        }
    }
}
"""


def decode(config: dict) -> Spec:
    """Decode a config given as a dict."""
    return decode_spec(json.dumps(config))


def problems_of(text: str) -> list[str]:
    """Decode text that must fail; return its problems."""
    with pytest.raises(ConfigError) as info:
        decode_spec(text)
    return info.value.problems


def minimal() -> dict:
    """A small valid config to mutate."""
    return {
        "ociVersion": "1.2.0",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "mount"}]},
    }


def with_value(path: str, value: object) -> dict:
    """Return ``minimal()`` with the dotted ``path`` set to ``value``."""
    config = copy.deepcopy(minimal())
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


# --- good configs ------------------------------------------------------------------


def test_decode_runc_default_spec() -> None:
    spec = decode(default_spec())
    assert spec.process.args == ("sh",)
    assert spec.process.user == model.User(uid=0, gid=0)
    assert spec.process.rlimits == (model.Rlimit("RLIMIT_NOFILE", 1024, 1024),)
    assert spec.process.capabilities.inheritable is None
    assert spec.root == model.Root(path="rootfs", readonly=True)
    assert spec.mounts[2].options[-1] == "gid=5"
    assert [ns.type for ns in spec.linux.namespaces] == [
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    ]
    rule = model.DeviceCgroup(allow=False, access="rwm")
    assert spec.linux.resources.devices == (rule,)
    assert spec.raw["linux"]["resources"] == {
        "devices": [{"allow": False, "access": "rwm"}]
    }


def test_decode_rootless_default_spec() -> None:
    spec = decode(default_spec(rootless=True))
    assert spec.linux.uid_mappings[0].container_id == 0
    assert spec.linux.resources is None


def test_decode_absent_fields_are_none_not_empty() -> None:
    spec = decode(minimal())
    assert spec.mounts is None
    assert spec.hooks is None
    assert spec.process.env is None
    assert spec.linux.uid_mappings is None


def test_decode_empty_array_stays_empty() -> None:
    spec = decode(with_value("process.env", []))
    assert spec.process.env == ()


def test_decode_null_means_not_set() -> None:
    spec = decode(with_value("hostname", None))
    assert spec.hostname is None


def test_decode_seed_with_comments_is_a_syntax_error() -> None:
    problems = problems_of(FINANCIAL)
    assert problems == [
        "line 269, column 9: expecting property name enclosed in double quotes"
    ]


def test_decode_seed_financial_without_comments() -> None:
    text = "\n".join(
        line for line in FINANCIAL.splitlines() if not line.strip().startswith("//")
    )
    spec = decode_spec(text)
    resources = spec.linux.resources
    assert resources.memory.limit == 2147483648
    assert resources.memory.disable_oom_killer is False
    assert resources.cpu.cpus == "0-1"
    assert resources.block_io.throttle_read_bps_device == (
        model.ThrottleDevice(major=8, minor=0, rate=104857600),
    )
    assert spec.process.user.additional_gids == ()
    assert spec.process.capabilities.effective == ()
    assert spec.process.oom_score_adj == 100
    assert spec.linux.uid_mappings == (model.IDMapping(10001, 200001, 1),)
    assert spec.linux.devices[0] == model.Device("c", "/dev/null", 1, 3, 438, 0, 0)
    assert "process_vm_writev" in spec.linux.seccomp.syscalls[0].names
    assert spec.hooks.create_runtime[0].timeout == 30
    assert spec.hooks.poststop[0].args == ("cleanup-hook", "stop")


def test_decode_seed_microservice() -> None:
    spec = decode_spec(MICROSERVICE)
    assert spec.process.capabilities.bounding == ("CAP_NET_BIND_SERVICE",)
    assert spec.linux.resources.pids == model.Pids(limit=50)


@pytest.mark.parametrize("text", [WEB_APP, DATA_PROCESSOR], ids=["web", "data"])
def test_decode_seed_without_cwd(text: str) -> None:
    assert problems_of(text) == ["process.cwd: required field is missing"]


def test_decode_seed_multi_tenant() -> None:
    spec = decode_spec(MULTI_TENANT)
    assert spec.process is None
    assert spec.linux.namespaces[2] == model.Namespace(
        "network", "/var/run/netns/tenant-a"
    )
    assert spec.linux.resources.unified["cpu.max"] == "200000 100000"
    assert spec.linux.gid_mappings[0].size == 65536


def test_decode_every_new_field() -> None:
    config = minimal()
    config["process"].update(
        ioPriority={"class": "IOPRIO_CLASS_RT", "priority": 7},
        scheduler={"policy": "SCHED_DEADLINE", "runtime": 1, "flags": ["F"]},
        execCPUAffinity={"initial": "0", "final": "1-3"},
        consoleSize={"height": 24, "width": 80},
    )
    config["linux"].update(
        timeOffsets={"monotonic": {"secs": -5, "nanosecs": 9}},
        personality={"domain": "LINUX32"},
        memoryPolicy={"mode": "MPOL_BIND", "nodes": "0-1"},
        netDevices={"eth1": {"name": "ctr0"}},
        intelRdt={"closID": "gold", "enableMonitoring": True},
        resources={
            "rdma": {"mlx5_1": {"hcaHandles": 3}},
            "network": {"classID": 7, "priorities": [{"name": "lo", "priority": 1}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 1024}],
            "memory": {"kernelTCP": -1, "checkBeforeUpdate": True},
        },
    )
    spec = decode(config)
    assert spec.process.io_priority == model.IoPriority("IOPRIO_CLASS_RT", 7)
    assert spec.process.scheduler.runtime == 1
    assert spec.process.exec_cpu_affinity.final == "1-3"
    assert spec.linux.time_offsets == {"monotonic": model.TimeOffset(-5, 9)}
    assert spec.linux.personality.domain == "LINUX32"
    assert spec.linux.memory_policy.nodes == "0-1"
    assert spec.linux.net_devices["eth1"].name == "ctr0"
    assert spec.linux.intel_rdt.clos_id == "gold"
    resources = spec.linux.resources
    assert resources.rdma == {"mlx5_1": model.Rdma(hca_handles=3)}
    assert resources.network.class_id == 7
    assert resources.hugepage_limits[0].page_size == "2MB"
    assert resources.memory.kernel_tcp == -1


def test_decode_ignores_unknown_keys_but_keeps_them_in_raw() -> None:
    config = minimal()
    config["vendor.example/extra"] = {"a": 1}
    config["linux"]["futureThing"] = [1, 2]
    config["solaris"] = {"milestone": "x"}
    spec = decode(config)
    assert spec.raw["vendor.example/extra"] == {"a": 1}
    assert spec.raw["linux"]["futureThing"] == [1, 2]
    assert spec == decode(minimal())  # raw is not compared


def test_decode_process_document() -> None:
    process = decode_process('{"args": ["ls"], "cwd": "/", "env": ["A=1"]}')
    assert process.args == ("ls",)
    with pytest.raises(ConfigError) as info:
        decode_process('{"cwd": 1}')
    assert info.value.problems == [
        "args: required field is missing",
        "cwd: expected string, got integer",
    ]


# --- type problems -----------------------------------------------------------------


TYPE_PROBLEMS = [
    (
        "linux.resources.memory.limit",
        "1g",
        "linux.resources.memory.limit: expected integer, got string",
    ),
    ("process.args", ["sh", 1], "process.args[1]: expected string, got integer"),
    ("process.args", "sh", "process.args: expected array, got string"),
    ("process.args", None, "process.args: expected array, got null"),
    ("process.terminal", "yes", "process.terminal: expected boolean, got string"),
    ("process.terminal", 1, "process.terminal: expected boolean, got integer"),
    ("process.user.uid", -1, "process.user.uid: expected unsigned integer, got -1"),
    (
        "process.user.uid",
        2**32,
        "process.user.uid: 4294967296 is out of range for uint32",
    ),
    (
        "process.user.uid",
        True,
        "process.user.uid: expected unsigned integer, got boolean",
    ),
    (
        "process.user.uid",
        1.0,
        "process.user.uid: expected unsigned integer, got number",
    ),
    (
        "process.oomScoreAdj",
        "5",
        "process.oomScoreAdj: expected integer, got string",
    ),
    (
        "linux.resources.memory.limit",
        2**63,
        "linux.resources.memory.limit: 9223372036854775808 is out of range for int64",
    ),
    (
        "linux.resources.blockIO.weight",
        70000,
        "linux.resources.blockIO.weight: 70000 is out of range for uint16",
    ),
    (
        "process.scheduler",
        {"policy": "SCHED_OTHER", "nice": -(2**31) - 1},
        "process.scheduler.nice: -2147483649 is out of range for int32",
    ),
    ("mounts", {}, "mounts: expected array, got object"),
    ("mounts", [[]], "mounts[0]: expected object, got array"),
    ("process", [], "process: expected object, got array"),
    ("annotations", {"a.b": 1}, 'annotations["a.b"]: expected string, got integer'),
    ("linux.sysctl", "x", "linux.sysctl: expected object, got string"),
    (
        "linux.timeOffsets",
        {"boottime": {"secs": "1"}},
        'linux.timeOffsets["boottime"].secs: expected integer, got string',
    ),
    (
        "process.ioPriority",
        {"class": 2, "priority": 0},
        "process.ioPriority.class: expected string, got integer",
    ),
    (
        "root",
        {"path": "r", "readonly": "true"},
        "root.readonly: expected boolean, got string",
    ),
    ("ociVersion", 1, "ociVersion: expected string, got integer"),
]


@pytest.mark.parametrize(("path", "value", "expected"), TYPE_PROBLEMS)
def test_decode_type_problem(path: str, value: object, expected: str) -> None:
    assert problems_of(json.dumps(with_value(path, value))) == [expected]


def test_decode_negative_values_allowed_where_signed() -> None:
    spec = decode(with_value("linux.resources", {"memory": {"limit": -1}}))
    assert spec.linux.resources.memory.limit == -1


REQUIRED_PROBLEMS = [
    ("ociVersion", None, "ociVersion: required field is missing"),
    ("root", {"readonly": True}, "root.path: required field is missing"),
    ("process", {"args": ["sh"]}, "process.cwd: required field is missing"),
    ("process", {"cwd": "/"}, "process.args: required field is missing"),
    ("process.user", {"uid": 0}, "process.user.gid: required field is missing"),
    (
        "mounts",
        [{}, {"type": "tmpfs"}],
        "mounts[0].destination: required field is missing",
    ),
    (
        "linux.namespaces",
        [{"path": "/x"}],
        "linux.namespaces[0].type: required field is missing",
    ),
    (
        "hooks",
        {"poststop": [{"args": []}]},
        "hooks.poststop[0].path: required field is missing",
    ),
    (
        "linux.uidMappings",
        [{"containerID": 0, "size": 1}],
        "linux.uidMappings[0].hostID: required field is missing",
    ),
    (
        "linux.devices",
        [{"path": "/dev/fuse"}],
        "linux.devices[0].type: required field is missing",
    ),
    (
        "process.rlimits",
        [{"type": "RLIMIT_NOFILE", "hard": 1}],
        "process.rlimits[0].soft: required field is missing",
    ),
    (
        "linux.resources",
        {"pids": {}},
        "linux.resources.pids.limit: required field is missing",
    ),
    (
        "linux.seccomp",
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["x"], "action": "A", "args": [{"index": 0, "value": 1}]}
            ],
        },
        "linux.seccomp.syscalls[0].args[0].op: required field is missing",
    ),
]


@pytest.mark.parametrize(("path", "value", "expected"), REQUIRED_PROBLEMS)
def test_decode_required_field_missing(path: str, value: object, expected: str) -> None:
    config = with_value(path, value)
    if value is None:
        del config[path]
    problems = problems_of(json.dumps(config))
    assert expected in problems


def test_decode_reports_every_problem_at_once() -> None:
    config = minimal()
    config["process"]["args"] = ["sh", 1]
    config["mounts"] = [{"destination": "/a"}, {"destination": "/b"}, {"type": "x"}]
    config["linux"]["resources"] = {"memory": {"limit": "1g"}}
    problems = problems_of(json.dumps(config))
    assert problems == [
        "process.args[1]: expected string, got integer",
        "mounts[2].destination: required field is missing",
        "linux.resources.memory.limit: expected integer, got string",
    ]


# --- syntax ------------------------------------------------------------------------


SYNTAX_PROBLEMS = [
    ('{\n  "a": 1\n      "b": 2\n}', "line 3, column 7: expecting ',' delimiter"),
    (
        '{"ociVersion": "1.0.0"} x',
        "line 1, column 25: extra data after the JSON object",
    ),
    (
        '{"ociVersion": "1.0.0"}\n{}',
        "line 2, column 1: extra data after the JSON object",
    ),
    ("", "the file is empty"),
    ("  \n\t", "the file is empty"),
    ("[]", "the top level must be an object, got array"),
    ('"text"', "the top level must be an object, got string"),
    ("null", "the top level must be an object, got null"),
    (
        '{"a": "NaN",\n "b": NaN}',
        "line 2, column 7: invalid number NaN: JSON has no NaN or Infinity",
    ),
    (
        '{"a": -Infinity}',
        "line 1, column 7: invalid number -Infinity: JSON has no NaN or Infinity",
    ),
    (
        '{"a": 1,}',
        "line 1, column 9: expecting property name enclosed in double quotes",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SYNTAX_PROBLEMS)
def test_decode_syntax_problem(text: str, expected: str) -> None:
    assert problems_of(text) == [expected]


def test_decode_error_message_names_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        decode_spec("{} x")
    assert str(info.value) == (
        "invalid config.json: line 1, column 4: extra data after the JSON object"
    )


# --- ociVersion --------------------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    [
        "1.0.0",
        "1.0.2",
        "1.2.0",
        "1.0.2-dev",
        "1.2.0-rc.1",
        "1.3.0+build.5",
        "1.0.0-0.3.7",
    ],
)
def test_oci_version_accepted(version: str) -> None:
    assert decode(with_value("ociVersion", version)).oci_version == version


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("abc", 'ociVersion: "abc" is not a valid SemVer version'),
        ("1.0", 'ociVersion: "1.0" is not a valid SemVer version'),
        ("01.0.0", 'ociVersion: "01.0.0" is not a valid SemVer version'),
        ("1.0.0-01", 'ociVersion: "1.0.0-01" is not a valid SemVer version'),
        ("v1.0.0", 'ociVersion: "v1.0.0" is not a valid SemVer version'),
        ("1.0.0 ", 'ociVersion: "1.0.0 " is not a valid SemVer version'),
        ("", 'ociVersion: "" is not a valid SemVer version'),
        ("2.0.0", 'ociVersion: unsupported version "2.0.0" (pyruntime supports 1.x)'),
        ("0.1.0", 'ociVersion: unsupported version "0.1.0" (pyruntime supports 1.x)'),
    ],
)
def test_oci_version_refused(version: str, expected: str) -> None:
    assert problems_of(json.dumps(with_value("ociVersion", version))) == [expected]


# SemVer 2.0.0 as a regular expression: what semver_major checks by hand.
_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
SEMVER = re.compile(
    rf"(?P<major>{_NUMBER})\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?",
    re.ASCII,
)


def semver_by_regex(version: str) -> int | None:
    match = SEMVER.fullmatch(version)
    return None if match is None else int(match["major"])


def semver_samples() -> list[str]:
    """Hand-picked edge cases, then random strings of SemVer's characters."""
    samples = [
        *("1.0.0", "10.20.30", "0.0.0", "1.0.0-0", "1.0.0-00", "1.0.0-0a"),
        *("1.0.0-a-b", "1.0.0--", "1.0.0-a..b", "1.0.0-.a", "1.0.0-a.", "1.0.0-"),
        *("1.0.0+", "1.0.0+001", "1.0.0+a+b", "1.0.0-a+b.c-d", "1.0.0+-"),
        *("1.0", "1.0.0.0", "1..0", ".1.0.0", "1.0.0 ", " 1.0.0", "1.0.0\n"),
        *("\uff11.0.0", "1.\u0662.0", "1.0.0-\u00e9", "\u00b2.0.0", "01.0.0", "1.00.0"),
    ]
    rng = random.Random(5736)
    alphabet = "0019az.-+-.Z"
    for _ in range(3000):
        samples.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
        head = ".".join(rng.choice(["0", "1", "01", "12"]) for _ in range(3))
        tail = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        samples.append(head + tail)
    return samples


def test_semver_major_agrees_with_the_regex() -> None:
    for version in semver_samples():
        assert semver_major(version) == semver_by_regex(version), version


# --- load_spec ---------------------------------------------------------------------


def test_load_spec_reads_bundle(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(minimal()))
    assert load_spec(str(tmp_path)).process.cwd == "/"


def test_load_spec_missing_config(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_spec(str(tmp_path))
    assert str(info.value) == "JSON specification file config.json not found"
    assert info.value.problems == [
        f"JSON specification file config.json not found: {tmp_path}"
    ]


def test_load_spec_config_is_a_directory(tmp_path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(ConfigError) as info:
        load_spec(str(tmp_path))
    assert info.value.problems == [f"read `{tmp_path}/config.json`: is a directory"]


def test_load_spec_invalid_utf8(tmp_path) -> None:
    (tmp_path / "config.json").write_bytes(b'{"ociVersion": "1.0.0\xff"}')
    with pytest.raises(ConfigError) as info:
        load_spec(str(tmp_path))
    assert info.value.problems == ["byte 21: not valid UTF-8"]


def test_import_spec_stays_light() -> None:
    code = (
        "import sys, pyruntime.spec; "
        "print(sorted({'click', 'psutil', 'ctypes'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- jsontext ----------------------------------------------------------------------


JSON_DOCUMENTS = [
    '{"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"], "b": {}}',
    '  \n\t{"a": 1}\r\n ',
    '{"a": 1, "a": 2, "b": {"c": 3, "c": [4]}}',
    '"\\ud83d\\ude00"',
    "12345678901234567890123",
    "[]",
]


@pytest.mark.parametrize("text", JSON_DOCUMENTS)
def test_jsontext_loads_as_json_does(text: str) -> None:
    assert jsontext.loads(text) == json.loads(text)


def test_duplicate_keys_keep_the_last_value() -> None:
    text = json.dumps(minimal())[:-1] + ', "hostname": "a", "hostname": "b"}'
    assert decode_spec(text).hostname == "b"


@pytest.mark.parametrize(
    "text",
    ["{", "{} x", '{"a": 1,}', '{"a": "\x01"}', "\ufeff{}", '[1, "\\x"]', "tru"],
)
def test_jsontext_errors_are_json_errors(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(jsontext.JSONSyntaxError) as got:
        jsontext.loads(text)
    assert (got.value.msg, got.value.lineno, got.value.colno) == (
        expected.value.msg,
        expected.value.lineno,
        expected.value.colno,
    )


@pytest.mark.parametrize(
    "value", ["plain", 'quo"te', "back\\slash", "tab\t", "\u00e9\U0001f600", None, 3]
)
def test_jsontext_quote_is_json_dumps(value: object) -> None:
    assert jsontext.quote(value) == json.dumps(value)


# --- what the decoder imports ------------------------------------------------------

#: Modules the create path must not import for a valid config: each costs a
#: millisecond or more, and together they are a sixth of a ``create``.
HEAVY_MODULES = (
    "typing",
    "re",
    "json",
    "enum",
    "functools",
    "collections",
    "collections.abc",
    "contextlib",
    "dataclasses",
)


def heavy_imports(code: str, stdin: str = "") -> list[str]:
    """Run ``code`` in a fresh ``python -S``; return the heavy modules it imported.

    ``-S``: no site module, which may import some of them itself (the sealed
    interpreter of ``create`` runs that way). sys.path is this process's.
    """
    script = (
        f"import sys\nsys.path[:] = {sys.path!r}\n{code}\n"
        f"print(sorted(set({HEAVY_MODULES!r}) & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def full_config() -> dict:
    """A valid config that sets a field of every model class."""
    hook = {"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}
    throttle = [{"major": 8, "minor": 0, "rate": 1048576}]
    return {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": True,
            "consoleSize": {"height": 24, "width": 80},
            "user": {"uid": 1, "gid": 1, "umask": 18, "additionalGids": [5]},
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {
                key: ["CAP_KILL"]
                for key in ("bounding", "effective", "inheritable", "permitted")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
            "noNewPrivileges": True,
            "apparmorProfile": "unconfined",
            "oomScoreAdj": 100,
            "selinuxLabel": "system_u:system_r:container_t:s0",
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
            "scheduler": {"policy": "SCHED_RR", "priority": 10, "flags": []},
            "execCPUAffinity": {"initial": "0", "final": "0-1"},
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "full",
        "domainname": "example.org",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/data",
                "type": "bind",
                "source": "/srv",
                "options": ["rbind", "ro"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            },
        ],
        "hooks": {
            key: [hook]
            for key in (
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop",
            )
        },
        "annotations": {"org.example/key": "value"},
        "linux": {
            "namespaces": [
                {"type": kind}
                for kind in ("pid", "network", "ipc", "uts", "mount", "user", "time")
            ],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "timeOffsets": {"monotonic": {"secs": -5, "nanosecs": 9}},
            "devices": [
                {
                    "type": "c",
                    "path": "/dev/fuse",
                    "major": 10,
                    "minor": 229,
                    "fileMode": 438,
                    "uid": 0,
                    "gid": 0,
                }
            ],
            "cgroupsPath": "/pyruntime/full",
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229},
                ],
                "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 1 << 31},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
                "pids": {"limit": 100},
                "blockIO": {
                    "weight": 500,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                    "throttleReadBpsDevice": throttle,
                    "throttleWriteBpsDevice": throttle,
                    "throttleReadIOPSDevice": throttle,
                    "throttleWriteIOPSDevice": throttle,
                },
                "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
                "network": {
                    "classID": 7,
                    "priorities": [{"name": "eth0", "priority": 1}],
                },
                "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 100}},
            },
            "rootfsPropagation": "rslave",
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "mountLabel": "system_u:object_r:container_file_t:s0",
            "sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls": [
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "personality": {"domain": "LINUX"},
            "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"},
            "netDevices": {"eth1": {"name": "ctr0"}},
        },
    }


def test_full_config_is_valid() -> None:
    spec = decode(full_config())
    assert validate_spec(spec) == []
    assert spec.linux.resources.rdma["mlx5_1"].hca_objects == 100


def test_decoding_a_config_imports_nothing_heavy() -> None:
    code = (
        "from pyruntime.spec import decode_spec, validate_spec\n"
        "spec = decode_spec(sys.stdin.read())\n"
        "assert validate_spec(spec) == [], validate_spec(spec)\n"
        "print(spec.hostname)"
    )
    lines = heavy_imports(code, json.dumps(full_config(), indent=4))
    assert lines == ["full", "[]"]
