"""Ctrl-C and interpreter exit: the controller still releases everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.faults

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.core import types_for_tests
    from nepi_lab import ExperimentController
    ec = ExperimentController(exp_id="interrupted", local_dir={results!r})
    apps = [ec.register_resource("test::Application", duration=60) for _ in range(5)]
    ec.deploy()
    ec.wait_started(timeout=10)
    print("started", flush=True)
    {ending}
""")


def run_dir_states(results):
    (run,) = os.listdir(os.path.join(results, "interrupted"))
    with open(os.path.join(results, "interrupted", run, "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    last = {}
    for e in events:
        last[e["guid"]] = e["to"]
    return last, events


def start(tmp_path, ending):
    code = SCRIPT.format(root=TESTS_DIR, results=str(tmp_path), ending=ending)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    return proc


def test_ctrl_c_in_a_wait_releases_everything_on_the_way_out(tmp_path):
    proc = start(tmp_path, "with ec:\n    ec.wait_finished()")
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    last, events = run_dir_states(tmp_path)
    assert set(last.values()) == {"RELEASED"}
    stopped = [e["guid"] for e in events if e["to"] == "STOPPED"]
    assert sorted(stopped) == sorted(last)  # each running app was stopped, then released


def test_sigterm_releases_everything_then_kills(tmp_path):
    proc = start(tmp_path, "ec.wait_finished()")
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, err  # released, then died of the signal as usual
    last, events = run_dir_states(tmp_path)
    assert set(last.values()) == {"RELEASED"}
    stopped = [e["guid"] for e in events if e["to"] == "STOPPED"]
    assert sorted(stopped) == sorted(last)


def test_sigterm_handling_is_only_taken_over_the_default_and_given_back(tmp_path):
    code = textwrap.dedent(f"""
        import signal, sys
        sys.path.insert(0, {TESTS_DIR!r})
        from nepi_lab import ExperimentController
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        a = ExperimentController(exp_id="a", local_dir={str(tmp_path)!r})
        b = ExperimentController(exp_id="b", local_dir={str(tmp_path)!r})
        taken = signal.getsignal(signal.SIGTERM)
        assert taken is not signal.SIG_DFL
        a.shutdown()
        assert signal.getsignal(signal.SIGTERM) is taken  # b still lives
        b.shutdown()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        mine = lambda *_: None
        signal.signal(signal.SIGTERM, mine)
        c = ExperimentController(exp_id="c", local_dir={str(tmp_path)!r})
        assert signal.getsignal(signal.SIGTERM) is mine  # the program's own handler stays
        c.shutdown()
        assert signal.getsignal(signal.SIGTERM) is mine
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_interpreter_exit_without_shutdown_releases_everything(tmp_path):
    proc = start(tmp_path, "sys.exit(0)")
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    last, _ = run_dir_states(tmp_path)
    assert set(last.values()) == {"RELEASED"}


@pytest.mark.parametrize("exc", ["RuntimeError('boom')"])
def test_an_exception_in_the_script_still_releases(tmp_path, exc):
    proc = start(tmp_path, f"raise {exc}")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "boom" in err
    last, _ = run_dir_states(tmp_path)
    assert set(last.values()) == {"RELEASED"}
