"""Checks: small declarative objects evaluated against a run, each giving a frozen result.

A check says what a run should show ("the ping lost nothing", "the client finished
after the server started", "h1 has a route to 10.0.2.0/24") and is evaluated against a
*source*: a live :class:`~nepi_lab.ExperimentController`, a run directory path, a
:class:`~nepi_lab.analysis.Run` from :func:`~nepi_lab.load_run`, or a
:class:`Context` shared by several checks (it reads the run once).  The answer is a
:class:`CheckResult`: ``name, passed, observed, expected, message, points``.

Evaluating never raises: a check that cannot be evaluated (the run directory is
damaged, the trace was not collected, the run failed before the resource ran, a
custom function raised) is a *failed* check whose message starts with ``cannot be
evaluated:`` and says why, and whose ``evaluated`` is False.  So grading a hundred
runs never stops at the first broken one.

Resources are named by their ``name`` attribute (``ec.register_resource(...,
name="server")``) or by their guid; some checks take a ``type`` instead (every
resource of that type).

Built-in checks (``kind`` is their name in a spec file, see :mod:`nepi_lab.lab.spec`):

- :class:`State` (``state``): the resource (each of the type) entered ``state``;
- :class:`NotFailed` (``not_failed``): the resource (each of the type; all) did not fail;
- :class:`ExitStatus` (``exit_status``): the application's ``exitcode`` trace is ``code``;
- :class:`Reachable` (``reachable``): the ping's loss (its statistics) is <= ``max_loss`` %;
- :class:`RttBound` (``rtt``): the ping's RTT statistic is <= ``max_ms``;
- :class:`Throughput` (``throughput``): iperf3's end report is >= ``min_mbps`` Mbit/s;
- :class:`TraceContains` (``trace_contains``): a line of the trace contains ``text``;
- :class:`TraceMatches` (``trace_matches``): at least ``min_count`` lines match ``pattern``;
- :class:`TraceLines` (``trace_lines``): the trace has at least ``min_lines`` lines;
- :class:`RoutePresent` (``route``): the node has a route to ``destination``;
- :class:`AddressPresent` (``address``): the node has the address;
- :class:`Order` (``order``): ``then`` entered ``then_state`` after ``first`` entered
  ``first_state``;
- :class:`Custom` (``custom``): ``function(run)`` returns True (or ``(True, observed)``).

Every check is a frozen dataclass (compared by value, hashable, safe to share) with
two common fields, ``name`` (default: a description made from its fields) and
``points`` (default 1).  A subclass with a ``kind`` is registered for spec files.

For a live view, :meth:`Check.depends_on` says which resources and traces a check
reads, so a widget can evaluate it again only when one of them changes, and
:meth:`Check.decided` whether a result from a run still going on can no longer change
(:class:`~nepi_lab.notebook.ChecksView` shows the others as pending).

Example
-------
>>> from nepi_lab.lab import Reachable, State                         # doctest: +SKIP
>>> Reachable("ping", max_loss=0).evaluate(ec.run_dir)                # doctest: +SKIP
CheckResult(name='ping loses at most 0 % of packets', passed=True, observed=0.0, ...)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import ipaddress
import json
import logging
import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..analysis import parsers as _parsers
from ..analysis.run import ControllerRun, Run, load_run
from ..core.controller import ExperimentController
from ..core.errors import InvalidInputError
from ..core.states import ResourceState

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("nepi_lab")

#: How long reading a live node's routes or addresses (``ip -j ...``) may take.
LIVE_TIMEOUT = 10.0

_STATE_NAMES = tuple(s.name for s in ResourceState)


# == results ========================================================================


@dataclass(frozen=True)
class CheckResult:
    """What evaluating one check gave (frozen).

    ``points`` is what was earned (``max_points`` if passed, else 0); ``evaluated`` is
    False when the check could not be evaluated (then ``message`` says why).
    """

    name: str
    passed: bool
    observed: Any
    expected: str
    message: str
    points: float
    max_points: float
    evaluated: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The result as a dict, in column order (a row of :meth:`Lab.check`'s frame)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Dependencies:
    """What a check reads: a live view evaluates it again when one of these changes.

    ``resources`` are names or guids, ``types`` resource type names, ``traces``
    ``(resource, trace name)`` pairs; ``all_resources`` is True for a check that looks
    at every resource (:class:`NotFailed` with no target, :class:`Custom`); ``live``
    is True for a check that reads a live host (a node's routes) when given a controller.
    """

    resources: tuple[Any, ...] = ()
    types: tuple[str, ...] = ()
    traces: tuple[tuple[Any, str], ...] = ()
    all_resources: bool = False
    live: bool = False


class Unevaluable(Exception):
    """Raised inside a check's evaluation: the check cannot be evaluated, and why."""


class CheckFieldError(InvalidInputError):
    """A check made with a bad field value; ``.field`` names it (a spec file names its line)."""

    def __init__(self, kind: str, field: str, message: str) -> None:
        self.kind, self.field = kind, field
        super().__init__(f"{kind} check, {field}: {message}")


# == the source =====================================================================


class Context:
    """One source read once for the checks evaluated against it.

    Caches the run's frames and parsed traces; make a new one to see a live
    experiment again.  ``source`` is a controller, a run directory path or a
    :class:`~nepi_lab.analysis.Run`.  A run directory that cannot be read makes every
    check evaluated against it fail with the reason.
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self.controller: ExperimentController | None = None
        self._run: Run | None = None
        self._error: str | None = None
        self._cache: dict[Any, Any] = {}
        if isinstance(source, ExperimentController):
            self.controller = source
            self._run = ControllerRun(source)
        elif isinstance(source, ControllerRun):
            self.controller, self._run = source.ec, source
        elif isinstance(source, Run):
            self._run = source
        elif isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            try:
                self._run = load_run(source)  # type: ignore[arg-type]
            except Exception as exc:  # a damaged run: every check says so
                self._error = f"the run directory cannot be read: {exc}"
        else:
            raise InvalidInputError(
                f"cannot check {source!r}: give an ExperimentController, a run directory path or a Run "
                "(load_run)")

    @property
    def run(self) -> Run:
        """The run (raises :class:`Unevaluable` when it could not be read)."""
        if self._run is None:
            raise Unevaluable(self._error or "no run")
        return self._run

    def _cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = (True, make())
            except Exception as exc:  # kept, so that the next check gets the same reason at once
                self._cache[key] = (False, exc)
        ok, value = self._cache[key]
        if not ok:
            raise value
        return value

    def resources(self) -> pd.DataFrame:
        """The run's :func:`~nepi_lab.resources_frame`."""
        return self._cached("resources", lambda: self.run.resources_frame())

    def events(self) -> pd.DataFrame:
        """The run's :func:`~nepi_lab.events_frame`."""
        return self._cached("events", lambda: self.run.events_frame())

    def trace(self, guid: int, name: str, parser: str = "lines") -> pd.DataFrame:
        """Trace ``name`` of ``guid`` parsed by the registered ``parser``
        (:func:`~nepi_lab.analysis.get_parser`): the frame :func:`~nepi_lab.trace_frame`
        gives, without its identity columns (one resource, one run)."""
        def parse() -> pd.DataFrame:
            return _parsers.get_parser(parser)(self.run.trace_bytes(guid, name))
        return self._cached(("trace", guid, name, parser), parse)

    # -- the resources, from the description and the event log ------------------------
    # (the columns of resources_frame that checks need, read straight from the two
    # records it is built from: a check of a hundred runs reads no frame it does not use)

    def _index(self) -> dict[int, dict[str, Any]]:
        return self._cached("index", self._make_index)

    def _make_index(self) -> dict[int, dict[str, Any]]:
        run = self.run
        description = run.description()
        index: dict[int, dict[str, Any]] = {}
        for entry in description.get("resources", ()):
            attributes = entry.get("attributes") or {}
            index[entry["guid"]] = {"guid": entry["guid"], "type": entry["type"],
                                    "name": attributes.get("name"), "command": attributes.get("command"),
                                    "connections": tuple(entry.get("connections") or ()),
                                    "states": [], "failure": None}
        table = run.event_table()
        for guid, rtype, to, when in zip(table["guid"].tolist(), table["type"].tolist(), table["to"].tolist(),
                                         table["time"].tolist(), strict=True):
            row = index.setdefault(guid, {"guid": guid, "type": rtype, "name": None, "command": None,
                                          "connections": (), "states": [], "failure": None})
            row["states"].append((to, when))
        for failure in description.get("failures", ()):
            if isinstance(failure, dict) and failure.get("guid") in index:
                row = index[failure["guid"]]
                if row["failure"] is None:
                    row["failure"] = f"{failure.get('error')}: {failure.get('message')}"
        for row in index.values():
            states = row["states"]
            last = states[-1][0] if states else None
            before = states[-2][0] if len(states) > 1 else None
            row["state"] = last
            row["outcome"] = before if last == "RELEASED" and before else last
        return index

    def guid(self, ref: Any) -> int:
        """The guid of a resource named ``ref`` (its ``name``) or of guid ``ref``."""
        index = self._index()
        if isinstance(ref, int) and not isinstance(ref, bool):
            if ref in index:
                return ref
            raise Unevaluable(f"the run has no resource {ref} (its guids: {_listed(sorted(index))})")
        found = [g for g, row in index.items() if row["name"] == ref]
        if len(found) == 1:
            return found[0]
        if found:
            raise Unevaluable(f"{len(found)} resources are named {ref!r} (guids {_listed(found)}): "
                              "name the resource by its guid")
        names = sorted({row["name"] for row in index.values() if isinstance(row["name"], str)})
        raise Unevaluable(f"the run has no resource named {ref!r} (its names: {_listed(names)})")

    def guids(self, ref: Any = None, rtype: str | None = None) -> list[int]:
        """One resource (``ref``), every resource of ``rtype``, or every resource (neither)."""
        if ref is not None:
            return [self.guid(ref)]
        index = self._index()
        if rtype is None:
            return sorted(index)
        guids = sorted(g for g, row in index.items() if row["type"] == rtype)
        if not guids:
            raise Unevaluable(f"the run has no resource of type {rtype!r} "
                              f"(its types: {_listed(sorted({row['type'] for row in index.values()}))})")
        return guids

    def row(self, guid: int) -> dict[str, Any]:
        """What checks know of resource ``guid``: ``guid, type, name, command, connections,
        state, outcome`` (as in :func:`~nepi_lab.resources_frame`), ``failure``, and
        ``states``: every ``(state, epoch seconds)`` it entered, in order."""
        try:
            return self._index()[guid]
        except KeyError:
            raise Unevaluable(f"the run has no resource {guid}") from None

    def label(self, guid: int) -> str:
        """``<guid> (<name>)``, or the guid alone for a resource without a name."""
        name = self.row(guid)["name"]
        return f"{guid} ({name})" if isinstance(name, str) else str(guid)

    def first_time(self, guid: int, state: str) -> float | None:
        """When resource ``guid`` first entered ``state`` (epoch seconds), or None."""
        return next((when for to, when in self.row(guid)["states"] if to == state), None)


def _listed(items: list[Any], most: int = 10) -> str:
    shown = ", ".join(str(i) for i in items[:most])
    return (shown + f" and {len(items) - most} more" if len(items) > most else shown) or "none"


# == the base =======================================================================

_KINDS: dict[str, type[Check]] = {}


@dataclass(frozen=True, kw_only=True)
class Check:
    """The base of every check (see the module docstring).

    A subclass sets ``kind`` (its name in spec files: it is registered), declares its
    fields as dataclass fields, and implements :meth:`_evaluate`, :meth:`describe` and
    :meth:`expected`; :meth:`depends_on` says what it reads.
    """

    kind: ClassVar[str] = ""

    #: What the check is called in results (default: :meth:`describe`).
    name: str | None = None
    #: Points it is worth when it passes.
    points: float = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind:
            before = _KINDS.get(kind)
            if before is not None and before.__module__ != cls.__module__:
                # a notebook cell defining its class again replaces it quietly; a class of
                # another module taking a kind over changes what every spec file means
                log.warning("check kind %r was %s.%s and is now %s.%s (in spec files too)", kind,
                            before.__module__, before.__qualname__, cls.__module__, cls.__qualname__)
            _KINDS[kind] = cls

    def __post_init__(self) -> None:
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise CheckFieldError(self.kind, "name", f"must be a non-empty string, not {self.name!r}")
        if (isinstance(self.points, bool) or not isinstance(self.points, (int, float))
                or not math.isfinite(self.points) or self.points < 0):
            raise CheckFieldError(self.kind, "points", f"must be a number >= 0, not {self.points!r}")
        self._validate()

    # -- what a check provides ------------------------------------------------------

    def _validate(self) -> None:
        """Refuse bad field values (:class:`CheckFieldError`)."""

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        """``(passed, observed, message)``; raise :class:`Unevaluable` when it cannot say."""
        raise NotImplementedError

    def describe(self) -> str:
        """The default name: what the check asks, in words."""
        return self.kind or type(self).__name__

    def expected(self) -> str:
        """What passing means, in short (``<= 0 %``, ``FINISHED`` ...)."""
        return ""

    def depends_on(self) -> Dependencies:
        """What the check reads (see :class:`Dependencies`)."""
        return Dependencies(all_resources=True)

    def decided(self, result: CheckResult, ended: bool) -> bool:
        """Whether ``result``, from a run still going on, can no longer change.

        ``ended`` says whether every resource the check reads has ended (FINISHED,
        FAILED, STOPPED or released) or the experiment is over.  By default only then;
        a check whose pass (or failure) cannot be undone by what comes later says so
        earlier (a state once reached stays reached).  A live view shows a result
        that is not decided as pending.
        """
        return ended

    # -- the rest -------------------------------------------------------------------

    @property
    def title(self) -> str:
        """``name`` if set, else :meth:`describe`."""
        return self.name or self.describe()

    def evaluate(self, source: Any) -> CheckResult:
        """Evaluate against ``source`` (a controller, a run directory, a Run, a :class:`Context`).

        Never raises for what the source holds: a check that cannot be evaluated is
        a failed result whose message says why (``evaluated`` False).
        """
        ctx = source if isinstance(source, Context) else Context(source)
        evaluated = True
        try:
            passed, observed, message = self._evaluate(ctx)
            passed = bool(passed)
        except Unevaluable as exc:
            passed, observed, message, evaluated = False, None, f"cannot be evaluated: {exc}", False
        except Exception as exc:  # whatever the run holds, grading goes on
            passed, observed, evaluated = False, None, False
            message = f"cannot be evaluated: {type(exc).__name__}: {' '.join(str(exc).split())}"
        return CheckResult(self.title, passed, observed, self.expected(), message,
                           self.points if passed else 0, self.points, evaluated)

    def to_spec(self) -> dict[str, Any]:
        """The check as a spec file entry: ``kind``, then the fields that differ from their defaults."""
        if not self.kind:
            raise InvalidInputError(f"{type(self).__name__} has no kind: it cannot be written to a spec file")
        entry: dict[str, Any] = {"kind": self.kind}
        fields = {f.name: f for f in dataclasses.fields(self)}
        for f in (fields[n] for n in self.field_names()):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default and type(value) is type(f.default):
                continue
            entry[f.name] = self._spec_value(f.name, value)
        return entry

    def _spec_value(self, field: str, value: Any) -> Any:
        return value

    @classmethod
    def field_names(cls) -> list[str]:
        """The fields a spec entry of this kind may hold (besides ``kind``)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return [n for n in names if n not in ("name", "points")] + ["name", "points"]


def check_kinds() -> dict[str, type[Check]]:
    """Every registered kind of check: ``{kind: class}``."""
    return dict(_KINDS)


# -- shared field checks ------------------------------------------------------------


def _ref(check: Check, field: str, value: Any, required: bool = True) -> None:
    if value is None:
        if required:
            raise CheckFieldError(check.kind, field, "is required: a resource's name or guid")
        return
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise CheckFieldError(check.kind, field,
                              f"must be a resource's name (a string) or guid, not {value!r}")


def _number(check: Check, field: str, value: Any, low: float = 0.0, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
            or math.isnan(value):
        where = f"between {low:g} and {high:g}" if high != math.inf else f">= {low:g}"
        raise CheckFieldError(check.kind, field, f"must be a number {where}, not {value!r}")


def _text(check: Check, field: str, value: Any, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value:
        raise CheckFieldError(check.kind, field, f"must be a non-empty string, not {value!r}")


def _state(check: Check, field: str, value: Any) -> None:
    if value not in _STATE_NAMES:
        raise CheckFieldError(check.kind, field, f"must be one of {', '.join(_STATE_NAMES)}, not {value!r}")


def _target(check: Check, resource: Any, rtype: Any, required: bool) -> None:
    _ref(check, "resource", resource, required=False)
    _text(check, "type", rtype, required=False)
    if resource is not None and rtype is not None:
        raise CheckFieldError(check.kind, "type", "give a resource or a type, not both")
    if required and resource is None and rtype is None:
        raise CheckFieldError(check.kind, "resource", "is required (or a type: every resource of it)")


def _who(resource: Any, rtype: Any, everyone: str = "every resource") -> str:
    if resource is not None:
        return str(resource)
    return f"every {rtype}" if rtype is not None else everyone


# == states and failures =============================================================


@dataclass(frozen=True)
class State(Check):
    """The resource (or each resource of ``type``) entered ``state`` at some point.

    ``observed`` is the outcome (the state it ended in, as ``resources_frame``'s
    ``outcome``); with a type, the outcomes of those that did not reach ``state``.
    """

    kind: ClassVar[str] = "state"
    resource: Any = None
    state: str = "FINISHED"
    type: str | None = None

    def _validate(self) -> None:
        _target(self, self.resource, self.type, required=True)
        _state(self, "state", self.state)

    def describe(self) -> str:
        return f"{_who(self.resource, self.type)} reaches {self.state}"

    def expected(self) -> str:
        return self.state

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=() if self.resource is None else (self.resource,),
                            types=() if self.type is None else (self.type,))

    def decided(self, result: CheckResult, ended: bool) -> bool:
        # a state once entered stays entered
        return ended or result.passed

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        missed = []
        outcomes = []
        for guid in ctx.guids(self.resource, self.type):
            outcome = str(ctx.row(guid)["outcome"])
            outcomes.append(outcome)
            if ctx.first_time(guid, self.state) is None:
                missed.append(f"{ctx.label(guid)} ended {outcome}{_why(ctx, guid)}")
        if self.resource is not None:
            observed: Any = outcomes[0]
            return (not missed, observed, f"{self.resource} reached {self.state}" if not missed
                    else f"never reached {self.state}: {missed[0]}")
        if missed:
            return False, f"{len(outcomes) - len(missed)}/{len(outcomes)}", \
                f"{len(missed)} never reached {self.state}: {'; '.join(missed[:5])}"
        return True, f"{len(outcomes)}/{len(outcomes)}", f"all {len(outcomes)} reached {self.state}"


def _why(ctx: Context, guid: int) -> str:
    failure = ctx.row(guid).get("failure")
    return f" ({' '.join(str(failure).split())[:200]})" if isinstance(failure, str) else ""


@dataclass(frozen=True)
class NotFailed(Check):
    """The resource (each resource of ``type``; with neither, every resource) did not fail.

    ``observed`` is the outcome of the resource, or the list of those that failed.
    """

    kind: ClassVar[str] = "not_failed"
    resource: Any = None
    type: str | None = None

    def _validate(self) -> None:
        _target(self, self.resource, self.type, required=False)

    def describe(self) -> str:
        return f"{_who(self.resource, self.type)} does not fail"

    def expected(self) -> str:
        return "not FAILED"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=() if self.resource is None else (self.resource,),
                            types=() if self.type is None else (self.type,),
                            all_resources=self.resource is None and self.type is None)

    def decided(self, result: CheckResult, ended: bool) -> bool:
        # a failure is never undone
        return ended or (result.evaluated and not result.passed)

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        failed = [g for g in ctx.guids(self.resource, self.type)
                  if ctx.first_time(g, "FAILED") is not None]
        if self.resource is not None:
            outcome = str(ctx.row(failed[0] if failed else ctx.guid(self.resource))["outcome"])
            return (not failed, outcome, f"{self.resource} ended {outcome}" if not failed
                    else f"{ctx.label(failed[0])} failed{_why(ctx, failed[0])}")
        if failed:
            return False, ", ".join(ctx.label(g) for g in failed), \
                f"{len(failed)} failed: " + "; ".join(f"{ctx.label(g)}{_why(ctx, g)}" for g in failed[:5])
        return True, "none failed", "none failed"


@dataclass(frozen=True)
class ExitStatus(Check):
    """The application exited with status ``code`` (its ``exitcode`` trace)."""

    kind: ClassVar[str] = "exit_status"
    resource: Any = None
    code: int = 0

    def _validate(self) -> None:
        _ref(self, "resource", self.resource)
        if isinstance(self.code, bool) or not isinstance(self.code, int):
            raise CheckFieldError(self.kind, "code", f"must be an integer, not {self.code!r}")

    def describe(self) -> str:
        return f"{self.resource} exits with status {self.code}"

    def expected(self) -> str:
        return str(self.code)

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.resource,), traces=((self.resource, "exitcode"),))

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        guid = ctx.guid(self.resource)
        lines = ctx.trace(guid, "exitcode", "lines")
        texts = [t.strip() for t in lines["text"].tolist() if isinstance(t, str) and t.strip()]
        try:
            code = int(texts[0])
        except (IndexError, ValueError):
            raise Unevaluable(f"the exitcode trace of {ctx.label(guid)} holds no exit status "
                              f"({texts[:1] or 'it is empty'})") from None
        return code == self.code, code, f"{ctx.label(guid)} exited with status {code}"


# == measurements ===================================================================


@dataclass(frozen=True)
class Reachable(Check):
    """The ping's packet loss (from its statistics) is at most ``max_loss`` percent.

    The resource is a ``linux::Ping`` (or an application running iputils ping), its
    ``stdout`` read by the ``ping`` parser; ``observed`` is the loss in percent.
    """

    kind: ClassVar[str] = "reachable"
    resource: Any = None
    max_loss: float = 0.0

    def _validate(self) -> None:
        _ref(self, "resource", self.resource)
        _number(self, "max_loss", self.max_loss, 0, 100)

    def describe(self) -> str:
        return f"{self.resource} loses at most {self.max_loss:g} % of packets"

    def expected(self) -> str:
        return f"<= {self.max_loss:g} %"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.resource,), traces=((self.resource, "stdout"),))

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        guid = ctx.guid(self.resource)
        summary = ctx.trace(guid, "stdout", "ping").attrs.get("summary")
        if not summary or summary.get("loss_percent") is None:
            raise Unevaluable(f"the ping output of {ctx.label(guid)} has no statistics (ping did not run, "
                              "or was stopped before it printed them)")
        loss = float(summary["loss_percent"])
        return (loss <= self.max_loss, loss,
                f"{summary.get('received')} of {summary.get('transmitted')} packets answered "
                f"({loss:g} % lost)")


_STATISTIC = re.compile(r"mean|median|min|max|p(?:[1-9]\d?)")


@dataclass(frozen=True)
class RttBound(Check):
    """The ping's round-trip time ``statistic`` is at most ``max_ms`` milliseconds.

    ``statistic`` is ``mean`` (default), ``median``, ``min``, ``max`` or a percentile
    ``p1`` ... ``p99`` over the replies (``rtt_ms`` of the ``ping`` parser).  No reply
    at all fails the check.
    """

    kind: ClassVar[str] = "rtt"
    resource: Any = None
    max_ms: float = 0.0
    statistic: str = "mean"

    def _validate(self) -> None:
        _ref(self, "resource", self.resource)
        _number(self, "max_ms", self.max_ms, 0)
        if not isinstance(self.statistic, str) or not _STATISTIC.fullmatch(self.statistic):
            raise CheckFieldError(self.kind, "statistic",
                                  f"must be mean, median, min, max or p1 ... p99, not {self.statistic!r}")

    def describe(self) -> str:
        return f"{self.resource} {self.statistic} RTT at most {self.max_ms:g} ms"

    def expected(self) -> str:
        return f"<= {self.max_ms:g} ms"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.resource,), traces=((self.resource, "stdout"),))

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        guid = ctx.guid(self.resource)
        rtt = ctx.trace(guid, "stdout", "ping")["rtt_ms"].dropna().astype("float64")
        if rtt.empty:
            return False, None, f"{ctx.label(guid)} got no reply: no round-trip time"
        if self.statistic.startswith("p"):
            value = float(rtt.quantile(int(self.statistic[1:]) / 100))
        else:
            value = float(getattr(rtt, self.statistic)())
        return value <= self.max_ms, round(value, 3), \
            f"{self.statistic} of {len(rtt)} round-trip times: {value:.3f} ms"


@dataclass(frozen=True)
class Throughput(Check):
    """iperf3's end report shows at least ``min_mbps`` Mbit/s (10^6 bits per second).

    ``direction`` is ``received`` (default: what the receiver counted) or ``sent``;
    the resource is a ``linux::Iperf3Client`` or ``Iperf3Server`` (its ``stdout``, JSON
    or text, read by the ``iperf3`` parser).  ``observed`` is the rate in Mbit/s.
    """

    kind: ClassVar[str] = "throughput"
    resource: Any = None
    min_mbps: float = 0.0
    direction: str = "received"

    def _validate(self) -> None:
        _ref(self, "resource", self.resource)
        _number(self, "min_mbps", self.min_mbps, 0)
        if self.direction not in ("received", "sent"):
            raise CheckFieldError(self.kind, "direction", f"must be received or sent, not {self.direction!r}")

    def describe(self) -> str:
        return f"{self.resource} carries at least {self.min_mbps:g} Mbit/s"

    def expected(self) -> str:
        return f">= {self.min_mbps:g} Mbit/s"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.resource,), traces=((self.resource, "stdout"),))

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        guid = ctx.guid(self.resource)
        summary = ctx.trace(guid, "stdout", "iperf3").attrs.get("summary")
        if not summary:
            raise Unevaluable(f"the iperf3 output of {ctx.label(guid)} has no end report (iperf3 did not "
                              "run to its end)")
        if summary.get("error"):
            return False, None, f"iperf3 reported an error: {summary['error']}"
        bits = summary.get(f"{self.direction}_bits_per_second")
        if bits is None:
            raise Unevaluable(f"the iperf3 end report of {ctx.label(guid)} has no {self.direction} rate")
        mbps = float(bits) / 1e6
        return mbps >= self.min_mbps, round(mbps, 3), f"{self.direction} {mbps:.3f} Mbit/s"


# == traces =========================================================================


@dataclass(frozen=True)
class TraceContains(Check):
    """A line of the trace contains ``text`` (plain text, not a pattern).

    ``observed`` is the number of lines that contain it.
    """

    kind: ClassVar[str] = "trace_contains"
    resource: Any = None
    text: str = ""
    trace: str = "stdout"

    def _validate(self) -> None:
        _ref(self, "resource", self.resource)
        _text(self, "text", self.text)
        _text(self, "trace", self.trace)

    def describe(self) -> str:
        return f"{self.resource} {self.trace} contains {self.text!r}"

    def expected(self) -> str:
        return f"contains {self.text!r}"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.resource,), traces=((self.resource, self.trace),))

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        guid = ctx.guid(self.resource)
        lines = ctx.trace(guid, self.trace, "lines")
        count = int(lines["text"].str.contains(self.text, regex=False).sum())
        return count > 0, count, f"{count} of {len(lines)} lines of {self.trace} contain it"


@dataclass(frozen=True)
class TraceMatches(Check):
    """At least ``min_count`` lines of the trace match the regular expression ``pattern``
    (Python's :mod:`re`, searched in each line).  ``observed`` is how many match."""

    kind: ClassVar[str] = "trace_matches"
    resource: Any = None
    pattern: str = ""
    trace: str = "stdout"
    min_count: int = 1

    def _validate(self) -> None:
        _ref(self, "resource", self.resource)
        _text(self, "pattern", self.pattern)
        _text(self, "trace", self.trace)
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise CheckFieldError(self.kind, "pattern", f"is not a regular expression: {exc}") from None
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or self.min_count < 1:
            raise CheckFieldError(self.kind, "min_count", f"must be an integer >= 1, not {self.min_count!r}")

    def describe(self) -> str:
        more = f" at least {self.min_count} times" if self.min_count != 1 else ""
        return f"{self.resource} {self.trace} matches /{self.pattern}/{more}"

    def expected(self) -> str:
        return f">= {self.min_count} lines matching /{self.pattern}/"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.resource,), traces=((self.resource, self.trace),))

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        guid = ctx.guid(self.resource)
        lines = ctx.trace(guid, self.trace, "lines")
        matched = lines["text"].str.contains(self.pattern, regex=True)
        count = int(matched.sum())
        first = lines["text"][matched].head(1).tolist()
        shown = f"; the first: {first[0][:120]!r}" if first else ""
        return count >= self.min_count, count, f"{count} of {len(lines)} lines match{shown}"


