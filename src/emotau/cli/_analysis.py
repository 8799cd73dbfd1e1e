"""`emotau analyze` and `emotau compare`."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import click

from emotau.cli._common import _console


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", "-o", type=click.Path(), help="Report directory [RUN_DIR/report].")
@click.option(
    "--reference",
    help="The arm the others are compared with [control, when the run has it].",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(100, 1_000_000),
    default=2000,
    show_default=True,
    help="Bootstrap resamples (over tasks) per interval.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling.")
@click.option(
    "--no-valence",
    is_flag=True,
    help="Skip VADER valence in the emotion scores (faster on large runs of model text).",
)
@click.option(
    "--max-conversations",
    type=click.IntRange(0, 1_000_000),
    default=600,
    show_default=True,
    help="Episodes embedded in the HTML conversation browser.",
)
@click.option(
    "--emotion-judge",
    is_flag=True,
    help="Also label every customer message with the run's judge model and repeat the "
    "manipulation check on its labels.",
)
@click.option(
    "--labeller",
    metavar="NAME",
    help="Also label every customer message with this emotion labeller (entry-point group "
    "emotau.labellers; built-ins: lexicon, judge) and repeat the manipulation check on its "
    "labels. --emotion-judge is --labeller judge.",
)
@click.option("--judge-base-url", help="With --emotion-judge: new base URL of the judge's server.")
@click.option(
    "--api-key-env",
    help="With --emotion-judge: name of the environment variable holding the judge's API key.",
)
def analyze(run_dir: str, **opts: Any) -> None:
    """Write RUN_DIR's report: summary.md, report.html, Parquet tables and plots.

    --emotion-judge calls the run's judge model (from its frozen spec, as `emotau resume`
    would); the endpoint flags move it to another server.
    """
    from pathlib import Path

    from emotau.analysis.report import analyze as analyze_run
    from emotau.results import Run

    run = Run.open(run_dir)
    out = Path(opts["out"]) if opts["out"] else run.path / "report"
    with _warnings_as_lines():
        result = analyze_run(
            run,
            out,
            reference=opts["reference"],
            n_boot=opts["bootstrap"],
            seed=opts["seed"],
            valence=False if opts["no_valence"] else None,
            max_conversations=opts["max_conversations"],
            emotion_judge=opts["emotion_judge"],
            judge_base_url=opts["judge_base_url"],
            api_key_env=opts["api_key_env"],
            labeller=opts["labeller"],
        )
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"report written to {out} (open {out / 'report.html'}; tables in summary.md)")


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Python warnings raised inside (a library's, or one of emotau's that no report holds)
    printed as one ``warning: ...`` line each, never with a source line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        finally:
            seen: set[str] = set()
            for w in caught:
                text = " ".join(str(w.message).split())
                if text not in seen:
                    seen.add(text)
                    click.echo(f"warning: {text}", err=True)


@click.command()
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
@click.option("--reference", help="Arm for the difference in drops [control, when both have it].")
@click.option("--out", "-o", type=click.Path(), help="Also write compare.md and compare.csv here.")
@click.option("--bootstrap", type=click.IntRange(100, 1_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def compare(run_a: str, run_b: str, **opts: Any) -> None:
    """Compare run B with run A (e.g. two agent models) on the variants both have."""
    from rich.markdown import Markdown

    from emotau.analysis.compare import compare_runs, write_comparison

    with _warnings_as_lines():
        result = compare_runs(
            run_a, run_b, reference=opts["reference"], n_boot=opts["bootstrap"], seed=opts["seed"]
        )
    if (note := result.synthetic_note()) is not None:
        click.echo(f"note: {note}", err=True)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if opts["out"]:
        write_comparison(result, opts["out"])
    if sys.stdout.isatty():
        _console().print(Markdown(result.to_markdown()))
    else:
        click.echo(result.to_markdown())
