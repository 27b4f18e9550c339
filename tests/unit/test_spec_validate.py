"""Unit tests for pyruntime.spec.validate: one passing and one failing case per rule.

Every case starts from the ``runc spec`` template, changes one thing, decodes
the result for real and compares the exact problems reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pyruntime.errors import ConfigError
from pyruntime.spec import check_spec, decode_spec, validate_spec
from pyruntime.spec.defaults import default_spec
from pyruntime.spec.validate import require_process, sysctl_namespace

Mutation = Callable[[dict], object]


def problems_after(mutate: Mutation, rootless: bool = False) -> list[str]:
    """Apply ``mutate`` to the default config, decode it and validate it."""
    config = default_spec(rootless)
    mutate(config)
    return validate_spec(decode_spec(json.dumps(config)))


def drop_namespace(kind: str) -> Mutation:
    def mutate(config: dict) -> None:
        namespaces = config["linux"]["namespaces"]
        namespaces[:] = [ns for ns in namespaces if ns["type"] != kind]

    return mutate


def add_namespace(kind: str, path: str | None = None) -> Mutation:
    def mutate(config: dict) -> None:
        entry = {"type": kind} if path is None else {"type": kind, "path": path}
        config["linux"]["namespaces"].append(entry)

    return mutate


def put(path: str, value: object) -> Mutation:
    """Set the dotted ``path`` (creating objects on the way) to ``value``."""

    def mutate(config: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(config: dict) -> None:
        for mutation in mutations:
            mutation(config)

    return mutate


def drop(key: str) -> Mutation:
    return lambda config: config.pop(key)


MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]

PASSING = {
    "default": lambda config: None,
    "process-args": put("process.args", ["/bin/true", "x"]),
    "cwd-absolute": put("process.cwd", "/srv"),
    "console-with-terminal": put("process.consoleSize", {"height": 1, "width": 1}),
    "rlimits": put(
        "process.rlimits",
        [
            {"type": "RLIMIT_NOFILE", "hard": 10, "soft": 10},
            {"type": "RLIMIT_CORE", "hard": 10, "soft": 0},
        ],
    ),
    "oom-score-adj": put("process.oomScoreAdj", -1000),
    "mount-absolute": put("mounts", [{"destination": "/data", "type": "tmpfs"}]),
    "hooks": put("hooks.poststart", [{"path": "/bin/hook", "timeout": 1}]),
    "hooks-no-timeout": put("hooks.createRuntime", [{"path": "/bin/hook"}]),
    "all-namespace-types": both(
        add_namespace("user"),
        add_namespace("cgroup"),
        add_namespace("time"),
        put("linux.uidMappings", MAPPING),
        put("linux.gidMappings", MAPPING),
    ),
    "joined-namespace": add_namespace("cgroup", "/proc/1/ns/cgroup"),
    "joined-userns-without-mappings": add_namespace("user", "/proc/1/ns/user"),
    "time-offsets": both(
        add_namespace("time"), put("linux.timeOffsets", {"boottime": {"secs": 1}})
    ),
    "domainname": put("domainname", "example.org"),
    "no-hostname-without-uts": both(drop_namespace("uts"), drop("hostname")),
    "namespaced-sysctls": put(
        "linux.sysctl",
        {
            "net.ipv4.ip_forward": "1",
            "net/core/somaxconn": "256",
            "kernel.shmmax": "1",
            "kernel.msgmax": "1",
            "kernel.sem": "1 2 3 4",
            "fs.mqueue.msg_max": "10",
            "kernel.domainname": "x",
        },
    ),
    "propagation": put("linux.rootfsPropagation", "rslave"),
    "devices": put(
        "linux.devices",
        [
            {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229},
            {"type": "p", "path": "/dev/fifo"},
        ],
    ),
    "masked-paths": put("linux.maskedPaths", ["/proc/kcore"]),
    "seccomp": put(
        "linux.seccomp",
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "x",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
        },
    ),
}


@pytest.mark.parametrize("mutate", PASSING.values(), ids=PASSING.keys())
def test_validate_passes(mutate: Mutation) -> None:
    assert problems_after(mutate) == []


def test_validate_rootless_default_passes() -> None:
    assert problems_after(lambda config: None, rootless=True) == []


FAILING = {
    "no-process": (
        drop("process"),
        ["process: required field is missing (create needs a process to run)"],
    ),
    "empty-args": (put("process.args", []), ["process.args: must not be empty"]),
    "relative-cwd": (
        put("process.cwd", "srv"),
        ['process.cwd: "srv" is not an absolute path'],
    ),
    "empty-cwd": (put("process.cwd", ""), ['process.cwd: "" is not an absolute path']),
    "console-without-terminal": (
        both(
            put("process.terminal", False),
            put("process.consoleSize", {"height": 1, "width": 1}),
        ),
        ["process.consoleSize: set but process.terminal is not true"],
    ),
    "rlimits": (
        put(
            "process.rlimits",
            [
                {"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20},
                {"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1},
                {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1},
            ],
        ),
        [
            "process.rlimits[0]: soft limit 20 is greater than hard limit 10",
            'process.rlimits[1].type: unknown rlimit "RLIMIT_BOGUS"',
            "process.rlimits[2].type: RLIMIT_NOFILE repeats process.rlimits[0]",
        ],
    ),
    "oom-score-adj": (
        put("process.oomScoreAdj", 1001),
        ["process.oomScoreAdj: 1001 is outside -1000..1000"],
    ),
    "no-root": (
        drop("root"),
        ["root: required field is missing (a Linux container needs a rootfs)"],
    ),
    "hostname-without-uts": (
        drop_namespace("uts"),
        ["hostname: unable to set hostname without a private UTS namespace"],
    ),
    "domainname-without-uts": (
        both(drop_namespace("uts"), drop("hostname"), put("domainname", "d")),
        ["domainname: unable to set domainname without a private UTS namespace"],
    ),
    "relative-mount": (
        put("mounts", [{"destination": "/a"}, {"destination": "data"}]),
        ['mounts[1].destination: "data" is not an absolute path'],
    ),
    "hooks": (
        put(
            "hooks",
            {
                "prestart": [{"path": "hook"}],
                "startContainer": [{"path": "/bin/hook", "timeout": 0}],
            },
        ),
        [
            'hooks.prestart[0].path: "hook" is not an absolute path',
            "hooks.startContainer[0].timeout: must be greater than zero, got 0",
        ],
    ),
    "unknown-namespace": (
        add_namespace("bogus"),
        [
            'linux.namespaces[5].type: unknown namespace type "bogus" (expected one '
            "of cgroup, ipc, mount, network, pid, time, user, uts)"
        ],
    ),
    "duplicate-namespace": (
        add_namespace("pid"),
        ["linux.namespaces[5].type: duplicate pid namespace (linux.namespaces[0])"],
    ),
    "relative-namespace-path": (
        add_namespace("cgroup", "proc/1/ns/cgroup"),
        ['linux.namespaces[5].path: "proc/1/ns/cgroup" is not an absolute path'],
    ),
    "mappings-without-userns": (
        both(put("linux.uidMappings", MAPPING), put("linux.gidMappings", MAPPING)),
        [
            "linux.uidMappings: set but linux.namespaces has no user namespace",
            "linux.gidMappings: set but linux.namespaces has no user namespace",
        ],
    ),
    "userns-without-mappings": (
        add_namespace("user"),
        [
            "linux.uidMappings: user namespaces enabled, but no uid mappings found",
            "linux.gidMappings: user namespaces enabled, but no gid mappings found",
        ],
    ),
    "userns-without-root-mapping": (
        both(
            add_namespace("user"),
            both(
                put(
                    "linux.uidMappings", [{"containerID": 1, "hostID": 1000, "size": 9}]
                ),
                put(
                    "linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]
                ),
            ),
        ),
        [
            "linux.uidMappings: user namespaces enabled, but no mapping found for "
            "the container's root (uid 0)",
        ],
    ),
    "time-offsets-without-timens": (
        put("linux.timeOffsets", {"monotonic": {"secs": 1}}),
        ["linux.timeOffsets: set but linux.namespaces has no time namespace"],
    ),
    "time-offsets-joined-timens": (
        both(
            add_namespace("time", "/proc/1/ns/time"),
            put("linux.timeOffsets", {"monotonic": {"secs": 1}}),
        ),
        ["linux.timeOffsets: cannot set offsets of a joined time namespace"],
    ),
    "devices": (
        put(
            "linux.devices",
            [
                {"type": "x", "path": "/dev/x"},
                {"type": "c", "path": "dev/null", "major": 1},
            ],
        ),
        [
            'linux.devices[0].type: unknown device type "x" (expected one of b, c, '
            "p, u)",
            'linux.devices[1].minor: required unless type is "p"',
            'linux.devices[1].path: "dev/null" is not an absolute path',
        ],
    ),
    "propagation": (
        put("linux.rootfsPropagation", "bogus"),
        [
            'linux.rootfsPropagation: unknown propagation "bogus" (expected one of '
            "private, rprivate, rshared, rslave, runbindable, shared, slave, "
            "unbindable)"
        ],
    ),
    "relative-masked-and-readonly-paths": (
        both(put("linux.maskedPaths", ["kcore"]), put("linux.readonlyPaths", ["sys"])),
        [
            'linux.maskedPaths[0]: "kcore" is not an absolute path',
            'linux.readonlyPaths[0]: "sys" is not an absolute path',
        ],
    ),
    "host-sysctl": (
        put("linux.sysctl", {"vm.swappiness": "1"}),
        [
            'linux.sysctl["vm.swappiness"]: sysctl `vm.swappiness` is not in a '
            "separate kernel namespace: it would change the host"
        ],
    ),
    "sysctl-without-its-namespace": (
        both(
            drop_namespace("network"),
            drop_namespace("ipc"),
            put(
                "linux.sysctl",
                {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"},
            ),
        ),
        [
            'linux.sysctl["net.ipv4.ip_forward"]: needs a "network" entry in '
            "linux.namespaces, else it would change the host",
            'linux.sysctl["kernel.shmmax"]: needs a "ipc" entry in '
            "linux.namespaces, else it would change the host",
        ],
    ),
    "seccomp": (
        put(
            "linux.seccomp",
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "listenerMetadata": "x",
                "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}],
            },
        ),
        [
            "linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath",
            "linux.seccomp.syscalls[0].names: must not be empty",
        ],
    ),
}


@pytest.mark.parametrize(("mutate", "expected"), FAILING.values(), ids=FAILING.keys())
def test_validate_fails(mutate: Mutation, expected: list[str]) -> None:
    assert problems_after(mutate) == expected


@pytest.mark.parametrize(
    ("name", "namespace"),
    [
        ("net.ipv4.ip_forward", "network"),
        ("net/ipv6/conf/all/forwarding", "network"),
        ("kernel.msgmnb", "ipc"),
        ("kernel.sem_next_id", "ipc"),
        ("kernel.shm_rmid_forced", "ipc"),
        ("fs.mqueue.queues_max", "ipc"),
        ("kernel.hostname", "uts"),
        ("kernel.pid_max", None),
        ("vm.overcommit_memory", None),
        ("fs.file-max", None),
    ],
)
def test_sysctl_namespace(name: str, namespace: str | None) -> None:
    assert sysctl_namespace(name) == namespace


def test_validate_reports_every_problem_at_once() -> None:
    mutate = both(
        drop("root"), put("process.cwd", "x"), put("linux.rootfsPropagation", "no")
    )
    assert len(problems_after(mutate)) == 3


def test_check_spec_raises_with_every_problem() -> None:
    config = default_spec()
    del config["process"]
    config["hostname"] = "h"
    config["linux"]["namespaces"] = []
    with pytest.raises(ConfigError) as info:
        check_spec(decode_spec(json.dumps(config)))
    assert info.value.problems == [
        "process: required field is missing (create needs a process to run)",
        "hostname: unable to set hostname without a private UTS namespace",
    ]
    assert str(info.value).startswith("invalid config.json (2 problems): process:")


def test_check_spec_accepts_valid_spec() -> None:
    check_spec(decode_spec(json.dumps(default_spec())))


def test_require_process() -> None:
    config = default_spec()
    require_process(decode_spec(json.dumps(config)))
    del config["process"]
    with pytest.raises(ConfigError) as info:
        require_process(decode_spec(json.dumps(config)))
    assert info.value.problems == [
        "process: required field is missing (create needs a process to run)"
    ]