@dataclass(frozen=True)
class TraceLines(Check):
    """The trace has at least ``min_lines`` lines.  ``observed`` is how many it has."""

    kind: ClassVar[str] = "trace_lines"
    resource: Any = None
    min_lines: int = 1
    trace: str = "stdout"

    def _validate(self) -> None:
        _ref(self, "resource", self.resource)
        _text(self, "trace", self.trace)
        if isinstance(self.min_lines, bool) or not isinstance(self.min_lines, int) or self.min_lines < 0:
            raise CheckFieldError(self.kind, "min_lines", f"must be an integer >= 0, not {self.min_lines!r}")

    def describe(self) -> str:
        return f"{self.resource} {self.trace} has at least {self.min_lines} lines"

    def expected(self) -> str:
        return f">= {self.min_lines} lines"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.resource,), traces=((self.resource, self.trace),))

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        guid = ctx.guid(self.resource)
        count = len(ctx.trace(guid, self.trace, "lines"))
        return count >= self.min_lines, count, f"{self.trace} of {ctx.label(guid)} has {count} lines"


# == routes and addresses ============================================================

_ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit",
                "blackhole", "nat", "anycast"}
_IP_ROUTE = re.compile(r"\bip\s+(?:-\S+\s+)*(?:r|ro|rou|rout|route)\b")
_IP_ADDR = re.compile(r"\bip\s+(?:-\S+\s+)*(?:a|ad|add|addr|addre|addres|address)\b")


