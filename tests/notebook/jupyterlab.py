"""A real JupyterLab in Debian's Chromium, driven as a person drives it: Restart & Run All.

Cell-by-cell execution (nbclient) never queues cells; JupyterLab's "Restart Kernel and
Run All Cells" sends every cell at once, and that is where kernels wedge.  This module
starts a JupyterLab server on 127.0.0.1 with every Jupyter folder (settings, runtime,
workspaces, HOME, results) inside one temporary folder, opens a notebook in Chromium
through Playwright, runs "Restart Kernel and Run All Cells" and watches the DOM until
every code cell has an execution count.

A run is judged on what the page and the saved ``.ipynb`` show:

- a *wedge*: code cells still queued (``[*]``) while no cell has started for
  :data:`WEDGE_SECONDS` (JupyterLab's cell timing, ``recordTiming``, says when each
  cell started and ended);
- a cell running longer than its time bound (``nepi_lab_test.timeout`` in the cell's
  metadata, else the run's default);
- an error output, or ``Traceback`` in any stderr output;
- execution counts other than 1, 2, 3, ... (one fresh kernel ran every cell in order).

Outputs are cleared before each restart, so an old result can never pass for a new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Cells queued while none has started for this long: the kernel is wedged.
WEDGE_SECONDS = 10.0
#: A cell may run this long unless its metadata says otherwise.
CELL_SECONDS = 120.0

#: Settings written before the server starts (JupyterLab reads them at start).
SETTINGS = {
    # no "fetch the news?" toast over the notebook
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    # every cell records when it started and ended: how a wedge is told from a slow cell
    # (every cell stays in the DOM, so the prompts of cells out of view are read too)
    "@jupyterlab/notebook-extension/tracker": {"recordTiming": True, "windowingMode": "none"},
}

# What the page reports of each code cell: its prompt as shown, its count in the model,
# and the cell timing JupyterLab recorded in the cell's metadata.
_CELLS_JS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content) return null;
    return panel.content.widgets.filter(c => c.model.type === 'code').map(c => {
        const prompt = c.node.querySelector('.jp-InputArea-prompt');
        return {prompt: prompt ? prompt.textContent.trim() : '',
                timing: c.model.getMetadata('execution') || {},
                bound: (c.model.getMetadata('nepi_lab_test') || {}).timeout || null};
    });
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunAll:
    """What one "Restart Kernel and Run All Cells" gave."""

    notebook: str
    seconds: float
    counts: list[int | None]
    problems: list[str] = field(default_factory=list)
    outputs: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "pass" if self.passed else "FAIL: " + "; ".join(self.problems)
        return f"{self.notebook}: {len(self.counts)} code cells in {self.seconds:.1f} s: {verdict}"


class JupyterLab:
    """A JupyterLab server and a Chromium page on it; use as a context manager.

    Parameters
    ----------
    root : Path
        The folder it serves (copy the notebooks there); everything else it keeps
        (settings, runtime files, HOME, run directories) goes to ``root/.lab``.
    env : dict, optional
        Extra environment for the server and its kernels.
    """

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.state = self.root / ".lab"
        self.token = "nepi-lab-test"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._extra_env = env or {}
        self._stack = contextlib.ExitStack()
        self.page: Any = None

    # -- the server and the browser ---------------------------------------------------

    def __enter__(self) -> JupyterLab:
        try:
            self._start_server()
            self._start_browser()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start_server(self) -> None:
        state = self.state
        env = dict(os.environ, HOME=str(state / "home"), NEPI_LAB_RESULTS=str(state / "results"),
                   PYTHONUNBUFFERED="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR",
                     "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
            env[name] = str(state / name.lower())
            os.makedirs(env[name], exist_ok=True)
        os.makedirs(env["HOME"], exist_ok=True)
        env.update(self._extra_env)
        for plugin, values in SETTINGS.items():
            path = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.log_path = state / "jupyterlab.log"
        log = self._stack.enter_context(open(self.log_path, "w"))
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}", "--allow-root",
             "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False"],
            cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._stack.callback(_stop_group, server)
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2)  # noqa: S310
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + self.log_path.read_text()[-3000:]) from None
                time.sleep(0.2)

    def _start_browser(self) -> None:
        from playwright.sync_api import sync_playwright

        profile = tempfile.mkdtemp(prefix="chromium-")
        self._stack.callback(shutil.rmtree, profile, True)
        playwright = self._stack.enter_context(sync_playwright())
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
            viewport={"width": 1400, "height": 1000})
        self._stack.callback(context.close)
        self.page = context.new_page()
        self.console_errors: list[str] = []
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)

    # -- notebooks ----------------------------------------------------------------------

    def command(self, name: str, args: dict[str, Any] | None = None) -> Any:
        """Run a JupyterLab command, as a menu item or a key would."""
        return self.page.evaluate("([n, a]) => window.jupyterapp.commands.execute(n, a)", [name, args or {}])

    def open(self, relative: str) -> None:
        """Open a notebook (closing the one open before, and shutting its kernel down);
        wait for its kernel to be idle."""
        page = self.page
        if not page.url.startswith(self.url):
            page.goto(f"{self.url}/lab?reset&token={self.token}", timeout=90_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=90_000)
            page.evaluate("() => window.jupyterapp.started")
        page.evaluate("""async () => {
            const app = window.jupyterapp;
            await app.commands.execute('application:close-all');
            await app.serviceManager.sessions.shutdownAll();
        }""")
        page.evaluate("(path) => { window.jupyterapp.commands.execute('docmanager:open', {path}); }", relative)
        page.wait_for_function(
            "(path) => { const w = window.jupyterapp.shell.currentWidget;"
            " return w && w.context && w.context.path === path && w.sessionContext"
            " && w.sessionContext.session && w.sessionContext.session.kernel; }",
            arg=relative, timeout=90_000)
        self.wait_idle(90)

    def kernel_status(self) -> str:
        return self.page.evaluate(
            "() => { const s = window.jupyterapp.shell.currentWidget.sessionContext;"
            " return s.session && s.session.kernel ? s.session.kernel.status : 'none'; }")

    def wait_idle(self, seconds: float) -> None:
        self.page.wait_for_function(
            "() => { const s = window.jupyterapp.shell.currentWidget.sessionContext;"
            " return s.session && s.session.kernel && s.session.kernel.status === 'idle'; }",
            timeout=seconds * 1000)

    def cells(self) -> list[dict[str, Any]]:
        return self.page.evaluate(_CELLS_JS) or []

    def restart_and_run_all(self, relative: str, cell_seconds: float = CELL_SECONDS,
                            wedge_seconds: float = WEDGE_SECONDS) -> RunAll:
        """Clear outputs, restart the kernel and run every cell; judge the run (see the module)."""
        self.command("notebook:clear-all-cell-outputs")
        self.page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))"
            ".every(p => !/\\d/.test(p.textContent))", timeout=20_000)
        started = time.monotonic()
        # not awaited: the command's promise settles only once the dialog is answered
        self.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); }")
        self._accept_restart_dialog()
        problems: list[str] = []
        last_progress = time.monotonic()
        last_seen: tuple[Any, ...] = ()
        while True:
            cells = self.cells()
            prompts = [c["prompt"] for c in cells]
            counts = [_count(p) for p in prompts]
            if cells and all(n is not None for n in counts):
                break
            now = time.monotonic()
            seen = (tuple(prompts), tuple(json.dumps(c["timing"], sort_keys=True) for c in cells))
            if seen != last_seen:
                last_seen, last_progress = seen, now
            running = [i for i, c in enumerate(cells) if _started(c["timing"]) and not _ended(c["timing"])]
            queued = [i for i, p in enumerate(prompts) if "*" in p]
            if running:
                i = running[0]
                bound = cells[i]["bound"] or cell_seconds
                if time.time() - _started(cells[i]["timing"]) / 1000 > bound + 5:
                    problems.append(f"cell {i + 1} still running after its bound of {bound:.0f} s")
                    break
            elif queued and now - last_progress > wedge_seconds:
                problems.append(f"wedged: cells {[i + 1 for i in queued]} queued ([*]) and none started "
                                f"for {wedge_seconds:.0f} s (kernel status {self.kernel_status()!r})")
                break
            if now - started > 20 * 60:
                problems.append("the whole run took more than 20 minutes")
                break
            time.sleep(0.2)
        seconds = time.monotonic() - started
        cells = self.cells()
        counts = [_count(c["prompt"]) for c in cells]
        if not problems and counts != list(range(1, len(counts) + 1)):
            problems.append(f"execution counts {counts}, not 1..{len(counts)}: not one fresh kernel in order")
        self.command("docmanager:save")
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=20_000)
        outputs = _saved_outputs(self.root / relative)
        for i, cell_outputs in enumerate(outputs):
            for out in cell_outputs:
                if out.get("output_type") == "error":
                    problems.append(f"cell {i + 1} raised {out.get('ename')}: {out.get('evalue')}"[:500])
                elif out.get("output_type") == "stream" and out.get("name") == "stderr" \
                        and "Traceback" in out.get("text", ""):
                    problems.append(f"cell {i + 1} printed a Traceback on stderr: "
                                    + out["text"][-400:].replace("\n", " | "))
        return RunAll(relative, seconds, counts, problems, outputs)

    def _accept_restart_dialog(self) -> None:
        """Click "Restart" in the confirmation dialog, as a person does."""
        button = self.page.locator(".jp-Dialog .jp-mod-accept")
        button.wait_for(timeout=20_000)
        button.click()


def _count(prompt: str) -> int | None:
    inner = prompt.strip().strip("[]:").strip()
    return int(inner) if inner.isdigit() else None


def _started(timing: dict[str, Any]) -> float:
    """When a cell started running (ms since the epoch), or 0."""
    value = timing.get("iopub.execute_input") or timing.get("iopub.status.busy")
    return _parse_ms(value) if value else 0.0


def _ended(timing: dict[str, Any]) -> bool:
    return bool(timing.get("shell.execute_reply"))


def _parse_ms(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


def _saved_outputs(path: Path) -> list[list[dict[str, Any]]]:
    data = json.loads(path.read_text())
    return [cell.get("outputs", []) for cell in data["cells"] if cell["cell_type"] == "code"]


def _stop_group(process: subprocess.Popen[Any]) -> None:
    """Stop the server and its kernels (SIGTERM lets kernels shut down cleanly)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def served_notebooks(tmp: Path, sources: list[Path], env: dict[str, str] | None = None) -> Iterator[JupyterLab]:
    """A JupyterLab serving copies of ``sources`` (stripped of outputs) under ``tmp``."""
    for source in sources:
        shutil.copy(source, tmp / source.name)
    with JupyterLab(tmp, env) as lab:
        yield lab
