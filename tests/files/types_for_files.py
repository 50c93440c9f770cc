"""Resource types for the experiment-file tests: every attribute type, flags, traces.

They do no I/O; ``files::Task`` runs for ``seconds`` and may be connected to a
``files::Host``, which connects to nothing else (so a file can hold a refused connection).
"""

from __future__ import annotations

import asyncio

from nepi_lab import Attribute, Flags, ResourceManager, Trace, Types


class Host(ResourceManager):
    _rtype = "files::Host"
    _help = "A long-lived host."
    _attributes = (
        Attribute("address", "where it is", default="127.0.0.1"),
        Attribute("password", "a secret", flags=Flags.NoRead),
        Attribute("token", "a credential", flags=Flags.Credential),
        Attribute("discovered", "set by the resource itself", flags=Flags.NoWrite),
    )
    _connects_to = ("files::Task",)

    async def do_provision(self) -> None:
        self.set("discovered", f"host-{self.guid}", internal=True)


class Task(ResourceManager):
    _rtype = "files::Task"
    _help = "Runs for a while, then finishes; one attribute of every type."
    _attributes = (
        Attribute("seconds", "how long it runs", type=Types.Double, default=0.01),
        Attribute("count", "an integer", type=Types.Integer, default=1),
        Attribute("fast", "a boolean", type=Types.Bool, default=False),
        Attribute("mode", "a choice", type=Types.Enumerate, default="a", allowed=("a", "b", "ç")),
        Attribute("note", "free text"),
        Attribute("from", "a Python keyword as a name", type=Types.Integer),
        Attribute("max-rate", "not a Python identifier", type=Types.Double),
        Attribute("guid", "named like register_resource's own keyword"),
    )
    _traces = (Trace("log", "on by default", enabled=True), Trace("extra", "off by default"))
    _connects_to = ("files::Host",)

    async def do_run(self) -> None:
        await asyncio.sleep(self.get("seconds"))
