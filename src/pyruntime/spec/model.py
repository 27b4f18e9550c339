"""The OCI runtime-spec config (v1.2/1.3) as frozen, typed classes.

This module owns the *shape* of config.json and nothing else: no I/O, no
checks. Each class mirrors one JSON object of the runtime-spec; an attribute is
the snake_case of its JSON name. The decoder (``spec.decode``) walks these
classes generically, so everything it needs is declared here:

- the JSON name: derived from the attribute (``oom_score_adj`` ->
  ``oomScoreAdj``, ``class_`` -> ``class``) unless a field says otherwise
  (``container_id: U32 = renamed("containerID", required=True)``);
- whether the spec marks the key REQUIRED (``= REQUIRED``);
- the JSON kind, from the annotation: ``str``, ``bool``, an integer kind
  (``U32``, ``I64``...), a nested class, ``tuple[X, ...]`` for arrays and
  ``dict[str, X]`` for free-form maps.

Every optional field defaults to ``None`` when absent (never an empty tuple), so
"not set" and "set to empty" stay distinguishable.

The classes behave as frozen, slotted dataclasses (keyword or positional
construction in field order, every field defaulting to ``None``, equality,
hashing and ``repr`` over the fields, assignment refused), but they are built
by :class:`Model` without :mod:`dataclasses`: every ``create``, ``run`` and
``exec`` imports this module, and generating the methods of 38 dataclasses
costs more than the rest of the config work. :func:`replace` and
:func:`fields` stand in for the :mod:`dataclasses` functions of those names.
For the same reason the annotations are evaluated when the classes are made
(no ``from __future__ import annotations``, so a class may only name classes
defined above it): the decoder reads them from ``__annotations__`` as they
are instead of compiling each one the first time it meets its class.

The module imports nothing, not even :mod:`typing`: the annotations are
builtin generics (``tuple[X, ...]``, ``dict[str, X]``, ``X | None``) and the
integer kinds are small classes (:class:`IntRange`), so ``U32 | None`` is a
union like ``int | None``.
"""


