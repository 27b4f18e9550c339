"""The state directory: one directory per container under ``--root``.

Layout::

    <root>/                 0700, created on first use
    <root>/<id>/            0711, its existence is the container's existence
    <root>/<id>/state.json  0600, written atomically (temp file + rename)
    <root>/<id>/exec.fifo   0600, exists only while the container is "created"
    <root>/<id>/cleanup.json  0600, what ``delete --force`` must undo (cgroup
                            paths, init pid): a second, tiny copy, so that a
                            corrupt state.json never hides a cgroup or a process

Every command that reads or changes a container takes an exclusive ``flock``
on ``<root>/<id>/`` for its whole duration, so commands on one id run one after
the other. A command that waited for the lock checks that the directory it
locked is still the one at ``<root>/<id>`` (``delete`` may have removed it).

Ids are checked before anything touches the disk. A missing state.json in a
directory that another command holds locked (a ``create`` before its first
save, a ``delete`` half-way through) means "no such container" to readers
that do not lock; an unlocked directory without state.json is a leftover of a
killed ``create``.

Every command imports this module, ``state``, ``kill``, ``start`` and
``delete`` among them, whose whole run should cost little more than the
interpreter's start-up: it imports nothing heavier than :mod:`fcntl` (no
:mod:`json`, :mod:`re`, :mod:`dataclasses`, :mod:`shutil` or
:mod:`contextlib`).
"""

from __future__ import annotations

import fcntl
import os
import stat

from pyruntime.errors import (
    ContainerExistsError,
    ContainerNotFoundError,
    InvalidIdError,
    StateCorruptError,
    describe_oserror,
)
from pyruntime.state import jsonio

STATE_FILE = "state.json"
FIFO_FILE = "exec.fifo"
CLEANUP_FILE = "cleanup.json"
#: An id is a directory name (and a cgroup directory name): NAME_MAX bytes.
MAX_ID_LENGTH = 255
_ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-"
)


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
    elif not _ID_CHARS.issuperset(container_id):
        reason = "only letters, digits and _ + . - are allowed"
    if reason:
        raise InvalidIdError(f"invalid container ID format: {reason}")


#: The fields of state.json, in the order they are written.
_FIELDS = (
    "id",
    "bundle",
    "rootfs",
    "status",
    "pid",
    "pid_start",
    "created",
    "annotations",
    "cgroup_paths",
    "cgroup_created",
    "namespaces",
    "config",
    "oci_version",
    "systemd_cgroup",
)


class ContainerState:
    """What pyruntime remembers about one container (the content of state.json).

    A plain class rather than a dataclass: :mod:`dataclasses` alone costs more
    to import than a whole ``state`` command may take.
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        id: str,
        bundle: str,
        rootfs: str,
        status: str = "creating",
        pid: int = 0,
        pid_start: int | None = None,
        created: str = "",
        annotations: dict | None = None,
        cgroup_paths: dict | None = None,
        cgroup_created: list | None = None,
        namespaces: dict | None = None,
        config: dict | None = None,
        oci_version: str = "",
        systemd_cgroup: bool = False,
    ) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.status = status
        self.pid = pid
        self.pid_start = pid_start
        self.created = created
        self.annotations = {} if annotations is None else annotations
        self.cgroup_paths = {} if cgroup_paths is None else cgroup_paths
        #: The cgroup directories create made (parents included), to remove.
        self.cgroup_created = [] if cgroup_created is None else cgroup_created
        self.namespaces = {} if namespaces is None else namespaces
        self.config = {} if config is None else config
        self.oci_version = oci_version
        self.systemd_cgroup = systemd_cgroup

    def as_dict(self) -> dict:
        """The fields as a dict, in state.json's order."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"ContainerState({fields})"

    def to_json(self) -> str:
        """Serialise for state.json."""
        return jsonio.dumps(self.as_dict())

    @classmethod
    def from_json(cls, text: str, path: str) -> ContainerState:
        """Parse state.json, raising StateCorruptError for anything unexpected."""
        try:
            data = jsonio.loads(text)
            if type(data) is not dict:
                raise ValueError(f"expected an object, got {type(data).__name__}")
            state = cls(**data)
            # An explicit null is as wrong as any other type: check what the
            # file holds, not the empty dicts the constructor puts for None.
            check_field_types(data)
        except (ValueError, TypeError) as err:
            raise StateCorruptError(
                f"read state `{path}`: corrupt state file: {err}"
            ) from err
        return state


#: The JSON types each state.json field may hold (``int | None``: ``pid_start``).
_FIELD_TYPES = {
    "id": (str,),
    "bundle": (str,),
    "rootfs": (str,),
    "status": (str,),
    "pid": (int,),
    "pid_start": (int, type(None)),
    "created": (str,),
    "annotations": (dict,),
    "cgroup_paths": (dict,),
    "cgroup_created": (list,),
    "namespaces": (dict,),
    "config": (dict,),
    "oci_version": (str,),
    "systemd_cgroup": (bool,),
}


def check_field_types(fields: dict) -> None:
    """Refuse state.json fields of the wrong JSON types (ValueError)."""
    for name, value in fields.items():
        # type() rather than isinstance(): true is not a pid.
        if type(value) not in _FIELD_TYPES[name]:
            raise ValueError(f"`{name}` has the wrong type ({type(value).__name__})")


