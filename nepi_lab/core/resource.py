"""The base class of every resource type, and how to write a new one.

Writing a resource type
-----------------------
Subclass :class:`ResourceManager`, give it a type name, declare attributes and
traces in the class body, and override the lifecycle hooks you need; every hook is
a coroutine and every hook is optional::

    class Sleeper(ResourceManager):
        _rtype = "demo::Sleeper"                      # registers the type by name
        _help = "Sleeps, then finishes."
        _attributes = (Attribute("seconds", "how long", type=Types.Double, default=1.0),)
        _traces = (Trace("log", "what it did", enabled=True),)

        async def do_provision(self):                 # deploy: discover, provision, READY
            node = self.get_connected("demo::Node")[0]
            await self.wait_for(node, ResourceState.READY)   # shown by ec.explain()

        async def do_run(self):                       # after STARTED; return -> FINISHED,
            await asyncio.sleep(self.get("seconds"))  # raise -> FAILED, stop -> STOPPED
            with open(self.trace_path("log"), "w") as f:
                f.write("slept\\n")

Attribute and trace declarations are inherited: a subclass lists only what it adds
or redeclares (by name).  So is ``_connects_to``, the type names a type may be
connected to (see :meth:`ResourceManager.accepts_type`); a type that declares none
accepts any connection.  A type with no ``do_run`` is long-lived (a node, a link):
it stays STARTED until stopped, and counts as done for ``wait_finished`` once started.

Hooks should be coroutines.  A plain ``def`` hook (ported NEPI code that blocks) is
accepted and runs in a thread (at most ``EXECUTOR_THREADS`` at a time, whatever the
number of resources), so it cannot stall the event loop; one that never returns is
abandoned at release or shutdown instead of holding them up.

Hooks, in lifecycle order: ``do_discover``, ``do_reserve``, ``do_provision``,
``do_configure`` (then READY), ``do_start`` (then STARTED), ``do_run``, ``do_stop``
(then STOPPED), ``do_release`` (then RELEASED).  An exception in any hook fails the
resource, with the exception's data in its :class:`Failure` record.
"""

from __future__ import annotations

import asyncio
import dis
import enum
import functools
import inspect
import logging
import os
import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .attributes import Alias, Attribute, Flags, Types, is_secret
from .display import view
from .errors import (
    ReadOnlyAttributeError,
    ResourceFailedError,
    UnknownAttributeError,
    UnknownTraceError,
    UnreachableStateError,
)
from .registry import get_resource_type, register_type
from .states import TRANSITIONS, ResourceState
from .traces import Trace, TraceAttr, check_name, read_trace_file

if TYPE_CHECKING:
    import datetime as _dt  # imported where a datetime is made (~1 ms)

    from .controller import ExperimentController

log = logging.getLogger("nepi_lab")
S = ResourceState
_PROGRESS_MAX = S.FINISHED
# The states the hot paths use, as module globals: on Python 3.11 reading an enum
# member as a class attribute (``S.NEW``) costs 100 ns, a global 20 ns, and every
# state change of every resource reads a few.
_NEW, _READY, _STARTED, _FAILED, _RELEASED = S.NEW, S.READY, S.STARTED, S.FAILED, S.RELEASED
_FINISHED_STATE = S.FINISHED  # (_FINISHED, below, is its int)

#: Pseudo-state for ``wait_finished``: the work is over (any end), or, for a
#: long-lived resource (a node), it has started.
DONE = -1


class Failure(NamedTuple):
    """Why a resource failed: frozen, with everything needed to act on it."""

    guid: int
    rtype: str
    step: str  #: the lifecycle step that failed: discover, provision, start, run, ...
    state: ResourceState  #: the state the resource was in when it failed
    error: str  #: the exception's type name
    message: str  #: the exception's message
    time: float  #: wall-clock time, seconds since the epoch
    critical: bool  #: whether it failed the experiment
    command: str | None = None  #: the failing command, when a command failed
    returncode: int | None = None  #: its exit status
    stderr_tail: str | None = None  #: the end of its standard error

    def __str__(self) -> str:
        text = f"resource {self.guid} ({self.rtype}) failed in {self.step}: {self.error}: {self.message}"
        return text if self.critical else text + " (non-critical)"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        d = self._asdict()
        d["state"] = self.state.name
        return d


