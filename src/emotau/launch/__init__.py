"""Spreading a run's shards over a scheduler: ``emotau submit slurm`` and ``emotau submit ray``.

The run directory is created (its spec frozen) before anything is submitted; every job then
runs ``emotau shard-task RUN_DIR --shard i/N``, which is ``emotau resume`` for one shard,
optionally between starting and stopping its own vLLM servers (:func:`run_shard_task`). All
jobs append to the same run directory (a shared file system), each to its own shard file, so
the finished run is one directory that ``summary`` and ``analyze`` read like any other, and
re-submitting skips what is finished.

:func:`plan_submission` plans a submission; schedulers are plugins of the ``emotau.schedulers``
entry-point group (:data:`SCHEDULERS`; the built-in ``slurm`` and ``ray`` are declared in
emotau's ``pyproject.toml``): a :class:`Scheduler` turns a :class:`SubmitPlan` into jobs.
"""

from emotau.launch._base import (
    SCHEDULERS,
    SUBMIT_DIR,
    Scheduler,
    ServeOptions,
    Submission,
    SubmitPlan,
    check_array,
    compress,
    jobs_file,
    load_jobs,
    node_local_warning,
    record_submission,
    unfinished_shards,
)
from emotau.launch._job import check_serve, run_shard_task
from emotau.launch._plan import PlannedSubmission, plan_submission
from emotau.launch._ray import RayScheduler
from emotau.launch._slurm import SlurmScheduler

__all__ = [
    "SCHEDULERS",
    "SUBMIT_DIR",
    "PlannedSubmission",
    "RayScheduler",
    "Scheduler",
    "ServeOptions",
    "SlurmScheduler",
    "Submission",
    "SubmitPlan",
    "check_array",
    "check_serve",
    "compress",
    "jobs_file",
    "load_jobs",
    "node_local_warning",
    "plan_submission",
    "record_submission",
    "run_shard_task",
    "unfinished_shards",
]
