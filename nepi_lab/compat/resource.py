"""NEPI's ``ResourceManager`` for resource types written the NEPI way (see :mod:`nepi_lab.compat`).

How the two lifecycles meet
---------------------------
The controller drives every resource the same way (deploy, start, stop, release).  For
a NEPI-style type it runs NEPI's blocking methods in a bounded pool of hook threads of
their own (:func:`nepi_threads` at a time, NEPI's 20 or ``NEPI_NTHREADS``; made when
the first NEPI-style hook runs, one per controller), never on its loop:

=========================  ===================================================
the controller's step      runs, in a hook thread
=========================  ===================================================
deploy (NEW -> READY)      ``do_deploy()`` (NEPI's base calls ``set_ready``); if it
                           returned without READY after asking for ``self.deploy``
                           again (``self.ec.schedule(delay, self.deploy)``), it
                           waits for that call and runs ``do_deploy()`` again
start (READY -> STARTED)   ``do_start()`` (the base calls ``set_started``)
stop (STARTED -> STOPPED)  ``do_stop()`` (the base calls ``set_stopped``)
release (-> RELEASED)      ``do_release()``
=========================  ===================================================

``set_discovered``, ``set_provisioned``, ``set_ready``, ``set_started`` and
``set_stopped`` change the state when they are called (the states skipped on the way
are entered at the same moment), so that other resources see them at once; a hook
that returns normally moves the resource on anyway, as our hooks do.  A hook that
raises fails the resource with the exception's message.

One rule settles every name NEPI and nepi_lab share: code running in a NEPI-style
hook sees NEPI's API (``self.do_discover()`` is NEPI's blocking method, ``self.node``
has NEPI's blocking ``execute``, ``upload``...), and everything else, the
controller's loop first, sees nepi_lab's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as _dt
import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ..core import registry as _registry
from ..core.attributes import Attribute as _Attribute
from ..core.attributes import Flags, Types
from ..core.errors import ResourceFailedError
from ..core.resource import ResourceManager as _NativeResourceManager
from ..core.states import ResourceAction, ResourceState
from ..core.traces import Trace, TraceAttr

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

S = ResourceState
T = TypeVar("T")
log = logging.getLogger("nepi_lab")

#: NEPI's default delay before a rescheduled step (``self.reschedule_delay``).
reschedule_delay = "0.5s"

#: NEPI's lifecycle methods: plain methods in a NEPI-style type.
LEGACY_HOOKS = ("do_discover", "do_reserve", "do_provision", "do_configure", "do_deploy",
                "do_start", "do_stop", "do_release")

#: The hooks the controller calls on a NEPI-style type (each runs a NEPI step).
_DRIVEN = frozenset({"do_discover", "do_start", "do_stop", "do_release"})

#: How many NEPI-style hooks a controller runs at once unless ``NEPI_NTHREADS`` says
#: otherwise: NEPI's own default (its ``ExperimentController._nthreads``).
NEPI_THREADS = 20


def nepi_threads() -> int:
    """How many NEPI-style hooks a controller runs at once: ``NEPI_NTHREADS`` (as NEPI
    read it, a positive integer) or :data:`NEPI_THREADS`.  Read when a controller runs
    its first NEPI-style hook; a value that is not a positive integer is ignored with a
    warning."""
    value = os.environ.get("NEPI_NTHREADS", "").strip()
    if not value:
        return NEPI_THREADS
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        log.warning("NEPI_NTHREADS=%r is not a positive integer: NEPI-style hooks run %d at a time",
                    value, NEPI_THREADS)
        return NEPI_THREADS
    return count


_here = threading.local()  # .rm: the NEPI-style resource whose hook this thread runs


def in_legacy_hook() -> bool:
    """Whether the calling thread runs a NEPI-style hook (and so sees NEPI's API)."""
    return getattr(_here, "rm", None) is not None


# -- declarations -------------------------------------------------------------------------


def Attribute(name: str, help: str, type: Types | str = Types.String, flags: Flags | int | None = None,
              default: Any = None, allowed: Any = None, range: tuple[Any, Any] | None = None,
              set_hook: Callable[[Any, Any], Any] | None = None) -> _Attribute:
    """NEPI's ``Attribute(name, help, type, flags, default, allowed, range, set_hook)``.

    Returns nepi_lab's :class:`~nepi_lab.core.attributes.Attribute`.  As in NEPI,
    ``flags=None`` means no flags, ``type`` may be NEPI's string (``"INTEGER"``) and
    ``set_hook(old, new)`` takes the old and new values (ours also gets the resource).
    The default is normalised to the type when it can be (``"22"`` for an Integer: 22).

    Example
    -------
    >>> a = Attribute("port", "a port", type=Types.Integer, default="22", flags=None)
    >>> a.default, a.flags
    (22, <Flags.NoFlags: 0>)
    """
    hook = None
    if set_hook is not None:
        def hook(rm: Any, old: Any, new: Any, _legacy: Callable[[Any, Any], Any] = set_hook) -> Any:
            return _legacy(old, new)
    declared = _Attribute(name, help, type=Types(type), flags=Flags(flags or 0), default=default,
                          allowed=allowed, range=range, set_hook=hook)
    try:
        normal = declared.check(default)
    except Exception:  # noqa: BLE001 - NEPI never checked defaults: keep it as written
        return declared
    return declared if normal is default else dataclasses.replace(declared, default=normal)


def clsinit(cls: type[T]) -> type[T]:
    """NEPI's class decorator: here a no-op kept so that NEPI code imports unchanged.

    A NEPI-style class is initialised when it is defined, decorated or not: its
    ``_register_attributes`` and ``_register_traces`` run then, and it inherits its
    bases' attributes and traces (what ``clsinit_copy`` did; NEPI's ``clsinit``
    dropped them).
    """
    return cls


clsinit_copy = clsinit


def failtrap(func: Callable[..., T]) -> Callable[..., T]:
    """NEPI's ``failtrap``: an exception in a hook already fails the resource; kept as is."""
    return func


# -- moving states from a hook thread --------------------------------------------------------


def call_on_loop(ec: ExperimentController, coro: Coroutine[Any, Any, T], what: str,
                 timeout: float | None = None) -> T:
    """Run ``coro`` on ``ec``'s loop and wait for its result, from any other thread.

    From the loop's own thread it would wait for ever (the loop would be blocked in
    the wait): it raises :class:`RuntimeError` instead, naming ``what``.  ``timeout``
    None waits as long as it takes, as the controller's own synchronous calls do
    (:meth:`~nepi_lab.core.loop.LoopRunner.run`: a notebook's live views are served
    meanwhile, Ctrl-C ends the wait); a controller shut down meanwhile ends it too.
    """
    runner = ec._runner
    if runner.in_loop_thread():
        coro.close()
        raise RuntimeError(
            f"{what} blocks until done, so it cannot run on the controller's loop thread (in a "
            f"coroutine or a scheduled callback): call it from a NEPI-style hook (a plain def, run in a "
            f"thread), or await the linux::Node's own coroutine there")
    if runner.closed:
        coro.close()
        raise RuntimeError(f"{what}: the controller is shut down")
    try:
        if timeout is None:  # as every synchronous call: a notebook's views are served meanwhile
            return runner.run(coro, what)
        future = asyncio.run_coroutine_threadsafe(coro, runner.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"{what} took more than {timeout} s") from None
    except concurrent.futures.CancelledError:
        raise RuntimeError(f"{what} was cancelled: the controller released the resource or shut "
                           f"down meanwhile") from None


def _on_loop(rm: ResourceManager, function: Callable[[], None]) -> None:
    """Call ``function()`` in ``rm``'s controller loop thread and wait for it (a state change)."""
    if rm.ec._runner.in_loop_thread():
        function()
        return

    async def call() -> None:
        function()

    call_on_loop(rm.ec, call(), f"changing the state of resource {rm.guid}", timeout=60)


# -- the steps the controller runs ----------------------------------------------------------


async def _run_legacy(rm: ResourceManager, name: str) -> None:
    """Run NEPI's ``rm.<name>()`` in a hook thread; its exception fails ``rm``."""
    function = getattr(type(rm), name).function

    def in_thread() -> None:
        before = getattr(_here, "rm", None)
        _here.rm = rm
        try:
            function(rm)
        finally:
            _here.rm = before

    rm._failed_in_hook = None
    await rm.ec._runner.hook_pool("nepi", nepi_threads).run(in_thread)
    if rm._failed_in_hook is not None:
        raise rm._failed_in_hook


async def _deploy_step(rm: ResourceManager) -> None:
    """Deploy: NEPI's ``do_deploy``, again each time it asks for ``self.deploy``."""
    rm._step = "deploy"
    while True:
        rm._redeploy = asyncio.Event()
        rm._retry_asked = False
        await _run_legacy(rm, "do_deploy")
        if rm._status(S.READY) != 0 or not rm._retry_asked:
            return
        rm._waiting = lambda: ("do_deploy returned before READY and scheduled self.deploy: "
                               "waits for that call")
        try:
            await rm._redeploy.wait()
        finally:
            rm._waiting = None


def _driven_step(name: str, step: str) -> Callable[[ResourceManager], Coroutine[Any, Any, None]]:
    async def run(rm: ResourceManager) -> None:
        rm._step = step
        await _run_legacy(rm, name)

    return run


_STEPS: dict[str, Callable[[ResourceManager], Coroutine[Any, Any, None]]] = {
    "do_discover": _deploy_step,
    "do_start": _driven_step("do_start", "start"),
    "do_stop": _driven_step("do_stop", "stop"),
    "do_release": _driven_step("do_release", "release"),
}


class LegacyHook:
    """One of NEPI's lifecycle methods in a NEPI-style class.

    Called from a NEPI-style hook (``super().do_deploy()``, ``self.do_discover()``) it
    is the plain method.  Called by the controller (from anywhere else), it is the
    coroutine of the step it stands for (see the module docstring).
    """

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, rm: Any, owner: type | None = None) -> Any:
        if rm is None:
            return self
        if getattr(_here, "rm", None) is not None:
            return self.function.__get__(rm, owner)
        step = _STEPS.get(self.name)
        if step is None:  # never driven by the controller (do_provision ...): the plain method
            return self.function.__get__(rm, owner)
        return functools.partial(step, rm)


