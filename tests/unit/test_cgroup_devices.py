"""Unit tests of the device allow list and of the cgroup v2 eBPF filter.

The assembled program is run here by a small interpreter of the handful of
instructions it uses, so its decisions are checked without a kernel (the
kernel tests load and attach it for real).
"""

from __future__ import annotations

import struct

import pytest

from pyruntime.cgroups import devices, ebpf
from pyruntime.cgroups.devices import DEFAULT_ALLOWED, Rule

MASK64 = (1 << 64) - 1
BLOCK, CHAR = ebpf.DEV_BLOCK, ebpf.DEV_CHAR
M, R, W = 1, 2, 4


def run_program(code: bytes, kind: int, access: int, major: int, minor: int) -> int:
    """Interpret the filter for one access; return what it returns."""
    assert len(code) % 8 == 0
    insns = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]
    ctx = struct.pack("<III", (access << 16) | kind, major, minor)
    regs = [0] * 11
    pc = 0
    for _ in range(10000):
        op, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if op == 0x61:
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0xBF:
            regs[dst] = regs[src]
        elif op == 0xB7:
            regs[dst] = imm & MASK64
        elif op == 0x57:
            regs[dst] &= imm & MASK64
        elif op == 0x77:
            regs[dst] >>= imm
        elif op == 0x05:
            pc += off
        elif op == 0x55:
            pc += off if regs[dst] != imm & MASK64 else 0
        elif op == 0x45:
            pc += off if regs[dst] & imm else 0
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
        assert 0 <= pc < len(insns), "jump out of the program"
    raise AssertionError("program does not terminate")


def decide(rules: list[Rule], kind: int, access: int, major: int, minor: int) -> bool:
    code = ebpf.assemble_device_program(rules)
    return run_program(code, kind, access, major, minor) == 1


# ----------------------------------------------------------------- rules


def test_rule_of_fills_wildcards_and_orders_access():
    assert devices.rule_of({"allow": False}) == Rule(False, "a", -1, -1, "rwm")
    assert devices.rule_of(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"}
    ) == Rule(True, "c", 1, 3, "rw")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"allow": False, "type": "q"}, r"devices\[1\]\.type: `q` is not one of"),
        ({"allow": True, "access": "rx"}, r"devices\[1\]\.access: `rx` is not"),
    ],
)
def test_effective_rules_refuse_unknown_type_or_access(entry, message):
    from pyruntime.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        devices.effective_rules([{"allow": False}, entry])


def test_effective_rules_append_defaults_and_nodes():
    nodes = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
        {"path": "/dev/fifo", "type": "p"},
    ]
    rules = devices.effective_rules([{"allow": False, "access": "rwm"}], nodes)
    assert rules[0] == Rule(False)
    assert rules[1 : 1 + len(DEFAULT_ALLOWED)] == list(DEFAULT_ALLOWED)
    assert rules[1 + len(DEFAULT_ALLOWED) :] == [
        Rule(True, "c", 10, 229),
        Rule(True, "b", 8, 0),
    ]


def test_no_rules_means_no_restriction():
    assert devices.effective_rules(None, [{"type": "c", "major": 1, "minor": 1}]) == []
    assert devices.with_effective_devices({"pids": {"limit": 3}}) == {
        "pids": {"limit": 3}
    }


def test_with_effective_devices_copies_and_can_skip():
    resources = {"devices": [{"allow": False}], "pids": {"limit": 3}}
    expanded = devices.with_effective_devices(resources)
    assert len(expanded["devices"]) == 1 + len(DEFAULT_ALLOWED)
    assert expanded["devices"][1] == {
        "allow": True,
        "type": "c",
        "major": -1,
        "minor": -1,
        "access": "m",
    }
    assert resources["devices"] == [{"allow": False}]
    assert devices.with_effective_devices(resources, skip=True) == {
        "pids": {"limit": 3}
    }


# ----------------------------------------------------------------- eBPF

DENY_ALL_THEN_DEFAULTS = devices.effective_rules([{"allow": False, "access": "rwm"}])


@pytest.mark.parametrize(
    ("kind", "access", "major", "minor", "allowed"),
    [
        (CHAR, R | W, 1, 3, True),  # /dev/null
        (CHAR, R, 1, 5, True),  # /dev/zero
        (CHAR, R | W, 136, 7, True),  # a pty slave
        (CHAR, R, 1, 11, False),  # /dev/kmsg
        (BLOCK, R, 8, 0, False),  # a disk
        (BLOCK, M, 8, 0, True),  # mknod is allowed for any node
        (CHAR, M | R, 4, 1, False),  # mknod + read of a tty: read denied
    ],
)
def test_filter_default_allow_list(kind, access, major, minor, allowed):
    assert decide(DENY_ALL_THEN_DEFAULTS, kind, access, major, minor) is allowed


def test_filter_without_rules_allows_everything():
    assert decide([], BLOCK, R | W, 8, 0)


def test_filter_last_matching_rule_wins():
    rules = [
        Rule(True, "a"),
        Rule(False, "c", 1, 3, "w"),
        Rule(True, "c", 1, -1, "w"),
        Rule(False, "c", 1, 9, "rwm"),
    ]
    assert decide(rules, CHAR, W, 1, 3)  # re-allowed by the wildcard minor
    assert not decide(rules, CHAR, R, 1, 9)  # the last rule denies it
    assert decide(rules, BLOCK, R, 1, 9)  # a "c" rule ignores block devices


def test_filter_decides_each_access_bit():
    # Read and write allowed by two rules: an open for both passes.
    rules = [Rule(False), Rule(True, "c", 1, 3, "r"), Rule(True, "c", 1, 3, "w")]
    assert decide(rules, CHAR, R | W, 1, 3)
    assert not decide(rules, CHAR, R | W, 1, 5)
    # A deny of one bit blocks an access asking for it, not the others.
    rules = [Rule(True), Rule(False, "c", 1, 3, "w")]
    assert not decide(rules, CHAR, R | W, 1, 3)
    assert decide(rules, CHAR, R, 1, 3)


def test_filter_type_a_with_numbers_matches_both_kinds():
    rules = [Rule(False), Rule(True, "a", 8, -1, "r")]
    assert decide(rules, BLOCK, R, 8, 3)
    assert decide(rules, CHAR, R, 8, 3)
    assert not decide(rules, BLOCK, W, 8, 3)


def test_filter_stops_at_a_rule_matching_everything():
    # Rules before a catch-all never decide: the program must not contain
    # them (the verifier refuses unreachable instructions).
    short = ebpf.assemble_device_program([Rule(False)])
    longer = ebpf.assemble_device_program([Rule(True, "c", 1, 3), Rule(False)])
    assert len(short) == len(longer)
