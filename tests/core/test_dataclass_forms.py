"""The dataclasses whose methods are written out (to spare ``import nepi_lab`` the
decorator's compiling) behave exactly as the decorator's generated methods would.

Each class is compared with a reference the decorator makes of the same fields (every
method generated): ``__init__``'s signature, what it stores and checks (``__post_init__``),
``__repr__``, ``==`` and ``hash``, frozen-ness, ``dataclasses.replace``, ``asdict`` and
``__match_args__``.  A field added to a class without its methods fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from nepi_lab.core.attributes import Alias, Attribute, Flags, Types
from nepi_lab.core.controller import ScheduledTask, TaskStatus
from nepi_lab.core.traces import Trace
from nepi_lab.resources.linux.executor import CommandResult


def hook(rm: object, old: object, new: object) -> object:
    return new


def callback() -> None:
    return None


#: class, frozen, and constructor arguments (args, kwargs) to compare with; pairs among
#: them are compared with == too, so each list holds some equal and some unequal ones.
CASES: list[tuple[type, bool, list[tuple[tuple[Any, ...], dict[str, Any]]]]] = [
    (Attribute, True, [
        (("count",), {}),
        (("count", "packets to send"), {"type": Types.Integer, "default": 3, "range": (1, None)}),
        (("count", "packets to send"), {"type": Types.Integer, "default": 3, "range": (1, None), "value": 7,
                                        "set_hook": hook}),  # == the one before: value, set_hook not compared
        (("mode", "a mode", Types.Enumerate, Flags.Design, "a", ["a", "b"]), {}),  # allowed becomes a tuple
        (("secret",), {"flags": Flags.Credential, "default": [1, 2]}),  # unhashable default
        ((), {"name": "n", "help": "h", "type": Types.Bool, "flags": Flags.NoWrite, "default": True}),
    ]),
    (Alias, True, [
        (("identity", "identityFile"), {}),
        (("identity", "identityFile", "NEPI's name"), {}),
        (("identity",), {"attribute": "identityFile", "note": "other"}),
    ]),
    (Trace, True, [
        (("stdout",), {}),
        (("stdout", "the output", True), {}),
        ((), {"name": "stdout", "help": "the output", "enabled": True}),
    ]),
    (CommandResult, True, [
        ((0, "hello\n", ""), {}),
        ((0, "hello\n", ""), {"command": ""}),
        ((1, "", "boom"), {"command": "false"}),
    ]),
    (ScheduledTask, False, [
        ((1, None, callback), {}),
        ((1, None, callback), {"result": 3, "status": TaskStatus.DONE}),
        ((), {"id": 1, "timestamp": None, "callback": callback, "result": 3, "status": TaskStatus.DONE}),
    ]),
]


def reference(cls: type, frozen: bool) -> type:
    """What ``@dataclasses.dataclass(frozen=frozen)`` generates for ``cls``'s fields."""
    namespace: dict[str, Any] = {"__annotations__": {}, "__module__": cls.__module__,
                                 "__qualname__": cls.__qualname__}
    for f in dataclasses.fields(cls):
        namespace["__annotations__"][f.name] = f.type
        namespace[f.name] = dataclasses.field(default=f.default, default_factory=f.default_factory,
                                              init=f.init, repr=f.repr, hash=f.hash, compare=f.compare)
    if "__post_init__" in vars(cls):
        namespace["__post_init__"] = vars(cls)["__post_init__"]
    return dataclasses.dataclass(frozen=frozen)(type(cls.__name__, (), namespace))


