"""What a person does to a running experiment in JupyterLab, and what must follow.

Each test writes a small notebook, opens it in a real JupyterLab in Chromium and acts
through JupyterLab's own commands (the Kernel and Run menus, Ctrl+Enter):

- **Kernel → Interrupt** during a blocking ``ec.wait_finished()`` raises
  ``KeyboardInterrupt`` in that cell within a second, and the experiment goes on,
  consistent: a later cell sees its applications still STARTED and ``ec.shutdown()``
  leaves no process behind;
- **Kernel → Restart** while an experiment runs (the kernel idle, or blocked in a
  wait) releases it as at interpreter exit: its processes are gone, their traces are in
  the run directory, and the run's ``experiment.json`` says how it ended;
- **a cell run again, twice in a row, while the experiment goes on**, each run blocking
  on part of it, never wedges the kernel;
- **two notebooks on two kernels at once**, each blocked in a wait, both finish.

Every experiment's processes carry a token of their own on their command line, so the
test finds them (with psutil) among everything else running on the machine.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import textwrap
import time
from pathlib import Path

import pytest

from .jupyterlab import Notebook, ended_ms, missing, served_notebooks, settled, started_ms, write_notebook

if missing():
    pytest.skip(missing(), allow_module_level=True)
psutil = pytest.importorskip("psutil", reason="the test extra installs psutil")

pytestmark = [pytest.mark.slow, pytest.mark.faults]

#: A blocking call interrupted from the Kernel menu ends its cell within this long.
INTERRUPT_SECONDS = 1.0
#: Kernel → Restart: jupyter_client waits this long for the old kernel to exit before it
#: kills it (``KernelManager.shutdown_wait_time``); the release must fit in it.
RESTART_SECONDS = 5.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory, kernel_name):
    """One JupyterLab (and one Chromium) for the module, on ``--kernel``."""
    with served_notebooks(tmp_path_factory.mktemp("lab"), [], kernel=kernel_name) as lab:
        yield lab


@pytest.fixture
def mark():
    """A ``sleep`` argument no other process on the machine has (an hour and a nonce);
    whatever still carries it when the test ends is killed."""
    mark = f"3600.{secrets.randbelow(10**9):09d}"
    yield mark
    for process in processes(mark):
        with contextlib.suppress(psutil.Error):
            process.kill()


def processes(mark: str) -> list[psutil.Process]:
    """The processes whose command line holds ``mark`` (zombies too: not reaped is not gone)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if mark in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def sleeping(mark: str) -> list[psutil.Process]:
    """The ``sleep`` processes among :func:`processes` (one per application)."""
    return [p for p in processes(mark) if p.info["cmdline"] and p.info["cmdline"][0] == "sleep"]


