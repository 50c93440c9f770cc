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
from typing import Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.errors import UnreachableStateError
from ...core.resource import ResourceManager
from ...core.states import ResourceState
from ...core.traces import Trace
from ._process import SimulationError, WorkerProcess, check_installed

log = logging.getLogger("nepi_lab")
S = ResourceState


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
        from .network import Node, PointToPointLink

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
            elif isinstance(rm, PointToPointLink):
                spec["links"].append(rm._describe())
            elif isinstance(rm, Application):
                spec["apps"].append(rm._describe(self))
        return spec

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
        spec = self._describe()
        self._worker = WorkerProcess(self._on_event, self.trace_path("log"), shared=not self.get("isolated"))
        try:
            ready = await self._worker.start(spec, self.get("buildTimeout"))
        except SimulationError as exc:
            self._fail_futures(f"failed: {exc}")
            if exc.guid is None:
                raise
            self._member_errors[exc.guid] = exc.message
            culprit = self.ec._resources.get(exc.guid)
            what = f"resource {exc.guid}" + (f" ({culprit._rtype})" if culprit is not None else "")
            raise SimulationError(f"{what}: {exc.message}", exc.stderr_tail, exc.guid) from None
        for guid, addresses in ready.get("addresses", {}).items():
            link = self.ec._resources.get(int(guid))
            if link is not None:
                link.set("addressA", addresses[0], internal=True)
                link.set("addressB", addresses[1], internal=True)

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

    def _fail_futures(self, reason: str) -> None:
        """Tell the applications still waiting for a simulated time that it will not come."""
        for future in self._app_futures.values():
            if not future.done():
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
