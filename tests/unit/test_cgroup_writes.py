"""Unit tests of pyruntime.cgroups.writes: OCI resources → cgroup file writes."""

from __future__ import annotations

import pytest

from pyruntime.cgroups import writes
from pyruntime.cgroups.devices import Rule
from pyruntime.errors import ConfigError, UnsupportedError
from tests.unit.test_spec_decode import full_config, heavy_imports


def triples(plan: writes.Plan) -> list[tuple[str, str, str]]:
    return [w.triple() for w in plan.writes]


def find(plan: writes.Plan, filename: str) -> writes.Write:
    matches = [w for w in plan.writes if w.filename == filename]
    assert len(matches) == 1, (filename, triples(plan))
    return matches[0]


# ------------------------------------------------------------------ conversions


@pytest.mark.parametrize(
    ("shares", "weight"),
    [
        (2, 1),
        (1024, 39),
        (512, 20),
        (262144, 10000),
        (1, 1),  # below the v1 minimum: clamped like the kernel does
        (10**9, 10000),  # above the maximum: clamped
    ],
)
def test_shares_to_weight(shares, weight):
    assert writes.shares_to_weight(shares) == weight


@pytest.mark.parametrize(
    ("blkio", "io"),
    [(10, 1), (1000, 10000), (500, 4950), (100, 910), (5, 1)],
)
def test_blkio_weight_to_io_weight(blkio, io):
    assert writes.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize(
    ("swap", "limit", "expected"),
    [
        (None, None, None),
        (0, 1000, None),
        (2000, 1000, 1000),
        (1000, 1000, 0),
        (-1, 1000, -1),
        (None, -1, -1),  # unlimited memory, swap not given: both unlimited
        (-1, -1, -1),
    ],
)
def test_swap_to_v2(swap, limit, expected):
    assert writes.swap_to_v2(swap, limit) == expected


@pytest.mark.parametrize(
    ("swap", "limit", "message"),
    [
        (1000, None, "without a memory limit"),
        (1000, -1, "without a memory limit"),
        (500, 1000, "below memory.limit"),
    ],
)
def test_swap_to_v2_refuses(swap, limit, message):
    with pytest.raises(ConfigError, match=message):
        writes.swap_to_v2(swap, limit)


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [
        (None, None, None),
        (50000, None, "50000 100000"),
        (50000, 20000, "50000 20000"),
        (-1, None, "max 100000"),
        (None, 20000, "max 20000"),
        (-1, 50000, "max 50000"),
    ],
)
def test_cpu_max_value(quota, period, expected):
    assert writes.cpu_max_value(quota, period) == expected


# ------------------------------------------------------------------------- v1

