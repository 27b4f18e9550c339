"""Running OCI hooks: one phase at a time, state JSON on stdin, with timeouts.

Which process runs which phase, and when (runtime-spec ``config.md``):

================  ==============================  ============================
phase             runs in                          during
================  ==============================  ============================
prestart          the runtime (host namespaces)    ``create``, before pivot
createRuntime     the runtime (host namespaces)    ``create``, after prestart
createContainer   init, container namespaces       ``create``, before pivot
startContainer    init, inside the container       ``start``, before exec
poststart         the runtime                      ``start``, after exec
poststop          the runtime                      ``delete``
================  ==============================  ============================

A hook's argv is its ``args`` (``args[0]`` is argv[0]) or just its ``path``;
its environment is exactly its ``env``. Without ``env``, a hook of the
runtime's namespaces inherits the runtime's environment, and a createContainer
or startContainer hook gets the container process's ``process.env`` (as runc
does; the caller's environment never reaches into the container). Its stdin is
the container's state, compact JSON with no trailing newline.
"""

from __future__ import annotations

import os

from pyruntime import log
from pyruntime.errors import HookError
from pyruntime.linux import signals
from pyruntime.state import jsonio

PHASE_NAMES = {
    "prestart": "prestart",
    "create_runtime": "createRuntime",
    "create_container": "createContainer",
    "start_container": "startContainer",
    "poststart": "poststart",
    "poststop": "poststop",
}


def hooks_of(spec, phase: str) -> tuple:
    """Return the hooks of one phase (``create_runtime`` style name)."""
    hooks = getattr(spec, "hooks", None)
    return (getattr(hooks, phase, None) or ()) if hooks else ()


#: The phases that run inside the container's namespaces.
CONTAINER_PHASES = ("create_container", "start_container")


def with_container_env(spec):
    """Return ``spec`` whose in-container hooks without ``env`` get process.env.

    The runtime calls this before it forks init. When there are in-container
    hooks, it also imports :mod:`subprocess` now (:func:`run_hook` imports it
    only when a hook runs): init runs startContainer hooks after
    ``pivot_root``, where the host's standard library is out of reach.
    """
    spec_hooks = getattr(spec, "hooks", None)
    if any(getattr(spec_hooks, phase, None) for phase in CONTAINER_PHASES):
        import subprocess  # noqa: F401 (for init, see above)
    process = getattr(spec, "process", None)
    if spec_hooks is None or process is None:
        return spec
    from pyruntime.spec import model

    env = tuple(process.env or ())
    changes = {}
    for phase in CONTAINER_PHASES:
        phase_hooks = getattr(spec_hooks, phase) or ()
        if any(hook.env is None for hook in phase_hooks):
            changes[phase] = tuple(
                model.replace(hook, env=env) if hook.env is None else hook
                for hook in phase_hooks
            )
    if not changes:
        return spec
    return model.replace(spec, hooks=model.replace(spec_hooks, **changes))


def state_document(
    oci_version: str,
    container_id: str,
    status: str,
    pid: int,
    bundle: str,
    annotations: dict | None,
) -> bytes:
    """Render the state a hook reads on stdin (spec field order)."""
    state = {"ociVersion": oci_version, "id": container_id, "status": status}
    if pid:
        state["pid"] = pid
    state["bundle"] = bundle
    if annotations:
        # Sorted, as Go's encoding/json writes runc's map.
        state["annotations"] = dict(sorted(annotations.items()))
    return jsonio.dumps(state).encode()


def run_hooks(phase: str, hooks, state: bytes, cwd: str | None = None) -> None:
    """Run every hook of a phase in order; the first failure raises HookError."""
    name = PHASE_NAMES[phase]
    for index, hook in enumerate(hooks):
        log.debug(f"hook {name}[{index}]: run {hook.path}")
        run_hook(name, index, hook, state, cwd)


def run_hook(name: str, index: int, hook, state: bytes, cwd: str | None) -> None:
    """Run one hook, feeding it ``state``; raise HookError on failure or timeout."""
    import subprocess  # only here: most containers have no hooks (see above)

    argv = list(hook.args) if hook.args else [hook.path]
    env = None  # absent: the hook inherits the runtime's environment, as in runc
    if hook.env is not None:
        env = dict(item.partition("=")[::2] for item in hook.env)
    try:
        proc = subprocess.Popen(
            argv,
            executable=hook.path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as err:
        raise HookError(
            f"error running {name} hook #{index}: {hook.path}: "
            f"{(err.strerror or str(err)).lower()}"
        ) from err
    try:
        out, err_text = proc.communicate(state, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise HookError(
            f"error running {name} hook #{index}: hook ran past specified "
            f"timeout of {float(hook.timeout)}s"
        ) from None
    except BrokenPipeError:
        out, err_text = proc.communicate()
    if proc.returncode != 0:
        raise HookError(
            f"error running {name} hook #{index}: {describe_exit(proc.returncode)}, "
            f"stdout: {out.decode(errors='replace').strip()}, "
            f"stderr: {err_text.decode(errors='replace').strip()}"
        )


def describe_exit(returncode: int) -> str:
    """Say how a process ended, the way Go's os/exec does."""
    if returncode < 0:
        return f"signal: {signals.describe(-returncode)}"
    return f"exit status {returncode}"


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signals.SIGKILL)
    except ProcessLookupError:
        pass
    proc.kill()
    proc.communicate()


def run_hooks_warn(phase: str, hooks, state: bytes, cwd: str | None = None) -> None:
    """Run a phase whose failures must not fail the command.

    Each failure is a logged warning and the remaining hooks still run: the
    runtime-spec says to continue "as if the hook had succeeded".
    """
    name = PHASE_NAMES[phase]
    for index, hook in enumerate(hooks):
        log.debug(f"hook {name}[{index}]: run {hook.path}")
        try:
            run_hook(name, index, hook, state, cwd)
        except HookError as err:
            log.warning(str(err))
