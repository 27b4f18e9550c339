"""The state directory: one directory per container under ``--root``.

Layout::

    <root>/                 0700, created on first use
    <root>/<id>/            0711, its existence is the container's existence
    <root>/<id>/state.json  0600, written atomically (temp file + rename)
    <root>/<id>/exec.fifo   0600, exists only while the container is "created"

Every command that reads or changes a container takes an exclusive ``flock``
on ``<root>/<id>/`` for its whole duration, so commands on one id run one after
the other. A command that waited for the lock checks that the directory it
locked is still the one at ``<root>/<id>`` (``delete`` may have removed it).

Ids are checked before anything touches the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from pyruntime.errors import (
    ContainerExistsError,
    ContainerNotFoundError,
    InvalidIdError,
    StateCorruptError,
)

STATE_FILE = "state.json"
FIFO_FILE = "exec.fifo"
MAX_ID_LENGTH = 1024
_ID_PATTERN = re.compile(r"[A-Za-z0-9_+.\-]+")


def validate_id(container_id: str) -> None:
    """Refuse ids that could escape the root or confuse a terminal or a file system."""
    reason = None
    if not container_id:
        reason = "it is empty"
    elif container_id in (".", ".."):
        reason = f'"{container_id}" is not a name'
    elif len(container_id) > MAX_ID_LENGTH:
        reason = f"it is longer than {MAX_ID_LENGTH} characters"
    elif "/" in container_id:
        reason = 'it contains "/"'
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in container_id):
        reason = "it contains control characters"
    elif not _ID_PATTERN.fullmatch(container_id):
        reason = "only letters, digits and _ + . - are allowed"
    if reason:
        raise InvalidIdError(f"invalid container ID format: {reason}")


@dataclass
class ContainerState:
    """What pyruntime remembers about one container (the content of state.json)."""

    id: str
    bundle: str
    rootfs: str
    status: str = "creating"
    pid: int = 0
    pid_start: int | None = None
    created: str = ""
    annotations: dict = field(default_factory=dict)
    cgroup_paths: dict = field(default_factory=dict)
    namespaces: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    oci_version: str = ""
    systemd_cgroup: bool = False

    def to_json(self) -> str:
        """Serialise for state.json."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, path: str) -> ContainerState:
        """Parse state.json, raising StateCorruptError for anything unexpected."""
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError) as err:
            raise StateCorruptError(
                f"read state `{path}`: corrupt state file: {err}"
            ) from err


def ensure_root(root: str) -> None:
    """Create the state root with mode 0700 (and tighten it if it exists)."""
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        if stat.S_IMODE(os.stat(root).st_mode) != 0o700:
            os.chmod(root, 0o700)
    except OSError as err:
        raise StateCorruptError(f"create state root `{root}`: {err.strerror}") from err


class ContainerDir:
    """A locked ``<root>/<id>`` directory."""

    def __init__(self, root: str, container_id: str, fd: int) -> None:
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self.fd = fd

    @property
    def state_path(self) -> str:
        """Path of state.json."""
        return os.path.join(self.path, STATE_FILE)

    @property
    def fifo_path(self) -> str:
        """Path of exec.fifo."""
        return os.path.join(self.path, FIFO_FILE)

    def is_locked_elsewhere(self) -> bool:
        """Tell whether another command holds this container's lock."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def load(self) -> ContainerState:
        """Read state.json."""
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError as err:
            raise StateCorruptError(
                f"read state `{self.state_path}`: no state file (half-created "
                "container; `delete --force` removes it)"
            ) from err
        except OSError as err:
            raise StateCorruptError(
                f"read state `{self.state_path}`: {err.strerror}"
            ) from err
        return ContainerState.from_json(text, self.state_path)

    def save(self, state: ContainerState) -> None:
        """Write state.json atomically: temp file, fsync-free rename."""
        tmp = os.path.join(self.path, f".{STATE_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, state.to_json().encode())
        finally:
            os.close(fd)
        os.rename(tmp, self.state_path)

    def fifo_exists(self) -> bool:
        """Tell whether exec.fifo is still there (the container was not started)."""
        return os.path.exists(self.fifo_path)

    def remove(self) -> None:
        """Remove the directory and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        """Release the lock."""
        os.close(self.fd)


def _lock(fd: int, path: str) -> None:
    fcntl.flock(fd, fcntl.LOCK_EX)
    # The directory may have been removed by the command we waited for.
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        raise ContainerNotFoundError()


@contextlib.contextmanager
def open_container(
    root: str, container_id: str, lock: bool = True
) -> Iterator[ContainerDir]:
    """Open an existing container's directory, locked for the whole command.

    Readers (``state``, ``list``, ``kill``) pass ``lock=False``: state.json is
    replaced atomically, so they never see half a file, and they must not wait
    for a ``create`` whose hooks may themselves ask for the state.
    """
    validate_id(container_id)
    path = os.path.join(root, container_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise ContainerNotFoundError() from None
    if lock:
        _lock(fd, path)
    cdir = ContainerDir(root, container_id, fd)
    try:
        yield cdir
    finally:
        cdir.close()


def create_container_dir(root: str, container_id: str) -> ContainerDir:
    """Make and lock ``<root>/<id>``; the caller must close() it."""
    validate_id(container_id)
    ensure_root(root)
    path = os.path.join(root, container_id)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise ContainerExistsError() from None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return ContainerDir(root, container_id, fd)


def list_ids(root: str) -> list[str]:
    """Return the ids of every container directory under ``root``, sorted."""
    try:
        entries = os.scandir(root)
    except FileNotFoundError:
        return []
    with entries:
        return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
