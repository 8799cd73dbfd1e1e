"""Orchestration throughput with scripted models on the built-in domain.

Runs a 5,000-episode grid in one process pinned to one core, and prints episodes/s, peak RSS and
RSS sampled after 1,000 and after 5,000 finished episodes (memory must not grow with the number
of finished episodes). Then times `emotau --help` (heavy imports must be lazy).

    python benchmarks/throughput.py [--episodes 5000] [--domain hotel]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Sampler:
    """A progress sink that samples RSS as episodes finish."""

    def __init__(self, marks: list[int]) -> None:
        self.marks = marks
        self.n = 0
        self.samples: dict[int, float] = {}

    def start(
        self, totals: Mapping[str, int], done: Mapping[str, int], synthetic: bool = False
    ) -> None:
        self.samples[0] = rss_mb()

    def update(self, record: Mapping[str, Any]) -> None:
        self.n += 1
        if self.n in self.marks:
            self.samples[self.n] = rss_mb()

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=5000)
    ap.add_argument("--domain", default="hotel")
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    import asyncio

    from emotau.domains import load_domain
    from emotau.runner import execute, open_run_dir, prepare
    from emotau.spec import build_spec

    n_tasks = len(load_domain(args.domain).tasks())
    variants = ["control", "neutral", "frustration", "anxiety", "anger", "confusion"]
    trials = max(1, round(args.episodes / (n_tasks * len(variants))))
    total = trials * n_tasks * len(variants)
    with tempfile.TemporaryDirectory() as out:
        spec = build_spec(
            {
                "experiment_name": "bench",
                "domain": args.domain,
                "out": out,
                "num_trials": trials,
                "variants": variants,
                "max_concurrency": args.concurrency,
            }
        )
        exp, run = open_run_dir(prepare(spec))
        sampler = Sampler([1000, total // 2, total])
        t0 = time.perf_counter()
        asyncio.run(execute(exp, run, progress=sampler))
        wall = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in run.store.shard_files())
        summary = run.summary()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"domain={args.domain} tasks={n_tasks} variants={len(variants)} trials={trials}")
    print(f"episodes={total} wall={wall:.2f}s throughput={total / wall:.0f} episodes/s (1 core)")
    print(
        f"peak_rss={peak:.0f} MB; rss after "
        + ", ".join(f"{k} episodes={v:.0f} MB" for k, v in sorted(sampler.samples.items()))
    )
    print(
        f"shard file {size / 1e6:.1f} MB ({size / total / 1e3:.1f} kB/episode); "
        f"synthetic success by variant: "
        + ", ".join(
            f"{r['variant']}={100 * (r['success_rate'] or 0):.0f}%" for r in summary["variants"]
        )
    )

    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "emotau", "--help"], check=True, stdout=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - t0)
    print(
        f"emotau --help: median {statistics.median(times) * 1000:.0f} ms over 5 runs "
        f"(python -m emotau, includes interpreter start)"
    )


if __name__ == "__main__":
    main()