V1_CASES = [
    (
        "memory limit and swap",
        {"memory": {"limit": 1000, "swap": 2000}},
        [
            ("memory", "memory.limit_in_bytes", "1000"),
            ("memory", "memory.memsw.limit_in_bytes", "2000"),
        ],
    ),
    (
        "unlimited memory implies unlimited swap",
        {"memory": {"limit": -1}},
        [
            ("memory", "memory.limit_in_bytes", "-1"),
            ("memory", "memory.memsw.limit_in_bytes", "-1"),
        ],
    ),
    (
        "memory knobs",
        {
            "memory": {
                "reservation": 500,
                "kernel": 700,
                "kernelTCP": 800,
                "swappiness": 0,
                "disableOOMKiller": True,
                "useHierarchy": True,
            }
        },
        [
            ("memory", "memory.soft_limit_in_bytes", "500"),
            ("memory", "memory.kmem.limit_in_bytes", "700"),
            ("memory", "memory.kmem.tcp.limit_in_bytes", "800"),
            ("memory", "memory.swappiness", "0"),
            ("memory", "memory.oom_control", "1"),
            ("memory", "memory.use_hierarchy", "1"),
        ],
    ),
    (
        "zero means unset, disableOOMKiller false writes nothing",
        {"memory": {"limit": 0, "swap": 0, "disableOOMKiller": False}},
        [],
    ),
    (
        "cpu quota period shares",
        {"cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000}},
        [
            ("cpu", "cpu.shares", "512"),
            ("cpu", "cpu.cfs_period_us", "100000"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
            ("cpu", "cpu.cfs_burst_us", "1000"),
        ],
    ),
    (
        "cpu realtime, idle and cpuset",
        {
            "cpu": {
                "realtimePeriod": 1000000,
                "realtimeRuntime": 950,
                "idle": 1,
                "cpus": "0-1",
                "mems": "0",
            }
        },
        [
            ("cpuset", "cpuset.cpus", "0-1"),
            ("cpuset", "cpuset.mems", "0"),
            ("cpu", "cpu.rt_period_us", "1000000"),
            ("cpu", "cpu.rt_runtime_us", "950"),
            ("cpu", "cpu.idle", "1"),
        ],
    ),
    ("pids limit", {"pids": {"limit": 50}}, [("pids", "pids.max", "50")]),
    ("pids unlimited", {"pids": {"limit": -1}}, [("pids", "pids.max", "max")]),
    (
        "blkio",
        {
            "blockIO": {
                "weight": 500,
                "leafWeight": 300,
                "weightDevice": [
                    {"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}
                ],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 200}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}],
            }
        },
        [
            ("blkio", "blkio.weight", "500"),
            ("blkio", "blkio.leaf_weight", "300"),
            ("blkio", "blkio.weight_device", "8:0 600"),
            ("blkio", "blkio.leaf_weight_device", "8:0 200"),
            ("blkio", "blkio.throttle.read_bps_device", "8:0 100"),
            ("blkio", "blkio.throttle.write_bps_device", "8:0 200"),
            ("blkio", "blkio.throttle.read_iops_device", "8:0 10"),
            ("blkio", "blkio.throttle.write_iops_device", "8:0 20"),
        ],
    ),
    (
        "hugetlb",
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]},
        [
            ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
            ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
        ],
    ),
    (
        "network",
        {
            "network": {
                "classID": 1048577,
                "priorities": [{"name": "eth0", "priority": 5}],
            }
        },
        [
            ("net_cls", "net_cls.classid", "1048577"),
            ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ],
    ),
    (
        "rdma",
        {"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}},
        [("rdma", "rdma.max", "mlx5_1 hca_handle=3 hca_object=10000")],
    ),
    (
        "devices: deny all first, then the rules in order",
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "access": "rw"},
                {"allow": False, "type": "b", "major": 8, "minor": 0},
            ]
        },
        [
            ("devices", "devices.deny", "a"),
            ("devices", "devices.deny", "a"),
            ("devices", "devices.allow", "c 1:3 rwm"),
            ("devices", "devices.allow", "c 136:* rw"),
            ("devices", "devices.deny", "b 8:0 rwm"),
        ],
    ),
    ("empty", {}, []),
]


@pytest.mark.parametrize(
    ("resources", "expected"), [c[1:] for c in V1_CASES], ids=[c[0] for c in V1_CASES]
)
def test_plan_v1(resources, expected):
    plan = writes.plan_v1(resources)
    assert triples(plan) == expected
    assert plan.warnings == []
    assert all(w.hierarchy == w.controller for w in plan.writes)


def test_plan_v1_none_is_empty():
    assert triples(writes.plan_v1(None)) == []


def test_plan_v1_refuses_unified():
    with pytest.raises(UnsupportedError, match=r"unified.*pure cgroup v1"):
        writes.plan_v1({"unified": {"memory.high": "1000"}})


def test_plan_v1_blkio_weight_falls_back_to_bfq():
    w = find(writes.plan_v1({"blockIO": {"weight": 500}}), "blkio.weight")
    assert w.alternatives == (("blkio.bfq.weight", "500"),)
    assert w.field == "linux.resources.blockIO.weight"


def test_plan_v1_implied_swap_is_optional_and_asked_swap_is_not():
    implied = find(
        writes.plan_v1({"memory": {"limit": -1}}), "memory.memsw.limit_in_bytes"
    )
    asked = find(
        writes.plan_v1({"memory": {"limit": 10, "swap": 20}}),
        "memory.memsw.limit_in_bytes",
    )
    assert implied.optional and not asked.optional


