"""Running an experiment: resolve the spec, open the run directory, run the shard's grid.

The grid is every (task, variant, trial). It is ordered canonically (trial, task, variant label)
so that every process agrees on it, and shard ``i/N`` takes items ``i, i+N, i+2N, ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from emotau.agents import AGENT_STRATEGIES, AgentStrategy
from emotau.domains import Domain, load_domain
from emotau.engine import EpisodeSetup, run_episode
from emotau.errors import SpecChangedError, UserError
from emotau.models.base import PROVIDERS, ModelClient, create_client, provider_for
from emotau.models.openai_client import ClientSettings
from emotau.progress import NullProgress, Progress
from emotau.spec import (
    ModelConfig,
    ResolvedSpec,
    RunSpec,
    build_spec,
    diff_identity,
    domain_digest,
    prompts_digest,
)
from emotau.store import (
    Key,
    RunStore,
    ShardWriter,
    is_finished,
    repair_shard,
    shard_filename,
)
from emotau.summary import summarize
from emotau.users import USER_STRATEGIES, UserStrategy
from emotau.variants import VariantLibrary, VariantSelection

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        if not text:
            return cls()
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise UserError(f"--shard must look like i/N (e.g. 3/8), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise UserError(f"--shard {text!r}: need 0 <= i < N")
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class Experiment:
    """A resolved spec plus everything built from it (no run directory touched yet)."""

    resolved: ResolvedSpec
    domain: Domain
    selections: dict[str, VariantSelection]
    agent_strategy: type[AgentStrategy]
    user_strategy: type[UserStrategy]
    _settings: ClientSettings | None = field(default=None, repr=False)

    @property
    def spec(self) -> RunSpec:
        return self.resolved.spec

    def grid(self, shard: Shard = Shard()) -> Iterator[Key]:
        labels = sorted(self.selections)
        k = 0
        for trial in range(self.spec.num_trials):
            for task_id in self.resolved.task_ids:
                for label in labels:
                    if k % shard.count == shard.index:
                        yield (task_id, label, trial)
                    k += 1

    def client_settings(self) -> ClientSettings:
        """One per experiment: roles that share a base URL share its request limit."""
        if self._settings is None:
            limits: dict[str, int] = {}
            for _, cfg in self.roles():
                if cfg.max_concurrency and provider_for(cfg) != "scripted":
                    key = cfg.base_url or "openai"
                    limits[key] = min(limits.get(key, cfg.max_concurrency), cfg.max_concurrency)
            self._settings = ClientSettings(
                max_connections=self.spec.max_concurrency,
                retry=self.spec.retry,
                endpoint_limits=limits,
            )
        return self._settings

    def roles(self) -> list[tuple[str, ModelConfig]]:
        return [("agent", self.spec.agent), ("user", self.spec.user), ("judge", self.spec.judge)]

    def make_client(self, role: str, cfg: ModelConfig) -> ModelClient:
        provider = provider_for(cfg)
        if provider not in PROVIDERS:
            raise UserError(
                f"{role} model {cfg.model!r} needs the {provider!r} provider; "
                f"allowed: {', '.join(PROVIDERS.names())}"
            )
        try:
            return create_client(role, cfg, self.domain, self.client_settings())
        except (ValueError, TypeError) as exc:
            raise UserError(f"{role} model: {exc}") from None

    def make_clients(self) -> tuple[ModelClient, ModelClient, ModelClient]:
        """The agent's, the user's and the judge's clients (the judge is only called by domains
        whose reward needs one)."""
        return (
            self.make_client("agent", self.spec.agent),
            self.make_client("user", self.spec.user),
            self.make_client("judge", self.spec.judge),
        )


def prepare(spec: RunSpec) -> Experiment:
    """Check a spec against its domain, variants and strategies. Raises UserError; no I/O."""
    domain = load_domain(spec.domain)
    all_tasks = domain.tasks()
    n_tasks = len(all_tasks)
    misplaced = next((i for i, t in enumerate(all_tasks) if t.id != i), None)
    if misplaced is not None:
        raise UserError(
            f"domain {domain.name!r} is invalid: tasks()[{misplaced}] has id "
            f"{all_tasks[misplaced].id} (task ids must equal their position)"
        )
    if spec.task_ids is not None:
        bad = [t for t in spec.task_ids if not 0 <= t < n_tasks]
        if bad:
            raise UserError(
                f"task id {bad[0]} out of range: domain {domain.name!r} has tasks 0..{n_tasks - 1}"
            )
        task_ids = tuple(sorted(set(spec.task_ids)))
        if not task_ids:
            raise UserError("--task-ids is empty")
    elif spec.tasks is not None:
        if spec.tasks > n_tasks:
            raise UserError(
                f"--tasks {spec.tasks} is more than domain {domain.name!r} has ({n_tasks})"
            )
        task_ids = tuple(range(spec.tasks))
    else:
        task_ids = tuple(range(n_tasks))
    judged = [t for t in task_ids if all_tasks[t].metadata.get("needs_nl_judge")]
    if judged and provider_for(spec.judge) == "scripted" and provider_for(spec.agent) != "scripted":
        raise UserError(
            f"{len(judged)} of the selected {domain.name} tasks are judged by the judge role "
            "(natural-language assertions), which is the offline scripted judge; "
            "set --judge-model and --judge-base-url (or [judge] in the config)"
        )
    library = VariantLibrary.default(spec.variants_files)
    selections: dict[str, VariantSelection] = {}
    for text in spec.variants:
        sel = library.select(text)
        if sel.label in selections:
            raise UserError(f"variant {sel.label!r} is listed twice")
        selections[sel.label] = sel
    agent_cls = AGENT_STRATEGIES.get(spec.agent_strategy)
    user_cls = USER_STRATEGIES.get(spec.user_strategy)
    identity = {
        "domain": domain.name,
        "domain_version": domain.version,
        "domain_digest": domain_digest(domain),
        "task_ids": list(task_ids),
        "variants": {label: sel.digest for label, sel in selections.items()},
        "num_trials": spec.num_trials,
        "agent_strategy": agent_cls.name,
        "user_strategy": user_cls.name,
        "prompts_digest": prompts_digest(),
        "agent": spec.agent.identity(),
        "user": spec.user.identity(),
        "judge": spec.judge.identity(),
        "max_steps": spec.max_steps,
        "max_errors": spec.max_errors,
        "tool_choice": spec.tool_choice,
        "seed": spec.seed,
    }
    resolved = ResolvedSpec(spec, task_ids, tuple(selections), identity)
    exp = Experiment(resolved, domain, selections, agent_cls, user_cls)
    for role, cfg in exp.roles():
        exp.make_client(role, cfg)  # validates options and API keys; rebuilt for the run
    return exp


# --------------------------------------------------------------------------- the run object
@dataclass
class Run:
    """A run directory: its frozen spec and its episodes (finished or still running)."""

    path: Path
    frozen: dict[str, Any] = field(repr=False)
    stats: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        store = RunStore(path)
        if not store.path.is_dir():
            raise UserError(f"{str(path)!r} is not a directory")
        frozen = store.read_frozen()
        if frozen is None:
            raise UserError(f"{str(path)!r} is not an emotau run (no spec.json)")
        return cls(store.path, frozen)

    @property
    def store(self) -> RunStore:
        return RunStore(self.path)

    @property
    def spec(self) -> RunSpec:
        return RunSpec.model_validate(self.frozen["spec"])

    @property
    def variants(self) -> list[str]:
        return list(self.frozen.get("variant_order") or self.frozen["identity"]["variants"])

    def episodes(self, light: bool = False) -> list[dict[str, Any]]:
        """One record per (task, variant, trial), duplicates across shards dropped."""
        return list(self.store.merged(light=light).values())

    def summary(self) -> dict[str, Any]:
        ident = self.frozen["identity"]
        out = summarize(
            self.store.merged(light=True), self.variants, ident["task_ids"], ident["num_trials"]
        )
        out["run"] = str(self.path)
        out["spec_hash"] = self.frozen["hash"]
        out["domain"] = ident["domain"]
        return out

    def to_pandas(self) -> Any:
        """The light episode table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise UserError("to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.episodes(light=True))


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
                "beside it, or another --experiment-name"
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
    finished = store.finished_keys()
    mine = list(exp.grid(shard))
    counts = Counter(k[1] for k in mine)
    totals = {label: counts[label] for label in exp.resolved.variant_labels}
    done = Counter(k[1] for k in mine if k in finished)
    todo = (k for k in mine if k not in finished)
    exp.client_settings().rebind()  # the endpoint limits belong to this event loop
    agent_client, user_client, judge_client = exp.make_clients()
    tasks = exp.domain.tasks()
    writer.start()
    stats = Counter[str]()

    async def worker() -> None:
        for task_id, label, trial in todo:
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
            )
            record = await run_episode(setup)
            record["shard"] = str(shard)
            writer.append(record)
            stats["finished" if is_finished(record) else "infra_errors"] += 1
            progress.update(record)

    progress.start(totals, dict(done), agent_client.synthetic or user_client.synthetic)
    try:
        n = max(1, min(spec.max_concurrency, len(mine) - sum(done.values())))
        with episodes_gc():
            await asyncio.gather(*(worker() for _ in range(n)))
    finally:
        writer.close()
        progress.close()
        await agent_client.aclose()
        await user_client.aclose()
        await judge_client.aclose()
    run.stats = {
        "shard": str(shard),
        "already_finished": sum(done.values()),
        "repaired_bytes": writer.repaired_bytes,
        **stats,
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
) -> Run:
    """Synchronous entry point used by the CLI and :func:`emotau.run`.

    ``workers > 1`` runs the shard's grid in that many local processes (sub-shards of the same
    run directory), for when one Python process cannot keep the servers busy.
    """
    exp = prepare(spec)
    if spec.preflight:
        from emotau.doctor import preflight

        asyncio.run(preflight(exp))
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
) -> Run:
    """Continue a run from its own frozen spec (no config needed).

    ``overrides`` (dotted keys, e.g. ``agent.base_url``, ``max_concurrency``, ``preflight``)
    change how the run is executed; a change to what it measures is refused as usual.
    ``spec_file`` is a full spec as JSON (how ``--workers`` hands the parent's spec on).
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
    return run_experiment(spec, shard, False, progress, workers)


def run_workers(
    exp: Experiment, run: Run, shard: Shard, workers: int, progress: Progress | None
) -> Run:
    """Run ``shard`` as ``workers`` local processes; show their progress as one.

    Each worker gets this process's spec (endpoints, retries, ...) with its share of the
    concurrency and of each endpoint's request limit, so the totals stay as configured.
    """
    import subprocess
    import sys

    progress = progress or NullProgress()
    subs = [Shard(shard.index + shard.count * w, shard.count * workers) for w in range(workers)]
    store = run.store
    logs = run.path / "logs"
    logs.mkdir(exist_ok=True)
    files = [store.episodes_dir / shard_filename(s.index, s.count) for s in subs]
    # repair before reading offsets, so that no line is counted twice
    repaired = sum(repair_shard(f) for f in files)

    def share(n: int | None) -> int | None:
        return None if n is None else max(1, -(-n // workers))

    worker_spec = exp.spec.model_copy(
        update={
            "max_concurrency": share(exp.spec.max_concurrency),
            "preflight": False,
            **{
                role: cfg.model_copy(update={"max_concurrency": share(cfg.max_concurrency)})
                for role, cfg in exp.roles()
            },
        }
    )
    spec_file = logs / f"worker-spec-{os.getpid()}.json"
    spec_file.write_text(worker_spec.model_dump_json(indent=1), encoding="utf-8")
    finished = store.finished_keys()
    mine = list(exp.grid(shard))
    counts = Counter(k[1] for k in mine)
    progress.start(
        {label: counts[label] for label in exp.resolved.variant_labels},
        dict(Counter(k[1] for k in mine if k in finished)),
        provider_for(exp.spec.agent) == "scripted" or provider_for(exp.spec.user) == "scripted",
    )
    offsets = {f: (f.stat().st_size if f.exists() else 0) for f in files}
    procs = []
    for s in subs:
        log = open(logs / f"worker-{s.index}-of-{s.count}.log", "ab")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "emotau",
            "resume",
            str(run.path),
            "--shard",
            str(s),
            "--spec-file",
            str(spec_file),
            "--quiet",
        ]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=log), log, s))
    stats = Counter[str]()

    def drain() -> None:
        for f in files:
            if not f.exists():
                continue
            with open(f, "rb") as fh:
                fh.seek(offsets[f])
                data = fh.read()
            end = data.rfind(b"\n") + 1
            offsets[f] += end
            for line in data[:end].splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                stats["finished" if is_finished(rec) else "infra_errors"] += 1
                progress.update(rec)

    try:
        while any(p.poll() is None for p, _, _ in procs):
            drain()
            time.sleep(0.3)
        drain()
    except KeyboardInterrupt:
        for p, _, _ in procs:
            p.terminate()
        for p, _, _ in procs:
            p.wait(30)
        raise
    finally:
        progress.close()
        for _, log, _ in procs:
            log.close()
    failed = [(s, p.returncode) for p, _, s in procs if p.returncode != 0]
    if failed:
        s, rc = failed[0]
        tail = (logs / f"worker-{s.index}-of-{s.count}.log").read_text(errors="replace")
        last = (tail.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(
            f"{len(failed)} of {workers} workers failed (shard {s}, exit {rc}): {last} "
            f"(logs in {logs})"
        )
    spec_file.unlink(missing_ok=True)
    run.stats = {
        "shard": str(shard),
        "workers": workers,
        "already_finished": sum(1 for k in mine if k in finished),
        "repaired_bytes": repaired,
        **stats,
    }
    return run