class IntRange:
    """The integer type of a JSON number field, as the spec's Go bindings type it.

    Each subclass (``U16`` ... ``I64`` below) is one Go type: its name for
    messages and its bounds. The subclasses are annotations, never values: a
    decoded field holds a plain ``int``.
    """

    __slots__ = ()
    #: The Go type, as problem messages name it (``uint32``).
    name = ""
    low = 0
    high = -1
    #: How a problem message names the kind ("expected unsigned integer").
    expected = "integer"

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.expected = "unsigned integer" if cls.low == 0 else "integer"


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a model object (they are immutable)."""


class Field:
    """One field of a model class: as declared, then as :func:`fields` lists it.

    In a class body it is the default value of an annotated attribute
    (:data:`REQUIRED`, :func:`renamed`, :data:`NOT_JSON`); the class keeps
    one per attribute, with ``name`` and the JSON ``key`` filled in.
    """

    __slots__ = ("compare", "key", "name", "required")

    def __init__(
        self,
        name: str | None = None,
        key: str | None = None,
        required: bool = False,
        compare: bool = True,
    ) -> None:
        self.name = name
        self.key = key
        self.required = required
        #: False for ``Spec.raw``: not in JSON, equality, hashing or repr.
        self.compare = compare

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r}, key={self.key!r}, "
            f"required={self.required!r}, compare={self.compare!r})"
        )


#: The default of a key the spec marks REQUIRED. The value stays ``None`` so
#: classes keep the spec's field order for positional construction; the
#: decoder reports the missing key.
REQUIRED = Field(required=True)
#: The default of an attribute that is not a JSON key (``Spec.raw``).
NOT_JSON = Field(compare=False)


def renamed(json: str, *, required: bool = False) -> Field:
    """The default of a key whose JSON name is not the plain camelCase."""
    return Field(key=json, required=required)


def json_name(attr: str) -> str:
    """The plain camelCase JSON key of an attribute (``class_`` -> ``class``)."""
    head, *rest = attr.split("_")
    return head + "".join(part.capitalize() for part in rest)


class _ModelType(type):
    """Makes each annotated attribute of a class body a slot and a field."""

    def __new__(mcls, name: str, bases: tuple, namespace: dict[str, object]):
        attrs = tuple(namespace.get("__annotations__", ()))
        table = []
        for attr in attrs:
            declared = namespace.pop(attr, None)
            if declared is not None and not isinstance(declared, Field):
                raise TypeError(f"{name}.{attr}: a model field defaults to None")
            declared = declared or Field()
            key = (declared.key or json_name(attr)) if declared.compare else None
            table.append(Field(attr, key, declared.required, declared.compare))
        namespace["__slots__"] = attrs
        namespace["__match_args__"] = attrs
        cls = super().__new__(mcls, name, bases, namespace)
        cls._fields = tuple(table)
        cls._names = attrs
        cls._compared = tuple(f.name for f in table if f.compare)
        return cls


class Model(metaclass=_ModelType):
    """The base of the model classes: frozen, slotted, compared by field."""

    # No annotations here: in a model class body they declare fields.
    __slots__ = ()
    _fields = ()
    _names = ()
    _compared = ()

    def __init__(self, *args: object, **kwargs: object) -> None:
        names = self._names
        cls_name = type(self).__qualname__
        if len(args) > len(names):
            raise TypeError(
                f"{cls_name}.__init__() takes from 1 to {len(names) + 1} "
                f"positional arguments but {len(args) + 1} were given"
            )
        setter = object.__setattr__
        for attr, value in zip(names, args, strict=False):
            if attr in kwargs:
                raise TypeError(
                    f"{cls_name}.__init__() got multiple values for argument {attr!r}"
                )
            setter(self, attr, value)
        for attr in names[len(args) :]:
            setter(self, attr, kwargs.pop(attr, None))
        if kwargs:
            unknown = next(iter(kwargs))
            raise TypeError(
                f"{cls_name}.__init__() got an unexpected keyword argument {unknown!r}"
            )

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple:
        return tuple(getattr(self, attr) for attr in self._compared)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{a}={getattr(self, a)!r}" for a in self._compared)
        return f"{type(self).__qualname__}({shown})"

    def __reduce__(self):
        return type(self), tuple(getattr(self, attr) for attr in self._names)


def is_model(obj: object) -> bool:
    """Tell whether ``obj`` is a model class (the decoder's nested objects)."""
    return isinstance(obj, type) and issubclass(obj, Model)


def fields(cls_or_obj: object) -> tuple[Field, ...]:
    """The fields of a model class or object, in declaration order."""
    return cls_or_obj._fields


def replace(obj: object, /, **changes: object) -> object:
    """A copy of the model object ``obj`` with some fields changed.

    Other objects go to :func:`dataclasses.replace`.
    """
    if not isinstance(obj, Model):
        import dataclasses

        return dataclasses.replace(obj, **changes)
    values = {attr: getattr(obj, attr) for attr in obj._names}
    for attr in changes:
        if attr not in values:
            raise TypeError(
                f"{type(obj).__qualname__}.__init__() got an unexpected keyword "
                f"argument {attr!r}"
            )
    values.update(changes)
    return type(obj)(**values)


# --- integer kinds -----------------------------------------------------------


class U16(IntRange):
    name, low, high = "uint16", 0, 2**16 - 1


class U32(IntRange):
    name, low, high = "uint32", 0, 2**32 - 1


class U64(IntRange):
    name, low, high = "uint64", 0, 2**64 - 1


class I32(IntRange):
    name, low, high = "int32", -(2**31), 2**31 - 1


class I64(IntRange):
    name, low, high = "int64", -(2**63), 2**63 - 1


#: Go's ``uint`` and ``int`` are 64 bits wide on the platforms we run on.
UINT = U64
INT = I64


# --- process -----------------------------------------------------------------


class ConsoleSize(Model):
    height: UINT = REQUIRED
    width: UINT = REQUIRED


class User(Model):
    uid: U32 = REQUIRED
    gid: U32 = REQUIRED
    umask: U32 | None = None
    additional_gids: tuple[U32, ...] | None = None
    username: str | None = None


class Capabilities(Model):
    bounding: tuple[str, ...] | None = None
    effective: tuple[str, ...] | None = None
    inheritable: tuple[str, ...] | None = None
    permitted: tuple[str, ...] | None = None
    ambient: tuple[str, ...] | None = None


class Rlimit(Model):
    type: str = REQUIRED
    hard: U64 = REQUIRED
    soft: U64 = REQUIRED


class IoPriority(Model):
    class_: str = REQUIRED
    priority: INT = REQUIRED


class Scheduler(Model):
    policy: str = REQUIRED
    nice: I32 | None = None
    priority: I32 | None = None
    flags: tuple[str, ...] | None = None
    runtime: U64 | None = None
    deadline: U64 | None = None
    period: U64 | None = None


class ExecCPUAffinity(Model):
    initial: str | None = None
    final: str | None = None


class Process(Model):
    terminal: bool | None = None
    console_size: ConsoleSize | None = None
    user: User | None = None
    args: tuple[str, ...] = REQUIRED
    command_line: str | None = None
    env: tuple[str, ...] | None = None
    cwd: str = REQUIRED
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] | None = None
    no_new_privileges: bool | None = None
    apparmor_profile: str | None = None
    oom_score_adj: INT | None = None
    selinux_label: str | None = None
    io_priority: IoPriority | None = None
    scheduler: Scheduler | None = None
    exec_cpu_affinity: ExecCPUAffinity | None = renamed("execCPUAffinity")


# --- root, mounts, hooks -----------------------------------------------------


class Root(Model):
    path: str = REQUIRED
    readonly: bool | None = None


class IDMapping(Model):
    container_id: U32 = renamed("containerID", required=True)
    host_id: U32 = renamed("hostID", required=True)
    size: U32 = REQUIRED


class Mount(Model):
    destination: str = REQUIRED
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] | None = None
    uid_mappings: tuple[IDMapping, ...] | None = None
    gid_mappings: tuple[IDMapping, ...] | None = None


