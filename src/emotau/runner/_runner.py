"""Running an experiment: resolve the spec, open the run directory, run the shard's grid.

The grid is every (task, variant, trial). It is ordered canonically (trial, task, variant label)
so that every process agrees on it, and shard ``i/N`` takes items ``i, i+N, i+2N, ...``.
``shuffle`` changes only the order in which a shard runs its own items.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from emotau.core import EpisodeContext, HookSet, RunContext, SpecChangedError, UserError
from emotau.episode import EpisodeSetup, run_episode
from emotau.results import (
    Key,
    Run,
    RunStore,
    ShardWriter,
    shard_filename,
)
from emotau.runner._breaker import Breaker
from emotau.runner._doctor import preflight, probe_endpoints
from emotau.runner._experiment import Experiment, Shard, prepare
from emotau.runner._log import run_log
from emotau.runner._progress import NullProgress, Progress, scored_so_far
from emotau.runner._workers import run_workers
from emotau.spec import (
    RunSpec,
    build_spec,
    diff_identity,
)

T = TypeVar("T")

log = logging.getLogger("emotau.runner")


def _new_run_name(out: Path, name: str, spec_hash: str) -> str:
    """``name-N``: an existing one with the same spec (to resume it), else the first free N."""
    n = 2
    while (out / f"{name}-{n}").exists():
        frozen = RunStore(out / f"{name}-{n}").read_frozen()
        if frozen is not None and frozen["hash"] == spec_hash:
            break
        n += 1
    return f"{name}-{n}"


def open_run_dir(exp: Experiment, new_run: bool = False) -> tuple[Experiment, Run]:
    """Create or reopen the run directory for ``exp``; refuse a changed spec."""
    spec = exp.spec
    run_dir = spec.run_dir
    store = RunStore(run_dir)
    frozen_old = store.read_frozen() if run_dir.is_dir() else None
    if frozen_old is not None and frozen_old["hash"] != exp.resolved.hash:
        if not new_run:
            diffs = diff_identity(frozen_old["identity"], exp.resolved.identity)
            raise SpecChangedError(
                f"run {str(run_dir)!r} was started with a different spec: "
                f"{'; '.join(diffs) or 'hash differs'}. Use --new-run to start a new run "
                "beside it, or another --experiment-name",
                diffs,
            )
        name = _new_run_name(Path(spec.out), spec.experiment_name, exp.resolved.hash)
        exp = prepare(spec.model_copy(update={"experiment_name": name}))
        return open_run_dir(exp, new_run=False)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{str(run_dir)!r} exists and is not a directory")
    if (
        frozen_old is None
        and run_dir.is_dir()
        and not store.leftovers_only()
        and not store.spec_path.exists()  # a sibling shard just created it: create() settles it
    ):
        raise UserError(f"{str(run_dir)!r} exists, is not empty and is not an emotau run")

    created: list[Path] = []
    p = run_dir
    while not p.exists():
        created.append(p)
        p = p.parent
    if not os.access(p, os.W_OK):
        raise UserError(f"output directory {str(p)!r} is not writable")
    try:
        frozen = exp.resolved.frozen()
        frozen["variant_order"] = list(exp.resolved.variant_labels)
        frozen["created"] = {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
        on_disk = store.create(frozen)
    except OSError as exc:
        for d in created:
            shutil.rmtree(d, ignore_errors=True)
        raise UserError(f"cannot write run directory {str(run_dir)!r}: {exc.strerror}") from None
    if on_disk["hash"] != exp.resolved.hash:  # another process created it with another spec
        raise SpecChangedError(f"run {str(run_dir)!r} was just created with a different spec")
    return exp, Run(run_dir, on_disk)


@contextlib.contextmanager
def episodes_gc(full_every: int = 100) -> Iterator[None]:
    """Fewer, cheaper full passes of the cyclic GC while episodes run; as before afterwards.

    What exists before (modules: ~360k objects once upstream tau-bench has imported litellm;
    the domain) is frozen out of the passes, and a full pass comes after ``full_every``
    second-generation passes instead of 10. Each full pass walks every live episode's state
    (16 copies of tau-bench's retail data: ~130 ms), and by default one came every ~4 episodes:
    a third of emotau's CPU in a tau-bench run against zero-latency models. Young cycles are
    still collected as usual.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], full_every))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def shuffled_by_trial(keys: list[Key], seed: int) -> list[Key]:
    """``keys`` trial by trial (trial 0's first), each trial's episodes in a random order drawn
    from ``seed``: the order of ``--shuffle`` (tau-bench's shuffles its task order the same way,
    one trial after another). The same seed and keys give the same order in every process."""
    rng = random.Random(f"emotau-shuffle:{seed}")
    out: list[Key] = []
    for trial in sorted({k[2] for k in keys}):
        batch = [k for k in keys if k[2] == trial]
        rng.shuffle(batch)
        out.extend(batch)
    return out