def differences(cls: type, frozen: bool, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[str]:
    """How ``cls`` differs from :func:`reference` (empty: it does not)."""
    ref = reference(cls, frozen)
    found = []
    # the parameters: names, kinds, defaults, annotations (strings in both, as the modules use
    # ``from __future__ import annotations``); the return annotation alone differs in form:
    # the string 'None' here, None in generated code (typing.get_type_hints reads both as NoneType)
    if inspect.signature(cls).parameters != inspect.signature(ref).parameters:
        found.append(f"signature {inspect.signature(cls)} != {inspect.signature(ref)}")
    if cls.__match_args__ != ref.__match_args__:
        found.append(f"__match_args__ {cls.__match_args__} != {ref.__match_args__}")
    if (cls.__hash__ is None) != (ref.__hash__ is None):
        found.append(f"hashable: {cls.__hash__ is not None} != {ref.__hash__ is not None}")
    made = [(cls(*args, **kwargs), ref(*args, **kwargs)) for args, kwargs in calls]
    for ours, theirs in made:
        if repr(ours) != repr(theirs):
            found.append(f"repr {ours!r} != {theirs!r}")
        if vars(ours) != vars(theirs):
            found.append(f"stored {vars(ours)} != {vars(theirs)}")
        if dataclasses.asdict(ours) != dataclasses.asdict(theirs):
            found.append(f"asdict {dataclasses.asdict(ours)} != {dataclasses.asdict(theirs)}")
        if repr(dataclasses.replace(ours)) != repr(dataclasses.replace(theirs)):
            found.append(f"replace {dataclasses.replace(ours)!r} != {dataclasses.replace(theirs)!r}")
        for mine, other in ((ours, theirs), (theirs, ours)):
            if mine.__eq__(other) is not NotImplemented:
                found.append(f"{mine!r} == an instance of another class is not NotImplemented")
        if cls.__hash__ is not None:
            try:
                same = hash(ours) == hash(theirs)
            except TypeError as exc:  # an unhashable value: the reference must refuse it as well
                try:
                    hash(theirs)
                    found.append(f"hash of {ours!r} raises {exc!r}, the reference's does not")
                except TypeError:
                    pass
            else:
                if not same:
                    found.append(f"hash of {ours!r} differs")
        field = dataclasses.fields(cls)[0].name
        for action in ("set", "delete"):
            outcomes = []
            for obj in (ours, theirs):
                try:
                    if action == "set":
                        setattr(obj, field, 5)
                    else:
                        delattr(obj, field)
                    outcomes.append(None)
                except dataclasses.FrozenInstanceError:
                    outcomes.append("frozen")
            if outcomes[0] != outcomes[1]:
                found.append(f"{action} {field}: {outcomes[0]} != {outcomes[1]}")
    fresh = [(cls(*args, **kwargs), ref(*args, **kwargs)) for args, kwargs in calls]
    for a, ra in fresh:
        for b, rb in fresh:
            if (a == b) != (ra == rb) or (a != b) != (ra != rb):
                found.append(f"{a!r} == {b!r}: {a == b}, reference {ra == rb}")
    return found


@pytest.mark.parametrize(("cls", "frozen", "calls"), CASES, ids=[c[0].__name__ for c in CASES])
def test_written_out_methods_match_the_generated_ones(cls, frozen, calls):
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen is frozen
    assert differences(cls, frozen, calls) == []


def test_post_init_still_checks():
    with pytest.raises(TypeError, match="an Enumerate needs allowed values"):
        Attribute("mode", type=Types.Enumerate)
    with pytest.raises(TypeError, match="an Enumerate needs allowed values"):
        dataclasses.replace(Attribute("mode", type=Types.Enumerate, allowed=["a"]), allowed=None)
    with pytest.raises(Exception, match="trace name"):
        Trace("../x")


def test_a_dataclass_subclass_still_works():
    """ns-3's MappingAttribute is ``@dataclass(frozen=True)`` over Attribute: it gets generated
    methods over the same fields."""

    @dataclasses.dataclass(frozen=True)
    class Sub(Attribute):
        pass

    a = Sub("m", "a mapping", default={"a": "1"})
    assert repr(a).startswith("test_a_dataclass_subclass_still_works.<locals>.Sub(name='m'")
    assert a == Sub("m", "a mapping", default={"a": "1"})
    assert a != Attribute("m", "a mapping", default={"a": "1"})
    assert dataclasses.replace(a, value=1).value == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.name = "x"  # type: ignore[misc]


def test_the_comparison_sees_a_method_that_was_not_updated():
    """Control: a class whose written-out repr forgets a field is reported."""

    @dataclasses.dataclass(frozen=True, init=False, repr=False, eq=False)
    class Forgetful:
        name: str
        extra: int = 0

        def __init__(self, name: str, extra: int = 0) -> None:
            object.__setattr__(self, "name", name)
            object.__setattr__(self, "extra", extra)

        def __repr__(self) -> str:
            return f"{self.__class__.__qualname__}(name={self.name!r})"

        def __eq__(self, other: object) -> bool:
            return other.__class__ is self.__class__ and self.name == other.name  # type: ignore[attr-defined]

        def __hash__(self) -> int:
            return hash(self.name)

    found = differences(Forgetful, True, [(("a",), {}), (("a",), {"extra": 1})])
    assert any(f.startswith("repr ") for f in found)
    assert any(" == " in f and f.endswith("reference False") for f in found)
    assert any("another class" in f for f in found)
