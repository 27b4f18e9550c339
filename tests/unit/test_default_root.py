"""The default state root: ``XDG_RUNTIME_DIR`` counts only when it is non-empty.

podman runs the runtime with ``XDG_RUNTIME_DIR=`` (empty) for root and with
the user's runtime directory for rootless containers; runc ignores it for
real root. The euid is faked, so this runs without root.
"""

from __future__ import annotations

import os

import pytest

from pyruntime.cli import main


@pytest.fixture
def euid(monkeypatch):
    def set_euid(value: int) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: value)

    return set_euid


@pytest.mark.parametrize("uid", [0, 1000])
def test_empty_xdg_runtime_dir_is_unset(monkeypatch, euid, uid):
    euid(uid)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    assert main.default_root() == "/run/pyruntime"


def test_missing_xdg_runtime_dir(monkeypatch, euid):
    euid(1000)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert main.default_root() == "/run/pyruntime"


def test_xdg_runtime_dir_for_a_user(monkeypatch, euid):
    euid(1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert main.default_root() == "/run/user/1000/pyruntime"


def test_root_ignores_xdg_runtime_dir(monkeypatch, euid):
    euid(0)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/0")
    assert main.default_root() == "/run/pyruntime"
