"""Running an experiment: a spec resolved against its domain, variants and strategies
(:func:`prepare`), its grid and shards, the run itself (:func:`execute`,
:func:`run_experiment`, :func:`resume`, local ``--workers``), ``doctor`` and the preflight,
the run's log file and the progress display."""

from emotau.runner._doctor import diagnose, preflight, render
from emotau.runner._experiment import Experiment, Shard, prepare
from emotau.runner._log import log_name, run_log
from emotau.runner._progress import NullProgress, Progress, make_progress
from emotau.runner._runner import (
    execute,
    open_run_dir,
    outside_event_loop,
    resume,
    run_experiment,
    spec_of_run,
)

__all__ = [
    "Experiment",
    "NullProgress",
    "Progress",
    "Shard",
    "diagnose",
    "execute",
    "log_name",
    "make_progress",
    "open_run_dir",
    "outside_event_loop",
    "preflight",
    "prepare",
    "render",
    "resume",
    "run_experiment",
    "run_log",
    "spec_of_run",
]
