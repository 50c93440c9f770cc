"""The registry of resource types, keyed by type name (``linux::Application``).

A class that subclasses :class:`~nepi_lab.core.resource.ResourceManager` and sets
``_rtype`` registers itself when it is defined, so defining a type in a notebook cell
is enough.  Defining a type again under the same name replaces the earlier one, which
is what redefining a class in a notebook needs.

Types come from three places, looked up lazily so that ``import nepi_lab`` stays light
and a script pays only for the types it uses:

- classes already defined (registered on definition);
- the package's own modules, listed in :data:`BUILTIN_MODULES`: a lookup that misses
  imports the one module its name's prefix names (``linux::Node`` imports
  ``nepi_lab.resources.linux``, and of it only the module defining ``linux::Node``;
  ``ns3::Node`` the ns-3 module, a name without ``::`` the collector), see
  :data:`BUILTIN_PREFIXES` -- unless a plug-in is installed (below): then the first
  lookup that misses also loads every other module and every plug-in, as a plug-in may
  redefine a built-in name;
- the ``nepi_lab.resources`` entry-point group, so another package can add types::

      [project.entry-points."nepi_lab.resources"]
      mytypes = "mypackage.resources"        # a module defining ResourceManager subclasses

  read only when a name is found in none of the above, or when every type is listed
  (:func:`resource_types`); and then :mod:`importlib.metadata` (tens of milliseconds
  to import and to scan every installed package) is used only if some installed
  package's ``entry_points.txt`` declares the group (:func:`_plugins_declared`, whose
  answer is kept in :func:`cache_dir` until the packages in a folder of ``sys.path``
  change).
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import importlib
import json
import logging
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import UnknownResourceTypeError

if TYPE_CHECKING:
    from .resource import ResourceManager

log = logging.getLogger("nepi_lab")

ENTRY_POINT_GROUP = "nepi_lab.resources"

#: Modules of this package that define resource types, imported on demand.
BUILTIN_MODULES: list[str] = ["nepi_lab.resources.collector", "nepi_lab.resources.linux",
                               "nepi_lab.resources.netns", "nepi_lab.resources.ns3"]

#: The built-in module holding the types of each prefix (the part of a type name before
#: ``::``; ``""`` for a name without one).  A prefix not listed here is no built-in's.
BUILTIN_PREFIXES: dict[str, str] = {"linux": "nepi_lab.resources.linux", "netns": "nepi_lab.resources.netns",
                                    "ns3": "nepi_lab.resources.ns3", "": "nepi_lab.resources.collector"}

_types: dict[str, type[ResourceManager]] = {}
#: Built-in modules already imported (or tried) by a prefix lookup.
_imported: set[str] = set()
#: Whether some installed package declares plug-in types (None: not looked at yet).
_plugins_present: bool | None = None
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


def _import_builtin(name: str, rtype: str | None = None) -> None:
    """Import one of :data:`BUILTIN_MODULES` (its types register themselves).

    A package that imports its modules lazily lists the module of each of its types in
    ``_TYPE_MODULES`` (``{"linux::Node": "node", ...}``): all of them are imported, or
    only ``rtype``'s when it is listed there.
    """
    modules: dict[str, str] = {}
    # A type defined before (a notebook cell redefining linux::Ping) stays: a built-in
    # module imported now, on demand, counts as defined before it, as if loaded at start.
    before = dict(_types)
    try:
        package = importlib.import_module(name)
        modules = getattr(package, "_TYPE_MODULES", None) or {}
        wanted = [modules[rtype]] if rtype in modules else sorted(set(modules.values()))
        for module in wanted:
            importlib.import_module(f"{name}.{module}")
    except ImportError as exc:  # an optional back end whose extra is missing
        log.debug("resource module %s not loaded: %s", name, exc)
    finally:
        _types.update(before)
    if rtype is None or rtype not in modules:
        _imported.add(name)


def _load_prefix(rtype: str) -> None:
    """Import the built-in module of ``rtype``'s prefix (only the one defining ``rtype``
    when the package says which), if any and not done yet (thread-safe)."""
    module = BUILTIN_PREFIXES.get(rtype.partition("::")[0] if "::" in rtype else "")
    if module is None or module in _imported:
        return
    with _load_lock:
        if module not in _imported:
            _import_builtin(module, rtype)


#: Where the answer of :func:`_plugins_declared` is kept between processes: this folder
#: (empty: nowhere), else ``$XDG_CACHE_HOME/nepi_lab``, else ``~/.cache/nepi_lab``.
CACHE_ENV = "NEPI_LAB_CACHE"
_PLUGINS_CACHE_FORMAT = 3
#: A folder changed less than this long ago (ns) may change again within the same tick
#: of the file system's clock, unseen: an answer depending on it is not kept.
_RACY = 5_000_000_000


def cache_dir() -> str | None:
    """The folder of nepi_lab's caches (see :data:`CACHE_ENV`); None: no cache."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit is not None:
        return explicit or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nepi_lab")


