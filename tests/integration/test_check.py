"""``pyruntime check`` and ``explain`` through the CLI, on this host's kernel.

- Each seed config (``config.seed.json``) gives the exact, complete list of
  its problems on this host: compared as (severity, group, code, where), with
  the few entries that depend on the host's disks, CPUs and namespaces
  computed from the host itself.
- Each runnable config (``config.json``) passes; its JSON report follows the
  schema the tests hold (tests/check_schema.py).
- ``check --run`` runs a bundle, verifies its limits from the inside, and
  leaves nothing behind; a failing or hanging program fails or is stopped.
- ``check`` and ``explain`` change nothing: no state root, no cgroup, no
  mount, no process, not a file of the bundle.

Every bundle is a private copy (world-searchable, for the user-namespace
bundles) with its own rootfs, removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.check_schema import REPORT, validate
from tests.conftest import (
    REPO,
    assert_nothing_left,
    base_config,
    cgroup_dirs,
    mounts_mentioning,
    processes_mentioning,
)

pytestmark = pytest.mark.root

BUNDLES = REPO / "bundles"
HOOKS = BUNDLES / "financial" / "hooks"
DEMO_HOOKS_DIR = "/usr/local/libexec/pyruntime-demo/"
FINANCIAL_HOST_ID = 200001


# --- host facts the expected lists depend on ----------------------------------------


def host_cgroup_layout() -> tuple[str, list[str]]:
    """The cgroup mode and what the cgroup2 tree offers, read directly."""
    with open("/proc/self/mountinfo") as handle:
        lines = handle.read().splitlines()
    v1 = any(" - cgroup " in line for line in lines)
    unified = [line.split()[4] for line in lines if " - cgroup2 " in line]
    if not unified:
        return "v1", []
    controllers = (Path(unified[0]) / "cgroup.controllers").read_text().split()
    return ("hybrid" if v1 else "v2"), controllers


def online_cpus() -> set[int]:
    """The host's online CPUs."""
    text = Path("/sys/devices/system/cpu/online").read_text().strip()
    cpus = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def has_block_device(device: str) -> bool:
    return os.path.exists(f"/sys/dev/block/{device}")


def requires_the_development_host() -> None:
    """The seed lists are for a hybrid host whose cgroup2 tree has hugetlb only."""
    mode, controllers = host_cgroup_layout()
    if mode != "hybrid" or "memory" in controllers:
        pytest.skip("the expected lists are for a hybrid host (v1 controllers)")


# --- bundles --------------------------------------------------------------------


@pytest.fixture
def copies(rootfs_template):
    """``make(name, config_name)``: a private copy of bundles/NAME."""
    made: list[Path] = []

    def make(name: str, config_name="config.json", config=None) -> Path:
        bundle = Path(tempfile.mkdtemp(prefix=f"pyrt-check-{name}-"))
        made.append(bundle)
        bundle.chmod(0o755)
        if config is None and config_name == "config.seed.json":
            shutil.copy(BUNDLES / name / config_name, bundle / config_name)
        else:
            if config is None:
                config = json.loads((BUNDLES / name / config_name).read_text())
                rewrite_hook_paths(config)
            (bundle / config_name).write_text(json.dumps(config, indent=2))
        shutil.copytree(rootfs_template, bundle / "rootfs", symlinks=True)
        copy_host_dirs(name, bundle)
        return bundle

    yield make
    for bundle in made:
        shutil.rmtree(bundle, ignore_errors=True)


def rewrite_hook_paths(config: dict) -> None:
    """Point the demo hooks at the repository's scripts (no `make hooks`)."""
    for hooks in config.get("hooks", {}).values():
        for hook in hooks:
            if hook["path"].startswith(DEMO_HOOKS_DIR):
                hook["path"] = str(HOOKS / hook["path"][len(DEMO_HOOKS_DIR) :])


