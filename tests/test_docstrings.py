"""The ``>>>`` examples of nepi_lab's docstrings: one test per module runs them.

An example either runs on any machine (no root, no network, no optional extra; what it
makes, such as a run directory, it makes in a temporary folder and removes) or is an
illustration that needs a context the reader has (a running experiment ``ec``, root, a
host): then every one of its ``>>>`` lines says ``# doctest: +SKIP`` (the README's
"Development" section).  A docstring is one or the other, never half of each: a directive
applies to one example only, so a ``+SKIP`` on the first line alone would run the rest.

The examples run as ``python -m doctest`` would run them, with ELLIPSIS and
NORMALIZE_WHITESPACE, in an empty working folder that must stay empty, as must the
temporary folder (``tempfile``'s, the test's own) and the results folder
(``$NEPI_LAB_RESULTS``, the test's own).
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import tempfile

import pytest

import nepi_lab

#: The top-level modules of the optional extras (pyproject's optional-dependencies) ->
#: the extra: a module of nepi_lab whose import needs a missing one is skipped, saying so.
OPTIONAL_MODULES = {"asyncssh": "ssh", "pyroute2": "netns", "ns": "ns3", "cppyy": "ns3",
                    "dask": "dask", "distributed": "dask", "yaml": "lab"}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_names() -> list[str]:
    """nepi_lab and every module under it; a package that cannot be imported is listed
    too (its test then says why), its own modules cannot be."""
    names = {"nepi_lab"}
    for info in pkgutil.walk_packages(nepi_lab.__path__, "nepi_lab.", onerror=names.add):
        names.add(info.name)
    return sorted(names)


def import_or_skip(name: str):
    """The module ``name``; skips the test when its import needs a missing optional extra."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        extra = OPTIONAL_MODULES.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        pytest.skip(f"{name} needs {exc.name}, of the optional extra {extra!r} "
                    f"(pip install 'nepi_lab[{extra}]')")


def half_skipped(test: doctest.DocTest) -> list[int]:
    """Line numbers (in the file) of the examples of ``test`` that run while others of
    the same docstring are skipped: an illustration marked on some lines only."""
    skipped = [example.options.get(doctest.SKIP, False) for example in test.examples]
    if not any(skipped) or all(skipped):
        return []
    return [(test.lineno or 0) + example.lineno + 1
            for example in test.examples if not example.options.get(doctest.SKIP, False)]


@pytest.mark.parametrize("name", module_names())
def test_docstring_examples(name, tmp_path, monkeypatch, run_records):
    module = import_or_skip(name)
    path = os.path.relpath(module.__file__, os.path.dirname(os.path.dirname(nepi_lab.__file__)))
    try:
        tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    except ValueError as exc:  # a "# doctest:" text that is no directive, a bad indentation ...
        unparsable = str(exc)
    else:
        unparsable = None
    if unparsable:
        pytest.fail(f"{path}: a docstring is no valid doctest: {unparsable}", pytrace=False)
    half = {t.name: lines for t in tests if (lines := half_skipped(t))}
    if half:
        pytest.fail(f"{path}: docstrings whose examples are partly '# doctest: +SKIP': mark every "
                    f"line of an illustration (these lines run: {half})", pytrace=False)

    work, temporary = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temporary.mkdir()
    monkeypatch.chdir(work)
    # the examples' tempfile.mkdtemp() folders, there: even one left by a failing example goes
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # if an example is the first to import pyplot
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    if runner.failures:
        pytest.fail(f"{runner.failures} of {runner.tries} examples of {path} failed:\n{''.join(report)}",
                    pytrace=False)

    assert os.listdir(work) == [], f"the examples of {path} left files in the working folder"
    assert os.listdir(temporary) == [], f"the examples of {path} left temporary folders"
    results = tmp_path / "results"
    left = os.listdir(results) if results.exists() else []
    assert left == [], f"the examples of {path} left run directories in the results folder: {left}"
    runs = run_records / "runs"
    assert not runs.exists() or os.listdir(runs) == [], f"the examples of {path} left runs indexed"