def _path_state() -> list[list[Any]] | None:
    """What the scan's answer depends on: each ``sys.path`` folder with its modification
    time (a package installed or removed there changes it); None when it cannot be kept
    (an entry that is not a folder: the scan answers True at once anyway)."""
    state: list[list[Any]] = []
    for entry in sys.path:
        folder = os.path.abspath(entry or ".")
        try:
            info = os.stat(folder)
        except OSError:  # a folder that does not exist: nothing there
            state.append([folder, None])
            continue
        if not stat.S_ISDIR(info.st_mode):
            return None
        state.append([folder, info.st_mtime_ns])
    return state


def _packages_in(folder: str) -> tuple[int | None, int, list[list[Any]]]:
    """A digest of the packages ``folder`` holds (each ``*.dist-info``/``*.egg-info``
    entry's name, inode and modification time; a package installed again is a new
    entry), the newest of those times, and the entry points of its ``*.egg-info``
    folders (:func:`_entry_points_state`): a folder whose modification time changed for
    other files (a script's folder, a notebook's, saved every few minutes) still holds
    the same packages.  (None, 0, []): no such folder."""
    found, newest, eggs = [], 0, []
    try:
        for entry in _entries(folder, (".dist-info", ".egg-info")):
            mtime = entry.stat(follow_symlinks=False).st_mtime_ns
            newest = max(newest, mtime)
            found.append(f"{entry.name}\0{entry.inode()}\0{mtime}")
            if entry.name.lower().endswith(".egg-info") and entry.is_dir():
                eggs.append(_entry_points_state(entry.path))
                newest = max(newest, eggs[-1][1] or 0)
    except FileNotFoundError:
        return None, 0, []
    found.sort()
    return binascii.crc32("\n".join(found).encode()) & 0xFFFFFFFF, newest, eggs


def _entry_points_state(egg_info: str) -> list[Any]:
    """``[path, modification time or None]`` of an ``*.egg-info`` folder's
    ``entry_points.txt``.  setuptools' ``egg_info`` (``setup.py develop``, a legacy
    editable install, any build in a source tree) rewrites that file in place, which
    changes neither the folder's time nor its parent's; installers replace a
    ``*.dist-info`` folder whole, which the folder digest sees."""
    path = os.path.join(egg_info, "entry_points.txt")
    return [path, _mtime(path)]


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _still_holds(cached: list[Any], state: list[list[Any]]) -> bool:
    """Whether the folders of ``state`` hold what those of the cache entry ``cached``
    (``[folder, mtime, digest]`` each, in ``sys.path`` order) held: a folder unchanged, or
    else holding the same packages (:func:`_packages_in`)."""
    if not isinstance(cached, list) or len(cached) != len(state):
        return False
    for (folder, mtime), kept in zip(state, cached, strict=True):
        if kept[:2] == [folder, mtime]:
            continue
        try:
            if _packages_in(folder)[0] != kept[2]:
                return False
        except OSError:
            return False
    return True


