"""What NEPI scripts read of an application besides its traces: its folder on the host
(``ec.get_resource(app).run_home``), the deploy step's traces (``deploy_stdout``,
``deploy_stderr``, ``deploy_exitcode``) and a capture file named by tcpdump's ``w``.

The ``nepi_*`` functions are written the way a NEPI 6 script is (``ec.set``,
``register_connection``, ``deploy``, ``wait_finished``, ``trace``); the tests check
what such a script then finds.  Downloads come from an HTTP server on 127.0.0.1 that
the test starts in a thread and stops.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import random
import shutil
import struct
import threading

import pytest

from nepi_lab import AttributeValueError, ResourceState, TraceAttr

from .conftest import run_on_loop, wait_for_trace
from .sshd import sshd  # noqa: F401 - the session fixture

S = ResourceState


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def web(tmp_path):
    """(folder, base URL): files put in the folder are served on 127.0.0.1."""
    folder = tmp_path / "web"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-web")
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def nepi_node(ec, home):
    node = ec.register_resource("linux::Node")
    ec.set(node, "hostname", "localhost")
    ec.set(node, "home", home)
    ec.set(node, "cleanExperiment", True)
    ec.set(node, "cleanProcesses", True)
    return node


# -- run_home ------------------------------------------------------------------------------------


def test_run_home_is_the_folder_the_command_ran_in(ec, home):
    node = nepi_node(ec, home)
    app = ec.register_resource("linux::Application")
    ec.set(app, "command", "pwd; echo 17 > answer.txt")
    ec.register_connection(app, node)
    rm = ec.get_resource(app)
    with pytest.raises(RuntimeError, match=r"known once it is provisioned .*wait_deployed"):
        rm.run_home  # noqa: B018 - NEW: no folder yet
    with pytest.raises(RuntimeError, match="known once it is provisioned"):
        rm.app_home  # noqa: B018

    ec.deploy()
    ec.wait_finished(app)

    run_home = rm.run_home
    assert ec.trace(app, "stdout") == run_home + "\n"  # the command ran there
    assert rm.app_home == run_home == rm.expand("${RUN_HOME}") == rm.expand("${APP_HOME}")
    assert os.path.dirname(run_home) == ec.get_resource(node).run_home
    # what a NEPI test does with it: read a file of the application through its node
    shown = run_on_loop(ec, ec.get_resource(node).run(f"cat {run_home}/answer.txt"))
    assert shown.stdout == "17\n"
    ec.release()
    assert rm.run_home == run_home and not os.path.exists(run_home)  # the path stays, the folder went


def test_trace_path_is_in_run_home_while_the_application_runs(ec, home):
    node = nepi_node(ec, home)
    app = ec.register_resource("linux::Application")
    ec.set(app, "command", "echo started; exec sleep 60")
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_started(app, timeout=10)
    assert wait_for_trace(ec, app, "stdout", "started\n") == "started\n"
    path = ec.trace(app, "stdout", attr=TraceAttr.PATH)
    assert path == os.path.join(ec.get_resource(app).run_home, "stdout")
    ec.stop(app, timeout=10)
    # once collected, the path is the run directory's copy (a documented difference)
    assert ec.trace(app, "stdout", attr=TraceAttr.PATH) != path


# -- deploy traces ---------------------------------------------------------------------------------


def nepi_http_sources(ec, home, urls):
    node = nepi_node(ec, home)
    app = ec.register_resource("linux::Application")
    ec.set(app, "sources", ";".join(urls))
    ec.set(app, "command", "ls ${SRC}")
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_finished([app])
    return app


def test_deploy_traces_after_http_sources(ec, home, web):
    folder, base = web
    (folder / "model.tar.gz").write_bytes(b"\x1f\x8b not really")
    (folder / "logo.png").write_bytes(b"\x89PNG not really")
    app = nepi_http_sources(ec, home, [f"{base}/model.tar.gz", f"{base}/logo.png"])
    assert ec.state(app) == S.FINISHED
    src = ec.get_resource(app).expand("${SRC}")

    assert ec.trace(app, "deploy_exitcode") == "0\n"  # NEPI's format: the number, a newline
    assert ec.trace(app, "deploy_stdout") == f"{src}/model.tar.gz\n{src}/logo.png\n"
    assert ec.trace(app, "deploy_stderr") == ""
    assert ec.trace(app, "stdout") == "logo.png\nmodel.tar.gz\n"

    run_home = ec.get_resource(app).run_home
    ec.release()  # collected into the run directory with the other traces
    assert not os.path.exists(run_home)
    assert ec.trace(app, "deploy_exitcode") == "0\n"
    assert ec.trace(app, "deploy_stdout").endswith("/logo.png\n")


def test_deploy_traces_hold_build_and_install_output(ec, home, tmp_path):
    (tmp_path / "notes.txt").write_text("read me\n")
    node = nepi_node(ec, home)
    app = ec.register_resource("linux::Application")
    ec.set(app, "files", str(tmp_path / "notes.txt"))
    ec.set(app, "build", "echo building; echo 'a warning' >&2")
    ec.set(app, "install", "echo installing")
    ec.set(app, "command", "cat ${SHARE}/notes.txt")
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_finished(app)
    assert ec.state(app) == S.FINISHED
    share = ec.get_resource(app).expand("${SHARE}")
    assert ec.trace(app, "deploy_stdout") == f"{share}/notes.txt\nbuilding\na warning\ninstalling\n"
    assert ec.trace(app, "build") == "building\na warning\n"  # the step traces are unchanged
    assert ec.trace(app, "install") == "installing\n"
    assert (ec.trace(app, "deploy_exitcode"), ec.trace(app, "deploy_stderr")) == ("0\n", "")


def test_a_failed_build_is_in_the_deploy_traces_and_fails_the_application(ec, home):
    node = nepi_node(ec, home)
    app = ec.register_resource("linux::Application", critical=False)
    ec.set(app, "build", "echo compiling; echo 'hello.c:1: error' >&2; exit 3")
    ec.set(app, "install", "echo never reached")
    ec.set(app, "command", "echo never started")
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_finished(app)

    assert ec.state(app) == S.FAILED
    [failure] = ec.failures
    assert (failure.guid, failure.step, failure.returncode) == (app, "provision", 3)
    assert "build step" in failure.message and "hello.c:1: error" in failure.message
    assert ec.trace(app, "deploy_exitcode") == "3\n"
    assert ec.trace(app, "deploy_stdout") == "compiling\nhello.c:1: error\n"  # install never ran
    stderr = ec.trace(app, "deploy_stderr")
    assert "exited with status 3" in stderr and stderr.endswith("\n")
    assert ec.trace(app, "install") == "" and ec.trace(app, "stdout") == ""


def test_a_failed_download_gives_deploy_exitcode_1_and_names_the_url(ec, home, web):
    folder, base = web
    (folder / "here.txt").write_text("here\n")
    node = nepi_node(ec, home)
    app = ec.register_resource("linux::Application", critical=False)
    ec.set(app, "sources", f"{base}/here.txt;{base}/missing.txt")
    ec.set(app, "command", "true")
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_finished(app)
    assert ec.state(app) == S.FAILED
    assert ec.trace(app, "deploy_exitcode") == "1\n"
    assert ec.trace(app, "deploy_stdout").endswith("/src/here.txt\n")  # what was placed before
    assert f"{base}/missing.txt" in ec.trace(app, "deploy_stderr")


def test_run_home_and_deploy_traces_on_an_ssh_host(ec, sshd, tmp_path):  # noqa: F811 - the fixture
    (tmp_path / "input.txt").write_text("42\n")
    node = ec.register_resource("linux::Node", **sshd.node_attributes())
    app = ec.register_resource("linux::Application")
    ec.set(app, "sources", str(tmp_path / "input.txt"))
    ec.set(app, "build", "cp ${SRC}/input.txt copy.txt && echo copied")
    ec.set(app, "command", "cat copy.txt")
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_finished(app, timeout=30)
    assert ec.state(app) == S.FINISHED, ec.failures
    run_home = ec.get_resource(app).run_home
    assert run_home.startswith(sshd.home + "/.nepi_lab/") and run_home.endswith(f"/{app}")
    assert ec.trace(app, "deploy_stdout") == f"{run_home}/src/input.txt\ncopied\n"
    assert (ec.trace(app, "deploy_exitcode"), ec.trace(app, "deploy_stderr")) == ("0\n", "")
    ec.release()  # collected over SFTP, removed from the host
    assert ec.trace(app, "deploy_exitcode") == "0\n" and ec.trace(app, "stdout") == "42\n"
    assert not os.path.exists(run_home)


def test_without_a_deploy_step_there_are_no_deploy_files(ec, home):
    node = nepi_node(ec, home)
    app = ec.register_resource("linux::Application")
    ec.set(app, "command", "ls")
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_finished(app)
    assert ec.state(app) == S.FINISHED
    assert ec.trace(app, "stdout") == "stderr\nstdout\n"  # nothing else in the folder, as in NEPI
    assert ec.trace(app, "deploy_exitcode") == ""  # declared: empty, not an error
    ec.release()
    assert not ec.failures  # nothing missing was reported while collecting
    results = os.listdir(ec.get_resource(app).results_dir)
    assert not [name for name in results if name.startswith("deploy_")]


# -- tcpdump's w -------------------------------------------------------------------------------------


def test_w_true_false_or_a_name(ec, node, tmp_path):
    dump = ec.register_resource("linux::Tcpdump", connectedTo=node)
    rm = ec.get_resource(dump)
    ec.set(dump, "w", False)  # nepi_lab's meaning, kept: print the packets
    assert (ec.get(dump, "writePcap"), ec.get(dump, "w")) == (False, "pcap")
    assert "-w" not in rm._compose()
    ec.set(dump, "w", "custom_output")  # NEPI's: the capture file's name, and it is written
    assert (ec.get(dump, "writePcap"), ec.get(dump, "pcapFile")) == (True, "custom_output")
    assert rm._compose().endswith(' -w "${APP_HOME}/custom_output"')
    ec.set(dump, "w", "false")
    assert (ec.get(dump, "writePcap"), ec.get(dump, "w")) == (False, "custom_output")
    ec.set(dump, "w", True)
    assert rm._compose().endswith(' -w "${APP_HOME}/custom_output"')
    for bad in ("stdout", "deploy_exitcode", "stdin", "../up", "a b", "$(id)"):
        with pytest.raises(AttributeValueError, match="pcapFile"):
            ec.set(dump, "w", bad)
    assert ec.get(dump, "w") == "custom_output"
    saved = ec.save(str(tmp_path / "dump.json"))
    with open(saved) as f:
        [attributes] = [r.get("attributes", {}) for r in json.load(f)["resources"] if r["guid"] == dump]
    assert attributes == {"pcapFile": "custom_output", "writePcap": True}  # the own names only


@pytest.mark.skipif(os.geteuid() != 0, reason="capturing packets needs root")
@pytest.mark.skipif(not (shutil.which("tcpdump") and shutil.which("ping")), reason="needs tcpdump and ping")
def test_nepi_w_names_the_capture_file(ec, home):
    target = f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    node = nepi_node(ec, home)
    pcap = ec.register_resource("linux::Tcpdump")
    ec.set(pcap, "i", "lo")
    ec.set(pcap, "w", "custom_output")
    ec.set(pcap, "expression", f"icmp and host {target}")  # lo answers all of 127/8: ours only
    ec.register_connection(pcap, node)
    ping = ec.register_resource("linux::Ping")
    ec.set(ping, "count", "3")
    ec.set(ping, "interval", "0.1")
    ec.set(ping, "target", target)
    ec.register_connection(ping, node)
    ec.register_condition(ping, "START", pcap, "STARTED")
    ec.register_condition(pcap, "STOP", ping, "FINISHED")
    ec.deploy()
    ec.wait_finished([pcap, ping], timeout=30)
    assert (ec.state(pcap), ec.state(ping)) == (S.STOPPED, S.FINISHED), ec.failures

    output = ec.trace(pcap, "custom_output")
    assert isinstance(output, bytes) and struct.unpack("<I", output[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D)
    packets, offset = 0, 24
    while offset + 16 <= len(output):
        offset += 16 + struct.unpack("<IIII", output[offset:offset + 16])[2]
        packets += 1
    assert packets == 6  # three requests, three replies
    assert ec.trace(pcap, "pcap") == ""  # the capture went to the named file only
    ec.release()
    local = os.path.join(ec.get_resource(pcap).results_dir, "custom_output")
    assert os.path.isfile(local) and ec.trace(pcap, "custom_output") == output
