"""A real JupyterLab in Debian's Chromium, driven as a person drives it.

Cell-by-cell execution (nbclient) never queues cells; JupyterLab's "Restart Kernel and
Run All Cells" sends every cell at once, and that is where kernels wedge.  This module
starts a JupyterLab server on 127.0.0.1 with every Jupyter folder (settings, runtime,
workspaces, HOME, results) inside one temporary folder, opens notebooks in Chromium
through Playwright and acts on them through JupyterLab's own commands
(``window.jupyterapp.commands``): the commands its menus and keys run.

A run is judged on what the page and the saved ``.ipynb`` show:

- a *wedge*: code cells still queued (``[*]``) while no cell has started for
  :data:`WEDGE_SECONDS` (JupyterLab's cell timing, ``recordTiming``, says when each
  cell started and ended);
- a cell running longer than its time bound (``nepi_lab_test.timeout`` in the cell's
  metadata, else the run's default);
- an error output, or ``Traceback`` in any stderr output;
- execution counts other than 1, 2, 3, ... (one fresh kernel ran every cell in order).

Outputs are cleared before each run, so an old result can never pass for a new one.

The kernel is the notebooks' own kernelspec unless one is named: the copies served are
then rewritten to use it (``kernel=``), which is how the same tests run against another
ipykernel.
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
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Cells queued while none has started for this long: the kernel is wedged.
WEDGE_SECONDS = 10.0
#: A cell may run this long unless its metadata says otherwise.
CELL_SECONDS = 120.0
#: How often the page is read while cells run.
POLL_MS = 100

#: Settings written before the server starts (JupyterLab reads them at start).
SETTINGS = {
    # no "fetch the news?" toast over the notebook
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    # every cell records when it started and ended: how a wedge is told from a slow cell
    # (every cell stays in the DOM, so the prompts of cells out of view are read too)
    "@jupyterlab/notebook-extension/tracker": {"recordTiming": True, "windowingMode": "none"},
}

# Every function below finds its notebook panel by id among the main area's widgets, so
# that two notebooks open side by side are told apart.
_PANEL_JS = """
const panelById = (id) => {
    for (const w of window.jupyterapp.shell.widgets('main')) { if (w.id === id) return w; }
    throw new Error('no notebook panel ' + id);
};
"""

# What the page shows of each code cell: its prompt, the first line of its source, the cell
# timing JupyterLab recorded in its metadata, its time bound, and (on request) its outputs.
_CELLS_JS = "([id, withOutputs]) => {" + _PANEL_JS + """
    const panel = panelById(id);
    return panel.content.widgets.filter(c => c.model.type === 'code').map(c => {
        const prompt = c.node.querySelector('.jp-InputArea-prompt');
        const cell = {prompt: prompt ? prompt.textContent.trim() : '',
                      line: c.model.sharedModel.getSource().split('\\n')[0],
                      timing: c.model.getMetadata('execution') || {},
                      bound: (c.model.getMetadata('nepi_lab_test') || {}).timeout || null};
        if (withOutputs) cell.outputs = c.model.outputs.toJSON();
        return cell;
    });
}"""

_KERNEL_JS = "(id) => {" + _PANEL_JS + """
    const session = panelById(id).sessionContext.session;
    const kernel = session && session.kernel;
    return kernel ? {status: kernel.status, name: kernel.name, id: kernel.id} : null;
}"""


def missing() -> str | None:
    """Why these tests cannot run here (a stated reason to skip with), or None."""
    import importlib.util

    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed (apt-get install -y chromium chromium-driver)"
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (the test extra installs it: pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunAll:
    """What one "Restart Kernel and Run All Cells" (or one watched run) gave."""

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
    kernel : str, optional
        The kernelspec the notebooks must run on; :meth:`open` checks that the kernel
        started is this one (:func:`served_notebooks` writes it into the copies).
    """

    def __init__(self, root: Path, env: dict[str, str] | None = None, kernel: str | None = None,
                 settings: dict[str, dict[str, Any]] | None = None) -> None:
        self.root = Path(root)
        self.state = self.root / ".lab"
        self.results = self.state / "results"
        self.token = "nepi-lab-test"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.kernel = kernel
        self._extra_env = env or {}
        #: JupyterLab settings by plugin (beside :data:`SETTINGS`), written before the page loads
        self.settings = {**SETTINGS, **(settings or {})}
        self._stack = contextlib.ExitStack()
        self.page: Any = None
        self.console_errors: list[str] = []

    # -- the server and the browser ---------------------------------------------------

    def __enter__(self) -> JupyterLab:
        try:
            self._start_server()
            self._check_kernelspec()
            self._start_browser()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start_server(self) -> None:
        state = self.state
        env = dict(os.environ, HOME=str(state / "home"), NEPI_LAB_RESULTS=str(self.results),
                   PYTHONUNBUFFERED="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR",
                     "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
            env[name] = str(state / name.lower())
            os.makedirs(env[name], exist_ok=True)
        os.makedirs(env["HOME"], exist_ok=True)
        env.update(self._extra_env)
        for plugin, values in self.settings.items():
            path = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.log_path = state / "jupyterlab.log"
        log = self._stack.enter_context(self.log_path.open("w"))
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
                    raise RuntimeError("JupyterLab did not start:\n" + self.log_tail()) from None
                time.sleep(0.2)  # the server answers no earlier than it listens: poll its port

    def _check_kernelspec(self) -> None:
        """Fail at once, naming it, if the server does not know the kernel (JupyterLab would
        otherwise open a "Select Kernel" dialog and the test would time out)."""
        if self.kernel is None:
            return
        with urllib.request.urlopen(f"{self.url}/api/kernelspecs?token={self.token}", timeout=10) as r:  # noqa: S310
            known = json.load(r)["kernelspecs"]
        if self.kernel not in known:
            raise RuntimeError(f"the JupyterLab server knows no kernelspec {self.kernel!r} (it knows "
                               f"{sorted(known)}; JUPYTER_PATH={os.environ.get('JUPYTER_PATH')!r})")

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
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.goto(f"{self.url}/lab?reset&token={self.token}", timeout=90_000)
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=90_000)
        self.page.evaluate("() => window.jupyterapp.started")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log (kernel tracebacks land there)."""
        return self.log_path.read_text(errors="replace")[-chars:]

    # -- notebooks ----------------------------------------------------------------------

    def command(self, name: str, args: dict[str, Any] | None = None) -> Any:
        """Run a JupyterLab command, as a menu item or a key would."""
        return self.page.evaluate("([n, a]) => window.jupyterapp.commands.execute(n, a)", [name, args or {}])

    def open(self, relative: str, close_others: bool = True) -> Notebook:
        """Open a notebook in a tab and wait for its kernel to be idle.

        ``close_others``: first close every tab and shut every kernel down (a fresh
        start); otherwise the notebook opens beside those already open.
        """
        page = self.page
        if close_others:
            page.evaluate("""async () => {
                const app = window.jupyterapp;
                // saved first, so that closing asks nothing (and a failed test's notebook
                // keeps what it showed)
                await app.commands.execute('docmanager:save-all');
                await app.commands.execute('application:close-all');
                await app.serviceManager.sessions.shutdownAll();
            }""")
        panel_id = page.evaluate("""async (path) => {
            const widget = await window.jupyterapp.commands.execute('docmanager:open', {path});
            return widget.id;
        }""", relative)
        notebook = Notebook(self, relative, panel_id)
        page.wait_for_function(
            "(id) => {" + _PANEL_JS + " const w = panelById(id);"
            " return w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel; }",
            arg=panel_id, timeout=90_000)
        notebook.wait_idle(90)
        kernel = notebook.kernel()
        if self.kernel is not None and kernel["name"] != self.kernel:
            raise AssertionError(f"{relative} started kernel {kernel['name']!r}, not {self.kernel!r}")
        return notebook

    def restart_and_run_all(self, relative: str, cell_seconds: float = CELL_SECONDS,
                            wedge_seconds: float = WEDGE_SECONDS) -> RunAll:
        """Open ``relative`` alone and run "Restart Kernel and Run All Cells" on it once."""
        return self.open(relative).restart_and_run_all(cell_seconds, wedge_seconds)

    def accept_dialog(self) -> None:
        """Click the accepting button ("Restart") of the dialog on screen, as a person does."""
        button = self.page.locator(".jp-Dialog .jp-mod-accept")
        button.wait_for(timeout=20_000)
        button.click()
        button.wait_for(state="detached", timeout=20_000)

    def browser_now_ms(self) -> float:
        """The page's clock (ms since the epoch), to compare with the cell timing."""
        return self.page.evaluate("() => Date.now()")


