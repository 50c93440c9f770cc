"""``Collector``: at release, copies one trace of every resource connected to it.

NEPI's ``Collector``, under the same platform-less type name (a type name needs no
``platform::`` prefix; this one belongs to no platform).  When the collector is
released it copies the trace ``traceName`` of every resource connected to it into
``<run directory>/<subDir>/<guid>.<rename or traceName>``, byte for byte (NEPI wrote
text only).  Released together with them, as ``ec.release()`` and ``ec.shutdown()``
do, the connected resources are released first, so what is copied is their complete,
collected trace.  A resource without that trace, or whose trace cannot be read, is
recorded as a non-critical problem in ``ec.failures``; the others are still copied.

It connects to ``linux::Application`` (every tool included) and ``netns::Link``; a
type of another package lets collectors connect by naming ``"Collector"`` in its own
``_connects_to``.

The run directory already holds every collected trace, under
``<guid>-<type>/<trace>``; a collector gathers one trace of many resources side by
side, as NEPI scripts expect to find them.

Example
-------
>>> from nepi_lab import ExperimentController                   # doctest: +SKIP
>>> with ExperimentController() as ec:                          # doctest: +SKIP
...     node = ec.register_resource("linux::Node")
...     pings = [ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1")
...              for _ in range(3)]
...     collector = ec.register_resource("Collector", traceName="stdout", subDir="pings")
...     for ping in pings:
...         ec.register_connection(collector, ping)
...     ec.deploy()
...     ec.wait_finished(pings)

Released: ``<run_dir>/pings/2.stdout``, ``3.stdout``, ``4.stdout``.
"""

from __future__ import annotations

import os
from typing import Any

from ..core.attributes import Attribute
from ..core.errors import AttributeValueError, NepiError, UnsafeNameError
from ..core.resource import ResourceManager
from ..core.traces import TraceAttr, check_name


def _one_name(attribute: str) -> Any:
    """A set hook: ``attribute`` is one file-name component (no ``/``, no ``..``) or unset."""
    def hook(rm: ResourceManager, old: Any, new: Any) -> Any:
        if new is None or new == "":
            return new
        try:
            check_name(new, attribute)
        except UnsafeNameError as exc:
            raise AttributeValueError(rm.guid, rm._rtype, attribute, new, str(exc)) from None
        return new
    return hook


class Collector(ResourceManager):
    """Copies trace ``traceName`` of every connected resource into the run directory at release."""

    _rtype = "Collector"
    _help = "At release, copies one trace of every resource connected to it into the run directory."
    _platform = ""
    #: The types with traces; a plug-in type lets collectors connect to it by naming
    #: ``"Collector"`` in its own ``_connects_to``.
    _connects_to = ("linux::Application", "netns::Link")
    _attributes = (
        Attribute("traceName", "the trace to copy from every connected resource", default="stdout",
                  set_hook=_one_name("traceName")),
        Attribute("subDir", "folder of the run directory the copies go to (default: the run "
                  "directory itself)", set_hook=_one_name("subDir")),
        Attribute("rename", "file name of the copies after '<guid>.' (default: traceName)",
                  set_hook=_one_name("rename")),
    )

    async def do_provision(self) -> None:
        # what is collected is released before the collector (see ExperimentController._release)
        for rm in self.get_connected():
            self._add_dependent(rm.guid)

    def _folder(self) -> str:
        sub = self.get("subDir")
        folder = os.path.join(self.ec.run_dir, sub) if sub else self.ec.run_dir
        os.makedirs(folder, exist_ok=True)
        return folder

    async def do_release(self) -> None:
        name = self.get("traceName")
        suffix = self.get("rename") or name
        folder = None
        for rm in sorted(self.get_connected(), key=lambda r: r.guid):
            try:
                rm._check_trace(name)
                data = await rm.read_trace(name, TraceAttr.ALL)
            except (NepiError, OSError) as exc:
                self.record_problem(exc, "release")
                continue
            if folder is None:
                folder = self._folder()
            with open(os.path.join(folder, f"{rm.guid}.{suffix}"), "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