def _plugins_declared() -> bool:
    """:func:`_scan_for_plugins`, its answer kept in :func:`cache_dir` for the next process
    while the folders of ``sys.path`` hold the same packages (the scan reads a file of
    every installed package: 1.5-5 ms at a process's first lookup of a type)."""
    state = _path_state()
    folder = cache_dir()
    if state is None or folder is None:
        return _scan_for_plugins()
    # one file per environment (sys.path but its first entry, the script's folder or the
    # working one: a file per folder a script ever ran from would pile up)
    key = binascii.crc32("\0".join(f for f, _ in state[1:]).encode()) & 0xFFFFFFFF
    path = os.path.join(folder, f"plugins-{key:08x}.json")
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        if (cached.get("format") == _PLUGINS_CACHE_FORMAT and _still_holds(cached.get("path"), state)
                and all(_mtime(kept) == mtime for kept, mtime in cached["eggs"])):
            return bool(cached["declared"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError, IndexError):  # none yet, or damaged
        pass
    declared = _scan_for_plugins()
    now, kept, eggs = time.time_ns(), [], []
    try:
        for folder_, mtime in state:
            digest, newest, found = _packages_in(folder_)
            eggs += found
            if now - newest < _RACY:  # a package being installed: ask again next time
                return declared
            # a folder changed within the last seconds may change again within one tick
            # of the file system's clock, its time the same: its packages are listed then
            recent = mtime is not None and now - mtime < _RACY
            kept.append([folder_, -1 if recent else mtime, digest])
    except OSError:
        return declared
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": _PLUGINS_CACHE_FORMAT, "path": kept, "eggs": eggs, "declared": declared}, f)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: every process scans
        log.debug("cannot keep the plug-in scan in %s: %s", folder, exc)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return declared


def _scan_for_plugins() -> bool:
    """Whether an installed package may declare ``nepi_lab.resources`` entry points.

    Reads the ``entry_points.txt`` of every ``*.dist-info``/``*.egg-info`` folder on
    ``sys.path`` (about 2 ms for 300 packages) and looks for the group's header, so that
    :mod:`importlib.metadata` (which imports the email package and parses every
    package's metadata: tens of ms) is used only when there is something to find.
    A ``sys.path`` entry that is not a folder (a zip file) may hold packages this does
    not read: then the answer is True and importlib.metadata decides.
    """
    header = ("[" + ENTRY_POINT_GROUP + "]").encode()
    try:
        for dist in _packages_on_path((".dist-info", ".egg-info")):
            # os.open/os.read: a buffered file object per package costs ~40% more
            try:
                fd = os.open(dist.path + "/entry_points.txt", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # no entry points, or an .egg-info file
                continue
            try:
                if header in _read_all(fd):
                    return True
            except OSError:
                continue
            finally:
                os.close(fd)
    except _Unlisted:
        return True
    return False


class _Unlisted(Exception):
    """A ``sys.path`` entry is not a folder (a zip file): it may hold packages unlisted."""


def _packages_on_path(suffixes: tuple[str, ...]) -> Iterator[os.DirEntry[str]]:
    """The entries of ``sys.path``'s folders whose names end with one of ``suffixes`` (any
    case); raises :class:`_Unlisted` at an entry that is not a folder."""
    for entry in sys.path:
        try:
            yield from _entries(entry or ".", suffixes)
        except NotADirectoryError:
            raise _Unlisted(entry) from None
        except OSError:  # a folder that does not exist: nothing there
            continue


def _entries(folder: str, suffixes: tuple[str, ...]) -> Iterator[os.DirEntry[str]]:
    """The entries of ``folder`` whose names end with one of ``suffixes`` (any case)."""
    with os.scandir(folder) as listing:
        for found in listing:
            if found.name.lower().endswith(suffixes):
                yield found


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _plugins_installed() -> bool:
    """:func:`_plugins_declared`, asked once per process (the lookups' laziness hangs on it).

    With a plug-in installed, the first lookup that misses loads everything, as it always
    did: a plug-in may redefine a built-in name (its own ``linux::Ping``), and which class
    a name gives must not depend on which names were looked up before.
    """
    global _plugins_present
    if _plugins_present is None:
        _plugins_present = _plugins_declared()
    return _plugins_present


def _import_types() -> None:
    for name in BUILTIN_MODULES:
        if name not in _imported:
            _import_builtin(name)
    if not _plugins_declared():
        return
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
    if cls is None and isinstance(rtype, str):
        # the built-in module of its prefix first (only the one defining it), then the
        # plug-ins are asked about: loading it starts what it starts early (the linux
        # package warms the cgroup lock for the first command), and with a plug-in
        # installed everything loads below anyway, in the same order as without this
        _load_prefix(rtype)
        if not _plugins_installed():
            cls = _types.get(rtype)
    if cls is None:
        _load_all()  # every built-in and the plug-ins: to find it, or to suggest names
        cls = _types.get(rtype)
    if cls is None:
        if not isinstance(rtype, str):
            raise UnknownResourceTypeError(repr(rtype))
        import difflib  # here: only the error's suggestions need it

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
    if not _plugins_declared():
        return ()
    from importlib import metadata

    return tuple((ep.module, ep.dist) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
                 if ep.dist is not None)


def _normal(name: str) -> str:
    """A distribution name as :mod:`importlib.metadata` compares them (PEP 503, ``_``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _may_be_installed(name: str) -> bool:
    """Whether :func:`importlib.metadata.distribution` may find distribution ``name``: some
    ``<name>-...dist-info`` (or ``.egg-info``, ``.egg``) lies in a folder of ``sys.path``,
    or it may look where this does not (a zip file on ``sys.path``, a finder of its own).

    Listing the folders costs 1-2 ms; importing importlib.metadata (the email
    package) and its search, 20-30 ms at a first deploy with a type of the user's module.
    """
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        # PathFinder, and the importlib_metadata backport's finder that takes its place once
        # imported (by some library), look on sys.path, as below; another finder may not
        if hasattr(finder, "find_distributions") and finder is not PathFinder and \
                type(finder).__module__.partition(".")[0] != "importlib_metadata":
            return True
    wanted = _normal(name)
    try:
        return any(_normal(found.name.rpartition(".")[0].partition("-")[0]) == wanted
                   for found in _packages_on_path((".dist-info", ".egg-info", ".egg")))
    except _Unlisted:
        return True


@functools.cache
def _distribution_of(module: str) -> dict[str, str | None]:
    none: dict[str, str | None] = {"distribution": None, "version": None}
    if module == "__main__":
        return none
    if module.partition(".")[0] == "nepi_lab":
        # this package's own types (every run's): its name and version without
        # importlib.metadata, whose import and package scan cost tens of ms at deploy
        from .. import __version__

        return {"distribution": "nepi_lab", "version": __version__}
    plugins = _plugin_distributions()
    dist: Any = next((d for m, d in plugins if module == m or module.startswith(m + ".")), None)
    if dist is None:
        top = module.split(".")[0]
        if not _may_be_installed(top):  # a module of the user's (beside the notebook): no metadata
            return none
        from importlib import metadata

        try:
            dist = metadata.distribution(top)
        except (metadata.PackageNotFoundError, ValueError):
            return none
    return {"distribution": dist.metadata["Name"], "version": dist.version}
