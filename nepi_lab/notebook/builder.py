"""Build and run an experiment with widgets: :class:`ExperimentBuilder`.

The builder is a form over the controller's own calls: every button makes exactly
one call (``register_resource``, ``register_connection``, ``register_condition``,
``enable_trace``, ``deploy``, ``stop``, ``release``), so what it builds is an
ordinary experiment, and "Show code" prints the script that makes it again.

What it shows, and why:

- **The run's phase**, in a status line at the top that stays in view while the
  page scrolls: building, deploying, running, finished, failed or released
  (:func:`run_status`).  It follows the controller's events (a
  :class:`~nepi_lab.notebook._schedule.Subscription`, at most 10 updates a second),
  so it never stays "deploying" after the run moved on.  A failed run says which
  resource failed, in which step and why (the command's exit status and the end of
  its standard error), in the status line and beside Deploy.
- **Errors where the click was**: anything a call refuses is shown beside the
  button that made it and in the status line, never raised into the void.
  Unexpected errors of the builder itself land in its log (``log_output``,
  through ``Output.capture``).
- **Only connections that make sense**: the Connect pickers offer only pairs the
  controller accepts (:meth:`~nepi_lab.ExperimentController.can_connect`: the
  types' ``_connects_to`` declarations, then the resources' own rules), not yet
  connected; a hint says what the chosen resource connects to.
- **A form in the type's terms**: the attribute form is generated from the chosen
  type's declarations (:func:`attribute_groups`): ``name`` first, then the
  attributes the type itself declares (Ping's ``target`` ...), and the inherited
  ones (an application's ``sources``, ``build`` ..., ``critical``) folded under
  "Advanced".  Numbers are text fields, so an unset number is blank rather than 0,
  and a value that is not a number is shown beside its field as it is typed; the
  help is the tooltip; only the values changed from the defaults are passed.
- **Traces without code**: pick a resource and a trace, then "Read trace" shows the
  end of the trace, its DataFrame (:func:`nepi_lab.analysis.trace_frame`, with the
  type's default parser) and, for the parsers that have one, the plot (``ping``:
  :func:`~nepi_lab.analysis.plot_rtt`; ``iperf3``:
  :func:`~nepi_lab.analysis.plot_throughput`).

Every widget has a stable CSS class (``nepi-builder-add``, ``nepi-attr-command``,
``nepi-builder-status``, ``nepi-builder-run-error`` ...) so that a browser test can
find it.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple

import ipywidgets as widgets

from ..core.attributes import Attribute, Flags, Types, is_secret
from ..core.registry import get_resource_type, resource_types
from ..core.resource import Failure, ResourceManager
from ..core.states import ECState, ResourceAction, ResourceState
from ._schedule import UPDATE_INTERVAL, Subscription, view_scheduler
from ._trace_view import TraceView
from .code import experiment_code
from .colors import STATE_COLORS, text_color
from .graph import GraphView
from .panels import ExplainView, ResourceTable

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

S = ResourceState
_FIELD_LAYOUT = {"width": "400px"}
_FIELD_STYLE = {"description_width": "140px"}
_FONT = "font-family:sans-serif;font-size:12px;line-height:1.35"
_RED = "#c62828"

#: The phases of a run, in the order a run goes through them.
PHASES = ("building", "deploying", "running", "finished", "failed", "released")

#: The colour of each phase's badge in the status line.
PHASE_COLORS = {
    "building": "#757575",
    "deploying": STATE_COLORS[S.PROVISIONED],
    "running": STATE_COLORS[S.STARTED],
    "finished": STATE_COLORS[S.FINISHED],
    "failed": STATE_COLORS[S.FAILED],
    "released": STATE_COLORS[S.RELEASED],
}

# The status line stays in view: sticky at the top of whatever scrolls the page.
# Sticky holds only inside the nearest ancestor that clips its overflow, and the
# builder's own box and the output area around it do (overflow auto or hidden
# without scrolling), so those let it overflow (:has: Chromium, Firefox, Safari);
# elsewhere it is simply the first line of the builder.
_STYLE = """<style>
.nepi-builder-bar { position: sticky; top: 0; z-index: 10;
  background: var(--jp-layout-color0, #ffffff); border-bottom: 1px solid #e0e0e0; padding: 2px 0 4px 0; }
.nepi-builder.widget-box { overflow: visible; }
.jp-OutputArea:has(.nepi-builder), .jp-OutputArea-child:has(.nepi-builder),
.jp-OutputArea-output:has(.nepi-builder), .output_area:has(.nepi-builder),
.output_subarea:has(.nepi-builder) { overflow: visible; }
.nepi-builder-advanced .widget-text, .nepi-builder-advanced .widget-dropdown,
.nepi-builder-advanced .widget-checkbox { width: 380px !important; }
</style>"""


# == the run's phase ===============================================================


class RunStatus(NamedTuple):
    """Where a run is, as the builder's status line says it (see :func:`run_status`)."""

    phase: str  #: one of :data:`PHASES`
    summary: str  #: resources per state (outcomes after release), e.g. "1 STARTED, 2 FINISHED"
    failures: tuple[Failure, ...]  #: every failure recorded, critical or not, in order
    undeployed: int  #: resources registered but not deployed (yet)


def run_status(ec: ExperimentController, deploying: frozenset[int] | set[int] = frozenset()) -> RunStatus:
    """The phase of ``ec``'s run, from its resources' states; never blocks.

    - ``failed``: a critical resource failed (``ec.ecstate`` is FAILED), which
      stops and releases everything;
    - ``released``: every resource is released (the outcomes stay in ``summary``);
    - ``building``: nothing deployed yet;
    - ``finished``: everything deployed is done, as ``ec.wait_finished`` means it
      (applications ended, nodes started: see ``ResourceManager.done``);
    - ``running``: something started and something is not done yet;
    - ``deploying``: otherwise (discovering, provisioning, READY and waiting).

    Parameters
    ----------
    ec : ExperimentController
    deploying : set of int
        Guids whose deploy was asked for and that may still be NEW (a deploy
        returns before the controller's loop has touched them).

    Example
    -------
    >>> run_status(ec).phase                # doctest: +SKIP
    'finished'
    """
    rms: list[ResourceManager] = []
    for guid in ec.resources:
        try:
            rms.append(ec.get_resource(guid))
        except KeyError:  # removed meanwhile (hardRelease)
            continue
    failures = tuple(ec.failures)
    counts = Counter(rm.outcome for rm in rms)
    summary = ", ".join(f"{n} {state.name}" for state, n in sorted(counts.items()))
    released = sum(rm.state == S.RELEASED for rm in rms)
    if released:
        summary += " (all released)" if released == len(rms) else f" ({released} released)"
    active = [rm for rm in rms if rm.state != S.NEW or rm.guid in deploying]
    undeployed = len(rms) - len(active)
    if ec.ecstate == ECState.FAILED:
        phase = "failed"
    elif rms and released == len(rms):
        phase = "released"
    elif not active:
        phase = "building"
    elif all(rm.done for rm in active):
        phase = "finished"
    elif any(rm.state >= S.STARTED for rm in active):
        phase = "running"
    else:
        phase = "deploying"
    return RunStatus(phase, summary, failures, undeployed)


# == the attribute form ================================================================


def attribute_groups(cls: type[ResourceManager]) -> tuple[list[str], list[str]]:
    """The attribute form of a type: (the fields shown first, those under "Advanced").

    First ``name``, then the attributes the type itself declares, in declaration
    order (with those of unregistered helper bases, such as the tools' common
    base); under "Advanced", what it inherits from registered types (an
    application's ``sources``, ``build`` ...) and the base class's ``critical`` and
    ``hardRelease``.  A registered type that adds no attribute of its own (a
    renamed ``linux::Ping``) shows its base's as its own.  Attributes the resource
    sets itself (``Flags.NoWrite``) are left out.

    Example
    -------
    >>> from nepi_lab.core.registry import get_resource_type
    >>> main, advanced = attribute_groups(get_resource_type("linux::Ping"))
    >>> main[:3], "stopGracePeriod" in advanced
    (['name', 'target', 'count'], True)
    """
    table = cls.get_attribute_declarations()
    writable = {name for name, a in table.items() if not a.has_flag(Flags.NoWrite)}
    classes = [k for k in cls.__mro__ if issubclass(k, ResourceManager)]
    order: list[str] = []  # nearest declaration first
    for klass in classes:
        for a in klass.__dict__.get("_attributes", ()):
            if a.name not in order and a.name in writable:
                order.append(a.name)
    own: list[str] = []
    for klass in classes:
        if klass is ResourceManager or (klass is not cls and klass.__dict__.get("_rtype") and own):
            break
        for a in klass.__dict__.get("_attributes", ()):
            if a.name not in own and a.name in writable:
                own.append(a.name)
    main = (["name"] if "name" in writable else []) + [n for n in own if n != "name"]
    advanced = [n for n in order if n not in main]
    return main, advanced


def _number_hint(declaration: Attribute) -> str:
    kind = "an integer" if declaration.type is Types.Integer else "a number"
    low, high = declaration.range or (None, None)
    if low is not None and high is not None:
        kind += f" in [{low:g}, {high:g}]"
    elif low is not None:
        kind += f" ≥ {low:g}"
    elif high is not None:
        kind += f" ≤ {high:g}"
    return kind + ("; blank: unset" if declaration.default is None else f"; blank: {declaration.default:g}")


def attribute_widget(declaration: Attribute) -> widgets.ValueWidget:
    """The input widget for one declared attribute, showing its default.

    A Checkbox for a Bool, a Dropdown for an Enumerate, a Password for a secret, a
    Text for the rest.  Numbers are Text too: an ``IntText`` cannot be blank (it
    shows 0 for "unset") and silently drops letters, where a Text keeps what was
    typed so that the form can say what is wrong with it.
    """
    common: dict[str, Any] = {
        "description": declaration.name,
        "tooltip": declaration.help or declaration.name,
        "style": dict(_FIELD_STYLE),
        "layout": widgets.Layout(**_FIELD_LAYOUT),
    }
    default = declaration.default
    t = declaration.type
    if t is Types.Bool:
        return widgets.Checkbox(value=bool(default), indent=True, **common)
    if t is Types.Enumerate:
        allowed = list(declaration.allowed or ())
        value = default if default in allowed else allowed[0]
        return widgets.Dropdown(options=allowed, value=value, **common)
    if t in (Types.Integer, Types.Double):
        text = "" if default is None else (str(default) if t is Types.Integer else f"{float(default):g}")
        return widgets.Text(value=text, placeholder=_number_hint(declaration), **common)
    secret = is_secret(declaration)
    factory = widgets.Password if secret else widgets.Text
    return factory(value="" if default is None else str(default), placeholder=declaration.help[:60], **common)


class _Field:
    """One attribute's widget, its inline error, and the value it stands for."""

    def __init__(self, declaration: Attribute, rtype: str = "") -> None:
        self.declaration = declaration
        self.rtype = rtype
        self.widget = attribute_widget(declaration)
        self.widget.add_class(f"nepi-attr-{declaration.name}")
        self.initial = self.widget.value
        self.error = widgets.HTML()
        self.error.add_class("nepi-attr-error")
        self.box = widgets.VBox([self.widget, self.error])
        self.widget.observe(self._check, names=["value"])

    @property
    def changed(self) -> bool:
        """Whether the user changed the field (blanks around a text do not count)."""
        value, initial = self.widget.value, self.initial
        if isinstance(value, str) and isinstance(initial, str):
            return value.strip() != initial.strip()
        return value != initial

    def value(self) -> Any:
        """The value the field stands for, checked and normalised; None if blank (unset).

        Raises :class:`~nepi_lab.AttributeValueError` for a value the declaration refuses.
        """
        raw = self.widget.value
        if isinstance(raw, str):
            if not raw.strip():
                return None
            if self.declaration.type in (Types.Integer, Types.Double):
                raw = raw.strip()
        return self.declaration.check(raw, None, self.rtype)

    def _check(self, change: dict[str, Any] | None = None) -> None:
        self.show_error(self.problem())

    def problem(self) -> str:
        """Why the current value would be refused ('' if it is fine)."""
        if not self.changed:
            return ""
        try:
            self.value()
        except Exception as exc:
            return str(exc)
        return ""

    def show_error(self, message: str) -> None:
        self.error.value = (f'<div style="color:{_RED};font-size:11px;line-height:1.3;margin-left:146px">'
                            f"{html.escape(message)}</div>" if message else "")


def _error_html(message: str) -> str:
    if not message:
        return ""
    return f'<div style="color:{_RED};{_FONT};white-space:pre-wrap">{html.escape(message)}</div>'


# == the builder ====================================================================


class ExperimentBuilder(widgets.VBox):
    """Widgets that build, run and show an experiment on ``ec``.

    At the top, a status line that stays in view: the run's phase (building,
    deploying, running, finished, failed, released), what failed and why, and the
    last action or refusal.  Left: add a resource (type, attribute form with an
    "Advanced" part), connect two resources (only pairs the types accept), add a
    condition, enable and read a trace, Deploy / Stop / Release, Show code; each
    button's refusals appear beside it.  Right: the live :class:`GraphView`, the
    :class:`ResourceTable` and the :class:`ExplainView`.  Below: the trace reader
    (the trace's end, its DataFrame, its plot).

    Parameters
    ----------
    ec : ExperimentController
    types : list of str, optional
        Resource types offered; default: every registered type.
    interval : float
        Minimum seconds between two updates of the status line.

    Attributes
    ----------
    phase : str
        What the status line shows: one of :data:`PHASES`.
    status, error : ipywidgets.HTML
        The status line (phase, outcomes, failures, last action) and the last refusal.
    add_error, connect_error, condition_error, trace_error, run_error : ipywidgets.HTML
        Beside each button: what its last call refused; ``run_error`` also says why
        a run failed.
    fields : dict of str to widget
        The attribute form's inputs (numbers are text); ``advanced_fields`` names
        those under "Advanced".
    trace_view, trace_frame
        The trace reader and the DataFrame it last showed.

    Example
    -------
    >>> builder = ExperimentBuilder(ec)       # doctest: +SKIP
    >>> builder                               # doctest: +SKIP
    >>> builder.phase                         # doctest: +SKIP
    'building'
    >>> print(builder.code())                 # doctest: +SKIP
    """

    def __init__(self, ec: ExperimentController, types: list[str] | None = None,
                 interval: float = UPDATE_INTERVAL, **kwargs: Any) -> None:
        self.ec = ec
        self._scheduler = view_scheduler(ec)
        self._fields: dict[str, _Field] = {}
        self._lock = threading.RLock()  # widget updates from a click and from the run's events
        self._deploying: set[int] = set()  # deploy asked for; may still be NEW
        self._message = ("", False)  # the last action's outcome: (text, is an error)
        self._section = "run"  # where the last click was: its errors are shown there
        self._status = RunStatus("building", "", (), 0)
        self._shown_failures: tuple[Failure, ...] = ()
        self.log_output = widgets.Output(layout=widgets.Layout(max_height="200px", overflow="auto"))
        self.log_output.add_class("nepi-builder-log")
        names = types if types is not None else list(resource_types())

        def dropdown(description: str, css: str, **more: Any) -> widgets.Dropdown:
            return self._tag(widgets.Dropdown(description=description, style=dict(_FIELD_STYLE),
                                              layout=widgets.Layout(**_FIELD_LAYOUT), **more), css)

        def button(description: str, css: str, **more: Any) -> widgets.Button:
            return self._tag(widgets.Button(description=description, layout=widgets.Layout(width="136px"),
                                            **more), css)

        def error_line(css: str) -> widgets.HTML:
            return self._tag(widgets.HTML(layout=widgets.Layout(flex="1 1 auto", margin="0 0 0 6px")), css)

        # -- add a resource
        self.type_choice = dropdown(
            "type", "nepi-builder-type", options=names,
            value="linux::Node" if "linux::Node" in names else (names[0] if names else None))
        self.type_help = self._tag(widgets.HTML(), "nepi-builder-type-help")
        self.form = self._tag(widgets.VBox(), "nepi-builder-form")
        self.advanced = self._tag(widgets.Accordion(layout=widgets.Layout(width="420px")),
                                  "nepi-builder-advanced")
        self.add_button = button("Add resource", "nepi-builder-add", button_style="primary", icon="plus")
        self.add_error = error_line("nepi-builder-add-error")
        # -- connect
        self.connect_a = dropdown("connect", "nepi-builder-connect-a", options=[])
        self.connect_b = dropdown("with", "nepi-builder-connect-b", options=[])
        self.connect_hint = self._tag(widgets.HTML(), "nepi-builder-connect-hint")
        self.connect_button = button("Connect", "nepi-builder-connect", icon="link")
        self.connect_error = error_line("nepi-builder-connect-error")
        # -- condition
        self.condition_guid = dropdown("resource", "nepi-builder-cond-guid", options=[])
        self.condition_action = dropdown("does", "nepi-builder-cond-action",
                                         options=[a.name for a in ResourceAction], value="START")
        self.condition_after = dropdown("once", "nepi-builder-cond-after", options=[])
        self.condition_state = dropdown("reached", "nepi-builder-cond-state",
                                        options=[s.name for s in S if s is not S.NEW], value="STARTED")
        self.condition_delay = self._tag(widgets.Text(
            value="0s", description="plus", placeholder="0s, 500ms, 2s",
            tooltip="delay after the state is reached: a number and a unit (h, m, s, ms, us)",
            style=dict(_FIELD_STYLE), layout=widgets.Layout(**_FIELD_LAYOUT)), "nepi-builder-cond-delay")
        self.condition_button = button("Add condition", "nepi-builder-condition", icon="clock-o")
        self.condition_error = error_line("nepi-builder-condition-error")
        # -- traces
        self.trace_guid = dropdown("resource", "nepi-builder-trace-guid", options=[])
        self.trace_name = dropdown("trace", "nepi-builder-trace-name", options=[])
        self.trace_button = button("Enable trace", "nepi-builder-trace", icon="file-text-o")
        self.read_button = button("Read trace", "nepi-builder-read", icon="table")
        self.trace_error = error_line("nepi-builder-trace-error")
        # -- running
        self.deploy_button = button("Deploy", "nepi-builder-deploy", button_style="success", icon="play")
        self.stop_button = button("Stop", "nepi-builder-stop", button_style="warning", icon="stop")
        self.release_button = button("Release", "nepi-builder-release", button_style="danger", icon="trash")
        self.run_error = self._tag(widgets.HTML(), "nepi-builder-run-error")
        self.code_button = button("Show code", "nepi-builder-show-code", icon="code")
        self.code_output = self._tag(widgets.Output(), "nepi-builder-code")
        # -- the status line
        self.status = self._tag(widgets.HTML(), "nepi-builder-status")
        self.error = self._tag(widgets.HTML(), "nepi-builder-error")
        self.status_bar = self._tag(widgets.VBox([widgets.HTML(_STYLE), self.status, self.error]),
                                    "nepi-builder-bar")
        # -- the trace reader (its parts by name, for tests and scripts)
        self.trace_view = self._tag(TraceView(ec), "nepi-builder-trace-view")
        self.trace_title, self.trace_tail = self.trace_view.title, self.trace_view.tail
        self.trace_table, self.trace_plot = self.trace_view.table, self.trace_view.plot
        # -- views
        self.graph = GraphView(ec, width=6.5, height=4.2)
        self.table = ResourceTable(ec)
        self.explain = ExplainView(ec)

        def section(title: str, *children: widgets.Widget) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f"<b>{html.escape(title)}</b>"), *children],
                                layout=widgets.Layout(margin="0 0 8px 0"))

        def beside(*children: widgets.Widget) -> widgets.HBox:
            return widgets.HBox(list(children), layout=widgets.Layout(align_items="center"))

        left = widgets.VBox([
            section("Add a resource", self.type_choice, self.type_help, self.form, self.advanced,
                    beside(self.add_button, self.add_error)),
            section("Connect", self.connect_a, self.connect_b, self.connect_hint,
                    beside(self.connect_button, self.connect_error)),
            section("Condition", self.condition_guid, self.condition_action, self.condition_after,
                    self.condition_state, self.condition_delay,
                    beside(self.condition_button, self.condition_error)),
            section("Traces", self.trace_guid, self.trace_name, beside(self.trace_button, self.read_button),
                    self.trace_error),
            section("Run", beside(self.deploy_button, self.stop_button, self.release_button), self.run_error,
                    self.code_button),
        ], layout=widgets.Layout(width="430px", min_width="430px"))
        right = widgets.VBox([self.graph, self.table, self.explain], layout=widgets.Layout(flex="1 1 auto"))
        body = widgets.HBox([left, right])
        children = [self.status_bar, body, self.trace_view, self.code_output, self.log_output]
        super().__init__(children, **kwargs)
        self.add_class("nepi-builder")
        self._section_errors = {"add": self.add_error, "connect": self.connect_error,
                                "condition": self.condition_error, "trace": self.trace_error,
                                "run": self.run_error}

        self.type_choice.observe(self._type_changed, names=["value"])
        self.trace_guid.observe(self._trace_guid_changed, names=["value"])
        self.connect_a.observe(self._connect_a_changed, names=["value"])
        for button_widget, handler, where in (
                (self.add_button, self.add_resource, "add"), (self.connect_button, self.connect, "connect"),
                (self.condition_button, self.add_condition, "condition"),
                (self.trace_button, self.enable_trace, "trace"), (self.read_button, self.read_trace, "trace"),
                (self.deploy_button, self.deploy, "run"), (self.stop_button, self.stop, "run"),
                (self.release_button, self.release, "run"), (self.code_button, self.show_code, "run")):
            button_widget.on_click(self.log_output.capture()(self._from_button(handler, where)))
        self._type_changed()
        self._sync_choices()
        self._subscription = Subscription(ec, lambda event: None, self._follow_run, interval)
        self._subscription.flush()

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _tag(widget: Any, css_class: str) -> Any:
        widget.add_class(css_class)
        return widget

    def _from_button(self, handler: Callable[[], Any], where: str) -> Callable[[widgets.Button], None]:
        def on_click(_: widgets.Button) -> None:
            self._section = where
            handler()

        return on_click

    @property
    def phase(self) -> str:
        """The phase the status line shows: one of :data:`PHASES`."""
        return self._status.phase

    def run_status(self) -> RunStatus:
        """The run's status now (see :func:`run_status`)."""
        return run_status(self.ec, self._deploying)

    def _report(self, error: str = "", status: str = "", section: str | None = None) -> None:
        """Show an action's outcome: in the status line, and a refusal beside its button."""
        where = self._section_errors.get(section or self._section)
        with self._lock:
            if error:
                self._message = (error, True)
                self.error.value = _error_html(error)
            else:
                self._message = (status, False)
                self.error.value = ""
            if where is not None and (error or where is not self.run_error or not self._shown_failures):
                where.value = _error_html(error)
        self._subscription.flush()

    def _attempt(self, what: str, call: Callable[[], Any], section: str | None = None) -> Any:
        """Make one controller call; show its refusal instead of raising it."""
        try:
            result = call()
        except Exception as exc:
            self._report(error=f"{what}: {exc}", section=section)
            return None
        self._report(status=what, section=section)
        self._model_changed()
        return result

    def _model_changed(self) -> None:
        self._sync_choices()
        self.graph.refresh()
        self.table.refresh()
        self.explain.refresh()

    # -- following the run ----------------------------------------------------------------

    def _follow_run(self) -> None:
        """Update the status line (on the view loop, after events, at most 10 times a second)."""
        with self._lock:
            status = self.run_status()
            self._status = status
            self.status.value = self._status_html(status)
            critical = tuple(f for f in status.failures if f.critical)
            if status.phase == "failed" and critical != self._shown_failures:
                self._shown_failures = critical
                lines = "\n".join(str(f) for f in critical)
                self.run_error.value = _error_html(f"the run failed: {lines}")
            if [g for _, g in self.condition_guid.options] != self.ec.resources:
                self._sync_choices()  # resources registered by code, or removed at release

    def _status_html(self, status: RunStatus) -> str:
        color = PHASE_COLORS[status.phase]
        badge = (f'<span class="nepi-phase" style="background:{color};color:{text_color(color)};'
                 f'padding:1px 9px;border-radius:9px;font-weight:bold">{status.phase.upper()}</span>')
        parts = [html.escape(status.summary or "no resources yet")]
        if status.undeployed and status.phase != "building":
            parts.append(f"{status.undeployed} not deployed yet")
        lines = []
        for failure in status.failures:
            style = f"color:{_RED}" if failure.critical else "color:#8d6e63"
            lines.append(f'<div class="nepi-run-failure" data-guid="{failure.guid}" style="{style};'
                         f'white-space:pre-wrap">{html.escape(str(failure))}</div>')
        if status.phase == "failed":
            lines.append('<div style="color:#555">a critical failure stops and releases every resource; '
                         'the table and the graph show what each one came to</div>')
        text, is_error = self._message
        if text:
            style = f"color:{_RED}" if is_error else "color:#555555"
            lines.append(f'<div class="nepi-last-action" style="{style}">'
                         f"last action: {html.escape(text)}</div>")
        return (f'<div class="nepi-run-status" data-phase="{status.phase}" style="{_FONT}">'
                f'{badge} <span class="nepi-run-summary">{" · ".join(parts)}</span>{"".join(lines)}</div>')

    # -- the pickers ------------------------------------------------------------------------

    def _choices(self) -> list[tuple[str, int]]:
        ec = self.ec
        choices = []
        for guid in ec.resources:
            try:
                rm = ec.get_resource(guid)
            except KeyError:
                continue
            name = rm.name
            choices.append((f"{guid} {rm.get_rtype()}" + (f" ({name})" if name else ""), guid))
        return choices

    def _partners(self, guid: int, guids: list[int]) -> list[int]:
        """The resources ``guid`` may be connected to now (and is not yet)."""
        ec = self.ec
        try:
            connected = ec.get_resource(guid).connections
        except KeyError:
            return []
        return [g for g in guids if g != guid and g not in connected and ec.can_connect(guid, g)]

    def _sync_choices(self) -> None:
        with self._lock, self.hold_sync():
            choices = self._choices()
            for dropdown, default_index in ((self.condition_guid, -1), (self.condition_after, -2)):
                self._set_options(dropdown, choices, default_index)
            traced = [c for c in choices if self._has_traces(c[1])]
            self._set_options(self.trace_guid, traced, -1)
            # Connect: only resources that have a partner (O(n^2) checks: up to 200 resources)
            guids = [g for _, g in choices]
            if len(guids) <= 200:
                choices = [c for c in choices if self._partners(c[1], guids)]
            self._set_options(self.connect_a, choices, -1)
            self._connect_a_changed()
            self._trace_guid_changed()

    def _has_traces(self, guid: int) -> bool:
        try:
            return bool(self.ec.get_resource(guid).get_trace_declarations())
        except KeyError:  # removed meanwhile (hardRelease)
            return False

    @staticmethod
    def _set_options(dropdown: widgets.Dropdown, choices: list[tuple[str, int]], default_index: int) -> None:
        if list(dropdown.options) == choices:
            return  # keep what the user chose
        dropdown.options = choices
        if choices:  # a new resource: the newest (and the one before it: the likeliest pair)
            dropdown.value = choices[max(default_index, -len(choices))][1]

    def _connect_a_changed(self, change: dict[str, Any] | None = None) -> None:
        with self._lock:
            a = self.connect_a.value
            choices = self._choices()
            if a is None:
                self.connect_b.options = []
                self.connect_button.disabled = True
                self.connect_hint.value = (f'<div style="{_FONT};color:#757575">nothing to connect: '
                                           f'an application connects to a node</div>' if choices else "")
                return
            partners = set(self._partners(a, [g for _, g in choices]))
            self._set_options(self.connect_b, [c for c in choices if c[1] in partners], -1)
            self.connect_button.disabled = not partners
            rm = self.ec.get_resource(a)
            kinds = rm.get_connection_types()
            what = " or ".join(kinds) if kinds else "any type"
            none = "" if partners else "; none of the other resources is one (or each has what it needs)"
            self.connect_hint.value = (f'<div style="{_FONT};color:#757575">a {html.escape(rm.get_rtype())} '
                                       f"connects to {html.escape(what)}{none}</div>")

    # -- reacting to the form ----------------------------------------------------------------

    def _type_changed(self, change: dict[str, Any] | None = None) -> None:
        rtype = self.type_choice.value
        if rtype is None:
            self.form.children = ()
            self.advanced.children = ()
            return
        cls = get_resource_type(rtype)
        self.type_help.value = (f'<div style="font-size:12px;color:#555;font-family:sans-serif">'
                                f"{html.escape(cls.get_help() or '')}</div>")
        declarations = cls.get_attribute_declarations()
        main, advanced = attribute_groups(cls)
        self._fields = {name: _Field(declarations[name], rtype) for name in main + advanced}
        self.form.children = [self._fields[name].box for name in main]
        boxes = [self._fields[name].box for name in advanced]
        self.advanced.children = [widgets.VBox(boxes)] if boxes else []
        if advanced:
            self.advanced.set_title(0, f"Advanced ({len(advanced)}: {', '.join(advanced[:4])}"
                                       f"{', ...' if len(advanced) > 4 else ''})")
        self.advanced.selected_index = None
        self.advanced.layout.display = None if advanced else "none"

    def _trace_guid_changed(self, change: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._trace_choices()

    def _trace_choices(self) -> None:
        guid = self.trace_guid.value
        if guid is None:
            self.trace_name.options = []
            return
        try:
            rm = self.ec.get_resource(guid)
        except KeyError:
            self.trace_name.options = []
            return
        options = [(f"{name}{' (on)' if rm.trace_enabled(name) else ''}", name)
                   for name in rm.get_trace_declarations()]
        current = self.trace_name.value
        names = [o[1] for o in options]
        if list(self.trace_name.options) != options:
            self.trace_name.options = options
        self.trace_name.value = current if current in names else (names[0] if names else None)

    # -- the actions (each is one controller call) ------------------------------------------------

    @property
    def fields(self) -> dict[str, widgets.ValueWidget]:
        """The attribute form's input widgets, by attribute name (for the chosen type).

        Numbers are Text widgets: set them to text (``"3"``, ``"0.5"``, ``""`` for unset).
        """
        return {name: field.widget for name, field in self._fields.items()}

    @property
    def advanced_fields(self) -> list[str]:
        """Names of the attributes folded under "Advanced" (for the chosen type)."""
        return [name for name, field in self._fields.items()
                if self.advanced.children and field.box in self.advanced.children[0].children]

    def attribute_values(self) -> dict[str, Any]:
        """The attributes the form would pass: those changed from their defaults, checked.

        A blank field means "unset" and is left out.  Raises
        :class:`~nepi_lab.AttributeValueError` for a value its declaration refuses.
        """
        values = {}
        for name, field in self._fields.items():
            if field.changed:
                value = field.value()
                if value is not None:
                    values[name] = value
        return values

    def add_resource(self) -> int | None:
        """Register a resource of the chosen type with the form's values; its guid (None if refused)."""
        rtype = self.type_choice.value
        problems = {name: field.problem() for name, field in self._fields.items()}
        for name, problem in problems.items():
            self._fields[name].show_error(problem)
        bad = {name: p for name, p in problems.items() if p}
        if bad:
            if any(name in self.advanced_fields for name in bad):
                self.advanced.selected_index = 0  # show the field that is wrong
            self._report(error=f"add {rtype}: " + "; ".join(bad.values()), section="add")
            return None
        values = self.attribute_values()
        try:
            guid = self.ec.register_resource(rtype, **values)
        except Exception as exc:
            attribute = getattr(exc, "attribute", None)
            if attribute in self._fields:
                self._fields[attribute].show_error(str(exc))
            self._report(error=f"add {rtype}: {exc}", section="add")
            return None
        self._type_changed()  # a fresh form, back to the defaults
        self._report(status=f"added resource {guid} ({rtype})", section="add")
        self._model_changed()
        return guid

    def connect(self) -> None:
        """Connect the two chosen resources."""
        a, b = self.connect_a.value, self.connect_b.value
        if a is None or b is None:
            self._report(error="connect: no pair of resources can be connected (an application connects "
                               "to a node)", section="connect")
            return
        self._attempt(f"connected {a} and {b}", lambda: self.ec.register_connection(a, b), "connect")

    def add_condition(self) -> None:
        """Register the condition described by the condition fields."""
        guid, after = self.condition_guid.value, self.condition_after.value
        if guid is None or after is None:
            self._report(error="condition: add resources first", section="condition")
            return
        action, state = self.condition_action.value, self.condition_state.value
        delay = self.condition_delay.value
        self._attempt(f"{action} {guid} once {after} reached {state} + {delay}",
                      lambda: self.ec.register_condition(guid, action, after, state, delay.strip() or None),
                      "condition")

    def enable_trace(self) -> None:
        """Enable the chosen trace of the chosen resource."""
        guid, name = self.trace_guid.value, self.trace_name.value
        if guid is None or name is None:
            self._report(error="trace: choose a resource with traces", section="trace")
            return
        self._attempt(f"trace {name!r} of {guid} enabled", lambda: self.ec.enable_trace(guid, name), "trace")
        self._trace_guid_changed()

    def deploy(self) -> None:
        """Deploy what was registered and not deployed yet (returns at once).

        The status line then follows the run: deploying, running, finished or failed.
        """
        ec = self.ec
        new = {g for g in ec.resources if ec.state(g) == S.NEW}
        if not new:
            self._report(error="deploy: nothing new to deploy; add resources first", section="run")
            return
        self._deploying |= new
        try:
            ec.deploy()
        except Exception as exc:
            self._deploying -= new
            self._report(error=f"deploy: {exc}", section="run")
            return
        self._report(status=f"deploying {sorted(new)}", section="run")
        self._model_changed()

    def stop(self) -> None:
        """Stop every started resource."""
        running = [g for g in self.ec.resources if self.ec.state(g) == S.STARTED]
        if not running:
            self._report(error="stop: nothing is running", section="run")
            return
        self._in_background("stopping…", f"stopped {running}", lambda: self.ec.stop_async(running))

    def release(self) -> None:
        """Release every resource."""
        self._in_background("releasing…", "released everything", self.ec.release_async)

    def code(self) -> str:
        """The Python that builds this experiment (see :func:`~nepi_lab.notebook.experiment_code`)."""
        return experiment_code(self.ec)

    def show_code(self) -> None:
        """Print :meth:`code` below the builder."""
        self.code_output.clear_output()
        with self.code_output:
            print(self.code())

    # -- reading a trace --------------------------------------------------------------------------

    def read_trace(self) -> None:
        """Show the chosen trace: its last lines, its DataFrame and, for ping and iperf3, its plot.

        The frame is :func:`nepi_lab.analysis.trace_frame` with the type's default
        parser (``linux::Ping`` stdout: ``ping``; iperf3: ``iperf3``; otherwise one
        row per line); it is kept as :attr:`trace_frame`.  What cannot be read (a
        trace not enabled, nothing collected yet) is said beside the button.
        """
        guid, name = self.trace_guid.value, self.trace_name.value
        if guid is None or name is None:
            self._report(error="read: choose a resource with traces", section="trace")
            return
        problem = self.trace_view.show(guid, name)
        if problem:
            self._report(error=f"read {name!r} of {guid}: {problem}", section="trace")
        else:
            size = self.trace_view.size
            self._report(status=f"read trace {name!r} of {guid}: {size} bytes", section="trace")

    @property
    def trace_frame(self) -> Any:
        """The DataFrame of the trace last read (None if it could not be parsed)."""
        return self.trace_view.frame

    def _in_background(self, pending: str, what: str, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run a controller coroutine without blocking the kernel; report how it ended."""
        ec = self.ec

        def done(future: Any) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                self._report(error=f"{pending.rstrip('…')}: {error}")
            else:
                self._report(status=what)
            self._model_changed()

        self._report(status=pending)
        try:  # the controller's thread runs it; the widgets are touched in the builder's thread
            future = asyncio.run_coroutine_threadsafe(make(), ec.loop)
            future.add_done_callback(lambda f: self._scheduler.call_later(0.0, lambda: done(f)))
        except Exception as exc:
            self._report(error=f"{pending.rstrip('…')}: {exc}")

    def close(self) -> None:
        """Stop following the controller and close every widget."""
        subscription = getattr(self, "_subscription", None)
        if subscription is not None:
            subscription.close()
        for name in ("graph", "table", "explain"):
            view = getattr(self, name, None)
            if view is not None:
                view.close()
        super().close()

