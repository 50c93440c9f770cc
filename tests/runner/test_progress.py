"""A sweep's progress: one line rewritten in place on a terminal (a real pty), nothing on a
pipe by default, plain lines on a pipe when asked; the estimate from the runs' durations."""

from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import sys
import textwrap

import pytest

from nepi_lab import InvalidInputError, Sweep
from nepi_lab.runner.progress import SweepProgress, estimate, format_duration, wanted

from ..guards import terminal_output
from .builds import echo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""\
    import functools, sys
    sys.path.insert(0, {root!r})
    from nepi_lab import Sweep
    from tests.runner.builds import echo
    sweep = Sweep(functools.partial(echo, home={home!r}, seconds=0.2), {{"n": [1, 2, 3], "word": ["a"]}},
                  exp_id="shown", results={results!r})
    made = sweep.run(progress={progress})
    print("made", made, flush=True)
""")


def script(tmp_path, home, progress, results="results") -> list[str]:
    path = tmp_path / f"sweep_script_{results}.py"
    path.write_text(SCRIPT.format(root=ROOT, home=home, results=str(tmp_path / results), progress=progress))
    return [sys.executable, str(path)]


def test_on_a_terminal_one_line_is_rewritten_in_place(tmp_path, home):
    text = terminal_output(script(tmp_path, home, None), 60)
    frames = text.split("\r\x1b[K")[1:]
    # a frame when each run starts and when it ends: 3 runs, 6 frames, one line in all
    assert len(frames) == 6, text
    assert all("\n" not in f for f in frames[:-1]), frames
    assert frames[0] == "sweep shown: 0 done, 0 failed, 3 left; making run 1/3 (n=1, word=a)"
    assert re.fullmatch(r"sweep shown: 1 done, 0 failed, 2 left; about \d+ s left", frames[1]), frames[1]
    assert re.fullmatch(r"sweep shown: 1 done, 0 failed, 2 left; making run 2/3 \(n=2, word=a\); "
                        r"about \d+ s left", frames[2]), frames[2]
    # n=3 fails (tests.runner.builds.echo); the line ends once, then the script's own output
    assert frames[-1] == "sweep shown: 2 done, 1 failed, 0 left\nmade 3\n", frames[-1]


def test_on_a_pipe_nothing_by_default_plain_lines_when_asked(tmp_path, home):
    quiet = subprocess.run(script(tmp_path, home, None), capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "made 3\n"
    # asked for: a plain line per finished run (a new sweep: the first one is done)
    asked = subprocess.run(script(tmp_path, home, True, results="asked"), capture_output=True, text=True,
                           timeout=60)
    assert asked.returncode == 0, asked.stderr
    assert "\r" not in asked.stdout and "\x1b" not in asked.stdout
    lines = asked.stdout.splitlines()
    assert len(lines) == 4, lines
    assert re.fullmatch(r"sweep shown: 1 done, 0 failed, 2 left; about \d+ s left", lines[0])
    assert lines[2:] == ["sweep shown: 2 done, 1 failed, 0 left", "made 3"]


def test_progress_false_is_silent_and_a_bad_value_is_refused(tmp_path, home, capsys):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1], "word": ["a"]}, exp_id="silent",
                  results=tmp_path)
    with pytest.raises(InvalidInputError, match="progress must be None"):
        sweep.run(progress="yes")
    assert sweep.run(progress=False) == 1
    assert capsys.readouterr().out == ""


def test_auto_means_a_terminal_outside_a_jupyter_kernel(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert wanted(None, Terminal()) and not wanted(None, io.StringIO())
    assert wanted(True, io.StringIO()) and not wanted(False, Terminal())
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # as if in a kernel: its own view, not this
    assert not wanted(None, Terminal())


def test_the_estimate_is_the_mean_duration_times_the_runs_left():
    runs = [{"state": "done", "start": 0.0, "end": 2.0}, {"state": "failed", "start": 2.0, "end": 6.0},
            {"state": "running", "start": 6.0, "end": None}, {"state": "pending", "start": None, "end": None}]
    assert estimate(runs, 2) == 6.0
    assert estimate(runs[2:], 2) is None  # nothing finished yet: no estimate
    assert [format_duration(s) for s in (0.4, 59, 61, 3599, 3600 * 2 + 7 * 60)] == \
        ["0 s", "59 s", "1 min 01 s", "59 min 59 s", "2 h 07 min"]
    out = io.StringIO()
    shown = SweepProgress("x", out, tty=False)
    shown.started(runs, 2, "run 3/4")  # not a terminal: only finished runs print
    shown.finished(runs, 2)
    shown.close()
    assert out.getvalue() == "sweep x: 1 done, 1 failed, 2 left; about 6 s left\n"


def test_runs_made_at_once_share_the_estimate_and_the_line_counts_them():
    runs = [{"state": "done", "start": 0.0, "end": 4.0}, {"state": "running", "start": 4.0, "end": None},
            {"state": "running", "start": 4.0, "end": None}, {"state": "pending", "start": None, "end": None},
            {"state": "pending", "start": None, "end": None}]
    assert estimate(runs, 4, parallel=2) == 8.0  # four runs of 4 s, two at a time
    assert estimate(runs, 1, parallel=2) == 4.0  # one left: no sharing
    out = io.StringIO()
    shown = SweepProgress("x", out, tty=True, parallel=2)
    shown.started(runs, 4, "run 3/5")
    assert out.getvalue() == "\r\x1b[Ksweep x: 1 done, 0 failed, 4 left; making 2 runs at once; " \
                             "about 8 s left"
