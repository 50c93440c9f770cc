"""NEPI scripts that rely on NEPI's folders, run with only their imports changed.

Each ``nepi_*`` function below is written as a NEPI 6 script would be (``ec.set``,
``register_connection``, ``deploy``, ``wait_finished``, ``trace``, ``shutdown``); a
NEPI script would import ``ExperimentController`` from ``nepi.execution.ec`` and
``ResourceState`` from ``nepi.execution.resource``.  The node's home is NEPI's default,
the user's home: the tests point ``$HOME`` at their temporary folder.  Downloads come
from a ``python -m http.server`` on 127.0.0.1 that the test starts and stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from nepi_lab import (
    AttributeValueError,
    DownloadError,
    ExperimentController,
    ExperimentFailedError,
    MissingTraceError,
    ResourceState,
    TraceAttr,
    UnknownTraceError,
    UnsafeNameError,
    load_run,
)

S = ResourceState

HELLO_C = r"""
#include <stdio.h>
int main(void) {
    FILE *f = fopen("bw.txt", "w");   /* in the working directory: ${RUN_HOME} */
    fprintf(f, "bandwidth 42\n");
    fclose(f);
    printf("hello from C\n");
    return 0;
}
"""

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture
def user_home(home, monkeypatch):
    """NEPI's default node home is the user's: here the test's temporary ``home``."""
    monkeypatch.setenv("HOME", home)
    return home


@pytest.fixture
def served(tmp_path):
    """A folder served by ``python -m http.server`` on 127.0.0.1: (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1",
                               "--directory", str(folder), "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 41234 (http://...) ..."
        port = int(line.split(" port ")[1].split()[0])
        yield folder, f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def written(ec, guid, name, timeout=5.0):
    """Trace ``name`` of ``guid`` once the application has written it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ec.trace(guid, name)
        except MissingTraceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def new_ec(tmp_path, exp_id="nepi-folders"):
    return ExperimentController(exp_id=exp_id, local_dir=str(tmp_path / "results"))


# -- the NEPI scripts ------------------------------------------------------------------------


def nepi_hello(ec, source):
    """NEPI's canonical example: build in the run's folder, run what was built there."""
    node = ec.register_resource("linux::Node")
    ec.set(node, "hostname", "localhost")
    ec.set(node, "cleanExperiment", True)
    ec.set(node, "cleanProcesses", True)

    app = ec.register_resource("linux::Application")
    ec.set(app, "sources", source)
    ec.set(app, "build", "gcc ${SRC}/hello.c -o hello")
    ec.set(app, "command", "${RUN_HOME}/hello")
    ec.register_connection(app, node)

    ec.deploy()
    ec.wait_finished(app)
    return app


# -- folders -----------------------------------------------------------------------------------


@needs_cc
def test_nepi_build_then_run_in_run_home(tmp_path, user_home):
    source = tmp_path / "hello.c"
    source.write_text(HELLO_C)
    ec = new_ec(tmp_path)
    try:
        app = nepi_hello(ec, str(source))
        assert ec.state(app) == S.FINISHED, ec.failures
        assert ec.trace(app, "stdout") == "hello from C\n"
        assert ec.trace(app, "bw.txt") == "bandwidth 42\n"  # a trace by file name
        run_home = ec.get_resource(app).expand("${RUN_HOME}")
        assert run_home == f"{user_home}/.nepi_lab/nepi-folders/{ec.run_id}/{app}"
        assert os.path.isfile(f"{run_home}/hello")  # built where the command ran it
    finally:
        ec.shutdown()
    assert not os.path.exists(run_home)  # cleanExperiment
    # the file the program wrote was collected with the declared traces
    assert ec.trace(app, "bw.txt") == "bandwidth 42\n"
    assert ec.trace(app, "bw.txt", TraceAttr.PATH) == os.path.join(ec.get_resource(app).results_dir, "bw.txt")


def test_nepi_script_without_a_compiler(tmp_path, user_home):
    """The same script with a shell script built by ``build`` (runs where gcc is missing)."""
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        ec.set(node, "hostname", "localhost")
        app = ec.register_resource("linux::Application")
        ec.set(app, "build", "printf '#!/bin/sh\\necho hi\\n' > hello; chmod +x hello")
        ec.set(app, "command", "${RUN_HOME}/hello && ${APP_HOME}/hello && ./hello")
        ec.register_connection(app, node)
        ec.deploy()
        ec.wait_finished(app)
        assert ec.state(app) == S.FINISHED, ec.failures
        assert ec.trace(app, "stdout") == "hi\nhi\nhi\n"
    finally:
        ec.shutdown()


