"""pyruntime.records behaves as dataclasses does for the classes that use it."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from pyruntime import records


def make(module, **options):
    @module.dataclass(**options)
    class Point:
        """A record."""

        x: int
        y: int = 2
        tags: list = module.field(default_factory=list)

    return Point


OPTIONS = [{}, {"frozen": True}, {"frozen": True, "slots": True}]


@pytest.mark.parametrize("options", OPTIONS)
def test_same_behaviour_as_dataclasses(options):
    ours, theirs = make(records, **options), make(dataclasses, **options)
    for cls in (ours, theirs):
        assert cls.__match_args__ == ("x", "y", "tags")
        assert cls.__qualname__.endswith("Point")
    a, b = ours(1), theirs(1)
    assert repr(a).split("(", 1)[1] == repr(b).split("(", 1)[1]
    assert (a.x, a.y, a.tags) == (b.x, b.y, b.tags) == (1, 2, [])
    assert ours(1, 3, [4]) == ours(x=1, y=3, tags=[4]) != ours(1)
    assert ours(1) != theirs(1)
    assert ours(1).tags is not ours(1).tags
    assert ("__dict__" in dir(a)) == ("__dict__" in dir(b))
    assert hasattr(a, "__slots__") == hasattr(b, "__slots__")
    if options.get("frozen"):
        with pytest.raises(AttributeError, match="cannot assign to field 'x'"):
            a.x = 5
        assert hash(ours(1, 2, ())) == hash(ours(1, 2, ()))
    else:
        a.x = 5
        assert a.x == 5
        assert ours.__hash__ is None is theirs.__hash__
    changed = records.replace(ours(1, tags=[1]), y=9)
    assert changed == ours(1, 9, [1])
    assert copy.deepcopy(ours(1, 3, [4])) == ours(1, 3, [4])


@pytest.mark.parametrize("options", OPTIONS)
def test_same_errors_as_dataclasses(options):
    cls = make(records, **options)
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        cls()
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        cls(1, z=3)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        cls(1, x=3)
    with pytest.raises(TypeError, match="positional arguments"):
        cls(1, 2, 3, 4)
    with pytest.raises(TypeError):
        records.replace(cls(1), z=1)


def test_class_defaults_and_post_init():
    @records.dataclass
    class Options:
        bundle: str
        count: int = 0

        def __post_init__(self):
            self.count += 1

    assert Options.count == 0
    assert Options("b").count == 1
    with pytest.raises(TypeError, match="follows default"):

        @records.dataclass
        class Wrong:
            a: int = 0
            b: int
