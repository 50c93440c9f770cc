"""One trace, for reading without code: its end, its DataFrame and its plot (:class:`TraceView`).

The builder's "Read trace" button shows the chosen trace here.  The DataFrame is
:func:`nepi_lab.analysis.trace_frame` with the type's default parser (``linux::Ping``
stdout: ``ping``; iperf3: ``iperf3``; otherwise one row per line), and the parsers
that have a plot get it drawn (``ping``: :func:`~nepi_lab.analysis.plot_rtt`;
``iperf3``: :func:`~nepi_lab.analysis.plot_throughput`), on a figure of its own
(no pyplot: nothing pops up), shown as a PNG.  The end of the trace is read with
``ec.trace`` in blocks from its end, so a trace of a gigabyte costs two blocks.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.traces import TraceAttr

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

_FONT = "font-family:sans-serif;font-size:12px;line-height:1.35"

#: Lines of a trace's end that are shown.
TAIL_LINES = 20
#: Bytes read from a trace's end for its tail (whole blocks of this size, at most two).
TAIL_BLOCK = 4096
#: Rows of a trace's DataFrame that are shown (its head).
FRAME_ROWS = 15

_STYLE = """<style>
.nepi-trace-tail pre { margin: 0; line-height: 1.3; font-size: 11px; }
.nepi-trace-frame table { border-collapse: collapse; font-size: 11px; line-height: 1.3; }
.nepi-trace-frame th, .nepi-trace-frame td { padding: 1px 6px; border-bottom: 1px solid #eeeeee; }
</style>"""


def _plot_rtt(frame: Any, ax: Any) -> Any:
    from ..analysis.plots import plot_rtt

    return plot_rtt(frame, ax=ax)


def _plot_throughput(frame: Any, ax: Any) -> Any:
    from ..analysis.plots import plot_throughput

    return plot_throughput(frame, ax=ax)


#: Parser name -> the plot drawn for its frames.
PLOTS: dict[str, Callable[[Any, Any], Any]] = {"ping": _plot_rtt, "iperf3": _plot_throughput}


def plot_png(plotter: Callable[[Any, Any], Any], frame: Any) -> bytes:
    """PNG bytes of ``plotter(frame, ax)`` drawn on a figure of its own."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.2), dpi=90)
    plotter(frame, figure.add_subplot())
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class TraceView(widgets.VBox):
    """Shows one trace of ``ec``: a title, its last lines, its DataFrame and, if any, its plot.

    Hidden until :meth:`show` is first called.

    Attributes
    ----------
    title, tail, table : ipywidgets.HTML
        What is shown (CSS classes ``nepi-trace-title``, ``nepi-trace-tail``, ``nepi-trace-frame``).
    plot : ipywidgets.Image
        The plot as a PNG (``nepi-trace-plot``); hidden when the parser has none.
    frame : pandas.DataFrame or None
        The trace's DataFrame, once shown.
    size : int
        The trace's size in bytes, once shown.

    Example
    -------
    >>> view = TraceView(ec)              # doctest: +SKIP
    >>> view.show(ping, "stdout")         # doctest: +SKIP
    ''
    """

    def __init__(self, ec: ExperimentController, **kwargs: Any) -> None:
        self.ec = ec
        self.title = widgets.HTML()
        self.tail = widgets.HTML()
        self.table = widgets.HTML()
        self.plot = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        for widget, css in ((self.title, "nepi-trace-title"), (self.tail, "nepi-trace-tail"),
                            (self.table, "nepi-trace-frame"), (self.plot, "nepi-trace-plot")):
            widget.add_class(css)
        self.frame: Any = None
        self.size = 0
        kwargs.setdefault("layout", widgets.Layout(display="none", border="1px solid #e0e0e0", padding="4px",
                                                   margin="6px 0"))
        super().__init__([widgets.HTML(_STYLE), self.title, widgets.HBox([self.tail, self.plot]), self.table],
                         **kwargs)

    def show(self, guid: int, name: str) -> str:
        """Show trace ``name`` of ``guid``; returns what could not be shown ('' if nothing).

        A trace that is not enabled, not collected yet, or that its parser cannot
        read is said in words (the rest is still shown); nothing is raised but an
        unknown guid.
        """
        ec = self.ec
        rm = ec.get_resource(guid)
        label = f"{guid} {rm.get_rtype()}" + (f" ({rm.name})" if rm.name else "")
        self.layout.display = None
        self.title.value = (f'<div style="{_FONT}"><b>trace {html.escape(name)} of '
                            f"{html.escape(label)}</b> ({rm.state.name})</div>")
        self.plot.layout.display = "none"
        self.frame = None
        try:
            self.tail.value, self.size = self._tail(guid, name)
        except Exception as exc:
            self.tail.value = self.table.value = ""
            return str(exc)
        problem = self._show_frame(guid, name)
        if self.size == 0 and not ec.trace_enabled(guid, name):
            problem = (f"trace {name!r} of {guid} is not enabled: enable it before deploying "
                       f"(traces enabled by default are marked (on))")
        return problem

    def _tail(self, guid: int, name: str) -> tuple[str, int]:
        """The last :data:`TAIL_LINES` lines of a trace, as HTML, and its size in bytes."""
        ec = self.ec
        size = int(ec.trace(guid, name, TraceAttr.SIZE))  # type: ignore[arg-type]
        style = ("max-height:260px;overflow:auto;width:520px;font-size:11px;background:#fafafa;"
                 "border:1px solid #eeeeee;padding:3px")
        head = f'<div style="{_FONT};color:#555">the end of it ({size} bytes)</div>'
        if size == 0:
            return f'{head}<div style="{style};{_FONT}">(empty)</div>', 0
        last = (size - 1) // TAIL_BLOCK
        chunks = [ec.trace(guid, name, TraceAttr.STREAM, TAIL_BLOCK, index)
                  for index in range(max(0, last - 1), last + 1)]
        # a block boundary may cut a character in two: a few undecodable bytes are still text
        raw = b"".join(c if isinstance(c, bytes) else str(c).encode() for c in chunks)
        text = raw.decode("utf-8", "replace")
        if text.count("\ufffd") > 4 or "\x00" in text:
            return f'{head}<div style="{style};{_FONT}">binary data: see the frame below</div>', size
        lines = text.splitlines()[-TAIL_LINES:]
        return f'{head}<div style="{style}"><pre>{html.escape(chr(10).join(lines))}</pre></div>', size

    def _show_frame(self, guid: int, name: str) -> str:
        """Show the trace's DataFrame and its plot; returns what went wrong ('' if nothing)."""
        from ..analysis import trace_frame

        try:
            frame = trace_frame(self.ec, guid, name)
        except Exception as exc:
            self.table.value = ""
            return str(exc)
        self.frame = frame
        parser = frame.attrs.get("parser")
        shown = frame.drop(columns=[c for c in ("run_id", "guid", "type", "trace") if c in frame])
        caption = f"{len(frame)} rows × {shown.shape[1]} columns, parser {parser!r}"
        if frame.attrs.get("malformed"):
            caption += f"; {frame.attrs['malformed']} lines it could not read"
        summary = frame.attrs.get("summary")
        if isinstance(summary, dict) and summary:
            caption += "; summary: " + ", ".join(f"{k} {v}" for k, v in list(summary.items())[:8])
        table = shown.head(FRAME_ROWS).to_html(border=0, max_cols=12, na_rep="", escape=True)
        more = f"<div>… {len(frame) - FRAME_ROWS} more rows</div>" if len(frame) > FRAME_ROWS else ""
        self.table.value = (f'<div style="{_FONT}"><div style="color:#555">the DataFrame '
                            f"(nepi_lab.trace_frame): {html.escape(caption)}</div>"
                            f'<div style="max-height:320px;overflow:auto">{table}</div>{more}</div>')
        plotter = PLOTS.get(str(parser))
        if plotter is None or frame.empty:
            return ""
        try:
            self.plot.value = plot_png(plotter, frame)
        except Exception as exc:  # a frame the plot cannot use: say so, keep the rest
            return f"no plot: {exc}"
        self.plot.layout.display = None
        return ""
