"""The ExperimentController: NEPI's public API on one asyncio event loop.

A NEPI script ports by changing its imports::

    from nepi_lab import ExperimentController, ResourceState, ResourceAction

    with ExperimentController(exp_id="ping-test") as ec:
        node = ec.register_resource("linux::Node", hostname="localhost")
        app = ec.register_resource("linux::Application", command="echo hello")
        ec.register_connection(app, node)
        ec.deploy()
        ec.wait_finished(app, timeout=30)
        print(ec.trace(app, "stdout"))

Every blocking call takes ``timeout=`` (seconds) and has an ``*_async`` twin for
``await``; ``register_resource``, ``set``, ``get``, ``state`` and the other
bookkeeping calls never block.  Leaving the ``with`` block releases everything, also
on an exception.

Semantics the user can rely on (see also DESIGN.md):

- ``deploy()`` returns at once; resources deploy concurrently.  With
  ``wait_all_ready=True`` no member of the deployment group starts before every
  member is READY (members that fail non-critically are left out).
- Conditions are awaited on state changes, never polled; their delays count from the
  time the awaited state was reached.
- A critical failure fails the experiment: pending actions are cancelled, everything
  is stopped and released, and ``wait_deployed/started/finished`` raise
  :class:`ExperimentFailedError`.  A non-critical failure is recorded and the rest goes
  on; resources whose conditions can no longer hold fail at once, with the reason.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dataclasses
import enum
import functools
import inspect
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .attributes import Attribute, Flags, Types
from .conditions import Condition, DependencyGraph
from .display import view
from .errors import (
    ConditionError,
    ControllerClosedError,
    DuplicateGuidError,
    ExperimentFailedError,
    InvalidConnectionError,
    InvalidInputError,
    InvalidTransitionError,
    ReadOnlyAttributeError,
    ResourceFailedError,
    ResultsWriteError,
    UnknownGuidError,
    UnreachableStateError,
    WaitTimeoutError,
)
from .events import EVENT_FORMAT, EventLog
from .loop import LoopRunner
from .registry import _types as _registered_types
from .registry import get_resource_type, type_origin
from .resource import DONE, Failure, ResourceManager
from .results import (
    DESCRIPTION,
    EVENTS,
    RUN_FORMAT,
    RUN_FORMAT_NAME,
    check_local_dir,
    check_parameters,
    default_local_dir,
    make_run_dir,
    write_json_atomic,
    write_text_atomic,
)
from .states import ACTION_FROM, ECState, FailureLevel, ResourceAction, ResourceState, as_action, as_state
from .times import check_timeout, format_delay, parse_date, parse_delay
from .traces import TraceAttr, as_trace_attr, check_name, check_stream

if TYPE_CHECKING:  # datetime is imported where a datetime is made (~1 ms, most runs make none)
    import datetime as _dt

log = logging.getLogger("nepi_lab")

S = ResourceState
A = ResourceAction
# The states the hot paths read, as module globals: on Python 3.11 an enum member read
# as a class attribute (``S.NEW``) costs 100 ns, a global 20 ns (see resource.py).
_NEW, _READY, _STARTED, _FINISHED, _RELEASED = S.NEW, S.READY, S.STARTED, S.FINISHED, S.RELEASED
T = TypeVar("T")
Guids = int | Iterable[int] | None

#: Every controller not shut down yet.  Held strongly: an experiment goes on (and is
#: released at exit) even when the script dropped its last reference to the controller.
_live_controllers: set[ExperimentController] = set()


def _on_loop(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    """Make a public ``*_async`` method run on the controller's loop, whatever loop awaits
    it (a notebook cell's, ``asyncio.run``'s): the twins of the blocking calls."""

    call = method.__name__.removesuffix("_async")
    names = list(inspect.signature(method).parameters)[1:]  # without self
    at = names.index("timeout") if "timeout" in names else None

    @functools.wraps(method)
    async def on_loop(self: ExperimentController, *args: Any, **kwargs: Any) -> T:
        self._check_open(call)
        if at is not None:  # checked before anything is done
            check_timeout(args[at] if len(args) > at else kwargs.get("timeout"))
        return await self._runner.run_async(method(self, *args, **kwargs))

    return on_loop


class TaskStatus(enum.Enum):
    """Status of a task made by :meth:`ExperimentController.schedule`."""

    NEW = "new"
    DONE = "done"
    ERROR = "error"


@dataclasses.dataclass
class ScheduledTask:
    """A callback scheduled with :meth:`ExperimentController.schedule` (NEPI's ``Task``)."""

    id: int
    timestamp: _dt.datetime
    callback: Callable[[], Any]
    result: Any = None
    status: TaskStatus = TaskStatus.NEW


class _Group:
    """A deployment group: with ``wait_all_ready`` its members start together.

    Members that reach READY wait in ``held`` (no task is kept per member); when the
    last deploying member is READY or lost, the controller starts the held ones.
    """

    def __init__(self, group_id: int) -> None:
        self.id = group_id
        self.members: list[ResourceManager] = []
        self.deploying = 0  # members (of wait_all_ready deploys) not yet READY nor lost
        self.held: list[ResourceManager] = []
        self.waiting = self.describe  # one bound method for every held member (not one each)

    def describe(self) -> str:
        late = [rm for rm in self.members if rm._status(S.READY) == 0]
        shown = ", ".join(f"{rm.guid} ({rm._state.name})" for rm in late[:10])
        more = f" and {len(late) - 10} more" if len(late) > 10 else ""
        return f"waits for deployment group {self.id} to be READY; not yet: {shown}{more}"


#: The largest guid: the event log and the run directory's readers keep guids as signed
#: 64-bit integers.
MAX_GUID = 2**63 - 1
#: How ``register_resource(..., autoDeploy=...)`` reads its value: as a Bool attribute.
_AUTO_DEPLOY = Attribute("autoDeploy", "deploy the resource at once", type=Types.Bool, default=False)

#: The event log is written at most this many seconds after a change: late enough
#: to batch a burst into one write, early enough that a dying process loses little.
_FLUSH_DELAY = 0.005
_DEPLOY_HOOKS = frozenset({"do_discover", "do_reserve", "do_provision", "do_configure"})
#: Resources launched per loop iteration, so that a huge deploy keeps memory and
#: latency flat (finished tasks are freed before the next chunk is made).
_CHUNK = 1000
#: Stands for the resources in experiment.json's text while the rest is encoded.
_RESOURCES_MARK = f"\x00resources {os.urandom(8).hex()}\x00"
_RESOURCES_MARK_JSON = json.dumps(_RESOURCES_MARK)


class ExperimentController:
    """Builds, runs and records one experiment run (NEPI's ``ExperimentController``).

    Parameters
    ----------
    exp_id : str, optional
        Scenario name, reused across runs; names the results folder.  Letters,
        digits, ``_ . + -`` only.  Default: ``exp-<16 hex digits>``.
    local_dir : str, optional
        Results root; the run directory is ``<local_dir>/<exp_id>/<run_id>/``.
        Default: ``$NEPI_LAB_RESULTS``, else ``$XDG_DATA_HOME/nepi_lab/results``
        (``~/.local/share/nepi_lab/results``): one's own, kept across reboots (see
        :func:`nepi_lab.core.results.default_local_dir`).  A folder in which no run
        directory can be made raises :class:`ResultsDirectoryError`, before any
        folder or thread is made.
    parameters : dict, optional
        The parameter point this run measures (``{"rate": "10mbit", "loss": 1}``): names
        (strings) -> JSON values (str, int, float, bool, None).  Written to
        ``experiment.json`` as ``"parameters"`` (left out when empty), so that a run
        directory says which point of a sweep it is; :class:`nepi_lab.Sweep` sets it.
        Anything else raises :class:`InvalidInputError` before any folder is made.

    Example
    -------
    >>> import os, shutil, tempfile
    >>> from nepi_lab import ExperimentController
    >>> results = tempfile.mkdtemp()             # a results root of its own, removed below
    >>> with ExperimentController(exp_id="doc", local_dir=results) as ec:
    ...     ec.exp_id, os.path.dirname(ec.run_dir) == os.path.join(results, "doc")
    ('doc', True)
    >>> shutil.rmtree(results)
    """

    def __init__(self, exp_id: str | None = None, local_dir: str | None = None,
                 parameters: dict[str, Any] | None = None) -> None:
        # os.urandom is what secrets.token_hex reads, without importing hashlib and random
        self._exp_id = check_name(exp_id if exp_id is not None else f"exp-{os.urandom(8).hex()}", "exp_id")
        self._parameters = check_parameters(parameters)
        self._local_dir = check_local_dir(local_dir if local_dir is not None else default_local_dir())
        self._run_id, self._run_dir = make_run_dir(self._local_dir, self._exp_id, default=local_dir is None)
        # epoch ns - monotonic ns: every recorded time is a monotonic one plus this
        self._wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self._resources: dict[int, ResourceManager] = {}
        self._next_guid = 1
        self._groups: dict[int, _Group] = {}
        self._next_group = 1
        self._conditions: list[Condition] = []
        self._dependencies = DependencyGraph()
        self._failures: list[Failure] = []
        self._ecstate = ECState.RUNNING
        self._failure_level = FailureLevel.OK
        self._aborted = False
        self._closed = False
        self._scheduled: dict[int, ScheduledTask] = {}
        self._next_task_id = 1
        self._background: set[asyncio.Future[Any]] = set()
        self._lock = threading.RLock()
        self._end: str | None = None
        self._next_save = 0.0  # see _save_soon
        self._save_scheduled = False
        #: Secret attributes a loaded experiment named but could not hold (see :meth:`load`).
        self._secrets_to_set: dict[int, tuple[str, ...]] = {}
        self.events = EventLog()
        self._failed = asyncio.Event()
        try:  # the run directory's files first: a failure here leaves no thread behind
            self.events.attach_file(
                os.path.join(self._run_dir, EVENTS),
                lambda: self._runner.call_later(_FLUSH_DELAY, self.events.flush),
            )
            write_json_atomic(os.path.join(self._run_dir, DESCRIPTION), self.description())
        except OSError as exc:
            self.events.close()
            import shutil  # here: shutil (with bz2 and lzma) costs import nepi_lab ~2.5 ms

            shutil.rmtree(self._run_dir, ignore_errors=True)
            raise ResultsWriteError(None, self._run_dir, exc) from exc
        self._runner = LoopRunner()
        _live_controllers.add(self)
        _release_on_sigterm_while_live()

    # == identity and state ======================================================

    @property
    def exp_id(self) -> str:
        """The scenario name."""
        return self._exp_id

    @property
    def run_id(self) -> str:
        """This run's id: its creation time, ``YYYYmmddHHMMSSffffff``."""
        return self._run_id

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameter point of this run (a copy; empty when none was given)."""
        return dict(self._parameters)

    @property
    def local_dir(self) -> str:
        """The results root."""
        return self._local_dir

    @property
    def exp_dir(self) -> str:
        """``<local_dir>/<exp_id>``: every run of this scenario."""
        return os.path.dirname(self._run_dir)

    @property
    def run_dir(self) -> str:
        """``<local_dir>/<exp_id>/<run_id>``: this run's results."""
        return self._run_dir

    @property
    def ecstate(self) -> ECState:
        """RUNNING, FAILED (a critical resource failed), RELEASED or TERMINATED."""
        return self._ecstate

    @property
    def finished(self) -> bool:
        """True once the controller is FAILED, RELEASED or TERMINATED (as in NEPI)."""
        return self._ecstate in (ECState.FAILED, ECState.RELEASED, ECState.TERMINATED)

    @property
    def abort(self) -> bool:
        """True once a critical resource failed."""
        return self._aborted

    @property
    def failure_level(self) -> FailureLevel:
        """OK, or RM_FAILURE once a critical resource failed."""
        return self._failure_level

    @property
    def failures(self) -> list[Failure]:
        """Every failure recorded so far, critical or not, in order."""
        return list(self._failures)

    @property
    def loop_mode(self) -> str:
        """Always ``"thread"``: the controller runs its own loop in one background thread,
        also in a Jupyter kernel (see :mod:`nepi_lab.core.loop` for why)."""
        return "thread"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop that drives this experiment."""
        return self._runner.loop

    def __repr__(self) -> str:
        counts = Counter(rm._state.name for rm in list(self._resources.values()))
        states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: S[kv[0]]))
        return (f"<ExperimentController {self._exp_id}/{self._run_id} {self._ecstate.name}: "
                f"{len(self._resources)} resources{': ' + states if states else ''}>")

    def _repr_html_(self) -> str | None:
        """A table of the resources in Jupyter (the notebook layer builds it; None: plain repr)."""
        render = view("controller_html")
        return None if render is None else render(self)

    def draw(self, ax: Any = None, **options: Any) -> Any:
        """Draw the experiment graph with matplotlib; returns the Axes (see ``nepi_lab.notebook.draw``)."""
        render = view("draw")
        if render is None:
            raise RuntimeError("no drawing function is registered: import nepi_lab (the package) first")
        return render(self, ax, **options)

    def __enter__(self) -> ExperimentController:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Leaving the block because of Ctrl-C: the run is recorded as interrupted
        # (experiment.json "end"), whether or not the release is itself interrupted.
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self._close(None, "interrupted" if interrupted else "shutdown")

    async def __aenter__(self) -> ExperimentController:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown_async()

    # == helpers =================================================================

    def _check_open(self, call: str) -> None:
        if self._closed:
            raise ControllerClosedError(self._exp_id, call)

    def _rm(self, guid: Any) -> ResourceManager:
        rm = self._resources.get(guid) if type(guid) is int else None  # not True, not 1.0
        if rm is None:
            raise UnknownGuidError(guid, self._resources)
        return rm

    def _select(self, guids: Guids) -> list[ResourceManager]:
        """Resources for a guid, a list of guids, or None (all), as in NEPI."""
        if guids is None:
            return list(self._resources.values())
        if type(guids) is int:
            return [self._rm(guids)]
        if isinstance(guids, (str, bytes)) or not isinstance(guids, Iterable):
            raise UnknownGuidError(guids, self._resources)
        return [self._rm(g) for g in guids]

    def _guid_list(self, guids: Guids, what: str) -> list[int]:
        if guids is None:
            raise InvalidInputError(f"{what}: give a guid or a list of guids")
        rms = self._select(guids)
        if not rms:
            raise InvalidInputError(f"{what}: the list of guids is empty")
        return [rm.guid for rm in rms]

    def _sync(self, coro: Coroutine[Any, Any, T], name: str) -> T:
        return self._runner.run(coro, name)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        """Start a background task on the loop (from the loop thread); kept until it ends."""
        task = asyncio.ensure_future(coro, loop=self._runner.loop)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _with_timeout(self, coro: Coroutine[Any, Any, T], timeout: float | None, what: str,
                            rms: list[ResourceManager], target: int,
                            abort_raises: bool, action: bool = False) -> T:
        """Run ``coro``; on timeout say who is where; on a critical failure raise it.

        ``timeout`` bounds the wait only.  An ``action`` (stop, release, a deploy step)
        goes on after the wait ended, by timeout or by an interrupt of the caller, and
        a later ``release()``/``shutdown()`` completes it; a pure wait is cancelled.
        """
        if abort_raises and self._aborted:
            if asyncio.iscoroutine(coro):
                coro.close()
            raise ExperimentFailedError(self._failures)
        work = self._spawn(coro) if action else asyncio.ensure_future(coro)
        waiters: set[asyncio.Future[Any]] = {work}
        if abort_raises:
            waiters.add(asyncio.ensure_future(self._failed.wait()))
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                if not w.done() and not (action and w is work):
                    w.cancel()
        if abort_raises and self._aborted:  # also when the work ended with the failure itself
            if work.done() and not work.cancelled():
                work.exception()  # retrieved: the failure is what the caller gets
            raise ExperimentFailedError(self._failures)
        if work in done:
            return work.result()
        pending = [rm for rm in rms if rm._status(target) <= 0] or rms
        raise WaitTimeoutError(what, timeout or 0.0, [self.explain(rm.guid) for rm in pending[:50]])

    # == building the experiment (never blocks) ==================================

    def register_resource(self, rtype: str | type[ResourceManager], guid: int | None = None,
                          **attributes: Any) -> int:
        """Create a resource of type ``rtype``; returns its guid.

        Keyword arguments set attributes.  As in NEPI, ``connectedTo=<guid>``
        connects it and ``autoDeploy=True`` deploys it at once (after connecting);
        ``autoDeploy`` is read as a Bool attribute is (``"no"`` and ``"false"`` are
        False, ``"maybe"`` is refused).  An explicit ``guid`` is an int in
        ``[0, MAX_GUID]``; the automatic one is the largest guid so far plus one, so
        after ``guid=MAX_GUID`` every later resource needs an explicit guid.
        Everything is checked before anything changes.
        """
        if self._closed:
            raise ControllerClosedError(self._exp_id, "register_resource")
        # a type name already registered (most calls) is looked up here: 0.15 us less each
        cls = _registered_types.get(rtype) if type(rtype) is str else None
        if cls is None:
            cls = get_resource_type(rtype)
        auto_deploy = (_AUTO_DEPLOY.check(attributes.pop("autoDeploy"), None, cls._rtype)
                       if attributes and "autoDeploy" in attributes else False)
        connected_to = attributes.pop("connectedTo", None) if attributes else None
        with self._lock:
            resources = self._resources
            if guid is None:
                guid = self._next_guid
                while guid in resources:
                    guid += 1
                if guid > MAX_GUID:
                    raise InvalidInputError(
                        f"no automatic guid is left: the next one, {guid}, is beyond the largest guid "
                        f"(2**63 - 1); give guid= explicitly")
            elif isinstance(guid, bool) or not isinstance(guid, int) or not 0 <= guid <= MAX_GUID:
                raise InvalidInputError(f"guid must be an integer in [0, 2**63 - 1], not {guid!r}")
            elif guid in resources:
                raise DuplicateGuidError(guid, resources[guid]._rtype)
            rm = cls(self, guid)
            if cls._alias_table:
                _refuse_two_names(rm, attributes)
            for name, value in attributes.items():
                rm.set(name, value)
            if connected_to is not None:
                self._check_connection(rm, self._rm(connected_to))
            resources[guid] = rm
            if guid >= self._next_guid:
                self._next_guid = guid + 1
            self.events.append_ns(rm._times[0] + self._wall_offset_ns, guid, cls._rtype, -1, 0)
        if connected_to is not None:
            self.register_connection(guid, connected_to)
        if auto_deploy:
            self.deploy(guid)
        return guid

    def get_resource(self, guid: int) -> ResourceManager:
        """The resource object of ``guid``."""
        return self._rm(guid)

    @property
    def resources(self) -> list[int]:
        """Every guid, in registration order."""
        return list(self._resources)

    def get_resources_by_type(self, rtype: str) -> list[int]:
        """Guids of the resources whose type name is exactly ``rtype`` (as in NEPI)."""
        return [g for g, rm in list(self._resources.items()) if rm._rtype == rtype]

    filter_resources = get_resources_by_type

    def set(self, guid: int, name: str, value: Any) -> Any:
        """Set attribute ``name`` of ``guid``; returns the value as stored (normalised)."""
        self._check_open("set")
        return self._rm(guid).set(name, value)

    def get(self, guid: int, name: str) -> Any:
        """The value of attribute ``name`` of ``guid``."""
        return self._rm(guid).get(name)

    def get_attributes(self, guid: int) -> list[Attribute]:
        """Copies of the attribute declarations of ``guid``, each with its current ``value``."""
        rm = self._rm(guid)
        return [a.with_value(rm.get(a.name)) for a in rm._attribute_table.values()]

    def get_attribute(self, guid: int, name: str) -> Attribute:
        """A copy of one attribute declaration of ``guid``, with its current ``value``."""
        rm = self._rm(guid)
        return rm._declaration(name).with_value(rm.get(name))

    @staticmethod
    def _connection_refusal(rm: ResourceManager, other: ResourceManager) -> InvalidConnectionError | None:
        """Why ``rm`` and ``other`` cannot be connected (None: they can).

        First the types, both ways (``_connects_to``, see
        :meth:`ResourceManager.accepts_type`), then each resource's
        :meth:`~ResourceManager.valid_connection`.
        """
        if rm is other:
            return InvalidConnectionError(rm.guid, other.guid, "a resource cannot be connected to itself")
        for a, b in ((rm, other), (other, rm)):
            cls, other_cls = type(a), type(b)
            if not cls.accepts_type(other_cls):
                allowed = cls.get_connection_types()
                names = ", ".join(allowed[:-1]) + " or " + allowed[-1] if len(allowed) > 1 else allowed[0]
                reason = f"a {a._rtype} connects only to {names} (or subtypes), not to a {b._rtype}"
                verdicts = (a.valid_connection(b), b.valid_connection(a))
                hints = [h for h in verdicts if isinstance(h, str) and h]
                if hints:
                    reason += f"; {hints[0]}"
                elif not other_cls.get_connection_types():
                    reason += (f" (a type of your own may declare _connects_to = ({a._rtype!r},) "
                               f"to be connected to it)")
                return InvalidConnectionError(rm.guid, other.guid, reason, a._rtype, b._rtype, allowed)
        for a, b in ((rm, other), (other, rm)):
            verdict = a.valid_connection(b)
            if verdict is not True:
                reason = verdict if isinstance(verdict, str) else f"{a._rtype} does not accept a {b._rtype}"
                return InvalidConnectionError(rm.guid, other.guid, reason)
        return None

    def _check_connection(self, rm: ResourceManager, other: ResourceManager) -> None:
        refusal = self._connection_refusal(rm, other)
        if refusal is not None:
            raise refusal

    def can_connect(self, guid1: int, guid2: int) -> bool:
        """Whether :meth:`register_connection` would accept connecting ``guid1`` and ``guid2``.

        Never raises for a refused pair (an unknown guid still raises
        :class:`UnknownGuidError`); the builder offers only pairs for which it is True.
        """
        return self._connection_refusal(self._rm(guid1), self._rm(guid2)) is None

    def register_connection(self, guid1: int, guid2: int) -> None:
        """Connect two resources (symmetric), after asking both types whether they accept it.

        Raises
        ------
        InvalidConnectionError
            The types do not connect to each other (``.allowed`` lists the type
            names the refusing type connects to, ``.rtype`` names it), or one of the
            resources refuses this other one (an application already on a node).
            Nothing is connected.

        Example
        -------
        >>> ec.register_connection(app, node)     # doctest: +SKIP
        """
        self._check_open("register_connection")
        rm1, rm2 = self._rm(guid1), self._rm(guid2)
        self._check_connection(rm1, rm2)
        with self._lock:
            rm1._connect(rm2.guid)
            rm2._connect(rm1.guid)

    def register_condition(self, guids1: Guids, action: ResourceAction | str, guids2: Guids,
                           state: ResourceState | str, time: str | float | None = None) -> None:
        """Do ``action`` on ``guids1`` only once all ``guids2`` reached ``state``, plus ``time``.

        ``time`` is a delay such as ``"2s"`` or ``"500ms"``, counted from the moment
        the last of ``guids2`` reached ``state``.  Refused at once (and nothing
        recorded) when a guid is unknown, a resource of ``guids2`` can no longer reach
        ``state``, or the conditions would wait on each other in a cycle.
        """
        self._check_open("register_condition")
        g1 = self._guid_list(guids1, "register_condition")
        g2 = self._guid_list(guids2, "register_condition")
        action = as_action(action)
        state = as_state(state)
        delay = parse_delay(time) if time is not None else 0.0
        new = [Condition(g, action, tuple(g2), state, delay) for g in g1]
        self._check_reachable(new[0].describe(), g2, state)
        with self._lock:
            self._dependencies.add_conditions(new)
            for c in new:
                rm = self._resources[c.guid]
                rm._add_condition(c)
                self._conditions.append(c)
                if action is A.STOP and rm._deploying and rm._stop_task is None:
                    self._runner.call_soon(self._watch_stop, rm)

    def _check_reachable(self, what: str, guids: list[int], state: ResourceState) -> None:
        for g in guids:
            other = self._resources[g]
            if other._status(state) < 0:
                raise ConditionError(f"condition '{what}' can never hold: {other._unreachable(state)}",
                                     others=guids, state=state)

    def set_with_conditions(self, name: str, value: Any, guids1: Guids, guids2: Guids,
                            state: ResourceState | str, time: str | float | None = None) -> None:
        """Set attribute ``name`` to ``value`` on ``guids1`` once all ``guids2`` reached ``state`` + ``time``.

        The name and value are checked now; the set happens when the condition holds.
        """
        self._check_open("set_with_conditions")
        g1 = self._guid_list(guids1, "set_with_conditions")
        g2 = self._guid_list(guids2, "set_with_conditions")
        state = as_state(state)
        delay = parse_delay(time) if time is not None else 0.0
        for g in g1:
            rm = self._resources[g]
            declaration = rm._declaration(name)
            declaration.check(value, g, rm._rtype)
            if declaration.flags & Flags.NoWrite:
                raise ReadOnlyAttributeError(g, rm._rtype, name, rm._state, "it is read-only")
            if declaration.flags & Flags.Design and (rm._deploying or rm._state > S.NEW):
                raise ReadOnlyAttributeError(
                    g, rm._rtype, name, rm._state,
                    f"it is a design attribute and the resource is already deployed ({rm._state.name})")
        what = f"set {name}={value!r} on {g1} once {g2} reached {state.name}"
        self._check_reachable(what, g2, state)
        condition = Condition(g1[0], A.START, tuple(g2), state, delay)
        self._runner.call_soon(lambda: self._spawn(self._set_later(name, value, g1, condition)))

    async def _set_later(self, name: str, value: Any, guids: list[int], condition: Condition) -> None:
        try:
            await self._await_condition(None, condition)
        except ResourceFailedError as exc:
            log.warning("set_with_conditions(%s) abandoned: %s", name, exc)
            return
        for g in guids:
            rm = self._resources.get(g)
            if rm is None:
                continue
            try:
                rm.set(name, value, internal=True)
            except Exception as exc:
                log.warning("set_with_conditions could not set %s on %s: %s", name, g, exc)

    # == running it ==============================================================

    def deploy(self, guids: Guids = None, wait_all_ready: bool = True, group: int | None = None) -> None:
        """Deploy resources, then start them; returns at once.

        Parameters
        ----------
        guids : int or list of int, optional
            What to deploy; default: every resource not deployed yet (so calling
            ``deploy()`` again after registering more resources deploys those).
        wait_all_ready : bool
            Start the resources of this deployment group only once all are READY.
        group : int, optional
            Add to an existing deployment group (or create one with this id).
        """
        self._check_open("deploy")
        if self._aborted:
            raise ExperimentFailedError(self._failures)
        with self._lock:
            if guids is None:
                rms = [rm for rm in self._resources.values() if not rm._deploying and rm._state == _NEW]
            else:
                rms = self._select(guids)
                for rm in rms:
                    if rm._deploying or rm._state != S.NEW:
                        raise InvalidTransitionError(
                            rm.guid, rm._rtype, rm._state, "DEPLOY",
                            "it was already deployed" if rm._deploying else "DEPLOY needs NEW",
                        )
            if not rms:
                return
            if group is None:
                group = self._next_group
            elif isinstance(group, bool) or not isinstance(group, int):
                raise InvalidInputError(f"group must be an integer, not {group!r}")
            grp = self._groups.get(group) or _Group(group)
            if wait_all_ready:
                self._dependencies.add_group(group, [rm.guid for rm in (*grp.members, *rms)])
            self._groups[group] = grp
            self._next_group = max(self._next_group, group + 1)
            for rm in rms:
                rm._deploying = True
                rm._group = grp
            # saved here, in the caller's thread, so the loop spends nothing on it
            # between the first state changes and the conditions they trigger
            self._save_soon()
        self._runner.call_soon(self._launch, grp, rms, wait_all_ready)

    def _in_chunks(self, rms: list[ResourceManager], action: Callable[[ResourceManager], None],
                   offset: int = 0) -> None:
        for rm in rms[offset:offset + _CHUNK]:
            action(rm)
        if offset + _CHUNK < len(rms):
            self._runner.loop.call_soon(self._in_chunks, rms, action, offset + _CHUNK)

    def _launch(self, grp: _Group, rms: list[ResourceManager], wait_all_ready: bool) -> None:
        grp.members.extend(rms)
        if wait_all_ready:
            grp.deploying += len(rms)
        self._in_chunks(rms, lambda rm: self._deploy_one(rm, grp, wait_all_ready))

    def _deploy_one(self, rm: ResourceManager, grp: _Group, wait_all_ready: bool) -> None:
        if rm._conditions and A.STOP in rm._conditions:
            self._watch_stop(rm)
        if rm._state != _NEW or self._aborted:
            self._member_lost(grp, wait_all_ready)
        elif not rm._hooks.isdisjoint(_DEPLOY_HOOKS) or (rm._conditions and A.DEPLOY in rm._conditions):
            rm._task = self._runner.loop.create_task(self._deploy_phase(rm, grp, wait_all_ready))
        else:  # nothing to await: no task needed
            rm._deploy_at_once()
            self._deployed(rm, grp, wait_all_ready)

    async def _deploy_phase(self, rm: ResourceManager, grp: _Group, wait_all_ready: bool) -> None:
        ready = False
        try:
            if A.DEPLOY in rm._conditions:
                await self._await_conditions(rm, A.DEPLOY)
            await self._deploy_steps(rm)
            ready = True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
            self._fail(rm, rm._step or "condition", exc)
        finally:
            _forget_task(rm)
            if ready:
                self._deployed(rm, grp, wait_all_ready)
            else:
                self._member_lost(grp, wait_all_ready)

    def _deployed(self, rm: ResourceManager, grp: _Group, wait_all_ready: bool) -> None:
        """``rm`` is READY: start it, or hold it until its whole group is READY."""
        if not wait_all_ready:
            self._begin_start(rm)
            return
        grp.held.append(rm)
        rm._waiting = grp.waiting
        self._member_lost(grp, True)

    def _member_lost(self, grp: _Group, wait_all_ready: bool) -> None:
        """One member less to wait for (it is READY, or it never will be)."""
        if not wait_all_ready:
            return
        grp.deploying -= 1
        if grp.deploying == 0 and grp.held:
            held, grp.held = grp.held, []
            self._in_chunks(held, self._begin_start)

    def _begin_start(self, rm: ResourceManager) -> None:
        rm._waiting = None
        if rm._state != _READY or self._aborted:
            return
        if "do_start" in rm._hooks or (rm._conditions and A.START in rm._conditions):
            rm._task = self._runner.loop.create_task(self._start_phase(rm))
            return
        if rm._run_cannot_suspend and not rm._conditions:  # (a STOP condition may race its end)
            self._run_in_place(rm)
            return
        rm._set_state(_STARTED)
        if "do_run" in rm._hooks:
            rm._task = self._runner.loop.create_task(self._run(rm))

    async def _start_phase(self, rm: ResourceManager) -> None:
        """Wait for ``rm``'s START conditions, then start and run it."""
        try:
            if A.START in rm._conditions:
                await self._await_conditions(rm, A.START)
            if rm._state == S.READY:
                await self._start_steps(rm)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
            self._fail(rm, rm._step or "condition", exc)
        finally:
            _forget_task(rm)

    async def _deploy_steps(self, rm: ResourceManager) -> None:
        hooks = rm._hooks
        rm._step = "discover"
        if "do_discover" in hooks:
            await rm.do_discover()
        rm._set_state(S.DISCOVERED)
        if "do_reserve" in hooks:
            rm._step = "reserve"
            await rm.do_reserve()
            rm._set_state(S.RESERVED)
        rm._step = "provision"
        if "do_provision" in hooks:
            await rm.do_provision()
        rm._set_state(S.PROVISIONED)
        rm._step = "configure"
        if "do_configure" in hooks:
            await rm.do_configure()
        rm._set_state(S.READY)
        rm._step = None

    async def _start_steps(self, rm: ResourceManager) -> None:
        rm._step = "start"
        if "do_start" in rm._hooks:
            await rm.do_start()
        rm._set_state(S.STARTED)
        rm._step = None
        if "do_run" in rm._hooks:
            await self._run(rm)

    async def _run(self, rm: ResourceManager) -> None:
        """Run ``do_run``: return -> FINISHED, raise -> FAILED, stopped -> outcome ignored."""
        rm._step = "run"
        rm._running = current = asyncio.current_task()
        try:
            await rm.do_run()
        except asyncio.CancelledError:
            if rm._stopping or rm._state != _STARTED:
                return
            raise
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
            if rm._stopping or rm._state != _STARTED:
                log.debug("resource %s: run ended with %r while stopping", rm.guid, exc)
                return
            self._fail(rm, "run", exc)
            return
        finally:
            rm._running = None
            rm._step = None
            if rm._task is current:  # _forget_task, with the task at hand
                rm._task = None
        if rm._state == _STARTED and not rm._stopping:
            rm._set_state(_FINISHED)

    def _run_in_place(self, rm: ResourceManager) -> None:
        """Start ``rm`` (READY) and run it as :meth:`_run` would, for a ``do_run`` that never
        awaits (``rm._run_cannot_suspend``): its coroutine is run to its end here, in one
        step, without a task of its own.  STARTED and FINISHED are recorded as they happen;
        the watchers are told once, at the end (see :meth:`ResourceManager._start_quietly`)."""
        quiet = rm._start_quietly()
        if not quiet:
            rm._set_state(_STARTED)
        rm._step = "run"
        coro = rm.do_run()
        suspended = False
        try:
            # iterated: a coroutine that returns ends the loop without the StopIteration
            # that coro.send() raises
            for _ in coro.__await__():
                suspended = True
                break
        except asyncio.CancelledError:
            rm._step = None  # as in _run: the resource stays STARTED, as if its task had been cancelled
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
            rm._step = None
            if rm._stopping or rm._state != _STARTED:
                log.debug("resource %s: run ended with %r while stopping", rm.guid, exc)
            else:
                self._fail(rm, "run", exc)
        else:
            rm._step = None
            if suspended:  # cannot be, for code with no await
                coro.close()
                self._fail(rm, "run", RuntimeError(f"bug: {type(rm).__name__}.do_run awaited, "
                                                   "though its code holds no await"))
            elif rm._state == _STARTED and not rm._stopping:
                if quiet:
                    rm._finish_quietly()
                else:
                    rm._set_state(_FINISHED)
        if quiet and rm._watchers:
            rm._notify()

    async def _stop_one(self, rm: ResourceManager) -> None:
        rm._stopping = True
        try:
            rm._step = "stop"
            if "do_stop" in rm._hooks:
                await rm.do_stop()
            if rm._state == S.STARTED:
                rm._set_state(S.STOPPED)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
            self._fail(rm, "stop", exc)
        finally:
            rm._stopping = False
            rm._step = None
            running = rm._running
            if running is not None and running is not asyncio.current_task():
                running.cancel()

    def _watch_stop(self, rm: ResourceManager) -> None:
        if rm._stop_task is None and rm._state != S.RELEASED:
            rm._stop_task = self._spawn(self._stop_when(rm))

    async def _stop_when(self, rm: ResourceManager) -> None:
        """Stop ``rm`` once its STOP conditions hold and it is started."""
        if rm._conditions.get(A.STOP) and not self._waited_conditions(rm, A.STOP):
            return  # the resource honours all its STOP conditions itself
        try:
            await self._await_conditions(rm, A.STOP, slot="_stop_waiting")
            if rm._status(S.STARTED) == 0:
                rm._stop_waiting = lambda: "its STOP conditions hold; it will stop once STARTED"
                await self._await_states([rm], S.STARTED)
            rm._stop_waiting = None
            if rm._state == S.STARTED:
                await self._stop_one(rm)
        except asyncio.CancelledError:
            raise
        except UnreachableStateError as exc:
            if exc.guid != rm.guid:  # a STOP condition can never hold
                self._fail(rm, "condition", exc)
        except ResourceFailedError as exc:
            self._fail(rm, "condition", exc)

    async def _await_states(self, rms: Iterable[ResourceManager], target: ResourceState) -> None:
        """Return once every resource reached ``target``; raise once one no longer can."""
        loop = self._runner.loop
        future = loop.create_future()
        pending = 0

        def settled(rm: ResourceManager, reached: bool) -> None:
            nonlocal pending
            if future.done():
                return
            if not reached:
                future.set_exception(rm._unreachable(target))
                return
            pending -= 1
            if pending == 0:
                future.set_result(None)

        watch = ((target, settled),)  # one tuple for every resource waited for
        for rm in rms:
            status = rm._status(target)
            if status > 0:
                continue
            if status < 0:
                future.cancel()
                raise rm._unreachable(target)
            pending += 1
            rm._watch_all(watch)
        if pending:
            await future

    async def _await_condition(self, rm: ResourceManager | None, condition: Condition,
                               slot: str = "_waiting") -> None:
        """Wait until ``condition`` holds; explain the wait on ``rm``'s ``slot``."""
        others = [self._resources[g] for g in condition.after if g in self._resources]
        target = condition.state
        if any(o._status(target) <= 0 for o in others):
            if rm is not None:
                setattr(rm, slot, lambda: self._describe_wait(condition, others))
            try:
                await self._await_states(others, target)
            except UnreachableStateError as exc:
                guid, rtype = (rm.guid, rm._rtype) if rm is not None else (condition.guid, "")
                raise ResourceFailedError(
                    f"condition '{condition.describe()}' can never hold: {exc}", guid, rtype,
                    rm._state if rm is not None else None, exc.failure,
                ) from exc
        if condition.delay:
            until = max(o._reach_time(target) for o in others) + condition.delay
            if until > time.monotonic():
                if rm is not None:
                    setattr(rm, slot, lambda: (
                        f"waits {format_delay(max(0.0, until - time.monotonic()))} more "
                        f"(condition: {condition.describe()})"))
                await asyncio.sleep(until - time.monotonic())
        if rm is not None:
            setattr(rm, slot, None)

    async def _await_conditions(self, rm: ResourceManager, action: ResourceAction,
                                slot: str = "_waiting") -> None:
        for condition in self._waited_conditions(rm, action):
            await self._await_condition(rm, condition, slot)

    @staticmethod
    def _waited_conditions(rm: ResourceManager, action: ResourceAction) -> list[Condition]:
        """``rm``'s conditions on ``action`` that the controller waits for: all but those
        the resource honours itself (:meth:`ResourceManager.honours_condition`)."""
        return [c for c in rm._conditions.get(action, ()) if not rm.honours_condition(c)]

    def _unmet(self, rm: ResourceManager, action: ResourceAction) -> list[str]:
        """The conditions on ``action`` of ``rm`` that do not hold yet, in words."""
        texts = []
        for condition in self._waited_conditions(rm, action) if rm._conditions else ():
            others = [self._resources[g] for g in condition.after if g in self._resources]
            if any(o._status(condition.state) <= 0 for o in others):
                texts.append(self._describe_wait(condition, others))
        return texts

    def _describe_wait(self, condition: Condition, others: list[ResourceManager]) -> str:
        late = [o for o in others if o._status(condition.state) <= 0]
        who = ", ".join(f"{o.guid} ({o._rtype}, now {o._state.name})" for o in late[:10])
        delay = f", then {format_delay(condition.delay)}" if condition.delay else ""
        plural = "s" if len(late) > 1 else ""
        verb = "reach" if plural else "reaches"
        return (f"waits to {condition.action.name} until resource{plural} {who} {verb} "
                f"{condition.state.name}{delay} (condition: {condition.describe()})")

    def _record_failure(self, rm: ResourceManager, step: str, exc: BaseException,
                        critical: bool) -> Failure:
        failure = Failure(
            rm.guid, rm._rtype, step, rm._state, type(exc).__name__, str(exc), time.time(), critical,
            getattr(exc, "command", None), getattr(exc, "returncode", None),
            getattr(exc, "stderr_tail", None),
        )
        self._failures.append(failure)
        log.info("%s", failure)
        return failure

    def _fail(self, rm: ResourceManager, step: str, exc: BaseException) -> None:
        """Record a failure of ``rm`` and apply the failure policy."""
        if rm._state == S.RELEASED:
            log.warning("resource %s failed in %s after release: %s", rm.guid, step, exc)
            return
        failure = self._record_failure(rm, step, exc, rm.critical)
        rm.failure = failure
        rm._step = None
        if rm._state != S.FAILED:
            rm._set_state(S.FAILED, str(failure))
        if rm.critical:
            self._abort()

    def _abort(self) -> None:
        """A critical failure: fail the experiment, stop and release everything."""
        if self._aborted:
            return
        self._aborted = True
        self._ecstate = ECState.FAILED
        self._failure_level = FailureLevel.RM_FAILURE
        self._failed.set()
        self._spawn(self._release(list(self._resources.values())))

    # -- the actions, on demand ---------------------------------------------------

    def _check_action(self, rms: list[ResourceManager], action: ResourceAction) -> None:
        allowed = ACTION_FROM[action]
        for rm in rms:
            if rm._state not in allowed:
                names = " or ".join(s.name for s in sorted(allowed))
                raise InvalidTransitionError(rm.guid, rm._rtype, rm._state, action.name,
                                             f"{action.name} needs {names}")

    @_on_loop
    async def start_async(self, guids: Guids, timeout: float | None = None) -> None:
        """Start resources now, ignoring their START conditions; returns once STARTED."""
        self._check_open("start")
        rms = self._select(guids)
        self._check_action(rms, A.START)
        for rm in rms:
            pending = rm._task
            if pending is not None and not pending.done():
                pending.cancel()  # it was waiting for its group or conditions
            rm._deploying = True
            rm._waiting = None  # no longer held by its group
            rm._task = self._runner.loop.create_task(self._start_action(rm))
        await self._with_timeout(self._await_states(rms, S.STARTED), timeout, "start", rms, S.STARTED, False)

    async def _start_action(self, rm: ResourceManager) -> None:
        try:
            await self._start_steps(rm)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
            self._fail(rm, rm._step or "start", exc)

    def start(self, guids: Guids, timeout: float | None = None) -> None:
        """Start resources now (see :meth:`start_async`)."""
        self._check_open("start")
        self._sync(self.start_async(guids, timeout), "start")

    @_on_loop
    async def stop_async(self, guids: Guids, timeout: float | None = None) -> None:
        """Stop STARTED resources now; returns once they are STOPPED."""
        self._check_open("stop")
        rms = self._select(guids)
        self._check_action(rms, A.STOP)
        await self._with_timeout(asyncio.gather(*(self._stop_one(rm) for rm in rms)), timeout, "stop",
                                 rms, S.STOPPED, False, action=True)

    def stop(self, guids: Guids, timeout: float | None = None) -> None:
        """Stop STARTED resources now (see :meth:`stop_async`)."""
        self._check_open("stop")
        self._sync(self.stop_async(guids, timeout), "stop")

    def start_with_conditions(self, guids: Guids) -> None:
        """Start resources once their START conditions hold; returns at once."""
        self._check_open("start_with_conditions")
        rms = self._select(guids)
        self._check_action(rms, A.START)

        async def start_later(rm: ResourceManager) -> None:
            try:
                await self._await_conditions(rm, A.START)
                if rm._state in ACTION_FROM[A.START]:
                    await self._start_steps(rm)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
                self._fail(rm, rm._step or "condition", exc)

        def launch() -> None:
            for rm in rms:
                rm._task = self._spawn(start_later(rm))

        self._runner.call_soon(launch)

    def stop_with_conditions(self, guids: Guids) -> None:
        """Stop resources once their STOP conditions hold; returns at once."""
        self._check_open("stop_with_conditions")
        for rm in self._select(guids):
            self._runner.call_soon(self._watch_stop, rm)

    async def _step_async(self, guids: Guids, step: str, timeout: float | None) -> None:
        rms = self._select(guids)
        need, hook, new = {
            "discover": (S.NEW, "do_discover", S.DISCOVERED),
            "provision": (S.DISCOVERED, "do_provision", S.PROVISIONED),
        }[step]
        for rm in rms:
            if rm._state != need or (step == "discover" and rm._deploying):
                raise InvalidTransitionError(rm.guid, rm._rtype, rm._state, step, f"{step} needs {need.name}")

        async def one(rm: ResourceManager) -> None:
            rm._step = step
            try:
                if hook in rm._hooks:
                    await getattr(rm, hook)()
                rm._set_state(new)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - even SystemExit in a hook only fails the resource
                self._fail(rm, step, exc)
            finally:
                rm._step = None

        await self._with_timeout(asyncio.gather(*(one(rm) for rm in rms)), timeout, step, rms, new, False,
                                 action=True)

    @_on_loop
    async def discover_async(self, guids: Guids, timeout: float | None = None) -> None:
        """Run only the discover step of NEW resources."""
        self._check_open("discover")
        await self._step_async(guids, "discover", timeout)

    def discover(self, guids: Guids, timeout: float | None = None) -> None:
        """Run only the discover step of NEW resources."""
        self._check_open("discover")
        self._sync(self.discover_async(guids, timeout), "discover")

    @_on_loop
    async def provision_async(self, guids: Guids, timeout: float | None = None) -> None:
        """Run only the provision step of DISCOVERED resources."""
        self._check_open("provision")
        await self._step_async(guids, "provision", timeout)

    def provision(self, guids: Guids, timeout: float | None = None) -> None:
        """Run only the provision step of DISCOVERED resources."""
        self._check_open("provision")
        self._sync(self.provision_async(guids, timeout), "provision")

    # == waiting =================================================================

    def _reached(self, guids: Guids, target: int, timeout: float | None) -> bool:
        """Whether every resource of ``guids`` has reached ``target`` already, as seen from
        the caller's thread (reaching a state cannot un-happen, so what it sees stays true):
        a synchronous wait that has nothing to wait for returns without going to the loop
        thread and back (0.2-0.3 ms).  False when unsure: the loop then decides, and raises
        what is to be raised (a critical failure, an unknown guid)."""
        check_timeout(timeout)  # refused whether or not there is anything to wait for
        if self._aborted and target != S.RELEASED:
            return False
        try:
            with self._lock:
                rms = self._select(guids)
        except Exception:  # noqa: BLE001 - the loop's path raises it, as without this look
            return False
        return all(rm._status(target) > 0 for rm in rms)

    async def _wait(self, guids: Guids, target: int, timeout: float | None, what: str) -> None:
        self._check_open(what)
        rms = self._select(guids)
        await self._with_timeout(self._await_states(rms, target), timeout, what, rms, target,
                                 target != S.RELEASED)

    @_on_loop
    async def wait_async(self, guids: Guids, state: ResourceState | str,
                         timeout: float | None = None) -> None:
        """Return once every resource of ``guids`` (None: all) has reached ``state``.

        Raises
        ------
        ExperimentFailedError
            A critical resource failed (not raised when waiting for RELEASED).
        UnreachableStateError
            A resource can no longer reach ``state`` (it failed non-critically).
        WaitTimeoutError
            ``timeout`` seconds passed; the message lists who is where, waiting for what.
        """
        self._check_open("wait")
        await self._wait(guids, as_state(state), timeout, "wait")

    def wait(self, guids: Guids, state: ResourceState | str, timeout: float | None = None) -> None:
        """Block until every resource of ``guids`` has reached ``state`` (see :meth:`wait_async`)."""
        self._check_open("wait")
        if not self._reached(guids, as_state(state), timeout):
            self._sync(self.wait_async(guids, state, timeout), "wait")

    @_on_loop
    async def wait_deployed_async(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Return once the resources are READY (or further)."""
        await self._wait(guids, S.READY, timeout, "wait_deployed")

    def wait_deployed(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Block until the resources are READY (or further)."""
        self._check_open("wait_deployed")
        if not self._reached(guids, S.READY, timeout):
            self._sync(self.wait_deployed_async(guids, timeout), "wait_deployed")

    @_on_loop
    async def wait_started_async(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Return once the resources are STARTED (or further)."""
        await self._wait(guids, S.STARTED, timeout, "wait_started")

    def wait_started(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Block until the resources are STARTED (or further)."""
        self._check_open("wait_started")
        if not self._reached(guids, S.STARTED, timeout):
            self._sync(self.wait_started_async(guids, timeout), "wait_started")

    @_on_loop
    async def wait_finished_async(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Return once the resources' work is over.

        Over means STOPPED, FINISHED, FAILED (non-critical) or RELEASED; for
        long-lived resources (nodes, links) it means STARTED.
        """
        await self._wait(guids, DONE, timeout, "wait_finished")

    def wait_finished(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Block until the resources' work is over (see :meth:`wait_finished_async`)."""
        self._check_open("wait_finished")
        if not self._reached(guids, DONE, timeout):
            self._sync(self.wait_finished_async(guids, timeout), "wait_finished")

    @_on_loop
    async def wait_released_async(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Return once the resources are RELEASED."""
        await self._wait(guids, S.RELEASED, timeout, "wait_released")

    def wait_released(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Block until the resources are RELEASED."""
        self._check_open("wait_released")
        if not self._reached(guids, S.RELEASED, timeout):
            self._sync(self.wait_released_async(guids, timeout), "wait_released")

    # == releasing ===============================================================

    async def _release(self, rms: list[ResourceManager]) -> None:
        releasing = {rm.guid for rm in rms if rm._state != _RELEASED}
        slow = []
        for rm in rms:
            if rm._state == _RELEASED:
                continue
            task = rm._release_task
            if task is not None and not task.done():  # already on its way: wait for it
                slow.append(task)
                continue
            busy = ((rm._task is not None and not rm._task.done())
                    or (rm._stop_task is not None and not rm._stop_task.done()))
            if (not busy and rm._state != _STARTED and "do_release" not in rm._hooks
                    and rm._dependents.isdisjoint(releasing)):
                rm._set_state(_RELEASED)  # nothing to undo: no task needed
                continue
            rm._release_task = self._runner.loop.create_task(self._release_one(rm, releasing))
            slow.append(rm._release_task)
        if slow:
            await asyncio.gather(*slow)

    async def _release_one(self, rm: ResourceManager, releasing: set[int]) -> None:
        # what needed this resource goes first (an application before its node)
        needing = [self._resources[g] for g in rm._dependents
                   if g in releasing and g in self._resources
                   and rm.guid not in self._resources[g]._dependents]
        if needing:
            rm._waiting = lambda: "waits for the resources that need it to be released first"
            await self._await_states(needing, S.RELEASED)
        current = asyncio.current_task()
        if rm._state == S.STARTED:
            await self._stop_one(rm)
        for name in ("_task", "_stop_task"):
            task = getattr(rm, name, None)
            if task is not None and task is not current and not task.done():
                task.cancel()
                await asyncio.wait({task})
        rm._step = "release"
        detail = None
        try:
            if "do_release" in rm._hooks:
                await rm.do_release()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - release always ends RELEASED; the error is kept
            detail = f"release error: {type(exc).__name__}: {exc}"
            log.warning("resource %s: %s", rm.guid, detail)
        rm._step = None
        rm._waiting = None
        if rm._state != S.RELEASED:
            rm._set_state(S.RELEASED, detail)

    async def _release_and_record(self, rms: list[ResourceManager], timeout: float | None) -> None:
        await self._runner.run_async(
            self._with_timeout(self._release(rms), timeout, "release", rms, S.RELEASED, False, action=True))
        with self._lock:
            for rm in rms:
                if rm._values.get("hardRelease"):
                    self._resources.pop(rm.guid, None)
            if self._ecstate == ECState.RUNNING and self._all_released():
                self._ecstate = ECState.RELEASED

    def _all_released(self) -> bool:
        """Whether every resource is RELEASED (under ``self._lock``).  Looked for from both
        ends at once: a loop releasing one resource per call, in either order, finds one
        that is not at once (from one end only, n calls took O(n²))."""
        resources = self._resources.values()
        for first, last in zip(resources, reversed(resources), strict=True):
            if first._state != _RELEASED or last._state != _RELEASED:
                return False
        return True

    @_on_loop
    async def release_async(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Stop and release resources (None: all); returns once they are RELEASED."""
        self._check_open("release")
        await self._release_and_record(self._select(guids), timeout)
        self._save_soon()

    def release(self, guids: Guids = None, timeout: float | None = None) -> None:
        """Stop and release resources (None: all); blocks until they are RELEASED."""
        self._check_open("release")
        self._sync(self.release_async(guids, timeout), "release")

    async def _shutdown(self, timeout: float | None, end: str) -> None:
        if self._closed:
            return
        try:
            await self._release_and_record(self._select(None), timeout)
        except asyncio.CancelledError:
            # The caller stopped waiting (Ctrl-C): the release goes on in this loop and
            # is completed at exit; the run is recorded as interrupted meanwhile.
            self._end = self._end or "interrupted"
            self._save_description()
            raise
        except BaseException:
            self._close_record(end)
            raise
        self._close_record(end)

    def _close_record(self, end: str) -> None:
        """The run is over: record how it ended, write the last description, close the log."""
        if self._ecstate != ECState.FAILED:
            self._ecstate = ECState.TERMINATED
        if self._end is None:  # an interrupted run stays recorded as interrupted
            self._end = end
        self._closed = True
        self._save_description()
        self.events.close()

    def _stop_loop(self) -> None:
        self._runner.close()
        _live_controllers.discard(self)
        if not _live_controllers:
            _default_sigterm_again()

    def _close(self, timeout: float | None, end: str) -> None:
        """Shut down (see :meth:`shutdown`), recording ``end`` as how the run ended."""
        check_timeout(timeout)
        try:
            if not self._closed:
                self._sync(self._shutdown(timeout, end), "shutdown")
        except KeyboardInterrupt:
            raise  # the release goes on; the loop stays for it, and exit completes it
        except BaseException:
            self._stop_loop()
            raise
        self._stop_loop()

    async def shutdown_async(self, timeout: float | None = None) -> None:
        """Release everything, close the controller and stop its loop thread (see :meth:`shutdown`)."""
        check_timeout(timeout)
        try:
            await self._runner.run_async(self._shutdown(timeout, "shutdown"))
        except asyncio.CancelledError:
            raise  # as for Ctrl-C in shutdown(): the release goes on
        except BaseException:
            if not self._runner.in_loop_thread():
                self._stop_loop()
            raise
        if not self._runner.in_loop_thread():  # a loop cannot join its own thread
            self._stop_loop()

    def shutdown(self, timeout: float | None = None) -> None:
        """Release everything, close the controller and stop its loop thread.

        Idempotent; after it, only queries of recorded data are allowed.  Ctrl-C (or
        Kernel → Interrupt) while it waits stops the wait, not the release: the
        release goes on, is completed at interpreter exit, and the run directory
        records the run as interrupted.  ``experiment.json``'s ``end`` says how the
        run ended: ``shutdown``, ``exit`` (interpreter exit), ``signal`` (SIGTERM),
        ``interrupted`` (also when a ``with`` block is left by Ctrl-C).
        """
        self._close(timeout, "shutdown")

    # == traces ==================================================================

    def enable_trace(self, guid: int, name: str) -> None:
        """Collect trace ``name`` of ``guid``."""
        self._check_open("enable_trace")
        rm = self._rm(guid)
        rm._check_trace(name)
        rm._enable_trace(name)

    def trace_enabled(self, guid: int, name: str) -> bool:
        """Whether trace ``name`` of ``guid`` is collected."""
        return self._rm(guid).trace_enabled(name)

    def get_traces(self, guid: int) -> list[str]:
        """Names of the traces ``guid`` declares."""
        return sorted(self._rm(guid)._trace_table)

    async def trace_async(self, guid: int, name: str, attr: TraceAttr | str = TraceAttr.ALL,
                          block: int = 512, offset: int = 0,
                          timeout: float | None = None) -> str | bytes | int:
        """Read a trace: ALL (content), STREAM (``block`` bytes at block ``offset``), PATH, SIZE.

        ``block`` is an int in ``[1, 2**30]`` and ``offset`` an int >= 0, in every mode.
        """
        rm = self._rm(guid)
        rm._check_trace(name)
        attr = as_trace_attr(attr)
        check_stream(block, offset)
        check_timeout(timeout)
        if self._closed:  # collected traces stay readable from the run directory
            return await rm.read_trace(name, attr, block, offset)
        return await self._runner.run_async(self._with_timeout(
            rm.read_trace(name, attr, block, offset), timeout, f"trace {name!r}", [rm], S.NEW, False))

    def trace(self, guid: int, name: str, attr: TraceAttr | str = TraceAttr.ALL,
              block: int = 512, offset: int = 0, timeout: float | None = None) -> str | bytes | int:
        """Read a trace (see :meth:`trace_async`)."""
        rm = self._rm(guid)
        rm._check_trace(name)
        attr = as_trace_attr(attr)
        check_stream(block, offset)
        check_timeout(timeout)
        # a collected trace needs no loop: read on this thread (how the answer stays
        # whole while the loop runs: ResourceManager._read_trace_here)
        here = rm._read_trace_here(name, attr, block, offset)
        if here is not None:
            return here
        if self._closed:  # collected traces stay readable from the run directory
            return _run_on_a_new_loop(rm.read_trace(name, attr, block, offset))
        return self._sync(self.trace_async(guid, name, attr, block, offset, timeout), "trace")

    # == scheduling ==============================================================

    def schedule(self, date: str | float | _dt.datetime, callback: Callable[[], Any],
                 track: bool = False) -> int:
        """Call ``callback()`` in the controller's loop at ``date``; returns a task id.

        ``date`` is relative (``"2s"``) or absolute (a datetime or a 20-digit stamp).
        ``callback`` may be a plain function or a coroutine function.  With
        ``track=True`` the task stays available through :meth:`get_task`.
        """
        self._check_open("schedule")
        if not callable(callback):
            raise InvalidInputError(f"callback must be callable, not {callback!r}")
        _check_no_arguments(callback)
        when = parse_date(date, time.time())
        with self._lock:
            task_id = self._next_task_id
            self._next_task_id += 1
        import datetime as _dt

        task = ScheduledTask(task_id, _dt.datetime.fromtimestamp(when), callback)
        if track:
            self._scheduled[task_id] = task

        def arm() -> None:
            self._runner.loop.call_later(max(0.0, when - time.time()), fire)

        def fire() -> None:
            try:
                result = callback()
            except BaseException as exc:  # noqa: BLE001 - a callback must not end the loop
                task.result, task.status = exc, TaskStatus.ERROR
                log.warning("scheduled task %s raised: %r", task_id, exc)
                return
            if asyncio.iscoroutine(result):
                async def finish() -> None:
                    try:
                        task.result, task.status = await result, TaskStatus.DONE
                    except asyncio.CancelledError:
                        raise
                    except BaseException as exc:  # noqa: BLE001 - a callback must not end the loop
                        task.result, task.status = exc, TaskStatus.ERROR
                        log.warning("scheduled task %s raised: %r", task_id, exc)
                self._spawn(finish())
            else:
                task.result, task.status = result, TaskStatus.DONE

        self._runner.call_soon(arm)
        return task_id

    def get_task(self, tid: int) -> ScheduledTask:
        """A task made by ``schedule(..., track=True)``."""
        try:
            return self._scheduled[tid]
        except (KeyError, TypeError):
            raise InvalidInputError(f"no tracked task {tid!r} (schedule it with track=True)") from None

    # == looking at it ===========================================================

    def state(self, guid: int, hr: bool = False) -> ResourceState | str:
        """The state of ``guid``; its name when ``hr`` is True."""
        # on the calling thread: the loop thread replaces ``_state`` in one assignment
        # (a state change), so one read sees the state before or after it, never a mix
        state = self._rm(guid)._state
        return state.name if hr else state

    def get_state_time(self, guid: int, state: ResourceState | str) -> _dt.datetime | None:
        """When ``guid`` last entered ``state`` (None if never)."""
        return self._rm(guid).state_time(as_state(state))

    def explain(self, guid: int) -> str:
        """In words: where the resource is and, if it has not started, what it waits for."""
        rm = self._rm(guid)
        state = rm._state
        name = rm.name
        head = f"resource {guid}{f' {name!r}' if name else ''} ({rm._rtype}) is {state.name}"
        parts = []
        if rm.failure is not None:
            parts.append(str(rm.failure))
        if state == S.NEW and not rm._deploying:
            parts.append("not deployed yet: call ec.deploy()")
        elif state < S.READY and rm._step is None and rm._waiting is None and rm.failure is None:
            parts.append("deploying: it discovers and provisions, then is READY")
        if state < S.READY and rm.failure is None:  # what comes next, before it waits for it
            if state == S.NEW and rm._waiting is None:
                parts.extend(self._unmet(rm, A.DEPLOY))
            parts.extend(f"then {text}" for text in self._unmet(rm, A.START))
        if rm._step is not None:
            since = rm._times[state]
            parts.append(f"running its {rm._step} step (in {state.name} for "
                         f"{format_delay((time.monotonic_ns() - (since or time.monotonic_ns())) / 1e9)})")
        if rm._waiting is not None:
            parts.append(rm._waiting())
        if rm._stop_waiting is not None:
            parts.append("to STOP: " + rm._stop_waiting())
        if state in (S.STARTED, S.STOPPED, S.FINISHED) and not parts:
            parts.append(f"started at {rm.state_time(S.STARTED):%H:%M:%S.%f}"[:-3])
        if state == S.READY and not parts:
            parts.append("deployed; not started (start it with ec.start)")
        return head + (": " + "; ".join(parts) if parts else "")

    def graph(self) -> Any:
        """The experiment as a networkx ``MultiDiGraph``.

        Nodes are guids with attributes ``type``, ``state`` (ResourceState),
        ``state_name``, ``outcome`` and ``outcome_name`` (the state it was released
        from, once RELEASED: see :attr:`ResourceManager.outcome`), ``released``,
        ``critical``, ``attributes`` (every value), ``name`` (None unless set) and
        ``label`` (the name, else ``"<guid> <Type>"``).
        A connection is one edge with ``kind="connection"``; a condition "B START
        after A STARTED + 2 s" is an edge A -> B with ``kind="condition"``,
        ``action``, ``state``, ``delay`` (seconds) and ``label``.
        """
        import networkx as nx

        g = nx.MultiDiGraph(exp_id=self._exp_id, run_id=self._run_id)
        rms = list(self._resources.values())
        for rm in rms:
            state = rm._state
            outcome = rm.outcome
            g.add_node(rm.guid, type=rm._rtype, state=state, state_name=state.name,
                       outcome=outcome, outcome_name=outcome.name, released=state == S.RELEASED,
                       critical=rm.critical, attributes=rm.get_attribute_values(), name=rm.name,
                       label=rm.label)
        for rm in rms:
            for other in sorted(rm._connections):
                if rm.guid < other and other in self._resources:
                    g.add_edge(rm.guid, other, kind="connection")
        for c in self._conditions:
            delay = f" +{format_delay(c.delay)}" if c.delay else ""
            for other in c.after:
                if other in self._resources and c.guid in self._resources:
                    g.add_edge(other, c.guid, kind="condition", action=c.action.name, state=c.state.name,
                               delay=c.delay, label=f"{c.action.name} after {c.state.name}{delay}")
        return g

    def description(self) -> dict[str, Any]:
        """The experiment as written to ``experiment.json`` (see :mod:`nepi_lab.core.results`).

        What was built: types (declared attributes with defaults, traces, base type
        names, the module and package each comes from), resources (set attribute
        values, connections, enabled traces; secret attributes by name only, their
        values are never written), conditions, failures.  States and their times are
        not repeated here: ``events.jsonl`` has them.  :meth:`save` writes it without
        what belongs to the run.
        """
        rms = list(self._resources.values())
        return self._description(rms, [self._describe_resource(rm) for rm in rms])

    def _description(self, rms: list[ResourceManager], resources: Any) -> dict[str, Any]:
        """:meth:`description` of ``rms``, with ``resources`` as its "resources" value."""
        types = {}
        for cls in {type(rm) for rm in rms}:
            types[cls._rtype] = {
                "help": cls._help,
                "bases": cls.get_bases(),
                "long_lived": cls._long_lived,
                "attributes": {
                    name: {"type": a.type.value, "default": a.default, "flags": int(a.flags),
                           "allowed": list(a.allowed) if a.allowed else None, "help": a.help}
                    for name, a in cls._attribute_table.items()
                },
                "traces": {name: {"help": t.help, "enabled": t.enabled}
                           for name, t in cls._trace_table.items()},
                "origin": type_origin(cls),
            }
        return {
            "format": RUN_FORMAT_NAME,
            "version": RUN_FORMAT,
            "events_format": EVENT_FORMAT,
            "exp_id": self._exp_id,
            "run_id": self._run_id,
            "ecstate": self._ecstate.name,
            "end": self._end,
            "saved": time.time(),
            **({"parameters": dict(self._parameters)} if self._parameters else {}),
            "types": dict(sorted(types.items())),
            "resources": resources,
            "conditions": [c.to_dict() for c in self._conditions],
            "failures": [f.to_dict() for f in self._failures],
        }

    def _describe_resource(self, rm: ResourceManager) -> dict[str, Any]:
        # keys are left out when empty or as declared (traces): a run may hold 100,000
        entry: dict[str, Any] = {"guid": rm.guid, "type": rm._rtype}
        secret = rm._secret_attributes
        unset = self._secrets_to_set.get(rm.guid) if self._secrets_to_set else None
        if rm._values:
            values = dict(rm._values)  # a copy: set() may run in another thread
            if secret and not secret.isdisjoint(values):  # never written in clear: named only
                unset = sorted({*(unset or ()), *(name for name in values if name in secret)})
                values = {name: value for name, value in values.items() if name not in secret}
            if values:
                entry["attributes"] = values
        if unset:
            entry["secrets"] = list(unset)
        if rm._connections:
            entry["connections"] = sorted(rm._connections)
        if rm._enabled_traces is not rm._default_traces and rm._enabled_traces != rm._default_traces:
            entry["traces"] = sorted(rm._enabled_traces)
        return entry

    # == experiments as files ==================================================

    def save(self, path: str | os.PathLike[str] | None = None) -> str:
        """Write the experiment as a JSON file; returns the file's absolute path.

        Parameters
        ----------
        path : str or path, optional
            A file name, or a folder to write ``<exp_id>.json`` in.  Default, as in
            NEPI: the run directory.

        The file is the run directory's ``experiment.json`` without what belongs to one
        run (format ``"nepi_lab.experiment"``, see :mod:`nepi_lab.core.results`): the
        types (with the module and package each comes from), the resources with their
        guids and set attributes (a ``name`` too), connections, conditions with their
        exact delays and enabled traces.  Secret values (``Flags.NoRead``,
        ``Flags.Credential``) are never written, only their names; values a resource
        sets itself (``Flags.NoWrite``) are left out.  Saving the same experiment
        gives the same bytes, also after :meth:`load`.

        Example
        -------
        >>> path = ec.save("ping.json")                     # doctest: +SKIP
        >>> again = ExperimentController.load(path)         # doctest: +SKIP

        Allowed after :meth:`shutdown` too: it writes what was recorded.
        """
        from . import files  # here: only saving and loading need it

        return files.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> ExperimentController:
        """A new controller holding the experiment of ``path``, NEW and ready to :meth:`deploy`.

        Parameters
        ----------
        path : str or path
            A file written by :meth:`save`, a run directory (``<results>/<exp_id>/<run_id>``)
            or its ``experiment.json``: that run's experiment is built again for a new run.
        **kwargs
            Passed to the constructor: ``exp_id`` (default: the file's), ``local_dir``.

        The guids, names, attribute values, connections, conditions (with their delays)
        and enabled traces are the file's.  A run's values that its resources set
        themselves (``Flags.NoWrite``) are not loaded; secret attributes the file names
        are left unset, with a warning in the ``nepi_lab`` log: set them with
        :meth:`set` before deploying (saving again still names them).

        Raises
        ------
        ExperimentFileError
            The file cannot be read, is not valid JSON, is not a nepi_lab experiment,
            holds a value of the wrong kind (named by place, ``resources[2].type``: the
            checks of the run-directory reader, so what ``nepi-lab show`` refuses,
            ``load`` refuses too), or a value, connection or condition the controller
            refuses (``.error`` is the typed error behind it, e.g. an
            :class:`AttributeValueError`).
            Subclasses: :class:`ExperimentVersionError` (a newer format: upgrade),
            :class:`ExperimentTypeError` (a type not installed: what to install or
            import), :class:`ExperimentAttributeError` (an attribute the installed type
            does not declare).  Nothing is left behind: no controller, no run directory.
        """
        from . import files

        return files.load(path, cls, **kwargs)

    def to_script(self, deploy: bool = False, timeout: float = 60) -> str:
        """A readable Python script that rebuilds this experiment (see :mod:`nepi_lab.core.script`).

        Running it gives a controller named ``ec`` with the same :meth:`description`
        (but for the run).  With ``deploy=True`` it also deploys, waits ``timeout``
        seconds at most for the end, prints the ``stdout`` traces and shuts down (what
        the builder's "Show code" prints); by default it stops once the experiment is
        built.  Secret values are not written (a comment names them).
        """
        from . import script  # here: only this needs it

        return script.experiment_script(self, deploy=deploy, timeout=timeout)

    def write_graphml(self, path: str | os.PathLike[str]) -> str:
        """Write :meth:`graph` as GraphML for Gephi, yEd or ``networkx.read_graphml``; returns the path.

        GraphML holds only booleans, numbers and text, so: states are their names,
        unset values (None) are left out, each attribute of a resource is a key of
        its own (``attribute.count``), and other lists and dicts are JSON text (see
        :func:`nepi_lab.core.files.graphml_graph`).  Read it back with
        ``networkx.read_graphml(path, node_type=int)``: node ids are the guids.
        """
        from . import files

        return files.write_graphml(self, path)

    def _description_text(self) -> Iterator[str]:
        """The JSON text of :meth:`description`, piece by piece, as ``write_json_atomic``
        would write it: a resource with nothing but its guid and type (most, in a large
        experiment) is written without a dict of its own, a chunk of resources in one
        formatting."""
        rms = list(self._resources.values())
        head, tail = json.dumps(self._description(rms, _RESOURCES_MARK), separators=(",", ":"),
                                default=str).split(_RESOURCES_MARK_JSON, 1)
        yield head + "["
        formats: dict[str, str] = {}  # type name -> the text of its plain resources, %d for the guid
        secrets_to_set = self._secrets_to_set
        for start in range(0, len(rms), _CHUNK):
            parts: list[str] = []  # each resource's text, a plain one's guid as %d
            guids: list[int] = []
            for rm in rms[start:start + _CHUNK]:
                if (rm._values or rm._connections or rm._enabled_traces is not rm._default_traces
                        or (secrets_to_set and rm.guid in secrets_to_set)):
                    text = json.dumps(self._describe_resource(rm), separators=(",", ":"), default=str)
                    parts.append(text.replace("%", "%%"))
                    continue
                form = formats.get(rm._rtype)
                if form is None:
                    type_text = json.dumps(rm._rtype).replace("%", "%%")
                    form = formats[rm._rtype] = '{"guid":%d,"type":' + type_text + "}"
                parts.append(form)
                guids.append(rm.guid)
            yield ("," if start else "") + ",".join(parts) % tuple(guids)
        yield "]" + tail

    def _save_soon(self) -> None:
        """The save of the description after a ``deploy()`` or a ``release()``.

        At once -- unless these calls come faster than the description is written (a loop
        of ``deploy(guid)`` or ``release(guid)`` calls, each write longer as the experiment
        grows, made their loop O(n²)): the next write at once waits until ten times what the
        last one took has passed, and a call that comes earlier leaves the write to the loop
        then.  The writes so take at most a tenth of the time, and the file is at most that
        late (events are flushed late too, see ``_FLUSH_DELAY``).
        """
        with self._lock:
            now = time.monotonic()
            if now >= self._next_save:
                self._save_timed()
            elif not self._save_scheduled:
                self._save_scheduled = True
                self._runner.call_later(self._next_save - now, self._save_deferred)

    def _save_deferred(self) -> None:
        with self._lock:
            self._save_scheduled = False
            if not self._closed:  # else the last description was written when the run closed
                self._save_timed()

    def _save_timed(self) -> None:
        start = time.monotonic()
        self._save_description()
        end = time.monotonic()
        self._next_save = end + 10 * (end - start)

    def _save_description(self) -> None:
        try:
            with self._lock:  # deploy() (caller's thread) and release (loop thread) both save
                write_text_atomic(os.path.join(self._run_dir, DESCRIPTION), self._description_text())
        except OSError as exc:  # a full disk must not take the experiment down
            log.warning("could not save the experiment description: %s", exc)


def _refuse_two_names(rm: ResourceManager, attributes: dict[str, Any]) -> None:
    """Refuse ``register_resource(..., identity=a, identityFile=b)``: two names of one attribute
    (an alias and its attribute) would leave the value to their order."""
    seen: dict[str, str] = {}
    for name in attributes:
        alias = rm._alias_table.get(name)
        canonical = alias.attribute if alias is not None else name
        if canonical in seen:
            raise InvalidInputError(
                f"{rm._rtype}: {seen[canonical]!r} and {name!r} are two names of attribute {canonical!r}; "
                f"give one")
        seen[canonical] = name


def _check_no_arguments(callback: Callable[..., Any]) -> None:
    """Refuse, at ``schedule``, a callback that cannot be called without arguments
    (it would only fail when its date comes)."""
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # some builtins have none: nothing to check
        return
    try:
        signature.bind()
    except TypeError as exc:
        raise InvalidInputError(
            f"callback {callback!r} must be callable without arguments ({exc}); "
            f"wrap it, e.g. functools.partial(f, x) or lambda: f(x)") from None


def _run_on_a_new_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end on a new event loop: here, or in a short-lived thread when
    this thread already runs a loop (a notebook cell), where ``asyncio.run`` refuses."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nepi_lab-read") as pool:
        return pool.submit(asyncio.run, coro).result()


def _forget_task(rm: ResourceManager) -> None:
    """Drop ``rm``'s reference to the running task (a done task keeps its coroutine)."""
    if rm._task is asyncio.current_task():
        rm._task = None


def _time_getter(state: ResourceState,
                 verb: str) -> Callable[[ExperimentController, int], _dt.datetime | None]:
    def getter(self: ExperimentController, guid: int) -> _dt.datetime | None:
        return self._rm(guid).state_time(state)

    getter.__name__ = f"get_{verb}_time"
    getter.__doc__ = f"When ``guid`` last became {state.name} (a datetime, or None if never)."
    return getter


for _state, _verb in (
    (S.NEW, "register"), (S.DISCOVERED, "discover"), (S.RESERVED, "reserve"),
    (S.PROVISIONED, "provision"), (S.READY, "ready"), (S.STARTED, "start"), (S.STOPPED, "stop"),
    (S.FINISHED, "finish"), (S.FAILED, "failed"), (S.RELEASED, "release"),
):
    setattr(ExperimentController, f"get_{_verb}_time", _time_getter(_state, _verb))


_exit_hooks: list[Callable[[], None]] = []


def call_at_exit(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` at interpreter exit, after every controller was shut down.

    For back ends: a last safety net (kill what an orderly release could not) that
    runs after the orderly release, whatever the order the modules were imported in.
    """
    _exit_hooks.append(callback)
    return callback


def _release_then_die(signum: int, frame: Any) -> None:
    """SIGTERM while a controller lives: release what the experiments started (as at
    interpreter exit), then die of the signal, as its default action would have."""
    try:
        _release_at_exit(end="signal")
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _release_on_sigterm_while_live() -> None:
    """Make SIGTERM release everything before it kills, while controllers live (its
    default kills the interpreter at once, leaving every process the experiment
    started running).

    Only from the main thread, and only over the default action: a program (or a
    Jupyter kernel, whose controllers use its loop instead) that handles SIGTERM
    itself keeps its handler.  :meth:`ExperimentController.shutdown` of the last
    live controller puts the default back.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _release_then_die)
    except (ValueError, OSError):  # pragma: no cover - no signals here (embedded interpreter)
        pass


def _default_sigterm_again() -> None:
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is _release_then_die:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@atexit.register
def _release_at_exit(end: str = "exit") -> None:
    """Nothing a run started outlives the interpreter; each run records how it ended.

    While it releases, Ctrl-C is ignored (a second Ctrl-C would leave processes and
    uncollected traces behind); each controller's release is bounded by 30 s.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = None
    if main and _live_controllers:
        with contextlib.suppress(ValueError, OSError):
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for ec in list(_live_controllers):
            try:
                ec._close(30, end)
            except BaseException as exc:  # noqa: BLE001 - best effort at exit: the next one goes on
                log.warning("could not shut down experiment %s at exit: %r", ec.exp_id, exc)
                with contextlib.suppress(Exception):
                    ec._stop_loop()
    finally:
        for callback in _exit_hooks:
            try:
                callback()
            except BaseException as exc:  # noqa: BLE001 - best effort at exit
                log.warning("exit hook %r failed: %r", callback, exc)
        if previous is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGINT, previous)
