"""Reading NEPI time strings.

Relative times are a number and one unit: ``"0s"``, ``"1.5s"``, ``"500ms"``,
``"10us"``, ``"2m"``, ``"1h"``; a bare int or float means seconds.  Absolute times
are a :class:`datetime.datetime` or NEPI's 20-digit stamp ``YYYYmmddHHMMSSffffff``.
Anything else (``"2m30s"``, ``"-1s"``, ``"soon"``) raises :class:`TimeFormatError`.
"""

from __future__ import annotations

import functools
import math
import re

from .errors import InvalidInputError, TimeFormatError

_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
_RELATIVE_HELP = "a number and a unit such as '0s', '1.5s', '500ms', '10us', '2m', '1h'"


# Compiled on first use, not at import: a script that gives no time string needs neither.
@functools.cache
def _relative() -> re.Pattern[str]:
    return re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(h|m|s|ms|us)\s*")


@functools.cache
def _stamp() -> re.Pattern[str]:
    return re.compile(r"\d{20}")


def parse_delay(value: object) -> float:
    """Return a relative time in seconds.

    Example
    -------
    >>> parse_delay("500ms"), parse_delay("2m"), parse_delay(1.5)
    (0.5, 120.0, 1.5)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise TimeFormatError(value, "a finite number of seconds >= 0")
        return seconds
    if isinstance(value, str):
        match = _relative().fullmatch(value)
        if match:
            seconds = float(match.group(1)) * _UNIT[match.group(2)]
            if math.isfinite(seconds):  # 400 digits make an infinite float
                return seconds
            raise TimeFormatError(value, "a finite number of seconds >= 0")
    raise TimeFormatError(value, _RELATIVE_HELP)


def parse_date(value: object, now: float) -> float:
    """Return the wall-clock time (epoch seconds) a schedule ``date`` designates.

    ``value`` is relative to ``now`` (see :func:`parse_delay`) or absolute: a
    datetime (naive means local time) or a 20-digit ``YYYYmmddHHMMSSffffff`` stamp.

    A date must be one a ``datetime`` can hold (before the year 10000): a delay such
    as ``"99999999999h"`` or ``1e308`` is refused here, not when the task is made.
    """
    import datetime as _dt  # here: only schedule() needs it (~1 ms to import)

    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, str) and _stamp().fullmatch(value.strip()):
        try:
            return _dt.datetime.strptime(value.strip(), "%Y%m%d%H%M%S%f").timestamp()
        except ValueError:
            raise TimeFormatError(value, "a valid YYYYmmddHHMMSSffffff date") from None
    try:
        when = now + parse_delay(value)
    except TimeFormatError:
        raise TimeFormatError(
            value, _RELATIVE_HELP + ", a datetime, or a 20-digit YYYYmmddHHMMSSffffff stamp"
        ) from None
    try:
        _dt.datetime.fromtimestamp(when)
    except (OverflowError, OSError, ValueError):
        raise TimeFormatError(value, "a delay that ends before the year 10000") from None
    return when


def format_delay(seconds: float) -> str:
    """A short human form of a delay: ``1.5 s``, ``250 ms``."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.3g} s"
    return f"{seconds * 1000:.3g} ms"


def check_timeout(value: object) -> float | None:
    """A ``timeout=`` argument: None (no limit) or a finite number of seconds >= 0.

    NaN, infinities, negative numbers, strings and booleans are refused with an
    :class:`InvalidInputError` (a NaN deadline would never expire and would stall
    every timer of the loop).

    Example
    -------
    >>> check_timeout(5), check_timeout(None)
    (5.0, None)
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    raise InvalidInputError(f"timeout must be None or a finite number of seconds >= 0, not {value!r}")
