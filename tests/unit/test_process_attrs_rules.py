"""Unit tests for pyruntime.spec.process_rules, through validate_spec.

Each case starts from the ``runc spec`` template, sets the process attribute
under test, decodes the result for real and compares the exact problems.
"""

from __future__ import annotations

import json

import pytest

from pyruntime.spec import decode_spec, validate_spec
from pyruntime.spec.defaults import default_spec
from pyruntime.spec.process_rules import parse_id_list, process_problems


def problems_with(section: str, **fields) -> list[str]:
    """Problems of the default config with ``fields`` set in ``section``."""
    config = default_spec(False)
    node = config
    for key in section.split("."):
        node = node.setdefault(key, {})
    node.update(fields)
    return validate_spec(decode_spec(json.dumps(config)))


DEADLINE = {"policy": "SCHED_DEADLINE", "runtime": 2048, "deadline": 4096}

PASSING = {
    "apparmor": ("process", {"apparmorProfile": "docker-default"}),
    "apparmor-empty": ("process", {"apparmorProfile": ""}),
    "selinux": ("process", {"selinuxLabel": "system_u:system_r:container_t:s0"}),
    "selinux-no-level": ("process", {"selinuxLabel": "u:r:t"}),
    "mount-label": ("linux", {"mountLabel": "system_u:object_r:svirt_file_t:s0"}),
    "io-rt": ("process", {"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 0}}),
    "io-idle": (
        "process",
        {"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7}},
    ),
    "sched-other-nice": ("process", {"scheduler": {"policy": "SCHED_OTHER"}}),
    "sched-batch": (
        "process",
        {"scheduler": {"policy": "SCHED_BATCH", "nice": 19, "priority": 0}},
    ),
    "sched-fifo": ("process", {"scheduler": {"policy": "SCHED_FIFO", "priority": 1}}),
    "sched-rr": ("process", {"scheduler": {"policy": "SCHED_RR", "priority": 99}}),
    "sched-idle": ("process", {"scheduler": {"policy": "SCHED_IDLE", "nice": -20}}),
    "sched-iso": ("process", {"scheduler": {"policy": "SCHED_ISO"}}),
    "sched-flags": (
        "process",
        {
            "scheduler": {
                "policy": "SCHED_OTHER",
                "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_KEEP_PARAMS"],
            }
        },
    ),
    "deadline-no-period": ("process", {"scheduler": DEADLINE}),
    "deadline-equal": (
        "process",
        {
            "scheduler": {
                "policy": "SCHED_DEADLINE",
                "runtime": 5000,
                "deadline": 5000,
                "period": 5000,
                "flags": ["SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN"],
            }
        },
    ),
    "affinity": ("process", {"execCPUAffinity": {"initial": "0-3,7", "final": "1"}}),
    "affinity-spaces": ("process", {"execCPUAffinity": {"final": "0, 2-3"}}),
    "personality": ("linux", {"personality": {"domain": "LINUX"}}),
    "personality-32": (
        "linux",
        {"personality": {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}},
    ),
    "mpol-default": ("linux", {"memoryPolicy": {"mode": "MPOL_DEFAULT"}}),
    "mpol-local-empty-nodes": (
        "linux",
        {"memoryPolicy": {"mode": "MPOL_LOCAL", "nodes": ""}},
    ),
    "mpol-preferred-local": ("linux", {"memoryPolicy": {"mode": "MPOL_PREFERRED"}}),
    "mpol-bind": (
        "linux",
        {
            "memoryPolicy": {
                "mode": "MPOL_BIND",
                "nodes": "0-3,7",
                "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_NUMA_BALANCING"],
            }
        },
    ),
    "mpol-interleave-relative": (
        "linux",
        {
            "memoryPolicy": {
                "mode": "MPOL_WEIGHTED_INTERLEAVE",
                "nodes": "0,1",
                "flags": ["MPOL_F_RELATIVE_NODES"],
            }
        },
    ),
}


@pytest.mark.parametrize(("section", "fields"), PASSING.values(), ids=PASSING)
def test_valid_attributes_pass(section: str, fields: dict) -> None:
    assert problems_with(section, **fields) == []


FAILING = {
    "apparmor-newline": (
        "process",
        {"apparmorProfile": "a\nb"},
        ["process.apparmorProfile: must not contain a newline or a NUL character"],
    ),
    "selinux-not-a-context": (
        "process",
        {"selinuxLabel": "container_t"},
        [
            'process.selinuxLabel: "container_t" is not an SELinux context like '
            '"system_u:system_r:container_t:s0"'
        ],
    ),
    "selinux-empty-role": (
        "process",
        {"selinuxLabel": "u::t:s0"},
        [
            'process.selinuxLabel: "u::t:s0" is not an SELinux context like '
            '"system_u:system_r:container_t:s0"'
        ],
    ),
    "mount-label": (
        "linux",
        {"mountLabel": "x"},
        [
            'linux.mountLabel: "x" is not an SELinux context like '
            '"system_u:system_r:container_t:s0"'
        ],
    ),
    "io-class": (
        "process",
        {"ioPriority": {"class": "IOPRIO_CLASS_NONE", "priority": 8}},
        [
            'process.ioPriority.class: unknown class "IOPRIO_CLASS_NONE" (expected '
            "one of IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE, IOPRIO_CLASS_RT)",
            "process.ioPriority.priority: 8 is outside 0..7",
        ],
    ),
    "io-negative": (
        "process",
        {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": -1}},
        ["process.ioPriority.priority: -1 is outside 0..7"],
    ),
    "sched-policy": (
        "process",
        {"scheduler": {"policy": "SCHED_NORMAL", "priority": 5}},
        [
            'process.scheduler.policy: unknown policy "SCHED_NORMAL" (expected one '
            "of SCHED_BATCH, SCHED_DEADLINE, SCHED_FIFO, SCHED_IDLE, SCHED_ISO, "
            "SCHED_OTHER, SCHED_RR)"
        ],
    ),
    "sched-nice": (
        "process",
        {"scheduler": {"policy": "SCHED_OTHER", "nice": 20}},
        ["process.scheduler.nice: 20 is outside -20..19"],
    ),
    "sched-fifo-no-priority": (
        "process",
        {"scheduler": {"policy": "SCHED_FIFO"}},
        [
            "process.scheduler.priority: SCHED_FIFO needs a priority between 1 and 99, "
            "got 0"
        ],
    ),
    "sched-rr-priority-100": (
        "process",
        {"scheduler": {"policy": "SCHED_RR", "priority": 100}},
        [
            "process.scheduler.priority: SCHED_RR needs a priority between 1 and 99, "
            "got 100"
        ],
    ),
    "sched-priority-for-other": (
        "process",
        {"scheduler": {"policy": "SCHED_BATCH", "priority": 3}},
        [
            "process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a "
            "priority (policy is SCHED_BATCH, priority 3)"
        ],
    ),
    "sched-flags": (
        "process",
        {
            "scheduler": {
                "policy": "SCHED_OTHER",
                "flags": ["SCHED_FLAG_BOGUS", "SCHED_FLAG_RECLAIM"],
            }
        },
        [
            'process.scheduler.flags[0]: unknown flag "SCHED_FLAG_BOGUS" (expected '
            "one of SCHED_FLAG_DL_OVERRUN, SCHED_FLAG_KEEP_PARAMS, "
            "SCHED_FLAG_KEEP_POLICY, SCHED_FLAG_RECLAIM, SCHED_FLAG_RESET_ON_FORK, "
            "SCHED_FLAG_UTIL_CLAMP_MAX, SCHED_FLAG_UTIL_CLAMP_MIN)",
            "process.scheduler.flags[1]: SCHED_FLAG_RECLAIM applies only to "
            "SCHED_DEADLINE",
        ],
    ),
    "deadline-params-for-fifo": (
        "process",
        {"scheduler": {"policy": "SCHED_FIFO", "priority": 1, "runtime": 5}},
        [
            "process.scheduler.runtime: applies only to SCHED_DEADLINE "
            "(policy is SCHED_FIFO)"
        ],
    ),
    "deadline-missing": (
        "process",
        {"scheduler": {"policy": "SCHED_DEADLINE"}},
        [
            "process.scheduler.runtime: SCHED_DEADLINE needs a non-zero runtime",
            "process.scheduler.deadline: SCHED_DEADLINE needs a non-zero deadline",
        ],
    ),
    "deadline-zero": (
        "process",
        {"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 0, "deadline": 0}},
        [
            "process.scheduler.runtime: SCHED_DEADLINE needs a non-zero runtime",
            "process.scheduler.deadline: SCHED_DEADLINE needs a non-zero deadline",
        ],
    ),
    "deadline-runtime-too-small": (
        "process",
        {"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1023, "deadline": 9000}},
        ["process.scheduler.runtime: 1023 ns is below the kernel's minimum of 1024 ns"],
    ),
    "deadline-runtime-above-deadline": (
        "process",
        {
            "scheduler": {
                "policy": "SCHED_DEADLINE",
                "runtime": 3000,
                "deadline": 2000,
                "period": 4000,
            }
        },
        [
            "process.scheduler: runtime 3000 is greater than deadline 2000 "
            "(SCHED_DEADLINE needs runtime <= deadline <= period)"
        ],
    ),
    "deadline-above-period": (
        "process",
        {
            "scheduler": {
                "policy": "SCHED_DEADLINE",
                "runtime": 2000,
                "deadline": 5000,
                "period": 4000,
            }
        },
        [
            "process.scheduler: deadline 5000 is greater than period 4000 "
            "(SCHED_DEADLINE needs runtime <= deadline <= period)"
        ],
    ),
    "deadline-top-bit": (
        "process",
        {
            "scheduler": {
                "policy": "SCHED_DEADLINE",
                "runtime": 2000,
                "deadline": 4000,
                "period": 1 << 63,
            }
        },
        ["process.scheduler.period: 9223372036854775808 is not below 2^63"],
    ),
    "affinity": (
        "process",
        {"execCPUAffinity": {"initial": "0-x", "final": "3-1"}},
        [
            'process.execCPUAffinity.initial: "0-x" in "0-x" is not a number or a '
            "range like 0-3",
            'process.execCPUAffinity.final: range "3-1" ends before it starts',
        ],
    ),
    "affinity-empty": (
        "process",
        {"execCPUAffinity": {"final": ""}},
        ['process.execCPUAffinity.final: must name at least one number, like "0-3,7"'],
    ),
    "affinity-huge": (
        "process",
        {"execCPUAffinity": {"final": "0-4000000000"}},
        ['process.execCPUAffinity.final: 4000000000 in "0-4000000000" is above 65535'],
    ),
    "affinity-empty-item": (
        "process",
        {"execCPUAffinity": {"initial": "0,,1"}},
        [
            'process.execCPUAffinity.initial: "" in "0,,1" is not a number or a '
            "range like 0-3"
        ],
    ),
    "personality": (
        "linux",
        {"personality": {"domain": "LINUX64", "flags": ["NO_SUCH_FLAG"]}},
        [
            'linux.personality.domain: unknown domain "LINUX64" (expected one of '
            "LINUX, LINUX32)",
            'linux.personality.flags[0]: unknown flag "NO_SUCH_FLAG" (expected one '
            "of ADDR_COMPAT_LAYOUT, ADDR_LIMIT_32BIT, ADDR_LIMIT_3GB, "
            "ADDR_NO_RANDOMIZE, FDPIC_FUNCPTRS, MMAP_PAGE_ZERO, READ_IMPLIES_EXEC, "
            "SHORT_INODE, STICKY_TIMEOUTS, UNAME26, WHOLE_SECONDS)",
        ],
    ),
    "mpol-mode": (
        "linux",
        {"memoryPolicy": {"mode": "MPOL_FIRST_TOUCH", "nodes": "0"}},
        [
            'linux.memoryPolicy.mode: unknown mode "MPOL_FIRST_TOUCH" (expected one '
            "of MPOL_BIND, MPOL_DEFAULT, MPOL_INTERLEAVE, MPOL_LOCAL, "
            "MPOL_PREFERRED, MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE)"
        ],
    ),
    "mpol-flags": (
        "linux",
        {
            "memoryPolicy": {
                "mode": "MPOL_INTERLEAVE",
                "nodes": "0",
                "flags": [
                    "MPOL_F_STATIC_NODES",
                    "MPOL_F_RELATIVE_NODES",
                    "MPOL_F_NUMA_BALANCING",
                    "MPOL_F_BOGUS",
                ],
            }
        },
        [
            'linux.memoryPolicy.flags[3]: unknown flag "MPOL_F_BOGUS" (expected one '
            "of MPOL_F_NUMA_BALANCING, MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES)",
            "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES "
            "exclude each other",
            "linux.memoryPolicy.flags: MPOL_F_NUMA_BALANCING needs mode MPOL_BIND, "
            "not MPOL_INTERLEAVE",
        ],
    ),
    "mpol-bind-no-nodes": (
        "linux",
        {"memoryPolicy": {"mode": "MPOL_BIND"}},
        ["linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"],
    ),
    "mpol-default-with-nodes": (
        "linux",
        {"memoryPolicy": {"mode": "MPOL_DEFAULT", "nodes": "0"}},
        ['linux.memoryPolicy.nodes: MPOL_DEFAULT takes no nodes, got "0"'],
    ),
    "mpol-local-flags": (
        "linux",
        {"memoryPolicy": {"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]}},
        ["linux.memoryPolicy.flags: MPOL_LOCAL takes no node flags"],
    ),
    "mpol-preferred-flags-no-nodes": (
        "linux",
        {
            "memoryPolicy": {
                "mode": "MPOL_PREFERRED",
                "flags": ["MPOL_F_RELATIVE_NODES"],
            }
        },
        ["linux.memoryPolicy.nodes: node flags need at least one node"],
    ),
    "mpol-bad-nodes": (
        "linux",
        {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-3;7"}},
        [
            'linux.memoryPolicy.nodes: "0-3;7" in "0-3;7" is not a number or a '
            "range like 0-3"
        ],
    ),
    "intel-rdt": (
        "linux",
        {"intelRdt": {"closID": "gold"}},
        ["linux.intelRdt: Intel RDT (resctrl) is not supported by pyruntime"],
    ),
}


@pytest.mark.parametrize(
    ("section", "fields", "expected"), FAILING.values(), ids=FAILING
)
def test_invalid_attributes_fail(section: str, fields: dict, expected) -> None:
    assert problems_with(section, **fields) == expected


def test_deadline_init_cannot_fork_start_container_hooks() -> None:
    config = default_spec(False)
    config["process"]["scheduler"] = DEADLINE
    config["hooks"] = {"startContainer": [{"path": "/bin/hook"}]}
    assert validate_spec(decode_spec(json.dumps(config))) == [
        "process.scheduler: a SCHED_DEADLINE process cannot fork, so "
        "hooks.startContainer cannot run (add SCHED_FLAG_RESET_ON_FORK)"
    ]
    config["process"]["scheduler"] = dict(DEADLINE, flags=["SCHED_FLAG_RESET_ON_FORK"])
    assert validate_spec(decode_spec(json.dumps(config))) == []


def test_process_problems_take_a_path_prefix() -> None:
    """exec --process validates a lone process with its own prefix."""
    spec = decode_spec(
        json.dumps(
            dict(
                default_spec(False),
                process={
                    "args": ["sh"],
                    "cwd": "/",
                    "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9},
                },
            )
        )
    )
    assert process_problems(spec.process, "") == [
        ".ioPriority.priority: 9 is outside 0..7"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", (0,)),
        ("0-3,7", (0, 1, 2, 3, 7)),
        ("7,0-1,1", (0, 1, 7)),
        (" 2 , 4-5 ", (2, 4, 5)),
        ("65535", (65535,)),
    ],
)
def test_parse_id_list(text: str, expected: tuple[int, ...]) -> None:
    assert parse_id_list(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'must name at least one number, like "0-3,7"'),
        ("-1", '"-1" in "-1" is not a number or a range like 0-3'),
        ("1-", '"1-" in "1-" is not a number or a range like 0-3'),
        ("a", '"a" in "a" is not a number or a range like 0-3'),
        ("0-2-4", '"0-2-4" in "0-2-4" is not a number or a range like 0-3'),
        ("5-4", 'range "5-4" ends before it starts'),
        ("65536", '65536 in "65536" is above 65535'),
    ],
)
def test_parse_id_list_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_id_list(text)
    assert str(caught.value) == message