def _network(text: str) -> Any:
    if text == "default":
        return "default"
    return ipaddress.ip_network(text, strict=False)


def _routes(text: str) -> list[dict[str, Any]]:
    """Routes in ``ip route`` output (text or ``-j`` JSON): ``{dst, gateway, dev, line}``."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            entries = json.loads(stripped)
        except ValueError:
            entries = None
        if isinstance(entries, list):
            routes = []
            for e in entries:
                if isinstance(e, dict) and isinstance(e.get("dst"), str):
                    line = " ".join(str(x) for x in (e["dst"], "via" if e.get("gateway") else None,
                                                     e.get("gateway"), "dev" if e.get("dev") else None,
                                                     e.get("dev")) if x)
                    routes.append({"dst": e["dst"], "gateway": e.get("gateway"), "dev": e.get("dev"),
                                   "line": line})
            return routes
    routes = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in _ROUTE_TYPES:
            words = words[1:]
        if not words:
            continue
        try:
            _network(words[0])
        except ValueError:
            continue
        found = {"dst": words[0], "gateway": None, "dev": None, "line": " ".join(line.split())}
        for key, field in (("via", "gateway"), ("dev", "dev")):
            if key in words[1:-1]:
                value = words[words.index(key, 1) + 1]
                if value in ("inet", "inet6") and words.index(key, 1) + 2 < len(words):
                    value = words[words.index(key, 1) + 2]
                found[field] = value
        routes.append(found)
    return routes


def _addresses(text: str) -> list[Any]:
    """Interface addresses (``10.0.0.1/24``) in ``ip addr`` output: text (any style) or ``-j`` JSON."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            entries = json.loads(stripped)
        except ValueError:
            entries = None
        if isinstance(entries, list):
            found = []
            for e in entries:
                for info in (e.get("addr_info") or []) if isinstance(e, dict) else []:
                    with contextlib.suppress(KeyError, TypeError, ValueError):
                        found.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
            return found
    found = []
    for word in text.split():
        if "/" in word:
            with contextlib.suppress(ValueError):
                found.append(ipaddress.ip_interface(word))
    return found