async def execute(
    exp: Experiment,
    run: Run,
    shard: Shard = Shard(),
    progress: Progress | None = None,
) -> Run:
    """Run the shard's unfinished episodes; append each record as it finishes."""
    spec = exp.spec
    progress = progress or NullProgress()
    store = run.store
    writer = ShardWriter(store.episodes_dir / shard_filename(shard.index, shard.count))
    finished = store.finished_outcomes()
    mine = list(exp.grid(shard))
    counts = Counter(k[1] for k in mine)
    totals = {label: counts[label] for label in exp.resolved.variant_labels}
    done = Counter(k[1] for k in mine if k in finished)
    prior = scored_so_far(mine, finished)
    left = [k for k in mine if k not in finished]
    todo = iter(shuffled_by_trial(left, spec.seed) if spec.shuffle else left)
    run_ctx = RunContext(run.path, str(shard), spec.model_dump(mode="json"), exp.resolved.hash)
    hooks = HookSet(exp.make_hooks(), run_ctx)
    await hooks.start()
    exp.client_settings().rebind()  # the endpoint limits belong to this event loop
    agent_client, user_client, judge_client = exp.make_clients()
    tasks = exp.domain.tasks()
    writer.start()
    stats = Counter[str]()
    errors = Counter[str]()  # first line of each infrastructure error -> episodes
    limit = spec.retry.stop_after_failed_episodes
    if limit is None:
        limit = max(20, 2 * spec.max_concurrency)
    breaker = Breaker(limit, spec.retry.breaker_wait, lambda: probe_endpoints(exp))

    async def worker() -> None:
        for task_id, label, trial in todo:
            if not await breaker.admit():  # the endpoints are down: leave the rest for resume
                break
            ctx = EpisodeContext(exp.domain.name, task_id, label, trial, spec.seed, run_ctx)
            ep_hooks = hooks.episode(ctx) if hooks else None
            setup = EpisodeSetup(
                domain=exp.domain,
                task=tasks[task_id],
                variant=exp.selections[label],
                trial=trial,
                seed=spec.seed,
                agent_client=agent_client,
                user_client=user_client,
                judge_client=judge_client,
                agent_strategy=exp.agent_strategy,
                user_strategy=exp.user_strategy,
                max_steps=spec.max_steps,
                max_errors=spec.max_errors,
                tool_choice=spec.tool_choice,
                retry_budget=spec.retry.episode_budget,
                domain_ref=spec.domain,
                hooks=ep_hooks,
            )
            if ep_hooks is not None:
                await ep_hooks.start()
            record = await run_episode(setup)
            record.shard = str(shard)
            if ep_hooks is not None:
                await ep_hooks.end(record.to_dict())
                if ep_hooks.errors:  # the episode stands; what failed is said next to it
                    record.hook_errors = ep_hooks.errors
                    stats["hook_errors"] += 1
            line = record.to_dict()
            writer.append(line)
            stats["finished" if record.finished else "infra_errors"] += 1
            breaker.record(record.finished)
            if not record.finished:
                first = (record.error or "").split("\n", 1)[0]
                errors[first] += 1
                log.warning("task %s variant %s trial %s: %s", task_id, label, trial, first)
            progress.update(line)

    with run_log(run.path, shard):
        n = max(1, min(spec.max_concurrency, len(mine) - sum(done.values())))
        log.info(
            "%s shard %s: %d episodes to run, %d already finished, %d at a time",
            run.path,
            shard,
            len(mine) - sum(done.values()),
            sum(done.values()),
            n,
        )
        progress.start(
            totals, dict(done), agent_client.synthetic or user_client.synthetic, scored=prior
        )
        try:
            with episodes_gc():
                await asyncio.gather(*(worker() for _ in range(n)))
        finally:
            await breaker.close()
            writer.close()
            progress.close()
            await agent_client.aclose()
            await user_client.aclose()
            await judge_client.aclose()
            await hooks.end()
            log.info(
                "shard %s: %d episodes finished, %d infrastructure errors",
                shard,
                stats["finished"],
                stats["infra_errors"],
            )
    run.stats = {
        "shard": str(shard),
        "already_finished": sum(done.values()),
        "repaired_bytes": writer.repaired_bytes,
        **stats,
        "errors": dict(errors.most_common()),
    }
    if breaker.trips:
        run.stats["breaker"] = {"limit": limit, "trips": breaker.trips, "closed": breaker.recovered}
    if breaker.gave_up is not None:
        run.stats["endpoint_down"] = {
            "limit": limit,
            "waited_s": spec.retry.breaker_wait,
            "last_probe": breaker.gave_up,
        }
    return run


