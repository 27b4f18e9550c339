"""Fixtures for the engine end-to-end tests: containerd, its CRI plugin, podman.

Each scenario runs once per runtime (``runtime_name`` is ``runc`` or
``pyruntime``), with the same steps and the same assertions: a scenario that
passes with runc and fails with pyruntime points at pyruntime. The harness
itself (private engines, leak checks) is in ``engines.py``.

The root conftest makes the test process a child subreaper for the
integration tests. Engines expect their daemons (containerd's shims,
conmon) to be re-parented to init, as on a real host, so the e2e modules
switch that off while they run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tests.e2e.engines import (
    IMAGE,
    IMAGE_PATH,
    KNOWN_PYRUNTIME_FAILURES,
    PAUSE_SCRIPT,
    RUNTIMES,
    Containerd,
    CtrTest,
    Podman,
    PodmanTest,
    cmdline,
    processes_mentioning,
    record_cgroup,
    record_host_dirs,
    remove_cgroup_tree,
    remove_created_host_dirs,
    require,
    run,
    sweep_namespace,
    unmount_under,
)

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "engines: end to end through containerd, CRI and podman"
    )


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        path = Path(item.fspath)
        if here not in path.parents:
            continue
        item.add_marker(pytest.mark.engines)
        params = getattr(item, "callspec", None)
        runtime = params.params.get("runtime_name") if params else None
        known = KNOWN_PYRUNTIME_FAILURES.get(f"{path.name}::{item.originalname}")
        if runtime == "pyruntime" and known:
            item.add_marker(pytest.mark.xfail(reason=known, strict=True))


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    """Not a subreaper here (overrides the root conftest's fixture)."""
    libc = ctypes.CDLL(None, use_errno=True)
    before = ctypes.c_int(0)
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, before.value, 0, 0, 0)


@pytest.fixture(scope="session")
def workdir():
    """The session's private directory (``PYRUNTIME_E2E_DIR`` if set)."""
    if os.geteuid() != 0:
        pytest.skip("the engine tests need root")
    given = os.environ.get("PYRUNTIME_E2E_DIR")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="pyruntime-e2e-"))
    path.mkdir(parents=True, exist_ok=True)
    record_host_dirs(path)
    try:
        yield path
    finally:
        unmount_under(path)
        remove_created_host_dirs(path)
        if not given:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=sorted(RUNTIMES), ids=sorted(RUNTIMES))
def runtime_name(request) -> str:
    """The runtime the engine drives: ``pyruntime`` or ``runc``."""
    binary = RUNTIMES[request.param]
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} not installed (make install)")
    return request.param


@pytest.fixture(scope="session")
def oci_layout(workdir: Path, rootfs_template: Path) -> Path:
    """An OCI image layout built with umoci from the busybox rootfs.

    Tag ``latest`` runs ``sh``; tag ``pause`` is the CRI sandbox image. The
    layout directory is named ``busybox`` because podman names an image
    pulled from ``oci:DIR`` ``localhost/<basename of DIR>``.
    """
    require("umoci")
    layout = workdir / "image" / "busybox"
    if (layout / "index.json").exists():
        return layout
    image = f"{layout}:latest"
    run(["umoci", "init", "--layout", str(layout)])
    run(["umoci", "new", "--image", image])
    run(["umoci", "insert", "--image", image, str(rootfs_template), "/"])
    run(["umoci", "config", "--image", image, "--config.cmd", "sh",
         "--config.env", IMAGE_PATH, "--config.workingdir", "/"])  # fmt: skip
    run(["umoci", "config", "--image", image, "--tag", "pause",
         "--clear=config.cmd", "--config.entrypoint", "/bin/sh",
         "--config.entrypoint", "-c", "--config.entrypoint", PAUSE_SCRIPT])  # fmt: skip
    return layout


@pytest.fixture(scope="session")
def oci_archive(oci_layout: Path) -> Path:
    """The layout as a tar, for ``ctr images import``."""
    archive = oci_layout.parent / "busybox-oci.tar"
    if not archive.exists():
        run(["tar", "-C", str(oci_layout), "-cf", str(archive), "."])
    return archive


@pytest.fixture(scope="session")
def containerd(workdir: Path, oci_archive: Path):
    """A running private containerd with the image in two namespaces.

    The test namespace serves ``ctr``; ``k8s.io`` is where the CRI plugin
    looks for images, the sandbox image included (no registry to pull from).
    """
    require("containerd", "ctr", "containerd-shim-runc-v2")
    daemon = Containerd(workdir / "containerd")
    daemon.base.mkdir(parents=True, exist_ok=True)
    record_cgroup(workdir, daemon.namespace)
    problems: list[str] = []
    try:
        daemon.start()
        for ns in (daemon.namespace, "k8s.io"):
            daemon.ctr("images", "import", "--base-name", "localhost/busybox",
                       str(oci_archive), namespace=ns)  # fmt: skip
        yield daemon
    finally:
        for ns in (daemon.namespace, "k8s.io"):
            if daemon.process and daemon.process.poll() is None:
                problems += sweep_namespace(daemon, ns)
        problems += daemon.stop()
        problems += remove_cgroup_tree(daemon.namespace)
    assert not problems, "containerd session left things behind:\n" + "\n".join(
        problems
    )


@pytest.fixture(scope="session")
def podman(workdir: Path, oci_layout: Path):
    """Private podman, with the image pulled from the OCI layout."""
    require("podman", "conmon", "unshare")
    engine = Podman(workdir / "podman")
    engine.write_config()
    record_cgroup(workdir, engine.cgroup_parent)
    problems: list[str] = []
    try:
        # containers/image keeps a blob-info cache in /var/lib/containers for
        # root and no flag moves it: pull in a private mount namespace with a
        # scratch tmpfs there, so the host's /var/lib is not written.
        # podman names the image after the layout's path as given: pull
        # it as "busybox" from its parent directory.
        pull = (
            f"podman pull -q --signature-policy {engine.policy} "
            f"oci:{oci_layout.name}:latest"
        )
        run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs -o size=16m pyruntime-e2e /var/lib && {pull}"],
            env=engine.env, cwd=oci_layout.parent)  # fmt: skip
        engine("runc", "image", "exists", IMAGE)
        yield engine
    finally:
        left = engine("runc", "ps", "-a", "-q", check=False).stdout.split()
        problems += [f"podman container {c} left behind" for c in left]
        if left:
            engine("runc", "rm", "-f", "-t", "0", *left, check=False)
        for pid in processes_mentioning(str(engine.base)):
            problems.append(f"process {pid} still running: {cmdline(pid)}")
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        problems += remove_cgroup_tree(engine.cgroup_parent)
    assert not problems, "podman session left things behind:\n" + "\n".join(problems)


@pytest.fixture
def pm(podman: Podman, runtime_name: str):
    """podman bound to the runtime under test for one test."""
    session = PodmanTest(podman, runtime_name)
    try:
        yield session
    finally:
        session.cleanup()


@pytest.fixture
def ctr(containerd: Containerd, runtime_name: str):
    """``ctr`` bound to the runtime under test for one test."""
    session = CtrTest(containerd, runtime_name)
    try:
        yield session
    finally:
        session.cleanup()
