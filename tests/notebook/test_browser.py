"""A real browser builds and runs an experiment through the widgets, served by Voilà.

Debian's Chromium driven by Playwright (``--no-sandbox`` flags as in the project's
recipes; no ``playwright install``):

- add a linux::Node and a linux::Application (command ``echo hi``) through the form,
  connect them, click Deploy, and watch the application reach FINISHED in the graph's
  colours, in the table and in the status line;
- a failed run: an application nobody connected to a node fails the experiment at
  deploy; the status line turns FAILED and says which resource failed and why, and so
  does the line beside Deploy.

Each test takes a screenshot of the page; with ``NEPI_LAB_SCREENSHOTS=<folder>`` they
are kept there (``builder-finished.png``, ``builder-failed.png``).
"""

from __future__ import annotations

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

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium chromium-driver)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
pytest.importorskip("voila", reason="the test extra installs voila")
nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")

pytestmark = pytest.mark.slow

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FINISHED_COLOR = "#43a047"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila(tmp_path):
    """Voilà serving a notebook that shows an ExperimentBuilder; yields its URL."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(
            "from nepi_lab import ExperimentBuilder, ExperimentController\n"
            "ec = ExperimentController(exp_id='browser')\n"
            "ExperimentBuilder(ec)")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, str(tmp_path / "builder.ipynb"))
    port = free_port()
    # HOME too: the builder's node keeps its folders under ~, and the kernel is killed
    # at the end (SIGTERM, so no release): they must fall inside tmp_path
    (tmp_path / "home").mkdir()
    env = dict(os.environ, NEPI_LAB_RESULTS=str(tmp_path / "results"), HOME=str(tmp_path / "home"))
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
        env[name] = str(tmp_path / name.lower())  # nothing from the user's setup
    log = open(tmp_path / "voila.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "voila", "builder.ipynb", "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "api", timeout=2)  # noqa: S310 - loopback
                break
            except urllib.error.HTTPError:  # any answer: the server is up
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("Voilà did not start:\n" + (tmp_path / "voila.log").read_text()[-3000:])
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its kernel
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


@pytest.fixture
def page(voila, tmp_path):
    """A Chromium page showing the builder, its kernel started and its cell run."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        with sync_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
                viewport={"width": 1400, "height": 1300})
            try:
                page = context.new_page()
                page.goto(voila, timeout=90_000)
                page.locator(".nepi-builder").wait_for(timeout=90_000)  # kernel started, cell ran
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def add_resource(page, rtype: str, guid: int, **fields: str) -> None:
    """Choose ``rtype``, type ``fields`` into the form, click Add, wait for the table's new row."""
    if page.locator(".nepi-builder-type select").input_value() != rtype:
        page.locator(".nepi-builder-type select").select_option(rtype)
    for name, value in fields.items():
        field = page.locator(f".nepi-attr-{name} input")
        field.wait_for(timeout=20_000)
        field.fill(value)
    page.locator("button.nepi-builder-add").click()
    page.locator(f'.nepi-table tr[data-guid="{guid}"]').wait_for(timeout=20_000)


def chosen(page, css: str) -> str:
    text = page.locator(css).evaluate("s => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].text")
    return text.replace("\xa0", " ")


