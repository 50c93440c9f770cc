"""The README's Python blocks run, in order, as a reader would paste them into one session.

A block is skipped only when the line before its fence says why, in an HTML comment
that GitHub does not show: ``<!-- readme-test: not run (reason) -->``, or
``<!-- readme-test: needs root -->`` (then it runs as root only).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
_BLOCK = re.compile(r"(?:^<!-- readme-test: (?P<marker>[^>]*?) -->\n)?^```python\n(?P<code>.*?)^```",
                    re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line, marker, code)`` of every Python block of ``text``."""
    return [(text.count("\n", 0, m.start("code")) + 1, m.group("marker") or "", m.group("code"))
            for m in _BLOCK.finditer(text)]


def test_markers_are_known():
    with open(README) as f:
        blocks = python_blocks(f.read())
    assert len(blocks) >= 5
    for line, marker, _ in blocks:
        assert marker == "" or marker == "needs root" or marker.startswith("not run ("), (line, marker)


def test_the_readme_blocks_run(tmp_path):
    with open(README) as f:
        blocks = python_blocks(f.read())
    root = os.geteuid() == 0
    chosen = [(line, code) for line, marker, code in blocks
              if not marker.startswith("not run") and (root or marker != "needs root")]
    script = ["import sys", "namespace = {'__name__': '__main__'}"]
    for line, code in chosen:
        script.append(f"print('README block at line {line}', flush=True)")
        script.append(f"exec(compile({code!r}, 'README.md:{line}', 'exec'), namespace)")
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, NEPI_LAB_RESULTS=str(tmp_path / "results"), HOME=str(home), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    ran = re.findall(r"^README block at line (\d+)$", proc.stdout, re.M)
    assert proc.returncode == 0, (f"README block at line {ran[-1] if ran else '?'} failed:\n"
                                  + textwrap.indent(proc.stderr[-3000:], "    "))
    assert len(ran) == len(chosen)
    assert "waits to START until resource 1" in proc.stdout or "s more (condition: START" in proc.stdout
    assert (tmp_path / "timeline.png").stat().st_size > 1000


def test_a_failing_block_is_reported_with_its_line(tmp_path):
    """Control: the block parser finds blocks and their lines, markers included."""
    text = "x\n```python\nprint(1)\n```\n<!-- readme-test: not run (why) -->\n```python\n1/0\n```\n"
    assert python_blocks(text) == [(3, "", "print(1)\n"), (7, "not run (why)", "1/0\n")]
    pytest.raises(ZeroDivisionError, exec, python_blocks(text)[1][2])
