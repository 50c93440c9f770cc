"""NEPI's ``LinuxNode(ec, guid)`` used without a controller, as a command helper on this
machine: it deploys itself on its first command and leaves nothing behind when released,
garbage-collected or closed at exit."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import textwrap

import psutil
import pytest

from nepi_lab import ExperimentController, ReadOnlyAttributeError
from nepi_lab.compat import ExitCode, LinuxNode, ProcStatus, nepi_view


class Scenario:
    """What a NEPI script passed as ``ec``: any object, here with an ``exp_id``."""

    exp_id = "scenario-7"


def local_node(home: str) -> LinuxNode:
    node = LinuxNode(Scenario(), 1)
    node.set("hostname", "localhost")
    node.set("home", home)
    return node


@pytest.fixture
def node(home):
    node = local_node(home)
    yield node
    node.release()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_attributes_are_taken_before_the_first_command(node, home):
    assert node.standalone and node.get("hostname") == "localhost"
    assert node.state.name == "NEW"  # nothing deployed yet
    (out, err), proc = node.execute("echo $GREETING from $(pwd)", env={"GREETING": "hello"})
    assert out.startswith("hello from /") and err == "" and proc.poll() == 0
    assert node.state.name == "STARTED" and node.ec.exp_id == "scenario-7"
    assert node.exp_home.startswith(os.path.join(home, ".nepi_lab", "scenario-7") + "/")
    with pytest.raises(ReadOnlyAttributeError):
        node.set("home", "/elsewhere")  # Flags.Design: only before the deploy


def test_a_background_process_is_followed_and_killed(node):
    node.find_home()
    where = os.path.join(node.exp_home, "ticker")
    node.mkdir(where, clean=True)
    node.run("echo tick; exec sleep 60", where)
    pid, ppid = node.getpid(where)
    assert alive(pid) and node.status(pid, ppid) == ProcStatus.RUNNING
    node.kill(pid, ppid)
    assert node.status(pid, ppid) == ProcStatus.FINISHED and not alive(pid)
    (out, _), _ = node.check_output(where, "stdout")
    assert out == "tick\n"
    node.rmdir(where)
    assert not os.path.exists(where)


def test_run_and_wait_gives_the_exit_status(node):
    node.find_home()
    where = os.path.join(node.exp_home, "job")
    (out, err), proc = node.run_and_wait("echo done", where, shfile="job.sh", pidfile="pid",
                                         ecodefile="status", stdout="out", stderr="err")
    assert (out, err, proc.poll()) == ("done\n", "", 0)
    assert node.exitcode(where, "status") == ExitCode.OK
    (_, err), proc = node.run_and_wait("sh -c 'echo broken >&2; exit 7'", where, raise_on_error=False)
    assert node.exitcode(where) == 7 and proc.poll() == 7 and "broken" in err
    with pytest.raises(RuntimeError, match="exit status 7"):
        node.run_and_wait("sh -c 'exit 7'", where)
    node.run_and_wait("no-such-command-here", where, raise_on_error=False)
    assert node.exitcode(where) == 127
    (_, err), _ = node.check_errors(where)
    assert "no-such-command-here" in err
    node.run_and_wait("true", where)
    (out, err), proc = node.check_errors(where)
    assert (out, err, proc.poll()) == ("", "", 0)
    assert node.exitcode(os.path.join(node.exp_home, "nothing-ran-here")) == ExitCode.FILENOTFOUND


def test_files_go_up_are_copied_and_removed(node, tmp_path):
    node.find_home()
    where = os.path.join(node.exp_home, "files")
    node.mkdir(where, clean=True)
    node.upload("a line\n", os.path.join(where, "note.txt"), text=True)
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "inside.dat").write_text("x")
    single = tmp_path / "single.dat"
    single.write_text("y")
    node.copy([str(folder), str(single)], f"root@localhost:{where}/copied")
    node.copy(str(single), os.path.join(where, "alone.dat"))
    (out, _), _ = node.execute(f"cd {where} && find . | sort")
    assert out.split() == [".", "./alone.dat", "./copied", "./copied/bundle", "./copied/bundle/inside.dat",
                           "./copied/single.dat", "./note.txt"]
    with pytest.raises(ValueError, match="only copies to this node's own host"):
        node.copy(str(single), "root@10.0.0.9:/tmp/x")
    node.rmdir(where)
    assert not os.path.exists(where)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed on this machine")
def test_a_program_is_compiled_and_run(node, tmp_path):
    node.find_home()
    where = os.path.join(node.exp_home, "build")
    node.mkdir(where, clean=True)
    source = 'int main(void) { return puts("built here") < 0; }\n'
    node.upload("#include <stdio.h>\n" + source, os.path.join(where, "main.c"), text=True)
    (_, err), proc = node.execute(f"cd {where} && gcc -Wall -o main main.c")
    assert proc.poll() == 0, err
    (out, _), _ = node.execute(f"{where}/main")
    assert out == "built here\n"
    node.execute(f"{where}/main > {where}/main.out")
    node.download(os.path.join(where, "main.out"), str(tmp_path))
    assert (tmp_path / "main.out").read_text() == "built here\n"


def test_release_leaves_nothing_behind(home):
    node = local_node(home)
    node.find_home()
    where = os.path.join(node.exp_home, "left")
    node.run("exec sleep 60", where, create_home=True)
    pid, _ = node.getpid(where)
    node.run_and_wait("sleep 60", where, wait_run=False, pidfile="p2")
    results = node._own.local_dir
    assert alive(pid) and os.path.isdir(results)
    node.release()
    node.release()  # idempotent
    assert not alive(pid)
    assert os.listdir(home) == []  # .nepi_lab and everything under it removed
    assert not os.path.exists(results)
    with pytest.raises(RuntimeError, match="released"):
        node.execute("true")


def test_garbage_collection_releases_the_node(home):
    node = local_node(home)
    node.find_home()
    node.run("exec sleep 60", node.exp_home)
    pid, _ = node.getpid(node.exp_home)
    results = node._own.local_dir
    del node
    gc.collect()
    assert not alive(pid) and os.listdir(home) == [] and not os.path.exists(results)


def test_interpreter_exit_releases_the_node(home, tmp_path):
    script = textwrap.dedent(f"""
        from nepi_lab.compat import LinuxNode

        class Scenario:
            exp_id = "at-exit"

        node = LinuxNode(Scenario(), 1)
        node.set("hostname", "localhost")
        node.set("home", {home!r})
        node.run("exec sleep 60", {home!r})
        print(node.getpid({home!r})[0], node._own.local_dir, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    pid, results = result.stdout.split()
    assert not alive(int(pid)) and not os.path.exists(results)
    assert sorted(os.listdir(home)) == ["pidfile", "stderr", "stdout"]  # written outside its folders


def test_the_clean_methods_act_on_what_the_node_made(node, home):
    node.find_home()
    node.mkdir([node.lib_dir, node.node_home])
    other = os.path.join(home, ".nepi_lab", "another-experiment")
    os.makedirs(other)
    node.run("exec sleep 60", node.node_home)
    pid, _ = node.getpid(node.node_home)
    node.clean_processes()
    assert not alive(pid)
    node.clean_experiment()
    assert not os.path.exists(node.exp_home) and os.path.isdir(node.lib_dir)
    node.clean_home()
    assert not os.path.exists(node.lib_dir) and not os.path.exists(other)


def test_a_node_that_cannot_deploy_says_why(home):
    blocker = os.path.join(home, "a-file")
    open(blocker, "w").close()
    node = local_node(os.path.join(blocker, "below"))  # a home below a file: cannot be made
    try:
        with pytest.raises(RuntimeError, match="deploy failed"):
            node.execute("true")
    finally:
        node.release()
    os.remove(blocker)


def test_a_node_of_an_experiment_stays_a_view(tmp_path, home):
    with ExperimentController(exp_id="views", local_dir=str(tmp_path / "results")) as ec:
        guid = ec.register_resource("linux::Node", hostname="localhost", home=home)
        ec.deploy()
        ec.wait_deployed(guid, timeout=60)
        native = ec.get_resource(guid)
        by_guid = LinuxNode(ec, guid)
        assert not by_guid.standalone and by_guid.native is native and by_guid == nepi_view(native)
        assert by_guid.exp_home == native.exp_home
        (out, _), _ = by_guid.execute("echo viewed")
        assert out == "viewed\n"
        with pytest.raises(RuntimeError, match="its controller releases it"):
            by_guid.release()
        with pytest.raises(RuntimeError, match="standalone"):
            by_guid.clean_home()
