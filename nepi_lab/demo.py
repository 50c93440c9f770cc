"""``nepi-lab demo``: a small real experiment on this machine, in a few seconds.

It needs nothing but Python and nepi_lab: the server and the clients are Python
scripts run as ``linux::Application`` on a localhost ``linux::Node``.

- a TCP echo server on 127.0.0.1 (port chosen by the system) serving three clients;
- three clients, started by a condition 300 ms after the server started;
- an application that fails (exit status 3), marked non-critical, so the rest goes on;
- every trace collected into the run directory, a summary table printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from typing import TextIO

CLIENTS = 3

SERVER = f"""\
import os, socket
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
port_file = os.path.join(os.environ["NODE_HOME"], "server.port")
with open(port_file + ".tmp", "w") as f:
    f.write(str(sock.getsockname()[1]))
os.replace(port_file + ".tmp", port_file)
print("listening on port", sock.getsockname()[1], flush=True)
for served in range({CLIENTS}):
    conn, peer = sock.accept()
    with conn:
        data = conn.recv(1024)
        conn.sendall(data.upper())
        print("served", data.decode(), flush=True)
print("done after", {CLIENTS}, "clients")
"""

CLIENT = """\
import os, socket, sys, time
port_file = os.path.join(os.environ["NODE_HOME"], "server.port")
deadline = time.monotonic() + 10
while not os.path.exists(port_file):
    if time.monotonic() > deadline:
        sys.exit("no server port after 10 s")
    time.sleep(0.02)
with socket.create_connection(("127.0.0.1", int(open(port_file).read()))) as sock:
    sock.sendall(sys.argv[1].encode())
    print("sent", sys.argv[1], "got", sock.recv(1024).decode())
"""

FAILING = """\
import sys
print("this application fails on purpose", file=sys.stderr)
sys.exit(3)
"""


def run_demo(local_dir: str | None = None, out: TextIO = sys.stdout) -> int:
    """Run the demo experiment; print its summary; return 0 if it behaved as expected.

    Raises
    ------
    ResultsDirectoryError
        ``local_dir`` cannot hold a run directory (``nepi-lab demo`` says so and exits 2).
    """
    from . import ExperimentController, ResourceAction, ResourceState, TraceAttr
    from ._summary import print_table, read_summary

    python = shlex.quote(sys.executable)
    home = tempfile.mkdtemp(prefix="nepi_lab-demo-")  # the "remote" home: removed at the end
    try:
        with ExperimentController(exp_id="demo", local_dir=local_dir) as ec:
            node = ec.register_resource("linux::Node", hostname="localhost", home=home, name="node")
            server = ec.register_resource("linux::Application", connectedTo=node, code=SERVER,
                                          command=f'{python} "$CODE"', name="echo server")
            clients = [
                ec.register_resource("linux::Application", connectedTo=node, code=CLIENT,
                                     command=f'{python} "$CODE" client-{i}', name=f"client {i}")
                for i in range(1, CLIENTS + 1)
            ]
            failing = ec.register_resource("linux::Application", connectedTo=node, critical=False,
                                           code=FAILING, command=f'{python} "$CODE"', name="fails on purpose")
            ec.register_condition(clients, ResourceAction.START, server, ResourceState.STARTED, "300ms")

            print(f"nepi_lab demo: experiment {ec.exp_id!r}, run {ec.run_id}", file=out)
            print(f"  clients start 300 ms after the server; resource {failing} fails (non-critical)\n",
                  file=out)
            ec.deploy()
            ec.wait_finished(timeout=60)
            failure = ec.get_resource(failing).failure
            gap = (ec.get_start_time(clients[0]) - ec.get_start_time(server)).total_seconds()
            run_dir = ec.run_dir
            expected = (
                all(ec.get_finish_time(g) is not None for g in [server, *clients])
                and failure is not None and failure.returncode == 3 and not failure.critical
            )
            server_trace = ec.trace(server, "stdout", TraceAttr.PATH)
        # released: the table is read back from the run directory, as nepi-lab show would
        print_table(read_summary(run_dir), out)
        print("\nthe node ran while its applications did (STARTED); the release stopped it: STOPPED",
              file=out)
        print(f"\nrecorded failure: {failure}", file=out)
        print(f"client 1 started {gap * 1000:.1f} ms after the server (condition: 300 ms)", file=out)
        print(f"server trace at {server_trace}", file=out)
        print(f"\nrun directory: {run_dir}", file=out)
        for entry in sorted(os.listdir(run_dir)):
            inside = os.path.join(run_dir, entry)
            files = sorted(os.listdir(inside)) if os.path.isdir(inside) else []
            print(f"  {entry}{'/  ' + ' '.join(files) if files else ''}", file=out)
        _print_next_steps(run_dir, out)
        return 0 if expected else 1
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _print_next_steps(run_dir: str, out: TextIO) -> None:
    """How to look at the run again, and where the tutorials are."""
    print("\nthe run directory alone is enough to read the run again, here or on another machine:",
          file=out)
    print(f"  nepi-lab show {shlex.quote(run_dir)}", file=out)
    print("  in Python or a notebook, as pandas DataFrames:", file=out)
    print("    from nepi_lab import load_run", file=out)
    print(f"    run = load_run({run_dir!r})", file=out)
    print("    run.resources_frame(); run.events_frame(); run.trace_frame(2, 'stdout')", file=out)
    notebooks = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
    if os.path.isdir(notebooks):  # a clone of the repository (an editable install)
        where = shlex.quote(notebooks)
    else:
        where = "notebooks/   (in a clone of the nepi_lab repository)"
    print("\nthe tutorials are Jupyter notebooks (pip install jupyterlab):", file=out)
    print(f"  jupyter lab {where}", file=out)
