"""Helpers and option sets that several command modules share."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from emotau.cli._legacy import finish_spec, legacy_options, legacy_overrides

EXIT_USAGE = 2


def _fail(message: str) -> None:
    click.echo(f"emotau: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _console() -> Any:
    """stdout's console: the terminal's width, else ``COLUMNS`` when set, else 160."""
    from rich.console import Console

    columns = os.environ.get("COLUMNS", "")
    return Console(width=None if sys.stdout.isatty() or columns.isdigit() else 160)


def _int_list(value: str | None, flag: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        _fail(f"{flag} must be comma-separated integers, e.g. 1,5,10; got {value!r}")
    return None


def _str_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


class LazyHelpOption(click.Option):
    """An option whose help text is computed only when help is shown (``lazy_help``), so
    that building it (e.g. loading plugins) costs nothing to commands that just run."""

    def __init__(self, *args: Any, lazy_help: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_help = lazy_help

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if self.lazy_help is not None:
            self.help = self.lazy_help()
        return super().get_help_record(ctx)


def domain_names() -> str:
    """The installed domains, families expanded and their splits folded (``hotel`` alone,
    where the plugins cannot be listed)."""
    from emotau.core import UserError
    from emotau.domains import folded_domain_names

    try:
        return folded_domain_names()
    except UserError:
        return "hotel"


def names_help(head: str, names: str, tail: str, width: int = 44) -> str:
    """``head``, then ``names`` in lines of at most ``width`` characters that break only
    between names (click would split ``tau-bench`` at its hyphen), then ``or tail``."""
    lines: list[str] = []
    for name in f"{names}, or {tail}.".split(", "):
        if lines and len(lines[-1]) + 2 + len(name) <= width:
            lines[-1] += f", {name}"
        else:
            if lines:
                lines[-1] += ","
            lines.append(name)
    return f"{head}:\n\n\b\n" + "\n".join(lines)


def spec_options(fn: Any) -> Any:
    """The experiment flags shared by `run` and `doctor`."""
    opts = [
        click.option(
            "--config", "-c", type=click.Path(dir_okay=False), help="TOML experiment file."
        ),
        click.option("--experiment-name", "--name", help="Run directory name under --out [demo]."),
        click.option(
            "--domain",
            "domain",
            cls=LazyHelpOption,
            lazy_help=lambda: names_help("Domain [hotel]", domain_names(), "package.module:object"),
        ),
        click.option("--tasks", type=int, help="Run the first N tasks."),
        click.option("--task-ids", help="Comma-separated task ids, e.g. 1,5,10."),
        click.option(
            "--variants", help="Comma-separated arms, e.g. control,anger:severe,anxiety+confusion."
        ),
        click.option(
            "--variants-file",
            multiple=True,
            type=click.Path(dir_okay=False),
            help="TOML/YAML file with extra variants (repeatable).",
        ),
        click.option("--num-trials", type=int, help="Trials per task and variant [3]."),
        click.option(
            "--agent-strategy", help="tool-calling, react, act or few-shot [tool-calling]."
        ),
        click.option("--user-strategy", help="llm, react, verify or reflection [llm]."),
        click.option("--model", "--agent-model", "model", help="Agent model [scripted]."),
        click.option("--user-model", help="User simulator model [scripted]."),
        click.option("--judge-model", help="Judge model [scripted]."),
        click.option("--base-url", help="OpenAI-compatible base URL for all three roles."),
        click.option("--agent-base-url", help="Base URL of the agent's server."),
        click.option(
            "--user-base-url",
            help="Base URL of the user simulator's server [$USER_MODEL_API_BASE when no "
            "flag or config sets one].",
        ),
        click.option("--judge-base-url", help="Base URL of the judge's server."),
        click.option(
            "--api-key-env",
            help="Name of the environment variable holding the API key (all roles).",
        ),
        click.option(
            "--tool-choice",
            type=click.Choice(["auto", "required"]),
            help="auto, or required (adds a respond tool) [auto].",
        ),
        click.option("--temperature", type=float, help="Agent sampling temperature [0.0]."),
        click.option("--user-temperature", type=float, help="User sampling temperature [0.0]."),
        click.option("--max-concurrency", type=int, help="Episodes in flight at once [64]."),
        click.option("--seed", type=int, help="Run seed (scripted models draw from it) [0]."),
        click.option(
            "--max-steps", type=int, help="Agent steps per episode before it is cut [30]."
        ),
        click.option("--out", help="Parent directory of run directories [runs]."),
    ]
    fn = legacy_options(fn)  # listed after emotau's own
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def spec_from_options(opts: dict[str, Any]) -> Any:
    from emotau.spec import build_spec

    overrides: dict[str, Any] = {
        "experiment_name": opts["experiment_name"],
        "domain": opts["domain"],
        "tasks": opts["tasks"],
        "task_ids": _int_list(opts["task_ids"], "--task-ids"),
        "variants": _str_list(opts["variants"]),
        "variants_files": list(opts["variants_file"]) or None,
        "num_trials": opts["num_trials"],
        "agent_strategy": opts["agent_strategy"],
        "user_strategy": opts["user_strategy"],
        "tool_choice": opts["tool_choice"],
        "agent.model": opts["model"],
        "user.model": opts["user_model"],
        "judge.model": opts["judge_model"],
        "agent.temperature": opts["temperature"],
        "user.temperature": opts["user_temperature"],
        "max_concurrency": opts["max_concurrency"],
        "seed": opts["seed"],
        "max_steps": opts["max_steps"],
        "out": opts["out"],
    }
    overrides |= endpoint_overrides(opts) | legacy_overrides(opts)
    return finish_spec(build_spec(opts["config"], overrides), opts)


def endpoint_overrides(opts: dict[str, Any]) -> dict[str, Any]:
    """Spec overrides of the endpoint flags (they move a run, never change what it measures)."""
    out: dict[str, Any] = {}
    for role in ("agent", "user", "judge"):
        out[f"{role}.base_url"] = opts[f"{role}_base_url"] or opts["base_url"]
        out[f"{role}.api_key_env"] = opts["api_key_env"]
    if opts.get("no_preflight"):
        out["preflight"] = False
    return out


def execution_options(fn: Any) -> Any:
    """How a run is executed (shared by `run` and `resume`; none of it changes the results)."""
    opts = [
        click.option("--shard", help="Run only slice i of N of the grid, e.g. 0/4."),
        click.option(
            "--workers",
            type=click.IntRange(1, 1024),
            default=1,
            show_default=True,
            help="Local processes sharing the shard (when one process cannot keep up).",
        ),
        click.option(
            "--no-preflight",
            is_flag=True,
            help="Do not check the endpoints before the first episode.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress and no summary table."),
        click.option(
            "--progress",
            type=click.Choice(["auto", "bar", "log", "none"]),
            default="auto",
            show_default=True,
            help="Progress display (auto: bar on a terminal, log lines otherwise).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn
