"""podman 4.3 with ``--runtime PATH``: conmon runs create and exec, podman the rest.

podman calls ``kill``, ``delete``, ``pause`` and ``resume`` with an
environment holding only ``XDG_RUNTIME_DIR`` (empty for root), never passes
``--root``, and adds ``--log-format=json --log <userdata>/oci-log`` because
the runtime's name is listed in ``runtime_supports_json``.
"""

from __future__ import annotations

import pytest

from tests.e2e.engines import IMAGE, MEMORY_HOG, SERVE, wait_for

CAP_CHOWN = 1 << 0


def capabilities(status_text: str) -> dict[str, int]:
    """The Cap* lines of /proc/self/status as integers."""
    caps = {}
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            caps[key] = int(value.strip(), 16)
    return caps


def serve(pm, *flags: str) -> str:
    """A detached container serving until SIGTERM; returns its name."""
    name = pm.new_name()
    pm.run("-d", *flags, IMAGE, "sh", "-c", SERVE, name=name)
    wait_for(lambda: "started" in pm("logs", name).stdout, what=f"{name} to start")
    return name


def remove(pm, name: str) -> None:
    """``podman rm`` a stopped container, then check nothing is left of it."""
    pm("rm", name)
    assert not pm.leftovers(name)


def test_run_exit_codes(pm):
    for code in (0, 3):
        name = pm.new_name()
        script = f"echo hello; exit {code}"
        result = pm.run("--rm", IMAGE, "sh", "-c", script, name=name, check=False)
        assert result.returncode == code, result.stderr
        assert result.stdout == "hello\n"
        assert not pm.leftovers(name)

    # podman maps the runtime's "no such file or directory" to 127.
    name = pm.new_name()
    result = pm.run("--rm", IMAGE, "/no/such/program", name=name, check=False)
    assert result.returncode == 127, result.stderr
    assert "no such file or directory" in result.stderr
    assert not pm.leftovers(name)


def test_stdin(pm):
    name = pm.new_name()
    text = "first line\nsecond line\n"
    result = pm.run("--rm", "-i", IMAGE, "sh", "-c", "cat; echo done",
                    name=name, input=text, stdin=None)  # fmt: skip
    assert result.stdout == text + "done\n"
    assert not pm.leftovers(name)


def test_tty(pm):
    name = pm.new_name()
    script = "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; exit 3"
    result = pm.run("--rm", "-t", IMAGE, "sh", "-c", script, name=name, check=False)
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == ["is-a-tty", "/dev/pts/0"]
    assert not pm.leftovers(name)


def test_detached_stop_rm(pm):
    name = serve(pm)
    assert pm.inspect(name, "{{.State.Status}}") == "running"
    pm("stop", "-t", "10", name)
    assert pm.inspect(name, "{{.State.Status}}") == "exited"
    assert pm.inspect(name, "{{.State.ExitCode}}") == "0"  # the trap ran
    remove(pm, name)


def test_exec(pm):
    name = serve(pm)
    script = "echo in $(cat /proc/1/comm); exit 7"
    result = pm("exec", name, "sh", "-c", script, check=False)
    assert result.returncode == 7, result.stderr
    assert result.stdout == "in sh\n"
    result = pm("exec", "-i", name, "cat", input="piped\n", stdin=None)
    assert result.stdout == "piped\n"
    pm("stop", "-t", "10", name)
    remove(pm, name)


