"""Writing resource types: declarations, inheritance, the registry and its plug-ins."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from nepi_lab import (
    Attribute,
    ExperimentController,
    Flags,
    ResourceManager,
    Trace,
    Types,
    UnknownResourceTypeError,
    get_resource_type,
    resource_types,
)
from nepi_lab.core import registry


class Base(ResourceManager):
    _rtype = "reg::Base"
    _help = "a base type"
    _attributes = (Attribute("size", "bytes", type=Types.Integer, default=10),
                   Attribute("name", "a name", default="base", flags=Flags.Design))
    _traces = (Trace("out", "output", enabled=True),)


class Child(Base):
    _rtype = "reg::Child"
    _attributes = (Attribute("size", "bytes", type=Types.Integer, default=99),  # redeclared
                   Attribute("extra", "only here", type=Types.Bool, default=False))
    _traces = (Trace("err", "errors"),)

    async def do_run(self):
        return None


def test_declarations_are_inherited_without_decorators():
    assert set(Child.get_attribute_declarations()) == {"critical", "hardRelease", "size", "name", "extra"}
    assert Child.get_attribute_declarations()["size"].default == 99
    assert Base.get_attribute_declarations()["size"].default == 10  # the parent is untouched
    assert set(Child.get_trace_declarations()) == {"out", "err"}
    assert Base._long_lived and not Child._long_lived  # do_run makes a resource finish by itself


def test_types_register_by_name_and_redefinition_replaces():
    assert get_resource_type("reg::Child") is Child
    assert resource_types()["reg::Base"] is Base

    class Again(ResourceManager):
        _rtype = "reg::Child"

    try:
        assert get_resource_type("reg::Child") is Again  # a notebook cell run twice
    finally:
        registry.register_type(Child)


def test_a_class_can_be_registered_directly(tmp_path):
    with ExperimentController(local_dir=str(tmp_path)) as ec:
        guid = ec.register_resource(Child, size="5")
        assert ec.get(guid, "size") == 5 and ec.get_resource(guid).get_rtype() == "reg::Child"


def test_unknown_type_suggests_close_names():
    with pytest.raises(UnknownResourceTypeError) as info:
        get_resource_type("reg::Chlid")
    assert "reg::Child" in info.value.suggestions
    assert "did you mean 'reg::Child'" in str(info.value)


def test_types_come_from_the_entry_point_group(tmp_path, monkeypatch):
    (tmp_path / "plugin_types.py").write_text(textwrap.dedent("""
        from nepi_lab import ResourceManager
        class Plugged(ResourceManager):
            _rtype = "plugin::Plugged"
            _help = "from an entry point"
    """))
    dist = tmp_path / "plugin_types-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-types\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nepi_lab.resources]\nplugged = plugin_types\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    assert get_resource_type("plugin::Plugged").get_help() == "from an entry point"


def test_a_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch, caplog):
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nepi_lab.resources]\nbroken = no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    assert "reg::Base" in resource_types()
    assert "no_such_module_anywhere" in caplog.text


def test_cli_lists_the_types():
    listed = subprocess.run([sys.executable, "-m", "nepi_lab.cli", "types"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    registered = subprocess.run(
        [sys.executable, "-c", "from nepi_lab import resource_types as r\n"
                               "for n, c in r().items(): print(n, '|', c.get_help())"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    if not registered:
        assert listed == ["no resource types registered"]
    else:
        assert len(listed) == len(registered)
        for line, entry in zip(listed, registered, strict=True):
            name, help_text = entry.split(" | ", 1)
            assert line.split()[0] == name and line.rstrip().endswith(help_text.strip())
    version = subprocess.run([sys.executable, "-m", "nepi_lab.cli", "version"], capture_output=True,
                             text=True, check=True).stdout
    import nepi_lab

    assert version.strip() == nepi_lab.__version__


class Legacy(ResourceManager):
    """Ported NEPI code: plain blocking hooks."""

    _rtype = "reg::Legacy"

    def do_provision(self):
        import time

        time.sleep(0.02)

    def do_run(self):
        import threading
        import time

        time.sleep(0.05)
        return threading.current_thread().name


def test_synchronous_hooks_run_in_the_bounded_pool(tmp_path):
    import threading

    from nepi_lab.core.loop import EXECUTOR_THREADS

    seen = []
    baseline = threading.active_count()
    with ExperimentController(local_dir=str(tmp_path)) as ec:
        ec.events.subscribe(lambda e: seen.append(threading.active_count()))
        guids = [ec.register_resource("reg::Legacy") for _ in range(12)]
        ec.deploy()
        ec.wait_finished(timeout=20)
        assert {ec.state(g, hr=True) for g in guids} == {"FINISHED"}
        assert not Legacy._long_lived  # a plain do_run still makes it finish by itself
    assert max(seen) <= baseline + 1 + EXECUTOR_THREADS  # the loop thread and the pool, no more


def test_topology_roles_are_declared_in_the_class_and_inherited():
    from nepi_lab import TopologyRole

    class Wire(ResourceManager):
        _rtype = "reg::Wire"
        _topology_role = TopologyRole.LINK
        _topology_labels = (("size", "{} bytes"),)

    class ThinWire(Wire):
        _rtype = "reg::ThinWire"

    assert ThinWire.get_topology_role() is TopologyRole.LINK
    assert ThinWire.get_topology_labels() == (("size", "{} bytes"),)
    assert Base.get_topology_role() is None and Base.get_topology_labels() == ()  # not part of a topology
    assert TopologyRole("host") is TopologyRole.HOST and TopologyRole.HOST == "host"


def test_the_back_ends_declare_their_roles():
    from nepi_lab import TopologyRole as R

    roles = {name: get_resource_type(name).get_topology_role() for name in (
        "linux::Node", "linux::Application", "linux::Ping", "linux::Tcpdump", "netns::Node", "netns::Switch",
        "netns::Link", "netns::Interface", "netns::Route")}
    assert roles == {"linux::Node": R.HOST, "linux::Application": R.APPLICATION, "linux::Ping": R.APPLICATION,
                     "linux::Tcpdump": R.APPLICATION, "netns::Node": R.HOST, "netns::Switch": R.SWITCH,
                     "netns::Link": R.LINK, "netns::Interface": R.INTERFACE, "netns::Route": R.ROUTE}
    link_labels = dict(get_resource_type("netns::Link").get_topology_labels())
    assert set(link_labels) == {"rate", "delay", "loss"}
    declared = get_resource_type("netns::Link").get_attribute_declarations()
    assert all(name in declared for name in link_labels)  # they name real attributes
    assert dict(get_resource_type("netns::Interface").get_topology_labels()).keys() == {"ip", "ipv6"}


#: Words of a promise that a help text can only break: the text says what a type does today.
_PROMISE = re.compile(r"\b(later|not yet|to ?do|fixme|xxx|coming soon|in a future|"
                      r"not (?:yet )?implemented|for now|someday|eventually)\b", re.I)


def _promises(text: str) -> list[str]:
    return [text[max(0, m.start() - 40):m.end() + 20] for m in _PROMISE.finditer(text)]


def test_help_texts_describe_what_is_there_not_what_is_promised():
    """Every built-in type's help, attribute and trace help, class and module docstring
    (what ``nepi-lab types``, the builder's tooltips and help() show)."""
    builtin = {name: cls for name, cls in resource_types().items() if cls.__module__.startswith("nepi_lab.")}
    assert {"linux::Node", "linux::Application", "linux::Ping", "netns::Node", "netns::Link"} <= set(builtin)
    found = {}
    for name, cls in builtin.items():
        texts = [cls.get_help(), cls.__doc__ or "", sys.modules[cls.__module__].__doc__ or ""]
        texts += [a.help for a in cls.get_attribute_declarations().values()]
        texts += [t.help for t in cls.get_trace_declarations().values()]
        if any(_promises(text) for text in texts):
            found[name] = [p for text in texts for p in _promises(text)]
    assert found == {}


def test_the_promise_check_finds_the_old_node_help():
    """Control: the help linux::Node had."""
    assert _promises("A Linux host (localhost now; SSH later) that runs applications.")
    assert _promises("needs SSH, which is not implemented yet")
    assert not _promises("A Linux host that runs applications: this machine, or any other over SSH.")


def test_a_type_name_imports_only_what_it_needs():
    """A fresh interpreter: ``linux::Application`` imports its own modules, not the other
    back ends, nor the linux tools, nor importlib.metadata (no plug-in is asked for)."""
    code = textwrap.dedent("""
        import sys
        from nepi_lab import get_resource_type, resource_types
        get_resource_type("linux::Application")
        loaded = set(sys.modules)
        print(sorted(m for m in ("nepi_lab.resources.netns", "nepi_lab.resources.ns3",
                                 "nepi_lab.resources.linux.tunnels", "nepi_lab.resources.linux.tools",
                                 "importlib.metadata") if m in loaded))
        get_resource_type("linux::Tap")
        print("nepi_lab.resources.linux.tools" in sys.modules, "nepi_lab.resources.netns" in sys.modules)
        types = resource_types()
        print(all(name in types for name in ("linux::Ping", "netns::Node", "Collector", "linux::Channel")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.split("\n")
    assert lines[:3] == ["[]", "False False", "True"]


def test_every_linux_type_is_mapped_to_its_module():
    """The linux package imports a type's module on its first lookup by name: its map
    names every type, and the module that defines it."""
    from nepi_lab.resources import linux

    registered = {name: cls for name, cls in resource_types().items() if name.startswith("linux::")}
    assert set(registered) == set(linux._TYPE_MODULES)
    for name, cls in registered.items():
        assert cls.__module__ == f"nepi_lab.resources.linux.{linux._TYPE_MODULES[name]}", name
    assert set(linux.__all__) <= set(linux._NAMES) | {"__getattr__"}
    for public in linux.__all__:
        assert getattr(linux, public).__name__ == public


def test_plugins_are_found_only_where_declared(tmp_path, monkeypatch):
    """The cheap scan says whether importlib.metadata is needed: an entry_points.txt
    declaring the group on sys.path makes it answer True; none, False."""
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert registry._plugins_declared() is False
    other = tmp_path / "other-1.0.dist-info"
    other.mkdir()
    (other / "entry_points.txt").write_text("[console_scripts]\nother = other:main\n")
    assert registry._plugins_declared() is False
    dist = tmp_path / "plugin_types-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[nepi_lab.resources]\nplugged = plugin_types\n")
    assert registry._plugins_declared() is True


def test_the_plugin_scan_is_kept_until_the_packages_on_sys_path_change(tmp_path, monkeypatch):
    """The scan's answer is kept for the next process (a file per environment in the cache
    folder) while the folders of sys.path hold the same packages: a package installed is
    seen at once."""
    packages, cache = tmp_path / "packages", tmp_path / "cache"
    packages.mkdir()
    other = packages / "other-1.0.dist-info"
    other.mkdir()
    (other / "entry_points.txt").write_text("[console_scripts]\nother = other:main\n")
    an_hour_ago = time.time() - 3600
    for settled in (other, packages):  # installed long ago: a new package would change them
        os.utime(settled, (an_hour_ago, an_hour_ago))
    monkeypatch.setattr(sys, "path", [str(packages)])
    monkeypatch.setenv(registry.CACHE_ENV, str(cache))
    scans = []
    scan = registry._scan_for_plugins
    monkeypatch.setattr(registry, "_scan_for_plugins", lambda: scans.append(1) or scan())
    assert registry._plugins_declared() is False and len(scans) == 1
    assert len(os.listdir(cache)) == 1
    assert registry._plugins_declared() is False and len(scans) == 1  # kept
    plugin = packages / "plugin_types-1.0.dist-info"
    plugin.mkdir()
    (plugin / "entry_points.txt").write_text("[nepi_lab.resources]\nplugged = plugin_types\n")
    assert registry._plugins_declared() is True and len(scans) == 2  # the folder changed: scanned
    # a package written within the last seconds (maybe still being installed): not kept,
    # asked again
    assert registry._plugins_declared() is True and len(scans) == 3
    os.utime(plugin, (an_hour_ago, an_hour_ago + 1))
    assert registry._plugins_declared() is True and len(scans) == 4
    assert registry._plugins_declared() is True and len(scans) == 4
    for name in os.listdir(cache):  # damaged: scanned again, and rewritten
        (cache / name).write_text("{not json")
    assert registry._plugins_declared() is True and len(scans) == 5
    assert registry._plugins_declared() is True and len(scans) == 5
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "a-file" / "cache"))  # cannot be made
    assert registry._plugins_declared() is True and len(scans) == 6
    monkeypatch.setenv(registry.CACHE_ENV, "")  # no cache
    assert registry._plugins_declared() is True and len(scans) == 7
    assert not (tmp_path / "a-file" / "cache").exists() and len(os.listdir(cache)) == 1
    # scripts run from two folders (sys.path[0]) of one environment share one file, and
    # the answer: neither folder holds a package
    monkeypatch.setenv(registry.CACHE_ENV, str(cache))
    for script_dir in ("here", "there"):
        (tmp_path / script_dir).mkdir()
        os.utime(tmp_path / script_dir, (an_hour_ago, an_hour_ago))
        monkeypatch.setattr(sys, "path", [str(tmp_path / script_dir), str(packages)])
        assert registry._plugins_declared() is True
    assert len(os.listdir(cache)) == 2 and len(scans) == 8
    # the script's folder changes for its other files (a notebook saved): still kept
    (tmp_path / "there" / "analysis.ipynb").write_text("{}")
    assert registry._plugins_declared() is True and len(scans) == 8
    # ... but a package put there is seen
    local = tmp_path / "there" / "local_types-0.1.dist-info"
    local.mkdir()
    assert registry._plugins_declared() is True and len(scans) == 9
    # a package installed again under the same name (its entry points may have changed)
    for settled in (local, packages, tmp_path / "there"):
        os.utime(settled, (an_hour_ago, an_hour_ago))
    assert registry._plugins_declared() is True and len(scans) == 10  # settled: kept again
    assert registry._plugins_declared() is True and len(scans) == 10
    shutil.rmtree(plugin)
    plugin.mkdir()
    (plugin / "entry_points.txt").write_text("[console_scripts]\nplugged = plugin_types:main\n")
    os.utime(plugin, (an_hour_ago + 7, an_hour_ago + 7))
    assert registry._plugins_declared() is False and len(scans) == 11
    # a script's folder made a moment ago: the answer is still kept (its packages listed)
    for name in os.listdir(cache):
        (cache / name).unlink()
    os.utime(plugin, (an_hour_ago, an_hour_ago))
    os.utime(packages, (an_hour_ago, an_hour_ago))
    (tmp_path / "fresh").mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path / "fresh"), str(packages)])
    assert registry._plugins_declared() is False and len(scans) == 12
    assert registry._plugins_declared() is False and len(scans) == 12
    (tmp_path / "fresh" / "types-0.1.dist-info").mkdir()  # within the same tick, maybe
    assert registry._plugins_declared() is False and len(scans) == 13


def test_the_plugin_scan_sees_an_egg_info_rewritten_in_place(tmp_path, monkeypatch):
    """``setup.py develop`` (and a legacy editable install) rewrites the entry_points.txt
    of the project's ``*.egg-info`` in place: neither that folder's time nor the source
    tree's changes.  A plug-in declared so is found in the next process, not hidden by the
    kept answer."""
    source, cache = tmp_path / "project", tmp_path / "cache"
    egg = source / "lab_tools.egg-info"
    egg.mkdir(parents=True)
    entry_points = egg / "entry_points.txt"
    entry_points.write_text("[console_scripts]\nlab-tools = lab_tools:main\n")
    an_hour_ago = time.time() - 3600
    for settled in (entry_points, egg, source):
        os.utime(settled, (an_hour_ago, an_hour_ago))
    monkeypatch.setattr(sys, "path", [str(tmp_path / "script"), str(source)])
    monkeypatch.setenv(registry.CACHE_ENV, str(cache))
    scans = []
    scan = registry._scan_for_plugins
    monkeypatch.setattr(registry, "_scan_for_plugins", lambda: scans.append(1) or scan())
    assert registry._plugins_declared() is False and len(scans) == 1
    assert registry._plugins_declared() is False and len(scans) == 1  # kept
    inode = entry_points.stat().st_ino
    with open(entry_points, "a") as f:  # in place, as setuptools writes it
        f.write("[nepi_lab.resources]\nlab_tools = lab_tools.types\n")
    os.utime(entry_points, (an_hour_ago + 60, an_hour_ago + 60))  # however long ago
    assert entry_points.stat().st_ino == inode
    assert egg.stat().st_mtime == source.stat().st_mtime == pytest.approx(an_hour_ago)
    assert registry._plugins_declared() is True and len(scans) == 2
    assert registry._plugins_declared() is True and len(scans) == 2  # kept again
    # rewritten a moment ago (maybe still being written): asked again next time
    entry_points.write_text("[console_scripts]\nlab-tools = lab_tools:main\n")
    assert registry._plugins_declared() is False and len(scans) == 3
    assert registry._plugins_declared() is False and len(scans) == 4
    entry_points.unlink()  # no entry points any more: seen too
    os.utime(egg, (an_hour_ago, an_hour_ago))
    os.utime(source, (an_hour_ago, an_hour_ago))
    assert registry._plugins_declared() is False and len(scans) == 5
    assert registry._plugins_declared() is False and len(scans) == 5


def test_a_type_redefined_before_its_builtin_module_loads_stays():
    """A notebook cell defining its own ``linux::Ping`` before anything imported the
    linux tools: listing every type (which imports them) keeps the cell's class."""
    code = textwrap.dedent("""
        from nepi_lab import ResourceManager, get_resource_type, resource_types
        get_resource_type("linux::Application")
        class MyPing(ResourceManager):
            _rtype = "linux::Ping"
        print(resource_types()["linux::Ping"] is MyPing, get_resource_type("linux::Ping") is MyPing,
              "linux::Traceroute" in resource_types())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True"]


def test_with_a_plugin_installed_the_first_miss_loads_everything(tmp_path):
    """A plug-in may redefine a built-in name: where one is installed, the first lookup
    loads the plug-ins too, so a name gives the same class whatever was looked up before."""
    (tmp_path / "plugin_ping.py").write_text(textwrap.dedent("""
        from nepi_lab import ResourceManager
        class PluginPing(ResourceManager):
            _rtype = "linux::Ping"
    """))
    dist = tmp_path / "plugin_ping-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-ping\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nepi_lab.resources]\nping = plugin_ping\n")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from nepi_lab import get_resource_type
        get_resource_type("linux::Application")
        print(get_resource_type("linux::Ping").__module__, "nepi_lab.resources.ns3" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["plugin_ping", "True"]


def test_a_type_records_the_distribution_of_its_module_and_none_for_a_module_of_the_users(tmp_path,
                                                                                         monkeypatch):
    """A type's origin (recorded in experiment files) names the installed distribution of
    its module's top-level package; for a module of the user's (a file beside the
    notebook) there is none, found without importlib.metadata (20-30 ms at the first deploy)."""
    for package in ("lab_tools", "my_types"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(textwrap.dedent(f"""
            from nepi_lab import ResourceManager
            class Thing(ResourceManager):
                _rtype = "{package}::Thing"
        """))
    dist = tmp_path / "Lab_Tools-2.0.dist-info"  # named as an installer names it, case aside
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: Lab-Tools\nVersion: 2.0\n")
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import my_types, lab_tools
        from nepi_lab.core.registry import type_origin
        mine = type_origin(my_types.Thing)
        print(json.dumps([mine, "importlib.metadata" in sys.modules, type_origin(lab_tools.Thing)]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    mine, imported, installed = json.loads(out)
    assert mine == {"module": "my_types", "distribution": None, "version": None} and not imported
    assert installed == {"module": "lab_tools", "distribution": "Lab-Tools", "version": "2.0"}
    monkeypatch.setattr(sys, "path", [str(tmp_path / "no-such-folder"), str(tmp_path)])
    from importlib.machinery import PathFinder

    monkeypatch.setattr(sys, "meta_path", [PathFinder])  # as Python starts
    assert registry._may_be_installed("lab-tools") and registry._may_be_installed("LAB.tools")
    assert not registry._may_be_installed("my_types")

    class Finder:  # a finder of its own (an app bundler's): it may know distributions
        def find_distributions(self, context=None):
            return iter(())

    sys.meta_path.append(Finder())
    assert registry._may_be_installed("my_types")
    sys.meta_path.pop()
    (tmp_path / "packed.zip").write_bytes(b"")
    sys.path.append(str(tmp_path / "packed.zip"))  # it may hold distributions: ask importlib.metadata
    assert registry._may_be_installed("my_types")