def keep_screenshot(page, tmp_path, name: str) -> None:
    """The whole builder: Voilà scrolls inside a panel, so the viewport grows to its content first."""
    height = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll('*'), "
                           "e => e.scrollHeight))")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 4000)})
    page.wait_for_timeout(300)  # relayout
    screenshot = tmp_path / name
    page.screenshot(path=str(screenshot), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1300})
    assert screenshot.stat().st_size > 10_000
    folder = os.environ.get("NEPI_LAB_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copy(screenshot, os.path.join(folder, name))


def test_build_and_run_an_experiment_in_a_browser(page, tmp_path):
    # a node: the type already chosen is linux::Node
    assert page.locator(".nepi-builder-type select").input_value() == "linux::Node"
    assert page.locator('.nepi-run-status[data-phase="building"]').count() == 1
    add_resource(page, "linux::Node", 1)
    # an application running "echo hi"
    add_resource(page, "linux::Application", 2, command="echo hi")

    # connect them (the two newest resources are preselected), then deploy
    assert chosen(page, ".nepi-builder-connect-a select") == "2 linux::Application"
    assert chosen(page, ".nepi-builder-connect-b select") == "1 linux::Node"
    page.locator("button.nepi-builder-connect").click()
    page.locator(".nepi-builder-status", has_text="connected 2 and 1").wait_for(timeout=20_000)
    page.locator("button.nepi-builder-deploy").click()

    # the application's node in the graph reaches the finished colour, live
    page.wait_for_function(
        """() => {
            const el = document.querySelector('.nepi-graph-colors');
            return el && JSON.parse(el.dataset.states || '{}')['2'] === 'FINISHED';
        }""", timeout=30_000)
    colors = json.loads(page.locator(".nepi-graph-colors").get_attribute("data-colors"))
    assert colors["2"] == FINISHED_COLOR
    # and the table says FINISHED
    row = page.locator('.nepi-table tr[data-guid="2"]')
    row.locator("text=FINISHED").wait_for(timeout=20_000)
    assert row.get_attribute("data-state") == "FINISHED"
    # and the status line: the run finished
    page.locator('.nepi-run-status[data-phase="finished"]').wait_for(timeout=20_000)
    assert page.locator(".nepi-builder-error").inner_text().strip() == ""
    assert page.locator(".nepi-builder-run-error").inner_text().strip() == ""
    keep_screenshot(page, tmp_path, "builder-finished.png")
    # the experiment ran for real: its trace is in the run directory
    [stdout] = list((tmp_path / "results" / "browser").glob("*/2-linux.Application/stdout"))
    assert stdout.read_text() == "hi\n"
    # and the node's folders were made in the HOME the server was given, not the real one
    assert list((tmp_path / "home" / ".nepi_lab" / "browser").glob("*/2/stdout"))


def test_a_failed_run_is_shown_in_the_status_line_and_beside_deploy(page, tmp_path):
    add_resource(page, "linux::Node", 1)
    add_resource(page, "linux::Application", 2, name="greeter", command="echo hi")
    # not connected: Deploy fails the application at once, and with it the experiment
    page.locator("button.nepi-builder-deploy").click()
    status = page.locator('.nepi-builder-status .nepi-run-status[data-phase="failed"]')
    status.wait_for(timeout=30_000)
    why = "resource 2 (linux::Application) failed in discover"
    reason = "is not connected to a linux::Node"
    page.locator(".nepi-builder-status", has_text=why).wait_for(timeout=20_000)
    text = page.locator(".nepi-builder-status").inner_text()
    assert "FAILED" in text and reason in text
    beside_deploy = page.locator(".nepi-builder-run-error", has_text=why)
    beside_deploy.wait_for(timeout=20_000)  # its own widget: its update may come a moment later
    assert reason in beside_deploy.inner_text()
    # the badge is red, and the status line stays in view when the page scrolls
    badge = page.locator(".nepi-builder-status .nepi-phase")
    assert badge.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(229, 57, 53)"
    bar = page.locator(".nepi-builder-bar")
    assert bar.evaluate("b => getComputedStyle(b).position") == "sticky"
    page.locator('.nepi-table tr[data-guid="2"]', has_text="RELEASED").wait_for(timeout=20_000)  # settled
    keep_screenshot(page, tmp_path, "builder-failed.png")
    page.mouse.wheel(0, 900)
    page.wait_for_timeout(300)
    top = bar.evaluate("b => b.getBoundingClientRect().top")
    assert -1 <= top <= 60, f"the status line scrolled out of view (top {top})"