def test_shared_folders_and_uploads(tmp_path, user_home):
    """``files`` go to ${SHARE}, ``libs`` to ${LIB}, ``bins`` to ${BIN} (on PATH,
    executable); SHARE and LIB are kept on the host for the next experiments."""
    data = tmp_path / "data.txt"
    data.write_text("some data\n")
    lib = tmp_path / "libthing.so"
    lib.write_bytes(b"\x7fELF not really")
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\necho tool says $1\n")  # not executable here: made so there
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        ec.set(node, "hostname", "localhost")
        app = ec.register_resource("linux::Application")
        ec.set(app, "files", str(data))
        ec.set(app, "libs", str(lib))
        ec.set(app, "bins", str(tool))
        ec.set(app, "command", 'cat ${SHARE}/data.txt; ls ${LIB}; mytool hi; echo "$USR $EXP"')
        ec.register_connection(app, node)
        ec.deploy()
        ec.wait_finished(app)
        assert ec.state(app) == S.FINISHED, ec.failures
        usr = f"{user_home}/.nepi_lab/.usr"
        expected = f"some data\nlibthing.so\ntool says hi\n{usr} {user_home}/.nepi_lab\n"
        assert ec.trace(app, "stdout") == expected
    finally:
        ec.shutdown()
    assert sorted(os.listdir(usr)) == ["lib", "share"]  # kept, like NEPI's nepi-usr
    assert (tmp_path / "home" / ".nepi_lab" / ".usr" / "share" / "data.txt").read_text() == "some data\n"


def test_http_sources_files_and_bins_are_downloaded_on_the_host(tmp_path, user_home, served):
    folder, base = served
    (folder / "hello.sh").write_text("echo hello from the web\n")
    (folder / "data.txt").write_bytes(b"\x00\x01binary\xff")
    (folder / "webtool").write_text("#!/bin/sh\necho webtool ran\n")
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        ec.set(node, "hostname", "localhost")
        app = ec.register_resource("linux::Application")
        ec.set(app, "sources", f"{base}/hello.sh")
        ec.set(app, "files", f"{base}/data.txt")
        ec.set(app, "bins", f"{base}/webtool")
        ec.set(app, "command", "sh ${SRC}/hello.sh; webtool; od -An -c ${SHARE}/data.txt | tr -s ' '")
        ec.register_connection(app, node)
        ec.deploy()
        ec.wait_finished(app)
        assert ec.state(app) == S.FINISHED, ec.failures
        assert ec.trace(app, "stdout") == "hello from the web\nwebtool ran\n \\0 001 b i n a r y 377\n"
        assert not [n for n in os.listdir(ec.get_resource(app).expand("${SRC}")) if ".part." in n]
    finally:
        ec.shutdown()


def test_a_failed_download_fails_the_application_naming_the_url(tmp_path, user_home, served):
    _, base = served
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        ec.set(node, "hostname", "localhost")
        app = ec.register_resource("linux::Application")
        ec.set(app, "sources", f"{base}/missing.tar.gz")
        ec.set(app, "command", "true")
        ec.register_connection(app, node)
        ec.deploy()
        with pytest.raises(ExperimentFailedError, match="missing.tar.gz"):  # a critical failure
            ec.wait_finished(app, timeout=10)
        assert ec.get_resource(app).outcome == S.FAILED
        failure = ec.get_resource(app).failure
        assert failure.error == DownloadError.__name__
        assert f"cannot download {base}/missing.tar.gz on localhost" in failure.message
        assert "404" in failure.message
        src = ec.get_resource(app).expand("${SRC}")
        assert not os.path.exists(src) or os.listdir(src) == []  # no partial file
    finally:
        ec.shutdown()


def test_only_http_urls_are_downloaded(tmp_path, user_home):
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        app = ec.register_resource("linux::Application", connectedTo=node, command="true",
                                   files="ftp://127.0.0.1/x.txt")
        ec.deploy()
        with pytest.raises(ExperimentFailedError):
            ec.wait_finished(app, timeout=10)
        assert "only http:// and https:// URLs are downloaded" in ec.get_resource(app).failure.message
    finally:
        ec.shutdown()