def test_plan_v1_memory_limit_may_be_retried_after_swap():
    # Raising limit above the current memsw fails with EINVAL until memsw
    # is raised: the limit is written first but may be retried last.
    plan = writes.plan_v1({"memory": {"limit": 10, "swap": 20}})
    assert find(plan, "memory.limit_in_bytes").retry_later


@pytest.mark.parametrize(
    ("memory", "message"),
    [
        ({"swap": 1000}, "cannot set a swap limit without a memory limit"),
        ({"limit": -1, "swap": 1000}, "without a memory limit"),
        ({"limit": 2000, "swap": 1000}, r"memory\+swap \(1000\) is below"),
    ],
)
@pytest.mark.parametrize("plan", [writes.plan_v1, writes.plan_v2])
def test_plans_refuse_impossible_swap_alike(plan, memory, message):
    # v1's kernel would only say EINVAL: both layouts refuse it up front.
    with pytest.raises(ConfigError, match=message):
        plan({"memory": memory})


def test_plan_v1_swap_unlimited_with_a_limit_is_fine():
    plan = writes.plan_v1({"memory": {"limit": 10, "swap": -1}})
    assert find(plan, "memory.memsw.limit_in_bytes").value == "-1"


def test_plan_v1_swappiness_out_of_range():
    with pytest.raises(ConfigError, match="swappiness"):
        writes.plan_v1({"memory": {"swappiness": 101}})


def test_plan_v1_bad_page_size():
    with pytest.raises(ConfigError, match="pageSize"):
        writes.plan_v1({"hugepageLimits": [{"pageSize": "../x", "limit": 1}]})


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"allow": False}, [("devices.deny", "a")]),
        ({"allow": True, "type": "a", "access": "rwm"}, [("devices.allow", "a")]),
        # "a" with limited access or numbers must not become "everything".
        (
            {"allow": False, "access": "w"},
            [("devices.deny", "b *:* w"), ("devices.deny", "c *:* w")],
        ),
        (
            {"allow": True, "type": "a", "major": 1, "minor": -1, "access": "r"},
            [("devices.allow", "b 1:* r"), ("devices.allow", "c 1:* r")],
        ),
        (
            {"allow": True, "type": "c", "major": 5, "minor": 1},
            [("devices.allow", "c 5:1 rwm")],
        ),
    ],
)
def test_device_rule_lines(rule, expected):
    assert writes.device_rule_lines(rule) == expected


# ------------------------------------------------------------------------- v2

V2_CASES = [
    (
        "memory limit, swap converted, reservation",
        {"memory": {"limit": 1000, "swap": 3000, "reservation": 500}},
        [
            ("memory", "memory.max", "1000"),
            ("memory", "memory.swap.max", "2000"),
            ("memory", "memory.low", "500"),
        ],
    ),
    (
        "memory unlimited",
        {"memory": {"limit": -1}},
        [("memory", "memory.max", "max"), ("memory", "memory.swap.max", "max")],
    ),
    (
        "swap unlimited",
        {"memory": {"limit": 1000, "swap": -1}},
        [("memory", "memory.max", "1000"), ("memory", "memory.swap.max", "max")],
    ),
    (
        "cpu shares to weight, quota and period to cpu.max",
        {"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10}},
        [
            ("cpu", "cpu.weight", "39"),
            ("cpu", "cpu.max", "50000 100000"),
            ("cpu", "cpu.max.burst", "10"),
        ],
    ),
    ("cpu quota -1", {"cpu": {"quota": -1}}, [("cpu", "cpu.max", "max 100000")]),
    ("cpu period only", {"cpu": {"period": 50000}}, [("cpu", "cpu.max", "max 50000")]),
    (
        "cpuset and idle",
        {"cpu": {"cpus": "0", "mems": "0", "idle": 1}},
        [
            ("cpuset", "cpuset.cpus", "0"),
            ("cpuset", "cpuset.mems", "0"),
            ("cpu", "cpu.idle", "1"),
        ],
    ),
    ("pids", {"pids": {"limit": 7}}, [("pids", "pids.max", "7")]),
    (
        "io",
        {
            "blockIO": {
                "weight": 500,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}],
            }
        },
        [
            ("io", "io.bfq.weight", "500"),
            ("io", "io.bfq.weight", "8:0 100"),
            ("io", "io.max", "8:0 rbps=100"),
            ("io", "io.max", "8:0 wbps=max"),
            ("io", "io.max", "8:0 riops=10"),
            ("io", "io.max", "8:0 wiops=20"),
        ],
    ),
    (
        "hugetlb with reservations",
        {"hugepageLimits": [{"pageSize": "1GB", "limit": 1073741824}]},
        [
            ("hugetlb", "hugetlb.1GB.max", "1073741824"),
            ("hugetlb", "hugetlb.1GB.rsvd.max", "1073741824"),
        ],
    ),
    (
        "unified last, overriding",
        {
            "memory": {"limit": 1000},
            "unified": {"memory.max": "2000", "cgroup.type": "x"},
        },
        [
            ("memory", "memory.max", "1000"),
            ("memory", "memory.max", "2000"),
            ("cgroup", "cgroup.type", "x"),
        ],
    ),
    ("empty", {}, []),
]


