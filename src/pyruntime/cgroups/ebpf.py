"""The cgroup v2 device filter: an eBPF program built from the device rules.

cgroup v2 has no ``devices.allow``: access to device nodes is decided by
``BPF_PROG_TYPE_CGROUP_DEVICE`` programs attached to the cgroup. The kernel
calls the program on every open (and mknod) of a device node with
``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}``
(``access_type`` = access bits << 16 | device type) and allows the access
when it returns 1.

The program is assembled here, without a compiler. Rules keep their OCI
meaning, "a later rule overrides an earlier one", decided per access bit:
an ``open`` for read and write is allowed only when, for each of ``r`` and
``w``, the last rule that matches the device and names that bit allows it.
For every requested bit the program walks the rules from last to first::

    for bit in (m, r, w) requested:
        for rule in reversed(rules) naming bit:
            if rule matches the device: allowed (next bit) or return 0
        (no rule matched: allowed, like a fresh v1 device cgroup)
    return 1

The program is attached with ``BPF_F_ALLOW_MULTI``: programs attached to the
parents run too, and all must allow. The attachment keeps the program alive
after we exit and goes away with the cgroup.
"""

from __future__ import annotations

import ctypes
import os
import struct

from pyruntime.cgroups.devices import ANY, Rule
from pyruntime.errors import SetupError

# bpf(2) commands, program and attach types, flags (linux/bpf.h).
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
# bpf_cgroup_dev_ctx encodings.
DEV_BLOCK = 1
DEV_CHAR = 2
ACCESS_BITS = (("m", 1), ("r", 2), ("w", 4))
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
LICENSE = b"Apache-2.0"
PROG_NAME = b"pyruntime_dev"
LOG_SIZE = 65536

# Instruction classes and opcodes used below.
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_MOV64_REG = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X
_MOV64_IMM = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_AND64_IMM = 0x57  # BPF_ALU64 | BPF_AND | BPF_K
_RSH64_IMM = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K
_JA = 0x05  # BPF_JMP | BPF_JA
_JNE_IMM = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JSET_IMM = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_EXIT = 0x95  # BPF_JMP | BPF_EXIT

# Registers: r1 = ctx; r2 = device type, r3 = access, r4 = major, r5 = minor.
R0, R1, R2, R3, R4, R5 = range(6)


class _Assembler:
    """Collects instructions with symbolic jump targets, then encodes them."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int | str, int]] = []
        self.labels: dict[str, int] = {}
        self._count = 0

    def emit(self, code: int, dst=0, src=0, off: int | str = 0, imm: int = 0):
        self.insns.append((code, dst, src, off, imm))

    def new_label(self) -> str:
        self._count += 1
        return f"L{self._count}"

    def place(self, label: str) -> None:
        self.labels[label] = len(self.insns)

    def encode(self) -> bytes:
        out = bytearray()
        for index, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - (index + 1)
            out += struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
        return bytes(out)


def _conditions(rule: Rule) -> list[tuple[int, int]]:
    """Return ``(register, value)`` pairs that must all match for ``rule``."""
    conds = []
    if rule.kind in ("b", "c"):
        conds.append((R2, DEV_BLOCK if rule.kind == "b" else DEV_CHAR))
    if rule.major != ANY:
        conds.append((R4, rule.major))
    if rule.minor != ANY:
        conds.append((R5, rule.minor))
    return conds


def _emit_chain(asm: _Assembler, rules: list[Rule], letter: str, done: str) -> None:
    """The decision for one access bit: last matching rule wins."""
    for rule in reversed(rules):
        if letter not in rule.access:
            continue
        conds = _conditions(rule)
        skip = asm.new_label()
        for register, value in conds:
            asm.emit(_JNE_IMM, register, 0, skip, value)
        if rule.allow:
            asm.emit(_JA, off=done)
        else:
            asm.emit(_MOV64_IMM, R0, imm=0)
            asm.emit(_EXIT)
        if not conds:
            return  # matches everything: the rules before it never decide
        asm.place(skip)


def assemble_device_program(rules: list[Rule]) -> bytes:
    """Return the encoded instructions of the filter for ``rules`` (pure)."""
    asm = _Assembler()
    asm.emit(_LDX_W, R2, R1, 0)
    asm.emit(_MOV64_REG, R3, R2)
    asm.emit(_AND64_IMM, R2, imm=0xFFFF)
    asm.emit(_RSH64_IMM, R3, imm=16)
    asm.emit(_LDX_W, R4, R1, 4)
    asm.emit(_LDX_W, R5, R1, 8)
    for letter, bit in ACCESS_BITS:
        if not any(letter in rule.access for rule in rules):
            continue
        done = asm.new_label()
        # Only when the bit is requested: JSET jumps over the "skip" jump.
        asm.emit(_JSET_IMM, R3, 0, 1, bit)
        asm.emit(_JA, off=done)
        _emit_chain(asm, rules, letter, done)
        asm.place(done)
    asm.emit(_MOV64_IMM, R0, imm=1)
    asm.emit(_EXIT)
    return asm.encode()


# ------------------------------------------------------------------ kernel


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _bpf(command: int, attr: ctypes.Array) -> int:
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(38, "bpf(2) number unknown for this architecture")
    result = _libc().syscall(
        ctypes.c_long(number),
        ctypes.c_int(command),
        ctypes.byref(attr),
        ctypes.c_uint(len(attr)),
    )
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def load_program(code: bytes) -> int:
    """Load a cgroup device program; return its fd (SetupError on refusal)."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(LICENSE)
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into(
        "<IIQQIIQII16s",
        attr,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1,  # log_level: the verifier explains a refusal
        LOG_SIZE,
        ctypes.addressof(log),
        0,  # kern_version
        0,  # prog_flags
        PROG_NAME,
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as err:
        lines = log.value.decode(errors="replace").strip().splitlines()
        detail = f" (verifier: {lines[-1]})" if lines else ""
        raise SetupError(
            f"load the cgroup v2 device filter: {os.strerror(err.errno).lower()}"
            f"{detail}"
        ) from err


def attach_program(directory: str, prog_fd: int) -> None:
    """Attach a device program to the cgroup ``directory`` (allow multi)."""
    cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(
            struct.pack(
                "<IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0
            )
        )
        _bpf(BPF_PROG_ATTACH, attr)
    except OSError as err:
        raise SetupError(
            f"attach the device filter to `{directory}`: "
            f"{os.strerror(err.errno).lower()}"
        ) from err
    finally:
        os.close(cgroup_fd)


def install_device_filter(directory: str, rules: list[Rule]) -> None:
    """Build, load and attach the device filter for ``rules`` on ``directory``."""
    prog_fd = load_program(assemble_device_program(rules))
    try:
        attach_program(directory, prog_fd)
    finally:
        os.close(prog_fd)
