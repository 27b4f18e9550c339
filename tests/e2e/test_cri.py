"""The CRI plugin of containerd 1.6, as the kubelet drives it.

containerd's config names two runtime handlers, ``runc`` and ``pyruntime``,
both of type ``io.containerd.runc.v2`` with the runtime's path as
``BinaryName`` (see docs/engines.md). A Kubernetes RuntimeClass whose
``handler`` is ``pyruntime`` makes the kubelet send exactly what these tests
send: ``RunPodSandbox`` with ``runtime_handler="pyruntime"``; every
container of that pod then runs through the same handler.

No CNI plugin is configured, so the pods use the node's network namespace
(``NamespaceMode.NODE``), which the CRI plugin sets up without CNI. Such a
pod shares the node's UTS namespace too, so it must not ask for a hostname.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from tests.e2e.engines import (
    IMAGE,
    SERVE,
    leftovers,
    record_cgroup,
    remove_cgroup_tree,
    unique,
    wait_for,
)

grpc = pytest.importorskip("grpc", reason="pip install '.[e2e]'")
cri = pytest.importorskip("cri_api.v1.api_pb2", reason="pip install '.[e2e]'")
cri_grpc = pytest.importorskip("cri_api.v1.api_pb2_grpc")

TIMEOUT = 60  # seconds for one CRI call


class Cri:
    """A CRI RuntimeService client on the private containerd's socket."""

    def __init__(self, socket: str, cgroup_parent: str) -> None:
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.stub = cri_grpc.RuntimeServiceStub(self.channel)
        self.cgroup_parent = cgroup_parent

    def __getattr__(self, name):
        """``cri.RunPodSandbox(request)`` with a deadline."""
        method = getattr(self.stub, name)
        return lambda request: method(request, timeout=TIMEOUT)

    def sweep(self) -> list[str]:
        """Remove every pod and container; report each one found."""
        found = []
        for item in self.ListContainers(cri.ListContainersRequest()).containers:
            found.append(f"CRI container {item.id} left behind")
            with contextlib.suppress(grpc.RpcError):
                self.StopContainer(cri.StopContainerRequest(container_id=item.id))
                self.RemoveContainer(cri.RemoveContainerRequest(container_id=item.id))
        for item in self.ListPodSandbox(cri.ListPodSandboxRequest()).items:
            found.append(f"CRI pod {item.id} left behind")
            remove_pod(self, item.id)
        return found


@pytest.fixture(scope="session")
def cri_client(containerd, workdir):
    client = Cri(str(containerd.socket), unique("pyrt-e2e-cri"))
    record_cgroup(workdir, client.cgroup_parent)
    problems = []
    try:
        wait_for(
            lambda: client.Version(cri.VersionRequest()).runtime_api_version,
            what="the CRI plugin",
        )
        yield client
    finally:
        with contextlib.suppress(grpc.RpcError):
            problems += client.sweep()
        client.channel.close()
        problems += remove_cgroup_tree(client.cgroup_parent)
    assert not problems, "\n".join(problems)


def pod_config(client: Cri, log_dir) -> cri.PodSandboxConfig:
    name = unique("pod")
    namespaces = cri.NamespaceOption(network=cri.NamespaceMode.NODE)
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(
            name=name, uid=name, namespace="pyruntime-e2e", attempt=0
        ),
        log_directory=str(log_dir),
        linux=cri.LinuxPodSandboxConfig(
            cgroup_parent=f"/{client.cgroup_parent}",
            security_context=cri.LinuxSandboxSecurityContext(
                namespace_options=namespaces
            ),
        ),
    )


def remove_pod(client: Cri, pod_id: str) -> None:
    with contextlib.suppress(grpc.RpcError):
        client.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        client.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


