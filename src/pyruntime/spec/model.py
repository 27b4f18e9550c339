"""The OCI runtime-spec config (v1.2/1.3) as frozen, typed dataclasses.

This module owns the *shape* of config.json and nothing else: no I/O, no
checks. Each class mirrors one JSON object of the runtime-spec; an attribute is
the snake_case of its JSON name. The decoder (``spec.decode``) walks these
classes generically, so everything it needs is declared here:

- the JSON name: derived from the attribute (``oom_score_adj`` ->
  ``oomScoreAdj``, ``class_`` -> ``class``) unless a field overrides it
  (``container_id`` -> ``containerID``);
- whether the spec marks the key REQUIRED (``metadata=REQUIRED``);
- the JSON kind, from the annotation: ``str``, ``bool``, an integer range alias
  (``U32``, ``I64``...), a nested class, ``tuple[X, ...]`` for arrays and
  ``dict[str, X]`` for free-form maps.

Every optional field defaults to ``None`` when absent (never an empty tuple), so
"not set" and "set to empty" stay distinguishable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any

#: Metadata keys read by the decoder.
JSON_KEY = "json"
REQUIRED_KEY = "required"
SKIP_KEY = "skip"


@dataclass(frozen=True, slots=True)
class IntRange:
    """The integer type of a JSON number field, as the spec's Go bindings type it."""

    name: str
    low: int
    high: int

    @property
    def expected(self) -> str:
        """How a problem message names this kind."""
        return "unsigned integer" if self.low == 0 else "integer"


U16 = Annotated[int, IntRange("uint16", 0, 2**16 - 1)]
U32 = Annotated[int, IntRange("uint32", 0, 2**32 - 1)]
U64 = Annotated[int, IntRange("uint64", 0, 2**64 - 1)]
I32 = Annotated[int, IntRange("int32", -(2**31), 2**31 - 1)]
I64 = Annotated[int, IntRange("int64", -(2**63), 2**63 - 1)]
#: Go's ``uint`` and ``int`` are 64 bits wide on the platforms we run on.
UINT = U64
INT = I64


#: Field metadata for a key the spec marks REQUIRED. The default stays ``None``
#: so classes keep the spec's field order for positional construction; the
#: decoder reports the missing key.
REQUIRED = MappingProxyType({REQUIRED_KEY: True})


def renamed(json: str, *, required: bool = False) -> dict[str, Any]:
    """Field metadata for a key whose JSON name is not the plain camelCase."""
    return {JSON_KEY: json, REQUIRED_KEY: required}


def json_name(f: dataclasses.Field) -> str:
    """Return the JSON key of a model field."""
    explicit = f.metadata.get(JSON_KEY)
    if explicit:
        return explicit
    head, *rest = f.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# --- process -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsoleSize:
    height: UINT = field(default=None, metadata=REQUIRED)
    width: UINT = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class User:
    uid: U32 = field(default=None, metadata=REQUIRED)
    gid: U32 = field(default=None, metadata=REQUIRED)
    umask: U32 | None = None
    additional_gids: tuple[U32, ...] | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    bounding: tuple[str, ...] | None = None
    effective: tuple[str, ...] | None = None
    inheritable: tuple[str, ...] | None = None
    permitted: tuple[str, ...] | None = None
    ambient: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Rlimit:
    type: str = field(default=None, metadata=REQUIRED)
    hard: U64 = field(default=None, metadata=REQUIRED)
    soft: U64 = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class IoPriority:
    class_: str = field(default=None, metadata=REQUIRED)
    priority: INT = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class Scheduler:
    policy: str = field(default=None, metadata=REQUIRED)
    nice: I32 | None = None
    priority: I32 | None = None
    flags: tuple[str, ...] | None = None
    runtime: U64 | None = None
    deadline: U64 | None = None
    period: U64 | None = None


@dataclass(frozen=True, slots=True)
class ExecCPUAffinity:
    initial: str | None = None
    final: str | None = None


