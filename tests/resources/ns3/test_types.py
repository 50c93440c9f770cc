"""The ns-3 types without ns-3: importing them stays light, a missing ns3 package is a
clear failure with the install hint, and simulated times in the event log."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nepi_lab import ExperimentController, ResourceState
from nepi_lab.core.events import EventLog
from nepi_lab.core.states import ResourceState as S
from nepi_lab.resources.ns3 import INSTALL_HINT


def test_importing_nepi_lab_and_the_ns3_types_does_not_import_ns3():
    code = ("import sys, nepi_lab, nepi_lab.resources.ns3\n"
            "from nepi_lab import ExperimentController\n"
            "ec = ExperimentController()\n"
            "ec.register_resource('ns3::Ping')\n"
            "ec.shutdown()\n"
            "print(sorted(m for m in sys.modules if m == 'ns' or m.startswith(('ns.', 'cppyy'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_ns3_package_fails_the_simulation_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ns", None)  # what importlib sees when the package is absent
    with ExperimentController(exp_id="ns3", local_dir=str(tmp_path)) as ec:
        sim = ec.register_resource("ns3::Simulation", critical=False)
        node = ec.register_resource("ns3::Node", connectedTo=sim, critical=False)
        ec.deploy()
        ec.wait([sim, node], ResourceState.FAILED, timeout=30)
        assert INSTALL_HINT == "pip install 'nepi_lab[ns3]'"
        assert INSTALL_HINT in ec.get_resource(sim).failure.message
        assert f"simulation (resource {sim}) was not built" in ec.get_resource(node).failure.message


def test_a_node_needs_its_simulation_when_there_are_two(tmp_path):
    with ExperimentController(exp_id="ns3", local_dir=str(tmp_path)) as ec:
        ec.register_resource("ns3::Simulation")
        ec.register_resource("ns3::Simulation")
        node = ec.register_resource("ns3::Node")
        with pytest.raises(Exception, match="belongs to no simulation: connect it"):
            ec.get_resource(node).simulation()


def test_simulated_times_reach_the_event_log_its_file_and_its_frame(tmp_path):
    log = EventLog()
    log.attach_file(str(tmp_path / "events.jsonl"), lambda: None)
    log.append(10.0, 1, "ns3::Ping", S.READY, S.STARTED, "simulated 1.500000 s", sim_time=1.5)
    log.append(11.0, 2, "linux::Node", S.READY, S.STARTED)
    log.flush()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines[0]["sim_time"] == 1.5 and lines[0]["detail"] == "simulated 1.500000 s"
    assert "sim_time" not in lines[1]
    assert log[0].sim_time == 1.5 and log[1].sim_time is None
    frame = log.to_dataframe()
    assert list(frame.columns) == ["time", "guid", "type", "from", "to", "detail", "sim_time"]
    assert frame["sim_time"].iloc[0] == 1.5 and frame["sim_time"].isna().iloc[1]
    log.close()
    plain = EventLog()
    plain.append(1.0, 1, "linux::Node", S.NEW, S.DISCOVERED)
    assert list(plain.to_dataframe().columns) == ["time", "guid", "type", "from", "to", "detail"]
