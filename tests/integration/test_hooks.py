"""OCI hooks through the CLI: when each phase runs, where, with what, and failures.

Each hook here is a small shell script that records how it was run (its
stdin, cwd, environment and namespaces) into a directory; the tests compare
those records with what the runtime-spec asks for. Host-side hooks write to
the test's temp dir; startContainer runs inside the container, so its script
and its records live in the rootfs (``/hook.sh``, ``/hookout``).

Choices where runc 1.1.5 and the runtime-spec differ (we follow the spec):

- poststart runs during ``start``, after the program was exec'd, and a
  failing one is a warning (runtime-spec before v1.3, as issue 2 asks);
- a failing startContainer hook fails ``start`` itself (exit 1, the hook's
  error) and stops the container; runc's ``start`` exits 0 and only the
  container's stderr shows the error;
- a failing poststop hook is a warning, and the remaining poststop hooks
  still run ("continue as if the hook had succeeded").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import assert_nothing_left, reap

pytestmark = pytest.mark.root

RECORDER = """#!/bin/sh
# A hook that records how it ran: $1 label, $2 records dir, $3 exit status.
label=$1
out=$2
cat > "$out/$label.stdin"
pwd > "$out/$label.cwd"
env > "$out/$label.env"
for ns in mnt pid uts; do readlink "/proc/self/ns/$ns"; done > "$out/$label.ns"
echo "$label" >> "$out/order"
if [ "${3:-0}" != 0 ]; then echo "out-$label"; echo "err-$label" >&2; fi
exit "${3:-0}"
"""

#: Key order of the state a hook reads (runtime-spec, as runc writes it).
STATE_KEYS = ["ociVersion", "id", "status", "pid", "bundle", "annotations"]


class Records:
    """A recorder script and the directory it writes to, seen from the host.

    ``view`` is the path prefix the hook itself sees: ``""`` on the host,
    the rootfs for a hook that runs inside the container after pivot_root.
    """

    def __init__(self, base: Path, view: Path | None = None) -> None:
        self.base = base
        self.view = view
        self.out = base / "hookout"
        self.out.mkdir(parents=True, exist_ok=True)
        script = base / "hook.sh"
        script.write_text(RECORDER)
        script.chmod(0o755)

    def _seen(self, path: Path) -> str:
        if self.view is None:
            return str(path)
        return "/" + str(path.relative_to(self.view))

    def hook(self, label: str, code: int = 0, **extra) -> dict:
        """A hook entry for config.json running the recorder."""
        script = self._seen(self.base / "hook.sh")
        entry = {"path": script, "args": [script, label, self._seen(self.out)]}
        if code:
            entry["args"].append(str(code))
        entry.update(extra)
        return entry

    def order(self) -> list[str]:
        """Labels in the order the hooks ran."""
        path = self.out / "order"
        return path.read_text().split() if path.exists() else []

    def stdin(self, label: str) -> dict:
        """The state document the hook read, checked for shape."""
        text = (self.out / f"{label}.stdin").read_text()
        assert not text.endswith("\n"), "state on stdin has no trailing newline"
        doc = json.loads(text)
        assert list(doc) == [k for k in STATE_KEYS if k in doc]
        return doc

    def text(self, label: str, kind: str) -> str:
        """One record (cwd, env, ns) as text."""
        return (self.out / f"{label}.{kind}").read_text()

    def env(self, label: str) -> dict[str, str]:
        """The hook's environment."""
        lines = self.text(label, "env").splitlines()
        return dict(line.partition("=")[::2] for line in lines if "=" in line)


def namespaces_of(pid: int | str) -> list[str]:
    """mnt, pid and uts namespace ids of a process, like the recorder lists."""
    return [os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("mnt", "pid", "uts")]


def set_hooks(bundle, annotations: dict | None = None, **phases) -> None:
    """Write config.json with these hook phases (and annotations)."""

    def change(config):
        config["hooks"] = phases
        if annotations:
            config["annotations"] = annotations

    bundle.edit(change)


def log_lines(runtime) -> list[dict]:
    """Every line of the runtime's JSON log."""
    if not runtime.log.exists():
        return []
    return [json.loads(line) for line in runtime.log.read_text().splitlines()]


@pytest.fixture
def host(tmp_path) -> Records:
    """A recorder for hooks that run in the host's mount view."""
    return Records(tmp_path / "host-hooks")


@pytest.fixture
def inside(bundle) -> Records:
    """A recorder for hooks that run after pivot_root, inside the rootfs."""
    return Records(bundle.rootfs, view=bundle.rootfs)


