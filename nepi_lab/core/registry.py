"""The registry of resource types, keyed by type name (``linux::Application``).

A class that subclasses :class:`~nepi_lab.core.resource.ResourceManager` and sets
``_rtype`` registers itself when it is defined, so defining a type in a notebook cell
is enough.  Defining a type again under the same name replaces the earlier one, which
is what redefining a class in a notebook needs.

Types come from three places, looked up lazily so that ``import nepi_lab`` stays light:

- classes already defined (registered on definition);
- the package's own modules, listed in :data:`BUILTIN_MODULES` and imported on the
  first lookup that misses;
- the ``nepi_lab.resources`` entry-point group, so another package can add types::

      [project.entry-points."nepi_lab.resources"]
      mytypes = "mypackage.resources"        # a module defining ResourceManager subclasses
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from .errors import UnknownResourceTypeError

if TYPE_CHECKING:
    from .resource import ResourceManager

log = logging.getLogger("nepi_lab")

ENTRY_POINT_GROUP = "nepi_lab.resources"

#: Modules of this package that define resource types, imported on demand.
BUILTIN_MODULES: list[str] = ["nepi_lab.resources.collector", "nepi_lab.resources.linux",
                               "nepi_lab.resources.netns", "nepi_lab.resources.ns3"]

_types: dict[str, type[ResourceManager]] = {}
_loaded = False
_loading = False  # the loading thread asked again (an import registering types)
#: Held while the types load: a thread asking meanwhile (runs of a sweep made at once)
#: waits for all of them instead of seeing some.
_load_lock = threading.RLock()


def register_type(cls: type[ResourceManager]) -> type[ResourceManager]:
    """Register ``cls`` under ``cls._rtype`` (done automatically on subclassing)."""
    _types[cls._rtype] = cls
    return cls


def _load_all() -> None:
    """Import the package's resource modules and the entry points, once (thread-safe)."""
    global _loaded, _loading
    if _loaded:
        return
    with _load_lock:
        if _loaded or _loading:
            return
        _loading = True
        try:
            _import_types()
        finally:
            _loaded, _loading = True, False


def _import_types() -> None:
    for name in BUILTIN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional back end whose extra is missing
            log.debug("resource module %s not loaded: %s", name, exc)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plug-in must not break the toolkit
            log.warning("resource plug-in %s could not be loaded: %s", ep.value, exc)
            continue
        if isinstance(loaded, type):
            register_type(loaded)


def get_resource_type(rtype: str | type[ResourceManager]) -> type[ResourceManager]:
    """Return the class registered as ``rtype`` (a class is returned as is).

    Raises
    ------
    UnknownResourceTypeError
        With the closest registered names as suggestions.
    """
    if isinstance(rtype, type):
        from .resource import ResourceManager

        if not issubclass(rtype, ResourceManager):
            raise UnknownResourceTypeError(repr(rtype))
        if getattr(rtype, "_rtype", None) not in _types:
            register_type(rtype)
        return rtype
    cls = _types.get(rtype)
    if cls is None:
        _load_all()
        cls = _types.get(rtype)
    if cls is None:
        if not isinstance(rtype, str):
            raise UnknownResourceTypeError(repr(rtype))
        names = list(_types)
        close = difflib.get_close_matches(rtype, names, n=3, cutoff=0.5)
        lower = [n for n in names if rtype.lower() in n.lower() and n not in close]
        raise UnknownResourceTypeError(rtype, close + lower[:3])
    return cls


def resource_types() -> dict[str, type[ResourceManager]]:
    """Every registered type, by name, sorted."""
    _load_all()
    return dict(sorted(_types.items()))


def type_origin(cls: type[ResourceManager]) -> dict[str, str | None]:
    """Where a type comes from: ``{"module", "distribution", "version"}``.

    ``module`` is the module defining the class (``"__main__"`` for a script or a
    notebook cell); ``distribution`` and ``version`` name the installed package that
    provides it (found through the ``nepi_lab.resources`` entry points, else a
    distribution named like the module's top-level package), or are None.  Experiment
    files record it so that loading one where the type is missing can say what to
    install or import.
    """
    module = cls.__module__
    return {"module": module, **_distribution_of(module)}


@functools.cache
def _plugin_distributions() -> tuple[tuple[str, object], ...]:
    """``(module, distribution)`` of every ``nepi_lab.resources`` entry point (read once)."""
    from importlib import metadata

    return tuple((ep.module, ep.dist) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
                 if ep.dist is not None)


@functools.cache
def _distribution_of(module: str) -> dict[str, str | None]:
    from importlib import metadata

    none: dict[str, str | None] = {"distribution": None, "version": None}
    if module == "__main__":
        return none
    plugins = _plugin_distributions()
    dist: Any = next((d for m, d in plugins if module == m or module.startswith(m + ".")), None)
    if dist is None:
        try:
            dist = metadata.distribution(module.split(".")[0])
        except (metadata.PackageNotFoundError, ValueError):
            return none
    return {"distribution": dist.metadata["Name"], "version": dist.version}