def copy_host_dirs(name: str, bundle: Path) -> None:
    """The financial bundle's host directories (config, and its log dir)."""
    if (BUNDLES / name / "host").is_dir():
        shutil.copytree(BUNDLES / name / "host", bundle / "host", symlinks=True)
    if name == "financial":
        logs = bundle / "host" / "var" / "log" / "containers"
        logs.mkdir(parents=True, exist_ok=True)
        os.chown(logs, FINANCIAL_HOST_ID, FINANCIAL_HOST_ID)


def check(runtime, bundle: Path, *flags: str, timeout: float = 60):
    """Run ``check --format json``; return the process and the parsed report."""
    result = runtime("check", "--format", "json", *flags, str(bundle), timeout=timeout)
    report = json.loads(result.stdout)
    assert validate(report, REPORT) == [], result.stdout
    return result, report


def keys(report: dict) -> Counter:
    """(severity, group, code, where) of every finding, counted."""
    return Counter(
        (f["severity"], f["group"], f["code"], f["where"]) for f in report["findings"]
    )


# --- the seeds, as written ------------------------------------------------------


def expected_financial() -> list[tuple]:
    found = [
        ("error", "config", "json-comments", "config.seed.json line 269, column 9"),
        # Only 10001 is mapped: the container's root must be too.
        ("error", "config", "invalid", "linux.uidMappings"),
        ("error", "config", "invalid", "linux.gidMappings"),
        ("error", "bundle", "bind-source", "mounts[3].source"),
        ("error", "bundle", "bind-source", "mounts[4].source"),
        ("error", "bundle", "hook", "hooks.createRuntime[0].path"),
        ("warning", "bundle", "hook", "hooks.poststart[0].path"),
        ("warning", "bundle", "hook", "hooks.poststop[0].path"),
        ("warning", "bundle", "dev-in-rootfs", "mounts"),
        ("warning", "config", "devices-unrestricted", "linux.resources.devices"),
    ]
    if not has_block_device("8:0"):
        read = "linux.resources.blockIO.throttleReadBpsDevice[0]"
        found.append(("error", "host", "block-device", read))
    return found


def expected_microservice() -> list[tuple]:
    return [
        ("warning", "bundle", "dev-in-rootfs", "mounts"),
        ("warning", "config", "caps-lost", "process.capabilities.effective"),
        ("warning", "config", "no-seccomp", "linux.seccomp"),
        ("warning", "config", "devices-unrestricted", "linux.resources.devices"),
    ]


def partial_overlay(cpus: set[int]) -> list[tuple]:
    """What web-app and data-processor share: a partial config, no namespaces."""
    found = [
        ("error", "config", "decode", "process.cwd"),
        ("error", "config", "invalid", "root"),
        ("error", "config", "namespaces", "linux.namespaces"),
        ("warning", "config", "caps-kept", "process.capabilities"),
        ("warning", "config", "no-new-privileges", "process.noNewPrivileges"),
        ("warning", "config", "no-seccomp", "linux.seccomp"),
        ("warning", "config", "devices-unrestricted", "linux.resources.devices"),
        ("note", "bundle", "skipped", "root"),
    ]
    found += [("warning", "config", "host-namespace", "linux.namespaces")] * 4
    if not cpus <= online_cpus():
        found.append(("error", "host", "cpuset", "linux.resources.cpu.cpus"))
    return found


def expected_web_app() -> list[tuple]:
    found = partial_overlay(set(range(4)))
    if not has_block_device("8:0"):
        for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice"):
            where = f"linux.resources.blockIO.{key}[0]"
            found.append(("error", "host", "block-device", where))
    return found


def expected_data_processor() -> list[tuple]:
    return partial_overlay(set(range(8)))


