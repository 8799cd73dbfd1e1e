"""`emotau run`, `resume`, `summary`, and the hidden `shard-task` that a job of
`emotau submit` runs."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from emotau.cli._common import (
    _console,
    endpoint_overrides,
    execution_options,
    spec_from_options,
    spec_options,
)
from emotau.cli._legacy import LegacyCommand


@click.command(cls=LegacyCommand)
@spec_options
@execution_options
@click.option(
    "--new-run", is_flag=True, help="If the spec changed, start <name>-2 instead of stopping."
)
@click.option(
    "--plan",
    is_flag=True,
    help="Print the design and its minimum detectable effect, then stop (runs nothing).",
)
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    metavar="NAME",
    help="Run this lifecycle hook (an emotau.hooks plugin) on every episode; repeatable. "
    "Added to the config's hooks.",
)
def run(**opts: Any) -> None:
    """Run or resume an experiment, then print its summary."""
    from emotau.runner import Shard, make_progress, run_experiment

    spec = spec_from_options(opts).with_hooks(list(opts["hooks"]))
    if opts["plan"]:
        _plan(spec, opts["new_run"])
        return
    shard = Shard.parse(opts["shard"])
    mode = "none" if opts["quiet"] else opts["progress"]
    _finish(
        lambda: run_experiment(
            spec, shard, opts["new_run"], make_progress(mode), opts["workers"],
            _say_waits(opts["quiet"]),
        ),
        opts["quiet"],
    )  # fmt: skip


def _say_waits(quiet: bool) -> Any:
    """The preflight's retries, one line each on stderr (none with --quiet)."""
    return None if quiet else (lambda line: click.echo(f"emotau: {line}", err=True))


def _plan(spec: Any, new_run: bool) -> None:
    """`run --plan`: the grid and the effect it can detect, before paying for it."""
    from rich.table import Table

    from emotau.analysis.stats import DEFAULT_ICC, mde_table
    from emotau.results import RunStore
    from emotau.runner import prepare
    from emotau.spec import diff_identity

    exp = prepare(spec)
    old = RunStore(spec.run_dir).read_frozen() if spec.run_dir.is_dir() else None
    if old is not None and old["hash"] != exp.resolved.hash and not new_run:
        # --plan writes nothing, so an existing run is no reason to refuse: say what `run`
        # would find, after the plan
        diffs = diff_identity(old["identity"], exp.resolved.identity)
        note = (
            f"note: {str(spec.run_dir)!r} holds a run with another spec "
            f"({'; '.join(diffs) or 'hash differs'}): `emotau run` with these settings would "
            "refuse it; add --new-run, or give another --experiment-name"
        )
    else:
        note = None
    tasks, arms = len(exp.resolved.task_ids), len(exp.selections)
    trials = spec.num_trials
    click.echo(
        f"plan: domain {spec.domain}, {tasks} tasks x {arms} arms x {trials} trials = "
        f"{tasks * arms * trials} episodes ({tasks * trials} per arm); nothing is run."
    )
    comparisons = max(1, arms - 1)
    grid = sorted({1, 2, 3, 5, 10, trials})
    against = "control" if "control" in exp.selections else "the reference arm"
    table = Table(
        title=f"Minimum detectable difference from {against}, in points (80% power, paired; "
        f"alpha 0.05 / {comparisons} comparisons, the Holm worst case; "
        f"intra-task correlation {DEFAULT_ICC} assumed)"
    )
    table.add_column(f"{against} success")
    for t in grid:
        table.add_column(
            f"{t} trial{'s' if t > 1 else ''}" + (" (this run)" if t == trials else "")
        )
    mde = mde_table(tasks, grid, comparisons=comparisons)
    for base, row in mde.iterrows():
        table.add_row(f"{100 * base:.0f}%", *(f"{v:.1f}" for v in row.to_numpy()))
    _console().print(table)
    click.echo(
        "A true difference smaller than this is likely to be missed; add tasks or trials "
        "(the cheapest fix is usually more tasks)."
    )
    if note is not None:
        click.echo(note, err=True)


