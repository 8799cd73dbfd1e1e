"""Planning a submission: which run, how many shards, which of them to submit now.

:func:`plan_submission` is what ``emotau submit slurm|ray`` does before it hands the plan to
the scheduler: it checks the shard count and the per-job servers, reads the run's earlier
submissions, refuses to submit over jobs that still run, and creates the run directory (its
spec frozen) so that every job finds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotau.core import UserError
from emotau.launch._base import (
    SCHEDULERS,
    Scheduler,
    ServeOptions,
    SubmitPlan,
    check_array,
    load_jobs,
    node_local_warning,
    unfinished_shards,
)
from emotau.launch._job import check_serve

if TYPE_CHECKING:
    from emotau.spec import RunSpec


@dataclass
class PlannedSubmission:
    """The outcome of :func:`plan_submission`.

    ``plan`` is None when there is nothing to submit (``--resubmit-failed`` found every shard
    finished or still active); ``still_active`` lists the unfinished shards left alone because
    earlier jobs still run them; ``warnings`` are the warnings given on the way.
    """

    scheduler: Scheduler
    plan: SubmitPlan | None
    array: int
    still_active: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def submit(self, dry_run: bool = False) -> Any:
        """Hand the plan to the scheduler (a :class:`~emotau.launch.Submission`)."""
        if self.plan is None:
            raise UserError("nothing to submit")
        return self.scheduler.submit(self.plan, dry_run=dry_run)


#: the base URL of a role whose server each job starts (the job points the shard at it)
SERVED_PLACEHOLDER_URL = "http://127.0.0.1:1/v1"


def served_spec(spec: RunSpec, serve: ServeOptions) -> RunSpec:
    """``spec`` with each served role's base URL set to a placeholder that every job replaces
    with its own server's: so that no API key is asked for a model nobody calls from here."""
    from emotau.models import provider_for

    update: dict[str, Any] = {}
    for role, served in (("agent", serve.agent), ("user", serve.user)):
        cfg = getattr(spec, role)
        if not served:
            continue
        if provider_for(cfg) == "scripted":
            flag = "--model" if role == "agent" else "--user-model"
            raise UserError(
                f"--serve-{role} starts vLLM for the {role}'s model in each job, but the "
                f"{role}'s model is {cfg.model!r} (emotau's offline model): give {flag} a model "
                "vLLM can serve, e.g. Qwen/Qwen3-8B"
            )
        if cfg.base_url is None:
            update[role] = cfg.model_copy(update={"base_url": SERVED_PLACEHOLDER_URL})
    return spec.model_copy(update=update) if update else spec


def plan_submission(
    scheduler: str,
    spec: RunSpec | None = None,
    *,
    run_dir: str | Path | None = None,
    array: int | None = None,
    resubmit_failed: bool = False,
    dry_run: bool = False,
    serve: ServeOptions | None = None,
    options: Mapping[str, Any] | None = None,
    endpoint_args: Sequence[str] = (),
    on_warning: Callable[[str], None] | None = None,
) -> PlannedSubmission:
    """Plan the submission of a run to ``scheduler`` (a name in :data:`SCHEDULERS`).

    The run is ``run_dir`` (an existing run, submitted with its frozen spec) or a new one
    built from ``spec``. ``array`` is the number of shards (default: the last submission's);
    ``resubmit_failed`` plans only the shards that have not finished and are not queued or
    running. ``options`` are the scheduler's own (partition, address, ...); ``endpoint_args``
    are ``emotau resume`` endpoint flags handed to every job. Warnings go to ``on_warning``
    as they arise (and into the result). Creates the run directory of a new run; submits
    nothing (call :meth:`PlannedSubmission.submit`).
    """
    from emotau.results import Run
    from emotau.runner import open_run_dir, prepare, spec_of_run

    if (spec is None) == (run_dir is None):
        raise ValueError("give exactly one of spec and run_dir")
    serve = serve or ServeOptions()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)

    run = Run.open(run_dir) if run_dir is not None else None
    if spec is not None and serve.any:
        spec = served_spec(spec, serve)
    exp = prepare(spec_of_run(run.path) if run else spec)
    if not serve.any and any(
        v is not None for v in (serve.vllm_command, serve.extra_args, serve.tool_call_parser)
    ):
        raise UserError("--vllm-command and the --serve-* options need --serve-agent/--serve-user")
    check_serve(exp.spec, serve)
    grid = sum(1 for _ in exp.grid())
    run_path = run.path if run else exp.spec.run_dir
    previous = [j for j in load_jobs(run_path) if isinstance(j.get("array"), int)]
    last = previous[-1]["array"] if previous else None
    array = array if array is not None else last
    if array is None:
        raise UserError("--array N is required (how many shards, one job each)")
    if resubmit_failed and last is not None and array != last:
        raise UserError(
            f"--resubmit-failed resubmits shards of the last submission's split ({last}); "
            f"--array {array} would overlap its shards"
        )
    array_warnings = check_array(array, grid)  # before the run directory is created
    backend = SCHEDULERS.get(scheduler)()
    active = backend.active_shards(run_path) if previous and not dry_run else set()
    if active and not resubmit_failed:
        raise UserError(
            f"{len(active)} job(s) of this run are still queued or running: wait for them, or "
            "use --resubmit-failed (which leaves them alone)"
        )
    if run is None:
        exp, run = open_run_dir(exp)
    for w in array_warnings:
        warn(w)
    if (w := node_local_warning(run.path)) and scheduler == "slurm":
        warn(w)
    shards = list(range(array))
    still_active: list[int] = []
    if resubmit_failed:
        todo = unfinished_shards(run.path, array)
        shards = [i for i in todo if i not in active]
        still_active = sorted(active & set(todo))
        if not shards:
            return PlannedSubmission(backend, None, array, still_active, warnings)
    plan = SubmitPlan(
        run.path.resolve(), array, shards, dict(options or {}), serve,
        name=f"emotau-{run.path.name}", endpoint_args=list(endpoint_args),
    )  # fmt: skip
    return PlannedSubmission(backend, plan, array, still_active, warnings)