def expected_multi_tenant() -> list[tuple]:
    found = [
        ("error", "config", "invalid", "process"),
        ("error", "config", "invalid", "root"),
        ("warning", "config", "devices-unrestricted", "linux.resources.devices"),
        ("note", "bundle", "skipped", "root"),
    ]
    for index, path in ((2, "/var/run/netns/tenant-a"), (6, "/sys/fs/cgroup/tenant-a")):
        if not os.path.exists(path) or os.path.isdir(path):
            where = f"linux.namespaces[{index}].path"
            found.append(("error", "bundle", "namespace-path", where))
    for key in ("memory.max", "cpu.max", "pids.max"):
        where = f"linux.resources.unified.{key}"
        found.append(("error", "host", "cgroup-file", where))
    return found


SEEDS = {
    "financial": expected_financial,
    "microservice": expected_microservice,
    "web-app": expected_web_app,
    "data-processor": expected_data_processor,
    "multi-tenant": expected_multi_tenant,
}


@pytest.mark.parametrize("name", list(SEEDS))
def test_each_seed_gives_its_exact_problems(name, copies, runtime):
    requires_the_development_host()
    bundle = copies(name, "config.seed.json")
    result, report = check(runtime, bundle, "--config", "config.seed.json")
    assert keys(report) == Counter(SEEDS[name]()), json.dumps(report, indent=1)
    errors = report["counts"]["error"]
    assert result.returncode == (1 if errors else 0)
    assert report["runnable"] is (errors == 0)
    for finding in report["findings"]:
        assert finding["message"] and finding["hint"], finding


def test_seed_messages_say_where_and_what(copies, runtime):
    requires_the_development_host()
    _, report = check(
        runtime,
        copies("multi-tenant", "config.seed.json"),
        "--config",
        "config.seed.json",
    )
    by_where = {f["where"]: f for f in report["findings"]}
    cgroup_ns = by_where["linux.namespaces[6].path"]
    assert "/sys/fs/cgroup/tenant-a" in cgroup_ns["message"]
    assert "namespace file" in cgroup_ns["hint"]
    memory = by_where["linux.resources.unified.memory.max"]
    assert "cgroup v1" in memory["hint"]


def test_every_seed_is_covered():
    names = {p.name for p in BUNDLES.iterdir() if (p / "config.seed.json").exists()}
    assert names == set(SEEDS)


# --- runnable bundles --------------------------------------------------------------


@pytest.mark.parametrize("name", list(SEEDS))
def test_each_runnable_config_passes(name, copies, runtime):
    result, report = check(runtime, copies(name))
    assert result.returncode == 0, json.dumps(report, indent=1)
    assert report["runnable"] is True
    assert report["counts"]["error"] == 0
    if name == "financial":
        assert report["findings"] == []


def test_a_default_bundle_passes_with_the_usual_warnings(bundle, runtime):
    result, report = check(runtime, bundle.path)
    assert result.returncode == 0
    assert keys(report) == Counter(
        [
            ("warning", "config", "caps-kept", "process.capabilities"),
            ("warning", "config", "writable-root", "root.readonly"),
            ("warning", "config", "no-seccomp", "linux.seccomp"),
            ("warning", "config", "devices-unrestricted", "linux.resources.devices"),
        ]
    )


def test_text_is_plain_when_piped(copies, runtime):
    result = runtime(
        "check",
        str(copies("web-app", "config.seed.json")),
        "--config",
        "config.seed.json",
    )
    assert result.returncode == 1
    assert "\033[" not in result.stdout
    lines = result.stdout.splitlines()
    for heading in ("config", "host", "warnings", "notes"):
        assert heading in lines
    assert lines[-1].startswith("result: 6 errors")
    assert lines[-1].endswith("the bundle would not run")