# -- traces by file name -------------------------------------------------------------------------


def test_trace_by_file_name_while_running_and_after_release(tmp_path, user_home):
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        ec.set(node, "hostname", "localhost")
        app = ec.register_resource("linux::Application")
        ec.set(app, "command", "echo first > bw.txt; sleep 30")
        ec.register_connection(app, node)
        ec.deploy()
        ec.wait_started(app)
        assert written(ec, app, "bw.txt") == "first\n"
        host_path = ec.trace(app, "bw.txt", TraceAttr.PATH)
        assert host_path == ec.get_resource(app).expand("${RUN_HOME}/bw.txt")  # on the host while it runs
        assert ec.trace(app, "bw.txt", TraceAttr.SIZE) == 6
        assert ec.trace(app, "bw.txt", TraceAttr.STREAM, block=3, offset=1) == "st\n"
        with pytest.raises(MissingTraceError, match="'nothing.txt'"):
            ec.trace(app, "nothing.txt")
        for name in ("../bw.txt", "sub/bw.txt", "..", "/etc/passwd"):
            with pytest.raises(UnsafeNameError):
                ec.trace(app, name)
        ec.release()
        assert ec.state(app) == S.RELEASED
        assert not os.path.exists(host_path)
        assert ec.trace(app, "bw.txt") == "first\n"
        local = ec.trace(app, "bw.txt", TraceAttr.PATH)
        assert local == os.path.join(ec.get_resource(app).results_dir, "bw.txt")  # the local copy
        with pytest.raises(UnknownTraceError):  # MissingTraceError is one
            ec.trace(app, "nothing.txt")
    finally:
        ec.shutdown()
    # inputs are not traces
    assert sorted(os.listdir(ec.get_resource(app).results_dir)) == ["bw.txt", "exitcode", "stderr", "stdout"]
    frame = load_run(ec.run_dir).resources_frame()  # the run directory still loads
    assert app in frame["guid"].tolist()


# -- splitStderr, sudo, tearDown ----------------------------------------------------------------


def test_split_stderr(tmp_path, user_home):
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        split = ec.register_resource("linux::Application", connectedTo=node, command="echo out; echo err >&2")
        merged = ec.register_resource("linux::Application", connectedTo=node, splitStderr=False,
                                      command="echo out; echo err >&2; exit 3", critical=False)
        ec.deploy()
        ec.wait_finished([split, merged])
        assert (ec.trace(split, "stdout"), ec.trace(split, "stderr")) == ("out\n", "err\n")
        assert (ec.trace(merged, "stdout"), ec.trace(merged, "stderr")) == ("out\nerr\n", "")
        assert ec.get_resource(merged).failure.stderr_tail.strip().endswith("err")  # from the merged file
    finally:
        ec.shutdown()
    assert ec.trace(merged, "stdout") == "out\nerr\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user, sudo would need a sudoers entry")
def test_sudo_as_root_runs_the_command_itself(tmp_path, user_home):
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        app = ec.register_resource("linux::Application", connectedTo=node, sudo=True,
                                   command='id -u; echo "sudo user: ${SUDO_USER-none}"; echo "$RUN_HOME"')
        ec.deploy()
        ec.wait_finished(app)
        assert ec.state(app) == S.FINISHED, ec.failures
        run_home = ec.get_resource(app).expand("${RUN_HOME}")
        assert ec.trace(app, "stdout") == f"0\nsudo user: none\n{run_home}\n"  # no sudo in between
    finally:
        ec.shutdown()