def ensure_root(root: str) -> None:
    """Create the state root with mode 0700 (and tighten it if it exists)."""
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        if stat.S_IMODE(os.stat(root).st_mode) != 0o700:
            os.chmod(root, 0o700)
    except OSError as err:
        raise StateCorruptError(f"create state root `{root}`: {err.strerror}") from err


class ContainerDir:
    """A ``<root>/<id>`` directory, locked by this command or (readers) not."""

    def __init__(
        self, root: str, container_id: str, fd: int, locked: bool = True
    ) -> None:
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self.fd = fd
        self.locked = locked

    @property
    def state_path(self) -> str:
        """Path of state.json."""
        return os.path.join(self.path, STATE_FILE)

    @property
    def fifo_path(self) -> str:
        """Path of exec.fifo."""
        return os.path.join(self.path, FIFO_FILE)

    @property
    def cleanup_path(self) -> str:
        """Path of cleanup.json."""
        return os.path.join(self.path, CLEANUP_FILE)

    def is_locked_elsewhere(self) -> bool:
        """Tell whether another command holds this container's lock.

        Only for a directory opened without the lock: probing our own lock
        with flock would release it.
        """
        if self.locked:
            return False
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def is_removed(self) -> bool:
        """Tell whether the directory was unlinked since we opened it."""
        return os.fstat(self.fd).st_nlink == 0

    def load(self) -> ContainerState:
        """Read state.json."""
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError as err:
            if self.is_removed() or self.is_locked_elsewhere():
                # Being created (before its first save) or being deleted.
                raise ContainerNotFoundError() from None
            raise StateCorruptError(
                f"read state `{self.state_path}`: no state file (half-created "
                "container; `delete --force` removes it)"
            ) from err
        except (OSError, UnicodeDecodeError) as err:
            raise StateCorruptError(
                f"read state `{self.state_path}`: {describe_error(err)}"
            ) from err
        state = ContainerState.from_json(text, self.state_path)
        if state.id != self.id:
            raise StateCorruptError(
                f"read state `{self.state_path}`: corrupt state file: it belongs "
                f"to container `{state.id}`"
            )
        return state

    def save(self, state: ContainerState) -> None:
        """Write state.json atomically: temp file, fsync-free rename."""
        write_atomically(self.path, STATE_FILE, state.to_json())

    def save_cleanup(self, state: ContainerState) -> None:
        """Record what ``delete --force`` must undo, apart from state.json."""
        record = {
            "cgroup_paths": state.cgroup_paths,
            "cgroup_created": state.cgroup_created,
            "pid": state.pid,
            "pid_start": state.pid_start,
        }
        write_atomically(self.path, CLEANUP_FILE, jsonio.dumps(record))

    def load_cleanup(self) -> dict:
        """Read cleanup.json; an empty record when it is missing or unreadable."""
        try:
            with open(self.cleanup_path, encoding="utf-8") as handle:
                record = jsonio.loads(handle.read())
        except (OSError, ValueError):
            return {}
        return record if type(record) is dict else {}

    def fifo_exists(self) -> bool:
        """Tell whether exec.fifo is still there (the container was not started)."""
        return os.path.exists(self.fifo_path)

    def remove(self) -> None:
        """Remove the directory and everything in it (errors are ignored)."""
        remove_tree(self.path)

    def close(self) -> None:
        """Release the lock."""
        os.close(self.fd)


def write_atomically(directory: str, name: str, text: str) -> None:
    """Write ``directory/name`` (mode 0600) through a temp file and a rename."""
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(directory, name))


def remove_tree(path: str) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` for a state directory.

    A state directory holds a few files; :mod:`shutil` (which imports the
    compression modules) is loaded only if it holds a directory too.
    """
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                import shutil

                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def describe_error(err: Exception) -> str:
    """One lower-case line for an OSError or a decoding error."""
    if isinstance(err, OSError):
        return describe_oserror(err)
    return f"corrupt state file: {err}"


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


class open_container:  # lower case: it replaces a function of that name
    """Open an existing container's directory, locked for the whole command.

    ``with open_container(root, id) as cdir:`` yields a :class:`ContainerDir`
    and closes it (releasing the lock) at the end of the block. Readers
    (``state``, ``list``, ``kill``) pass ``lock=False``: state.json is
    replaced atomically, so they never see half a file, and they must not wait
    for a ``create`` whose hooks may themselves ask for the state.
    (A class, not :func:`contextlib.contextmanager`, which costs an import.)
    """

    def __init__(self, root: str, container_id: str, lock: bool = True) -> None:
        self.root = root
        self.container_id = container_id
        self.lock = lock
        self.cdir: ContainerDir | None = None

    def __enter__(self) -> ContainerDir:
        validate_id(self.container_id)
        path = os.path.join(self.root, self.container_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFoundError() from None
        except OSError as err:
            raise StateCorruptError(
                f"open container directory `{path}`: {describe_oserror(err)}"
            ) from err
        if self.lock:
            _lock(fd, path)
        self.cdir = ContainerDir(self.root, self.container_id, fd, locked=self.lock)
        return self.cdir

    def __exit__(self, *_exc) -> None:
        if self.cdir is not None:
            self.cdir.close()
            self.cdir = None


def create_container_dir(root: str, container_id: str) -> ContainerDir:
    """Make and lock ``<root>/<id>``; the caller must close() it."""
    validate_id(container_id)
    ensure_root(root)
    path = os.path.join(root, container_id)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise ContainerExistsError() from None
    except OSError as err:
        raise StateCorruptError(
            f"create container directory `{path}`: {describe_oserror(err)}"
        ) from err
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
