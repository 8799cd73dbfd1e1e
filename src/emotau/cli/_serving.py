"""Model servers: `emotau serve` (vLLM), `emotau mock-server`, and `emotau doctor`, which
checks the endpoints a run would use."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from emotau.cli._common import _console, spec_from_options, spec_options
from emotau.serving._vllm import serve_command as serve_command  # moves here with the serving split


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

    from emotau.runner._doctor import diagnose, render
    from emotau.runner._experiment import prepare

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
    "--reject-tools",
    is_flag=True,
    help="Answer HTTP 400 to requests with tools (a vLLM started without a tool parser).",
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

    from emotau.core._errors import UserError
    from emotau.scripted._mockserver import Faults, MockBackend, serve

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
