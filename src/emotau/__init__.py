"""emotau: stress-test conversational agents with emotional simulated users.

Python API (the CLI is a thin layer over it)::

    import emotau
    run = emotau.run("experiment.toml", num_trials=5)   # or a dict, or a RunSpec
    run.summary()                                        # per-variant table as data
    emotau.load_run("runs/demo").episodes()              # merged episode records

Imports are lazy so that ``emotau --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "Run",
    "RunSpec",
    "UserError",
    "__version__",
    "analyze",
    "compare",
    "load_run",
    "run",
    "run_async",
]

if TYPE_CHECKING:
    from pathlib import Path

    from emotau.core import UserError
    from emotau.results import Run
    from emotau.spec import RunSpec


def _spec(spec: Any, overrides: dict[str, Any]) -> RunSpec:
    from emotau.spec import RunSpec, build_spec

    if isinstance(spec, RunSpec):
        spec = spec.model_dump()
    # Python keyword overrides use "__" for nesting: agent__model="x" -> agent.model
    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    return build_spec(spec, dotted)


def run(
    spec: RunSpec | dict[str, Any] | str | Path | None = None,
    *,
    shard: str | None = None,
    new_run: bool = False,
    progress: str = "none",
    **overrides: Any,
) -> Run:
    """Run (or resume) an experiment and return its :class:`Run`.

    ``spec`` is a :class:`RunSpec`, a dict, a path to a TOML file, or None for the defaults;
    keyword arguments override its fields (``num_trials=5``, ``agent__model="scripted"``).
    Works inside a running event loop (Jupyter) by running in a worker thread.
    """
    from emotau.runner import Shard, make_progress, outside_event_loop, run_experiment

    resolved = _spec(spec, overrides)
    return outside_event_loop(
        lambda: run_experiment(resolved, Shard.parse(shard), new_run, make_progress(progress))
    )


async def run_async(
    spec: RunSpec | dict[str, Any] | str | Path | None = None,
    *,
    shard: str | None = None,
    new_run: bool = False,
    **overrides: Any,
) -> Run:
    """Like :func:`run`, awaited inside your own event loop."""
    from emotau.runner import Shard, execute, open_run_dir, prepare

    exp = prepare(_spec(spec, overrides))
    exp, r = open_run_dir(exp, new_run=new_run)
    return await execute(exp, r, Shard.parse(shard))


def load_run(path: str | Path) -> Run:
    """Open an existing run directory (finished, partial or still running)."""
    from emotau.results import Run

    return Run.open(path)


def analyze(run: Run | str | Path, out: str | Path | None = None, **options: Any) -> Any:
    """Analyse a run; with ``out``, write its report directory (``emotau analyze``).

    Returns an :class:`emotau.analysis.report.Analysis` whose attributes are the report's
    tables as DataFrames. Options: ``reference``, ``n_boot``, ``seed``, ``valence``,
    ``max_conversations``, ``emotion_judge`` (with ``judge_base_url``, ``api_key_env``),
    ``labeller`` (an emotion labeller's name); see ``docs/analysis.md``.
    """
    from emotau.analysis.report import analyze as _analyze

    return _analyze(run, out, **options)


def compare(run_a: Run | str | Path, run_b: Run | str | Path, **options: Any) -> Any:
    """Compare run B with run A variant by variant (``emotau compare``); options
    ``reference``, ``n_boot``, ``seed``. Returns a ``RunComparison`` (``.table``)."""
    from emotau.analysis.compare import compare_runs

    return compare_runs(run_a, run_b, **options)


def __getattr__(name: str) -> Any:
    if name == "RunSpec":
        from emotau.spec import RunSpec

        return RunSpec
    if name == "Run":
        from emotau.results import Run

        return Run
    if name == "UserError":
        from emotau.core import UserError

        return UserError
    raise AttributeError(name)
