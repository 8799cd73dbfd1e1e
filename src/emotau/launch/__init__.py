"""Spreading a run's shards over a scheduler (plugins of the ``emotau.schedulers`` group:
the built-in ``slurm`` and ``ray``), and what each job runs."""

from emotau.launch._submit import (
    SCHEDULERS,
    Scheduler,
    ServeOptions,
    Submission,
    SubmitPlan,
    load_jobs,
    record_submission,
)

__all__ = [
    "SCHEDULERS",
    "Scheduler",
    "ServeOptions",
    "Submission",
    "SubmitPlan",
    "load_jobs",
    "record_submission",
]
