"""Lab checks and grading: what a run should show, checked on one run or graded across many.

The layer above :mod:`nepi_lab.analysis` (its frames and parsers are what checks read)
and below the notebook: it imports the analysis, runs and core layers, never the
notebook.  ``import nepi_lab.lab`` does not import pandas; evaluating does.

=========================  ==========================================================
:class:`Lab`               checks and their points; ``lab.check(source)`` a DataFrame,
                           ``lab.grade(paths)`` a :class:`Grades` for many runs
:class:`Check`             the base of the checks (:mod:`nepi_lab.lab.checks`)
:class:`CheckResult`       name, passed, observed, expected, message, points ...
:func:`read_spec`          a spec file (YAML or JSON) as a Lab; ``lab.save(path)``
:class:`LabSpecError`      a spec file that cannot be read, naming the line
=========================  ==========================================================

Example
-------
>>> from nepi_lab.lab import Lab, Reachable, State, Order            # doctest: +SKIP
>>> lab = Lab([State("server", "STARTED"), Reachable("ping", max_loss=0),   # doctest: +SKIP
...            Order("server", "client", "STARTED", "STARTED")], points=2)
>>> lab.check(ec.run_dir)                                                   # doctest: +SKIP
>>> lab.grade("submissions/*").totals                                       # doctest: +SKIP
"""

from __future__ import annotations

from .checks import (
    AddressPresent,
    Check,
    CheckFieldError,
    CheckResult,
    Context,
    Custom,
    Dependencies,
    ExitStatus,
    NotFailed,
    Order,
    Reachable,
    RoutePresent,
    RttBound,
    State,
    Throughput,
    TraceContains,
    TraceLines,
    TraceMatches,
    Unevaluable,
    check_kinds,
)
from .lab import STUDENT_FROM, Grades, Lab, expand_paths
from .spec import SPEC_VERSION, LabSpecError, parse_spec, read_spec, spec_text, write_spec

__all__ = [
    "STUDENT_FROM",
    "SPEC_VERSION",
    "AddressPresent",
    "Check",
    "CheckFieldError",
    "CheckResult",
    "Context",
    "Custom",
    "Dependencies",
    "ExitStatus",
    "Grades",
    "Lab",
    "LabSpecError",
    "NotFailed",
    "Order",
    "Reachable",
    "RoutePresent",
    "RttBound",
    "State",
    "Throughput",
    "TraceContains",
    "TraceLines",
    "TraceMatches",
    "Unevaluable",
    "check_kinds",
    "expand_paths",
    "parse_spec",
    "read_spec",
    "spec_text",
    "write_spec",
]
