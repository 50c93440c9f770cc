"""Runs made many at a time, above the controller: repetitions of one experiment until a
metric converges (:class:`ExperimentRunner`) and parameter sweeps (:class:`Sweep`).

Each run is one controller and one run directory; this layer only makes them and keeps
their record.  It imports the core and the resources, never the analysis or notebook
layers (their frames reach a sweep through a hook, see :mod:`nepi_lab.runner.sweep`).
"""

from .repeat import ExperimentRunner as ExperimentRunner
from .sweep import Sweep, load_sweep  # noqa: F401
