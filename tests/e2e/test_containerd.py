"""containerd 1.6 through ``ctr``, with the runc v2 shim calling the runtime.

``ctr run --runc-binary PATH --runc-root DIR`` sets the shim's ``BinaryName``
and ``Root`` options for one container: every runtime call the shim makes
(create, start, state, kill, delete, exec, pause, resume, ps) goes to PATH
with ``--root DIR/<namespace> --log <bundle>/log.json --log-format json``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

from tests.e2e.engines import (
    MEMORY_HOG,
    RUNTIMES,
    SERVE,
    run,
    wait_for,
)

#: Exits 42 on SIGTERM, so the exit status shows the signal was delivered.
TRAP_42 = 'trap "exit 42" TERM; while :; do sleep 1000 & wait $!; done'


def pids_of(ctr, container_id: str) -> list[int]:
    """``ctr task ps``: the host pids of the container's processes."""
    lines = ctr("task", "ps", container_id).stdout.splitlines()[1:]
    return [int(line.split()[0]) for line in lines if line.strip()]


def wait_children(ctr, container_id: str, count: int) -> list[int]:
    """Wait until the container runs ``count`` processes (its trap is set)."""
    return wait_for(
        lambda: (pids := pids_of(ctr, container_id)) and len(pids) >= count and pids,
        what=f"{count} processes in {container_id}",
    )


def runtime_state(ctr, container_id: str) -> dict:
    """The runtime's own ``state`` of the container, from the shim's root."""
    root = ctr.daemon.runtime_roots[ctr.runtime_name] / ctr.daemon.namespace
    argv = [RUNTIMES[ctr.runtime_name], "--root", str(root), "state", container_id]
    return json.loads(run(argv).stdout)


def delete(ctr, container_id: str) -> subprocess.CompletedProcess:
    """Delete a stopped task and its container; return the task delete."""
    result = ctr("task", "delete", container_id)
    ctr("container", "delete", container_id)
    return result


def test_run_exit_codes(ctr):
    for code in (0, 3):
        container_id = ctr.new_id()
        script = f"echo hello from $(hostname); exit {code}"
        result = ctr.run(container_id, "sh", "-c", script, flags=["--rm"], check=False)
        assert result.returncode == code, result.stderr
        assert "hello from" in result.stdout
        assert not ctr.leftovers(container_id)


def test_missing_program_is_reported(ctr):
    """The shim reads the runtime's last error from log.json into its reply."""
    container_id = ctr.new_id()
    result = ctr.run(container_id, "/no/such/program", flags=["--rm"], check=False)
    assert result.returncode != 0
    assert "OCI runtime create failed" in result.stderr
    assert "no such file or directory" in result.stderr
    ctr.daemon.remove(container_id)
    assert not ctr.leftovers(container_id)


def test_detached_kill_delete(ctr):
    container_id = ctr.new_id()
    ctr.run(container_id, "sh", "-c", TRAP_42, flags=["-d"])
    ctr.wait_status(container_id, "RUNNING")
    init = wait_children(ctr, container_id, 2)[0]
    with open(f"/proc/{init}/cmdline", "rb") as handle:
        assert handle.read().split(b"\0")[0] == b"sh"
    assert runtime_state(ctr, container_id)["status"] == "running"

    ctr("task", "kill", container_id)
    ctr.wait_status(container_id, "STOPPED")
    assert runtime_state(ctr, container_id)["status"] == "stopped"
    result = delete(ctr, container_id)
    assert "exit code 42" in result.stderr
    assert not ctr.leftovers(container_id)


def test_task_exec(ctr):
    container_id = ctr.new_id()
    ctr.run(container_id, "sh", "-c", SERVE, flags=["-d"])
    ctr.wait_status(container_id, "RUNNING")

    script = "echo in $(cat /proc/1/comm); exit 7"
    exec_id = "e1"
    fifo_dir = str(ctr.daemon.fifo_dir)
    result = ctr("task", "exec", "--fifo-dir", fifo_dir, "--exec-id", exec_id,
                 container_id, "sh", "-c", script, check=False)  # fmt: skip
    assert result.returncode == 7, result.stderr
    assert result.stdout.strip() == "in sh"

    ctr("task", "kill", container_id)
    ctr.wait_status(container_id, "STOPPED")
    delete(ctr, container_id)
    assert not ctr.leftovers(container_id)


