"""``ns3::Simulation``: one ns-3 simulation, built and run in a worker process of its own.

The simulation gathers its members when it deploys: the ``ns3::Node`` resources
connected to it (a node connected to no simulation belongs to the experiment's only
one), the links between those nodes and the applications on them.  It describes them
to a worker process (:mod:`._worker`), which imports ns-3 and builds the world; once
it is built the simulation is READY, and so is every member.  Started, it runs the
simulated time in chunks up to ``stopTime``: each application becomes STARTED and
FINISHED at its own simulated times, and the simulation FINISHED at ``stopTime``.
Every such event carries its simulated time (``Event.sim_time``; a ``sim_time``
column in ``ec.events.to_dataframe()``; the detail ``"simulated 2.000000 s"``).

Conditions between its applications (START or STOP after another application, or
the simulation, STARTED or FINISHED, plus a delay) are compiled into the
applications' simulated start and stop times before the build (``_compile_conditions``),
and the controller does not wait for them in wall-clock time (the applications
answer ``honours_condition``).  Conditions of other resources on the simulation or its
applications keep their wall-clock meaning: a local application START after the
simulation FINISHED starts once the simulation process got there.

The worker runs ns-3's global state and its 640 MB away from the controller: the
controller's loop and a notebook's kernel never block on it, two simulations run
side by side, an ns-3 abort (``NS_FATAL_ERROR``, a failed assertion) fails the
simulation with ns-3's message, and release, a failure, Ctrl-C or the end of the
interpreter kill it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
from typing import Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.conditions import Condition
from ...core.errors import UnreachableStateError
from ...core.resource import ResourceManager
from ...core.states import ResourceAction, ResourceState
from ...core.traces import Trace
from ._process import SimulationError, WorkerProcess, check_installed

log = logging.getLogger("nepi_lab")
S = ResourceState
A = ResourceAction


@dataclasses.dataclass(frozen=True)
class MappingAttribute(Attribute):
    """An attribute holding a mapping of ns-3 names to values, e.g. ``{"DataRate":
    "2Mbps"}``: a dict, or its JSON text; stored as a dict of strings (numbers are
    written as ns-3 reads them, booleans as ``true``/``false``).  The names and values
    are checked by ns-3's own TypeIds when the simulation is built."""

    def check(self, value: Any, guid: int | None = None, rtype: str = "") -> Any:
        from ...core.errors import AttributeValueError

        if value is None:
            return None

        def bad(reason: str) -> AttributeValueError:
            return AttributeValueError(guid, rtype, self.name, value, reason, self.allowed)

        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise bad('expected a dict (or its JSON text), e.g. {"Name": "value"}') from None
        if not isinstance(value, dict):
            raise bad(f"expected a dict of ns-3 names to values, got {type(value).__name__}")
        mapping = {}
        for name, item in value.items():
            if not isinstance(name, str) or not name.strip():
                raise bad(f"every name must be a non-empty string, not {name!r}")
            if isinstance(item, bool):
                item = "true" if item else "false"
            elif isinstance(item, (int, float)):
                item = repr(item)
            elif not isinstance(item, str):
                raise bad(f"the value of {name!r} must be a string, a number or a bool, "
                          f"not {type(item).__name__}")
            mapping[name] = item
        return mapping


def _sim_detail(sim_time: float) -> str:
    return f"simulated {sim_time:.6f} s"


class _SimulatedTimes:
    """Puts the simulated time of a change in its event (a mixin of ResourceManager types)."""

    def _set_state(self, new: ResourceState, detail: str | None = None,
                   sim_time: float | None = None) -> None:
        pending = self.__dict__.get("_sim_times")
        if sim_time is None and pending:
            sim_time = pending.pop(new, None)
            if sim_time is not None and detail is None:
                detail = _sim_detail(sim_time)
        super()._set_state(new, detail, sim_time)  # type: ignore[misc]

    def _at_sim_time(self, state: ResourceState, sim_time: float) -> None:
        """Record ``sim_time`` in the event of this resource's next change to ``state``."""
        self.__dict__.setdefault("_sim_times", {})[state] = sim_time


