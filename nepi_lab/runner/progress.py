"""A sweep's progress on a terminal: one line rewritten in place while :meth:`Sweep.run` goes on.

The line says how many runs are done, failed and left, which run is being made, and an
estimate of the time left (the mean duration of the sweep's finished runs times the runs
left).  It is drawn when a run starts and when it ends: no thread, no timer.

Where it is drawn (``progress`` of :meth:`Sweep.run`):

- ``None`` (the default): on a terminal only, and never in a Jupyter kernel (whose
  stdout is not one, and which will have its own view).  A log or a pipe stays quiet:
  a script's output is its own.
- ``True``: always; where the output is not a terminal, a plain line per finished run.
- ``False``: never.

This module sits in the runs layer: it reads the sweep's record, never a frame.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

#: The states a run's entry can hold (as nepi_lab.runner.sweep's).
DONE, FAILED, PENDING, RUNNING = "done", "failed", "pending", "running"


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (looked up, never imported)."""
    return "ipykernel" in sys.modules


def wanted(progress: bool | None, out: TextIO) -> bool:
    """Whether to show the progress on ``out``: ``progress``, or by default a terminal
    outside a Jupyter kernel."""
    if progress is not None:
        return bool(progress)
    return _isatty(out) and not in_kernel()


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``: coarse, for an estimate."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def estimate(runs: list[Mapping[str, Any]], left: int, parallel: int = 1) -> float | None:
    """Seconds left: the mean duration of the finished runs times ``left``, shared by
    ``parallel`` runs at once; None before any run finished."""
    took = [r["end"] - r["start"] for r in runs
            if r["state"] in (DONE, FAILED) and r.get("start") is not None and r.get("end") is not None]
    if not took:
        return None
    return sum(took) / len(took) * left / max(1, min(parallel, left))


class SweepProgress:
    """Draws a sweep's counts on ``out``: in place on a terminal, else a line per finished run."""

    def __init__(self, exp_id: str, out: TextIO, tty: bool | None = None, parallel: int = 1) -> None:
        self.exp_id = exp_id
        self.parallel = parallel
        self.out = out
        self.tty = _isatty(out) if tty is None else tty
        self._drawn = False

    def line(self, runs: list[Mapping[str, Any]], left: int, current: str | None = None) -> str:
        """``sweep grid: 3 done, 1 failed, 4 left; making run 5/8 (n=2, word=a); about 12 s left``.

        ``left`` counts the runs this ``run()`` has still to make (the current one too)."""
        states = [r["state"] for r in runs]
        text = f"sweep {self.exp_id}: {states.count(DONE)} done, {states.count(FAILED)} failed, {left} left"
        making = states.count(RUNNING)
        if making > 1:
            text += f"; making {making} runs at once"
        elif current is not None:
            text += f"; making {current}"
        eta = estimate(runs, left, self.parallel)
        if left and eta is not None:
            text += f"; about {format_duration(eta)} left"
        return text

    def started(self, runs: list[Mapping[str, Any]], left: int, current: str) -> None:
        """A run starts: on a terminal, redraw the line."""
        if self.tty:
            self._write("\r\x1b[K" + self.line(runs, left, current))

    def finished(self, runs: list[Mapping[str, Any]], left: int) -> None:
        """A run ended: redraw the line on a terminal, else print it."""
        text = self.line(runs, left)
        self._write("\r\x1b[K" + text if self.tty else text + "\n")

    def close(self) -> None:
        """End the line being rewritten (on a terminal)."""
        if self.tty and self._drawn:
            self._write("\n")

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):  # a closed stream must not fail the sweep
            return
        self._drawn = not text.endswith("\n")
