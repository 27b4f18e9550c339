"""Lean stand-ins for :func:`dataclasses.dataclass`, ``field`` and ``replace``.

``create``, ``run`` and ``exec`` import a dozen modules that each declare a
small record class or two (mount options, cgroup writes, capability and
seccomp plans, the init request...). :mod:`dataclasses` imports
:mod:`inspect` (and with it :mod:`ast`, :mod:`dis` and :mod:`tokenize`) and
generates each class's methods by compiling source code: together a tenth of
those commands' time, for classes that are built a few times per command.

The decorator here gives the same classes without either: ``__init__``
(positional or keyword, in field order, defaults and ``default_factory``,
``__post_init__`` if defined), ``__repr__``, ``__eq__``, ``__hash__`` by
dataclasses' rules, ``__match_args__``, ``frozen`` (assignment raises
:class:`FrozenInstanceError`, an :class:`AttributeError`) and ``slots``.
The methods are generic (they loop over the fields) rather than generated.
What it does not offer (``order``, ``kw_only``, ``InitVar``, ``ClassVar``
fields, :func:`dataclasses.fields` and :func:`dataclasses.asdict` on its
classes) no class using it needs; a declaration it cannot honour raises
:class:`TypeError` when the class is made.
"""

from __future__ import annotations

_MISSING = object()
_FIELDS = "__record_fields__"


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    """One field: its name and its default (a value or a factory)."""

    __slots__ = ("default", "default_factory", "name")

    def __init__(self, default: object = _MISSING, default_factory: object = _MISSING):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name: str | None = None
        self.default = default
        self.default_factory = default_factory

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


def field(*, default: object = _MISSING, default_factory: object = _MISSING) -> object:
    """A field with a default value or a ``default_factory``."""
    return Field(default, default_factory)


def dataclass(cls: type | None = None, /, *, frozen: bool = False, slots: bool = False):
    """Make ``cls`` a record class, as ``@dataclasses.dataclass`` would."""

    def wrap(cls: type) -> type:
        return _process(cls, frozen, slots)

    return wrap if cls is None else wrap(cls)


def _process(cls: type, frozen: bool, slots: bool) -> type:
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (no inspect)
    table: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for inherited in getattr(base, _FIELDS, ()):
            table[inherited.name] = inherited
    for name, annotation in own.items():
        if "ClassVar" in str(annotation) or "InitVar" in str(annotation):
            raise TypeError(f"{cls.__name__}.{name}: not supported by records")
        value = cls.__dict__.get(name, _MISSING)
        declared = value if isinstance(value, Field) else Field(value)
        declared.name = name
        table[name] = declared
        if isinstance(value, Field):
            if value.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, value.default)
    fields = tuple(table.values())
    seen_default = False
    for item in fields:
        has_default = (
            item.default is not _MISSING or item.default_factory is not _MISSING
        )
        if seen_default and not has_default:
            raise TypeError(f"non-default argument {item.name!r} follows default")
        seen_default = seen_default or has_default
    names = tuple(item.name for item in fields)

    methods: dict[str, object] = {
        "__init__": _make_init(fields, frozen),
        "__repr__": _repr,
        "__eq__": _eq,
        "__match_args__": names,
    }
    if frozen:
        methods["__setattr__"] = _frozen_setattr
        methods["__delattr__"] = _frozen_delattr
    for name, method in methods.items():
        if name not in cls.__dict__:
            setattr(cls, name, method)
    class_hash = cls.__dict__.get("__hash__", _MISSING)
    explicit_hash = not (
        class_hash is _MISSING or (class_hash is None and "__eq__" in cls.__dict__)
    )
    if not explicit_hash:
        cls.__hash__ = _hash if frozen else None
    setattr(cls, _FIELDS, fields)
    if slots:
        cls = _with_slots(cls, names, frozen)
    return cls


def _make_init(fields: tuple[Field, ...], frozen: bool):
    names = tuple(item.name for item in fields)
    count = len(fields)

    def __init__(self, *args: object, **kwargs: object) -> None:
        if len(args) > count:
            raise TypeError(
                f"__init__() takes {count + 1} positional arguments "
                f"but {len(args) + 1} were given"
            )
        unknown = [key for key in kwargs if key not in names]
        if unknown:
            raise TypeError(
                f"__init__() got an unexpected keyword argument {unknown[0]!r}"
            )
        setter = object.__setattr__ if frozen else setattr
        missing = []
        for index, item in enumerate(fields):
            name = item.name
            if index < len(args):
                if name in kwargs:
                    raise TypeError(
                        f"__init__() got multiple values for argument {name!r}"
                    )
                value = args[index]
            elif name in kwargs:
                value = kwargs[name]
            elif item.default is not _MISSING:
                value = item.default
            elif item.default_factory is not _MISSING:
                value = item.default_factory()
            else:
                missing.append(name)
                continue
            setter(self, name, value)
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            raise TypeError(
                f"__init__() missing {len(missing)} required positional "
                f"argument{'s' if len(missing) > 1 else ''}: {listed}"
            )
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    return __init__


def _values(obj: object) -> tuple:
    return tuple(getattr(obj, item.name) for item in getattr(obj, _FIELDS))


def _repr(self: object) -> str:
    shown = ", ".join(
        f"{item.name}={getattr(self, item.name)!r}" for item in getattr(self, _FIELDS)
    )
    return f"{type(self).__qualname__}({shown})"


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: object) -> int:
    return hash(_values(self))


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: object) -> list:
    return [getattr(self, name) for name in self.__slots__]


def _setstate(self: object, state: list) -> None:
    for name, value in zip(self.__slots__, state, strict=True):
        object.__setattr__(self, name, value)


def _with_slots(cls: type, names: tuple[str, ...], frozen: bool) -> type:
    """The class again, with ``__slots__`` for its fields (no ``__dict__``)."""
    namespace = dict(cls.__dict__)
    for name in names:
        namespace.pop(name, None)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__slots__"] = names
    if frozen:
        namespace.setdefault("__getstate__", _getstate)
        namespace.setdefault("__setstate__", _setstate)
    qualname = getattr(cls, "__qualname__", None)
    new = type(cls)(cls.__name__, cls.__bases__, namespace)
    if qualname is not None:
        new.__qualname__ = qualname
    return new


def replace(obj: object, /, **changes: object) -> object:
    """A copy of the record ``obj`` with some fields changed."""
    fields = getattr(type(obj), _FIELDS, None)
    if fields is None:
        raise TypeError("replace() should be called on record instances")
    for item in fields:
        if item.name not in changes:
            changes[item.name] = getattr(obj, item.name)
    return type(obj)(**changes)
