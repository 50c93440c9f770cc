"""Record the example submissions that ``notebooks/09-lab-checks.ipynb`` grades (run once, as root).

    sudo python tests/lab/make_submissions.py            # into notebooks/lab-submissions/

Each student does the lab of the notebook for real, on network namespaces: a line
``h1 - h2 - h3`` whose link ``h2 - h3`` is a 20 Mbit/s bottleneck, h1's routing table
recorded by an application ``routes`` (``ip route``), a ping from h1 to h3 and an
iperf3 measurement through the bottleneck; each hands in the run directory
(``<student>/lab-line/<run_id>/``).  All but one make one mistake:

=========  ========================================================================
alice      does what was asked: every check passes
bob        pings a mistyped address (``10.0.1.3``): unreachable, no round-trip time
carol      sets the bottleneck to 2 Mbit/s instead of 20: the throughput is too low
dave       types ``ip routes`` for his ``routes`` application: ip refuses it, the
           application fails (exit status 255) and h1's routes are not recorded
erin       hands in the run directory without the folders of her ping and iperf3
           client (only ``experiment.json``, ``events.jsonl``...): missing traces
=========  ========================================================================

The folder holds only what the runs wrote (a few tens of KB each, most of it the
resource types ``experiment.json`` records); the tests and the notebook only read it.
Run it again to record new ones (the old ones are replaced).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "notebooks" / "lab-submissions"
EXP_ID = "lab-line"
PORT = 5201

#: Each student's mistake: keyword arguments of :func:`run_lab`.
STUDENTS = {
    "alice": {},
    "bob": {"ping_target": "10.0.1.3"},
    "carol": {"rate": "2mbit"},
    "dave": {"routes_command": "ip routes"},
    "erin": {"forget": ("ping", "iperf3 client")},
}


def run_lab(results: Path, rate: str = "20mbit", ping_target: str | None = None,
            routes_command: str = "ip route", forget: tuple[str, ...] = ()) -> str:
    """The lab as a student does it (see ``notebooks/09-lab-checks.ipynb``); returns the run directory."""
    from nepi_lab import ExperimentController, topology

    with ExperimentController(exp_id=EXP_ID, local_dir=str(results)) as ec:
        graph = topology.line(3)
        graph.edges["h2", "h3"]["rate"] = rate
        topo = topology.build(ec, graph)
        h1, h3 = topo.nodes["h1"], topo.nodes["h3"]
        target = ping_target or topo.address("h3")
        routes = ec.register_resource("linux::Application", connectedTo=h1, command=routes_command,
                                      name="routes", critical=False)
        ping = ec.register_resource("linux::Ping", connectedTo=h1, target=target, count=5, interval=0.2,
                                    name="ping", critical=False)
        server = ec.register_resource("linux::Iperf3Server", connectedTo=h3, oneOff=True, port=PORT,
                                      name="iperf3 server", critical=False)
        client = ec.register_resource("linux::Iperf3Client", connectedTo=h1, server=topo.address("h3"),
                                      port=PORT, duration=2, json=True, name="iperf3 client",
                                      critical=False)
        ec.register_condition(client, "START", server, "STARTED")
        ec.deploy()
        ec.wait_finished([routes, ping, client], timeout=60)
        run_dir = ec.run_dir
    for name in forget:  # handed in without these resources' folders
        for folder in Path(run_dir).iterdir():
            if folder.is_dir() and _named(run_dir, folder.name, name):
                shutil.rmtree(folder)
    return run_dir


def _named(run_dir: str, folder: str, name: str) -> bool:
    import json

    description = json.loads((Path(run_dir) / "experiment.json").read_text())
    guids = [r["guid"] for r in description["resources"] if (r.get("attributes") or {}).get("name") == name]
    return any(folder.startswith(f"{guid}-") for guid in guids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write them (default {OUT})")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("make_submissions: the runs use network namespaces: run it as root", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    for student, mistake in STUDENTS.items():
        folder = args.out / student
        shutil.rmtree(folder, ignore_errors=True)
        run_dir = run_lab(folder, **mistake)
        size = sum(f.stat().st_size for f in Path(run_dir).rglob("*") if f.is_file())
        print(f"{student}: {os.path.relpath(run_dir, ROOT)} ({size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
