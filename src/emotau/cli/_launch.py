"""`emotau submit slurm|ray`, `status` and `collect`: runs spread over machines."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from emotau.cli._common import _console, _fail, spec_from_options, spec_options
from emotau.cli._legacy import LEGACY_IDENTITY_FLAGS


class _SchedulerGroup(click.Group):
    """`submit slurm` and `submit ray` have their own flags; any other installed scheduler
    (an `emotau.schedulers` entry point) is a subcommand with the shared flags and --option."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from emotau.launch import SCHEDULERS

        return sorted(set(self.commands) | set(SCHEDULERS.names()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from emotau.launch import SCHEDULERS

        if cmd_name in self.commands:
            return self.commands[cmd_name]
        name = SCHEDULERS.canonical_or_none(cmd_name)
        return None if name is None else _plugin_submit_command(name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        from emotau.launch import SCHEDULERS

        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            SCHEDULERS.canonical(args[0])  # UserError: unknown scheduler ...; allowed: ...
        return super().resolve_command(ctx, args)


def _plugin_submit_command(name: str) -> click.Command:
    @submit_options
    @click.option(
        "--option", "-o", "sched_option", multiple=True, metavar="KEY=VALUE",
        help="A scheduler option (a string), handed to the scheduler in SubmitPlan.options.",
    )  # fmt: skip
    def command(**opts: Any) -> None:
        sched: dict[str, Any] = {}
        for item in opts.pop("sched_option"):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                _fail(f"--option must be KEY=VALUE, got {item!r}")
            sched[key.strip()] = value
        _submit(name, opts, sched)

    return click.command(
        name, help=f"Submit the run's shards through the installed {name!r} scheduler."
    )(command)


@click.group(cls=_SchedulerGroup)
def submit() -> None:
    """Spread a run's shards over Slurm job arrays, Ray or an installed scheduler plugin (one
    run directory in the end)."""


def submit_options(fn: Any) -> Any:
    opts = [
        click.option(
            "--run-dir", type=click.Path(),
            help="Submit an existing run (its frozen spec) instead of one built from the flags.",
        ),
        click.option(
            "--array", type=int,
            help="Split the grid into N shards, one job each [the last submission's N].",
        ),
        click.option(
            "--resubmit-failed", is_flag=True,
            help="Submit only the shards that have not finished and are not queued or running.",
        ),
        click.option("--dry-run", is_flag=True, help="Write (and print) the job, submit nothing."),
        click.option("--serve-agent", is_flag=True,
                     help="Each job starts vLLM for the run's agent model on its node."),
        click.option("--serve-user", is_flag=True,
                     help="Each job starts vLLM for the run's user model on its node."),
        click.option("--vllm-command", help="How to start vLLM [vllm serve]."),
        click.option("--serve-extra-args", help="Extra vLLM flags, e.g. '--enforce-eager'."),
        click.option("--serve-timeout", type=click.FloatRange(1, 86400), default=1800.0,
                     show_default=True, help="Seconds to wait for a job's vLLM servers."),
        click.option("--serve-max-model-len", type=click.IntRange(1, None),
                     help="Context length of the jobs' vLLM servers."),
        click.option("--serve-tool-call-parser",
                     help="vLLM tool parser for an agent model family emotau does not know "
                     "('none': a server without tool calling)."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return spec_options(fn)


#: `run` flags that define what a run measures: refused next to --run-dir (its spec is frozen)
_IDENTITY_FLAGS = (
    "config", "experiment_name", "domain", "tasks", "task_ids", "variants", "num_trials",
    "agent_strategy", "user_strategy", "model", "user_model", "judge_model", "tool_choice",
    "temperature", "user_temperature", "seed", "max_steps", "out",
)  # fmt: skip
#: flags that move a run to other servers: handed to every job (`emotau resume` takes them)
_ENDPOINT_FLAGS = (
    "base_url", "agent_base_url", "user_base_url", "judge_base_url", "api_key_env",
    "max_concurrency",
)  # fmt: skip


def _endpoint_args(opts: dict[str, Any]) -> list[str]:
    out = []
    for name in _ENDPOINT_FLAGS:
        if opts.get(name) is not None:
            out += [f"--{name.replace('_', '-')}", str(opts[name])]
    return out + (["--no-preflight"] if opts.get("no_preflight") else [])


def _submit(scheduler: str, opts: dict[str, Any], sched_opts: dict[str, Any]) -> None:
    from emotau.core import UserError
    from emotau.launch import ServeOptions, plan_submission

    given = [n for n in (*_IDENTITY_FLAGS, *LEGACY_IDENTITY_FLAGS) if opts.get(n) not in (None, ())]
    if opts["run_dir"] and (given or opts.get("variants_file")):
        flags = ", ".join(f"--{n.replace('_', '-')}" for n in given or ["variants_file"])
        raise UserError(f"--run-dir uses the run's frozen spec: drop {flags}")
    serve = ServeOptions(
        opts["serve_agent"], opts["serve_user"], opts["vllm_command"],
        opts["serve_extra_args"], opts["serve_timeout"], opts["serve_tool_call_parser"],
        opts["serve_max_model_len"],
    )  # fmt: skip
    planned = plan_submission(
        scheduler,
        None if opts["run_dir"] else spec_from_options(opts),
        run_dir=opts["run_dir"] or None,
        array=opts["array"],
        resubmit_failed=opts["resubmit_failed"],
        dry_run=opts["dry_run"],
        serve=serve,
        options=sched_opts,
        endpoint_args=_endpoint_args(opts),
        on_warning=lambda w: click.echo(f"warning: {w}", err=True),
    )
    if planned.still_active:
        click.echo(
            "shards still queued or running, not resubmitted: "
            f"{', '.join(map(str, planned.still_active))}",
            err=True,
        )
    if planned.plan is None:
        click.echo(f"nothing to resubmit: every shard of {planned.array} has finished or is active")
        return
    sub = planned.submit(dry_run=opts["dry_run"])
    if opts["dry_run"] and sub.script is not None:
        click.echo(sub.script.read_text(), nl=False)
    click.echo(sub.message)


@submit.command("slurm")
@submit_options
@click.option("--partition", "-p", help="Slurm partition.")
@click.option("--gres", help="Generic resources per job, e.g. gpu:1.")
@click.option("--time", "time_limit", help="Time limit per job, e.g. 04:00:00.")
@click.option("--mem", help="Memory per job, e.g. 32G.")
@click.option("--cpus-per-task", type=click.IntRange(1, 4096), help="CPUs per job.")
@click.option("--account", help="Slurm account.")
@click.option("--qos", help="Slurm QOS.")
@click.option("--max-parallel", type=click.IntRange(1, None), help="At most K jobs at once (%K).")
@click.option("--sbatch-arg", multiple=True, help="Any other #SBATCH line, e.g. --constraint=a100.")
def submit_slurm(**opts: Any) -> None:
    """Submit the run as a Slurm job array: task i runs shard i/N of the same run directory."""
    sched = {
        "partition": opts["partition"], "gres": opts["gres"], "time": opts["time_limit"],
        "mem": opts["mem"], "cpus_per_task": opts["cpus_per_task"], "account": opts["account"],
        "qos": opts["qos"], "max_parallel": opts["max_parallel"],
        "sbatch_args": list(opts["sbatch_arg"]),
    }  # fmt: skip
    _submit("slurm", opts, sched)


@submit.command("ray")
@submit_options
@click.option("--address", help="Ray cluster address (e.g. auto, ray://head:10001) [a local Ray].")
@click.option("--cpus-per-task", type=click.IntRange(1, 4096), help="CPUs reserved per shard.")
@click.option("--gpus-per-task", type=click.FloatRange(0, 64), help="GPUs reserved per shard.")
def submit_ray(**opts: Any) -> None:
    """Run the shards as Ray tasks on a Ray cluster (or a local one) and wait for them."""
    sched = {k: opts[k] for k in ("address", "cpus_per_task", "gpus_per_task")}
    _submit("ray", opts, sched)


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--watch", "-w", is_flag=True, help="Refresh until the run is complete (Ctrl-C stops)."
)
@click.option(
    "--interval", type=click.FloatRange(0.2, 3600), default=5.0, show_default=True,
    help="Seconds between refreshes with --watch.",
)  # fmt: skip
@click.option(
    "--stall-after",
    type=click.FloatRange(1, None),
    default=900,
    show_default=True,
    help="Seconds without a new episode after which an unfinished shard counts as stalled.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def status(run_dir: str, watch: bool, interval: float, stall_after: float, fmt: str) -> None:
    """Progress of a run from its directory alone: per variant and shard, rate, ETA, stalls.

    Exit status: 0 when complete, 1 while unfinished (for scripts that poll). With --watch
    and --format json, one JSON object per line at each refresh; with --watch off a terminal
    (a pipe, a file), one plain line at the start and at each change.
    """
    import time

    from emotau.results import StatusReader, render_status

    reader = StatusReader(run_dir)

    def once() -> Any:
        return reader.read(stall_after=stall_after)

    st = once()
    if fmt == "json" and watch:  # one JSON object per line, each refresh, until complete
        click.echo(json.dumps(st.as_dict()))
        try:
            while not st.complete:
                time.sleep(interval)
                st = once()
                click.echo(json.dumps(st.as_dict()))
        except KeyboardInterrupt:
            pass
    elif fmt == "json":
        click.echo(json.dumps(st.as_dict(), indent=2))
    elif not watch:
        _console().print(render_status(st))
    elif not sys.stdout.isatty():  # a pipe or a file: a plain line now and at each change
        from emotau.results import status_change, status_line

        click.echo(status_line(st))
        seen = status_change(st)
        try:
            while not st.complete:
                time.sleep(interval)
                st = once()
                if status_change(st) != seen:
                    click.echo(status_line(st))
                    seen = status_change(st)
        except KeyboardInterrupt:
            pass
    else:
        from rich.live import Live

        try:
            with Live(render_status(st), console=_console(), auto_refresh=False) as live:
                while not st.complete:
                    time.sleep(interval)
                    st = once()
                    live.update(render_status(st), refresh=True)
        except KeyboardInterrupt:
            pass
    sys.exit(0 if st.complete else 1)


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--from", "sources", multiple=True, required=True, type=click.Path(),
    help="A copy of the run directory (or its episodes/ folder) from another machine; repeatable.",
)  # fmt: skip
def collect(run_dir: str, sources: tuple[str, ...]) -> None:
    """Merge shard files copied back from other machines into RUN_DIR (same spec only)."""
    from emotau.results import collect as collect_into

    res = collect_into(run_dir, list(sources))
    click.echo(
        f"collect: {res.added} finished episode(s) added, {res.added_infra} infrastructure "
        f"error record(s) kept, {res.skipped} already present"
        + (
            f" ({', '.join(f'{n}: +{c}' for n, c in sorted(res.files.items()))})"
            if res.files
            else ""
        )
    )
