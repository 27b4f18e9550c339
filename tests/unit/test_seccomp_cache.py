"""The cache of compiled seccomp programs: keys, file format, trust, misses."""

from __future__ import annotations

import os

import pytest

from pyruntime.security import seccomp, seccomp_cache
from pyruntime.spec.model import Seccomp, Syscall


def plan_of(*names: str, action="SCMP_ACT_ERRNO", **kw) -> seccomp.SeccompPlan:
    rule = Syscall(names=names, action=action, errno_ret=None, args=None)
    config = Seccomp(default_action="SCMP_ACT_ALLOW", syscalls=(rule,), **kw)
    return seccomp.plan_seccomp(config)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(seccomp_cache.ENV_DIR, str(tmp_path / "cache"))
    return tmp_path / "cache" / "seccomp"


def test_key_is_stable_and_names_the_rules():
    key = seccomp_cache.program_key(plan_of("mkdir"))
    assert key == seccomp_cache.program_key(plan_of("mkdir"))
    assert len(key) == 64
    assert key != seccomp_cache.program_key(plan_of("rmdir"))
    assert key != seccomp_cache.program_key(plan_of("mkdir", action="SCMP_ACT_LOG"))
    other_arch = plan_of("mkdir", architectures=("SCMP_ARCH_X86",))
    assert key != seccomp_cache.program_key(other_arch)


def test_key_leaves_out_the_listener_path():
    # The program does not depend on where the agent listens.
    with_listener = plan_of("mkdir", action="SCMP_ACT_NOTIFY", listener_path="/a")
    other_listener = plan_of("mkdir", action="SCMP_ACT_NOTIFY", listener_path="/b")
    assert seccomp_cache.program_key(with_listener) == seccomp_cache.program_key(
        other_listener
    )


def test_no_key_without_libseccomp(monkeypatch):
    monkeypatch.setattr(seccomp_cache, "find_libseccomp", lambda: None)
    assert seccomp_cache.program_key(plan_of("mkdir")) is None


def test_cache_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(seccomp_cache.ENV_DIR, str(tmp_path))
    assert seccomp_cache.cache_dir() == str(tmp_path / "seccomp")
    monkeypatch.setenv(seccomp_cache.ENV_DIR, "")
    assert seccomp_cache.cache_dir() is None
    monkeypatch.delenv(seccomp_cache.ENV_DIR)
    expected = "/var/cache/pyruntime/seccomp" if os.geteuid() == 0 else None
    if expected:
        assert seccomp_cache.cache_dir() == expected


def test_file_format_round_trip():
    plan = plan_of("mkdir")
    program = seccomp.SeccompProgram(
        bpf=b"\x06\x00\x00\x00\x00\x00\xff\x7f", flags=0, notify=False,
        skipped=("no_such_call",),
    )  # fmt: skip
    data = seccomp_cache.format_program(program)
    assert data.startswith(seccomp_cache.MAGIC)
    again = seccomp_cache.parse_program(data, plan)
    assert again.bpf == program.bpf
    assert again.skipped == ("no_such_call",)
    assert again.flags == seccomp.effective_flags(plan)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"something else\nskipped\n12345678",
        seccomp_cache.MAGIC + b"skipped\n",  # no program
        seccomp_cache.MAGIC + b"skipped\n1234567",  # not whole instructions
        seccomp_cache.MAGIC + b"names\n12345678",
        seccomp_cache.MAGIC + b"skipped",
    ],
)
def test_damaged_files_are_not_programs(data):
    assert seccomp_cache.parse_program(data, plan_of("mkdir")) is None


def test_compile_stores_then_reads(cache, monkeypatch):
    plan = plan_of("mkdir")
    first = seccomp_cache.compile_with_cache(plan)
    (entry,) = cache.iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700

    def no_compiling(_plan):
        raise AssertionError("compiled although cached")

    monkeypatch.setattr(seccomp, "compile_seccomp", no_compiling)
    second = seccomp_cache.compile_with_cache(plan)
    assert second == first


def test_untrusted_directory_is_compiled_around(cache, monkeypatch):
    plan = plan_of("mkdir")
    seccomp_cache.compile_with_cache(plan)
    cache.chmod(0o733)
    calls = []
    real = seccomp.compile_seccomp
    monkeypatch.setattr(
        seccomp, "compile_seccomp", lambda p: calls.append(p) or real(p)
    )
    seccomp_cache.compile_with_cache(plan)
    assert calls == [plan]
    # Nor is anything written there.
    assert len(list(cache.iterdir())) == 1


def test_symlinked_file_is_not_followed(cache, tmp_path, monkeypatch):
    plan = plan_of("mkdir")
    seccomp_cache.compile_with_cache(plan)
    (entry,) = cache.iterdir()
    elsewhere = tmp_path / "elsewhere.bpf"
    elsewhere.write_bytes(entry.read_bytes())
    entry.unlink()
    entry.symlink_to(elsewhere)
    assert seccomp_cache.read_program(str(entry), plan) is None


def test_unwritable_cache_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(seccomp_cache.ENV_DIR, str(blocker))
    program = seccomp_cache.compile_with_cache(plan_of("mkdir"))
    assert program.bpf


def test_cache_directories_are_private_whatever_the_umask(cache):
    old = os.umask(0)
    try:
        seccomp_cache.compile_with_cache(plan_of("mkdir"))
    finally:
        os.umask(old)
    assert cache.stat().st_mode & 0o777 == 0o700
    assert cache.parent.stat().st_mode & 0o777 == 0o700
    assert len(list(cache.iterdir())) == 1