def _by_guid(check: Callable[[Any, int], Any]) -> Callable[[Any, Any], Any]:
    """NEPI's ``valid_connection(self, guid)`` as ours, ``valid_connection(self, other)``."""

    @functools.wraps(check)
    def valid_connection(self: Any, other: Any) -> Any:
        return check(self, other.guid)

    valid_connection._takes_resource = True  # type: ignore[attr-defined]
    return valid_connection


# -- the base class --------------------------------------------------------------------------


class ResourceManager(_NativeResourceManager):
    """NEPI's ``ResourceManager``: the base of a resource type written the NEPI way.

    Subclass it as in NEPI (``_rtype``, ``_help``, ``_platform``,
    ``_register_attributes`` / ``_register_traces`` classmethods with
    ``cls._register_attribute(Attribute(...))``, plain ``do_deploy``, ``do_start``,
    ``do_stop``, ``do_release`` methods calling ``super()``); the type registers under
    its ``_rtype`` when defined.  See :mod:`nepi_lab.compat` for what differs.
    """

    _rtype = ""
    _reschedule_delay = reschedule_delay
    #: Named so that a ``linux::Node`` accepts the connection (it names the types it takes);
    #: the type itself accepts any, as NEPI's did, unless a subclass declares its own.
    _connects_to = ("linux::Node",)
    _declares_connections = False
    #: As NEPI's ``wait_finished`` did, wait for a NEPI-style resource to end (STOPPED,
    #: FINISHED, FAILED, RELEASED), not just to start; set True for a node-like type.
    _long_lived = False

    @classmethod
    def _register_attributes(cls) -> None:
        """Register the type's attributes with ``cls._register_attribute(Attribute(...))``."""

    @classmethod
    def _register_traces(cls) -> None:
        """Register the type's traces with ``cls._register_trace(Trace(name, help))``."""

    @classmethod
    def _register_attribute(cls, attribute: _Attribute) -> None:
        """Add (or redeclare, by name) an attribute; call it from ``_register_attributes``."""
        cls.__dict__["_nepi_declared"]["attributes"].append(attribute)

    @classmethod
    def _register_trace(cls, trace: Trace) -> None:
        """Add (or redeclare, by name) a trace; call it from ``_register_traces``."""
        cls.__dict__["_nepi_declared"]["traces"].append(trace)

    @classmethod
    def _remove_attribute(cls, name: str) -> None:
        """Drop an inherited attribute; call it from ``_register_attributes``."""
        cls.__dict__["_nepi_declared"]["removed_attributes"].append(name)

    @classmethod
    def _remove_trace(cls, name: str) -> None:
        """Drop an inherited trace; call it from ``_register_traces``."""
        cls.__dict__["_nepi_declared"]["removed_traces"].append(name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        own = {name: cls.__dict__[name] for name in LEGACY_HOOKS if name in cls.__dict__}
        declares_long_lived = "_long_lived" in cls.__dict__
        for name, hook in own.items():
            if inspect.iscoroutinefunction(hook):
                raise TypeError(f"{cls.__qualname__}.{name} is a coroutine: a NEPI-style type's hooks are "
                                f"plain methods (for coroutine hooks, subclass nepi_lab.ResourceManager)")
        declared: dict[str, list[Any]] = {"attributes": [], "traces": [], "removed_attributes": [],
                                          "removed_traces": []}
        cls._nepi_declared = declared
        cls._register_attributes()
        cls._register_traces()
        del cls._nepi_declared
        if declared["attributes"]:
            cls._attributes = (*cls.__dict__.get("_attributes", ()), *declared["attributes"])
        if declared["traces"]:
            cls._traces = (*cls.__dict__.get("_traces", ()), *declared["traces"])
        super().__init_subclass__(**kwargs)
        for name in declared["removed_attributes"]:
            cls._attribute_table.pop(name, None)
        for name in declared["removed_traces"]:
            cls._trace_table.pop(name, None)
        if declared["removed_attributes"] or declared["removed_traces"]:
            cls._secret_attributes = cls._secret_attributes & set(cls._attribute_table)
            cls._default_traces = cls._default_traces & set(cls._trace_table)
        check = cls.__dict__.get("valid_connection")
        if check is not None and not getattr(check, "_takes_resource", False):
            cls.valid_connection = _by_guid(check)  # type: ignore[method-assign]
        for name, hook in own.items():
            setattr(cls, name, hook if isinstance(hook, LegacyHook) else LegacyHook(hook))
            getattr(cls, name).__set_name__(cls, name)
        cls._declares_connections = any("_connects_to" in base.__dict__ for base in cls.__mro__
                                        if issubclass(base, ResourceManager) and base is not ResourceManager)
        native_run = cls.do_run is not _NativeResourceManager.do_run
        cls._hooks = _DRIVEN | ({"do_run"} if native_run else frozenset())
        if not declares_long_lived:  # the native rule (no do_run: long-lived) is not NEPI's
            cls._long_lived = next(base.__dict__["_long_lived"] for base in cls.__mro__[1:]
                                   if "_long_lived" in base.__dict__)

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        #: states NEPI code entered that the controller's step would enter again after the hook
        self._marked: set[ResourceState] = set()
        self._redeploy: asyncio.Event | None = None
        self._retry_asked = False
        self._failed_in_hook: BaseException | None = None

    # -- NEPI's class methods --------------------------------------------------------------

    @classmethod
    def get_attributes(cls) -> list[_Attribute]:
        """Every attribute declaration (NEPI's ``get_attributes``)."""
        return list(cls._attribute_table.values())

    @classmethod
    def get_attribute(cls, name: str) -> _Attribute:
        """The declaration of attribute ``name``."""
        return cls._attribute_table[name]

    @classmethod
    def get_traces(cls) -> list[Trace]:
        """Every trace declaration (NEPI's ``get_traces``)."""
        return list(cls._trace_table.values())

    @classmethod
    def accepts_type(cls, other: type[_NativeResourceManager]) -> bool:
        """Any type, as in NEPI, unless the class declares ``_connects_to`` (then as ours)."""
        return super().accepts_type(other) if cls._declares_connections else True

    @classmethod
    def get_platform(cls) -> str:
        """The ``_platform`` the type declares."""
        return cls._platform

    # -- NEPI's instance API ------------------------------------------------------------------

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger for the resource: ``nepi_lab.<rtype>``, its messages prefixed with the guid."""
        return _GuidAdapter(logging.getLogger(f"nepi_lab.{self._rtype}"), {"guid": self.guid})

    def log_message(self, msg: str) -> str:
        """How NEPI's ``debug``/``info``/... write a message (override to add to it)."""
        return f" {self._rtype} guid {self.guid} - {msg} "

    def _log(self, level: int, msg: str, out: str | None, err: str | None) -> None:
        if out:
            msg += f" - OUT: {out} "
        if err:
            msg += f" - ERROR: {err} "
        logging.getLogger(f"nepi_lab.{self._rtype}").log(level, self.log_message(msg))

    def debug(self, msg: str, out: str | None = None, err: str | None = None) -> None:
        """NEPI's ``Logger.debug``."""
        self._log(logging.DEBUG, msg, out, err)

    def info(self, msg: str, out: str | None = None, err: str | None = None) -> None:
        """NEPI's ``Logger.info``."""
        self._log(logging.INFO, msg, out, err)

    def warning(self, msg: str, out: str | None = None, err: str | None = None) -> None:
        """NEPI's ``Logger.warning``."""
        self._log(logging.WARNING, msg, out, err)

    def error(self, msg: str, out: str | None = None, err: str | None = None) -> None:
        """NEPI's ``Logger.error``."""
        self._log(logging.ERROR, msg, out, err)

    @property
    def reschedule_delay(self) -> str:
        """NEPI's delay before a step is tried again (``"0.5s"``)."""
        return self._reschedule_delay

    def set(self, name: str, value: Any, *, internal: bool | None = None) -> Any:
        """Set an attribute.  From the resource's own NEPI-style hooks, as in NEPI, any
        attribute may be set at any time (``Flags.Design`` and ``NoWrite`` bind users)."""
        if internal is None:
            internal = getattr(_here, "rm", None) is self
        return super().set(name, value, internal=internal)

    def has_attribute(self, name: str) -> bool:
        """Whether the type declares attribute ``name``."""
        return name in self._attribute_table

    def has_flag(self, name: str, flag: Flags) -> bool:
        """Whether attribute ``name`` has every bit of ``flag``."""
        return self._declaration(name).has_flag(flag)

    def has_changed(self, name: str) -> bool:
        """Whether attribute ``name`` differs from its default."""
        return self.get(name) != self._declaration(name).default

    def enable_trace(self, name: str) -> None:
        """Collect trace ``name`` (NEPI's ``enable_trace``)."""
        self._check_trace(name)
        self._enable_trace(name)

    def trace(self, name: str, attr: TraceAttr | str = TraceAttr.ALL, block: int = 512,
              offset: int = 0) -> Any:
        """Read trace ``name`` (as ``ec.trace``); from a hook thread or the user's."""
        return self.ec.trace(self.guid, name, attr, block, offset)

    def get_connected(self, rtype: Any = None) -> list[Any]:
        """Connected resources, optionally only those of type ``rtype`` (a name, a class, or
        a class with NEPI's ``get_rtype()``).  In a NEPI-style hook, a ``linux::Node`` is
        seen with NEPI's blocking command API (:class:`~nepi_lab.compat.LinuxNode`)."""
        if rtype is not None and not isinstance(rtype, str) and not (
                isinstance(rtype, type) and issubclass(rtype, _NativeResourceManager)):
            rtype = rtype.get_rtype()
        connected = super().get_connected(rtype)
        if getattr(_here, "rm", None) is None:
            return connected
        from .linux import nepi_view

        return [nepi_view(rm) for rm in connected]

    def is_rm_instance(self, rtype: str) -> bool:
        """Whether the resource is of type ``rtype`` or a subtype."""
        return isinstance(self, _registry.get_resource_type(rtype))

    # -- NEPI's actions: requests to the controller ------------------------------------------------

    @property
    def deploy(self) -> Callable[[], None]:
        """NEPI's ``deploy``: ask for ``do_deploy`` to run (again).

        Within ``do_deploy``, ``self.ec.schedule(delay, self.deploy)`` (NEPI's way to wait
        for another resource) tells the controller to run ``do_deploy`` again when the
        call comes, instead of taking the resource to READY.
        """
        if getattr(_here, "rm", None) is self and self._step == "deploy":
            self._retry_asked = True
        return self._deploy_now

    def _deploy_now(self) -> None:
        def on_loop() -> None:
            if self._redeploy is not None and self._state < S.READY and self._step == "deploy":
                self._redeploy.set()
            elif self._state == S.NEW and not self._deploying:
                self.ec.deploy([self.guid])
            else:
                self.error(f"Wrong state {self._state.name} for deploy")

        self.ec._runner.call_soon(on_loop)

    def start(self) -> None:
        """NEPI's ``start``: ask the controller to start the resource (returns at once)."""
        def on_loop() -> None:
            if self._state in (S.READY, S.STOPPED):
                self.ec._spawn(self.ec.start_async([self.guid]))
            else:
                self.error(f"Wrong state {self._state.name} for start")

        self.ec._runner.call_soon(on_loop)

    def stop(self) -> None:
        """NEPI's ``stop``: ask the controller to stop the resource (returns at once)."""
        def on_loop() -> None:
            if self._state == S.STARTED and not self._stopping:
                self.ec._spawn(self.ec.stop_async([self.guid]))
            elif self._state != S.STARTED:
                self.error(f"Wrong state {self._state.name} for stop")

        self.ec._runner.call_soon(on_loop)

    def release(self) -> None:
        """NEPI's ``release``: ask the controller to release the resource (returns at once)."""
        self.ec._runner.call_soon(lambda: self.ec._spawn(self.ec.release_async([self.guid])))

    def fail(self, error: BaseException | str | None = None, step: str = "run") -> None:
        """NEPI's ``fail()``: the resource FAILED.  In one of its hooks, the failure is
        recorded when the hook returns (with ``error``, or a message saying the hook
        called ``fail()``); elsewhere at once (see the native ``fail``)."""
        if getattr(_here, "rm", None) is self:
            if error is None:
                error = f"{self._step or 'a hook'} called self.fail()"
            self._failed_in_hook = error if isinstance(error, BaseException) else ResourceFailedError(
                str(error), self.guid, self._rtype, self._state)
            return
        if error is None:
            error = "fail() was called"
        _on_loop(self, lambda: super(ResourceManager, self).fail(error, step))

    # -- NEPI's state marks --------------------------------------------------------------------

    def _advance(self, target: ResourceState) -> None:
        """Enter ``target`` along the normal path (in the loop thread); a mark already
        passed, or one that no longer applies (FAILED, RELEASED), changes nothing."""
        native = _NativeResourceManager._set_state
        state = self._state
        if target == S.STOPPED:  # the controller's stop step enters STOPPED only from STARTED
            if state == S.STARTED:
                native(self, S.STOPPED)
            return
        if target == S.STARTED and state == S.STOPPED:
            native(self, S.STARTED)
            self._marked.add(S.STARTED)
            return
        if target == S.RESERVED:
            if state == S.NEW:
                native(self, S.DISCOVERED)
                self._marked.add(S.DISCOVERED)
            if self._state == S.DISCOVERED:
                native(self, S.RESERVED)
                self._marked.add(S.RESERVED)
            return
        for s in (S.DISCOVERED, S.PROVISIONED, S.READY, S.STARTED):
            if self._state < s <= target and self._state not in (S.FAILED, S.RELEASED) \
                    and self._state <= S.STARTED:
                native(self, s)
                self._marked.add(s)

    def _set_state(self, new: ResourceState, detail: str | None = None,
                   sim_time: float | None = None) -> None:
        # the controller's own step follows NEPI's marks: what they entered is not entered again
        if new in self._marked:
            self._marked.discard(new)
            return
        super()._set_state(new, detail, sim_time)

    def set_state(self, state: ResourceState, state_time_attr: str | None = None, time: Any = None) -> None:
        """NEPI's ``set_state``: enter ``state`` (the time is always now)."""
        if state == S.FAILED:
            self.fail()
        elif state != S.RELEASED:
            _on_loop(self, lambda: self._advance(ResourceState(state)))

    def set_discovered(self, time: Any = None) -> None:
        """Mark the resource DISCOVERED (NEPI's base ``do_discover`` does)."""
        self.set_state(S.DISCOVERED)

    def set_reserved(self, time: Any = None) -> None:
        """Mark the resource RESERVED."""
        self.set_state(S.RESERVED)

    def set_provisioned(self, time: Any = None) -> None:
        """Mark the resource PROVISIONED (NEPI's base ``do_provision`` does)."""
        self.set_state(S.PROVISIONED)

    def set_ready(self, time: Any = None) -> None:
        """Mark the resource READY (NEPI's base ``do_deploy`` does)."""
        self.set_state(S.READY)

    def set_started(self, time: Any = None) -> None:
        """Mark the resource STARTED (NEPI's base ``do_start`` does)."""
        self.set_state(S.STARTED)

    def set_stopped(self, time: Any = None) -> None:
        """Mark the resource STOPPED (NEPI's base ``do_stop`` does)."""
        self.set_state(S.STOPPED)

    def set_released(self, time: Any = None) -> None:
        """NEPI's base ``do_release``: the controller marks RELEASED once the hook returns."""

    def set_failed(self, time: Any = None) -> None:
        """Fail the resource (as :meth:`fail`)."""
        self.fail()

    # -- NEPI's default hooks (plain methods, run in hook threads) -----------------------------------

    def do_discover(self) -> None:  # type: ignore[override]
        """NEPI's default: mark DISCOVERED."""
        self.set_discovered()

    def do_reserve(self) -> None:  # type: ignore[override]
        """NEPI's default: mark RESERVED."""
        self.set_reserved()

    def do_provision(self) -> None:  # type: ignore[override]
        """NEPI's default: mark PROVISIONED."""
        self.set_provisioned()

    def do_configure(self) -> None:  # type: ignore[override]
        """NEPI's default: nothing."""

    def do_deploy(self) -> None:
        """NEPI's default: mark READY (a subclass does its work, then calls ``super().do_deploy()``)."""
        self.set_ready()

    def do_start(self) -> None:  # type: ignore[override]
        """NEPI's default: mark STARTED."""
        self.set_started()

    def do_stop(self) -> None:  # type: ignore[override]
        """NEPI's default: mark STOPPED."""
        self.set_stopped()

    def do_release(self) -> None:  # type: ignore[override]
        """NEPI's default: nothing (the controller marks RELEASED)."""
        self.set_released()

    # -- NEPI's times: datetimes, None until the state is entered ------------------------------------

    def _time(self, *states: ResourceState) -> _dt.datetime | None:
        times = [t for t in (self.state_time(s) for s in states) if t is not None]
        return max(times) if times else None

    @property
    def discover_time(self) -> _dt.datetime | None:
        """When the resource became DISCOVERED (a datetime, local time, or None)."""
        return self._time(S.DISCOVERED)

    @property
    def reserved_time(self) -> _dt.datetime | None:
        """When the resource became RESERVED."""
        return self._time(S.RESERVED)

    @property
    def provision_time(self) -> _dt.datetime | None:
        """When the resource became PROVISIONED."""
        return self._time(S.PROVISIONED)

    @property
    def ready_time(self) -> _dt.datetime | None:
        """When the resource became READY."""
        return self._time(S.READY)

    @property
    def start_time(self) -> _dt.datetime | None:
        """When the resource last became STARTED."""
        return self._time(S.STARTED)

    @property
    def stop_time(self) -> _dt.datetime | None:
        """When the resource's work ended: STOPPED, or FINISHED (NEPI had no FINISHED)."""
        return self._time(S.STOPPED, S.FINISHED)

    @property
    def release_time(self) -> _dt.datetime | None:
        """When the resource became RELEASED."""
        return self._time(S.RELEASED)

    @property
    def failed_time(self) -> _dt.datetime | None:
        """When the resource FAILED."""
        return self._time(S.FAILED)


class _GuidAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"guid {self.extra['guid']} - {msg}", kwargs  # type: ignore[index]


class ResourceFactory:
    """NEPI's ``ResourceFactory``, over nepi_lab's registry of types."""

    @classmethod
    def register_type(cls, rclass: type[_NativeResourceManager]) -> None:
        """Register ``rclass`` under its ``_rtype`` (defining it already did).

        NEPI scripts also registered ``LinuxNode``, which here is the blocking command
        API over our ``linux::Node``, not a type: a class that is no resource type but
        names a registered one (``get_rtype()``) changes nothing; any other raises
        :class:`TypeError`.
        """
        if isinstance(rclass, type) and issubclass(rclass, _NativeResourceManager):
            _registry.register_type(rclass)
            return
        rtype = getattr(rclass, "get_rtype", lambda: None)()
        if rtype is None or cls.get_resource_type(rtype) is None:
            raise TypeError(f"{rclass!r} is not a resource type (a subclass of ResourceManager)")

    @classmethod
    def get_resource_type(cls, rtype: str) -> type[_NativeResourceManager] | None:
        """The class registered as ``rtype``, or None."""
        try:
            return _registry.get_resource_type(rtype)
        except Exception:  # noqa: BLE001 - NEPI answered None for an unknown name
            return None

    @classmethod
    def resource_types(cls) -> dict[str, type[_NativeResourceManager]]:
        """Every registered type, by name."""
        return _registry.resource_types()

    @classmethod
    def create(cls, rtype: str, ec: ExperimentController, guid: int | None = None) -> _NativeResourceManager:
        """A new resource of type ``rtype`` in ``ec`` (registered there, as
        ``ec.register_resource`` does); ``guid`` None takes the next free one."""
        return ec.get_resource(ec.register_resource(rtype, guid=guid))


def populate_factory() -> None:
    """NEPI's ``populate_factory``: the registry finds every type on its first lookup, which this makes."""
    _registry.resource_types()


__all__ = [
    "Attribute", "Flags", "LegacyHook", "ResourceAction", "ResourceFactory", "ResourceManager",
    "ResourceState", "Trace", "TraceAttr", "Types", "call_on_loop", "clsinit", "clsinit_copy",
    "failtrap", "in_legacy_hook", "populate_factory", "reschedule_delay",
]



def _legacy_defaults(cls: type[ResourceManager]) -> None:
    """Make the base class's own NEPI defaults :class:`LegacyHook`\\ s (a class body's own
    hooks are wrapped by the native ``__init_subclass__``, which it does not run for itself)."""
    for name in LEGACY_HOOKS:
        hook = cls.__dict__[name]
        function = getattr(hook, "__wrapped__", hook)
        legacy = LegacyHook(function)
        setattr(cls, name, legacy)
        legacy.__set_name__(cls, name)
    cls._hooks = _DRIVEN


_legacy_defaults(ResourceManager)
