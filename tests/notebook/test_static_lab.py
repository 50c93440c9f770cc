"""In a real JupyterLab (Debian's Chromium, Restart & Run All, save): what a person sees
and what the saved notebook keeps.

- The saved ``.ipynb`` holds each view's final static picture (JupyterLab applies the
  ``update_display_data`` a view sends after each cell to the output of an earlier
  cell), and its HTML export shows it, with and without the widget state JupyterLab
  saves when "Save Widget State Automatically" is on.
- Shell text such as ``$GREETING from $(hostname)`` is not typeset by JupyterLab's
  MathJax in the HTML reprs and tables, while the same text in a plain HTML output is
  (the control: MathJax did run).
- The tables read in the light and in the dark theme: every header and cell has a
  text contrast of about 4.5:1 (WCAG AA) against the background it is drawn on.

Screenshots of the outputs in both themes go to ``$NEPI_LAB_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from .jupyterlab import CHROMIUM, JupyterLab

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium chromium-driver)",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
pytest.importorskip("jupyterlab", reason="JupyterLab runs the notebook")
nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
pytest.importorskip("nbconvert", reason="the test extra installs nbconvert")

from . import static_notebook  # noqa: E402  (needs nbformat)

pytestmark = pytest.mark.slow

NOTEBOOK = "static-views.ipynb"
#: Elements whose text must never be typeset (reprs and live tables).
OURS = ".nepi-controller, .nepi-resource, .nepi-explain"
#: WCAG AA asks 4.5:1 for small text; JupyterLab's own secondary text colour
#: (``--jp-content-font-color2``, used for muted text) is 4.48:1 on white.
MIN_CONTRAST = 4.4
#: Settings of the widget manager: save the widget state with the notebook.
SAVE_WIDGET_STATE = {"@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True}}

# For each header and cell of our tables: its text colour over the colour it is drawn
# on (the nearest ancestor with an opaque background), both as rgb triplets.
_CONTRASTS_JS = """(selector) => {
    const rgba = s => {
        const m = s.match(/[\\d.]+/g).map(Number);
        return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1];
    };
    const background = el => {
        for (; el; el = el.parentElement) {
            const c = rgba(getComputedStyle(el).backgroundColor);
            if (c[3] > 0.5) return c;
        }
        return [255, 255, 255, 1];
    };
    const out = [];
    for (const table of document.querySelectorAll(selector)) {
        for (const cell of table.querySelectorAll('th, td')) {
            if (!cell.textContent.trim() || cell.querySelector('[data-state]')) continue;
            const fg = rgba(getComputedStyle(cell).color), bg = background(cell);
            const mixed = [0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3]));
            out.push({text: cell.textContent.trim().slice(0, 40), fg: mixed, bg: bg.slice(0, 3)});
        }
    }
    return out;
}"""


def contrast(a: list[float], b: list[float]) -> float:
    """WCAG contrast ratio of two sRGB colours (0-255 triplets)."""
    def luminance(rgb: list[float]) -> float:
        channels = [c / 255 for c in rgb]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab after Restart & Run All of the views notebook (saved); yields (lab, run)."""
    root = tmp_path_factory.mktemp("static-lab")
    nbformat.write(static_notebook.views_notebook(), str(root / NOTEBOOK))
    with JupyterLab(root, settings=SAVE_WIDGET_STATE) as lab:
        lab.open(NOTEBOOK)
        run = lab.restart_and_run_all(NOTEBOOK)
        assert run.passed, run.summary()
        # Every cell has its count once its reply came; the widget messages sent before
        # the reply may still be on their way (another channel) or being applied. Save
        # again once the page shows the views' last state, as a person would later.
        final = static_notebook.final_state(nbformat.read(str(root / NOTEBOOK), as_version=4), root)
        lab.page.wait_for_function(
            """(states) => {
                const el = document.querySelector('.nepi-graph-colors');
                return el && el.dataset.states === states;
            }""", arg=json.dumps(final["states"]), timeout=30_000)
        lab.page.locator(".nepi-progress-counts").first.wait_for(timeout=30_000)
        lab.page.wait_for_function(
            "(counts) => document.querySelector('.nepi-progress-counts').dataset.counts === counts",
            arg=json.dumps(final["bars"]), timeout=30_000)
        lab.command("docmanager:save")
        lab.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=20_000)
        yield lab, run


def test_the_saved_notebook_and_its_export_show_the_final_state(lab):
    lab, _ = lab
    nb = nbformat.read(str(lab.root / NOTEBOOK), as_version=4)
    final = static_notebook.check_saved_outputs(nb, lab.root)
    assert nb.metadata.get("widgets"), "JupyterLab saved no widget state (saveState setting)"
    static_notebook.check_export(static_notebook.export_html(nb), final, with_state=True)
    del nb.metadata["widgets"]
    static_notebook.check_export(static_notebook.export_html(nb), final, with_state=False)


def test_shell_text_is_not_typeset_by_jupyterlab(lab):
    lab, _ = lab
    page = lab.page
    # the control, the same text without the opt-out class: MathJax runs and typesets it
    page.locator(".nepi-math-control mjx-container").first.wait_for(timeout=30_000)
    ours = page.locator(OURS)
    assert ours.count() >= 4  # ec, the resource, the live table and the explain panel
    assert page.locator(f":is({OURS}) mjx-container").count() == 0
    text = " ".join(ours.all_inner_texts())
    assert static_notebook.HELLO in text and static_notebook.HOME in text
    assert "no such $THING" in text


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_tables_read_in_light_and_dark_themes(lab, theme, tmp_path):
    lab, _ = lab
    page = lab.page
    lab.command("apputils:change-theme", {"theme": theme})
    light = "true" if theme == "JupyterLab Light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(500)  # the theme's stylesheet applies
    cells = page.evaluate(_CONTRASTS_JS, ".nepi-controller table, .nepi-resource table")
    assert len(cells) > 20
    ratios = [(c["text"], round(contrast(c["fg"], c["bg"]), 2)) for c in cells]
    poor = [(text, ratio) for text, ratio in ratios if ratio < MIN_CONTRAST]
    assert not poor, f"{theme}: text hard to read on its background: {poor[:10]}"
    _screenshots(page, theme, tmp_path)


def _screenshots(page, theme: str, folder) -> None:
    """One PNG per view and repr output, kept in $NEPI_LAB_SCREENSHOTS if set."""
    suffix = "dark" if "Dark" in theme else "light"
    # the output areas, found by what they hold (widgets, or HTML rendered by JupyterLab)
    wanted = {"graph": (".jp-OutputArea-output", ".nepi-graph"),
              "table": (".jp-OutputArea-output", ".nepi-table"),
              "explain": (".jp-OutputArea-output", ".nepi-explain"),
              "progress": (".jp-OutputArea-output", ".nepi-progress"),
              "controller": (".jp-RenderedHTMLCommon", ".nepi-controller"),
              "resource": (".jp-RenderedHTMLCommon", ".nepi-resource")}
    keep = os.environ.get("NEPI_LAB_SCREENSHOTS")
    for name, (area, inside) in wanted.items():
        output = page.locator(area, has=page.locator(inside)).first
        path = folder / f"{name}-{suffix}.png"
        output.screenshot(path=str(path))
        assert path.stat().st_size > 1000
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(path, os.path.join(keep, path.name))
