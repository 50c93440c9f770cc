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
port_file = os.path.join(os.environ["RUN_HOME"], "server.port")
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
port_file = os.path.join(os.environ["RUN_HOME"], "server.port")
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
    """Run the demo experiment; print its summary; return 0 if it behaved as expected."""
    from . import ExperimentController, ResourceAction, ResourceState, TraceAttr

    python = shlex.quote(sys.executable)
    home = tempfile.mkdtemp(prefix="nepi_lab-demo-")  # the "remote" home: removed at the end
    try:
        with ExperimentController(exp_id="demo", local_dir=local_dir) as ec:
            node = ec.register_resource("linux::Node", hostname="localhost", home=home)
            server = ec.register_resource("linux::Application", connectedTo=node, code=SERVER,
                                          command=f'{python} "$CODE"')
            clients = [
                ec.register_resource("linux::Application", connectedTo=node, code=CLIENT,
                                     command=f'{python} "$CODE" client-{i}')
                for i in range(1, CLIENTS + 1)
            ]
            failing = ec.register_resource("linux::Application", connectedTo=node, critical=False,
                                           code=FAILING, command=f'{python} "$CODE"')
            ec.register_condition(clients, ResourceAction.START, server, ResourceState.STARTED, "300ms")
            roles = {node: "node", server: "echo server", failing: "fails on purpose"}
            roles.update({c: f"client {i}" for i, c in enumerate(clients, 1)})

            print(f"nepi_lab demo: experiment {ec.exp_id!r}, run {ec.run_id}", file=out)
            print(f"  clients start 300 ms after the server; resource {failing} fails (non-critical)\n",
                  file=out)
            ec.deploy()
            ec.wait_finished(timeout=60)
            ec.release(timeout=30)

            rows = []
            for guid in ec.resources:
                started, ended = ec.get_start_time(guid), None
                for state in (ResourceState.FINISHED, ResourceState.FAILED, ResourceState.STOPPED):
                    ended = ended or ec.get_state_time(guid, state)
                duration = f"{(ended - started).total_seconds():.3f} s" if started and ended else ""
                first_line = ""
                exit_code = ""
                if guid != node:
                    exit_code = str(ec.trace(guid, "exitcode")).strip()
                    text = ec.trace(guid, "stdout") or ec.trace(guid, "stderr")
                    first_line = str(text).strip().splitlines()[0] if str(text).strip() else ""
                final = [e.new for e in ec.events.for_guid(guid) if e.new != ResourceState.RELEASED][-1]
                rows.append((str(guid), roles[guid], final.name, duration, exit_code, first_line[:50]))
            _print_table(("guid", "role", "ended", "ran for", "exit", "first line of output"), rows, out)

            failure = ec.get_resource(failing).failure
            print(f"\nrecorded failure: {failure}", file=out)
            gap = (ec.get_start_time(clients[0]) - ec.get_start_time(server)).total_seconds()
            print(f"client 1 started {gap * 1000:.1f} ms after the server (condition: 300 ms)", file=out)
            print(f"server trace at {ec.trace(server, 'stdout', TraceAttr.PATH)}", file=out)
            run_dir = ec.run_dir
            expected = (
                all(ec.get_finish_time(g) is not None for g in [server, *clients])
                and failure is not None and failure.returncode == 3 and not failure.critical
            )
        print(f"\nrun directory: {run_dir}", file=out)
        for entry in sorted(os.listdir(run_dir)):
            inside = os.path.join(run_dir, entry)
            files = sorted(os.listdir(inside)) if os.path.isdir(inside) else []
            print(f"  {entry}{'/  ' + ' '.join(files) if files else ''}", file=out)
        print("\nload it later without the controller: the description is experiment.json, "
              "every state change is in events.jsonl", file=out)
        return 0 if expected else 1
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line.format(*row), file=out)
