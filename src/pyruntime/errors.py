"""Every error pyruntime raises, in one tree.

::

    RuntimeError_                 base: a message for the user, an exit status
    ├── UsageError                 bad command line (wrong flags, arguments)
    ├── ConfigError                config.json is unreadable or invalid
    │                              (carries every problem found, with JSON paths)
    ├── InvalidIdError             container id refused before touching the disk
    ├── ContainerExistsError       create with an id already in use
    ├── ContainerNotFoundError     no such container
    ├── StateError                 the command is not allowed in this status
    ├── StateCorruptError          state.json is truncated or unreadable
    ├── HookError                  an OCI hook failed or ran past its timeout
    ├── SetupError                 a step of creating the container failed
    │                              (raised in the child, replayed in the parent)
    ├── UnsupportedError           the host or pyruntime lacks a feature
    └── ExecFailedError            ``exec`` could not start its process (exit 255,
                                   runc's ``exec failed:`` prefix)

Below the CLI nothing is logged on failure: errors are raised with context and
the CLI boundary logs each one exactly once.
"""

from __future__ import annotations


class RuntimeError_(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(RuntimeError_):
    """The command line was wrong."""


class ConfigError(RuntimeError_):
    """config.json could not be decoded; ``problems`` lists every finding."""

    def __init__(self, problems: list[str], source: str = "config.json") -> None:
        self.problems = list(problems)
        self.source = source
        if len(self.problems) == 1:
            message = f"invalid {source}: {self.problems[0]}"
        else:
            joined = "; ".join(self.problems)
            message = f"invalid {source} ({len(self.problems)} problems): {joined}"
        super().__init__(message)


class InvalidIdError(RuntimeError_):
    """The container id is not acceptable."""


class ContainerExistsError(RuntimeError_):
    """create was asked for an id that is already in use."""

    def __init__(self) -> None:
        super().__init__("container with given ID already exists")


class ContainerNotFoundError(RuntimeError_):
    """No container has this id."""

    def __init__(self) -> None:
        super().__init__("container does not exist")


class StateError(RuntimeError_):
    """The operation is not allowed in the container's current status."""


class StateCorruptError(RuntimeError_):
    """The saved state cannot be read back."""


class HookError(RuntimeError_):
    """An OCI hook failed."""


class SetupError(RuntimeError_):
    """A step of container setup failed (possibly inside the child)."""


class UnsupportedError(RuntimeError_):
    """The host kernel or pyruntime does not offer a requested feature."""


class ExecFailedError(RuntimeError_):
    """``exec`` failed before its process ran: runc exits 255 and says so."""

    exit_code = 255

    def __init__(self, cause: RuntimeError_) -> None:
        super().__init__(f"exec failed: {cause}")


def describe_oserror(err: OSError) -> str:
    """Return the lower-case strerror text of an OSError, as runc prints it."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