@dataclass(frozen=True, slots=True)
class Process:
    terminal: bool | None = None
    console_size: ConsoleSize | None = None
    user: User | None = None
    args: tuple[str, ...] = field(default=None, metadata=REQUIRED)
    command_line: str | None = None
    env: tuple[str, ...] | None = None
    cwd: str = field(default=None, metadata=REQUIRED)
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] | None = None
    no_new_privileges: bool | None = None
    apparmor_profile: str | None = None
    oom_score_adj: INT | None = None
    selinux_label: str | None = None
    io_priority: IoPriority | None = None
    scheduler: Scheduler | None = None
    exec_cpu_affinity: ExecCPUAffinity | None = field(
        default=None, metadata=renamed("execCPUAffinity")
    )


# --- root, mounts, hooks -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Root:
    path: str = field(default=None, metadata=REQUIRED)
    readonly: bool | None = None


@dataclass(frozen=True, slots=True)
class IDMapping:
    container_id: U32 = field(
        default=None, metadata=renamed("containerID", required=True)
    )
    host_id: U32 = field(default=None, metadata=renamed("hostID", required=True))
    size: U32 = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class Mount:
    destination: str = field(default=None, metadata=REQUIRED)
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] | None = None
    uid_mappings: tuple[IDMapping, ...] | None = None
    gid_mappings: tuple[IDMapping, ...] | None = None


@dataclass(frozen=True, slots=True)
class Hook:
    path: str = field(default=None, metadata=REQUIRED)
    args: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    timeout: INT | None = None


@dataclass(frozen=True, slots=True)
class Hooks:
    prestart: tuple[Hook, ...] | None = None
    create_runtime: tuple[Hook, ...] | None = None
    create_container: tuple[Hook, ...] | None = None
    start_container: tuple[Hook, ...] | None = None
    poststart: tuple[Hook, ...] | None = None
    poststop: tuple[Hook, ...] | None = None


# --- linux: namespaces, devices ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Namespace:
    type: str = field(default=None, metadata=REQUIRED)
    path: str | None = None


@dataclass(frozen=True, slots=True)
class TimeOffset:
    secs: I64 | None = None
    nanosecs: U32 | None = None


@dataclass(frozen=True, slots=True)
class Device:
    type: str = field(default=None, metadata=REQUIRED)
    path: str = field(default=None, metadata=REQUIRED)
    # REQUIRED unless type is "p": checked in spec.validate.
    major: I64 | None = None
    minor: I64 | None = None
    file_mode: U32 | None = None
    uid: U32 | None = None
    gid: U32 | None = None


# --- linux.resources -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCgroup:
    allow: bool = field(default=None, metadata=REQUIRED)
    type: str | None = None
    major: I64 | None = None
    minor: I64 | None = None
    access: str | None = None


@dataclass(frozen=True, slots=True)
class Memory:
    limit: I64 | None = None
    reservation: I64 | None = None
    swap: I64 | None = None
    kernel: I64 | None = None
    kernel_tcp: I64 | None = field(default=None, metadata=renamed("kernelTCP"))
    swappiness: U64 | None = None
    disable_oom_killer: bool | None = field(
        default=None, metadata=renamed("disableOOMKiller")
    )
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@dataclass(frozen=True, slots=True)
class CPU:
    shares: U64 | None = None
    quota: I64 | None = None
    burst: U64 | None = None
    period: U64 | None = None
    realtime_runtime: I64 | None = None
    realtime_period: U64 | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: I64 | None = None


@dataclass(frozen=True, slots=True)
class Pids:
    limit: I64 = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class WeightDevice:
    major: I64 = field(default=None, metadata=REQUIRED)
    minor: I64 = field(default=None, metadata=REQUIRED)
    weight: U16 | None = None
    leaf_weight: U16 | None = None


