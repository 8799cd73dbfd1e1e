"""Model servers: `emotau serve` (vLLM), `emotau mock-server`, and `emotau doctor`, which
checks the endpoints a run would use."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import threading
from typing import Any

import click

from emotau.cli._common import _console, spec_from_options, spec_options
from emotau.serving import (
    DEFAULT_CPU_KV_CACHE_GIB,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_VLLM_COMMAND,
    ServeError,
    VLLMServer,
    installed_parsers,
)


@click.command()
@spec_options
@click.option(
    "--probes",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="Tool-calling probes under tool_choice=auto.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def doctor(probes: int, fmt: str, **opts: Any) -> None:
    """Check every role's endpoint: reachable, model listed, chat, tool calling, reasoning."""
    import asyncio

    from emotau.runner import diagnose, prepare, render

    exp = prepare(spec_from_options(opts))
    reports = asyncio.run(diagnose(exp, probes))
    if fmt == "json":
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        _console().print(render(reports))
    if any(r.verdict == "fail" for r in reports):
        sys.exit(1)


@click.command("mock-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="0 picks a free port (printed).",
)
@click.option(
    "--latency",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds per request (the mean for uniform/exponential).",
)
@click.option(
    "--latency-dist",
    type=click.Choice(["fixed", "uniform", "exponential"]),
    default="fixed",
    show_default=True,
)
@click.option("--error-rate", type=float, default=0.0, show_default=True, help="HTTP 500s.")
@click.option("--rate-limit-rate", type=float, default=0.0, show_default=True, help="HTTP 429s.")
@click.option(
    "--timeout-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Requests that hang for --hang-seconds.",
)
@click.option("--hang-seconds", type=float, default=300.0, show_default=True)
@click.option(
    "--malformed-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Tool calls whose JSON arguments are cut.",
)
@click.option(
    "--empty-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Replies with no content and no tool call.",
)
@click.option(
    "--empty-length-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Replies of only whitespace that used up max_tokens (finish_reason length).",
)
@click.option(
    "--reject-tools",
    is_flag=True,
    help="Answer HTTP 400 to requests with tools under tool_choice=auto (a vLLM started "
    "without a tool parser).",
)
@click.option(
    "--reject-required",
    is_flag=True,
    help="Answer HTTP 400 to requests with tool_choice=required (vLLM 0.32 without a parser).",
)
@click.option(
    "--tools-error-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="HTTP 500s on requests with tools only.",
)
@click.option(
    "--empty-above-temperature",
    type=float,
    help="Empty replies to requests sampled hotter than this (no temperature counts as 1.0).",
)
@click.option(
    "--max-model-len",
    type=click.IntRange(1),
    help="A context limit: listed in /v1/models; longer requests (len(JSON)/4 tokens) get "
    "vLLM's HTTP 400.",
)
@click.option(
    "--skill", type=float, default=0.92, show_default=True, help="The scripted agent's skill."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--oracle-domains",
    default="",
    help="Comma-separated domains (e.g. tau-bench:retail) whose tasks the scripted models "
    "recognise in requests without emotau's metadata header (upstream harnesses).",
)
def mock_server(
    host: str, port: int, skill: float, seed: int, oracle_domains: str, **faults: Any
) -> None:
    """Serve the scripted models over OpenAI-compatible HTTP, with fault injection."""
    import asyncio

    from emotau.core import UserError
    from emotau.scripted import Faults, MockBackend, serve

    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UserError("the mock server needs aiohttp: pip install 'emotau[mock]'") from None
    try:
        domains = tuple(d.strip() for d in oracle_domains.split(",") if d.strip())
        backend = MockBackend(Faults(**faults), skill=skill, seed=seed, oracle_domains=domains)
    except ValueError as exc:
        raise UserError(str(exc)) from None

    def ready(bound: int) -> None:
        click.echo(f"emotau mock server listening on http://{host}:{bound}/v1", err=False)
        sys.stdout.flush()

    try:
        asyncio.run(serve(backend, host, port, ready))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass


# -------------------------------------------------------------------------------- serve
class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGHUP while ``emotau serve`` blocks."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def _echo(msg: str) -> None:
    click.echo(msg)
    sys.stdout.flush()


@click.command(
    "serve",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("model")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="0.0.0.0 for other nodes.")