class Pod:
    """A pod sandbox run through one runtime handler, and its containers."""

    def __init__(self, client: Cri, runtime_name: str, log_dir, roots) -> None:
        self.client = client
        self.runtime_name = runtime_name
        #: Each handler's ``Root``: the shim adds ``/k8s.io`` (the namespace).
        self.roots = roots
        self.config = pod_config(client, log_dir)
        self.log_dir = log_dir
        self.id = ""
        self.containers: list[str] = []

    def run(self) -> str:
        request = cri.RunPodSandboxRequest(
            config=self.config, runtime_handler=self.runtime_name
        )
        self.id = self.client.RunPodSandbox(request).pod_sandbox_id
        return self.id

    def create(self, *command: str) -> str:
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=unique("ctr"), attempt=0),
            image=cri.ImageSpec(image=IMAGE),
            command=list(command),
            log_path=f"{unique('log')}.log",
        )
        request = cri.CreateContainerRequest(
            pod_sandbox_id=self.id, config=config, sandbox_config=self.config
        )
        container_id = self.client.CreateContainer(request).container_id
        self.containers.append(container_id)
        return container_id

    def status(self, container_id: str):
        request = cri.ContainerStatusRequest(container_id=container_id)
        return self.client.ContainerStatus(request).status

    def start_serving(self) -> str:
        """Run the pod and one container that serves until SIGTERM."""
        self.run()
        container_id = self.create("sh", "-c", SERVE)
        self.client.StartContainer(cri.StartContainerRequest(container_id=container_id))
        log = self.log_dir / os.path.basename(self.status(container_id).log_path)
        wait_for(
            lambda: log.exists() and "started" in log.read_text(),
            what="the container's first log line",
        )
        return container_id

    def state_dirs(self, container_id: str) -> list:
        """The runtime state of a container under each handler's root."""
        return [root / "k8s.io" / container_id for root in self.roots.values()]

    def remove(self) -> None:
        for container_id in self.containers:
            with contextlib.suppress(grpc.RpcError):
                request = cri.RemoveContainerRequest(container_id=container_id)
                self.client.RemoveContainer(request)
        if self.id:
            remove_pod(self.client, self.id)


@pytest.fixture
def pod(cri_client, containerd, runtime_name, tmp_path):
    log_dir = tmp_path / "pod-logs"
    log_dir.mkdir()
    sandbox = Pod(cri_client, runtime_name, log_dir, containerd.runtime_roots)
    try:
        yield sandbox
    finally:
        sandbox.remove()


def running_in_handler(pod: Pod, container_id: str) -> bool:
    """True if the container's state lives under its own handler's root only."""
    mine = pod.roots[pod.runtime_name] / "k8s.io" / container_id
    others = [path for path in pod.state_dirs(container_id) if path != mine]
    return mine.is_dir() and not any(path.exists() for path in others)


def test_pod_lifecycle(pod):
    container_id = pod.start_serving()
    assert running_in_handler(pod, pod.id), "sandbox not run by its handler"
    assert running_in_handler(pod, container_id), "container not run by its handler"

    request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod.id)
    sandbox = pod.client.PodSandboxStatus(request).status
    assert sandbox.state == cri.PodSandboxState.SANDBOX_READY
    assert pod.status(container_id).state == cri.ContainerState.CONTAINER_RUNNING

    pod.client.StopContainer(
        cri.StopContainerRequest(container_id=container_id, timeout=10)
    )
    status = pod.status(container_id)
    assert status.state == cri.ContainerState.CONTAINER_EXITED
    assert status.exit_code == 0  # the trap ran: SIGTERM reached the program

    pod.client.RemoveContainer(cri.RemoveContainerRequest(container_id=container_id))
    pod.client.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
    pod.client.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    assert not leftovers(
        pod.id,
        container_id,
        paths=pod.state_dirs(pod.id) + pod.state_dirs(container_id),
    )
    pod.id, pod.containers = "", []


def test_pod_exec_sync(pod):
    container_id = pod.start_serving()

    script = "echo out $(cat /proc/1/comm); echo err >&2; exit 4"
    reply = pod.client.ExecSync(
        cri.ExecSyncRequest(
            container_id=container_id, cmd=["sh", "-c", script], timeout=20
        )
    )
    assert (reply.exit_code, reply.stdout, reply.stderr) == (4, b"out sh\n", b"err\n")
