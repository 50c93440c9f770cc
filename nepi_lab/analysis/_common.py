"""Helpers shared by the built-in parsers: bytes and text, line splitting, metadata.

Everything here works on whole buffers or whole columns (numpy, pandas), never
with a Python loop per line: a trace may hold millions of lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: How many malformed lines a frame's ``attrs["malformed_examples"]`` shows.
EXAMPLES = 5
_EXAMPLE_WIDTH = 200


def text_dtype() -> str:
    """The dtype of text columns: pandas 3's ``"str"``; on pandas 2 its ``"string"``
    (both keep missing values missing, where pandas 2's ``"str"`` would write "nan")."""
    import pandas as pd

    return "str" if int(pd.__version__.split(".", 1)[0]) >= 3 else "string"


def as_bytes(data: str | bytes) -> bytes:
    """The trace content as bytes (``ec.trace`` gives str when the file is UTF-8)."""
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)


def as_text(data: str | bytes) -> str:
    """The trace content as text; bytes that are not UTF-8 become U+FFFD."""
    return data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")


def example(line_number: int, text: str | bytes) -> str:
    """``"line 7: <the line>"``, shortened: what ``attrs["malformed_examples"]`` holds."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) > _EXAMPLE_WIDTH:
        text = text[:_EXAMPLE_WIDTH] + "..."
    return f"line {line_number}: {text}"


def finish(frame: pd.DataFrame, parser: str, malformed: int = 0, examples: Sequence[str] = (),
           **attrs: Any) -> pd.DataFrame:
    """Set the metadata every built-in parser gives: its name, and the malformed count.

    ``attrs["malformed"]`` counts the lines (or records, or documents) that could not
    be read; ``attrs["malformed_examples"]`` shows the first few of them, with their
    line numbers.
    """
    frame.attrs.update(attrs)
    frame.attrs["parser"] = parser
    frame.attrs["malformed"] = int(malformed)
    frame.attrs["malformed_examples"] = list(examples)[:EXAMPLES]
    return frame


#: The seconds since the epoch a pandas timestamp holds (nanoseconds in an int64):
#: the years 1678 to 2261, with a little margin.
MAX_EPOCH_SECONDS = 9.2e9


def floats(values: Any) -> np.ndarray:
    """``values`` (a Series of numbers or of text) as float64: NaN where there is no
    number, +-inf where the number is beyond any float (a field of 400 digits), so that
    a range check refuses it rather than mistaking it for a missing field."""
    import numpy as np
    import pandas as pd

    if values.dtype.kind not in "iuf":
        try:
            values = pd.to_numeric(values, errors="coerce")
        except (OverflowError, TypeError, ValueError):  # a Python int beyond any float
            values = values.astype(object).map(_float)
        if values.dtype.kind not in "iuf":
            values = values.astype(object).map(_float)
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")
    except (TypeError, ValueError):
        return float("nan")


def nullable_integers(values: Any) -> pd.arrays.IntegerArray:
    """``values`` (numbers or text) as Int64: NA where there is no whole number that fits
    in 64 bits (a port of 30 digits is not one)."""
    import numpy as np
    import pandas as pd

    numbers = floats(values)
    fine = (numbers >= -(2.0**63)) & (numbers < 2.0**63) & (numbers == np.floor(numbers))
    return pd.arrays.IntegerArray(np.where(fine, numbers, 0).astype(np.int64), ~fine)


def utc_times(seconds: Any) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Seconds since the epoch as UTC timestamps (rounded to the microsecond), and the mask
    of those no timestamp holds (beyond the year 2261, infinite), which become NaT."""
    import numpy as np
    import pandas as pd

    seconds = np.asarray(seconds, dtype="float64")
    outside = ~np.isnan(seconds) & ~(np.abs(seconds) < MAX_EPOCH_SECONDS)
    if outside.any():
        seconds = np.where(outside, np.nan, seconds)
    times = pd.to_datetime(seconds, unit="s", utc=True).round("us").astype("datetime64[ns, UTC]")
    return times, outside


class Lines:
    """The lines of ``data[start:stop]`` as index arrays, found in one numpy pass.

    ``starts`` and ``ends`` (exclusive, at the newline) are offsets into ``data``;
    ``numbers`` are 1-based line numbers, the first being ``first_line``.  Nothing is
    copied: a trace of a hundred megabytes is split without a loop and without a copy.
    ``select(mask)`` gives the bytes of the lines where ``mask`` is true, in one pass.
    """

    def __init__(self, data: bytes, first_line: int = 1, start: int = 0, stop: int | None = None) -> None:
        import numpy as np

        stop = len(data) if stop is None else stop
        self.data = data
        self.start, self.stop = start, stop
        self.buffer = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(self.buffer[start:stop] == 10) + start
        if stop > start and data[stop - 1:stop] != b"\n":  # a last line without its newline
            ends = np.append(ends, stop)
        self.ends = ends
        self.starts = np.empty_like(ends)
        if len(ends):
            self.starts[0] = start
            self.starts[1:] = ends[:-1] + 1
        self.lengths = ends - self.starts
        # bytes up to the next line (the newline included, when there is one)
        self.spans = np.minimum(ends + 1, stop) - self.starts
        self.numbers = np.arange(first_line, first_line + len(ends))

    def __len__(self) -> int:
        return len(self.ends)

    def containing(self, needle: bytes) -> np.ndarray:
        """A boolean mask: the lines that contain ``needle`` (which has no newline)."""
        import numpy as np

        mask = np.zeros(len(self), dtype=bool)
        positions = find_all(self.buffer[self.start:self.stop], needle) + self.start
        if len(positions):
            mask[np.searchsorted(self.ends, positions)] = True
        return mask

    def select(self, mask: np.ndarray) -> bytes:
        """The lines where ``mask`` is true, joined (each with its newline, if it had one)."""
        import numpy as np

        if mask.all():
            return self.data[self.start:self.stop]
        keep = np.zeros(self.stop - self.start, dtype=bool)
        keep[: self.spans.sum()] = np.repeat(mask, self.spans)
        return self.buffer[self.start:self.stop][keep].tobytes()

    def text(self, mask: np.ndarray) -> list[str]:
        """The lines where ``mask`` is true, decoded (invalid UTF-8 becomes U+FFFD)."""
        selected = self.select(mask)
        if not selected:
            return []
        lines = selected.decode("utf-8", "replace").split("\n")
        return lines[:-1] if selected.endswith(b"\n") else lines


def find_all(buffer: np.ndarray, needle: bytes) -> np.ndarray:
    """Every position of ``needle`` in ``buffer`` (a uint8 array), vectorised.

    Candidates are the positions of the needle's rarest-looking byte (a letter other
    than a space), then narrowed one byte of the needle at a time.
    """
    import numpy as np

    n = len(needle)
    if n == 0 or len(buffer) < n:
        return np.empty(0, dtype=np.intp)
    anchor = next((i for i, c in enumerate(needle) if chr(c).isalpha() and chr(c) not in "aeiost"), 0)
    positions = np.flatnonzero(buffer == needle[anchor]) - anchor
    positions = positions[(positions >= 0) & (positions <= len(buffer) - n)]
    for i, c in enumerate(needle):
        if i != anchor and len(positions):
            positions = positions[buffer[positions + i] == c]
    return positions