def test_read_only(pm):
    name = pm.new_name()
    script = "touch /tmp/ok && echo tmp-writable; touch /etc/nope"
    result = pm.run("--rm", "--read-only", IMAGE, "sh", "-c", script,
                    name=name, check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == "tmp-writable\n"
    assert "Read-only file system" in result.stderr
    assert not pm.leftovers(name)


def host_cgroup_file(pm, name: str, controller: str, filename: str) -> str:
    """A file of the container's cgroup, read from the host."""
    path = pm.inspect(name, "{{.State.CgroupPath}}")
    with open(f"/sys/fs/cgroup/{controller}/{path.lstrip('/')}/{filename}") as f:
        return f.read().strip()


def test_memory(pm):
    name = serve(pm, "--memory", "32m")
    limit = host_cgroup_file(pm, name, "memory", "memory.limit_in_bytes")
    assert int(limit) == 32 << 20
    pm("stop", "-t", "10", name)
    remove(pm, name)

    # Past the limit the kernel kills the program (SIGKILL: 137).
    name = pm.new_name()
    result = pm.run("--memory", "32m", IMAGE, "sh", "-c", MEMORY_HOG,
                    name=name, check=False)  # fmt: skip
    assert result.returncode == 137, result.stderr
    remove(pm, name)


def test_pids_limit(pm):
    name = serve(pm, "--pids-limit", "10")
    assert host_cgroup_file(pm, name, "pids", "pids.max") == "10"
    pm("stop", "-t", "10", name)
    remove(pm, name)

    name = pm.new_name()
    script = "for i in $(seq 20); do sleep 30 & done; echo forked"
    result = pm.run("--rm", "--pids-limit", "10", IMAGE, "sh", "-c", script,
                    name=name, check=False)  # fmt: skip
    assert "can't fork" in result.stderr
    assert not pm.leftovers(name)


def test_cap_drop(pm):
    read = ["--rm", IMAGE, "cat", "/proc/self/status"]
    default = capabilities(pm.run(*read).stdout)
    assert default["CapEff"] & CAP_CHOWN, "podman grants CAP_CHOWN by default"

    dropped = capabilities(pm.run("--cap-drop", "chown", *read).stdout)
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert not dropped[key] & CAP_CHOWN, f"{key}: {dropped[key]:x}"
        assert dropped[key] == default[key] & ~CAP_CHOWN

    script = "touch /tmp/f; chown 1:1 /tmp/f"
    result = pm.run("--rm", "--cap-drop", "chown", IMAGE, "sh", "-c", script,
                    check=False)  # fmt: skip
    assert result.returncode == 1
    assert "Operation not permitted" in result.stderr

    nothing = capabilities(pm.run("--cap-drop", "all", *read).stdout)
    assert nothing["CapEff"] == nothing["CapBnd"] == 0


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("1000:1000", "uid=1000(webapp) gid=1000(webapp) groups=1000(webapp)"),
        ("service", "uid=1001(service) gid=1001(service) groups=1001(service)"),
        # podman adds passwd and group lines for ids the image does not name.
        ("4242:4343", "uid=4242(4242) gid=4343(4343) groups=4343(4343)"),
    ],
    ids=["ids", "name", "unknown-ids"],
)
def test_user(pm, user, expected):
    result = pm.run("--rm", "--user", user, IMAGE, "id")
    assert result.stdout.strip() == expected


def test_pause_unpause(pm):
    name = serve(pm)
    pm("pause", name)
    assert pm.inspect(name, "{{.State.Status}}") == "paused"
    pm("unpause", name)
    assert pm.inspect(name, "{{.State.Status}}") == "running"
    pm("stop", "-t", "10", name)
    remove(pm, name)


def test_top(pm):
    name = serve(pm)
    lines = pm("top", name, "pid", "args").stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    table = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines[1:]}
    assert table["1"].startswith("sh -c")  # pids as the container sees them
    assert any(args.startswith("sleep") for args in table.values())
    pm("stop", "-t", "10", name)
    remove(pm, name)


def test_logs(pm):
    name = pm.new_name()
    script = "echo to-stdout; echo to-stderr >&2; exit 5"
    pm.run("-d", IMAGE, "sh", "-c", script, name=name)
    assert pm("wait", name).stdout.strip() == "5"
    result = pm("logs", name)
    assert result.stdout == "to-stdout\n"
    assert result.stderr == "to-stderr\n"
    remove(pm, name)