@dataclass(frozen=True)
class _OnNode(Check):
    """What route and address checks share: where the node's table is read from.

    With a live controller and a deployed ``netns::Node``, from the namespace itself
    (``ip -n <namespace> -j route``/``addr``).  Otherwise from a recorded trace: the
    ``stdout`` of ``from_app`` (an application that ran ``ip route`` or ``ip addr``,
    text or ``-j``), or, without ``from_app``, of the last application connected to
    the node whose command runs ``ip ... route`` (``ip ... addr``).
    """

    node: Any = None
    from_app: Any = None

    _command: ClassVar[re.Pattern[str]] = _IP_ROUTE
    _what: ClassVar[str] = "route"

    def _validate(self) -> None:
        _ref(self, "node", self.node, required=self.from_app is None)
        _ref(self, "from_app", self.from_app, required=False)

    def depends_on(self) -> Dependencies:
        refs = tuple(r for r in (self.node, self.from_app) if r is not None)
        traces = ((self.from_app, "stdout"),) if self.from_app is not None else ()
        return Dependencies(resources=refs, traces=traces, all_resources=self.from_app is None, live=True)

    def decided(self, result: CheckResult, ended: bool) -> bool:
        # the route (address) was there, read live or recorded
        return ended or result.passed

    def _read(self, ctx: Context, version: int) -> tuple[str, str]:
        """(the table's text, where it was read)."""
        if self.node is not None and self.from_app is None and ctx.controller is not None:
            live = self._live(ctx, version)
            if live is not None:
                return live
        app = ctx.guid(self.from_app) if self.from_app is not None else self._recording_app(ctx)
        lines = ctx.trace(app, "stdout", "lines")
        return "\n".join(str(t) for t in lines["text"].tolist()), f"the stdout of {ctx.label(app)}"

    def _live(self, ctx: Context, version: int) -> tuple[str, str] | None:
        ec = ctx.controller
        guid = ctx.guid(self.node)
        row = ctx.row(guid)
        if row["type"] != "netns::Node" or str(row["state"]) not in ("READY", "STARTED"):
            return None
        namespace = ec.get(guid, "namespace") if ec is not None else None
        if not namespace:
            return None
        command = ["ip", "-n", namespace, f"-{version}", "-j", "route" if self._what == "route" else "addr"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=LIVE_TIMEOUT)
        if done.returncode != 0:
            raise Unevaluable(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout, f"namespace {namespace}, live"

    def _recording_app(self, ctx: Context) -> int:
        node = ctx.guid(self.node)
        found = [g for g, row in sorted(ctx._index().items())
                 if node in row["connections"] and isinstance(row["command"], str)
                 and self._command.search(row["command"])]
        if not found:
            live = "" if ctx.controller is None else \
                " (and the node is not a deployed netns::Node to read live)"
            raise Unevaluable(f"no application on {ctx.label(node)} recorded its {self._what}s{live}: "
                              f"run `ip {self._what}` there, or name the application with from_app")
        return found[-1]


@dataclass(frozen=True)
class RoutePresent(_OnNode):
    """The node has a route to ``destination`` (``10.0.2.0/24``, a host address, or
    ``default``), through ``gateway`` and leaving by ``device`` when those are given.

    Read as :class:`_OnNode` says (live, or from a recorded ``ip route``).  ``observed``
    is the matching route, or the destinations the node has when none matches.
    """

    kind: ClassVar[str] = "route"
    destination: str = ""
    gateway: str | None = None
    device: str | None = None

    def _validate(self) -> None:
        super()._validate()
        _text(self, "destination", self.destination)
        try:
            _network(self.destination)
        except ValueError as exc:
            raise CheckFieldError(self.kind, "destination", str(exc)) from None
        if self.gateway is not None:
            try:
                ipaddress.ip_address(self.gateway)
            except ValueError as exc:
                raise CheckFieldError(self.kind, "gateway", str(exc)) from None
        _text(self, "device", self.device, required=False)

    def describe(self) -> str:
        via = f" via {self.gateway}" if self.gateway else ""
        dev = f" dev {self.device}" if self.device else ""
        return f"{self.node or self.from_app} has a route to {self.destination}{via}{dev}"

    def expected(self) -> str:
        return " ".join(x for x in (self.destination, "via" if self.gateway else "", self.gateway or "",
                                     "dev" if self.device else "", self.device or "") if x)

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        wanted = _network(self.destination)
        version = 6 if self.gateway and ":" in self.gateway or (wanted != "default" and wanted.version == 6) \
            else 4
        text, where = self._read(ctx, version)
        routes = _routes(text)
        for route in routes:
            if _network(route["dst"]) != wanted:
                continue
            gateway = route["gateway"]
            if self.gateway and (gateway is None
                                 or ipaddress.ip_address(gateway) != ipaddress.ip_address(self.gateway)):
                continue
            if self.device and route["dev"] != self.device:
                continue
            return True, route["line"], f"found in {where}"
        have = ", ".join(r["line"] for r in routes) or "no route"
        return False, have, f"no such route in {where}"


@dataclass(frozen=True)
class AddressPresent(_OnNode):
    """The node has ``address`` on an interface: ``10.0.0.1/30`` (address and prefix
    length must match) or ``10.0.0.1`` (any prefix).  Read as :class:`_OnNode` says."""

    kind: ClassVar[str] = "address"
    address: str = ""

    _command: ClassVar[re.Pattern[str]] = _IP_ADDR
    _what: ClassVar[str] = "address"

    def _validate(self) -> None:
        super()._validate()
        _text(self, "address", self.address)
        try:
            ipaddress.ip_interface(self.address)
        except ValueError as exc:
            raise CheckFieldError(self.kind, "address", str(exc)) from None

    def describe(self) -> str:
        return f"{self.node or self.from_app} has address {self.address}"

    def expected(self) -> str:
        return self.address

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        wanted = ipaddress.ip_interface(self.address)
        text, where = self._read(ctx, wanted.version)
        have = _addresses(text)
        exact = "/" in self.address
        for address in have:
            if address == wanted if exact else address.ip == wanted.ip:
                return True, str(address), f"found in {where}"
        return False, ", ".join(str(a) for a in have) or "no address", f"not in {where}"


# == time ===========================================================================


@dataclass(frozen=True)
class Order(Check):
    """``then`` entered ``then_state`` after ``first`` entered ``first_state`` ("B started
    after A finished": ``Order("A", "B")``), each the first time it did.

    ``observed`` is the gap in seconds (negative: the wrong order).
    """

    kind: ClassVar[str] = "order"
    first: Any = None
    then: Any = None
    first_state: str = "FINISHED"
    then_state: str = "STARTED"

    def _validate(self) -> None:
        _ref(self, "first", self.first)
        _ref(self, "then", self.then)
        _state(self, "first_state", self.first_state)
        _state(self, "then_state", self.then_state)

    def describe(self) -> str:
        return f"{self.then} {self.then_state} after {self.first} {self.first_state}"

    def expected(self) -> str:
        return ">= 0 s"

    def depends_on(self) -> Dependencies:
        return Dependencies(resources=(self.first, self.then))

    def decided(self, result: CheckResult, ended: bool) -> bool:
        # both entered their states: the gap is known for good
        return ended or (result.evaluated and result.observed is not None)

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        times = []
        for ref, state in ((self.first, self.first_state), (self.then, self.then_state)):
            guid = ctx.guid(ref)
            when = ctx.first_time(guid, state)
            if when is None:
                outcome = ctx.row(guid)["outcome"]
                return False, None, f"{ctx.label(guid)} never reached {state} (it ended {outcome})"
            times.append(when)
        gap = times[1] - times[0]
        order = "after" if gap >= 0 else "before"
        return gap >= 0, round(gap, 6), f"{self.then} {self.then_state} {abs(gap):.3f} s {order} " \
                                        f"{self.first} {self.first_state}"


# == custom =========================================================================


def _import(path: str) -> Callable[..., Any]:
    module, colon, attribute = path.partition(":")
    if not colon or not module or not attribute:
        raise ValueError(f"{path!r} is not 'module:function' (e.g. mylab.checks:three_hops)")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{path} is not callable")
    return target


def _import_path(function: Callable[..., Any]) -> str:
    """``module:qualname`` of ``function``, checked to import back to it."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise InvalidInputError(
            f"the custom check's function {function!r} cannot be written to a spec file: define it at the "
            "top level of an importable module and give it as 'module:function'")
    path = f"{module}:{qualname}"
    try:
        back = _import(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidInputError(
            f"the custom check's function does not import back as {path}: {exc}") from None
    if back is not function:
        raise InvalidInputError(f"{path} names another object than the custom check's function")
    return path


@dataclass(frozen=True)
class Custom(Check):
    """``function(run)`` returns True (passed), False, or ``(passed, observed)``.

    ``run`` is a :class:`~nepi_lab.analysis.Run` (with ``trace_frame``,
    ``resources_frame``, ``events_frame``; a live controller's has ``.ec``).
    ``function`` is a callable, or ``"module:function"`` (how a spec file names it:
    importing it runs that module's code, so use spec files you trust).  An exception
    in the function fails the check with its message.
    """

    kind: ClassVar[str] = "custom"
    function: Any = None

    def _validate(self) -> None:
        if isinstance(self.function, str):
            try:
                _import(self.function)
            except (ImportError, AttributeError, ValueError) as exc:
                raise CheckFieldError(self.kind, "function",
                                      f"cannot import {self.function!r}: {exc}") from None
        elif not callable(self.function):
            raise CheckFieldError(
                self.kind, "function",
                f"must be a function (run -> bool) or 'module:function', not {self.function!r}")

    @property
    def target(self) -> Callable[..., Any]:
        """The function (imported when given by name)."""
        return _import(self.function) if isinstance(self.function, str) else self.function

    def describe(self) -> str:
        # the function's name, the same whether given as a function or as "module:function"
        if isinstance(self.function, str):
            return self.function.rpartition(":")[2].rpartition(".")[2]
        return getattr(self.function, "__name__", "custom check")

    def expected(self) -> str:
        return "True"

    def _spec_value(self, field: str, value: Any) -> Any:
        if field == "function" and not isinstance(value, str):
            return _import_path(value)
        return value

    def _evaluate(self, ctx: Context) -> tuple[bool, Any, str]:
        answer = self.target(ctx.run)
        if isinstance(answer, tuple) and len(answer) == 2:
            passed, observed = answer
        else:
            passed, observed = answer, answer
        if not isinstance(passed, bool) and type(passed).__name__ != "bool_":  # numpy's bool too
            raise Unevaluable(f"the function returned {answer!r}: a custom check returns a bool or "
                              "(bool, observed)")
        return bool(passed), observed, "passed" if passed else "failed"

    def __eq__(self, other: object) -> bool:
        # a function and its "module:function" name are the same check (a spec file round trip)
        if not isinstance(other, Custom):
            return NotImplemented
        return (self.name, self.points) == (other.name, other.points) and self.target is other.target

    def __hash__(self) -> int:
        return hash((self.name, self.points, id(self.target)))
