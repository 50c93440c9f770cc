"""Resource types written the NEPI way: they work with only their imports changed.

A NEPI 6 resource type (``@clsinit_copy``, ``_register_attributes`` with
``cls._register_attribute(Attribute(...))``, blocking ``do_deploy`` / ``do_start`` /
``do_stop`` / ``do_release`` calling ``super()``, ``self.logger``, ``rm.start_time``,
``ResourceFactory``, a Linux node's ``execute`` / ``upload`` / ``mkdir``...) ports by
changing its imports to this module::

    from nepi_lab.compat import (ResourceManager, ResourceState, ResourceFactory,
                                 Attribute, Flags, Types, clsinit_copy)

    @clsinit_copy
    class Sleeper(ResourceManager):
        _rtype = "dummy::Sleeper"

        @classmethod
        def _register_attributes(cls):
            cls._register_attribute(Attribute("seconds", "how long", type=Types.Double, default=1.0))

        def do_deploy(self):
            time.sleep(self.get("seconds"))      # blocks: runs in a hook thread
            super().do_deploy()                  # READY
            self.logger.debug("deployed")

The controller runs those blocking methods in a bounded pool of hook threads kept for
NEPI-style types (:data:`~nepi_lab.compat.resource.NEPI_THREADS`, 20, at a time, or
``NEPI_NTHREADS`` as in NEPI), never on its loop: a hook that sleeps leaves the
experiment running.  How NEPI's lifecycle maps onto ours, and
the one rule that settles the names both share, are in
:mod:`nepi_lab.compat.resource`; the Linux command API in :mod:`nepi_lab.compat.linux`.
Our own (native) style is unchanged: nothing below this module imports it.

Differences that remain, and why
--------------------------------
- ``clsinit`` and ``clsinit_copy`` do the same: a class inherits its bases'
  attributes and traces (declarations are inherited in nepi_lab); NEPI's ``clsinit``
  dropped them.  Both run when the class is defined, decorated or not.
- ``deploy()``, ``start()``, ``stop()``, ``release()`` ask the controller and return at
  once; NEPI ran the step in the caller's thread.  Inside ``do_deploy``,
  ``self.ec.schedule(delay, self.deploy)`` makes the controller run ``do_deploy``
  again at that call instead of marking the resource READY.
- A hook that returns normally moves the resource on (our rule) even without calling
  the base method; NEPI left it where it was, for ever.
- States skipped on the way (``set_ready`` straight from NEW) are entered at the same
  moment, so ``discover_time`` and ``provision_time`` are that moment, not None.
- The ``time`` argument of ``set_ready(time)``... is ignored: a state's time is when it
  was entered.  Times are naive local datetimes, as NEPI's ``tnow()``.
- ``stop_time`` is also the end of a resource that FINISHED (a state NEPI did not
  have: its applications went STOPPED when their command ended).
- A NEPI-style type waits for its end in ``ec.wait_finished`` (STOPPED, FINISHED,
  FAILED, RELEASED), as NEPI did; a type that never ends (a node) declares
  ``_long_lived = True``, so that ``wait_finished`` returns once it is STARTED.
- NEPI-style hooks run at most 20 at a time (``NEPI_NTHREADS``, read once per
  controller when its first NEPI-style hook runs), in a pool of their own that the
  controller makes on first use and closes at shutdown; NEPI's whole scheduler ran in
  its 20 threads.  Our own plain-def hooks stay in the pool of
  :data:`~nepi_lab.core.loop.EXECUTOR_THREADS` (2), and the controller's own work never
  waits for either pool.
- ``self.fail()`` in a hook fails the resource when the hook returns.
- ``valid_connection(self, guid)`` gets the other resource's guid, as in NEPI (the
  class's own is adapted); a string it returns is the reason given to the user.
  ``do_connect``, ``do_disconnect`` and ``Flags.Global`` values (``get_global``)
  are not provided.
- ``self.logger`` is an adapter on the logger ``nepi_lab.<rtype>`` that puts the
  guid before each message (NEPI's was ``logging.getLogger(rtype)``): one logger per
  type, since a logger is never freed and an experiment may hold 100,000 resources.
- Attributes a NEPI-style hook sets on its own resource bypass ``Flags.Design`` and
  ``Flags.NoWrite`` (NEPI checked neither); users' ``ec.set`` still honour them,
  and values are checked against the declared type, as for every type.
- The Linux node's ``run`` starts a process our node tracks (stopped at release); its
  ``wait_run``, ``kill`` and ``clean_processes`` act only on the processes the node
  started (never on another pid, nor by user or name: NEPI's ``clean_processes``
  ran ``killall -u``).  ``execute(blocking=False)`` is not provided (``run`` starts a
  command in the background); ``copy`` copies only to the node's own host.
- ``LinuxNode(ec, guid)`` with anything but one of our controllers as ``ec`` is a
  standalone node with a private controller, deployed on its first command and
  released by ``release()``, garbage collection or exit (NEPI's node needed no
  deploy); its ``exp_home`` is its run's folder, removed at release.
  ``clean_experiment`` and ``clean_home`` act on standalone nodes only;
  ``remove_packages`` raises :class:`NotImplementedError` (our nodes never
  uninstall packages from a host).
- NEPI's class names of the types both share (``LinuxPing``, ``LinuxTcpdump``,
  ``LinuxTraceroute``, ``LinuxMtr``, ``LinuxNPing``, ``LinuxUdpTest``, ``LinuxTap``,
  ``LinuxTun``, ``LinuxGRETunnel``, ``LinuxUdpTunnel``, ``LinuxInterface``,
  ``LinuxChannel``, ``Collector``) are our own types, importable here so that
  ``ResourceFactory.register_type(LinuxInterface)`` and ``get_rtype()`` work as in
  NEPI; their hooks are coroutines, so a NEPI-style subclass (plain ``do_deploy``)
  derives from :class:`ResourceManager` or :class:`LinuxApplication` only.
- Overriding NEPI's provisioning internals of ``LinuxApplication`` (``upload_sources``,
  ``upload_start_command``, ``build``, ``install``...) changes nothing: set the
  attributes (``sources``, ``build``, ``install``, ``command``...) in ``do_deploy``
  before ``super().do_deploy()``.
"""