# ------------------------------------------------------------- the happy path


def test_every_phase_runs_at_its_step_with_the_state(
    runtime, bundle, host, inside, tmp_path
):
    annotations = {"org.example.hooks": "yes"}
    program = "echo program >> /hookout/order"
    bundle.config["process"]["args"] = ["sh", "-c", program]
    set_hooks(
        bundle,
        annotations,
        prestart=[host.hook("prestart")],
        createRuntime=[host.hook("createRuntime")],
        createContainer=[host.hook("createContainer")],
        startContainer=[inside.hook("startContainer")],
        poststart=[host.hook("poststart")],
        poststop=[host.hook("poststop")],
    )
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    created = runtime.create(bundle, cid, "--pid-file", str(pid_file))
    assert created.returncode == 0, created.stderr
    pid = int(pid_file.read_text())
    oci_version = runtime.state(cid)["ociVersion"]
    init_ns = namespaces_of(pid)
    host_ns = namespaces_of("self")
    assert host.order() == ["prestart", "createRuntime", "createContainer"]
    assert inside.order() == []

    def common(doc, status, expected_pid):
        assert doc["ociVersion"] == oci_version
        assert doc["id"] == cid
        assert doc["status"] == status
        assert doc.get("pid") == expected_pid
        assert doc["bundle"] == str(bundle.path)
        assert doc["annotations"] == annotations

    # Runtime hooks: host namespaces, host pid of init, cwd the bundle.
    for label in ("prestart", "createRuntime"):
        common(host.stdin(label), "creating", pid)
        assert host.text(label, "ns").split() == host_ns
        assert host.text(label, "cwd").strip() == str(bundle.path)
    # createContainer: the container's namespaces, before pivot_root (it wrote
    # into the host's temp dir), pid as the container sees it.
    common(host.stdin("createContainer"), "creating", 1)
    assert host.text("createContainer", "ns").split() == init_ns
    assert init_ns[0] != host_ns[0]
    assert host.text("createContainer", "cwd").strip() == str(bundle.rootfs)

    runtime.ok("start", cid)
    assert reap(pid) == 0
    # startContainer: inside the container, after pivot_root, before the program.
    assert inside.order() == ["startContainer", "program"]
    common(inside.stdin("startContainer"), "created", 1)
    assert inside.text("startContainer", "ns").split() == init_ns
    assert inside.text("startContainer", "cwd").strip() == "/"
    # poststart: the runtime, after the program was released.
    assert host.order()[3:] == ["poststart"]
    common(host.stdin("poststart"), "running", pid)
    assert host.text("poststart", "ns").split() == host_ns

    runtime.ok("delete", cid)
    assert host.order()[4:] == ["poststop"]
    common(host.stdin("poststop"), "stopped", None)  # no pid once stopped
    assert host.text("poststop", "ns").split() == host_ns
    assert not (runtime.root / cid).exists()


CGROUP_PEEK = """#!/bin/sh
# Record the cgroup of init (its pid is in the state on stdin) into $1.
pid=$(sed 's/.*"pid":\\([0-9]*\\).*/\\1/')
cat "/proc/$pid/cgroup" > "$1"
"""


@pytest.mark.parametrize("cgroupns", [False, True])
def test_runtime_hooks_find_init_in_the_containers_cgroup(
    runtime, bundle, tmp_path, cgroupns
):
    # The runtime moves init into the cgroup while init sets up; the
    # prestart and createRuntime hooks come after, and must see it there.
    script = tmp_path / "peek.sh"
    script.write_text(CGROUP_PEEK)
    script.chmod(0o755)
    if cgroupns:
        bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    phases = {
        phase: [{"path": str(script), "args": ["peek", str(tmp_path / phase)]}]
        for phase in ("prestart", "createRuntime")
    }
    set_hooks(bundle, **phases)
    cid = runtime.new_id()
    created = runtime.create(bundle, cid)
    assert created.returncode == 0, created.stderr
    try:
        for phase in phases:
            lines = (tmp_path / phase).read_text().splitlines()
            assert lines, phase
            for line in lines:
                path = line.split(":", 2)[2]
                assert path.endswith(f"/{cid}"), (phase, line)
    finally:
        runtime.ok("delete", "--force", cid)


def test_hooks_of_a_phase_run_in_array_order(runtime, bundle, host):
    set_hooks(bundle, prestart=[host.hook(name) for name in ("p1", "p2", "p3")])
    cid = runtime.new_id()
    assert runtime.create(bundle, cid).returncode == 0
    assert host.order() == ["p1", "p2", "p3"]


