"""Build and run an experiment with widgets: :class:`ExperimentBuilder`.

The builder is a form over the controller's own calls: every button makes exactly
one call (``register_resource``, ``register_connection``, ``register_condition``,
``enable_trace``, ``deploy``, ``stop``, ``release``), so what it builds is an
ordinary experiment, and "Show code" prints the script that makes it again.

The attribute form is generated from the declarations of the chosen type: a widget
per type (Text, IntText, FloatText, Checkbox, a Dropdown for an Enumerate, a
Password for secrets), the help as tooltip.  A value is checked as it is typed, and
an invalid one is shown beside its field; anything a call refuses is shown in the
error line, never raised into the void.  Only the values changed from the defaults
are passed.  Unexpected errors of the builder itself land in its log
(``log_output``, through ``Output.capture``).

Every widget has a stable CSS class (``nepi-builder-add``, ``nepi-attr-command``,
...) so that a browser test can find it.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.attributes import Attribute, Flags, Types
from ..core.registry import get_resource_type, resource_types
from ..core.states import ResourceAction, ResourceState
from ._schedule import view_scheduler
from .code import experiment_code
from .graph import GraphView
from .panels import ExplainView, ResourceTable

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

S = ResourceState
_FIELD_LAYOUT = {"width": "400px"}
_FIELD_STYLE = {"description_width": "140px"}


def attribute_widget(declaration: Attribute) -> widgets.ValueWidget:
    """The input widget for one declared attribute, set to its default."""
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
    if t is Types.Integer:
        return widgets.IntText(value=default if isinstance(default, int) else 0, **common)
    if t is Types.Double:
        return widgets.FloatText(value=float(default) if isinstance(default, (int, float)) else 0.0, **common)
    secret = declaration.has_flag(Flags.NoRead) or declaration.has_flag(Flags.Credential)
    factory = widgets.Password if secret else widgets.Text
    return factory(value="" if default is None else str(default), placeholder=declaration.help[:60], **common)


class _Field:
    """One attribute's widget, its inline error, and whether the user changed it."""

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
        return self.widget.value != self.initial

    def _check(self, change: dict[str, Any] | None = None) -> None:
        self.show_error(self.problem())

    def problem(self) -> str:
        """Why the current value would be refused ('' if it is fine)."""
        if not self.changed:
            return ""
        try:
            self.declaration.check(self.widget.value, None, self.rtype)
        except Exception as exc:
            return str(exc)
        return ""

    def show_error(self, message: str) -> None:
        self.error.value = (f'<span style="color:#c62828;font-size:11px">{html.escape(message)}</span>'
                            if message else "")