@dataclass(frozen=True, slots=True)
class ThrottleDevice:
    major: I64 = field(default=None, metadata=REQUIRED)
    minor: I64 = field(default=None, metadata=REQUIRED)
    rate: U64 = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class BlockIO:
    weight: U16 | None = None
    leaf_weight: U16 | None = None
    weight_device: tuple[WeightDevice, ...] | None = None
    throttle_read_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_write_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_read_iops_device: tuple[ThrottleDevice, ...] | None = field(
        default=None, metadata=renamed("throttleReadIOPSDevice")
    )
    throttle_write_iops_device: tuple[ThrottleDevice, ...] | None = field(
        default=None, metadata=renamed("throttleWriteIOPSDevice")
    )


@dataclass(frozen=True, slots=True)
class HugepageLimit:
    page_size: str = field(default=None, metadata=REQUIRED)
    limit: U64 = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class InterfacePriority:
    name: str = field(default=None, metadata=REQUIRED)
    priority: U32 = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class Network:
    class_id: U32 | None = field(default=None, metadata=renamed("classID"))
    priorities: tuple[InterfacePriority, ...] | None = None


@dataclass(frozen=True, slots=True)
class Rdma:
    hca_handles: U32 | None = None
    hca_objects: U32 | None = None


@dataclass(frozen=True, slots=True)
class Resources:
    devices: tuple[DeviceCgroup, ...] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = field(default=None, metadata=renamed("blockIO"))
    hugepage_limits: tuple[HugepageLimit, ...] | None = None
    network: Network | None = None
    rdma: dict[str, Rdma] | None = None
    unified: dict[str, str] | None = None


# --- linux: security and the rest ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Arg:
    index: UINT = field(default=None, metadata=REQUIRED)
    value: U64 = field(default=None, metadata=REQUIRED)
    value_two: U64 | None = None
    op: str = field(default=None, metadata=REQUIRED)


@dataclass(frozen=True, slots=True)
class Syscall:
    names: tuple[str, ...] = field(default=None, metadata=REQUIRED)
    action: str = field(default=None, metadata=REQUIRED)
    errno_ret: UINT | None = None
    args: tuple[Arg, ...] | None = None


@dataclass(frozen=True, slots=True)
class Seccomp:
    default_action: str = field(default=None, metadata=REQUIRED)
    default_errno_ret: UINT | None = None
    architectures: tuple[str, ...] | None = None
    flags: tuple[str, ...] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: tuple[Syscall, ...] | None = None


@dataclass(frozen=True, slots=True)
class IntelRdt:
    clos_id: str | None = field(default=None, metadata=renamed("closID"))
    l3_cache_schema: str | None = None
    mem_bw_schema: str | None = None
    schemata: str | None = None
    enable_cmt: bool | None = field(default=None, metadata=renamed("enableCMT"))
    enable_mbm: bool | None = field(default=None, metadata=renamed("enableMBM"))
    enable_monitoring: bool | None = None


@dataclass(frozen=True, slots=True)
class Personality:
    domain: str = field(default=None, metadata=REQUIRED)
    flags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class MemoryPolicy:
    mode: str = field(default=None, metadata=REQUIRED)
    nodes: str | None = None
    flags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class NetDevice:
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Linux:
    namespaces: tuple[Namespace, ...] | None = None
    uid_mappings: tuple[IDMapping, ...] | None = None
    gid_mappings: tuple[IDMapping, ...] | None = None
    time_offsets: dict[str, TimeOffset] | None = None
    devices: tuple[Device, ...] | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    mount_label: str | None = None
    sysctl: dict[str, str] | None = None
    seccomp: Seccomp | None = None
    intel_rdt: IntelRdt | None = None
    personality: Personality | None = None
    memory_policy: MemoryPolicy | None = None
    net_devices: dict[str, NetDevice] | None = None


# --- the document --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """A decoded config.json.

    ``raw`` is the whole decoded JSON document, unknown keys included, for code
    that wants plain dicts (the cgroup writers read ``raw["linux"]["resources"]``).
    It is not part of equality and must be treated as read-only.
    """

    oci_version: str = field(default=None, metadata=REQUIRED)
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None
    raw: dict[str, Any] | None = field(
        default=None, compare=False, repr=False, metadata={SKIP_KEY: True}
    )
