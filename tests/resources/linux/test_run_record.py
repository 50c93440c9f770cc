"""The run's ``hosts.json`` (what ``nepi-lab cleanup`` reads after a ``kill -9``): each
node is in it before anything runs on its host, and nodes deployed or released together
share one write instead of rewriting the whole file one by one (O(nodes²))."""

from __future__ import annotations

import json
import os
import shlex

from nepi_lab import ExperimentController, ResourceState
from nepi_lab.resources.linux import _local, _records

from ...faults import fill, small_disk


def hosts_on_disk(run_dir):
    with open(os.path.join(run_dir, _records.HOSTS_FILE)) as f:
        return json.load(f)["hosts"]


def test_many_nodes_share_writes_and_each_is_recorded_before_its_first_command(tmp_path, monkeypatch):
    writes = []
    write_hosts = _records.write_hosts

    def counted(run_dir, hosts):
        writes.append({guid: entry["state"] for guid, entry in hosts["hosts"].items()})
        write_hosts(run_dir, hosts)

    monkeypatch.setattr(_records, "write_hosts", counted)
    seen_first = {}  # node home -> the node's state in hosts.json on disk when its first command came
    makedirs = _local.LocalExecutor.makedirs

    async def first_makes_its_folders(self, path):
        if path.endswith("/bin") and path not in seen_first:
            guid = os.path.basename(os.path.dirname(path))
            seen_first[path] = hosts_on_disk(run_dir).get(guid, {}).get("state")
        await makedirs(self, path)

    monkeypatch.setattr(_local.LocalExecutor, "makedirs", first_makes_its_folders)
    with ExperimentController(exp_id="record", local_dir=str(tmp_path / "results")) as ec:
        run_dir = ec.run_dir
        nodes = [ec.register_resource("linux::Node", home=str(tmp_path / "home")) for _ in range(40)]
        ec.deploy()
        ec.wait_deployed(nodes, timeout=60)
        assert len(seen_first) == 40 and set(seen_first.values()) == {_records.IN_USE}
        assert len(writes) <= 3, f"{len(writes)} writes for 40 nodes deployed together"
        deployed = len(writes)
    assert writes[-1] == dict.fromkeys(map(str, nodes), _records.RELEASED)
    assert len(writes) - deployed <= 3, f"{len(writes) - deployed} writes for 40 nodes released together"
    assert set(e["state"] for e in hosts_on_disk(run_dir).values()) == {_records.RELEASED}


def test_a_node_deployed_later_gets_a_write_of_its_own(tmp_path):
    with ExperimentController(exp_id="record", local_dir=str(tmp_path / "results")) as ec:
        first = ec.register_resource("linux::Node", home=str(tmp_path / "home"))
        ec.deploy()
        ec.wait_deployed(first, timeout=30)
        assert set(hosts_on_disk(ec.run_dir)) == {str(first)}
        second = ec.register_resource("linux::Node", home=str(tmp_path / "home"))
        # what the second node's command finds in hosts.json: itself, in use
        record = shlex.quote(os.path.join(ec.run_dir, _records.HOSTS_FILE))
        app = ec.register_resource("linux::Application", connectedTo=second, command=f"cat {record}")
        ec.deploy()
        ec.wait_finished(app, timeout=30)
        seen = json.loads(ec.trace(app, "stdout"))["hosts"]
        assert {g: e["state"] for g, e in seen.items()} == {str(first): "in use", str(second): "in use"}


def test_nodes_go_on_when_hosts_json_cannot_be_written(tmp_path, caplog):
    """A full results disk: the shared write fails, is logged, and every node waiting for
    it goes on (deploys, runs, releases) instead of waiting for ever."""
    with small_disk(tmp_path / "results", "1m") as results:
        with ExperimentController(exp_id="record", local_dir=str(results)) as ec:
            nodes = [ec.register_resource("linux::Node", home=str(tmp_path / "home")) for _ in range(5)]
            app = ec.register_resource("linux::Application", connectedTo=nodes[0], command="echo ran")
            fill(results)
            ec.deploy()
            ec.wait_finished(app, timeout=30)
            assert ec.state(app) == ResourceState.FINISHED
        assert not os.path.exists(os.path.join(ec.run_dir, _records.HOSTS_FILE))
        assert "cannot record the hosts of run" in caplog.text
        assert all(ec.state(n) == ResourceState.RELEASED for n in nodes)