@pytest.mark.parametrize(
    ("resources", "expected"), [c[1:] for c in V2_CASES], ids=[c[0] for c in V2_CASES]
)
def test_plan_v2(resources, expected):
    plan = writes.plan_v2(resources)
    assert triples(plan) == expected
    assert all(w.hierarchy == "unified" for w in plan.writes)


def test_plan_v2_io_weight_alternative_is_converted():
    w = find(writes.plan_v2({"blockIO": {"weight": 500}}), "io.bfq.weight")
    assert w.alternatives == (("io.weight", "4950"),)


def test_plan_v2_implied_swap_is_optional():
    assert find(writes.plan_v2({"memory": {"limit": -1}}), "memory.swap.max").optional


@pytest.mark.parametrize(
    ("resources", "fragment"),
    [
        ({"memory": {"swappiness": 10}}, "memory.swappiness ignored"),
        ({"memory": {"kernel": 100}}, "memory.kernel ignored"),
        ({"memory": {"kernelTCP": 100}}, "memory.kernelTCP ignored"),
        ({"memory": {"disableOOMKiller": True}}, "disableOOMKiller ignored"),
        ({"memory": {"useHierarchy": False}}, "useHierarchy ignored"),
        ({"blockIO": {"leafWeight": 100}}, "leafWeight ignored"),
    ],
)
def test_plan_v2_warns_about_ignored_fields(resources, fragment):
    plan = writes.plan_v2(resources)
    assert plan.writes == []
    assert len(plan.warnings) == 1 and fragment in plan.warnings[0]


def test_plan_v2_devices_become_filter_rules_not_writes():
    plan = writes.plan_v2(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            ]
        }
    )
    assert plan.writes == [] and plan.warnings == []
    assert plan.device_rules == [
        Rule(False, "a", -1, -1, "rwm"),
        Rule(True, "c", 1, 3, "rw"),
    ]
    assert writes.plan_v2({"pids": {"limit": 1}}).device_rules is None


def test_plan_v2_no_warning_for_harmless_defaults():
    plan = writes.plan_v2({"memory": {"useHierarchy": True, "disableOOMKiller": False}})
    assert plan.warnings == [] and plan.writes == []


@pytest.mark.parametrize(
    ("resources", "fragment"),
    [
        ({"cpu": {"realtimeRuntime": 1000}}, "cpu.realtimeRuntime"),
        ({"cpu": {"realtimePeriod": 1000}}, "cpu.realtimePeriod"),
        ({"network": {"classID": 1}}, "network"),
    ],
)
def test_plan_v2_refuses(resources, fragment):
    with pytest.raises(UnsupportedError, match=fragment):
        writes.plan_v2(resources)


def test_plan_v2_check_before_update():
    plan = writes.plan_v2({"memory": {"limit": 1000, "checkBeforeUpdate": True}})
    assert plan.check_memory_limit == 1000
    assert writes.plan_v2({"memory": {"limit": 1000}}).check_memory_limit is None


