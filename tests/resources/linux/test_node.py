"""linux::Node on localhost: commands, files, the folders on the host, SSH refusal."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

from nepi_lab import CommandError, ExperimentFailedError, ResourceState
from nepi_lab.resources.linux import CommandResult, CommandTimeoutError
from nepi_lab.resources.linux._local import COPY_IN_LOOP

from .conftest import all_gone, run_on_loop

S = ResourceState


@pytest.fixture
def deployed(ec, node):
    ec.deploy(node)
    ec.wait_deployed(node, timeout=10)
    return ec.get_resource(node)


def test_run_mirrors_subprocess(ec, deployed):
    result = run_on_loop(ec, deployed.run("echo out; echo err >&2"))
    assert result == CommandResult(0, "out\n", "err\n", "echo out; echo err >&2")
    assert result.to_dict()["stdout"] == "out\n"
    with pytest.raises(AttributeError):
        result.returncode = 1  # frozen


def test_run_check_raises_command_error_with_the_stderr_tail(ec, deployed):
    with pytest.raises(CommandError) as info:
        run_on_loop(ec, deployed.run("echo something broke >&2; exit 4"))
    err = info.value
    assert (err.command, err.returncode) == ("echo something broke >&2; exit 4", 4)
    assert "something broke" in err.stderr_tail and "localhost" in str(err)
    unchecked = run_on_loop(ec, deployed.run("exit 4", check=False))
    assert unchecked.returncode == 4


def test_run_feeds_input_and_takes_cwd_and_env(ec, deployed, tmp_path):
    result = run_on_loop(ec, deployed.run('cat; pwd; echo "$WHO"', input="line\n", cwd=str(tmp_path),
                                          env={"WHO": "a b; $(rm -rf /)"}))
    assert result.stdout == f"line\n{tmp_path}\na b; $(rm -rf /)\n"


def test_run_timeout_kills_the_whole_process_group(ec, deployed, marker):
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError) as info:
        run_on_loop(ec, deployed.run("sleep 30 & sleep 31", timeout=0.3, env={"MARK": marker}))
    assert time.monotonic() - started < 5
    assert isinstance(info.value, TimeoutError) and info.value.returncode is None
    assert "timed out after 0.3 s" in str(info.value)
    assert all_gone(marker)


def test_large_output_is_read_without_deadlock(ec, deployed):
    command = "head -c 3000000 /dev/zero | tr '\\0' x; head -c 200000 /dev/zero >&2"
    result = run_on_loop(ec, deployed.run(command))
    assert len(result.stdout) == 3_000_000 and len(result.stderr) == 200_000


def test_upload_download_and_write_file(ec, deployed, tmp_path):
    src = tmp_path / "data.txt"
    src.write_text("payload")
    folder = tmp_path / "tree"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f").write_text("deep")
    remote = os.path.join(deployed.node_home, "copy.txt")
    run_on_loop(ec, deployed.upload(str(src), remote))
    run_on_loop(ec, deployed.upload(str(folder), os.path.join(deployed.node_home, "tree")))
    run_on_loop(ec, deployed.write_file(os.path.join(deployed.node_home, "script"), "echo hi", 0o755))
    assert pathlib.Path(remote).read_text() == "payload"
    assert pathlib.Path(deployed.node_home, "tree", "sub", "f").read_text() == "deep"
    assert os.access(os.path.join(deployed.node_home, "script"), os.X_OK)
    back = tmp_path / "back.txt"
    assert run_on_loop(ec, deployed.download(remote, str(back))) is True
    assert back.read_text() == "payload"
    assert run_on_loop(ec, deployed.download(remote + ".missing", str(back) + "2")) is False
    with pytest.raises(FileNotFoundError):
        run_on_loop(ec, deployed.upload(str(tmp_path / "nope"), remote))


def test_local_file_operations_cover_their_edge_cases(ec, deployed, tmp_path):
    base = pathlib.Path(deployed.node_home)
    # makedirs: missing parents, an existing folder, an existing file in the way
    run_on_loop(ec, deployed.makedirs(str(base / "a" / "b")))
    run_on_loop(ec, deployed.makedirs(str(base / "a" / "b")))
    (base / "file").write_text("x")
    with pytest.raises(FileExistsError):
        run_on_loop(ec, deployed.makedirs(str(base / "file")))
    # download: a hard link; again (same file); over another file; into a missing folder
    remote = base / "a" / "out"
    remote.write_text("one")
    local = tmp_path / "out"
    assert run_on_loop(ec, deployed.download(str(remote), str(local))) is True
    assert os.path.samefile(remote, local)
    assert run_on_loop(ec, deployed.download(str(remote), str(local))) is True
    local.unlink()
    local.write_text("stale")
    assert run_on_loop(ec, deployed.download(str(remote), str(local))) is True
    assert local.read_text() == "one" and os.path.samefile(remote, local)
    with pytest.raises(FileNotFoundError):
        run_on_loop(ec, deployed.download(str(remote), str(tmp_path / "no" / "out")))
    # download across file systems copies (no hard link possible)
    if os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != os.stat(base).st_dev:
        shm = pathlib.Path("/dev/shm") / f"nepi-lab-test-{os.getpid()}"
        try:
            assert run_on_loop(ec, deployed.download(str(remote), str(shm))) is True
            assert shm.read_text() == "one" and not os.path.samefile(remote, shm)
            assert ec._runner._executor is None  # a small file: copied in the loop, no thread
            shm.unlink()
            large = base / "large"
            large.write_bytes(b"x" * (COPY_IN_LOOP + 1))
            assert run_on_loop(ec, deployed.download(str(large), str(shm))) is True
            assert shm.read_bytes() == large.read_bytes() and ec._runner._executor is not None
            assert run_on_loop(ec, deployed.download(str(base / "gone"), str(shm))) is False
        finally:
            shm.unlink(missing_ok=True)
    # remove_tree: a flat folder, a folder with subfolders, a missing folder
    flat = base / "flat"
    flat.mkdir()
    (flat / "x").write_text("1")
    (flat / "y").write_text("2")
    run_on_loop(ec, deployed.executor.remove_tree(str(flat)))
    deep = base / "deep"
    (deep / "s" / "t").mkdir(parents=True)
    (deep / "f").write_text("1")
    (deep / "s" / "t" / "g").write_text("2")
    run_on_loop(ec, deployed.executor.remove_tree(str(deep)))
    run_on_loop(ec, deployed.executor.remove_tree(str(base / "missing")))
    assert not flat.exists() and not deep.exists()
    # links inside, to a folder and to a file outside: removed, what they point to kept
    outside = base / "outside"
    (outside / "kept").mkdir(parents=True)
    (outside / "file").write_text("3")
    linked = base / "linked"
    (linked / "s").mkdir(parents=True)
    (linked / "s" / "to-folder").symlink_to(outside)
    (linked / "to-file").symlink_to(outside / "file")
    (linked / "s" / "g").write_text("4")
    run_on_loop(ec, deployed.executor.remove_tree(str(linked)))
    assert not linked.exists() and os.path.lexists(outside / "kept") and (outside / "file").read_text() == "3"


def test_folders_on_the_host_follow_the_documented_layout(ec, deployed, home):
    assert deployed.home == home
    assert deployed.exp_home == os.path.join(home, ".nepi_lab", ec.exp_id)
    assert deployed.run_home == os.path.join(deployed.exp_home, ec.run_id)
    assert deployed.node_home == os.path.join(deployed.run_home, str(deployed.guid))
    assert os.path.isdir(deployed.bin_dir)


def test_clean_experiment_removes_the_run_folder_and_empty_parents(ec, deployed, home):
    ec.release()
    assert os.listdir(home) == []


def test_without_clean_experiment_the_folder_stays(ec, home):
    node = ec.register_resource("linux::Node", home=home, cleanExperiment=False)
    app = ec.register_resource("linux::Application", connectedTo=node, command="echo kept")
    ec.deploy()
    ec.wait_finished(app, timeout=10)
    ec.release()
    rm = ec.get_resource(node)
    with open(os.path.join(rm.run_home, str(app), "stdout")) as f:
        assert f.read() == "kept\n"


def test_home_relative_to_the_user_home(ec, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    node = ec.register_resource("linux::Node", home="lab")
    ec.deploy(node)
    ec.wait_deployed(node, timeout=10)
    assert ec.get_resource(node).home == str(tmp_path / "lab")


def test_two_nodes_on_one_host_share_the_run_folder(ec, home):
    a = ec.register_resource("linux::Node", home=home)
    b = ec.register_resource("linux::Node", home=home)
    ec.deploy()
    ec.wait_deployed(timeout=10)
    ec.release(a)
    assert os.path.isdir(ec.get_resource(b).node_home)  # a did not remove b's folders
    ec.release(b)
    assert os.listdir(home) == []


@pytest.mark.parametrize("nodes", [2, 5])
def test_nodes_of_one_host_released_together_leave_no_run_folder(ec, home, nodes):
    guids = [ec.register_resource("linux::Node", home=home) for _ in range(nodes)]
    ec.deploy()
    ec.wait_deployed(timeout=10)
    ec.release(guids)  # together: each sees the others still releasing; the last removes the run's
    assert os.listdir(home) == []


def test_files_kept_by_one_node_s_application_keep_the_run_folder_whoever_is_last(ec, home):
    a = ec.register_resource("linux::Node", home=home)
    b = ec.register_resource("linux::Node", home=home)
    kept = ec.register_resource("linux::Application", connectedTo=a, command="echo kept")
    ec.deploy()
    ec.wait_finished(kept, timeout=10)
    app = ec.get_resource(kept)
    app.keeps_files_on_host = True  # as when its traces could not be written locally (a full disk)
    folder = app.expand("${APP_HOME}")
    ec.release([kept, a])
    ec.release(b)  # the last node: the run's folder holds a's application's files
    assert os.path.isfile(os.path.join(folder, "stdout"))


def test_a_remote_hostname_goes_over_ssh_and_fails_clearly_when_unreachable(ec, home):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    node = ec.register_resource("linux::Node", hostname="127.0.0.2", port=port, home=home,
                                strictHostKeyChecking=False, connectTimeout=5)
    ec.deploy(node)
    with pytest.raises(ExperimentFailedError):
        ec.wait_deployed(node, timeout=10)
    (failure,) = ec.failures
    assert failure.step == "discover"
    assert "SSH" in failure.message and f"127.0.0.2:{port}" in failure.message


def test_ssh_attributes_are_declared_with_safe_defaults(ec):
    node = ec.register_resource("linux::Node")
    assert ec.get(node, "strictHostKeyChecking") is True
    for name in ("username", "port", "identityFile", "knownHosts", "connectTimeout", "gateway", "home",
                 "cleanExperiment", "cleanProcesses"):
        ec.get(node, name)  # declared


def test_node_is_long_lived(ec, node):
    ec.deploy()
    ec.wait_finished(node, timeout=10)
    assert ec.state(node) == S.STARTED


def test_inside_a_running_loop_as_in_a_notebook(tmp_path, home):
    """Inside a running loop (a Jupyter kernel), cells await the node's coroutines; the
    processes run on the controller's own loop."""
    import asyncio

    from nepi_lab import ExperimentController

    async def cell():
        ec = ExperimentController(exp_id="nb", local_dir=str(tmp_path / "results"))
        node = ec.register_resource("linux::Node", home=home)
        app = ec.register_resource("linux::Application", connectedTo=node, command="echo from-kernel")
        ec.deploy()
        await ec.wait_finished_async(app, timeout=10)
        result = await ec.get_resource(node).run("echo direct")
        await ec.shutdown_async()
        return ec.trace(app, "stdout"), result.stdout

    assert asyncio.run(cell()) == ("from-kernel\n", "direct\n")
