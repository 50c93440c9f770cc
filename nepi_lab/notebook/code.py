"""The Python that builds an experiment: what the builder's "Show code" prints.

The script is the controller's own (``ec.to_script()``, written by
:mod:`nepi_lab.core.script`), so that "Show code" and ``to_script`` never disagree;
the builder asks for the runnable form, which also deploys, waits and shuts down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.script import experiment_script, variable_name

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

__all__ = ["experiment_code", "variable_name"]


def experiment_code(ec: ExperimentController, *, deploy: bool = True, timeout: float = 60) -> str:
    """Python source that rebuilds ``ec``'s experiment: ``ec.to_script(deploy, timeout)``.

    Secret attributes (``Flags.NoRead``, ``Flags.Credential``) are left out, with a
    comment saying so.  With ``deploy`` (the default here) the script also deploys,
    waits and shuts down.

    Example
    -------
    >>> import shutil, tempfile
    >>> from nepi_lab import ExperimentController
    >>> results = tempfile.mkdtemp()
    >>> with ExperimentController(exp_id="ping", local_dir=results) as ec:
    ...     node = ec.register_resource("linux::Node", hostname="localhost")
    ...     print(experiment_code(ec))
    from nepi_lab import ExperimentController, ResourceAction, ResourceState
    <BLANKLINE>
    ec = ExperimentController(exp_id='ping')
    node1 = ec.register_resource('linux::Node', hostname='localhost')
    <BLANKLINE>
    ec.deploy()
    ec.wait_finished(timeout=60)
    ec.shutdown()
    >>> shutil.rmtree(results)
    """
    return experiment_script(ec, deploy=deploy, timeout=timeout)
