"""``emotau submit slurm``: sbatch job arrays, one array task per shard."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from emotau.core import UserError
from emotau.launch._base import (
    _SHARD,
    SUBMIT_DIR,
    Scheduler,
    Submission,
    SubmitPlan,
    compress,
    load_jobs,
    record_submission,
)


class SlurmScheduler(Scheduler):
    """sbatch job arrays; one array task per shard."""

    name = "slurm"
    #: --option -> #SBATCH flag (None: not given)
    FLAGS: ClassVar[dict[str, str]] = {
        "partition": "--partition",
        "gres": "--gres",
        "time": "--time",
        "mem": "--mem",
        "cpus_per_task": "--cpus-per-task",
        "account": "--account",
        "qos": "--qos",
    }

    def script(self, plan: SubmitPlan) -> str:
        bad = sorted({c for c in str(plan.run_dir) if c.isspace() or c in "%'\"\\$`"})
        if bad:
            raise UserError(
                f"the run directory path {str(plan.run_dir)!r} holds {''.join(bad)!r}, which "
                "#SBATCH lines cannot carry: use a path without spaces, quotes, % or $"
            )
        logs = plan.run_dir / SUBMIT_DIR / "logs"
        throttle = plan.options.get("max_parallel")
        array = compress(plan.shards) + (f"%{throttle}" if throttle else "")
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={plan.name}",
            f"#SBATCH --array={array}",
            f"#SBATCH --output={logs}/%A_%a.out",
            "#SBATCH --open-mode=append",
        ]
        for key, flag in self.FLAGS.items():
            value = plan.options.get(key)
            if value not in (None, ""):
                lines.append(f"#SBATCH {flag}={value}")
        lines += [f"#SBATCH {a}" for a in plan.options.get("sbatch_args") or ()]
        shard = f'"$SLURM_ARRAY_TASK_ID/{plan.array}"'  # expanded by bash in each task
        cmd = " ".join(shard if a == _SHARD else shlex.quote(a) for a in plan.task_argv(_SHARD))
        lines += [
            "# written by `emotau submit slurm`; API keys come from the submitting environment",
            "# (sbatch exports it), never from this file. Resubmitting skips finished episodes.",
            "set -euo pipefail",
            "export PYTHONUNBUFFERED=1",
            f"exec {cmd}",
            "",
        ]
        return "\n".join(lines)

    def submit(self, plan: SubmitPlan, dry_run: bool = False) -> Submission:
        folder = plan.run_dir / SUBMIT_DIR
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"slurm-{stamp}-{os.getpid()}.sbatch"
        path.write_text(self.script(plan), encoding="utf-8")
        path.chmod(0o755)
        sub = Submission(self.name, [], path, plan.shards, plan.array)
        if dry_run:
            sub.message = f"dry run: wrote {path} (not submitted)"
            return sub
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise UserError(
                "sbatch not found on PATH: is this a Slurm login node? (--dry-run only writes "
                f"the script; it is at {path})"
            )
        try:
            out = _slurm([sbatch, "--parsable", str(path)], "sbatch")
        except UserError as exc:
            raise UserError(f"Slurm refused the job: {exc} (script: {path})") from None
        job_id = out.strip().split(";")[0]
        sub.job_ids = [job_id]
        sub.message = (
            f"submitted job array {job_id} ({len(plan.shards)} task(s) of {plan.array}); "
            f"logs in {folder / 'logs'}; watch with: emotau status {plan.run_dir} --watch"
        )
        record_submission(plan.run_dir, sub)
        return sub

    def active_shards(self, run_dir: Path) -> set[int]:
        """Array tasks of this run's submissions that Slurm still lists (pending, running,
        suspended, requeued, ...), as shard indices; a Slurm that does not answer is an
        error, never "nothing is running"."""
        ids = {str(j) for rec in load_jobs(run_dir) if rec["scheduler"] == self.name
               for j in rec["job_ids"]}  # fmt: skip
        if not ids:
            return set()
        squeue = shutil.which("squeue")
        if squeue is None:
            raise UserError("squeue not found on PATH: cannot tell which shards still run")
        out = _slurm([squeue, "--me", "-h", "-r", "-o", "%F|%K|%T"], "squeue")
        active = set()
        for line in out.splitlines():
            parts = line.strip().split("|")
            ours = len(parts) == 3 and parts[0] in ids and parts[1].isdigit()
            if ours and parts[2] not in _SLURM_ENDED:
                active.add(int(parts[1]))
        return active


#: job states after which a task will not run again by itself
_SLURM_ENDED = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
    | {"DEADLINE", "PREEMPTED"}
)


def _slurm(argv: list[str], what: str, timeout: float = 120) -> str:
    """Run a Slurm client command; its failure or silence is a one-line UserError."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"{what} did not answer within {timeout:.0f} s: is slurmctld up?") from None
    if proc.returncode != 0:
        msg = " ".join((proc.stderr or proc.stdout).split()) or f"exit {proc.returncode}"
        raise UserError(f"{what} failed: {msg}")
    return proc.stdout