def _finish(go: Any, quiet: bool) -> None:
    """Run, then report what happened (shared by `run` and `resume`)."""
    from emotau.results import render_table

    try:
        result = go()
    except KeyboardInterrupt:
        click.echo(
            "emotau: interrupted; finished episodes are saved. Run the same command to resume.",
            err=True,
        )
        sys.exit(130)
    stats = result.stats
    click.echo(
        f"run {result.path}: {stats.get('finished', 0)} episodes run now, "
        f"{stats.get('already_finished', 0)} already finished, "
        f"{stats.get('infra_errors', 0)} infrastructure errors (retried on resume)"
        + (
            f", repaired a truncated last line ({stats['repaired_bytes']} bytes)"
            if stats.get("repaired_bytes")
            else ""
        )
        + (
            f"; hooks failed in {stats['hook_errors']} episodes (see hook_errors in their "
            "records and logs/ in the run directory; the episodes are kept)"
            if stats.get("hook_errors")
            else ""
        ),
        err=True,
    )
    summary = result.summary()
    if summary["synthetic"]:
        click.echo("note: scripted models were used; these results are SYNTHETIC", err=True)
    if not quiet:
        console = _console()
        console.print(render_table(summary, title=f"{result.path}", width=console.width))
    if stats.get("infra_errors"):
        _report_missing(result.path, stats)


#: how many distinct error messages, and how many characters of each, `_report_missing` shows
_TOP_ERRORS, _ERROR_WIDTH = 3, 110


def _report_missing(path: Any, stats: dict[str, Any]) -> None:
    """Episodes of this command's grid ended in infrastructure errors: say which errors, how
    to run them again, and exit with EXIT_INCOMPLETE."""
    import shlex
    from collections import Counter

    from emotau.core import EXIT_ENDPOINT_DOWN, EXIT_INCOMPLETE

    failed = int(stats["infra_errors"])
    tried = failed + int(stats.get("finished", 0))
    short = Counter[str]()
    for message, n in (stats.get("errors") or {}).items():
        text = " ".join(str(message).split()) or "(no message)"
        if len(text) > _ERROR_WIDTH:
            text = text[: _ERROR_WIDTH - 3] + "..."
        short[text] += n
    click.echo(
        f"emotau: incomplete: {failed} of the {tried} episodes run now ended in infrastructure "
        f"errors and are missing from the results; the most common errors:",
        err=True,
    )
    for text, n in short.most_common(_TOP_ERRORS):
        click.echo(f"  {n:>5} x {text}", err=True)
    if len(short) > _TOP_ERRORS:
        click.echo(
            f"  (and {len(short) - _TOP_ERRORS} other messages; see logs/ in the run directory)",
            err=True,
        )
    breaker = stats.get("breaker")
    if breaker and breaker.get("closed"):
        click.echo(
            f"emotau: the circuit breaker opened {breaker['trips']} time(s) after "
            f"{breaker['limit']} episodes in a row ended in infrastructure errors, and closed "
            f"again {breaker['closed']} time(s) when the endpoints answered",
            err=True,
        )
    down = stats.get("endpoint_down")
    if down:
        click.echo(f"emotau: stopped early: {_down_line(down)}", err=True)
    shard = str(stats.get("shard") or "0/1")
    cmd = f"emotau resume {shlex.quote(str(path))}"
    cmd += "" if shard == "0/1" else f" --shard {shard}"
    click.echo(f"emotau: once the cause is fixed, run the missing episodes with: {cmd}", err=True)
    sys.exit(EXIT_ENDPOINT_DOWN if down else EXIT_INCOMPLETE)


def _down_line(down: dict[str, Any]) -> str:
    """What the circuit breaker saw, in one line (one worker's or the process's own)."""
    if "line" in down:  # a worker's, as it printed it
        return str(down["line"])
    last = " ".join(str(down.get("last_probe") or "").split())
    if len(last) > _ERROR_WIDTH:
        last = last[: _ERROR_WIDTH - 3] + "..."
    return (
        f"{down['limit']} episodes in a row ended in infrastructure errors and the endpoints "
        f"did not answer probes for {down['waited_s']:g} s (last probe: {last}); no more "
        "episodes were started, the rest of the grid is left for the resume "
        "(retry.stop_after_failed_episodes and retry.breaker_wait set the limits)"
    )