def test_argv_is_args_and_env_is_exactly_env(runtime, bundle, host, inside):
    busybox = str(bundle.rootfs / "bin" / "busybox")
    # busybox picks its applet from argv[0]: "sh" works only if args[0] is
    # argv[0] and path is what gets executed.
    script = 'echo "$0 $1" > "$2/argv"; env > "$2/exact.env"'
    exact = {
        "path": busybox,
        "args": ["sh", "-c", script, "zero", "one", str(host.out)],
        "env": ["ONLY=this", "PATH=/usr/bin:/bin"],
    }
    bundle.config["process"]["env"].append("CONTAINER_ONLY=1")
    set_hooks(
        bundle,
        prestart=[exact],
        createRuntime=[host.hook("inherit")],
        createContainer=[host.hook("in-container")],
        startContainer=[inside.hook("start-default")],
    )
    cid = runtime.new_id()
    env = dict(os.environ, PYRUNTIME_TEST_MARKER="runtime-env")
    created = runtime.create(bundle, cid, env=env)
    assert created.returncode == 0, created.stderr
    assert (host.out / "argv").read_text() == "zero one\n"
    exact_env = (host.out / "exact.env").read_text().splitlines()
    assert "ONLY=this" in exact_env
    assert not any(line.startswith("PYRUNTIME_TEST_MARKER=") for line in exact_env)
    # No env: a runtime hook inherits the runtime's environment...
    assert host.env("inherit")["PYRUNTIME_TEST_MARKER"] == "runtime-env"
    # ... an in-container hook gets process.env, never the caller's.
    for records, label in ((host, "in-container"),):
        hook_env = records.env(label)
        assert hook_env["CONTAINER_ONLY"] == "1"
        assert "PYRUNTIME_TEST_MARKER" not in hook_env
    pid = runtime.state(cid)["pid"]
    runtime.ok("start", cid)
    reap(pid)
    start_env = inside.env("start-default")
    assert start_env["CONTAINER_ONLY"] == "1"
    assert "PYRUNTIME_TEST_MARKER" not in start_env


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(
    runtime, bundle, host, phase
):
    set_hooks(
        bundle,
        **{phase: [host.hook("a"), host.hook("b", code=3), host.hook("c")]},
        poststop=[host.hook("poststop")],
    )
    cid = runtime.new_id()
    result = runtime.create(bundle, cid, log_json=True)
    assert result.returncode == 1
    message = (
        f"error running {phase} hook #1: exit status 3, stdout: out-b, stderr: err-b"
    )
    assert result.stderr == message + "\n"
    errors = [line for line in log_lines(runtime) if line["level"] == "error"]
    assert [line["msg"] for line in errors] == [message]
    # The first failure stops the phase; the container is destroyed and the
    # poststop hooks run, as after any partly made container.
    assert host.order() == ["a", "b", "poststop"]
    assert host.stdin("poststop")["status"] == "stopped"
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_hook_killed_by_a_signal_is_described_as_go_does(runtime, bundle):
    # runc's words come from Go's os/exec: "signal: killed", not SIGKILL.
    suicide = {"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $$"]}
    set_hooks(bundle, createRuntime=[suicide])
    cid = runtime.new_id()
    result = runtime.create(bundle, cid)
    assert result.returncode == 1
    assert (
        'msg="error running createRuntime hook #0: signal: killed, stdout: , '
        'stderr: "' in result.stderr
    )
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_poststop_runs_when_create_fails_in_init(runtime, bundle, host):
    bundle.config["process"]["args"] = ["/no/such/program"]
    set_hooks(bundle, poststop=[host.hook("poststop")])
    cid = runtime.new_id()
    result = runtime.create(bundle, cid)
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr
    assert host.order() == ["poststop"]
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_missing_hook_program_is_a_clear_error(runtime, bundle):
    set_hooks(bundle, createRuntime=[{"path": "/no/such/hook"}])
    cid = runtime.new_id()
    result = runtime.create(bundle, cid)
    assert result.returncode == 1
    assert "error running createRuntime hook #0: /no/such/hook: no such file" in (
        result.stderr
    )
    assert len(result.stderr.splitlines()) == 1
    assert_nothing_left(runtime, cid, str(bundle.path))


