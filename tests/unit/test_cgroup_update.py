"""Unit tests of ``update``'s parsing and merging (pyruntime.cgroups.update)."""

from __future__ import annotations

import json

import pytest

from pyruntime.cgroups import update
from pyruntime.errors import ConfigError, UsageError

MIB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1", -1),
        ("0", 0),
        ("1024", 1024),
        ("128M", 128 * MIB),
        ("128m", 128 * MIB),
        ("128MiB", 128 * MIB),
        ("128mb", 128 * MIB),
        ("64 k", 64 * 1024),
        ("1.5g", 1610612736),
        ("2T", 2 << 40),
        ("1p", 1 << 50),
        ("10b", 10),
    ],
)
def test_parse_memory_size(text, expected):
    assert update.parse_memory_size(text) == expected


@pytest.mark.parametrize("text", ["12x", "-5", "", "M", "1.2.3", "1e6", " 5"])
def test_parse_memory_size_refuses(text):
    with pytest.raises(ValueError, match=r"^invalid size: '"):
        update.parse_memory_size(text)


def test_flags_become_a_change():
    change = update.resources_from_flags(
        {
            "memory": "128M",
            "memory-swap": "-1",
            "memory-reservation": None,
            "cpu-quota": "-1",
            "cpu-period": "50000",
            "cpu-share": "512",
            "cpuset-cpus": "0-1",
            "cpu-idle": "1",
            "pids-limit": "50",
            "blkio-weight": "300",
            "cpu-rt-runtime": "950",
        }
    )
    assert change == {
        "memory": {"limit": 128 * MIB, "swap": -1},
        "cpu": {
            "quota": -1,
            "period": 50000,
            "shares": 512,
            "cpus": "0-1",
            "idle": 1,
            "realtimeRuntime": 950,
        },
        "pids": {"limit": 50},
        "blockIO": {"weight": 300},
    }


def test_flags_zero_means_not_given_where_runc_says_so():
    change = update.resources_from_flags(
        {"pids-limit": "0", "blkio-weight": "0", "cpuset-cpus": "", "cpu-quota": "0"}
    )
    assert change == {"cpu": {"quota": 0}}


@pytest.mark.parametrize(
    ("flag", "text", "message"),
    [
        ("memory", "12x", "invalid value for memory: invalid size: '12x'"),
        ("cpu-quota", "abc", "invalid value for cpu-quota: `abc` is not an integer"),
        ("cpu-period", "-5", "invalid value for cpu-period: `-5` is negative"),
        ("pids-limit", "1.5", "invalid value for pids-limit: `1.5` is not an integer"),
    ],
)
def test_flags_refuse_bad_values(flag, text, message):
    with pytest.raises(UsageError) as err:
        update.resources_from_flags({flag: text})
    assert str(err.value) == message


def test_pids_limit_minus_one_is_kept():
    assert update.resources_from_flags({"pids-limit": "-1"}) == {"pids": {"limit": -1}}


# ------------------------------------------------------------------- JSON


def test_parse_resources_json_keeps_known_sections():
    text = json.dumps(
        {
            "memory": {"limit": 64 * MIB, "swap": None, "checkBeforeUpdate": True},
            "cpu": {"quota": 20000, "cpus": "0"},
            "pids": {"limit": 0},
            "blockIO": {"weight": 100},
            "unified": {"memory.high": "1000000"},
            "devices": [{"allow": True}],
            "hugepageLimits": [],
        }
    )
    change, ignored = update.parse_resources_json(text, "stdin")
    assert change == {
        "memory": {"limit": 64 * MIB, "checkBeforeUpdate": True},
        "cpu": {"quota": 20000, "cpus": "0"},
        "blockIO": {"weight": 100},
        "unified": {"memory.high": "1000000"},
    }
    assert ignored == ["devices"]


def test_parse_resources_json_skips_unknown_fields():
    change, ignored = update.parse_resources_json(
        '{"cpu": {"quota": 1, "future": 5}}', "stdin"
    )
    assert change == {"cpu": {"quota": 1}}
    assert ignored == ["cpu.future"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"memory": 5}', "memory: expected an object"),
        ('{"memory": {"limit": "1G"}}', 'memory.limit: expected an integer, got "1G"'),
        ('{"cpu": {"cpus": 1}}', "cpu.cpus: expected a string, got 1"),
        ('{"memory": {"limit": true}}', "memory.limit: expected an integer"),
        ('{"unified": {"memory.high": 5}}', "unified.memory.high: expected a string"),
    ],
)
def test_parse_resources_json_refuses(text, fragment):
    with pytest.raises(ConfigError) as err:
        update.parse_resources_json(text, "resources (stdin)")
    assert str(err.value).startswith("invalid resources (stdin)")
    assert fragment in str(err.value)


# ------------------------------------------------------------------ merge

SAVED = {
    "memory": {"limit": 64 * MIB, "swap": 128 * MIB},
    "cpu": {"quota": 50000, "period": 100000, "shares": 1024},
    "devices": [{"allow": False, "access": "rwm"}],
    "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
}


def test_merge_keeps_partners_and_untouched_sections():
    merged = update.merge_resources(SAVED, {"cpu": {"quota": 20000}})
    assert merged["cpu"] == {"quota": 20000, "period": 100000, "shares": 1024}
    assert merged["memory"] == SAVED["memory"]
    assert merged["devices"] == SAVED["devices"]
    assert merged["hugepageLimits"] == SAVED["hugepageLimits"]
    assert SAVED["cpu"]["quota"] == 50000, "the saved dict must not change"


def test_merge_unlimited_memory_makes_swap_unlimited():
    merged = update.merge_resources(SAVED, {"memory": {"limit": -1}})
    assert merged["memory"] == {"limit": -1, "swap": -1}
    merged = update.merge_resources(SAVED, {"memory": {"limit": -1, "swap": 5}})
    assert merged["memory"] == {"limit": -1, "swap": 5}


def test_merge_into_nothing_and_unified():
    merged = update.merge_resources(None, {"pids": {"limit": 5}})
    assert merged == {"pids": {"limit": 5}}
    merged = update.merge_resources(
        {"unified": {"a.b": "1", "c.d": "2"}}, {"unified": {"a.b": "3"}}
    )
    assert merged["unified"] == {"a.b": "3", "c.d": "2"}


def test_changed_sections_are_whole_merged_sections():
    change = {"cpu": {"period": 50000}}
    merged = update.merge_resources(SAVED, change)
    assert update.changed_sections(merged, change) == {
        "cpu": {"quota": 50000, "period": 50000, "shares": 1024}
    }
    assert update.changed_sections(merged, {}) == {}