def test_bundle_problems_found_on_disk(bundle, runtime):
    def change(config):
        config["process"]["args"] = ["/usr/bin/nothing-here"]
        config["process"]["cwd"] = "/etc/passwd"
        config["mounts"].append(
            {
                "destination": "/data",
                "type": "bind",
                "source": "missing",
                "options": ["rbind"],
            }
        )
        config["linux"]["namespaces"].append({"type": "cgroup", "path": "/proc"})
        config["hooks"] = {"prestart": [{"path": str(text_file)}]}

    text_file = bundle.path / "not-a-program"
    text_file.write_text("#!/bin/sh\n")
    text_file.chmod(0o644)
    bundle.edit(change)
    result, report = check(runtime, bundle.path)
    assert result.returncode == 1
    errors = {k for k in keys(report) if k[0] == "error"}
    assert errors == {
        ("error", "bundle", "executable", "process.args[0]"),
        ("error", "bundle", "cwd", "process.cwd"),
        ("error", "bundle", "bind-source", "mounts[6].source"),
        ("error", "bundle", "namespace-path", "linux.namespaces[5].path"),
        ("error", "bundle", "hook", "hooks.prestart[0].path"),
    }


def test_device_nodes_that_container_root_cannot_make(copies, runtime):
    config = base_config()
    config["mounts"] = [m for m in config["mounts"] if "/dev" not in m["destination"]]
    config["linux"]["namespaces"].append({"type": "user"})
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = mapping
    result, report = check(runtime, copies("microservice", config=config))
    assert result.returncode == 1
    assert ("error", "bundle", "device-nodes", "mounts") in keys(report)


# --- check --run -------------------------------------------------------------------


def assert_run_left_nothing(runtime, report: dict, bundle: Path) -> None:
    """No state, cgroup, mount or process of the smoke test's container."""
    cid = report["run"]["id"]
    assert not cgroup_dirs(cid), "cgroup left"
    assert not mounts_mentioning(str(bundle)), "mounts left"
    assert not processes_mentioning(cid), "processes left"


@pytest.mark.parametrize("name", ["financial", "microservice", "multi-tenant"])
def test_run_verifies_the_limits_from_inside(name, copies, runtime):
    bundle = copies(name)
    result, report = check(runtime, bundle, "--run", timeout=120)
    run = report["run"]
    assert result.returncode == 0, json.dumps(run, indent=1)
    assert run["ok"] and run["exit_status"] == 0
    statuses = {v["what"]: v["status"] for v in run["verified"]}
    assert "differs" not in statuses.values(), run["verified"]
    for what in ("user", "namespaces", "capabilities", "no_new_privs"):
        assert statuses[what] == "verified", what
    if name == "financial":
        for what in (
            "uid_map",
            "RLIMIT_NPROC",
            "oom_score_adj",
            "read-only rootfs",
            "cgroup pids.max",
            "cgroup memory.limit_in_bytes",
            "maskedPaths",
            "readonlyPaths",
        ):
            assert statuses[what] == "verified", what
        assert statuses["seccomp"] in ("verified", "not seen")
    assert_run_left_nothing(runtime, report, bundle)


def test_run_reports_a_failing_program(bundle, runtime):
    bundle.edit(
        lambda c: c["process"].update(args=["sh", "-c", "echo bye >&2; exit 3"])
    )
    result, report = check(runtime, bundle.path, "--run")
    run = report["run"]
    assert result.returncode == 1
    assert run["ok"] is False and run["exit_status"] == 3
    assert "exited with status 3" in run["outcome"]
    assert run["output_tail"] == ["bye"]
    assert "the smoke test failed" in runtime("check", "--run", str(bundle.path)).stdout
    assert_run_left_nothing(runtime, report, bundle.path)


def test_run_stops_a_program_that_keeps_running(bundle, runtime):
    bundle.edit(lambda c: c["process"].update(args=["sleep", "300"]))
    result, report = check(runtime, bundle.path, "--run", "--timeout", "3")
    run = report["run"]
    assert result.returncode == 0, run
    assert run["exit_status"] is None
    assert run["outcome"].startswith("still running after 3 s")
    assert_run_left_nothing(runtime, report, bundle.path)