class TopologyRole(str, enum.Enum):
    """What a resource type is in a network topology, for topology views.

    A type declares it in its class body (``_topology_role = TopologyRole.HOST``) and
    subclasses inherit it; a type without one is not part of a topology.  Views draw
    hosts and switches as nodes, links as edges between the hosts and switches their
    ends belong to, interfaces as the addresses written at an edge's end,
    applications as small markers on their host, and routes not at all, so a new
    network back end is drawn without the views naming its types.

    Example
    -------
    >>> class Tap(ResourceManager):                                   # doctest: +SKIP
    ...     _rtype = "mynet::Tap"
    ...     _topology_role = TopologyRole.INTERFACE
    ...     _topology_labels = (("address", "{}"),)
    """

    HOST = "host"  # a machine or a namespace that runs applications: a node
    SWITCH = "switch"  # joins links at layer 2: a node
    LINK = "link"  # joins two ends (interfaces, switches or hosts): an edge
    INTERFACE = "interface"  # a link's end on a host: its addresses label that end
    ROUTE = "route"  # a route on a host: not drawn
    APPLICATION = "application"  # runs on the host it is connected to: a marker on it


class ResourceManager:
    """Base class of every resource type (NEPI's ``ResourceManager``).

    A resource is created by ``ec.register_resource(type_name)``, never directly.
    Subclasses declare ``_rtype``, ``_help``, ``_platform``, ``_attributes`` and
    ``_traces`` and override the ``do_*`` hooks; see the module docstring.
    """

    _rtype: str = ""
    _help: str = ""
    _platform: str = ""
    _attributes: tuple[Attribute, ...] = (
        Attribute("name", "a label for people (\"server\", \"client 1\"), shown by the graph, the tables, "
                  "explain and the frames; the guid stays the identity"),
        Attribute("critical", "a failure of this resource fails the whole experiment",
                  type=Types.Bool, default=True, flags=Flags.Design),
        Attribute("hardRelease", "on release, remove the resource from the controller",
                  type=Types.Bool, default=False, flags=Flags.Design),
    )
    _traces: tuple[Trace, ...] = ()
    #: Other names of declared attributes (NEPI's), merged with those of its bases; see :class:`Alias`.
    _aliases: tuple[Alias, ...] = ()
    #: Type names this type may be connected to (their subtypes too), merged with
    #: those of its bases; none declared: any type (see :meth:`accepts_type`).
    _connects_to: tuple[str, ...] = ()
    #: What the type is in a network topology (None: not part of one); see :class:`TopologyRole`.
    _topology_role: TopologyRole | None = None
    #: Attributes a topology view writes beside the resource, each with a format:
    #: ``(("rate", "{}"), ("loss", "{}% loss"))``; unset ones are left out.
    _topology_labels: tuple[tuple[str, str], ...] = ()

    #: Filled by ``__init_subclass__``: every attribute / trace / connection type, inherited included.
    _attribute_table: dict[str, Attribute] = {a.name: a for a in _attributes}
    _alias_table: dict[str, Alias] = {}
    _trace_table: dict[str, Trace] = {}
    _connection_types: tuple[str, ...] = ()
    _type_names: frozenset[str] = frozenset()  # its own type name and those of its bases
    #: Long-lived resources (no ``do_run``) stay STARTED until stopped.
    _long_lived: bool = True
    _hooks: frozenset[str] = frozenset()
    #: ``do_run`` is a coroutine function that never awaits: the controller runs it in
    #: place, without a task of its own (see :func:`_cannot_suspend`).
    _run_cannot_suspend: bool = False
    _default_traces: frozenset[str] = frozenset()
    #: Attributes whose values are never written out (``Flags.NoRead``, ``Flags.Credential``).
    _secret_attributes: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        attributes: dict[str, Attribute] = {}
        traces: dict[str, Trace] = {}
        connects_to: dict[str, None] = {}  # ordered set
        aliases: dict[str, Alias] = {}
        for base in reversed(cls.__mro__):
            for a in base.__dict__.get("_attributes", ()):
                attributes[a.name] = a
                aliases.pop(a.name, None)  # a real attribute declared below an alias replaces it
            for alias in base.__dict__.get("_aliases", ()):
                aliases[alias.name] = alias
            for t in base.__dict__.get("_traces", ()):
                traces[t.name] = t
            declared = base.__dict__.get("_connects_to", ())
            if isinstance(declared, str):
                raise TypeError(f"{cls.__qualname__}._connects_to must be a tuple of type names, "
                                f"not the string {declared!r}")
            connects_to.update(dict.fromkeys(declared))
        for alias in aliases.values():
            if alias.attribute not in attributes:
                raise TypeError(f"{cls.__qualname__}: alias {alias.name!r} stands for {alias.attribute!r}, "
                                f"which is not a declared attribute")
            if alias.name in attributes:
                raise TypeError(f"{cls.__qualname__}: alias {alias.name!r} is also the name of an attribute")
        cls._attribute_table = attributes
        cls._alias_table = aliases
        cls._secret_attributes = frozenset(name for name, a in attributes.items() if is_secret(a))
        cls._trace_table = traces
        cls._connection_types = tuple(connects_to)
        cls._type_names = frozenset(base.__dict__["_rtype"] for base in cls.__mro__
                                    if base.__dict__.get("_rtype"))
        cls._default_traces = frozenset(t.name for t in traces.values() if t.enabled)
        for name in _HOOKS:  # a legacy synchronous hook runs in the controller's bounded pool
            hook = cls.__dict__.get(name)
            if hook is not None and not inspect.iscoroutinefunction(hook):
                setattr(cls, name, _in_pool(hook))
        cls._hooks = frozenset(
            name for name in _HOOKS if getattr(cls, name) is not getattr(ResourceManager, name)
        )
        if "_long_lived" not in cls.__dict__:
            cls._long_lived = "do_run" not in cls._hooks
        cls._run_cannot_suspend = "do_run" in cls._hooks and _cannot_suspend(cls.do_run)
        if cls.__dict__.get("_rtype"):
            register_type(cls)

    __slots__ = (
        "ec", "guid", "_values", "_state", "_times", "_progress", "_ended_at", "_watchers",
        "_conditions", "_connections", "_enabled_traces", "failure", "_deploying", "_task",
        "_running", "_stopping", "_step", "_waiting", "_stop_waiting", "_stop_task",
        "_release_task", "_dependents", "_group", "_results_dir", "__weakref__",
    )

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        # Containers start as shared empty constants and are made per resource on
        # first write: an experiment may hold 100,000 resources.
        self.ec = ec
        self.guid = guid
        self._values: dict[str, Any] = _EMPTY_DICT
        self._state = _NEW
        # monotonic time each state was last entered, in ns, 0 for never: raw integers, no objects
        self._times = _NO_TIMES[:]
        self._times[0] = _monotonic_ns()
        self._progress = _NEW
        self._ended_at: int | None = None  # monotonic ns
        # (target, callback) pairs, in a tuple (often shared, see _watch_all) or a list
        self._watchers: Any = None
        self._conditions: dict[Any, list[Any]] = _EMPTY_DICT
        self._connections: set[int] | frozenset[int] = _EMPTY_SET
        self._enabled_traces: frozenset[str] | set[str] = self._default_traces
        self.failure: Failure | None = None
        self._deploying = False
        self._task: asyncio.Task[Any] | None = None
        self._running: asyncio.Task[Any] | None = None
        self._stopping = False
        self._step: str | None = None
        self._waiting: Callable[[], str] | None = None
        self._stop_waiting: Callable[[], str] | None = None
        self._stop_task: asyncio.Task[Any] | None = None
        self._release_task: asyncio.Task[Any] | None = None
        self._dependents: set[int] | frozenset[int] = _EMPTY_SET
        self._group: Any = None
        self._results_dir: str | None = None

    @property
    def connections(self) -> frozenset[int]:
        """Guids of the connected resources."""
        return frozenset(self._connections)

    @property
    def conditions(self) -> dict[Any, list[Any]]:
        """This resource's conditions, by action (a copy)."""
        return {action: list(conds) for action, conds in self._conditions.items()}

    def _connect(self, guid: int) -> None:
        if self._connections is _EMPTY_SET:
            self._connections = set()
        self._connections.add(guid)  # type: ignore[union-attr]

    def _add_condition(self, condition: Any) -> None:
        if self._conditions is _EMPTY_DICT:
            self._conditions = {}
        self._conditions.setdefault(condition.action, []).append(condition)

    def _add_dependent(self, guid: int) -> None:
        if self._dependents is _EMPTY_SET:
            self._dependents = set()
        self._dependents.add(guid)  # type: ignore[union-attr]

    def _enable_trace(self, name: str) -> None:
        if not isinstance(self._enabled_traces, set):
            self._enabled_traces = set(self._enabled_traces)
        self._enabled_traces.add(name)

    def _watch(self, target: int, callback: Callable[[ResourceManager, bool], None]) -> None:
        """Call ``callback(self, reached)`` once ``target`` is reached or unreachable."""
        self._watch_all(((target, callback),))

    def _watch_all(self, watchers: tuple[tuple[int, Callable[[ResourceManager, bool], None]], ...]) -> None:
        """:meth:`_watch` for each ``(target, callback)`` of ``watchers``: a tuple, which may be
        shared by many resources (a wait for 100,000 makes no object per resource)."""
        if self._watchers is None:
            self._watchers = watchers
        else:
            self._watchers = [*self._watchers, *watchers]

    # -- identity ---------------------------------------------------------------

    @classmethod
    def get_rtype(cls) -> str:
        """The type name, e.g. ``"linux::Application"``."""
        return cls._rtype

    @classmethod
    def get_bases(cls) -> list[str]:
        """Type names of the registered types this one derives from, nearest first."""
        return [base._rtype for base in cls.__mro__[1:]
                if issubclass(base, ResourceManager) and base.__dict__.get("_rtype")]

    @classmethod
    def get_help(cls) -> str:
        """The type's help text."""
        return cls._help

    @classmethod
    def get_topology_role(cls) -> TopologyRole | None:
        """What the type is in a network topology, or None (see :class:`TopologyRole`)."""
        return cls._topology_role

    @classmethod
    def get_topology_labels(cls) -> tuple[tuple[str, str], ...]:
        """``(attribute, format)`` pairs a topology view writes beside the resource."""
        return cls._topology_labels

    @classmethod
    def get_attribute_declarations(cls) -> dict[str, Attribute]:
        """Every declared attribute (inherited included), by name."""
        return dict(cls._attribute_table)

    @classmethod
    def get_attribute_aliases(cls) -> dict[str, Alias]:
        """Every alias (inherited included), by its name: other names of declared attributes."""
        return dict(cls._alias_table)

    @classmethod
    def get_trace_declarations(cls) -> dict[str, Trace]:
        """Every declared trace (inherited included), by name."""
        return dict(cls._trace_table)

    @classmethod
    def get_connection_types(cls) -> list[str]:
        """Type names this type may be connected to (declared in ``_connects_to``, inherited
        included; their subtypes are accepted too).  Empty: the type accepts any connection."""
        return list(cls._connection_types)

    @classmethod
    def accepts_type(cls, other: type[ResourceManager]) -> bool:
        """Whether the declarations allow connecting a resource of this type to one of ``other``.

        True when this type declares no ``_connects_to``, when ``other`` is (a subtype
        of) a type it names, or when ``other`` names this type (or one of its bases)
        in its own ``_connects_to``: so a plug-in type that declares
        ``_connects_to = ("linux::Node",)`` may be connected to a ``linux::Node``
        without changing ``linux::Node``.  The controller asks both types, then each
        resource's :meth:`valid_connection`.

        Example
        -------
        >>> from nepi_lab.core.registry import get_resource_type
        >>> node, app = get_resource_type("linux::Node"), get_resource_type("linux::Ping")
        >>> node.accepts_type(app), node.accepts_type(node)
        (True, False)
        """
        declared = cls._connection_types
        if not declared:
            return True
        theirs = other._type_names
        if any(name in theirs for name in declared):
            return True
        mine = cls._type_names
        return any(name in mine for name in other._connection_types)

    @property
    def state(self) -> ResourceState:
        """The current state; reading it never blocks or polls."""
        return self._state

    @property
    def outcome(self) -> ResourceState:
        """What the resource came to: its state, or once RELEASED, the state it was
        released from (FINISHED, FAILED, STOPPED, or the last state it reached).

        Views colour a resource by its outcome, so that what finished and what failed
        stays visible after the cleanup; ``state == RELEASED`` is the secondary mark.
        """
        if self._state != S.RELEASED:
            return self._state
        times = self._times
        return max((s for s in _BEFORE_RELEASE if times[s] is not None), key=times.__getitem__, default=S.NEW)

    @property
    def done(self) -> bool:
        """Whether ``ec.wait_finished`` would return for this resource: its work ended
        (stopped, finished, failed or released), or, being long-lived (a node), it started."""
        return self._status(DONE) > 0  # type: ignore[arg-type]

    @property
    def name(self) -> str | None:
        """The ``name`` attribute: a label for people, or None."""
        return self._values.get("name")

    @property
    def label(self) -> str:
        """How views name the resource: its ``name``, else ``"<guid> <Type>"``."""
        name = self._values.get("name")
        return name if name else f"{self.guid} {self._rtype.rsplit('::', 1)[-1]}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._rtype} guid={self.guid} {self._state.name}>"

    def _repr_html_(self) -> str | None:
        """Attributes, state and failure in Jupyter (the notebook layer builds it; None: plain repr)."""
        render = view("resource_html")
        return None if render is None else render(self)

    # -- attributes -------------------------------------------------------------

    def _declaration(self, name: str) -> Attribute:
        """The declaration of attribute ``name``, or of the attribute it is an alias of."""
        try:
            alias = self._alias_table.get(name)
            return self._attribute_table[alias.attribute if alias is not None else name]
        except (KeyError, TypeError):
            raise UnknownAttributeError(self.guid, self._rtype, name, self._attribute_table,
                                        self._alias_table) from None

    def get(self, name: str) -> Any:
        """The value of attribute ``name`` (its default when never set); ``name`` may be an alias."""
        declaration = self._declaration(name)
        return self._values.get(declaration.name, declaration.default)

    def set(self, name: str, value: Any, *, internal: bool = False) -> Any:
        """Check, normalise and store an attribute value; returns the stored value.

        ``name`` may be an alias (see :class:`~nepi_lab.core.attributes.Alias`): the value
        is stored under the attribute's own name.  ``internal=True`` is for the resource's
        own code: it bypasses the NoWrite and Design flags (a resource may record what it
        discovered).
        """
        declaration = self._declaration(name)
        name = declaration.name
        if not internal:
            if declaration.flags & Flags.NoWrite:
                raise ReadOnlyAttributeError(
                    self.guid, self._rtype, name, self._state, "it is read-only (set by the resource itself)"
                )
            if declaration.flags & Flags.Design and (self._deploying or self._state > S.NEW):
                raise ReadOnlyAttributeError(
                    self.guid, self._rtype, name, self._state,
                    f"it is a design attribute and the resource is already deployed ({self._state.name})",
                )
        value = declaration.check(value, self.guid, self._rtype)
        if declaration.set_hook is not None:
            value = declaration.set_hook(self, self.get(name), value)
        if self._values is _EMPTY_DICT:
            self._values = {}
        if value is None:
            self._values.pop(name, None)
        else:
            self._values[name] = value
        return value

    def get_attribute_values(self) -> dict[str, Any]:
        """Every attribute's current value, defaults included."""
        return {name: self._values.get(name, a.default) for name, a in self._attribute_table.items()}

    @property
    def critical(self) -> bool:
        """Whether a failure of this resource fails the experiment."""
        return bool(self._values.get("critical", True))

    # -- connections ------------------------------------------------------------

    def valid_connection(self, other: ResourceManager) -> bool | str:
        """Whether this resource may be connected to ``other``, beyond what the types allow.

        The controller first checks the types (:meth:`accepts_type`), then asks both
        resources; override this for rules about instances ("an application runs on
        one node").  Return True, or False / a string saying why not; when the types
        already refuse, a string returned here is added to the error as a hint.
        The default accepts any.
        """
        return True

    def get_connected(self, rtype: str | type[ResourceManager] | None = None) -> list[ResourceManager]:
        """Connected resources, optionally only those that are (subclasses of) ``rtype``."""
        resources = self.ec._resources
        connected = [resources[g] for g in sorted(self._connections) if g in resources]
        if rtype is None:
            return connected
        is_class = isinstance(rtype, type) and issubclass(rtype, ResourceManager)
        cls = rtype if is_class else get_resource_type(rtype)
        return [rm for rm in connected if isinstance(rm, cls)]

    async def wait_for(self, other: ResourceManager, state: ResourceState = S.READY) -> None:
        """Wait until ``other`` has reached ``state``; for use inside hooks.

        ``ec.explain`` shows the wait.  ``other`` is released after this resource.
        Raises :class:`UnreachableStateError` at once if ``other`` failed or can no
        longer reach ``state``, which fails this resource with that reason.
        """
        other._add_dependent(self.guid)
        if other._status(state) > 0:
            return
        state = ResourceState(state)

        def undeployed() -> bool:  # nothing will move it until someone deploys it
            return other._state == S.NEW and not other._deploying

        if undeployed():
            log.warning("resource %s (%s) waits for resource %s (%s), which is not deployed yet: it "
                        "goes on once that one is (call ec.deploy(%s))", self.guid, self._rtype,
                        other.guid, other._rtype, other.guid)
        self._waiting = lambda: (
            f"waits for resource {other.guid} ({other._rtype}, now {other._state.name}"
            f"{f', not deployed yet: call ec.deploy({other.guid})' if undeployed() else ''}) "
            f"to reach {state.name}"
        )
        try:
            await self.ec._await_states([other], state)
        finally:
            self._waiting = None

    def honours_condition(self, condition: Any) -> bool:
        """Whether this resource honours ``condition`` (one of its own) by itself.

        The controller then does not wait for it: the resource has folded it into
        what it does (an ns-3 application compiles a START condition on another
        application of its simulation into its simulated start time).  The default
        is False: the controller waits for every condition.  Asked when the
        controller is about to wait, so the answer may depend on the experiment's
        resources, not on this resource's state.
        """
        return False

    def fail(self, error: BaseException | str, step: str = "run") -> None:
        """Fail this resource from outside its hooks, e.g. when a watcher sees its host go.

        Call it from the controller's loop thread.  The failure policy applies as for
        a hook that raised: a critical resource fails the experiment.
        """
        exc = error if isinstance(error, BaseException) else ResourceFailedError(
            str(error), self.guid, self._rtype, self._state)
        self.ec._fail(self, step, exc)

    def record_problem(self, error: BaseException, step: str) -> None:
        """Record a problem that does not fail this resource, such as results that could
        not be written into the run directory (:class:`ResultsWriteError`).

        It goes to ``ec.failures`` and the run's ``experiment.json`` as a non-critical
        record; the resource's state and outcome stay its own.  Call it from the
        controller's loop thread.
        """
        self.ec._record_failure(self, step, error, critical=False)

    # -- traces ------------------------------------------------------------------

    def _check_trace(self, name: str) -> Trace:
        check_name(name, "trace name")
        try:
            return self._trace_table[name]
        except KeyError:
            raise UnknownTraceError(self.guid, self._rtype, name, self._trace_table) from None

    @property
    def results_dir(self) -> str:
        """This resource's folder in the run directory (created on first use)."""
        if self._results_dir is None:
            folder = os.path.join(self.ec.run_dir, f"{self.guid}-{self._rtype.replace('::', '.')}")
            try:  # one system call in the usual case: the run directory exists
                os.mkdir(folder)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
            self._results_dir = folder
        return self._results_dir

    def trace_path(self, name: str) -> str:
        """Where trace ``name`` is kept locally, in :attr:`results_dir`."""
        self._check_trace(name)
        return os.path.join(self.results_dir, name)

    def trace_enabled(self, name: str) -> bool:
        """Whether trace ``name`` is collected."""
        self._check_trace(name)
        return name in self._enabled_traces

    async def read_trace(self, name: str, attr: TraceAttr = TraceAttr.ALL,
                         block: int = 512, offset: int = 0) -> str | bytes | int:
        """Read a trace; the default reads the local file :meth:`trace_path`.

        Types whose traces live elsewhere (a remote host) override this.
        """
        return read_trace_file(self.trace_path(name), attr, block, offset)

    def _read_trace_here(self, name: str, attr: TraceAttr, block: int = 512,
                         offset: int = 0) -> str | bytes | int | None:
        """What :meth:`read_trace` answers, computed on the calling thread without the
        loop; None when only the loop can answer.

        :meth:`ExperimentController.trace` asks this first, from whatever thread
        calls it, while the loop thread may be running this resource's steps.  The path
        is computed from the run directory, fixed for the controller's life: answered at
        once.  The file itself (its size, its content) is read here only once the
        resource no longer runs (STOPPED, FINISHED, FAILED, RELEASED): before, a step in
        the loop may be writing it, and the loop's answer sees it between steps only.  A
        type whose traces live elsewhere overrides :meth:`read_trace`, and then this
        answers None unless the type overrides it too.
        """
        if type(self).read_trace is not ResourceManager.read_trace:
            return None  # its traces are read its own way
        if attr is TraceAttr.PATH:
            return self.trace_path(name)
        if self._state < ResourceState.STOPPED:
            return None
        return read_trace_file(self.trace_path(name), attr, block, offset)

    # -- the hooks (all optional) ------------------------------------------------

    async def do_discover(self) -> None:
        """Find the real thing behind the resource."""

    async def do_reserve(self) -> None:
        """Hold it for this experiment (only types that override it pass RESERVED)."""

    async def do_provision(self) -> None:
        """Put files, directories and builds in place."""

    async def do_configure(self) -> None:
        """Last step before READY."""

    async def do_start(self) -> None:
        """Start the work; return once it is started."""

    async def do_run(self) -> None:
        """The work itself, after STARTED: returning means FINISHED, raising FAILED."""

    async def do_stop(self) -> None:
        """Stop the work (``do_run`` is cancelled afterwards if still running)."""

    async def do_release(self) -> None:
        """Remove everything the resource made."""

    # -- state machine (driven by the controller) ---------------------------------

    def _set_state(self, new: ResourceState, detail: str | None = None,
                   sim_time: float | None = None) -> None:
        # hot path: 100,000 resources make 700,000 transitions; plain ints, no calls
        old = self._state
        if new not in TRANSITIONS[old]:
            raise RuntimeError(
                f"bug: resource {self.guid} ({self._rtype}) cannot go from {old.name} to {new.name}"
            )
        now = _monotonic_ns()
        self._state = new
        self._times[new] = now
        if new <= _FINISHED and new > self._progress:
            self._progress = new
        if new >= _STOPPED and self._ended_at is None:
            self._ended_at = now
        ec = self.ec
        ec.events.append_ns(now + ec._wall_offset_ns, self.guid, self._rtype, old, new, detail, sim_time)
        if self._watchers:
            self._notify()

    def _deploy_at_once(self) -> None:
        """NEW -> DISCOVERED -> PROVISIONED -> READY, for a resource with no deploy work.

        The same changes and events as three :meth:`_set_state` calls, recorded at once;
        the watchers are told once, after READY (what they wait for is reached either
        way: they settle alike).  With event subscribers (who may look at the state as
        each event comes), or for a type that redefines ``_set_state``: the three calls.
        """
        ec = self.ec
        if (self._state != _NEW or ec.events._subscribers
                or type(self)._set_state is not _BASE_SET_STATE):
            for state in _TO_READY:
                self._set_state(state)
            return
        times = self._times
        t1 = _monotonic_ns()
        t2 = _monotonic_ns()
        t3 = _monotonic_ns()
        times[1] = t1
        times[3] = t2
        times[4] = t3
        self._state = self._progress = _READY
        offset = ec._wall_offset_ns
        ec.events.append_three(self.guid, self._rtype, 0, _TO_READY, t1 + offset, t2 + offset, t3 + offset)
        if self._watchers:
            self._notify()

    def _start_quietly(self) -> bool:
        """READY -> STARTED, for a resource whose ``do_run`` the controller runs in place
        right after (see ``ExperimentController._run_in_place``): the change and its event
        as :meth:`_set_state` makes them, but the watchers are not told; the controller
        tells them once the run is over (:meth:`_finish_quietly`, then :meth:`_notify`),
        which settles them alike: what they wait for is reached either way, and nothing
        else runs in between.  False, with nothing done, with event subscribers (who may
        look at the state as each event comes), or for a type that redefines ``_set_state``.
        """
        ec = self.ec
        if (self._state != _READY or ec.events._subscribers
                or type(self)._set_state is not _BASE_SET_STATE):
            return False
        now = _monotonic_ns()
        self._state = self._progress = _STARTED
        self._times[_STARTED] = now
        ec.events.append_ns(now + ec._wall_offset_ns, self.guid, self._rtype, _READY, _STARTED)
        return True

    def _finish_quietly(self) -> None:
        """STARTED -> FINISHED after :meth:`_start_quietly` and the run: as :meth:`_set_state`,
        the watchers not told (the caller does)."""
        now = _monotonic_ns()
        self._state = self._progress = _FINISHED_STATE
        self._times[_FINISHED_STATE] = now
        if self._ended_at is None:
            self._ended_at = now
        ec = self.ec
        ec.events.append_ns(now + ec._wall_offset_ns, self.guid, self._rtype, _STARTED, _FINISHED_STATE)

    def _status(self, target: ResourceState) -> int:
        """1 if ``target`` was reached (one-shot: it cannot un-happen), -1 if it can
        no longer be, 0 if it may still be.

        Reaching a state means passing through it on the normal path.  STOPPED is
        reached by any end (stopped, finished, failed, released), as ``>= STOPPED``
        meant in NEPI; FINISHED, FAILED and RELEASED only by themselves.
        """
        if target == DONE:
            over = self._ended_at is not None or (self._long_lived and self._progress >= _STARTED)
            return 1 if over else 0
        if target <= _STARTED:
            if self._progress >= target:
                return 1
        elif target == _STOPPED:
            if self._ended_at is not None:
                return 1
        elif self._times[target]:
            return 1
        state = self._state
        if state == _RELEASED or (state == _FAILED and target != _RELEASED):
            return -1
        return 0

    def _reach_time(self, target: ResourceState) -> float:
        """Monotonic time (``time.monotonic()`` seconds) at which ``target`` was reached
        (see :meth:`_status`)."""
        if target == S.STOPPED:
            return self._ended_at / 1e9  # type: ignore[operator]
        t = self._times[target]
        if not t:  # passed over (RESERVED) : the next state reached stands for it
            t = min(x for x in self._times[target:] if x)
        return t / 1e9

    def _notify(self) -> None:
        watchers = self._watchers
        # the common case, one wait: its status asked once, whether it is settled or not
        if len(watchers) == 1:  # type: ignore[arg-type]
            target, callback = watchers[0]  # type: ignore[index]
            status = self._status(target)
            if status:
                self._watchers = None
                callback(self, status > 0)
            return
        # callbacks may add watchers to this very resource: start from a fresh list
        self._watchers = None
        for target, callback in watchers:  # type: ignore[union-attr]
            status = self._status(target)
            if status:
                callback(self, status > 0)
            else:
                self._watch(target, callback)

    def _unreachable(self, target: ResourceState) -> UnreachableStateError:
        return UnreachableStateError(self.guid, self._rtype, self._state, ResourceState(target), self.failure)

    def state_time(self, state: ResourceState) -> _dt.datetime | None:
        """When the resource last entered ``state`` (None if never)."""
        t = self._times[state]
        if not t:
            return None
        import datetime as _dt  # here: ~1 ms to import, which most runs never need

        # the time of its event (Event.time), to the nanosecond
        return _dt.datetime.fromtimestamp((t + self.ec._wall_offset_ns) / 1_000_000_000)