@pytest.mark.parametrize("key", ["../memory.max", "a/b", ""])
def test_plan_v2_refuses_bad_unified_keys(key):
    with pytest.raises(ConfigError, match="not a cgroup file name"):
        writes.plan_v2({"unified": {key: "1"}})


# --------------------------------------------------------------------- hybrid

HYBRID_V1 = {
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "systemd",
    "unified",
}


def test_plan_hybrid_hugetlb_goes_to_unified_without_v1_hugetlb():
    plan = writes.plan_hybrid(
        {
            "memory": {"limit": 1000},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        },
        HYBRID_V1,
    )
    assert [(w.hierarchy, w.filename) for w in plan.writes] == [
        ("memory", "memory.limit_in_bytes"),
        ("unified", "hugetlb.2MB.max"),
        ("unified", "hugetlb.2MB.rsvd.max"),
    ]


def test_plan_hybrid_hugetlb_stays_in_v1_when_mounted():
    plan = writes.plan_hybrid(
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]},
        HYBRID_V1 | {"hugetlb"},
    )
    assert [(w.hierarchy, w.filename) for w in plan.writes] == [
        ("hugetlb", "hugetlb.2MB.limit_in_bytes"),
        ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes"),
    ]


def test_plan_hybrid_unified_keys_go_to_unified():
    plan = writes.plan_hybrid({"unified": {"hugetlb.2MB.max": "0"}}, HYBRID_V1)
    assert [(w.hierarchy, *w.triple()) for w in plan.writes] == [
        ("unified", "hugetlb", "hugetlb.2MB.max", "0")
    ]


def test_plan_hybrid_uses_v1_forms():
    plan = writes.plan_hybrid(
        {"cpu": {"shares": 1024}, "pids": {"limit": 3}}, HYBRID_V1
    )
    assert triples(plan) == [("cpu", "cpu.shares", "1024"), ("pids", "pids.max", "3")]


def test_unlimited_swap_needs_no_swap_accounting():
    resources = {"memory": {"limit": 1000, "swap": -1}}
    assert find(writes.plan_v1(resources), "memory.memsw.limit_in_bytes").optional
    assert find(writes.plan_v2(resources), "memory.swap.max").optional
    limited = {"memory": {"limit": 1000, "swap": 2000}}
    assert not find(writes.plan_v1(limited), "memory.memsw.limit_in_bytes").optional
    assert not find(writes.plan_v2(limited), "memory.swap.max").optional


# --- what planning and applying import ---------------------------------------------

APPLY_ON_A_FAKE_TREE = """\
import os
from pyruntime.cgroups import Manager, devices, writes

resources = {resources!r}
linux_devices = {linux_devices!r}
effective = devices.with_effective_devices(resources, linux_devices)
writes.plan_hybrid(effective, {{"memory", "cpu", "pids"}})
# cgroup v2 has no network controller: plan_v2 refuses the section.
writes.plan_v2({{k: v for k, v in effective.items() if k != "network"}})
# Stand-in hierarchies: a directory per v1 key, holding every file to write.
dirs = {{}}
for w in writes.plan_v1(effective).writes:
    directory = dirs.setdefault(w.hierarchy, os.path.join({root!r}, w.hierarchy))
    os.makedirs(directory, exist_ok=True)
    open(os.path.join(directory, w.filename), "w").close()
Manager(dirs, mounts={{}}).apply(resources, linux_devices=linux_devices)
with open(os.path.join(dirs["memory"], "memory.limit_in_bytes")) as f:
    print(f.read())
"""


def test_planning_and_applying_limits_import_nothing_heavy(tmp_path) -> None:
    """create's cgroup work (plans, checks, writes) stays off typing, re, json..."""
    linux = full_config()["linux"]
    code = APPLY_ON_A_FAKE_TREE.format(
        resources=linux["resources"], linux_devices=linux["devices"], root=str(tmp_path)
    )
    assert heavy_imports(code) == [str(1 << 30), "[]"]
