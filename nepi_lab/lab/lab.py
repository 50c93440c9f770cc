"""A lab: a list of checks with their points, evaluated against one run or graded across many.

:meth:`Lab.check` evaluates every check against one source and gives a DataFrame,
one row per check; :meth:`Lab.grade` evaluates them against many run directories (the
students' submissions) and gives a :class:`Grades`: one row per student and check,
and a totals frame, written with :meth:`Grades.to_csv` or :meth:`Grades.to_excel`.

Which runs
----------
Paths given to :meth:`Lab.grade` are run directories, folders holding run directories
(a student's submission: ``<student>/<run dir>``, or a results folder
``<student>/<exp_id>/<run dir>``: looked for one level down, then two), or glob
patterns of either (``"submissions/*"``, ``"subs/**/2026*"``).  A pattern that matches
nothing, or a path that does not exist, is refused; a folder that exists but holds no
readable run directory is graded, every check failing with the reason.

Who is the student
------------------
Each graded run directory is given a student by ``student_from``:

==============  =========================================================================
``"auto"``      (the default) the folder named (or matched by the pattern) when it *holds*
                the run directory: ``grade("submissions/*")`` names ``alice`` for
                ``submissions/alice/...``; else, for a run directory named directly, the
                name of the folder holding it (``"parent"``)
``"parent"``    the name of the folder holding the run directory
``"dir"``       the run directory's own name
``"exp_id"``    the run's ``exp_id`` (each student ran ``ExperimentController("lab1-alice")``)
``"parameter"`` the run's ``student`` parameter (``ExperimentController(parameters=
                {"student": "alice"})``); a run without one is named by its folder
a function      ``function(path) -> str`` of the run directory's path
==============  =========================================================================

Two run directories of the same student are refused (naming both): grade one per
student, or choose another ``student_from``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..analysis.run import ControllerRun, Run, RunSet, load_runs
from ..core.controller import ExperimentController
from ..core.errors import InvalidInputError
from ..core.results import DESCRIPTION, EVENTS
from .checks import Check, CheckResult, Context

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :meth:`Lab.check`'s frame.
RESULT_COLUMNS = ["name", "passed", "observed", "expected", "message", "points", "max_points", "evaluated"]
#: Columns of :attr:`Grades.frame` before the result columns.
GRADE_COLUMNS = ["student", "path", "run_id"]
#: Columns of :attr:`Grades.totals`.
TOTAL_COLUMNS = ["student", "path", "run_id", "passed", "checks", "points", "max_points", "percent"]
#: The ways of naming the student of a run directory (see the module docstring).
STUDENT_FROM = ("auto", "parent", "dir", "exp_id", "parameter")


class Lab:
    """Checks and their points: what a run of the lab should show.

    Parameters
    ----------
    checks
        The :class:`~nepi_lab.lab.checks.Check` objects, in the order of the results.
        Their names (``check.title``) must differ.
    points
        None (each check's own ``points``), a number (every check), a mapping of check
        name to points, or a sequence with one number per check.
    title
        A name for the lab (shown by the command line, kept in spec files).
    """

    def __init__(self, checks: Iterable[Check], points: Any = None, title: str | None = None) -> None:
        checks = list(checks)
        for check in checks:
            if not isinstance(check, Check):
                raise InvalidInputError(f"a lab holds checks (nepi_lab.lab.Check), not {check!r}")
        if not checks:
            raise InvalidInputError("a lab needs at least one check")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise InvalidInputError(f"a lab's title is a non-empty string, not {title!r}")
        self.checks: tuple[Check, ...] = tuple(_with_points(checks, points))
        self.title = title
        seen: dict[str, int] = {}
        for i, check in enumerate(self.checks):
            if check.title in seen:
                raise InvalidInputError(f"checks {seen[check.title]} and {i} are both named {check.title!r}: "
                                        "give one a name=")
            seen[check.title] = i

    def __repr__(self) -> str:
        title = f" {self.title!r}" if self.title else ""
        return f"<Lab{title}: {len(self.checks)} checks, {self.max_points:g} points>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Lab):
            return NotImplemented
        return (self.title, self.checks) == (other.title, other.checks)

    __hash__ = None  # type: ignore[assignment]

    @property
    def max_points(self) -> float:
        """The points of every check."""
        return sum(c.points for c in self.checks)

    # -- one run --------------------------------------------------------------------

    def results(self, source: Any) -> list[CheckResult]:
        """Every check's :class:`CheckResult` against one run (no pandas frame: a view's input).

        ``source`` is a controller, a run directory path, a Run or a
        :class:`~nepi_lab.lab.checks.Context`.  Never raises for what the run holds.
        """
        ctx = source if isinstance(source, Context) else Context(source)
        return [check.evaluate(ctx) for check in self.checks]

    def check(self, source: Any) -> pd.DataFrame:
        """Evaluate every check: one row per check (``name, passed, observed, expected,
        message, points, max_points, evaluated``).

        ``source`` is a live or finished controller, a run directory path, a Run, or
        several runs: a :class:`~nepi_lab.RunSet`, a :class:`~nepi_lab.Sweep`, an
        experiment or sweep directory (then a ``run_id`` column comes first and there
        is one row per run and check).
        """
        import pandas as pd

        runs = _runs_of(source)
        if runs is None:
            return _results_frame(self.results(source))
        frames = []
        for run in runs:
            frame = _results_frame(self.results(run))
            frame.insert(0, "run_id", run.run_id)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    # -- many runs ------------------------------------------------------------------

    def grade(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
              student_from: str | Callable[[str], str] = "auto") -> Grades:
        """Evaluate every check against every run directory of ``paths`` (see the module
        docstring: globs, student names); returns :class:`Grades`."""
        import pandas as pd

        found = _expand(paths)
        folders = [run for run, _ in found]
        students = _students(found, student_from)
        everything: list[CheckResult] = []
        identity: dict[str, list[Any]] = {"student": [], "path": [], "run_id": []}
        totals = []
        for folder, student in zip(folders, students, strict=True):
            ctx = Context(folder)
            run_id = ctx._run.run_id if ctx._run is not None else None
            results = self.results(ctx)
            everything += results
            for column, value in (("student", student), ("path", folder), ("run_id", run_id)):
                identity[column] += [value] * len(results)
            earned = sum(r.points for r in results)
            passed = sum(r.passed for r in results)
            totals.append((student, folder, run_id, passed, len(results), earned, self.max_points,
                           round(100 * earned / self.max_points, 1) if self.max_points else 100.0))
        frame = _results_frame(everything, identity)
        total = pd.DataFrame.from_records(totals, columns=TOTAL_COLUMNS)
        order = sorted(range(len(students)), key=lambda i: students[i])
        total = total.iloc[order].reset_index(drop=True)
        frame = frame.sort_values("student", kind="stable").reset_index(drop=True)
        return Grades(frame, total)

    # -- spec files -----------------------------------------------------------------

    def to_spec(self) -> dict[str, Any]:
        """The lab as a spec document (see :mod:`nepi_lab.lab.spec`)."""
        from .spec import lab_to_spec

        return lab_to_spec(self)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the lab as a spec file: YAML for ``.yaml``/``.yml`` (needs PyYAML), else JSON."""
        from .spec import write_spec

        write_spec(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Lab:
        """Read a spec file (:func:`nepi_lab.lab.spec.read_spec`)."""
        from .spec import read_spec

        return read_spec(path)


def _with_points(checks: list[Check], points: Any) -> list[Check]:
    import dataclasses

    if points is None:
        return checks
    if isinstance(points, Mapping):
        names = {c.title for c in checks}
        unknown = sorted(set(points) - names)
        if unknown:
            raise InvalidInputError(f"points= names no such check: {', '.join(map(repr, unknown))} "
                                    f"(the checks: {', '.join(map(repr, sorted(names)))})")
        return [dataclasses.replace(c, points=points[c.title]) if c.title in points else c for c in checks]
    if isinstance(points, Sequence) and not isinstance(points, str):
        if len(points) != len(checks):
            raise InvalidInputError(f"points= has {len(points)} numbers for {len(checks)} checks")
        return [dataclasses.replace(c, points=p) for c, p in zip(checks, points, strict=True)]
    return [dataclasses.replace(c, points=points) for c in checks]


def _results_frame(results: list[CheckResult], identity: dict[str, list[Any]] | None = None) -> pd.DataFrame:
    """The results as columns: ``observed`` keeps each value as it was (object dtype)."""
    import pandas as pd

    columns: dict[str, Any] = dict(identity or {})
    for name in RESULT_COLUMNS:
        values = [getattr(r, name) for r in results]
        columns[name] = pd.Series(values, dtype=object) if name == "observed" else values
    frame = pd.DataFrame(columns)
    return frame.astype({"passed": bool, "evaluated": bool})


def _is_run_dir(path: str) -> bool:
    return os.path.exists(os.path.join(path, DESCRIPTION)) or os.path.exists(os.path.join(path, EVENTS))


def _runs_of(source: Any) -> list[Run] | None:
    """The runs of a source of several runs; None for a source of one run."""
    from ..runner.sweep import Sweep

    if isinstance(source, (ExperimentController, ControllerRun, Run, Context)):
        return None
    if isinstance(source, RunSet):
        return list(source.runs)
    if isinstance(source, Sweep):
        return list(load_runs(source.path).runs)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path) and not _is_run_dir(path):
            return list(load_runs(path).runs)
        return None
    raise InvalidInputError(f"cannot check {source!r}: give an ExperimentController, a run directory, a Run, "
                            "a RunSet, a Sweep or an experiment directory")


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """The run directories ``paths`` stand for (globs expanded, folders of runs opened), in order."""
    return [run for run, _ in _expand(paths)]