from ..core.attributes import Flags, Types
from ..core.states import ResourceAction, ResourceState
from ..core.traces import Trace, TraceAttr
from ..resources.collector import Collector
from ..resources.linux import Channel as LinuxChannel
from ..resources.linux import GRETunnel as LinuxGRETunnel
from ..resources.linux import Interface as LinuxInterface
from ..resources.linux import Mtr as LinuxMtr
from ..resources.linux import NPing as LinuxNPing
from ..resources.linux import Ping as LinuxPing
from ..resources.linux import Tap as LinuxTap
from ..resources.linux import Tcpdump as LinuxTcpdump
from ..resources.linux import Traceroute as LinuxTraceroute
from ..resources.linux import Tun as LinuxTun
from ..resources.linux import UdpTest as LinuxUdpTest
from ..resources.linux import UdpTunnel as LinuxUdpTunnel
from .linux import Completed, ExitCode, LinuxApplication, LinuxNode, ProcStatus, nepi_view
from .resource import (
    Attribute,
    LegacyHook,
    ResourceFactory,
    ResourceManager,
    call_on_loop,
    clsinit,
    clsinit_copy,
    failtrap,
    in_legacy_hook,
    populate_factory,
    reschedule_delay,
)

__all__ = [
    "Attribute", "Collector", "Completed", "ExitCode", "Flags", "LegacyHook", "LinuxApplication",
    "LinuxChannel", "LinuxGRETunnel", "LinuxInterface", "LinuxMtr", "LinuxNPing", "LinuxNode", "LinuxPing",
    "LinuxTap", "LinuxTcpdump", "LinuxTraceroute", "LinuxTun", "LinuxUdpTest", "LinuxUdpTunnel",
    "ProcStatus", "ResourceAction", "ResourceFactory", "ResourceManager", "ResourceState", "Trace",
    "TraceAttr", "Types",
    "call_on_loop", "clsinit", "clsinit_copy", "failtrap", "in_legacy_hook", "nepi_view",
    "populate_factory", "reschedule_delay",
]
