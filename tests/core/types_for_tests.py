"""Small resource types for the engine's tests, modelled on NEPI's execution tests.

They do no I/O: each hook may sleep (``<step>_delay`` seconds, default 0) and may
raise (``fail_in="<step>"``), so tests can drive every path of the lifecycle.
"""

from __future__ import annotations

import asyncio

from nepi_lab import Attribute, Flags, ResourceManager, ResourceState, Trace, Types


class TestError(RuntimeError):
    """Raised by a hook on purpose."""


class Scripted(ResourceManager):
    """Base: hooks that sleep and fail on demand."""

    _attributes = (
        Attribute("fail_in", "step whose hook raises", type=Types.Enumerate, default="none",
                  allowed=("none", "discover", "provision", "configure", "start", "run", "stop", "release")),
        Attribute("deploy_delay", "seconds the provision hook takes", type=Types.Double, default=0.0),
        Attribute("label", "free text", default=""),
        Attribute("design_only", "a design attribute", default="x", flags=Flags.Design),
        Attribute("read_only", "set by the resource itself", default="r", flags=Flags.NoWrite),
        Attribute("count", "an integer in [0, 100]", type=Types.Integer, default=1, range=(0, 100)),
        Attribute("mode", "a choice", type=Types.Enumerate, default="a", allowed=("a", "b")),
    )
    _traces = (Trace("log", "what the resource did", enabled=True), Trace("extra", "off by default"))

    def _maybe_fail(self, step: str) -> None:
        if self.get("fail_in") == step:
            raise TestError(f"{step} failed on purpose")

    async def do_discover(self) -> None:
        self._maybe_fail("discover")

    async def do_provision(self) -> None:
        await self.await_needs()
        if self.get("deploy_delay"):
            await asyncio.sleep(self.get("deploy_delay"))
        self._maybe_fail("provision")

    async def do_configure(self) -> None:
        self._maybe_fail("configure")

    async def do_start(self) -> None:
        self._maybe_fail("start")

    async def do_stop(self) -> None:
        self._maybe_fail("stop")

    async def do_release(self) -> None:
        self._maybe_fail("release")

    needs: tuple[str, ...] = ()

    async def await_needs(self) -> None:
        for rtype in self.needs:
            for other in self.get_connected(rtype):
                await self.wait_for(other, ResourceState.READY)


class Node(Scripted):
    _rtype = "test::Node"
    _help = "A host; long-lived."


class Interface(Scripted):
    _rtype = "test::Interface"
    _help = "Needs its node READY."
    needs = ("test::Node",)


class Channel(Scripted):
    _rtype = "test::Channel"
    _help = "Needs its interfaces READY."
    needs = ("test::Interface",)


class Application(Scripted):
    _rtype = "test::Application"
    _help = "Needs its node READY; runs for `duration` seconds."
    _attributes = (Attribute("duration", "seconds do_run takes", type=Types.Double, default=0.0),)
    needs = ("test::Node",)

    async def do_run(self) -> None:
        if self.get("duration"):
            await asyncio.sleep(self.get("duration"))
        self._maybe_fail("run")
        with open(self.trace_path("log"), "a") as f:
            f.write(f"ran {self.guid}\n")


class SelfTimed(Application):
    _rtype = "test::SelfTimed"
    _help = "An application that honours its conditions itself when `honours` is set."
    _attributes = (Attribute("honours", "honour every condition itself", type=Types.Bool, default=True),)

    def honours_condition(self, condition: object) -> bool:
        return bool(self.get("honours"))


class Instant(ResourceManager):
    _rtype = "test::Instant"
    _help = "Does nothing, at once: measures the controller itself."

    async def do_run(self) -> None:
        return None


class InstantFailing(ResourceManager):
    _rtype = "test::InstantFailing"
    _help = "Fails at once, in a do_run that never awaits."

    async def do_run(self) -> None:
        raise TestError(f"resource {self.guid} failed at once, in state {self.state.name}")
