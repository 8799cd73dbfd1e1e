"""The ``emotau`` command line: a thin layer over the Python API.

User mistakes print one line, ``emotau: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

EXIT_USAGE = 2


def _fail(message: str) -> None:
    click.echo(f"emotau: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


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


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    invoke_without_command=True,
)
@click.version_option(package_name="emotau", prog_name="emotau")
def cli() -> None:
    """Stress-test conversational agents with emotional simulated users.

    Quick start: `emotau run` (built-in hotel domain, scripted models, every variant),
    then `emotau summary runs/demo`.
    """
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# ----------------------------------------------------------------------------------- run
def spec_options(fn: Any) -> Any:
    """The experiment flags shared by `run` and `doctor`."""
    opts = [
        click.option(
            "--config", "-c", type=click.Path(dir_okay=False), help="TOML experiment file."
        ),
        click.option("--experiment-name", "--name", help="Run directory name under --out [demo]."),
        click.option(
            "--domain",
            "--env",
            "--environment",
            "domain",
            help="Domain: hotel, or package.module:object [hotel].",
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
        click.option("--agent-strategy", help="tool-calling, react or act [tool-calling]."),
        click.option("--user-strategy", help="llm, react, verify or reflection [llm]."),
        click.option("--model", "--agent-model", "model", help="Agent model [scripted]."),
        click.option("--user-model", help="User simulator model [scripted]."),
        click.option("--judge-model", help="Judge model [scripted]."),
        click.option("--base-url", help="OpenAI-compatible base URL for all three roles."),
        click.option("--agent-base-url", help="Base URL of the agent's server."),
        click.option("--user-base-url", help="Base URL of the user simulator's server."),
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
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def spec_from_options(opts: dict[str, Any]) -> Any:
    from emotau.spec._spec import build_spec

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
    return build_spec(opts["config"], overrides | endpoint_overrides(opts))


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


@cli.command()
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
    from emotau.runner._experiment import Shard
    from emotau.runner._progress import make_progress
    from emotau.runner._runner import run_experiment

    spec = spec_from_options(opts).with_hooks(list(opts["hooks"]))
    if opts["plan"]:
        _plan(spec, opts["new_run"])
        return
    shard = Shard.parse(opts["shard"])
    mode = "none" if opts["quiet"] else opts["progress"]
    _finish(
        lambda: run_experiment(spec, shard, opts["new_run"], make_progress(mode), opts["workers"]),
        opts["quiet"],
    )


def _plan(spec: Any, new_run: bool) -> None:
    """`run --plan`: the grid and the effect it can detect, before paying for it."""
    from rich.table import Table

    from emotau.analysis.stats import DEFAULT_ICC, mde_table
    from emotau.core._errors import SpecChangedError
    from emotau.results._store import RunStore
    from emotau.runner._experiment import prepare
    from emotau.spec._spec import diff_identity

    exp = prepare(spec)
    old = RunStore(spec.run_dir).read_frozen() if spec.run_dir.is_dir() else None
    if old is not None and old["hash"] != exp.resolved.hash and not new_run:
        diffs = diff_identity(old["identity"], exp.resolved.identity)
        raise SpecChangedError(  # what `run` itself would say
            f"run {str(spec.run_dir)!r} was started with a different spec: "
            f"{'; '.join(diffs) or 'hash differs'}. Use --new-run to start a new run beside "
            "it, or another --experiment-name"
        )
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


def _finish(go: Any, quiet: bool) -> None:
    """Run, then report what happened (shared by `run` and `resume`)."""
    from emotau.results._summary import render_table

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
            "records; the episodes are kept)"
            if stats.get("hook_errors")
            else ""
        ),
        err=True,
    )
    summary = result.summary()
    if summary["synthetic"]:
        click.echo("note: scripted models were used; these results are SYNTHETIC", err=True)
    if not quiet:
        _console().print(render_table(summary, title=f"{result.path}"))


@cli.command()
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
    from emotau.runner._experiment import Shard
    from emotau.runner._progress import make_progress
    from emotau.runner._runner import resume as resume_run

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
        ),
        opts["quiet"],
    )


# ------------------------------------------------------------------------------- summary
@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def summary(run_dir: str, fmt: str) -> None:
    """Per-variant table: episodes, success, reward, pass^k, errors, turns."""
    from emotau.results._reader import Run

    data = Run.open(run_dir).summary()
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    from emotau.results._summary import render_table

    _console().print(render_table(data, title=run_dir))


# ------------------------------------------------------------------------------ submit
@cli.group()
def submit() -> None:
    """Spread a run's shards over Slurm job arrays or Ray (one run directory in the end)."""


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
                     help="vLLM tool parser for an agent model family emotau does not know."),
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
    from emotau.core._errors import UserError
    from emotau.launch._submit import (
        SCHEDULERS,
        ServeOptions,
        SubmitPlan,
        check_array,
        check_serve,
        load_jobs,
        node_local_warning,
        unfinished_shards,
    )
    from emotau.results._reader import Run
    from emotau.runner._experiment import prepare
    from emotau.runner._runner import open_run_dir, spec_of_run

    given = [n for n in _IDENTITY_FLAGS if opts.get(n) not in (None, ())]
    if opts["run_dir"] and (given or opts.get("variants_file")):
        flags = ", ".join(f"--{n.replace('_', '-')}" for n in given or ["variants_file"])
        raise UserError(f"--run-dir uses the run's frozen spec: drop {flags}")
    run = Run.open(opts["run_dir"]) if opts["run_dir"] else None
    exp = prepare(spec_of_run(run.path) if run else spec_from_options(opts))
    serve = ServeOptions(
        opts["serve_agent"], opts["serve_user"], opts["vllm_command"],
        opts["serve_extra_args"], opts["serve_timeout"], opts["serve_tool_call_parser"],
        opts["serve_max_model_len"],
    )  # fmt: skip
    if not serve.any and any(
        opts[k] is not None for k in ("vllm_command", "serve_extra_args", "serve_tool_call_parser")
    ):
        raise UserError("--vllm-command and the --serve-* options need --serve-agent/--serve-user")
    check_serve(exp.spec, serve)
    grid = sum(1 for _ in exp.grid())
    run_path = run.path if run else exp.spec.run_dir
    previous = [j for j in load_jobs(run_path) if isinstance(j.get("array"), int)]
    last = previous[-1]["array"] if previous else None
    array = opts["array"] if opts["array"] is not None else last
    if array is None:
        raise UserError("--array N is required (how many shards, one job each)")
    if opts["resubmit_failed"] and last is not None and array != last:
        raise UserError(
            f"--resubmit-failed resubmits shards of the last submission's split ({last}); "
            f"--array {array} would overlap its shards"
        )
    warnings = check_array(array, grid)  # before the run directory is created
    backend = SCHEDULERS.get(scheduler)()
    active = backend.active_shards(run_path) if previous and not opts["dry_run"] else set()
    if active and not opts["resubmit_failed"]:
        raise UserError(
            f"{len(active)} job(s) of this run are still queued or running: wait for them, or "
            "use --resubmit-failed (which leaves them alone)"
        )
    if run is None:
        exp, run = open_run_dir(exp)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if (w := node_local_warning(run.path)) and scheduler == "slurm":
        click.echo(f"warning: {w}", err=True)
    shards = list(range(array))
    if opts["resubmit_failed"]:
        todo = unfinished_shards(run.path, array)
        shards = [i for i in todo if i not in active]
        if active & set(todo):
            click.echo(
                f"shards still queued or running, not resubmitted: "
                f"{', '.join(map(str, sorted(active & set(todo))))}",
                err=True,
            )
        if not shards:
            click.echo(f"nothing to resubmit: every shard of {array} has finished or is active")
            return
    plan = SubmitPlan(
        run.path.resolve(), array, shards, sched_opts, serve, name=f"emotau-{run.path.name}",
        endpoint_args=_endpoint_args(opts),
    )  # fmt: skip
    sub = backend.submit(plan, dry_run=opts["dry_run"])
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


