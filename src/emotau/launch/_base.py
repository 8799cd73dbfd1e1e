"""What every scheduler shares: the plan of a submission, the scheduler interface and its
registry (:data:`SCHEDULERS`), the record of earlier submissions (``submit/jobs.json``), and
the checks that planning makes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from emotau.core import Registry, UserError, subclass_of

_SHARD = "\0shard\0"  # placeholder for the shard argument in a job's command
SUBMIT_DIR = "submit"  # inside the run directory: scripts, logs, jobs.json
#: path prefixes that are usually private to one node (a warning, not an error)
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/scratch/local", "/local", "/run/user")


@dataclass
class ServeOptions:
    """Per-job model servers: start vLLM for the run's agent and/or user model on the job's
    node, point the shard at them, stop them when the shard ends."""

    agent: bool = False
    user: bool = False
    vllm_command: str | None = None
    extra_args: str | None = None
    startup_timeout: float = 1800.0
    tool_call_parser: str | None = None  # for a model family emotau does not know
    max_model_len: int | None = None

    @property
    def any(self) -> bool:
        return self.agent or self.user

    def argv(self) -> list[str]:
        out = []
        if self.agent:
            out.append("--serve-agent")
        if self.user:
            out.append("--serve-user")
        if self.vllm_command:
            out += ["--vllm-command", self.vllm_command]
        if self.extra_args:
            out += ["--serve-extra-args", self.extra_args]
        if self.tool_call_parser:
            out += ["--serve-tool-call-parser", self.tool_call_parser]
        if self.max_model_len:
            out += ["--serve-max-model-len", str(self.max_model_len)]
        if self.any:
            out += ["--serve-timeout", f"{self.startup_timeout:g}"]
        return out


@dataclass
class SubmitPlan:
    run_dir: Path
    array: int  # N: the run is split into shards 0..N-1
    shards: list[int]  # the shards this submission runs
    options: dict[str, Any] = field(default_factory=dict)  # scheduler options
    serve: ServeOptions = field(default_factory=ServeOptions)
    name: str = "emotau"
    endpoint_args: list[str] = field(default_factory=list)  # --agent-base-url URL ... for jobs

    def task_argv(self, shard: str) -> list[str]:
        """The command one job runs for ``shard`` ("i/N" or a shell expression)."""
        return [
            sys.executable,
            "-m",
            "emotau",
            "shard-task",
            str(self.run_dir),
            "--shard",
            shard,
            *self.serve.argv(),
            *self.endpoint_args,
        ]


@dataclass
class Submission:
    scheduler: str
    job_ids: list[str]
    script: Path | None
    shards: list[int]
    array: int
    message: str = ""


class Scheduler(ABC):
    name: ClassVar[str]

    @abstractmethod
    def submit(self, plan: SubmitPlan, dry_run: bool = False) -> Submission: ...

    def active_shards(self, run_dir: Path) -> set[int]:
        """Shards of earlier submissions still queued or running (not to be resubmitted)."""
        return set()


#: entry-point group ``emotau.schedulers``: Scheduler subclasses whose ``name`` is their entry
#: point's name (``emotau submit NAME``)
SCHEDULERS: Registry[type[Scheduler]] = Registry(
    "scheduler", check=subclass_of(Scheduler, named=True)
)


# --------------------------------------------------------------------------- planning
def compress(indices: Sequence[int]) -> str:
    """[0,1,2,5,7,8] -> "0-2,5,7-8" (Slurm's --array syntax)."""
    out: list[str] = []
    xs = sorted(set(indices))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out)


def check_array(array: int, grid: int) -> list[str]:
    """Errors for a shard count that makes no sense; warnings for a lopsided one."""
    if array < 1:
        raise UserError(f"--array must be at least 1, got {array}")
    if array > grid:
        raise UserError(
            f"--array {array} is more shards than the grid has episodes ({grid}): "
            f"use at most {grid}"
        )
    warnings = []
    per = grid / array
    if per < 2 and array > 1:
        warnings.append(
            f"{array} shards for {grid} episodes: about {per:.1f} episode per job, so job "
            "start-up will dominate; fewer, larger shards are cheaper"
        )
    return warnings


def node_local_warning(run_dir: Path) -> str | None:
    p = str(run_dir.resolve())
    tmpdir = os.environ.get("TMPDIR")
    prefixes = NODE_LOCAL + ((tmpdir,) if tmpdir else ())
    for pre in prefixes:
        if p == pre or p.startswith(pre.rstrip("/") + "/"):
            return (
                f"the run directory {p} looks node-local ({pre}): jobs on other nodes will not "
                "see it; put it on a shared file system (or use `emotau collect` afterwards)"
            )
    return None


def jobs_file(run_dir: Path) -> Path:
    return run_dir / SUBMIT_DIR / "jobs.json"


def load_jobs(run_dir: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(jobs_file(run_dir).read_text())
    except FileNotFoundError:
        return []
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{jobs_file(run_dir)} is not valid JSON") from None
    ok = isinstance(data, list) and all(
        isinstance(j, dict)
        and isinstance(j.get("scheduler"), str)
        and isinstance(j.get("array"), int)
        and isinstance(j.get("job_ids"), list)
        for j in data
    )
    if not ok:
        raise UserError(
            f"{jobs_file(run_dir)} is not a list of submissions (scheduler, array, job_ids): "
            "fix or remove it"
        )
    return data


def record_submission(run_dir: Path, sub: Submission) -> None:
    jobs = load_jobs(run_dir)
    jobs.append(
        {
            "scheduler": sub.scheduler,
            "job_ids": sub.job_ids,
            "array": sub.array,
            "shards": sub.shards,
            "script": str(sub.script) if sub.script else None,
            "time": time.time(),
        }
    )
    path = jobs_file(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jobs, indent=1) + "\n")
    tmp.replace(path)


def unfinished_shards(run_dir: Path, array: int) -> list[int]:
    from emotau.results import run_status

    st = run_status(run_dir, array=array)
    return [s.index for s in st.shards if s.count == array and s.state != "done"]
