"""Unit tests of the stats document (pyruntime.cgroups.stats) on fake files.

The expected documents follow what runc 1.1.5 prints for ``events --stats``:
field order, the fields it omits when zero, and its units.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pyruntime.cgroups import stats

V1_UNLIMITED = 9223372036854771712


def write_files(directory: Path, files: dict[str, str]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text + "\n")
    return str(directory)


def test_parse_list():
    assert stats.parse_list("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert stats.parse_list("") == [] and stats.parse_list(None) == []


def v1_dirs(tmp_path: Path) -> dict[str, str]:
    ticks = os.sysconf("SC_CLK_TCK")
    cpuacct = {
        "cpuacct.usage": "3000",
        "cpuacct.usage_percpu": "1000 2000",
        "cpuacct.usage_all": "cpu user system\n0 600 400\n1 1500 500",
        "cpuacct.stat": f"user {2 * ticks}\nsystem {ticks}",
    }
    cpu = {"cpu.stat": "nr_periods 4\nnr_throttled 0\nthrottled_time 0"}
    memory = {
        "memory.stat": "rss 10\ncache 20",
        "memory.limit_in_bytes": "67108864",
        "memory.usage_in_bytes": "500",
        "memory.max_usage_in_bytes": "900",
        "memory.failcnt": "0",
        "memory.memsw.limit_in_bytes": str(V1_UNLIMITED),
        "memory.memsw.usage_in_bytes": "500",
        "memory.memsw.max_usage_in_bytes": "0",
        "memory.memsw.failcnt": "0",
    }
    cpuset = {
        "cpuset.cpus": "0-1",
        "cpuset.mems": "0",
        "cpuset.sched_load_balance": "1",
        "cpuset.sched_relax_domain_level": "-1",
    }
    pids = {"pids.current": "3", "pids.max": "max"}
    blkio = {
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n"
        "8:0 Write 0\nTotal 4096",
        "blkio.throttle.io_serviced_recursive": "Total 0",
    }
    return {
        "cpu": write_files(tmp_path / "cpu", cpu),
        "cpuacct": write_files(tmp_path / "cpuacct", cpuacct),
        "memory": write_files(tmp_path / "memory", memory),
        "cpuset": write_files(tmp_path / "cpuset", cpuset),
        "pids": write_files(tmp_path / "pids", pids),
        "blkio": write_files(tmp_path / "blkio", blkio),
        "unified": write_files(
            tmp_path / "unified",
            {"hugetlb.2MB.current": "0", "hugetlb.2MB.events": "max 1"},
        ),
    }


def test_v1_document(tmp_path):
    doc = stats.collect_stats(v1_dirs(tmp_path))
    assert list(doc) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]
    assert doc["cpu"] == {
        "usage": {
            "total": 3000,
            "percpu": [1000, 2000],
            "percpu_kernel": [400, 500],
            "percpu_user": [600, 1500],
            "kernel": 1_000_000_000,
            "user": 2_000_000_000,
        },
        "throttling": {"periods": 4},
    }
    assert doc["cpuset"]["cpus"] == [0, 1] and doc["cpuset"]["mems"] == [0]
    assert doc["cpuset"]["sched_relax_domain_level"] == -1
    assert list(doc["cpuset"])[:3] == ["cpus", "cpu_exclusive", "mems"]
    memory = doc["memory"]
    assert list(memory) == ["cache", "usage", "swap", "kernel", "kernelTCP", "raw"]
    assert memory["usage"] == {
        "limit": 67108864,
        "usage": 500,
        "max": 900,
        "failcnt": 0,
    }
    assert memory["swap"] == {"limit": V1_UNLIMITED, "usage": 500, "failcnt": 0}
    assert memory["kernel"] == {"limit": 0, "failcnt": 0}
    assert list(memory["raw"]) == ["cache", "rss"]
    assert doc["pids"] == {"current": 3}
    assert doc["blkio"] == {
        "ioServiceBytesRecursive": [
            {"major": 8, "op": "Read", "value": 4096},
            {"major": 8, "op": "Write"},
        ]
    }
    # Hybrid host without v1 hugetlb: read from the cgroup2 hierarchy.
    assert doc["hugetlb"] == {"2MB": {"failcnt": 1}}
    assert doc["intel_rdt"] == {} and doc["network_interfaces"] is None
    json.dumps(doc)


def test_v1_missing_controllers_give_zero_parts(tmp_path):
    doc = stats.collect_stats({"pids": str(tmp_path / "gone")})
    assert doc["pids"] == {}
    assert doc["memory"]["usage"] == {"limit": 0, "failcnt": 0}
    assert doc["cpu"] == {"usage": {"kernel": 0, "user": 0}, "throttling": {}}


def test_v2_document(tmp_path):
    unified = write_files(
        tmp_path / "c",
        {
            "cpu.stat": "usage_usec 30\nuser_usec 20\nsystem_usec 10\n"
            "nr_periods 5\nnr_throttled 2\nthrottled_usec 7",
            "cpuset.cpus.effective": "0-1",
            "cpuset.mems.effective": "0",
            "memory.stat": "file 4096\nanon 8192",
            "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1",
            "memory.max": "67108864",
            "memory.current": "1000",
            "memory.swap.max": "max",
            "memory.swap.current": "24",
            "pids.current": "2",
            "pids.max": "10",
            "io.stat": "8:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0",
        },
    )
    doc = stats.collect_stats({"unified": unified})
    assert doc["cpu"] == {
        "usage": {"total": 30000, "kernel": 10000, "user": 20000},
        "throttling": {"periods": 5, "throttledPeriods": 2, "throttledTime": 7000},
    }
    assert doc["cpuset"]["cpus"] == [0, 1] and doc["cpuset"]["mems"] == [0]
    memory = doc["memory"]
    assert memory["cache"] == 4096
    assert memory["usage"] == {"limit": 67108864, "usage": 1000, "failcnt": 3}
    # v1-style memory+swap; an unlimited swap stays unlimited.
    assert memory["swap"] == {"limit": 2**64 - 1, "usage": 1024, "failcnt": 0}
    assert doc["pids"] == {"current": 2, "limit": 10}
    assert doc["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 512},
        {"major": 8, "op": "Write"},
    ]
    assert doc["blkio"]["ioServicedRecursive"][0] == {
        "major": 8,
        "op": "Read",
        "value": 1,
    }
    assert doc["hugetlb"] == {}