@cli.command("shard-task", hidden=True)
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
    from emotau.launch._submit import ServeOptions, run_shard_task
    from emotau.runner._experiment import Shard
    from emotau.runner._progress import make_progress

    serve = ServeOptions(
        opts["serve_agent"], opts["serve_user"], opts["vllm_command"],
        opts["serve_extra_args"], opts["serve_timeout"], opts["serve_tool_call_parser"],
        opts["serve_max_model_len"],
    )  # fmt: skip
    overrides = endpoint_overrides(opts) | {"max_concurrency": opts["max_concurrency"]}
    _finish(
        lambda: run_shard_task(
            run_dir, Shard.parse(shard), serve, make_progress("log"), overrides=overrides
        ),
        quiet=True,
    )


# ------------------------------------------------------------------------------ status
@cli.command()
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
    and --format json, one JSON object per line at each refresh.
    """
    import time

    from emotau.results._monitor import StatusReader, render_status

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


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--from", "sources", multiple=True, required=True, type=click.Path(),
    help="A copy of the run directory (or its episodes/ folder) from another machine; repeatable.",
)  # fmt: skip
def collect(run_dir: str, sources: tuple[str, ...]) -> None:
    """Merge shard files copied back from other machines into RUN_DIR (same spec only)."""
    from emotau.results._collect import collect as collect_into

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


# ------------------------------------------------------------------------------ analysis
@cli.command()
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
    from emotau.results._reader import Run

    run = Run.open(run_dir)
    out = Path(opts["out"]) if opts["out"] else run.path / "report"
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
    )
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"report written to {out} (open {out / 'report.html'}; tables in summary.md)")


@cli.command()
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

    result = compare_runs(
        run_a, run_b, reference=opts["reference"], n_boot=opts["bootstrap"], seed=opts["seed"]
    )
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if opts["out"]:
        write_comparison(result, opts["out"])
    if sys.stdout.isatty():
        _console().print(Markdown(result.to_markdown()))
    else:
        click.echo(result.to_markdown())


# ------------------------------------------------------------------------------ variants
@cli.group()
def variants() -> None:
    """List variants and show the exact user prompt they produce."""


@variants.command("list")
@click.option("--variants-file", multiple=True, type=click.Path(dir_okay=False))
def variants_list(variants_file: tuple[str, ...]) -> None:
    """Every available variant with its emotion and description."""
    from rich.table import Table

    from emotau.episode._variants import INTENSITIES, VariantLibrary

    lib = VariantLibrary.default(variants_file)
    table = Table(title="Variants (compose with '+', set intensity with ':mild|:moderate|:severe')")
    for col in ("name", "emotion", "intensities", "source", "description"):
        table.add_column(col)
    for v in lib:
        table.add_row(
            v.name,
            v.emotion or "-",
            "-" if v.is_control else ",".join(INTENSITIES),
            v.source,
            v.description,
        )
    _console().print(table)


@variants.command("show")
@click.argument("name")
@click.option("--task", "task_id", type=int, default=0, show_default=True)
@click.option("--domain", "--env", "domain", default="hotel", show_default=True)
@click.option("--user-strategy", default="llm", show_default=True)
@click.option("--variants-file", multiple=True, type=click.Path(dir_okay=False))
def variants_show(
    name: str, task_id: int, domain: str, user_strategy: str, variants_file: tuple[str, ...]
) -> None:
    """Print the exact user system prompt an episode of NAME would get."""
    from emotau.core._errors import UserError
    from emotau.domains import load_domain
    from emotau.episode._users import USER_STRATEGIES, base_user_prompt
    from emotau.episode._variants import VariantLibrary

    sel = VariantLibrary.default(variants_file).select(name)
    dom = load_domain(domain)
    tasks = dom.tasks()
    if not 0 <= task_id < len(tasks):
        raise UserError(
            f"task id {task_id} out of range: domain {dom.name!r} has 0..{len(tasks) - 1}"
        )
    task = tasks[task_id]
    strategy = USER_STRATEGIES.get(user_strategy)
    own = dom.user_system_prompt(task, strategy.name)
    base = own if own is not None else base_user_prompt(task.instruction)
    prompt = strategy(  # type: ignore[arg-type]
        None, sel.apply(base), task.instruction, {}, add_format=own is None
    ).system_prompt
    click.echo(
        f"# variant {sel.label} | domain {dom.name} task {task.id} | user strategy "
        f"{strategy.name} | injected text sha256 {sel.text_sha256[:12]}",
        err=True,
    )
    click.echo(prompt)


# -------------------------------------------------------------------------------- doctor
@cli.command()
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


# --------------------------------------------------------------------------- mock-server
@cli.command("mock-server")
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


def _register_serve() -> None:
    from emotau.serving._vllm import serve_command

    cli.add_command(serve_command)


_register_serve()


def main(argv: list[str] | None = None) -> None:
    from emotau.core._errors import InfraError, UserError

    try:
        rc = cli.main(args=argv, prog_name="emotau", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc))
    except InfraError as exc:  # an endpoint that stays down: say so, no traceback
        click.echo(f"emotau: infrastructure error: {exc}", err=True)
        sys.exit(3)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.Abort:
        click.echo("emotau: aborted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
