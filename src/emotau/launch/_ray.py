"""``emotau submit ray``: one Ray task per shard, on a Ray cluster or a local one."""

from __future__ import annotations

import os
import shlex
import subprocess
import time

from emotau.core import UserError
from emotau.launch._base import SUBMIT_DIR, Scheduler, Submission, SubmitPlan, record_submission


class RayScheduler(Scheduler):
    """One Ray task per shard on an existing cluster (``address``) or a local one; waits."""

    name = "ray"

    def submit(self, plan: SubmitPlan, dry_run: bool = False) -> Submission:
        address = plan.options.get("address")
        if address is None:  # a local Ray: its servers listen on all interfaces, so a token
            os.environ.setdefault("RAY_AUTH_MODE", "token")  # guards them (read at import)
        try:
            import ray
        except ImportError:
            raise UserError("submit ray needs Ray: pip install 'emotau[ray]'") from None
        sub = Submission(self.name, [], None, plan.shards, plan.array)
        if dry_run:
            argv = plan.task_argv(f"<i>/{plan.array}")
            sub.message = "dry run: each Ray task would run: " + " ".join(map(shlex.quote, argv))
            return sub
        try:
            ray.init(
                address=address, ignore_reinit_error=True, log_to_driver=False,
                include_dashboard=False,
            )  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
        task = ray.remote(
            num_cpus=plan.options.get("cpus_per_task") or 1,
            num_gpus=plan.options.get("gpus_per_task") or 0,  # Ray sets CUDA_VISIBLE_DEVICES
        )(_ray_shard)
        logs = plan.run_dir / SUBMIT_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        refs = {
            i: task.remote(plan.task_argv(f"{i}/{plan.array}"), str(logs / f"ray-{stamp}-{i}.out"))
            for i in plan.shards
        }
        sub.job_ids = [ref.hex() for ref in refs.values()]
        failed = []
        for i, ref in refs.items():
            try:
                rc, tail = ray.get(ref)
            except ray.exceptions.RayError as exc:  # worker crashed, out of memory, ...
                rc, tail = -1, " ".join(str(exc).split())[-300:]
            if rc != 0:
                failed.append(f"shard {i}/{plan.array} exit {rc}: {tail}")
        record_submission(plan.run_dir, sub)
        if failed:
            raise UserError(
                f"{len(failed)} Ray task(s) failed ({'; '.join(failed)}); finished episodes are "
                f"kept, logs in {logs}; submit again to run what is missing"
            )
        sub.message = f"{len(plan.shards)} shard(s) finished on Ray (logs in {logs})"
        return sub


def _ray_shard(argv: list[str], log: str) -> tuple[int, str]:
    """A Ray task: run one shard as a process (the command of a Slurm array task)."""
    with open(log, "ab") as fh:
        proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT)
    with open(log, "rb") as fh:
        lines = fh.read()[-4000:].decode("utf-8", "replace").strip().splitlines()
    return proc.returncode, (lines[-1] if lines else "")
