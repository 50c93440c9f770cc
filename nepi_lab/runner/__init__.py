"""Many runs of one experiment: repetitions until a metric converges (and sweeps)."""

from .repeat import ExperimentRunner as ExperimentRunner
