"""Container ids, the state file and the status model, without containers."""

from __future__ import annotations

import os

import pytest

from pyruntime.errors import (
    ContainerExistsError,
    ContainerNotFoundError,
    InvalidIdError,
    StateCorruptError,
)
from pyruntime.state import status as st
from pyruntime.state.store import (
    ContainerState,
    create_container_dir,
    list_ids,
    open_container,
    validate_id,
)


@pytest.mark.parametrize("good", ["a", "c1", "A.b_c+d-e", "x" * 255, "..."])
def test_valid_ids(good):
    validate_id(good)


@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "a/b", "../x", "a\nb", "a\x1bb", "x" * 256, "a b", "a:b", "é"],
)
def test_invalid_ids(bad):
    with pytest.raises(InvalidIdError, match="invalid container ID format"):
        validate_id(bad)


def test_create_dir_is_exclusive_and_private(tmp_path):
    root = str(tmp_path / "root")
    cdir = create_container_dir(root, "c1")
    try:
        assert os.stat(root).st_mode & 0o777 == 0o700
        with pytest.raises(ContainerExistsError):
            create_container_dir(root, "c1")
    finally:
        cdir.close()
    assert list_ids(root) == ["c1"]


def test_state_round_trip_and_atomic_file(tmp_path):
    root = str(tmp_path)
    cdir = create_container_dir(root, "c1")
    state = ContainerState(
        id="c1",
        bundle="/b",
        rootfs="/b/rootfs",
        pid=1,
        pid_start=5,
        annotations={"k": "v"},
    )
    cdir.save(state)
    assert os.stat(cdir.state_path).st_mode & 0o777 == 0o600
    assert cdir.load() == state
    assert os.listdir(cdir.path) == ["state.json"]
    cdir.close()


@pytest.mark.parametrize("content", ["", "{", "[]", '{"id": 1, "x": 2}', "\x00"])
def test_corrupt_state_is_a_clear_error(tmp_path, content):
    cdir = create_container_dir(str(tmp_path), "c1")
    with open(cdir.state_path, "w") as handle:
        handle.write(content)
    with pytest.raises(StateCorruptError, match="corrupt state file"):
        cdir.load()
    cdir.close()


def test_missing_container(tmp_path):
    with pytest.raises(ContainerNotFoundError), open_container(str(tmp_path), "nope"):
        pass


def test_lock_notices_removed_directory(tmp_path):
    cdir = create_container_dir(str(tmp_path), "c1")
    cdir.remove()
    cdir.close()
    with pytest.raises(ContainerNotFoundError), open_container(str(tmp_path), "c1"):
        pass


def test_status_of_dead_init_is_stopped(tmp_path):
    cdir = create_container_dir(str(tmp_path), "c1")
    state = ContainerState(
        id="c1",
        bundle="/b",
        rootfs="/r",
        status="created",
        pid=os.getpid(),
        pid_start=1,
    )
    # A pid whose start time differs is a reused pid: the container is stopped.
    assert st.current_status(cdir, state) == st.STOPPED
    state.pid_start = None
    state.status = "running"
    assert st.current_status(cdir, state) == st.RUNNING
    cdir.close()