class Notebook:
    """One notebook open in a JupyterLab tab: its cells, its kernel, and the commands a
    person runs on it (each one activates the tab first, as clicking it would)."""

    def __init__(self, lab: JupyterLab, path: str, panel_id: str) -> None:
        self.lab = lab
        self.path = path
        self.id = panel_id

    def __repr__(self) -> str:
        return f"<Notebook {self.path} in tab {self.id}>"

    # -- reading the page ---------------------------------------------------------------

    def cells(self, outputs: bool = False) -> list[dict[str, Any]]:
        """Each code cell: ``prompt``, ``count`` (the number its prompt shows, or None),
        ``line`` (its first source line), ``timing``, ``bound`` and, with
        ``outputs=True``, its ``outputs`` as nbformat dicts."""
        cells = self.lab.page.evaluate(_CELLS_JS, [self.id, outputs]) or []
        for cell in cells:
            cell["count"] = _count(cell["prompt"])
        return cells

    def counts(self) -> list[int | None]:
        """The execution count each code cell shows (None: none, or ``*``)."""
        return counts(self.cells())

    def outputs(self, index: int) -> list[dict[str, Any]]:
        """The outputs code cell ``index`` (from 0) shows now."""
        return self.cells(outputs=True)[index]["outputs"]

    def text(self, index: int) -> str:
        """What code cell ``index`` printed on stdout."""
        return "".join(o.get("text", "") for o in self.outputs(index)
                       if o.get("output_type") == "stream" and o.get("name") == "stdout")

    def kernel(self) -> dict[str, str]:
        """The kernel's ``status``, ``name`` and ``id`` as the page knows them."""
        return self.lab.page.evaluate(_KERNEL_JS, self.id)

    def wait_idle(self, seconds: float) -> None:
        self.lab.page.wait_for_function(
            "(id) => {" + _PANEL_JS + " const s = panelById(id).sessionContext.session;"
            " return s && s.kernel && s.kernel.status === 'idle'; }",
            arg=self.id, timeout=seconds * 1000)

    def wait_output(self, index: int, text: str, seconds: float = 30) -> None:
        """Wait until code cell ``index`` shows ``text`` in a stream output."""
        self.lab.page.wait_for_function(
            "([id, index, text]) => {" + _PANEL_JS + """
                const cells = panelById(id).content.widgets.filter(c => c.model.type === 'code');
                return cells[index].model.outputs.toJSON().some(
                    o => o.output_type === 'stream' && String(o.text).includes(text));
            }""", arg=[self.id, index, text], timeout=seconds * 1000)

    # -- acting -------------------------------------------------------------------------

    def activate(self) -> None:
        """Bring the notebook's tab to the front, as clicking it does."""
        self.lab.page.evaluate("(id) => window.jupyterapp.shell.activateById(id)", self.id)
        self.lab.page.wait_for_function(
            "(id) => { const w = window.jupyterapp.shell.currentWidget; return w && w.id === id; }",
            arg=self.id, timeout=10_000)

    def command(self, name: str, wait: bool = True) -> None:
        """Run a command (menu item, key) on this notebook.  ``wait=False`` for commands
        whose promise settles only once a dialog is answered."""
        self.activate()
        if wait:
            self.lab.command(name)
        else:
            self.lab.page.evaluate("(n) => { window.jupyterapp.commands.execute(n); }", name)

    def clear_outputs(self) -> None:
        """Edit → Clear Outputs of All Cells; wait until no prompt shows a count and no
        cell keeps a timing (so that whatever shows up next comes from the next run)."""
        self.command("notebook:clear-all-cell-outputs")
        self.lab.page.wait_for_function(
            "(id) => {" + _PANEL_JS + """
                return panelById(id).content.widgets.filter(c => c.model.type === 'code').every(c => {
                    const p = c.node.querySelector('.jp-InputArea-prompt');
                    return !/\\d/.test(p ? p.textContent : '') && !c.model.getMetadata('execution');
                });
            }""", arg=self.id, timeout=20_000)

    def select(self, index: int) -> None:
        """Make code cell ``index`` (from 0) the active cell, in command mode."""
        self.activate()
        self.lab.page.evaluate("([id, index]) => {" + _PANEL_JS + """
            const notebook = panelById(id).content;
            const cells = notebook.widgets.filter(c => c.model.type === 'code');
            notebook.mode = 'command';
            notebook.activeCellIndex = notebook.widgets.indexOf(cells[index]);
            notebook.deselectAll();
        }""", [self.id, index])

    def run_cell(self, index: int) -> None:
        """Select code cell ``index`` and run it (Ctrl+Enter: ``notebook:run-cell``); returns
        once the kernel was sent the request, not once the cell ended."""
        self.select(index)
        self.lab.page.evaluate("(id) => {" + _PANEL_JS + """
            const kernel = panelById(id).sessionContext.session.kernel;
            return new Promise((resolve, reject) => {
                const timer = setTimeout(() => {
                    kernel.anyMessage.disconnect(listener);
                    reject(new Error('no execute_request sent within 10 s'));
                }, 10000);
                const listener = (_, args) => {
                    if (args.direction === 'send' && args.msg.header.msg_type === 'execute_request') {
                        clearTimeout(timer);
                        kernel.anyMessage.disconnect(listener);
                        resolve();
                    }
                };
                kernel.anyMessage.connect(listener);
                window.jupyterapp.commands.execute('notebook:run-cell');
            });
        }""", self.id)

    def run_all(self) -> None:
        """Run → Run All Cells (``notebook:run-all-cells``); returns once the cells are queued."""
        self.command("notebook:run-all-cells", wait=False)
        self.lab.page.wait_for_function(
            "(id) => {" + _PANEL_JS + " const ps = Array.from(panelById(id).node.querySelectorAll("
            "'.jp-CodeCell .jp-InputArea-prompt'));"
            " return ps.length && ps.every(p => /[*\\d]/.test(p.textContent)); }",
            arg=self.id, timeout=20_000)

    def interrupt(self) -> float:
        """Kernel → Interrupt Kernel (``kernelmenu:interrupt``); returns when it was asked
        (the page's clock, ms since the epoch)."""
        self.activate()
        return self.lab.page.evaluate(
            "() => { const t = Date.now(); window.jupyterapp.commands.execute('kernelmenu:interrupt');"
            " return t; }")

    def restart(self) -> float:
        """Kernel → Restart Kernel… (``kernelmenu:restart``) and click Restart; returns when
        Restart was clicked (the page's clock, ms since the epoch)."""
        self.command("kernelmenu:restart", wait=False)
        button = self.lab.page.locator(".jp-Dialog .jp-mod-accept")
        button.wait_for(timeout=20_000)
        clicked = self.lab.browser_now_ms()
        button.click()
        button.wait_for(state="detached", timeout=20_000)
        return clicked

    def save(self) -> None:
        """File → Save; wait until the file on disk holds the page's content."""
        self.command("docmanager:save")
        self.lab.page.wait_for_function(
            "(id) => {" + _PANEL_JS + " return !panelById(id).context.model.dirty; }",
            arg=self.id, timeout=20_000)

    # -- watching and judging -----------------------------------------------------------

    def watch(self, done: Callable[[list[dict[str, Any]]], bool], cell_seconds: float = CELL_SECONDS,
              wedge_seconds: float = WEDGE_SECONDS, total_seconds: float = 20 * 60) -> list[str]:
        """Read the page until ``done(cells)`` holds (``cells`` as :meth:`cells` gives them);
        return the problems seen on the way (a wedge, a cell over its time bound), which
        also end the watch."""
        problems: list[str] = []
        started = last_progress = time.monotonic()
        last_seen: Any = None
        while True:
            cells = self.cells()
            prompts = [c["prompt"] for c in cells]
            if cells and done(cells):
                return problems
            now = time.monotonic()
            seen = (prompts, [c["timing"] for c in cells])
            if seen != last_seen:
                last_seen, last_progress = seen, now
            running = [i for i, c in enumerate(cells)
                       if "*" in c["prompt"] and started_ms(c["timing"]) and not ended_ms(c["timing"])]
            queued = [i for i, p in enumerate(prompts) if "*" in p]
            if running:
                i = running[0]
                bound = cells[i]["bound"] or cell_seconds
                if time.time() - started_ms(cells[i]["timing"]) / 1000 > bound + 5:
                    problems.append(f"cell {i + 1} ({cells[i]['line']!r}) still running after its bound "
                                    f"of {bound:.0f} s")
                    return problems
            elif queued and now - last_progress > wedge_seconds:
                problems.append(
                    f"wedged: cells {[i + 1 for i in queued]} queued ([*]) and none started for "
                    f"{wedge_seconds:.0f} s (kernel status {self.kernel()['status']!r}; first queued: "
                    f"{cells[queued[0]]['line']!r})")
                return problems
            if now - started > total_seconds:
                problems.append(f"not done after {total_seconds:.0f} s: prompts {prompts}")
                return problems
            self.lab.page.wait_for_timeout(POLL_MS)

    def watch_settled(self, cell_seconds: float = CELL_SECONDS,
                      wedge_seconds: float = WEDGE_SECONDS) -> list[str]:
        """:meth:`watch` until every cell's last request is over (see :func:`settled`)."""
        return self.watch(lambda cells: all(settled(cell) for cell in cells), cell_seconds, wedge_seconds)

    def errors(self) -> list[str]:
        """Every error output and every ``Traceback`` on stderr the cells show, naming the cell."""
        problems = []
        for i, cell in enumerate(self.cells(outputs=True)):
            problems += _output_problems(i, cell["line"], cell["outputs"])
        return problems

    def restart_and_run_all(self, cell_seconds: float = CELL_SECONDS,
                            wedge_seconds: float = WEDGE_SECONDS) -> RunAll:
        """Clear outputs, run "Restart Kernel and Run All Cells", click Restart, wait for
        every cell; save, and judge the run on the saved file (see the module)."""
        self.clear_outputs()
        started = time.monotonic()
        # not awaited: the command's promise settles only once the dialog is answered
        self.command("notebook:restart-run-all", wait=False)
        self.lab.accept_dialog()
        problems = self.watch_settled(cell_seconds, wedge_seconds)
        seconds = time.monotonic() - started
        cells = self.cells()
        shown = counts(cells)
        skipped = [i + 1 for i, n in enumerate(shown) if n is None]
        if not problems and skipped:
            problems.append(f"cells {skipped} did not run (Run All stops at the first error)")
        elif not problems and shown != list(range(1, len(shown) + 1)):
            problems.append(f"execution counts {shown}, not 1..{len(shown)}: not one fresh kernel in order")
        self.save()
        outputs = _saved_outputs(self.lab.root / self.path)
        for i, (cell, cell_outputs) in enumerate(zip(cells, outputs, strict=True)):
            problems += _output_problems(i, cell["line"], cell_outputs)
        return RunAll(self.path, seconds, shown, problems, outputs)


