"""Spreading a run's shards over a scheduler: ``emotau submit slurm`` and ``emotau submit ray``.

The run directory is created (its spec frozen) before anything is submitted; every job then
runs ``emotau shard-task RUN_DIR --shard i/N``, which is ``emotau resume`` for one shard,
optionally between starting and stopping its own vLLM servers. All jobs append to the same
run directory (a shared file system), each to its own shard file, so the finished run is one
directory that ``summary`` and ``analyze`` read like any other, and re-submitting skips what
is finished. Schedulers are a small registry (:data:`SCHEDULERS`): an implementation turns a
:class:`SubmitPlan` into jobs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from emotau.core._errors import UserError
from emotau.core._registry import Registry, subclass_of

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
    from emotau.results._monitor import run_status

    st = run_status(run_dir, array=array)
    return [s.index for s in st.shards if s.count == array and s.state != "done"]


# --------------------------------------------------------------------------- Slurm
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


# --------------------------------------------------------------------------- Ray
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


# --------------------------------------------------------------------------- one job
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_shard_task(
    run_dir: str | Path,
    shard: Any,
    serve: ServeOptions,
    progress: Any = None,
    start_server: Callable[..., Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """What one job runs: optional vLLM servers for the run's models, then the shard
    (``overrides``: endpoint changes, as ``emotau resume`` takes them)."""
    from emotau.results._reader import Run
    from emotau.runner._runner import resume

    run = Run.open(run_dir)
    overrides = dict(overrides or {})
    servers = []
    try:
        if serve.any:
            gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
            share = serve.agent and serve.user and len(gpus) < 2
            for i, role in enumerate(r for r in ("agent", "user") if getattr(serve, r)):
                model = getattr(run.spec, role).model
                srv = (start_server or _vllm)(
                    model=model,
                    role=role,
                    gpus=(gpus[i] if len(gpus) > i and not share else (gpus[0] if gpus else None)),
                    share=share,
                    serve=serve,
                    log_file=run.path / SUBMIT_DIR / "logs" / f"vllm-{role}-{_job_tag()}.log",
                )
                servers.append(srv)
                overrides[f"{role}.base_url"] = srv.base_url
            for srv in servers:
                srv.wait_ready()
        return resume(run.path, shard, progress, 1, overrides)
    finally:
        for srv in servers:
            srv.stop()


def _job_tag() -> str:
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else f"{socket.gethostname()}-{os.getpid()}"


def _vllm(*, model: str, role: str, gpus: str | None, share: bool, serve: ServeOptions,
          log_file: Path, start: bool = True) -> Any:  # fmt: skip
    """The job's vLLM server for ``role`` (``start=False``: built only, to check options)."""
    from emotau.serving._vllm import VLLMServer

    srv = VLLMServer(
        model,
        port=free_port(),
        gpus=gpus,
        gpu_memory_utilization=0.45 if share else 0.9,
        no_tools=role == "user",
        vllm_command=serve.vllm_command,
        extra_args=serve.extra_args,
        startup_timeout=serve.startup_timeout,
        tool_call_parser=None if role == "user" else serve.tool_call_parser,
        max_model_len=serve.max_model_len,
        log_file=log_file,
    )
    if not start:
        return srv
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return srv.start()


def check_serve(run_spec: Any, serve: ServeOptions) -> None:
    """Build (without starting) each job's servers, so bad options fail at submit time."""
    if not serve.startup_timeout > 0 or serve.startup_timeout == float("inf"):
        raise UserError(f"--serve-timeout must be a positive number, got {serve.startup_timeout}")
    if serve.extra_args and "--api-key" in serve.extra_args:
        raise UserError(
            "--api-key in --serve-extra-args would be written into the job script: give vLLM "
            "its key through the environment (VLLM_API_KEY), which the jobs inherit"
        )
    for role in ("agent", "user"):
        if getattr(serve, role):
            model = getattr(run_spec, role).model
            _vllm(model=model, role=role, gpus=None, share=False, serve=serve,
                  log_file=Path(os.devnull), start=False)  # fmt: skip