class ExperimentBuilder(widgets.VBox):
    """Widgets that build, run and show an experiment on ``ec``.

    Left: add a resource (type, attribute form), connect two resources, add a
    condition, enable a trace, Deploy / Stop / Release, Show code.  Right: the live
    :class:`GraphView`, the :class:`ResourceTable` and the :class:`ExplainView`.

    Parameters
    ----------
    ec : ExperimentController
    types : list of str, optional
        Resource types offered; default: every registered type.

    Example
    -------
    >>> builder = ExperimentBuilder(ec)       # doctest: +SKIP
    >>> builder                               # doctest: +SKIP
    >>> print(builder.code())                 # doctest: +SKIP
    """

    def __init__(self, ec: ExperimentController, types: list[str] | None = None, **kwargs: Any) -> None:
        self.ec = ec
        self._scheduler = view_scheduler(ec)
        self._fields: dict[str, _Field] = {}
        self.log_output = widgets.Output(layout=widgets.Layout(max_height="200px", overflow="auto"))
        self.log_output.add_class("nepi-builder-log")
        names = types if types is not None else list(resource_types())

        # -- add a resource
        self.type_choice = self._tag(widgets.Dropdown(
            options=names, value="linux::Node" if "linux::Node" in names else (names[0] if names else None),
            description="type", style=dict(_FIELD_STYLE), layout=widgets.Layout(**_FIELD_LAYOUT)),
            "nepi-builder-type")
        self.type_help = self._tag(widgets.HTML(), "nepi-builder-type-help")
        self.form = self._tag(widgets.VBox(), "nepi-builder-form")
        self.add_button = self._tag(widgets.Button(description="Add resource", button_style="primary",
                                                   icon="plus"), "nepi-builder-add")
        # -- connect
        self.connect_a = self._tag(self._resource_dropdown("connect"), "nepi-builder-connect-a")
        self.connect_b = self._tag(self._resource_dropdown("with"), "nepi-builder-connect-b")
        self.connect_button = self._tag(widgets.Button(description="Connect", icon="link"),
                                        "nepi-builder-connect")
        # -- condition
        self.condition_guid = self._tag(self._resource_dropdown("resource"), "nepi-builder-cond-guid")
        self.condition_action = self._tag(widgets.Dropdown(
            options=[a.name for a in ResourceAction], value="START", description="does",
            style=dict(_FIELD_STYLE), layout=widgets.Layout(**_FIELD_LAYOUT)), "nepi-builder-cond-action")
        self.condition_after = self._tag(self._resource_dropdown("once"), "nepi-builder-cond-after")
        self.condition_state = self._tag(widgets.Dropdown(
            options=[s.name for s in S if s is not S.NEW], value="STARTED", description="reached",
            style=dict(_FIELD_STYLE), layout=widgets.Layout(**_FIELD_LAYOUT)), "nepi-builder-cond-state")
        self.condition_delay = self._tag(widgets.Text(
            value="0s", description="plus", placeholder="0s, 500ms, 2s",
            tooltip="delay after the state is reached: a number and a unit (h, m, s, ms, us)",
            style=dict(_FIELD_STYLE), layout=widgets.Layout(**_FIELD_LAYOUT)), "nepi-builder-cond-delay")
        self.condition_button = self._tag(widgets.Button(description="Add condition", icon="clock-o"),
                                          "nepi-builder-condition")
        # -- traces
        self.trace_guid = self._tag(self._resource_dropdown("resource"), "nepi-builder-trace-guid")
        self.trace_name = self._tag(widgets.Dropdown(
            options=[], description="trace", style=dict(_FIELD_STYLE),
            layout=widgets.Layout(**_FIELD_LAYOUT)),
            "nepi-builder-trace-name")
        self.trace_button = self._tag(widgets.Button(description="Enable trace", icon="file-text-o"),
                                      "nepi-builder-trace")
        # -- running
        self.deploy_button = self._tag(widgets.Button(description="Deploy", button_style="success",
                                                      icon="play"), "nepi-builder-deploy")
        self.stop_button = self._tag(widgets.Button(description="Stop", button_style="warning", icon="stop"),
                                     "nepi-builder-stop")
        self.release_button = self._tag(widgets.Button(description="Release", button_style="danger",
                                                       icon="trash"), "nepi-builder-release")
        self.code_button = self._tag(widgets.Button(description="Show code", icon="code"),
                                     "nepi-builder-show-code")
        self.code_output = self._tag(widgets.Output(), "nepi-builder-code")
        self.error = self._tag(widgets.HTML(), "nepi-builder-error")
        self.status = self._tag(widgets.HTML(), "nepi-builder-status")
        # -- views
        self.graph = GraphView(ec, width=6.5, height=4.2)
        self.table = ResourceTable(ec)
        self.explain = ExplainView(ec)

        def section(title: str, *children: widgets.Widget) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f"<b>{html.escape(title)}</b>"), *children],
                                layout=widgets.Layout(margin="0 0 8px 0"))

        left = widgets.VBox([
            section("Add a resource", self.type_choice, self.type_help, self.form, self.add_button),
            section("Connect", self.connect_a, self.connect_b, self.connect_button),
            section("Condition", self.condition_guid, self.condition_action, self.condition_after,
                    self.condition_state, self.condition_delay, self.condition_button),
            section("Traces", self.trace_guid, self.trace_name, self.trace_button),
            section("Run", widgets.HBox([self.deploy_button, self.stop_button, self.release_button]),
                    self.code_button),
        ], layout=widgets.Layout(width="430px", min_width="430px"))
        right = widgets.VBox([self.graph, self.table, self.explain], layout=widgets.Layout(flex="1 1 auto"))
        super().__init__(
            [self.error, self.status, widgets.HBox([left, right]), self.code_output, self.log_output],
            **kwargs)
        self.add_class("nepi-builder")

        self.type_choice.observe(self._type_changed, names=["value"])
        self.trace_guid.observe(self._trace_guid_changed, names=["value"])
        for button, handler in ((self.add_button, self.add_resource), (self.connect_button, self.connect),
                                (self.condition_button, self.add_condition),
                                (self.trace_button, self.enable_trace), (self.deploy_button, self.deploy),
                                (self.stop_button, self.stop), (self.release_button, self.release),
                                (self.code_button, self.show_code)):
            button.on_click(self.log_output.capture()(self._from_button(handler)))
        self._type_changed()
        self._sync_choices()

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _tag(widget: Any, css_class: str) -> Any:
        widget.add_class(css_class)
        return widget

    @staticmethod
    def _resource_dropdown(description: str) -> widgets.Dropdown:
        return widgets.Dropdown(options=[], description=description, style=dict(_FIELD_STYLE),
                                layout=widgets.Layout(**_FIELD_LAYOUT))

    @staticmethod
    def _from_button(handler: Callable[[], Any]) -> Callable[[widgets.Button], None]:
        def on_click(_: widgets.Button) -> None:
            handler()

        return on_click

    def _report(self, error: str = "", status: str = "") -> None:
        self.error.value = (f'<div style="color:#c62828;font-family:sans-serif;font-size:12px">'
                            f"{html.escape(error)}</div>" if error else "")
        if status or error:
            self.status.value = (f'<div style="color:#2e7d32;font-family:sans-serif;font-size:12px">'
                                 f"{html.escape(status)}</div>" if status else "")

    def _attempt(self, what: str, call: Callable[[], Any]) -> Any:
        """Make one controller call; show its refusal instead of raising it."""
        try:
            result = call()
        except Exception as exc:
            self._report(error=f"{what}: {exc}")
            return None
        self._report(status=what)
        self._model_changed()
        return result

    def _model_changed(self) -> None:
        self._sync_choices()
        self.graph.refresh()
        self.table.refresh()
        self.explain.refresh()

    def _sync_choices(self) -> None:
        ec = self.ec
        choices = []
        for guid in ec.resources:
            try:
                choices.append((f"{guid} {ec.get_resource(guid).get_rtype()}", guid))
            except KeyError:
                continue
        with self.hold_sync():
            for dropdown, default_index in ((self.connect_a, -1), (self.connect_b, -2),
                                            (self.condition_guid, -1), (self.condition_after, -2),
                                            (self.trace_guid, -1)):
                if [c[1] for c in dropdown.options] == [c[1] for c in choices]:
                    continue  # keep what the user chose
                # a new resource: the newest and the one before it, the likeliest pair
                dropdown.options = choices
                if choices:
                    dropdown.value = choices[max(default_index, -len(choices))][1]
        self._trace_guid_changed()

    # -- reacting to the form ----------------------------------------------------------------

    def _type_changed(self, change: dict[str, Any] | None = None) -> None:
        rtype = self.type_choice.value
        if rtype is None:
            self.form.children = ()
            return
        cls = get_resource_type(rtype)
        self.type_help.value = (f'<div style="font-size:12px;color:#555;font-family:sans-serif">'
                                f"{html.escape(cls.get_help() or '')}</div>")
        declarations = cls.get_attribute_declarations()
        self._fields = {name: _Field(declaration, rtype) for name, declaration in declarations.items()
                        if not declaration.has_flag(Flags.NoWrite)}
        self.form.children = [field.box for field in self._fields.values()]

    def _trace_guid_changed(self, change: dict[str, Any] | None = None) -> None:
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
        self.trace_name.options = options
        self.trace_name.value = current if current in names else (names[0] if names else None)

    # -- the actions (each is one controller call) ------------------------------------------------

    @property
    def fields(self) -> dict[str, widgets.ValueWidget]:
        """The attribute form's input widgets, by attribute name (for the chosen type)."""
        return {name: field.widget for name, field in self._fields.items()}

    def attribute_values(self) -> dict[str, Any]:
        """The attributes the form would pass: those changed from their defaults."""
        return {name: field.widget.value for name, field in self._fields.items() if field.changed}

    def add_resource(self) -> int | None:
        """Register a resource of the chosen type with the form's values; its guid (None if refused)."""
        rtype = self.type_choice.value
        problems = {name: field.problem() for name, field in self._fields.items()}
        for name, problem in problems.items():
            self._fields[name].show_error(problem)
        bad = {name: p for name, p in problems.items() if p}
        if bad:
            self._report(error=f"add {rtype}: " + "; ".join(bad.values()))
            return None
        values = self.attribute_values()
        try:
            guid = self.ec.register_resource(rtype, **values)
        except Exception as exc:
            attribute = getattr(exc, "attribute", None)
            if attribute in self._fields:
                self._fields[attribute].show_error(str(exc))
            self._report(error=f"add {rtype}: {exc}")
            return None
        self._report(status=f"added resource {guid} ({rtype})")
        self._type_changed()  # a fresh form, back to the defaults
        self._model_changed()
        return guid

    def connect(self) -> None:
        """Connect the two chosen resources."""
        a, b = self.connect_a.value, self.connect_b.value
        if a is None or b is None:
            self._report(error="connect: add two resources first")
            return
        self._attempt(f"connected {a} and {b}", lambda: self.ec.register_connection(a, b))

    def add_condition(self) -> None:
        """Register the condition described by the condition fields."""
        guid, after = self.condition_guid.value, self.condition_after.value
        if guid is None or after is None:
            self._report(error="condition: add resources first")
            return
        action, state = self.condition_action.value, self.condition_state.value
        delay = self.condition_delay.value
        self._attempt(f"{action} {guid} once {after} reached {state} + {delay}",
                      lambda: self.ec.register_condition(guid, action, after, state, delay.strip() or None))

    def enable_trace(self) -> None:
        """Enable the chosen trace of the chosen resource."""
        guid, name = self.trace_guid.value, self.trace_name.value
        if guid is None or name is None:
            self._report(error="trace: choose a resource with traces")
            return
        self._attempt(f"trace {name!r} of {guid} enabled", lambda: self.ec.enable_trace(guid, name))

    def deploy(self) -> None:
        """Deploy what was registered and not deployed yet (returns at once)."""
        self._attempt("deploying", self.ec.deploy)

    def stop(self) -> None:
        """Stop every started resource."""
        running = [g for g in self.ec.resources if self.ec.state(g) == S.STARTED]
        if not running:
            self._report(error="stop: nothing is running")
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
        """Stop the live views and close every widget."""
        for name in ("graph", "table", "explain"):
            view = getattr(self, name, None)
            if view is not None:
                view.close()
        super().close()