def _expand(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[tuple[str, str]]:
    """``(run directory, the folder named or matched that led to it)``, in order, each once."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise InvalidInputError("no run directory to grade")
    found: dict[str, str] = {}
    for item in items:
        text = os.fspath(item)
        if glob.has_magic(text) and not os.path.exists(text):
            matches = sorted(m for m in glob.glob(text, recursive=True) if os.path.isdir(m))
            if not matches:
                raise InvalidInputError(f"{text}: matches no folder")
        elif not os.path.isdir(text):
            raise InvalidInputError(f"{text}: no such run directory" if not os.path.exists(text)
                                    else f"{text}: not a folder (a run directory is "
                                         "<results>/<exp_id>/<run_id>)")
        else:
            matches = [text]
        for match in matches:
            named = os.path.abspath(match)
            for run in _runs_in(named):
                found.setdefault(run, named)
    return list(found.items())


def _runs_in(folder: str) -> list[str]:
    """``folder`` if it is a run directory, else the run directories one level down, else two."""
    if _is_run_dir(folder):
        return [folder]
    level = [folder]
    for _ in range(2):
        below = []
        for parent in level:
            try:
                names = sorted(os.listdir(parent))
            except OSError:
                continue
            below += [os.path.join(parent, n) for n in names if os.path.isdir(os.path.join(parent, n))]
        runs = [b for b in below if _is_run_dir(b)]
        if runs:
            return runs
        level = below
    return [folder]  # graded as it is: its checks say why it is no run


def _students(found: list[tuple[str, str]], student_from: str | Callable[[str], str]) -> list[str]:
    folders = [run for run, _ in found]
    if callable(student_from):
        names = [str(student_from(f)) for f in folders]
    elif student_from == "auto":
        names = [os.path.basename(named if named != run else os.path.dirname(run)) for run, named in found]
    elif student_from == "parent":
        names = [os.path.basename(os.path.dirname(f)) for f in folders]
    elif student_from == "dir":
        names = [os.path.basename(f) for f in folders]
    elif student_from in ("exp_id", "parameter"):
        names = [_from_description(f, student_from) for f in folders]
    else:
        raise InvalidInputError(f"student_from={student_from!r}: use one of {', '.join(STUDENT_FROM)} or a "
                                "function path -> name")
    seen: dict[str, str] = {}
    for name, folder in zip(names, folders, strict=True):
        if name in seen:
            raise InvalidInputError(
                f"two run directories for student {name!r}: {seen[name]} and {folder}; grade one per "
                f"student, or name students another way (student_from: {', '.join(STUDENT_FROM)})")
        seen[name] = folder
    return names


def _from_description(folder: str, key: str) -> str:
    from ..core.run_directory import read_description

    try:
        description = read_description(folder)
    except Exception:  # a damaged run: named by its folder, its checks say why
        return os.path.basename(folder)
    parameters = description.get("parameters") or {}
    value = description.get("exp_id") if key == "exp_id" else parameters.get("student")
    return str(value) if value not in (None, "") else os.path.basename(folder)


class Grades:
    """What :meth:`Lab.grade` gave: :attr:`frame` (one row per student and check:
    ``student, path, run_id`` then the result columns) and :attr:`totals` (one row per
    student: ``passed, checks, points, max_points, percent``)."""

    def __init__(self, frame: pd.DataFrame, totals: pd.DataFrame) -> None:
        self.frame = frame
        self.totals = totals

    def __repr__(self) -> str:
        return f"<Grades: {len(self.totals)} students, {len(self.frame)} check results>"

    def _repr_html_(self) -> str:
        return self.totals.to_html(index=False)

    @property
    def all_passed(self) -> bool:
        """Whether every check passed for every student."""
        return bool(self.frame["passed"].all())

    def to_csv(self, path: str | os.PathLike[str], totals: str | os.PathLike[str] | None = None) -> None:
        """Write :attr:`frame` to ``path`` (and :attr:`totals` to ``totals``) as CSV."""
        self.frame.to_csv(path, index=False)
        if totals is not None:
            self.totals.to_csv(totals, index=False)

    def to_excel(self, path: str | os.PathLike[str]) -> None:
        """Write an Excel workbook: sheets ``checks`` (:attr:`frame`) and ``totals``.

        pandas writes ``.xlsx`` through openpyxl (or XlsxWriter), which nepi_lab does not
        install: without either this raises ImportError saying so.
        """
        import importlib.util

        import pandas as pd

        engine = next((e for e in ("openpyxl", "xlsxwriter") if importlib.util.find_spec(e)), None)
        if engine is None:
            raise ImportError("writing Excel files needs openpyxl (pip install openpyxl) or XlsxWriter; "
                              "without them write CSV: grades.to_csv(path)")
        with pd.ExcelWriter(path, engine=engine) as writer:
            self.frame.to_excel(writer, sheet_name="checks", index=False)
            self.totals.to_excel(writer, sheet_name="totals", index=False)