def _output_problems(index: int, line: str, outputs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for out in outputs:
        if out.get("output_type") == "error":
            error = f"{out.get('ename')}: {out.get('evalue')}"
            problems.append(f"cell {index + 1} ({line!r}) raised {error}"[:500])
        elif out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = "".join(out.get("text", ""))
            if "Traceback" in text:
                problems.append(f"cell {index + 1} ({line!r}) printed a Traceback on stderr: "
                                + _last_lines(text, 3))
    return problems


def _last_lines(text: str, n: int) -> str:
    """The last ``n`` non-blank lines of a traceback (the error itself), joined by `` | ``."""
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-n:])[-400:]


def settled(cell: dict[str, Any]) -> bool:
    """Whether a cell's last request is over: it shows a count, or the kernel answered it
    without running it (aborted: Run All stops at an error), and nothing is queued."""
    return "*" not in cell["prompt"] and (cell["count"] is not None or ended_ms(cell["timing"]) > 0)


def counts(cells: list[dict[str, Any]]) -> list[int | None]:
    """The execution counts these cells show (see :meth:`Notebook.cells`)."""
    return [cell["count"] for cell in cells]


def _count(prompt: str) -> int | None:
    inner = prompt.strip().strip("[]:").strip()
    return int(inner) if inner.isdigit() else None


