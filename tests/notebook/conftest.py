"""Fixtures for the notebook layer: small resource types, a controller, headless matplotlib."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("MPLBACKEND", "Agg")  # before anything imports pyplot

import pytest

pytest.importorskip("ipywidgets", reason="the notebook layer needs ipywidgets (a dependency)")

from nepi_lab import Attribute, ExperimentController, Flags, ResourceManager, Trace, Types  # noqa: E402


class Host(ResourceManager):
    """Long-lived, like a node."""

    _rtype = "nbtest::Host"
    _help = "A host for the notebook tests."


class Task(ResourceManager):
    """Runs for ``seconds``; fails when ``fail`` is set.  One attribute of every type."""

    _rtype = "nbtest::Task"
    _help = "Sleeps, then finishes (or fails)."
    _attributes = (
        Attribute("seconds", "how long it runs", type=Types.Double, default=0.05, range=(0, None)),
        Attribute("count", "an integer in [0, 100]", type=Types.Integer, default=1, range=(0, 100)),
        Attribute("fail", "raise instead of finishing", type=Types.Bool, default=False),
        Attribute("mode", "a choice", type=Types.Enumerate, default="fast", allowed=("fast", "slow")),
        Attribute("note", "free text"),
        Attribute("password", "a secret", flags=Flags.Credential),
        Attribute("measured", "set by the resource itself", flags=Flags.NoWrite),
    )
    _traces = (Trace("log", "what it did", enabled=True), Trace("extra", "off by default"))

    async def do_run(self) -> None:
        await asyncio.sleep(self.get("seconds"))
        if self.get("fail"):
            raise RuntimeError("failed on purpose <b>bold</b>")


@pytest.fixture
def ec(tmp_path):
    """A controller in thread mode writing into the test's temporary folder, always shut down."""
    controller = ExperimentController(exp_id="nb", local_dir=str(tmp_path / "results"))
    yield controller
    controller.shutdown()