@click.command()
@click.argument("run_dir", type=click.Path())
@execution_options
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 100_000),
    help="Episodes in flight, in total over the workers [the run's own].",
)
@click.option("--base-url", help="New base URL for all three roles.")
@click.option("--agent-base-url", help="New base URL of the agent's server.")
@click.option("--user-base-url", help="New base URL of the user simulator's server.")
@click.option("--judge-base-url", help="New base URL of the judge's server.")
@click.option("--api-key-env", help="Name of the environment variable holding the API key.")
@click.option("--spec-file", type=click.Path(dir_okay=False), hidden=True)
def resume(run_dir: str, **opts: Any) -> None:
    """Continue RUN_DIR from its own frozen spec (no config needed).

    Endpoint flags move the run to other servers; what the run measures cannot change.
    """
    from emotau.runner import Shard, make_progress
    from emotau.runner import resume as resume_run

    overrides = endpoint_overrides(opts) | {"max_concurrency": opts["max_concurrency"]}
    mode = "none" if opts["quiet"] else opts["progress"]
    _finish(
        lambda: resume_run(
            run_dir,
            Shard.parse(opts["shard"]),
            make_progress(mode),
            opts["workers"],
            overrides,
            opts["spec_file"],
            _say_waits(opts["quiet"]),
        ),
        opts["quiet"],
    )


# ------------------------------------------------------------------------------- summary
@click.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--wide",
    is_flag=True,
    help="Every column (pass^k for every k) with full headers, however wide that is.",
)
def summary(run_dir: str, fmt: str, wide: bool) -> None:
    """Per-variant table: episodes, success, reward, pass^k, errors, turns.

    The table fits the terminal: short headers (explained below it) and pass^k for a few k;
    --wide shows every column, --format json all the data.
    """
    from emotau.results import Run

    data = Run.open(run_dir).summary()
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console

    from emotau.results import render_table

    console = _console()
    if not wide:
        console.print(render_table(data, title=run_dir, width=console.width))
        return
    table = render_table(data, title=run_dir, wide=True)
    natural = Console(width=10_000).measure(table).maximum
    Console(width=max(console.width, natural)).print(table)


@click.command("shard-task", hidden=True)
@click.argument("run_dir", type=click.Path())
@click.option("--shard", required=True)
@click.option("--serve-agent", is_flag=True)
@click.option("--serve-user", is_flag=True)
@click.option("--vllm-command")
@click.option("--serve-extra-args")
@click.option("--serve-timeout", type=float, default=1800.0)
@click.option("--serve-tool-call-parser")
@click.option("--serve-max-model-len", type=int)
@click.option("--base-url")
@click.option("--agent-base-url")
@click.option("--user-base-url")
@click.option("--judge-base-url")
@click.option("--api-key-env")
@click.option("--max-concurrency", type=click.IntRange(1, 100_000))
@click.option("--no-preflight", is_flag=True)
def shard_task(run_dir: str, shard: str, **opts: Any) -> None:
    """One job of `emotau submit`: optional vLLM servers, then `resume --shard`."""
    from emotau.launch import ServeOptions, run_shard_task
    from emotau.runner import Shard, make_progress

    serve = ServeOptions(
        opts["serve_agent"], opts["serve_user"], opts["vllm_command"],
        opts["serve_extra_args"], opts["serve_timeout"], opts["serve_tool_call_parser"],
        opts["serve_max_model_len"],
    )  # fmt: skip
    overrides = endpoint_overrides(opts) | {"max_concurrency": opts["max_concurrency"]}
    _finish(
        lambda: run_shard_task(
            run_dir,
            Shard.parse(shard),
            serve,
            make_progress("log"),
            overrides=overrides,
            on_wait=_say_waits(False),
        ),
        quiet=True,
    )