def started_ms(timing: dict[str, Any]) -> float:
    """When a cell started running (ms since the epoch, the kernel's clock), or 0."""
    value = (timing.get("iopub.execute_input") or timing.get("iopub.status.busy")
             or timing.get("shell.execute_reply.started"))
    return _parse_ms(value) if value else 0.0


def ended_ms(timing: dict[str, Any]) -> float:
    """When a cell's run ended (ms since the epoch, the kernel's clock), or 0."""
    value = timing.get("shell.execute_reply")
    return _parse_ms(value) if value else 0.0


def _parse_ms(stamp: str) -> float:
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


def copy_notebook(source: Path, target: Path, kernel: str | None = None) -> None:
    """Copy a notebook without its outputs; with ``kernel``, make that its kernelspec."""
    data = json.loads(Path(source).read_text())
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    if kernel is not None:
        data["metadata"]["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    Path(target).write_text(json.dumps(data, indent=1))


def keep_screenshot(element: Any, tmp_path: Path, name: str) -> str:
    """A PNG of a page element in ``tmp_path`` (and in ``$NEPI_LAB_SCREENSHOTS`` when
    set, to be looked at); its path.  A near-empty image fails the test."""
    path = tmp_path / name
    element.screenshot(path=str(path))
    assert path.stat().st_size > 2_000
    folder = os.environ.get("NEPI_LAB_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copy(path, os.path.join(folder, name))
    return str(path)


@contextlib.contextmanager
def served_notebooks(tmp: Path, sources: list[Path], env: dict[str, str] | None = None,
                     kernel: str | None = None) -> Iterator[JupyterLab]:
    """A JupyterLab serving copies of ``sources`` (stripped of outputs) under ``tmp``,
    all on ``kernel`` if one is named."""
    for source in sources:
        copy_notebook(source, tmp / Path(source).name, kernel)
    with JupyterLab(tmp, env, kernel) as lab:
        yield lab


def write_notebook(lab: JupyterLab, name: str, kernel: str, *cells: str) -> str:
    """Write a notebook of these code cells where the lab serves it; its path there."""
    source = [textwrap.dedent(cell).strip().splitlines(keepends=True) for cell in cells]
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
        "cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "source": lines,
                   "outputs": [], "execution_count": None} for i, lines in enumerate(source)],
    }
    (lab.root / name).write_text(json.dumps(notebook, indent=1))
    return name