def until_sleeping(mark: str, count: int, seconds: float = 10) -> list[psutil.Process]:
    """The :func:`sleeping` processes once there are ``count`` (or after ``seconds``).

    STARTED means an application's shell was spawned: the ``sleep`` it runs (after an
    ``echo``) may come a moment later on a loaded machine."""
    deadline = time.monotonic() + seconds
    while len(found := sleeping(mark)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def run(notebook: Notebook, index: int, count: int, cell_seconds: float = 60) -> None:
    """Run code cell ``index`` and wait until it shows ``count``; fail on a wedge or an error."""
    notebook.run_cell(index)
    problems = notebook.watch(lambda cells: cells[index]["count"] == count, cell_seconds=cell_seconds)
    problems += [p for p in notebook.errors() if p.startswith(f"cell {index + 1} ")]
    assert not problems, f"{notebook.path}: " + "; ".join(problems)


def experiment(exp_id: str, command: str, apps: int = 3) -> str:
    """A cell that deploys ``apps`` applications running ``command`` on localhost and waits
    until they started; it prints the kernel's pid, the run directory and the guids."""
    return textwrap.dedent(f"""
        import json, os
        from nepi_lab import ExperimentController

        ec = ExperimentController(exp_id={exp_id!r})
        node = ec.register_resource("linux::Node")
        apps = [ec.register_resource("linux::Application", connectedTo=node, command={command!r})
                for _ in range({apps})]
        ec.deploy()
        ec.wait_started(apps, timeout=30)
        print(json.dumps({{"pid": os.getpid(), "run_dir": ec.run_dir, "apps": apps}}))
    """).strip()


#: A cell that blocks until the experiment's applications are over (an hour here).
BLOCKING_WAIT = """
    print("waiting", flush=True)
    ec.wait_finished(timeout=3600)
"""


@pytest.mark.parametrize("how", ["run-cell", "run-all"])
def test_interrupt_during_a_blocking_wait(lab, kernel_name, mark, how):
    """Kernel → Interrupt in a cell blocked in ``ec.wait_finished()`` raises
    KeyboardInterrupt there within a second; the applications go on (a next cell sees
    them STARTED) and a later ``ec.shutdown()`` stops them all.

    ``run-cell``: the cells are run one by one (Ctrl+Enter).  ``run-all``: Run All, so
    cells wait in the queue behind the blocked one; the interrupt stops the run there (as
    any error does in Run All) and the cells after it are run by hand.
    """
    notebook = lab.open(write_notebook(
        lab, f"interrupt-{how}.ipynb", kernel_name,
        experiment(f"interrupt-{how}", f"sleep {mark}"),
        """
        import time
        print("waiting", flush=True)
        try:
            ec.wait_finished(timeout=3600)
        finally:  # when the wait was broken; the KeyboardInterrupt goes on to the cell
            broken = time.time()
        """,
        """
        states = {guid: ec.state(guid, hr=True) for guid in apps}
        print(json.dumps({"broken": broken, "states": states}))
        assert set(states.values()) == {"STARTED"}, states
        """,
        """
        ec.shutdown()
        print(ec.ecstate.name)
        """))
    notebook.clear_outputs()
    if how == "run-cell":
        run(notebook, 0, 1)
        notebook.run_cell(1)
    else:
        notebook.run_all()
        problems = notebook.watch(lambda cells: started_ms(cells[1]["timing"]) > 0 or settled(cells[1]))
        assert not problems, "; ".join(problems + notebook.errors())
    notebook.wait_output(1, "waiting")
    assert len(until_sleeping(mark, 3)) == 3

    asked = notebook.interrupt()
    problems = notebook.watch(lambda cells: not any("*" in cell["prompt"] for cell in cells),
                              cell_seconds=INTERRUPT_SECONDS)
    assert not problems, "; ".join(problems)
    cell = notebook.cells(outputs=True)[1]
    errors = [o["ename"] for o in cell["outputs"] if o["output_type"] == "error"]
    assert errors == ["KeyboardInterrupt"], cell["outputs"]
    assert notebook.counts() == [1, 2, None, None], "Run All did not stop at the interrupted cell"
    assert len(sleeping(mark)) == 3, "the interrupt stopped the applications"

    run(notebook, 2, 3)  # the applications are still STARTED, and the controller answers
    raised = json.loads(notebook.text(2))["broken"] * 1000 - asked
    ended = ended_ms(cell["timing"]) - asked
    print(f"[{kernel_name}] interrupt ({how}): KeyboardInterrupt raised {raised / 1000:.3f} s and the "
          f"cell ended {ended / 1000:.3f} s (traceback shown) after Kernel → Interrupt")
    assert 0 < raised <= INTERRUPT_SECONDS * 1000, f"KeyboardInterrupt {raised / 1000:.2f} s after asking"
    run(notebook, 3, 4)
    assert notebook.text(3).strip() == "TERMINATED"
    assert processes(mark) == [], "ec.shutdown() left processes behind"


@pytest.mark.parametrize("kernel_was", ["idle", "blocked"])
def test_restart_releases_the_experiment(lab, kernel_name, mark, kernel_was):
    """Kernel → Restart while an experiment runs (the kernel idle, or blocked in a wait)
    releases it as at interpreter exit, before the old kernel is gone: no process left,
    each application's stdout collected into the run directory, and the run's
    ``experiment.json`` saying it ended (TERMINATED, at exit) and every resource RELEASED."""
    notebook = lab.open(write_notebook(
        lab, f"restart-{kernel_was}.ipynb", kernel_name,
        experiment(f"restart-{kernel_was}", f"echo started; sleep {mark}"),
        BLOCKING_WAIT))
    notebook.clear_outputs()
    run(notebook, 0, 1)
    seen = json.loads(notebook.text(0))
    run_dir = Path(seen["run_dir"])
    assert len(until_sleeping(mark, 3)) == 3
    assert _description(run_dir)["ecstate"] == "RUNNING"
    if kernel_was == "blocked":
        notebook.run_cell(1)
        notebook.wait_output(1, "waiting")

    clicked = notebook.restart()
    old_kernel = psutil.Process(seen["pid"])
    try:
        old_kernel.wait(timeout=30)
    except psutil.TimeoutExpired:
        pytest.fail("the old kernel still runs 30 s after Kernel → Restart")
    gone_after = (lab.browser_now_ms() - clicked) / 1000
    left = processes(mark)  # before anything else: what the old kernel left behind
    description = _description(run_dir)
    states = _last_states(run_dir)
    traces = {guid: _read(run_dir, guid, "stdout") for guid in seen["apps"]}
    print(f"[{kernel_name}] restart ({kernel_was}): old kernel gone {gone_after:.2f} s after Restart; "
          f"ecstate {description['ecstate']}, end {description.get('end')!r}; last states {states}; "
          f"{len(left)} processes left; traces {traces}")

    assert left == [], f"Kernel → Restart left the experiment's processes running: {left}"
    assert description["ecstate"] == "TERMINATED", (
        f"experiment.json says {description['ecstate']}: the restart did not release the experiment")
    # released at interpreter exit ("exit"), or by the SIGTERM jupyter_client sends a
    # kernel that is slow to go ("signal"): either way the run says so
    assert description.get("end") in ("exit", "signal"), f"experiment.json's end: {description.get('end')!r}"
    assert set(states.values()) == {"RELEASED"}, f"last state of each resource: {states}"
    assert traces == {guid: "started\n" for guid in seen["apps"]}, "traces not collected into the run"
    assert gone_after <= RESTART_SECONDS + 1, f"the old kernel took {gone_after:.1f} s to go"
    notebook.wait_idle(60)  # and the new kernel is there


def test_a_waiting_cell_run_again_while_the_experiment_goes_on(lab, kernel_name, mark):
    """Long applications run; a cell that deploys one more short application and blocks
    until it finished is run twice in a row (the second run queued behind the first,
    blocked one), then a cell that checks both runs: no wedge, no error, both runs saw
    what they waited for, and the long applications went on throughout."""
    notebook = lab.open(write_notebook(
        lab, "rerun.ipynb", kernel_name,
        experiment("rerun", f"sleep {mark}", apps=2) + "\nseen = []",
        """
        short = ec.register_resource("linux::Application", connectedTo=node, command="sleep 1")
        ec.deploy([short])
        ec.wait_finished(short, timeout=30)
        ec.wait_started(apps, timeout=30)
        seen.append((ec.state(short, hr=True), [ec.state(guid, hr=True) for guid in apps]))
        print(seen[-1])
        """,
        """
        print(seen)
        assert seen == [("FINISHED", ["STARTED", "STARTED"])] * 2, seen
        ec.shutdown()
        """))
    notebook.clear_outputs()
    run(notebook, 0, 1)
    notebook.run_cell(1)
    notebook.run_cell(1)  # again, while the first run blocks
    notebook.run_cell(2)
    problems = notebook.watch_settled(cell_seconds=60)
    problems += notebook.errors()
    if notebook.counts() != [1, 3, 4]:
        problems.append(f"execution counts {notebook.counts()}, not [1, 3, 4]")
    assert not problems, "; ".join(problems)
    assert processes(mark) == [], "ec.shutdown() left processes behind"


def test_two_notebooks_on_two_kernels_at_once(lab, kernel_name):
    """Two notebooks in two tabs, Run All in each: both kernels block in
    ``ec.wait_finished()`` at the same time (their cells' run times overlap), and both
    notebooks end with every cell run, in order, without an error."""
    def cells(name: str) -> tuple[str, str]:
        return (experiment(name, "sleep 2") + "\nec.wait_finished(timeout=60)",
                """
                assert {ec.state(guid, hr=True) for guid in apps} == {"FINISHED"}
                ec.shutdown()
                """)

    first = lab.open(write_notebook(lab, "first.ipynb", kernel_name, *cells("first")))
    second = lab.open(write_notebook(lab, "second.ipynb", kernel_name, *cells("second")), close_others=False)
    assert first.kernel()["id"] != second.kernel()["id"]
    for notebook in (first, second):
        notebook.clear_outputs()
    first.run_all()
    second.run_all()
    problems = []
    for notebook in (first, second):
        problems += [f"{notebook.path}: {p}" for p in notebook.watch_settled()]
        problems += [f"{notebook.path}: {p}" for p in notebook.errors()]
        if notebook.counts() != [1, 2]:
            problems.append(f"{notebook.path}: execution counts {notebook.counts()}, not [1, 2]")
    assert not problems, "; ".join(problems)
    spans = [(started_ms(n.cells()[0]["timing"]), ended_ms(n.cells()[0]["timing"])) for n in (first, second)]
    assert max(start for start, _ in spans) < min(end for _, end in spans), (
        f"the two blocking cells did not run at the same time: {spans}")


def _description(run_dir: Path) -> dict:
    return json.loads((run_dir / "experiment.json").read_text())


def _last_states(run_dir: Path) -> dict[int, str]:
    """Each resource's last state in the run's event log."""
    states = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        states[event["guid"]] = event["to"]
    return states


def _read(run_dir: Path, guid: int, trace: str) -> str | None:
    found = list(run_dir.glob(f"{guid}-*/{trace}"))
    return found[0].read_text() if found else None