def test_tear_down_runs_at_release(tmp_path, user_home):
    outside = tmp_path / "torn-down.txt"
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        ec.set(node, "hostname", "localhost")
        app = ec.register_resource("linux::Application")
        ec.set(app, "command", "echo ran")
        ec.set(app, "tearDown", f'echo "bye from $RUN_HOME" > farewell.txt; pwd > {outside}')
        ec.register_connection(app, node)
        failing = ec.register_resource("linux::Application", connectedTo=node, command="true",
                                       tearDown="echo cannot >&2; exit 4")
        ec.deploy()
        ec.wait_finished([app, failing])
        run_home = ec.get_resource(app).expand("${RUN_HOME}")
        assert not outside.exists()  # not before the release
    finally:
        ec.shutdown()
    assert outside.read_text() == f"{run_home}\n"
    assert ec.trace(app, "farewell.txt") == f"bye from {run_home}\n"  # collected after it ran
    assert ec.state(failing) == S.RELEASED and ec.get_resource(failing).outcome == S.FINISHED
    problems = [f for f in ec.failures if f.guid == failing]
    assert [(p.step, p.returncode, p.critical) for p in problems] == [("tearDown", 4, False)]
    assert "cannot" in problems[0].stderr_tail


# -- Collector ------------------------------------------------------------------------------------


def nepi_collect(ec, count):
    """NEPI's Collector gathers one trace of many applications at release."""
    node = ec.register_resource("linux::Node")
    ec.set(node, "hostname", "localhost")
    apps = []
    for i in range(count):
        app = ec.register_resource("linux::Application")
        ec.set(app, "command", f"printf 'app {i}\\n\\377\\000'; echo bin{i} > result.bin")
        ec.register_connection(app, node)
        apps.append(app)
    collector = ec.register_resource("Collector")
    ec.set(collector, "traceName", "stdout")
    ec.set(collector, "subDir", "outputs")
    for app in apps:
        ec.register_connection(collector, app)
    files = ec.register_resource("Collector")
    ec.set(files, "traceName", "result.bin")
    ec.set(files, "rename", "bin")
    for app in apps:
        ec.register_connection(files, app)
    ec.deploy()
    ec.wait_finished(apps)
    return apps


def test_collector_copies_a_trace_of_every_connected_resource(tmp_path, user_home):
    ec = new_ec(tmp_path)
    try:
        apps = nepi_collect(ec, 3)
        outputs = os.path.join(ec.run_dir, "outputs")
        assert not os.path.exists(outputs)  # only at release
    finally:
        ec.shutdown()
    assert sorted(os.listdir(outputs)) == [f"{a}.stdout" for a in apps]
    for i, a in enumerate(apps):
        with open(os.path.join(outputs, f"{a}.stdout"), "rb") as f:
            assert f.read() == f"app {i}\n".encode() + b"\xff\x00"  # byte for byte
        with open(os.path.join(ec.run_dir, f"{a}.bin"), "rb") as f:
            assert f.read() == f"bin{i}\n".encode()
    assert not [f for f in ec.failures if f.rtype == "Collector"]
    assert load_run(ec.run_dir).resources_frame()["type"].tolist().count("Collector") == 2


def test_collector_records_a_missing_trace_and_copies_the_rest(tmp_path, user_home):
    ec = new_ec(tmp_path)
    try:
        node = ec.register_resource("linux::Node")
        writes = ec.register_resource("linux::Application", connectedTo=node, command="echo 1 > out.txt")
        silent = ec.register_resource("linux::Application", connectedTo=node, command="true")
        collector = ec.register_resource("Collector", traceName="out.txt")
        ec.register_connection(collector, writes)
        ec.register_connection(collector, silent)
        ec.deploy()
        ec.wait_finished([writes, silent])
    finally:
        ec.shutdown()
    with open(os.path.join(ec.run_dir, f"{writes}.out.txt")) as f:
        assert f.read() == "1\n"
    assert not os.path.exists(os.path.join(ec.run_dir, f"{silent}.out.txt"))
    problems = [f for f in ec.failures if f.guid == collector]
    assert [(p.error, p.critical) for p in problems] == [("MissingTraceError", False)]
    assert f"resource {silent}" in problems[0].message


def test_collector_names_are_checked_at_set(tmp_path):
    ec = new_ec(tmp_path)
    try:
        collector = ec.register_resource("Collector")
        for attribute in ("subDir", "rename", "traceName"):
            with pytest.raises(AttributeValueError, match=attribute):
                ec.set(collector, attribute, "../escape")
        ec.set(collector, "subDir", "fine")
        assert ec.get(collector, "subDir") == "fine"
        started = time.monotonic()
        ec.deploy(collector)
        ec.wait_deployed(collector, timeout=5)
        assert time.monotonic() - started < 5
    finally:
        ec.shutdown()
