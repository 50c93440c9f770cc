"""Declared, typed resource attributes.

A resource type declares its attributes as a tuple of :class:`Attribute` in its class
body; subclasses inherit them and may redeclare one by name to change its default.
Values are checked and normalised when set: ``Integer`` takes ``3`` or ``"3"`` (NEPI
scripts often pass strings) but refuses ``"three"``, ``3.5`` and ``True``.

Whatever the declaration, a few values are refused for every attribute, because they
would only fail later, far from the call that made them: a string holding a NUL
character (no command line, environment or file name can carry one), an integer that
does not fit in 64 bits (the run directory and its readers store integers so), and a
number too large to be a float.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Sequence
from typing import Any

from .errors import AttributeValueError


class Types(str, enum.Enum):
    """Value types of attributes, with NEPI's names."""

    String = "STRING"
    Bool = "BOOL"
    Enumerate = "ENUM"
    Double = "DOUBLE"
    Integer = "INTEGER"


class Flags(enum.IntFlag):
    """Attribute flags, with NEPI's values; they may be combined with ``|``."""

    NoFlags = 0
    NoRead = 1  # value is secret: shown masked
    NoWrite = 2  # set by the resource itself, never by the user
    Design = 4  # may be set only before the resource is deployed
    Construct = 8  # passed to the back end's constructor (ns-3)
    Credential = 16 | 4  # a secret such as a password or key; design-only
    Filter = 32 | 4  # a discovery filter; design-only
    Reserved = 64  # maps to a live back-end attribute
    Global = 128  # class-wide value


#: The integers an Integer attribute may hold: signed 64-bit ones.
INTEGER_RANGE = (-(2**63), 2**63 - 1)

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclasses.dataclass(frozen=True)
class Attribute:
    """The declaration of one attribute, and (in copies) its current value.

    Parameters
    ----------
    name : str
        Name used with ``ec.set(guid, name, value)``.
    help : str
        One line shown in errors, reprs and as the widget tooltip.
    type : Types
        Value type; values are checked and normalised to it.
    flags : Flags
        See :class:`Flags`.
    default : object
        Value before any ``set``.
    allowed : sequence, optional
        For ``Types.Enumerate``: the allowed values.
    range : (low, high), optional
        For numbers: inclusive bounds (either may be None).
    set_hook : callable, optional
        ``hook(resource, old, new) -> new`` called on every set, for runtime effects.

    Example
    -------
    >>> a = Attribute("count", "packets to send", type=Types.Integer, default=3, range=(1, None))
    >>> a.check("5")
    5
    """

    name: str
    help: str = ""
    type: Types = Types.String
    flags: Flags = Flags.NoFlags
    default: Any = None
    allowed: Sequence[Any] | None = None
    range: tuple[float | None, float | None] | None = None
    set_hook: Callable[[Any, Any, Any], Any] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    value: Any = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.type is Types.Enumerate and not self.allowed:
            raise TypeError(f"attribute {self.name!r}: an Enumerate needs allowed values")
        if self.allowed is not None:
            object.__setattr__(self, "allowed", tuple(self.allowed))

    def has_flag(self, flag: Flags) -> bool:
        """True when every bit of ``flag`` is set on this attribute."""
        return (self.flags & flag) == flag

    def with_value(self, value: Any) -> Attribute:
        """A copy of this declaration carrying ``value``."""
        return dataclasses.replace(self, value=value)

    def check(self, value: Any, guid: int | None = None, rtype: str = "") -> Any:
        """Return ``value`` normalised to this attribute's type, or raise.

        ``None`` is always accepted: it means "unset" (the attribute's default).

        Raises
        ------
        AttributeValueError
            Wrong type, not among the allowed values, or outside the range.
        """
        if value is None:
            return None

        def bad(reason: str) -> AttributeValueError:
            return AttributeValueError(guid, rtype, self.name, value, reason, self.allowed)

        t = self.type
        if t is Types.String:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                value = str(value)
            elif not isinstance(value, str):
                raise bad(f"expected a string, got {type(value).__name__}")
            if "\x00" in value:
                raise bad("a NUL character cannot reach a command line, an environment or a file name")
        elif t is Types.Bool:
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                value = value.strip().lower() in _TRUE
            elif not isinstance(value, bool):
                raise bad("expected True or False")
        elif t is Types.Integer:
            if isinstance(value, str):
                try:
                    value = int(value.strip())
                except ValueError:
                    raise bad("expected an integer") from None
            elif isinstance(value, bool) or not isinstance(value, int):
                raise bad(f"expected an integer, got {type(value).__name__}")
            if not INTEGER_RANGE[0] <= value <= INTEGER_RANGE[1]:
                raise bad("must fit in 64 bits, between -2**63 and 2**63 - 1")
        elif t is Types.Double:
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    raise bad("expected a number") from None
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad(f"expected a number, got {type(value).__name__}")
            else:
                try:
                    value = float(value)
                except OverflowError:  # an int beyond the largest float
                    raise bad("expected a finite number") from None
            if not math.isfinite(value):
                raise bad("expected a finite number")
        if self.allowed is not None and value not in self.allowed:
            raise bad("allowed values are " + ", ".join(repr(a) for a in self.allowed))
        if self.range is not None and t in (Types.Integer, Types.Double):
            low, high = self.range
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
                raise bad(f"must lie in {bounds}")
        return value


@dataclasses.dataclass(frozen=True)
class Alias:
    """Another name for a declared attribute: the same value, read and written by either name.

    A resource type lists its aliases in ``_aliases``; subclasses inherit them.  They
    exist so that a NEPI script ports by changing its imports: NEPI's ``linux::Node``
    calls the SSH key file ``identity``, ours ``identityFile``, so ``linux::Node``
    declares ``Alias("identity", "identityFile")`` and both ``ec.set(node,
    "identity", path)`` and ``ec.get(node, "identity")`` work.  Only the attribute's
    own name is ever written out (run directory, saved experiment, script), so a file
    never depends on an alias.  An alias is right only where the meaning and the unit
    are the same; where NEPI's attribute means something else, the type declares a
    real attribute (or a set hook converts) instead.

    Parameters
    ----------
    name : str
        The other name (NEPI's).
    attribute : str
        The declared attribute it stands for.
    note : str
        Where the name comes from, shown by ``nepi-lab types NAME``.

    Example
    -------
    >>> Alias("identity", "identityFile")
    Alias(name='identity', attribute='identityFile', note="NEPI's name")
    """

    name: str
    attribute: str
    note: str = "NEPI's name"


def is_secret(attribute: Attribute) -> bool:
    """Whether ``attribute`` holds a secret (``Flags.NoRead`` or ``Flags.Credential``): its
    value is masked in views and never written to a file (run directory, saved
    experiment, script); only its name is."""
    return attribute.has_flag(Flags.NoRead) or attribute.has_flag(Flags.Credential)