@pytest.mark.parametrize("phase", ["prestart", "createContainer"])
def test_hook_timeout_kills_it_and_fails_create(runtime, bundle, tmp_path, phase):
    pgid_file = tmp_path / "hook.pgid"
    sleeper = {
        "path": "/bin/sh",
        "args": ["sh", "-c", f"echo $$ > {pgid_file}; sleep 10; echo never"],
        "timeout": 1,
    }
    set_hooks(bundle, **{phase: [sleeper]})
    cid = runtime.new_id()
    began = time.monotonic()
    result = runtime.create(bundle, cid)
    elapsed = time.monotonic() - began
    assert result.returncode == 1
    assert (
        f"error running {phase} hook #0: hook ran past specified timeout of 1.0s"
        in (result.stderr)
    )
    assert elapsed < 5, f"create took {elapsed:.1f}s with a 1 s hook timeout"
    # The hook and its child (same process group) were killed.
    assert not processes_in_group(int(pgid_file.read_text()))
    assert_nothing_left(runtime, cid, str(bundle.path))


def processes_in_group(pgid: int) -> list[int]:
    """Live processes of a process group."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def test_failing_start_container_hook_stops_the_container(
    runtime, bundle, inside, tmp_path
):
    bundle.config["process"]["args"] = ["sh", "-c", "echo program >> /hookout/order"]
    set_hooks(bundle, startContainer=[inside.hook("s1", code=4), inside.hook("s2")])
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    err_file = tmp_path / "container.err"
    with open(err_file, "w") as err:
        created = runtime(
            "create", "--bundle", str(bundle.path), "--pid-file", str(pid_file), cid,
            stdout=err, stderr=err, capture_output=False,
        )  # fmt: skip
    assert created.returncode == 0
    pid = int(pid_file.read_text())
    started = runtime("start", cid)
    # The program never ran, the rest of the phase neither; init exited 1
    # and start reported the hook's error.
    assert reap(pid) == 1
    assert inside.order() == ["s1"]
    assert started.returncode == 1
    assert "error running startContainer hook #0: exit status 4" in started.stderr
    assert err_file.read_text() == ""
    assert runtime.state(cid)["status"] == "stopped"
    runtime.ok("delete", cid)
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_failing_start_container_hook_fails_start(runtime, bundle, inside, tmp_path):
    set_hooks(bundle, startContainer=[inside.hook("s1", code=4)])
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    pid = int(pid_file.read_text())
    try:
        result = runtime("start", cid, log_json=True)
        assert result.returncode == 1
        assert result.stderr.startswith(
            "error running startContainer hook #0: exit status 4, stdout: out-s1"
        )
        # start returns once the container is stopped.
        assert runtime.state(cid)["status"] == "stopped"
    finally:
        reap(pid)


def test_failing_poststart_hook_is_a_warning(runtime, bundle, host, tmp_path):
    bundle.config["process"]["args"] = ["sleep", "30"]
    set_hooks(bundle, poststart=[host.hook("bad", code=5), host.hook("next")])
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    result = runtime.ok("start", cid, log_json=True)
    assert result.stderr == ""
    lines = log_lines(runtime)
    assert [line["level"] for line in lines] == ["warning"]
    assert lines[0]["msg"].startswith("error running poststart hook #0: exit status 5")
    assert host.order() == ["bad", "next"]
    assert runtime.state(cid)["status"] == "running"
    runtime.ok("delete", "--force", cid)
    assert reap(int(pid_file.read_text())) == 137


def test_failing_poststop_hook_is_a_warning(runtime, bundle, host, tmp_path):
    set_hooks(bundle, poststop=[host.hook("bad", code=6), host.hook("slow", timeout=5)])
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    result = runtime.ok("delete", cid, log_json=True)
    assert result.stderr == ""
    lines = log_lines(runtime)
    assert [line["level"] for line in lines] == ["warning"]
    assert lines[0]["msg"].startswith("error running poststop hook #0: exit status 6")
    # The remaining poststop hooks still run.
    assert host.order() == ["bad", "slow"]
    assert reap(int(pid_file.read_text())) == 137
    assert_nothing_left(runtime, cid, str(bundle.path))


def test_poststart_timeout_is_a_warning(runtime, bundle, tmp_path):
    bundle.config["process"]["args"] = ["sleep", "30"]
    sleeper = {"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}
    set_hooks(bundle, poststart=[sleeper])
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    assert runtime.create(bundle, cid, "--pid-file", str(pid_file)).returncode == 0
    began = time.monotonic()
    runtime.ok("start", cid, log_json=True)
    assert time.monotonic() - began < 5
    (line,) = log_lines(runtime)
    assert line["level"] == "warning"
    assert "hook ran past specified timeout of 1.0s" in line["msg"]
    runtime.ok("delete", "--force", cid)
    reap(int(pid_file.read_text()))