class Hook(Model):
    path: str = REQUIRED
    args: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    timeout: INT | None = None


class Hooks(Model):
    prestart: tuple[Hook, ...] | None = None
    create_runtime: tuple[Hook, ...] | None = None
    create_container: tuple[Hook, ...] | None = None
    start_container: tuple[Hook, ...] | None = None
    poststart: tuple[Hook, ...] | None = None
    poststop: tuple[Hook, ...] | None = None


# --- linux: namespaces, devices ------------------------------------------------


class Namespace(Model):
    type: str = REQUIRED
    path: str | None = None


class TimeOffset(Model):
    secs: I64 | None = None
    nanosecs: U32 | None = None


class Device(Model):
    type: str = REQUIRED
    path: str = REQUIRED
    # REQUIRED unless type is "p": checked in spec.validate.
    major: I64 | None = None
    minor: I64 | None = None
    file_mode: U32 | None = None
    uid: U32 | None = None
    gid: U32 | None = None


# --- linux.resources -----------------------------------------------------------


class DeviceCgroup(Model):
    allow: bool = REQUIRED
    type: str | None = None
    major: I64 | None = None
    minor: I64 | None = None
    access: str | None = None


class Memory(Model):
    limit: I64 | None = None
    reservation: I64 | None = None
    swap: I64 | None = None
    kernel: I64 | None = None
    kernel_tcp: I64 | None = renamed("kernelTCP")
    swappiness: U64 | None = None
    disable_oom_killer: bool | None = renamed("disableOOMKiller")
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class CPU(Model):
    shares: U64 | None = None
    quota: I64 | None = None
    burst: U64 | None = None
    period: U64 | None = None
    realtime_runtime: I64 | None = None
    realtime_period: U64 | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: I64 | None = None


class Pids(Model):
    limit: I64 = REQUIRED


class WeightDevice(Model):
    major: I64 = REQUIRED
    minor: I64 = REQUIRED
    weight: U16 | None = None
    leaf_weight: U16 | None = None


class ThrottleDevice(Model):
    major: I64 = REQUIRED
    minor: I64 = REQUIRED
    rate: U64 = REQUIRED


class BlockIO(Model):
    weight: U16 | None = None
    leaf_weight: U16 | None = None
    weight_device: tuple[WeightDevice, ...] | None = None
    throttle_read_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_write_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_read_iops_device: tuple[ThrottleDevice, ...] | None = renamed(
        "throttleReadIOPSDevice"
    )
    throttle_write_iops_device: tuple[ThrottleDevice, ...] | None = renamed(
        "throttleWriteIOPSDevice"
    )


class HugepageLimit(Model):
    page_size: str = REQUIRED
    limit: U64 = REQUIRED


class InterfacePriority(Model):
    name: str = REQUIRED
    priority: U32 = REQUIRED


class Network(Model):
    class_id: U32 | None = renamed("classID")
    priorities: tuple[InterfacePriority, ...] | None = None


class Rdma(Model):
    hca_handles: U32 | None = None
    hca_objects: U32 | None = None


class Resources(Model):
    devices: tuple[DeviceCgroup, ...] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = renamed("blockIO")
    hugepage_limits: tuple[HugepageLimit, ...] | None = None
    network: Network | None = None
    rdma: dict[str, Rdma] | None = None
    unified: dict[str, str] | None = None


# --- linux: security and the rest ----------------------------------------------


class Arg(Model):
    index: UINT = REQUIRED
    value: U64 = REQUIRED
    value_two: U64 | None = None
    op: str = REQUIRED


class Syscall(Model):
    names: tuple[str, ...] = REQUIRED
    action: str = REQUIRED
    errno_ret: UINT | None = None
    args: tuple[Arg, ...] | None = None


class Seccomp(Model):
    default_action: str = REQUIRED
    default_errno_ret: UINT | None = None
    architectures: tuple[str, ...] | None = None
    flags: tuple[str, ...] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: tuple[Syscall, ...] | None = None


class IntelRdt(Model):
    clos_id: str | None = renamed("closID")
    l3_cache_schema: str | None = None
    mem_bw_schema: str | None = None
    schemata: str | None = None
    enable_cmt: bool | None = renamed("enableCMT")
    enable_mbm: bool | None = renamed("enableMBM")
    enable_monitoring: bool | None = None


class Personality(Model):
    domain: str = REQUIRED
    flags: tuple[str, ...] | None = None


class MemoryPolicy(Model):
    mode: str = REQUIRED
    nodes: str | None = None
    flags: tuple[str, ...] | None = None


class NetDevice(Model):
    name: str | None = None


class Linux(Model):
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


class Spec(Model):
    """A decoded config.json.

    ``raw`` is the whole decoded JSON document, unknown keys included, for code
    that wants plain dicts (the cgroup writers read ``raw["linux"]["resources"]``).
    It is not part of equality and must be treated as read-only.
    """

    oci_version: str = REQUIRED
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None
    raw: dict[str, object] | None = NOT_JSON