@click.option("--gpus", help="CUDA_VISIBLE_DEVICES for the server, e.g. 0 or 0,1 [inherit].")
@click.option(
    "--device",
    type=click.Choice(["auto", "gpu", "cpu"]),
    default="auto",
    show_default=True,
    help="Where vLLM runs; auto: a GPU when this machine shows one, else the CPU.",
)
@click.option(
    "--gpu-memory-utilization",
    type=float,
    help=f"Fraction of each GPU's memory vLLM may take [{DEFAULT_GPU_MEMORY_UTILIZATION}; "
    "not on a CPU].",
)
@click.option(
    "--cpu-kv-cache",
    type=float,
    metavar="GIB",
    help="On a CPU: RAM for the KV cache (VLLM_CPU_KVCACHE_SPACE) "
    f"[{DEFAULT_CPU_KV_CACHE_GIB:g}, or the variable's value].",
)
@click.option("--max-model-len", type=int, help="Context length [the model's].")
@click.option("--served-model-name", help="Name clients use as model [MODEL].")
@click.option("--tool-call-parser", help="Override the family's parser ('none': no tool flags).")
@click.option("--reasoning-parser", help="Override the family's reasoning parser ('none').")
@click.option("--chat-template", help="Jinja file for vLLM ('none': the model's own).")
@click.option("--no-tools", is_flag=True, help="No tool flags (e.g. a user-simulator server).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Server log [a temp file].")
@click.option("--extra-args", help='More vLLM flags, e.g. "--enforce-eager --max-num-seqs 64".')
@click.option(
    "--vllm-command",
    default=" ".join(DEFAULT_VLLM_COMMAND),
    show_default=True,
    help="How to run vLLM.",
)
@click.option(
    "--startup-timeout",
    type=float,
    default=DEFAULT_STARTUP_TIMEOUT,
    show_default=True,
    help="Seconds to wait for /health and /v1/models.",
)
@click.option("--dry-run", is_flag=True, help="Print the command and exit.")
def serve_command(**opts: Any) -> None:
    """Start vLLM's OpenAI-compatible server for MODEL with the tool-calling flags it needs.

    Waits until the server is ready, prints the flags that point emotau at it, then runs until
    Ctrl-C or SIGTERM and stops the server cleanly. See docs/serve.md.
    """
    if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", opts["host"] or ""):
        raise ServeError(f"--host {opts['host']!r} is not a host name or IP address")
    server = VLLMServer(
        opts["model"],
        port=opts["port"],
        host=opts["host"],
        gpus=opts["gpus"],
        gpu_memory_utilization=opts["gpu_memory_utilization"],
        device=opts["device"],
        cpu_kv_cache_gib=opts["cpu_kv_cache"],
        parsers=installed_parsers(shlex.split(opts["vllm_command"] or "")),
        max_model_len=opts["max_model_len"],
        served_model_name=opts["served_model_name"],
        tool_call_parser=opts["tool_call_parser"],
        reasoning_parser=opts["reasoning_parser"],
        chat_template=opts["chat_template"],
        no_tools=opts["no_tools"],
        log_file=opts["log_file"],
        vllm_command=opts["vllm_command"],
        startup_timeout=opts["startup_timeout"],
        extra_args=opts["extra_args"],
    )
    flags = server.tool_flags
    if opts["dry_run"]:
        _echo(f"# {flags.describe()}")
        if flags.note:
            _echo(f"# note: {flags.note}")
        _echo(server.shell_command())
        return
    _echo(f"emotau serve: {server.model} ({flags.describe()})")
    if flags.note:
        _echo(f"note: {flags.note}")
    _echo(f"$ {server.shell_command()}")
    role_order = ("user", "agent") if opts["no_tools"] else ("agent", "user")
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_IGN:  # respect nohup
                old[sig] = signal.signal(sig, _raise_stop)
    try:
        server.start()
        _echo(f"log: {server.log_file}")
        _echo(
            f"waiting for {server.poll_url}/health and /v1/models "
            f"(up to {server.startup_timeout:g} s; Ctrl-C to cancel)..."
        )
        try:
            server.wait_ready()
        except ServeError as exc:
            if exc.log_tail:
                click.echo(f"--- last lines of {exc.log_file} ---\n{exc.log_tail}\n---", err=True)
            raise
        _echo(f"ready after {server.ready_after:.0f} s: {server.base_url}")
        _echo(f"use with emotau: {server.emotau_flags(role_order[0])}")
        _echo(f"   (as the {role_order[1]}: {server.emotau_flags(role_order[1])})")
        _echo("serving; Ctrl-C or SIGTERM stops the server")
        assert server.process is not None
        while True:
            try:
                rc = server.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
            tail = server.log_tail()
            if tail:
                click.echo(f"--- last lines of {server.log_file} ---\n{tail}\n---", err=True)
            raise ServeError(
                f"vLLM exited with status {rc} while serving; log: {server.log_file}",
                log_file=server.log_file,
                log_tail=tail,
            )
    except (KeyboardInterrupt, _Stop) as exc:
        why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        _echo(f"emotau serve: {why}: stopping the server...")
        server.stop()
        _echo("emotau serve: stopped")
    finally:
        server.stop()
        for s, h in old.items():
            signal.signal(s, h)