_monotonic_ns = time.monotonic_ns
_STOPPED, _FINISHED = int(S.STOPPED), int(S.FINISHED)
_EMPTY_DICT: dict[Any, Any] = {}  # shared; never written (see ResourceManager.__init__)
_EMPTY_SET: frozenset[Any] = frozenset()
_BASE_SET_STATE = ResourceManager._set_state
_NSTATES = len(ResourceState)
_NO_TIMES = array("q", bytes(8 * _NSTATES))  # copied by each resource: every state never entered
_TO_READY = (S.DISCOVERED, S.PROVISIONED, S.READY)
_BEFORE_RELEASE = tuple(s for s in ResourceState if s != S.RELEASED)

def on_controller_loop(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an ``async def`` method of a resource type that people await themselves
    (``await node.run("uname -r")`` in a notebook cell): it runs on the controller's
    loop, whatever loop awaits it; from the controller's own loop it is a plain call."""

    @functools.wraps(method)
    async def on_loop(self: ResourceManager, *args: Any, **kwargs: Any) -> Any:
        return await self.ec._runner.run_async(method(self, *args, **kwargs))

    return on_loop


_SUSPENDING_OPS = frozenset(
    dis.opmap[name] for name in ("GET_AWAITABLE", "GET_AITER", "GET_ANEXT", "BEFORE_ASYNC_WITH",
                                 "END_ASYNC_FOR", "YIELD_VALUE", "SEND") if name in dis.opmap)


def _cannot_suspend(hook: Callable[..., Any]) -> bool:
    """Whether ``hook`` is a plain ``async def`` whose body holds no ``await``, ``async for``
    or ``async with``: its coroutine then runs to its end in one step, so it needs no
    task (an instant resource's ``do_run``).  Wrapped or decorated hooks are not looked
    into (False: they get a task, as every hook did)."""
    if not inspect.iscoroutinefunction(hook) or not inspect.isfunction(hook):
        return False
    return not any(op in _SUSPENDING_OPS for op in hook.__code__.co_code[::2])


def _in_pool(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a plain ``def do_*(self)`` so it runs in the controller's bounded thread pool."""

    @functools.wraps(hook)
    async def run_in_pool(self: ResourceManager) -> Any:
        return await self.ec._runner.hooks.run(hook, self)

    return run_in_pool


_HOOKS = (
    "do_discover", "do_reserve", "do_provision", "do_configure",
    "do_start", "do_run", "do_stop", "do_release",
)