def test_run_does_not_start_a_bundle_with_errors(bundle, runtime):
    bundle.edit(lambda c: c["process"].update(args=["/nowhere"]))
    result, report = check(runtime, bundle.path, "--run")
    assert result.returncode == 1
    assert report["run"]["outcome"] == "not run: the check found errors"


# --- changing nothing ---------------------------------------------------------------


def tree_snapshot(path: Path) -> dict[str, tuple]:
    """Every entry below ``path`` with its type, mode, size and mtime."""
    found = {}
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            info = os.lstat(full)
            found[full] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


@pytest.mark.parametrize("command", ["check", "explain"])
def test_check_and_explain_change_nothing(command, copies, runtime):
    bundle = copies("financial")
    before = tree_snapshot(bundle)
    cid = f"inspect-{uuid.uuid4().hex[:10]}"
    runtime.ids.add(cid)
    args = ["--id", cid] if command == "explain" else []
    result = runtime(command, *args, str(bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    if command == "explain":
        assert f"/pyruntime/{cid}" in result.stdout
    assert tree_snapshot(bundle) == before, "the bundle changed"
    assert not runtime.root.exists(), "the state root was created"
    assert_nothing_left(runtime, cid, str(bundle))


def test_explain_json_names_every_step(copies, runtime):
    result = runtime("explain", "--format", "json", str(copies("multi-tenant")))
    assert result.returncode == 0
    plan = json.loads(result.stdout)
    assert plan["problems"] == []
    whats = [step["what"] for step in plan["steps"]]
    assert any("make a user namespace" in what for what in whats)
    assert [s["n"] for s in plan["steps"]] == list(range(1, len(whats) + 1))


def test_explain_refuses_an_invalid_config(copies, runtime):
    bundle = copies("multi-tenant", "config.seed.json")
    result = runtime("explain", "--config", "config.seed.json", str(bundle))
    assert result.returncode == 1
    assert "cannot explain this bundle" in result.stdout


# --- the fast path and click -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("command", ["check", "explain"])
@pytest.mark.parametrize(
    ("name", "config_name"),
    [("microservice", "config.json"), ("financial", "config.seed.json")],
)
def test_fast_path_and_click_say_the_same(
    name, config_name, command, fmt, copies, runtime
):
    """``--`` before the bundle is click's: the pair compares the two paths."""
    bundle = copies(name, config_name)
    flags = ["--format", fmt, "--config", config_name]
    if command == "explain":
        flags += ["--id", "same-" + uuid.uuid4().hex[:8]]
    fast = runtime(command, *flags, str(bundle))
    slow = runtime(command, *flags, "--", str(bundle))
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode == (0 if name == "microservice" else 1)


@pytest.mark.parametrize("command", ["check", "explain"])
def test_fast_path_and_click_refuse_alike(command, copies, runtime):
    bundle = str(copies("microservice"))
    fast = runtime(command, "--format", "xml", bundle, log_json=True)
    slow = runtime(command, "--format", "xml", "--", bundle, log_json=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode == 1
    assert fast.stderr == "invalid format option: xml (text or json)\n"
    lines = [json.loads(line) for line in runtime.log.read_text().splitlines()]
    assert [line["msg"] for line in lines] == [fast.stderr.strip()] * 2


@pytest.mark.parametrize("command", ["check", "explain"])
def test_a_reader_that_went_away(command, copies, runtime):
    """A closed pipe on stdout: status 1 and not a word, on both paths."""
    bundle = str(copies("microservice"))
    for args in ([bundle], ["--", bundle]):
        child = subprocess.Popen(
            runtime.argv(command, "--format", "json", *args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        child.stdout.close()  # long before the report is written
        _, err = child.communicate(timeout=60)
        assert (child.returncode, err) == (1, b""), args


#: What the runtime's own modules that check uses bring with them.
PLANNERS = (
    "pyruntime.spec, pyruntime.cgroups, pyruntime.rootfs.mounts, "
    "pyruntime.rootfs.devices, pyruntime.security.capabilities, "
    "pyruntime.security.process_attrs, pyruntime.security.lsm, pyruntime.namespaces"
)
HEAVY = ("click", "json", "re", "typing", "dataclasses", "inspect", "platform")


@pytest.mark.parametrize("command", ["check", "explain"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_check_adds_no_heavy_import(command, fmt, bundle):
    """Of click, json, re, typing...: only what the runtime's planners load."""
    code = (
        "import io, sys\n"
        f"import {PLANNERS}\n"
        "before = set(sys.modules)\n"
        "from pyruntime.cli import fast, fast_inspect\n"
        "sys.stdout = io.StringIO()\n"
        f"values, _, options, args = fast.parse([{command!r}, '-f', {fmt!r}, "
        f"{str(bundle.path)!r}])\n"
        "glob = fast.Globals('/nonexistent', False, 'auto')\n"
        f"code = fast_inspect.run_{command}(glob, **options, bundle=args[0])\n"
        "sys.stdout = sys.__stdout__\n"
        f"print(code, sorted(set({HEAVY!r}) & (set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split(None, 1) == ["0", "[]\n"]


def test_cost_of_check_next_to_state(copies, runtime):
    """check reads a bundle in a fraction of a second (docs/check.md has numbers)."""
    bundle = copies("microservice")
    cid = runtime.new_id("cost")
    created = runtime.detached("create", "--bundle", str(bundle), cid)
    assert created.returncode == 0, created.stderr
    best = {}
    for name, args in (("state", ("state", cid)), ("check", ("check", str(bundle)))):
        best[name] = min(timed(runtime.argv(*args)) for _ in range(5))
    print(f"state {best['state'] * 1000:.0f} ms, check {best['check'] * 1000:.0f} ms")
    assert best["check"] < 1.0


def timed(argv: list[str]) -> float:
    """Wall time of one command, in seconds."""
    start = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return time.perf_counter() - start


def capability_outside_bounding_set() -> str | None:
    """A capability name this process's bounding set lacks, if any."""
    from pyruntime.security.capabilities import (
        CAPABILITIES,
        last_capability,
        read_host_bounding_set,
    )

    have = read_host_bounding_set()
    names = [n for n, i in CAPABILITIES.items() if i <= last_capability()]
    return next((n for n in names if CAPABILITIES[n] not in have), None)


def test_host_feasibility_problems(bundle, runtime):
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    missing_cap = capability_outside_bounding_set()

    def change(config):
        process, linux = config["process"], config["linux"]
        process["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": nr_open + 1}
        ]
        process["selinuxLabel"] = "system_u:system_r:container_t:s0"
        if missing_cap:
            process["capabilities"] = {"bounding": [missing_cap]}
        config["mounts"].append(
            {
                "destination": "/mnt",
                "type": "bind",
                "source": "rootfs/etc",
                "options": ["rbind", "idmap"],
            }
        )
        linux["resources"] = {"cpu": {"period": 500, "quota": 100}}
        linux["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": [
                "SCMP_ARCH_AARCH64"
                if os.uname().machine == "x86_64"
                else "SCMP_ARCH_X86_64"
            ],
        }

    bundle.edit(change)
    result, report = check(runtime, bundle.path)
    assert result.returncode == 1
    found = keys(report)
    assert ("error", "host", "rlimit", "process.rlimits[0].hard") in found
    assert ("error", "host", "idmap", "mounts[6]") in found
    assert ("error", "host", "cpu-period", "linux.resources.cpu.period") in found
    assert ("error", "host", "cpu-quota", "linux.resources.cpu.quota") in found
    assert ("warning", "host", "seccomp-arch", "linux.seccomp.architectures") in found
    if not os.path.exists("/sys/fs/selinux/enforce"):
        assert ("error", "host", "lsm", "process.selinuxLabel") in found
    if missing_cap:
        assert ("error", "host", "capability", "process.capabilities") in found
