"""The commands that need no container: ``--version``, ``spec``, ``features``.

Run as engines run them: the installed entry point, also with an empty
environment (podman calls the runtime without PATH).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

pytestmark = pytest.mark.root


def test_version_has_runcs_shape_with_our_name(runtime):
    for flag in ("--version", "-v", "-version"):
        result = runtime.ok(flag)
        lines = result.stdout.splitlines()
        assert re.fullmatch(r"pyruntime version \d+\.\d+\.\d+", lines[0]), lines
        assert lines[1].startswith("commit: ")
        assert lines[2] == "spec: 1.2.0"


def test_entry_point_works_with_an_empty_environment(runtime):
    result = subprocess.run(
        [*runtime.command, "--version"], env={}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pyruntime version ")
    empty_xdg = subprocess.run(
        [*runtime.command, "--root", str(runtime.root), "list", "-q"],
        env={"XDG_RUNTIME_DIR": ""},
        capture_output=True,
        text=True,
    )
    assert empty_xdg.returncode == 0, empty_xdg.stderr


def test_spec_writes_a_config_that_runs(runtime, tmp_path, rootfs_template):
    import shutil

    bundle = tmp_path / "b"
    bundle.mkdir()
    runtime.ok("spec", "--bundle", str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    assert config["ociVersion"]
    assert config["process"]["args"] == ["sh"]
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert {ns["type"] for ns in config["linux"]["namespaces"]} >= {
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    }
    # As runc: an existing config.json is never overwritten.
    again = runtime("spec", "--bundle", str(bundle))
    assert again.returncode == 1
    assert "File config.json exists. Remove it first" in again.stderr
    # The default config runs the busybox rootfs once terminal is off.
    shutil.copytree(rootfs_template, bundle / "rootfs", symlinks=True)
    config["process"].update(terminal=False, args=["true"])
    (bundle / "config.json").write_text(json.dumps(config))
    runtime.ok("run", "--bundle", str(bundle), runtime.new_id())


def test_spec_rootless_maps_the_caller(runtime, tmp_path):
    runtime.ok("spec", "--rootless", "--bundle", str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    types = {ns["type"] for ns in config["linux"]["namespaces"]}
    assert "user" in types
    assert "network" not in types
    assert config["linux"]["uidMappings"][0]["containerID"] == 0
    assert config["linux"]["uidMappings"][0]["size"] == 1


def test_features_lists_what_works(runtime):
    result = runtime.ok("features")
    doc = json.loads(result.stdout)
    assert doc["ociVersionMin"] == "1.0.0"
    assert doc["ociVersionMax"] == "1.2.0"
    assert doc["hooks"] == [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ]
    linux = doc["linux"]
    assert set(linux["namespaces"]) == {
        "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
    }  # fmt: skip
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    seccomp = linux["seccomp"]
    assert seccomp["enabled"] is True
    assert set(seccomp["actions"]) >= {
        "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_NOTIFY", "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE",
    }  # fmt: skip
    assert "SCMP_CMP_MASKED_EQ" in seccomp["operators"]
    assert "SCMP_ARCH_X86_64" in seccomp["archs"]
    assert set(seccomp["supportedFlags"]) <= set(seccomp["knownFlags"])
    # Not there: never claimed.
    assert linux["apparmor"] == {"enabled": False}
    assert linux["selinux"] == {"enabled": False}
    assert linux["cgroup"]["systemd"] is False
    assert linux["mountExtensions"]["idmap"]["enabled"] is False
    assert {"rbind", "ro", "nosuid", "rro"} <= set(doc["mountOptions"])
    # runc prints it with a 4-space indent.
    assert result.stdout.startswith('{\n    "ociVersionMin"')


def test_no_new_keyring_and_no_pivot_are_accepted(runtime, bundle):
    for flag in ("--no-new-keyring", "--no-pivot"):
        result = runtime("run", "--bundle", str(bundle.path), flag, runtime.new_id())
        assert result.returncode == 0, (flag, result.stderr)


def test_no_command_prints_the_help(runtime):
    for argv in ((), ("--root", str(runtime.root))):
        result = subprocess.run(
            [*runtime.command, *argv], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout or "USAGE:" in result.stdout


def test_kill_with_a_signal_number_linux_lacks_is_one_error_line(runtime, bundle):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "100"]))
    cid = runtime.new_id()
    assert (
        runtime.detached("run", "-d", "--bundle", str(bundle.path), cid).returncode == 0
    )
    result = runtime("kill", cid, "99")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_foreground_run_relays_a_terminal_itself(runtime, bundle):
    bundle.edit(
        lambda c: c["process"].update(
            terminal=True, args=["sh", "-c", "tty; echo hello; exit 3"]
        )
    )
    cid = runtime.new_id()
    result = runtime("run", "--bundle", str(bundle.path), cid)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/"), lines
    assert "hello" in lines
    assert runtime("state", cid).returncode == 1  # deleted after the run


def test_failed_foreground_run_leaves_no_container(runtime, bundle):
    bundle.edit(lambda c: c.update(hooks={"startContainer": [{"path": "/bin/false"}]}))
    cid = runtime.new_id()
    result = runtime("run", "--bundle", str(bundle.path), cid)
    assert result.returncode == 1
    assert "startContainer hook #0" in result.stderr
    assert not (runtime.root / cid).exists()
    keep = runtime.new_id()
    result = runtime("run", "--keep", "--bundle", str(bundle.path), keep)
    assert result.returncode == 1
    assert runtime.state(keep)["status"] == "stopped"


def run_with_reader_gone(argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``argv`` with stdout a pipe whose reading end is already closed."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(argv, proc.returncode, None, err)


@pytest.mark.parametrize("command", [("list",), ("list", "--format", "json")])
def test_output_to_a_closed_pipe_dies_of_sigpipe_as_runc(runtime, bundle, command):
    # `pyruntime list | head -1` with a long list: runc (Go) is killed by
    # SIGPIPE, a shell shows 141; no traceback, no error line.
    for _ in range(3):
        cid = runtime.new_id()
        assert (
            runtime.detached("create", "--bundle", str(bundle.path), cid).returncode
            == 0
        )
    result = run_with_reader_gone(runtime.argv(*command))
    assert result.returncode == -signal.SIGPIPE, result.stderr
    assert result.stderr == b""


def test_list_quiet_prints_the_ids_whatever_the_format(runtime, bundle):
    # runc prints the ids for --quiet before it looks at --format.
    cid = runtime.new_id()
    assert runtime.detached("create", "--bundle", str(bundle.path), cid).returncode == 0
    for argv in (("list", "-q", "-f", "bogus"), ("list", "--format=bogus", "-q")):
        result = runtime(*argv)
        assert (result.returncode, result.stdout) == (0, f"{cid}\n"), argv
    refused = runtime("list", "-f", "bogus")
    assert refused.returncode == 1
    assert refused.stderr.endswith('msg="invalid format option"\n')
    runtime.ok("delete", "--force", cid)


def test_annotations_come_out_with_sorted_keys_as_runcs(runtime, bundle, tmp_path):
    # runc writes the state with Go's encoding/json, which sorts a map's keys.
    record = tmp_path / "hook.stdin"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {record}"]}
    bundle.edit(
        lambda c: c.update(
            annotations={"z.last": "1", "a.first": "2", "m.middle": "3"},
            hooks={"prestart": [hook]},
        )
    )
    cid = runtime.new_id()
    assert runtime.detached("create", "--bundle", str(bundle.path), cid).returncode == 0
    expected = '"annotations":{"a.first":"2","m.middle":"3","z.last":"1"}'
    state = runtime.ok("state", cid).stdout
    assert expected in state.replace(" ", "").replace("\n", "")
    assert expected in runtime.ok("list", "-f", "json").stdout
    assert expected in record.read_text()
    runtime.ok("delete", "--force", cid)