class Ns3Resource(_SimulatedTimes, ResourceManager):
    """What every resource of an ns-3 simulation shares: finding its simulation,
    becoming READY with it, and simulated times in its events."""

    _platform = "ns3"
    _attributes = (
        MappingAttribute("ns3Attributes", "ns-3 attributes our attributes do not cover, set on this "
                         "resource's ns-3 object by ns-3's names, e.g. {\"PacketSize\": \"1000\"}; "
                         "describe_type(name) lists a type's", flags=Flags.Design),
    )

    def simulation(self) -> Simulation:
        """The ``ns3::Simulation`` this resource belongs to (raises :class:`SimulationError`)."""
        raise NotImplementedError

    async def do_provision(self) -> None:
        sim = self.simulation()
        try:
            await self.wait_for(sim, S.READY)
        except UnreachableStateError:
            own = sim._member_errors.get(self.guid)
            if own is not None:
                raise SimulationError(own) from None
            raise SimulationError(f"its simulation (resource {sim.guid}) was not built"
                                  + (f": {sim.failure.message}" if sim.failure else "")) from None
        if self not in sim._members:
            raise SimulationError(f"its simulation (resource {sim.guid}) was built without it: register "
                                  "and deploy a simulation's resources before or with the simulation")


class Simulation(_SimulatedTimes, ResourceManager):
    """One ns-3 simulation (see the module docstring)."""

    _rtype = "ns3::Simulation"
    _platform = "ns3"
    _help = ("An ns-3 simulation run in a worker process of its own: its nodes, links and "
             "applications are built there; STARTED runs simulated time up to stopTime.")
    _attributes = (
        Attribute("stopTime", "simulated seconds at which the simulation ends", type=Types.Double,
                  default=10.0, range=(0, None), flags=Flags.Design),
        Attribute("seed", "ns-3's random seed (RngSeedManager::SetSeed)", type=Types.Integer, default=1,
                  range=(1, 2**32 - 1), flags=Flags.Design),
        Attribute("runNumber", "ns-3's run number: independent random streams for repetitions "
                  "(RngSeedManager::SetRun)", type=Types.Integer, default=1, range=(0, 2**63 - 1),
                  flags=Flags.Design),
        Attribute("checksum", "compute and check IP/UDP/TCP checksums (ns-3's ChecksumEnabled; "
                  "pcap files then carry real checksums)", type=Types.Bool, default=False,
                  flags=Flags.Design),
        Attribute("globalRouting", "fill every node's routing table with shortest paths "
                  "(Ipv4GlobalRoutingHelper::PopulateRoutingTables)", type=Types.Bool, default=True,
                  flags=Flags.Design),
        Attribute("buildTimeout", "wall-clock seconds allowed to start the worker, import ns-3 and build "
                  "(importing ns-3 alone takes 8-20 s)", type=Types.Double, default=300.0, range=(1, None)),
        Attribute("isolated", "run in a fresh Python process that imports ns-3 itself (8-20 s more) instead "
                  "of a fork of the shared ns-3 process", type=Types.Bool, default=False, flags=Flags.Design),
        Attribute("simulatedTime", "how far the simulation got, in simulated seconds", type=Types.Double,
                  flags=Flags.NoWrite),
        Attribute("flowMonitor", "measure every IPv4 UDP/TCP flow with ns-3's FlowMonitor (trace 'flows', "
                  "read by flows_frame; enabling that trace does the same)", type=Types.Bool, default=False,
                  flags=Flags.Design, set_hook=lambda rm, old, new: rm._flow_monitor(new)),
        MappingAttribute("defaults", "ns-3 attribute defaults set before the world is built "
                         "(Config::SetDefault), e.g. {\"ns3::TcpSocket::SegmentSize\": \"1448\"}",
                         flags=Flags.Design),
        MappingAttribute("config", "ns-3 attributes set by Config path once the world is built, before "
                         "it runs (Config::Set), e.g. {\"/NodeList/0/$ns3::Ipv4L3Protocol/DefaultTtl\": "
                         "\"32\"}", flags=Flags.Design),
    )
    _traces = (Trace("log", "the simulation process's output: ns-3's messages, an abort's backtrace",
                     enabled=True),
               Trace("flows", "FlowMonitor's statistics per IPv4 UDP/TCP flow at the end, CSV (times in "
                     "nanoseconds); flows_frame reads it"))
    _aliases = (Alias("StopTime", "stopTime"), Alias("checksumEnabled", "checksum"),
                Alias("populateRoutingTables", "globalRouting"))

    def __init__(self, ec: Any, guid: int) -> None:
        super().__init__(ec, guid)
        self._worker: WorkerProcess | None = None
        self._members: list[Ns3Resource] = []
        self._member_errors: dict[int, str] = {}
        self._app_futures: dict[tuple[int, ResourceState], asyncio.Future[float]] = {}
        #: the applications' simulated (start, stop) compiled from their conditions; None until built
        self._schedule: dict[int, tuple[float, float]] | None = None
        self._compiled: set[Condition] = set()
        #: why an application with compiled times never runs (for its failure message)
        self._never: dict[int, str] = {}

    def _flow_monitor(self, on: bool | None) -> bool | None:
        if on:
            self._enable_trace("flows")
        return on

    # -- membership -------------------------------------------------------------

    def members(self) -> list[Ns3Resource]:
        """Every resource of this simulation: its nodes, their links and applications."""
        rms = [rm for rm in self.ec._resources.values() if isinstance(rm, Ns3Resource)]
        mine = []
        for rm in rms:
            try:
                if rm.simulation() is self:
                    mine.append(rm)
            except SimulationError:
                continue
        return mine

    def _describe(self) -> dict[str, Any]:
        """The description the worker builds (JSON)."""
        from .applications import Application
        from .network import CsmaLink, Node, PointToPointLink, Route

        spec: dict[str, Any] = {
            "stop_time": self.get("stopTime"), "seed": self.get("seed"), "run": self.get("runNumber"),
            "checksum": self.get("checksum"), "global_routing": self.get("globalRouting"),
            "nodes": [], "links": [], "apps": [],
            "defaults": self.get("defaults") or {}, "config": self.get("config") or {},
            "flows": self.trace_path("flows") if self.get("flowMonitor") or self.trace_enabled("flows")
            else None,
        }
        for rm in self._members:
            if isinstance(rm, Node):
                spec["nodes"].append({"guid": rm.guid, "ns3_attributes": rm.get("ns3Attributes") or {}})
            elif isinstance(rm, (PointToPointLink, CsmaLink)):
                spec["links"].append(rm._describe())
            elif isinstance(rm, Route):
                spec.setdefault("routes", []).append(rm._describe())
            elif isinstance(rm, Application):
                spec["apps"].append(rm._describe(self))
        return spec

    # -- conditions in simulated time ----------------------------------------------

    def honours(self, app: Ns3Resource, condition: Condition) -> bool:
        """Whether the simulation honours ``condition`` of application ``app`` in simulated
        time: every START or STOP condition until the simulation is built (it then compiles
        them, or fails the deploy saying why), afterwards those it compiled."""
        if condition.action not in (A.START, A.STOP):
            return False
        return self._schedule is None or condition in self._compiled

    def _compile_conditions(self) -> dict[int, tuple[float, float]]:
        """The simulated (start, stop) of every application, its START and STOP conditions
        compiled in (see the README's "Conditions in simulated time").

        A condition may refer to applications of this simulation (STARTED: its start;
        FINISHED or STOPPED: its end) and to the simulation itself (STARTED: 0;
        FINISHED: its stopTime), plus its delay in simulated seconds; several resources
        or conditions: the latest.  START: with a startTime set, the later of it and the
        conditions; without one the conditions alone (the default 1 s does not apply).
        STOP: the earlier of the application's stopTime (or the simulation's) and the
        conditions.  Anything else raises :class:`SimulationError` naming the
        application.  An application whose start comes at or after its end never runs:
        it fails when the simulation ends, saying why (``self._never``).
        """
        from .applications import Application

        apps = {rm.guid: rm for rm in self._members if isinstance(rm, Application)}
        stop_time = float(self.get("stopTime"))
        for app in apps.values():
            for action in (A.START, A.STOP):
                for condition in app._conditions.get(action, ()):
                    problem = self._uncompilable(condition, apps)
                    if problem:
                        raise SimulationError(f"condition '{condition.describe()}' {problem}", guid=app.guid)
        memo: dict[tuple[int, ResourceAction], float] = {}
        resolving: list[tuple[int, ResourceAction]] = []

        def when(guid: int, state: ResourceState) -> float:
            """Simulated time at which ``guid`` reaches ``state`` (inf: never)."""
            if guid == self.guid:
                return 0.0 if state == S.STARTED else stop_time
            start = resolve(guid, A.START)
            if state == S.STARTED and (guid, A.STOP) in resolving:
                # its stop waits for this start (STOP after an application that starts after it):
                # whether it runs at all is settled by its own stopTime
                end = own_stop(apps[guid])
            else:
                end = resolve(guid, A.STOP)
            if start >= end:  # never runs: never STARTED, never FINISHED
                return math.inf
            return start if state == S.STARTED else end

        def own_stop(app: Application) -> float:
            stop = app.get("stopTime")
            return stop_time if stop is None else min(float(stop), stop_time)

        def resolve(guid: int, action: ResourceAction) -> float:
            """The simulated start (``A.START``) or end (``A.STOP``) of application ``guid``."""
            key = (guid, action)
            if key in memo:
                return memo[key]
            if key in resolving:
                chain = " -> ".join(f"{g} {a.name}" for g, a in [*resolving[resolving.index(key):], key])
                raise SimulationError(f"its conditions wait on each other ({chain})", guid=guid)
            app = apps[guid]
            resolving.append(key)
            times = [condition_time(c) for c in app._conditions.get(action, ())]
            resolving.pop()
            if action == A.START:
                explicit = not times or "startTime" in app._values  # unset: the default does not apply
                value = max([float(app.get("startTime")), *times]) if explicit else max(times)
            else:
                value = min(own_stop(app), max(times)) if times else own_stop(app)
            memo[key] = value
            return value

        def condition_time(condition: Condition) -> float:
            return max(when(g, condition.state) for g in condition.after) + condition.delay

        self._compiled = set()
        self._never = {}
        schedule: dict[int, tuple[float, float]] = {}
        for app in apps.values():
            conditions = [*app._conditions.get(A.START, ()), *app._conditions.get(A.STOP, ())]
            if not conditions:
                continue
            start, stop = resolve(app.guid, A.START), resolve(app.guid, A.STOP)
            self._compiled.update(conditions)
            schedule[app.guid] = (start, stop)
            if start == math.inf:
                self._never[app.guid] = ("before this application's start: its conditions wait for an "
                                         "application that never runs")
            elif start >= stop_time:
                self._never[app.guid] = (f"before this application's start (simulated {start:g} s, "
                                         f"from its conditions)")
            elif start >= stop:
                self._never[app.guid] = (f"and this application never ran: its conditions put its start "
                                         f"(simulated {start:g} s) at or after its end "
                                         f"(simulated {stop:g} s)")
        return schedule

    def _uncompilable(self, condition: Condition, apps: dict[int, Any]) -> str | None:
        """Why ``condition`` cannot be compiled into simulated time (None: it can)."""
        from .applications import Application

        if condition.state not in (S.STARTED, S.FINISHED, S.STOPPED):
            return (f"refers to state {condition.state.name}, which has no simulated time: use "
                    f"STARTED or FINISHED")
        for guid in condition.after:
            if guid == self.guid or guid in apps:
                continue
            other = self.ec._resources.get(guid)
            rtype = other._rtype if other is not None else "unknown"
            if isinstance(other, (Simulation, Application)):
                where = f"is not part of simulation {self.guid}"
            elif isinstance(other, Ns3Resource):
                where = "has no simulated start or end"
            else:
                where = f"runs outside simulation {self.guid}"
            return (f"refers to resource {guid} ({rtype}), which {where}: an ns-3 application follows "
                    f"simulated time, so the condition cannot hold there. Refer to applications of "
                    f"simulation {self.guid} or to the simulation itself, or put the condition on the "
                    f"ns3::Simulation (it then starts or stops in wall-clock time)")
        return None

    # -- lifecycle ---------------------------------------------------------------

    async def do_provision(self) -> None:
        check_installed()
        self._members = self.members()
        from .applications import Application

        for rm in self._members:
            if isinstance(rm, Application):
                loop = asyncio.get_running_loop()
                for state in (S.STARTED, S.FINISHED):
                    self._app_futures[rm.guid, state] = loop.create_future()
        try:
            self._schedule = self._compile_conditions()
        except SimulationError as exc:
            raise self._member_failed(exc) from None
        spec = self._describe()
        self._worker = WorkerProcess(self._on_event, self.trace_path("log"), shared=not self.get("isolated"))
        try:
            ready = await self._worker.start(spec, self.get("buildTimeout"))
        except SimulationError as exc:
            raise self._member_failed(exc) from None
        networks = ready.get("networks", {})
        for guid, addresses in ready.get("addresses", {}).items():
            link = self.ec._resources.get(int(guid))
            if link is not None:
                link._assigned(addresses, networks[guid])

    def _member_failed(self, exc: SimulationError) -> SimulationError:
        """The build failed (``exc``): fail the applications' waits, keep the message of the
        member at fault for it, and return the simulation's own error (which names it)."""
        self._fail_futures(f"failed: {exc}")
        if exc.guid is None:
            return exc
        self._member_errors[exc.guid] = exc.message
        culprit = self.ec._resources.get(exc.guid)
        what = f"resource {exc.guid}" + (f" ({culprit._rtype})" if culprit is not None else "")
        return SimulationError(f"{what}: {exc.message}", exc.stderr_tail, exc.guid)

    async def do_start(self) -> None:
        if self._worker is None:
            raise SimulationError("the simulation was not built")
        self._at_sim_time(S.STARTED, 0.0)

    async def do_run(self) -> None:
        assert self._worker is not None
        try:
            end = await self._worker.run()
        except SimulationError as exc:
            self._fail_futures(f"failed: {exc}")
            raise
        self._at_sim_time(S.FINISHED, end)
        for guid, why in self._never.items():
            self._fail_futures(f"ended at simulated {end:g} s, {why}", only=guid)
        self._fail_futures(f"ended at simulated {end:g} s, before this application's startTime")
        await self._worker.quit()

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("event")
        if kind in ("progress", "app", "finished"):
            self.set("simulatedTime", float(message["sim_time"]), internal=True)
        if kind == "results":  # what the members measured, read at the end
            for guid, values in message.get("values", {}).items():
                rm = self.ec._resources.get(int(guid))
                for name, value in values.items() if rm is not None else ():
                    rm.set(name, value, internal=True)
        if kind == "app":
            future = self._app_futures.get((int(message["guid"]), S[message["state"]]))
            if future is not None and not future.done():
                future.set_result(float(message["sim_time"]))

    def _fail_futures(self, reason: str, only: int | None = None) -> None:
        """Tell the applications still waiting for a simulated time (``only``: that one) that
        it will not come."""
        for (guid, _), future in self._app_futures.items():
            if not future.done() and only in (None, guid):
                future.set_exception(SimulationError(f"the simulation (resource {self.guid}) {reason}"))
                future.exception()  # retrieved: no "never retrieved" warning for apps never started

    async def app_state(self, guid: int, state: ResourceState) -> float:
        """Wait until application ``guid`` reaches ``state`` in simulated time; returns that time."""
        return await asyncio.shield(self._app_futures[guid, state])

    async def do_stop(self) -> None:
        if self._worker is not None:
            await self._worker.kill()
        self._fail_futures("was stopped")

    async def do_release(self) -> None:
        if self._worker is not None:
            await self._worker.quit()
        self._fail_futures("was released")

    @property
    def worker_pid(self) -> int | None:
        """The process id of the simulation's process once it started, else None."""
        return None if self._worker is None else self._worker.pid
