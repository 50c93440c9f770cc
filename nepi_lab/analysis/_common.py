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


class Lines:
    """The lines of a buffer as index arrays: ``starts``, ``ends`` (exclusive, at the
    newline) and ``numbers`` (1-based), computed in one numpy pass.

    ``select(mask)`` gives the bytes of the lines where ``mask`` is true, newline
    included, still in one pass, so that a big buffer is filtered without a loop.
    """

    def __init__(self, data: bytes, first_line: int = 1) -> None:
        import numpy as np

        if data and not data.endswith(b"\n"):
            data += b"\n"
        self.data = data
        self.buffer = np.frombuffer(data, dtype=np.uint8)
        self.ends = np.flatnonzero(self.buffer == 10)
        self.starts = np.empty_like(self.ends)
        if len(self.ends):
            self.starts[0] = 0
            self.starts[1:] = self.ends[:-1] + 1
        self.lengths = self.ends - self.starts
        self.numbers = np.arange(first_line, first_line + len(self.ends))

    def __len__(self) -> int:
        return len(self.ends)

    def containing(self, needle: bytes) -> np.ndarray:
        """A boolean mask: the lines that contain ``needle`` (which has no newline)."""
        import numpy as np

        mask = np.zeros(len(self), dtype=bool)
        positions = find_all(self.buffer, needle)
        if len(positions):
            mask[np.searchsorted(self.ends, positions)] = True
        return mask

    def select(self, mask: np.ndarray) -> bytes:
        """The lines where ``mask`` is true, joined, each ending with a newline."""
        import numpy as np

        if mask.all():
            return self.data
        keep = np.repeat(mask, self.lengths + 1)
        return self.buffer[keep].tobytes()

    def text(self, mask: np.ndarray) -> list[str]:
        """The lines where ``mask`` is true, decoded (invalid UTF-8 becomes U+FFFD)."""
        selected = self.select(mask)
        return selected.decode("utf-8", "replace").split("\n")[:-1] if selected else []


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
