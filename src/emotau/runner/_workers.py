"""Running one shard as several local worker processes."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter

from emotau.core import EXIT_ENDPOINT_DOWN, EXIT_INCOMPLETE, UserError
from emotau.models import provider_for
from emotau.results import (
    Run,
    is_finished,
    repair_shard,
    shard_filename,
)
from emotau.runner._experiment import Experiment, Shard
from emotau.runner._log import log_name, run_log
from emotau.runner._progress import NullProgress, Progress, scored_so_far

logger = logging.getLogger("emotau.runner")
#: prctl(2) option: the signal a process gets when its parent dies (Linux)
_PR_SET_PDEATHSIG = 1


def run_workers(
    exp: Experiment, run: Run, shard: Shard, workers: int, progress: Progress | None
) -> Run:
    """Run ``shard`` as ``workers`` local processes; show their progress as one.

    Each worker gets this process's spec (endpoints, retries, ...) with its share of the
    concurrency and of each endpoint's request limit, so the totals stay as configured.
    Each writes its own log file (``logs/emotau-shard-I-of-N.log``).
    """
    with run_log(run.path, shard):
        return _run_workers(exp, run, shard, workers, progress)


def _run_workers(
    exp: Experiment, run: Run, shard: Shard, workers: int, progress: Progress | None
) -> Run:
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
    finished = store.finished_outcomes()
    mine = list(exp.grid(shard))
    counts = Counter(k[1] for k in mine)
    progress.start(
        {label: counts[label] for label in exp.resolved.variant_labels},
        dict(Counter(k[1] for k in mine if k in finished)),
        provider_for(exp.spec.agent) == "scripted" or provider_for(exp.spec.user) == "scripted",
        scored=scored_so_far(mine, finished),
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
        procs.append(
            (subprocess.Popen(cmd, stdout=log, stderr=log, preexec_fn=_die_with_parent), log, s)
        )
        logger.info("worker %s started (pid %d), logging to %s", s, procs[-1][0].pid, log_name(s))
    stats = Counter[str]()
    errors = Counter[str]()  # first line of each infrastructure error -> episodes

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
                if not is_finished(rec):
                    errors[str(rec.get("error") or "").split("\n", 1)[0]] += 1
                if rec.get("hook_errors"):
                    stats["hook_errors"] += 1
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
    # a worker that left episodes as infrastructure errors exits EXIT_INCOMPLETE, or
    # EXIT_ENDPOINT_DOWN when its circuit breaker gave up: counted above
    ok = (0, EXIT_INCOMPLETE, EXIT_ENDPOINT_DOWN)
    failed = [(s, p.returncode) for p, _, s in procs if p.returncode not in ok]
    for s, rc in failed:
        logger.warning("worker %s failed with exit status %s", s, rc)
    if failed:
        s, rc = failed[0]
        tail = (logs / f"worker-{s.index}-of-{s.count}.log").read_text(errors="replace")
        last = (tail.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(
            f"{len(failed)} of {workers} workers failed (shard {s}, exit {rc}): {last} "
            f"(logs in {logs})"
        )
    spec_file.unlink(missing_ok=True)
    down = [s for p, _, s in procs if p.returncode == EXIT_ENDPOINT_DOWN]
    if down:
        lines = (logs / f"worker-{down[0].index}-of-{down[0].count}.log").read_text(
            errors="replace"
        )
        said = [x for x in lines.splitlines() if x.startswith("emotau: stopped early: ")]
        why = said[-1].removeprefix("emotau: stopped early: ") if said else "(see its log)"
        stats_down = {"line": f"{len(down)} of {workers} workers; worker {down[0]}: {why}"}
    run.stats = {
        "shard": str(shard),
        "workers": workers,
        "already_finished": sum(1 for k in mine if k in finished),
        "repaired_bytes": repaired,
        **stats,
        "errors": dict(errors.most_common()),
    }
    if down:
        run.stats["endpoint_down"] = stats_down
    return run


def _die_with_parent() -> None:
    """In a worker, before it runs: on Linux, a SIGTERM when the parent dies (killed by PID,
    say), so that no orphan keeps writing its shard; a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