def test_pause_resume(ctr):
    container_id = ctr.new_id()
    ctr.run(container_id, "sh", "-c", SERVE, flags=["-d"])
    ctr.wait_status(container_id, "RUNNING")

    ctr("task", "pause", container_id)
    ctr.wait_status(container_id, "PAUSED")
    assert runtime_state(ctr, container_id)["status"] == "paused"
    ctr("task", "resume", container_id)
    ctr.wait_status(container_id, "RUNNING")
    assert runtime_state(ctr, container_id)["status"] == "running"

    ctr("task", "kill", container_id)
    ctr.wait_status(container_id, "STOPPED")
    delete(ctr, container_id)
    assert not ctr.leftovers(container_id)


def test_task_ps(ctr):
    container_id = ctr.new_id()
    script = "sleep 1000 & sleep 1000 & wait"
    ctr.run(container_id, "sh", "-c", script, flags=["-d"])
    ctr.wait_status(container_id, "RUNNING")

    pids = wait_children(ctr, container_id, 3)
    assert len(pids) == 3
    cgroup = f"/{ctr.daemon.namespace}/{container_id}"
    for pid in pids:
        with open(f"/proc/{pid}/cgroup") as handle:
            memory = [line for line in handle if ":memory:" in line]
        assert memory and memory[0].rstrip().endswith(cgroup), memory

    ctr("task", "kill", "--signal", "SIGKILL", container_id)
    ctr.wait_status(container_id, "STOPPED")
    assert "exit code 137" in delete(ctr, container_id).stderr
    assert not ctr.leftovers(container_id)


def test_memory_limit_oom(ctr, tmp_path):
    """A 32 MiB limit kills a memory hog; the shim reports the OOM."""
    events_log = tmp_path / "events"
    with open(events_log, "w") as out:
        events = subprocess.Popen(
            ["ctr", "--address", str(ctr.daemon.socket), "events"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Labelling the namespace makes an event: once it shows, ctr listens.
        probe = iter(range(1000))

        def listening() -> bool:
            label = f"pyruntime-e2e-probe={next(probe)}"
            ctr("namespaces", "label", ctr.daemon.namespace, label)
            return "/namespaces/update" in events_log.read_text()

        wait_for(listening, timeout=10, interval=0.3, what="ctr events to listen")
        container_id = ctr.new_id()
        flags = ["--rm", "--memory-limit", str(32 << 20)]
        command = ["sh", "-c", MEMORY_HOG]
        result = ctr.run(container_id, *command, flags=flags, check=False)
        assert result.returncode == 137, result.stderr
        wait_for(
            lambda: any(
                "/tasks/oom" in line and container_id in line
                for line in events_log.read_text().splitlines()
            ),
            timeout=10,
            what="a /tasks/oom event",
        )
    finally:
        events.terminate()
        events.wait(10)
    assert not ctr.leftovers(container_id)


def run_in_pty(argv: list[str], timeout: float = 20) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its stdio; return (status, output)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: every slave descriptor is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        status = proc.wait(max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return status, b"".join(chunks).decode(errors="replace")


def test_tty(ctr):
    container_id = ctr.new_id()
    script = "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; exit 3"
    argv = ["ctr", "--address", str(ctr.daemon.socket),
            "--namespace", ctr.daemon.namespace, "run", "--rm", "-t",
            *ctr.daemon.runtime_flags(ctr.runtime_name),
            "localhost/busybox:latest", container_id, "sh", "-c", script]  # fmt: skip
    status, output = run_in_pty(argv)
    assert status == 3, output
    assert "is-a-tty" in output
    assert "/dev/pts/" in output or "/dev/console" in output, output
    assert not ctr.leftovers(container_id)
