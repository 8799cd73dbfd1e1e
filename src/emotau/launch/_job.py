"""What one job of a submission runs (``emotau shard-task``): optional vLLM servers for the
run's models on the job's node, then ``emotau resume`` for one shard."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emotau.core import UserError
from emotau.launch._base import SUBMIT_DIR, ServeOptions


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
    on_wait: Callable[[str], None] | None = None,
) -> Any:
    """What one job runs: optional vLLM servers for the run's models, then the shard
    (``overrides``: endpoint changes, as ``emotau resume`` takes them; ``on_wait``: the
    preflight's retries, as ``emotau resume`` shows them)."""
    from emotau.results import Run
    from emotau.runner import resume

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
        return resume(run.path, shard, progress, 1, overrides, on_wait=on_wait)
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
    from emotau.serving import VLLMServer

    srv = VLLMServer(
        model,
        port=free_port(),
        gpus=gpus,
        # two servers on one GPU take half of it each; else vLLM's default for the device
        gpu_memory_utilization=0.45 if share else None,
        device="gpu" if share else "auto",
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
            try:
                _vllm(model=model, role=role, gpus=None, share=False, serve=serve,
                      log_file=Path(os.devnull), start=False)  # fmt: skip
            except UserError as exc:
                raise UserError(submit_terms(str(exc))) from None


#: `emotau serve`'s options, as the serving layer's messages name them -> `emotau submit`'s
_SUBMIT_FLAGS = {
    "--extra-args": "--serve-extra-args",
    "--tool-call-parser": "--serve-tool-call-parser",
    "--no-tools": "--serve-tool-call-parser none",
    "--max-model-len": "--serve-max-model-len",
    "--startup-timeout": "--serve-timeout",
}
_OWN_FLAG = re.compile(r"^(--[\w-]+) in --extra-args: use emotau serve's own (.+)$")
_THINKING = " (and --reasoning-parser NAME for a thinking model)"
_SERVE_IT_YOURSELF = (
    "start that server yourself with `emotau serve MODEL ...` and give the run its URL "
    "(--agent-base-url / --user-base-url) instead of --serve-agent / --serve-user"
)


def submit_terms(message: str) -> str:
    """A message of ``emotau serve``'s checks in the words of ``emotau submit``: its own
    ``--serve-*`` options, and what to do where it has none (a reasoning parser, a template)."""
    own = _OWN_FLAG.match(message)
    if own is not None:  # a flag emotau sets itself, given in --serve-extra-args
        flag, instead = own.groups()
        words = [_SUBMIT_FLAGS[w] for w in re.findall(r"--[\w-]+", instead) if w in _SUBMIT_FLAGS]
        fix = (
            f"use {' (or '.join(words)}{')' * (len(words) - 1)}"
            if words
            else f"submit sets it itself; to choose it, {_SERVE_IT_YOURSELF}"
        )
        return f"{flag} in --serve-extra-args: {fix}"
    note = ""
    if _THINKING in message:
        message = message.replace(_THINKING, "")
        note = f" (a thinking model also needs its --reasoning-parser: {_SERVE_IT_YOURSELF})"
    for serve_flag, submit_flag in _SUBMIT_FLAGS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(serve_flag)}(?![\w-])", submit_flag, message)
    if note:
        head, sep, tail = message.partition(". Known families")
        message = f"{head}{note}{sep}{tail}"
    return message