def outside_event_loop(fn: Callable[[], T]) -> T:
    """``fn()`` (which may call ``asyncio.run``), in a worker thread when an event loop is
    already running in this thread (Jupyter), where ``asyncio.run`` is not allowed."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def run_experiment(
    spec: RunSpec,
    shard: Shard = Shard(),
    new_run: bool = False,
    progress: Progress | None = None,
    workers: int = 1,
    on_wait: Callable[[str], None] | None = None,
) -> Run:
    """Synchronous entry point used by the CLI and :func:`emotau.run`.

    ``workers > 1`` runs the shard's grid in that many local processes (sub-shards of the same
    run directory), for when one Python process cannot keep the servers busy. ``on_wait``
    hears, one line each, of the preflight's retries.
    """
    exp = prepare(spec)
    if spec.preflight:
        asyncio.run(preflight(exp, on_wait))
    exp, run = open_run_dir(exp, new_run=new_run)
    if workers > 1:
        return run_workers(exp, run, shard, workers, progress)
    return asyncio.run(execute(exp, run, shard, progress))


def spec_of_run(path: str | Path) -> RunSpec:
    """The frozen spec of a run directory, pointed at where the directory is now."""
    run = Run.open(path)
    p = run.path.resolve()
    return run.spec.model_copy(update={"out": str(p.parent), "experiment_name": p.name})


def resume(
    path: str | Path,
    shard: Shard = Shard(),
    progress: Progress | None = None,
    workers: int = 1,
    overrides: Mapping[str, Any] | None = None,
    spec_file: str | Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Run:
    """Continue a run from its own frozen spec (no config needed).

    ``overrides`` (dotted keys, e.g. ``agent.base_url``, ``max_concurrency``, ``preflight``)
    change how the run is executed; a change to what it measures is refused as usual.
    ``spec_file`` is a full spec as JSON (how ``--workers`` hands the parent's spec on).
    ``on_wait``: as :func:`run_experiment`'s.
    """
    if spec_file is not None:
        try:
            data = json.loads(Path(spec_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read spec file {str(spec_file)!r}: {exc}") from None
    else:
        data = spec_of_run(path).model_dump(mode="json")
    p = Path(path).resolve()
    data.update({"out": str(p.parent), "experiment_name": p.name})
    spec = build_spec(data, overrides)
    try:
        return run_experiment(spec, shard, False, progress, workers, on_wait)
    except SpecChangedError as exc:
        if exc.diffs is None:
            raise
        # its own frozen spec now resolves to another identity: something it reads from
        # disk or from emotau (a variants file, the domain's tasks) is not what it was
        raise SpecChangedError(
            f"run {str(path)!r} cannot be resumed: what it measures now resolves differently "
            f"from when it started: {'; '.join(exc.diffs) or 'hash differs'} (a variants "
            "file or the domain changed?). Restore what changed to resume it, or start a new "
            "run with `emotau run` (--new-run starts one beside it)",
            exc.diffs,
        ) from None
