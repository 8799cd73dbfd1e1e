"""emotau vs upstream tau-bench's own run() on the same tasks, mock server and concurrency.

Needs upstream tau-bench installed in this Python (see docs/taubench.md). Both harnesses talk
to the same `emotau mock-server` (zero latency, scripted oracle at skill 1.0), which recognises
tau-bench tasks from upstream's prompts (`--oracle-domains`), since upstream sends no metadata.

- emotau: 115 retail test tasks x 5 variants (control, frustration, anxiety, anger,
  confusion) x 1 trial;
- upstream: the same 115 tasks x 5 trials (it has no variants), tool-calling agent, llm user;
and prints wall time, peak RSS and mean reward of each, their ratios, and the reward time per
episode with upstream's calculate_reward (no cache) and with emotau's cached ground truth.

    python benchmarks/vs_upstream_taubench.py [--concurrency 16] [--tasks 115]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from emotau.scripted import spawn

UPSTREAM_DRIVER = r"""
import json, os, sys
from tau_bench.run import run
from tau_bench.types import RunConfig
out, conc, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = run(RunConfig(model_provider="openai", user_model_provider="openai",
                    model="scripted-agent", user_model="scripted-user", env="retail",
                    task_split="test", num_trials=5, max_concurrency=conc, log_dir=out,
                    agent_strategy="tool-calling", user_strategy="llm",
                    start_index=0, end_index=n))
rewards = [r.reward for r in res]
print(json.dumps({"episodes": len(rewards), "mean_reward": sum(rewards) / len(rewards)}))
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (of the process), stdout."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
    rss = int(p.stderr.strip().splitlines()[-1]) / 1024
    return wall, rss, p.stdout


def reward_timing(n: int) -> tuple[float, float]:
    """Seconds per episode: upstream's calculate_reward vs emotau's evaluate (GT cached)."""
    from tau_bench.envs import get_env
    from tau_bench.types import Action as UAction

    from emotau.domains import load_domain

    dom = load_domain("tau-bench:retail")
    up, ours = [], []
    for task in dom.tasks()[:n]:
        env = get_env(
            "retail",
            user_strategy="human",
            user_model="none",
            task_split="test",
            task_index=task.id,
        )
        env.data = env.data_load_func()
        env.actions = []
        for a in task.actions:
            if a.name not in env.terminate_tools:
                env.step(UAction(name=a.name, kwargs=dict(a.arguments)))
        gc.collect()  # neither timing pays for the garbage of the setup before it
        t0 = time.perf_counter()
        env.calculate_reward()
        up.append(time.perf_counter() - t0)
        e = dom.new_environment(task)
        for a in task.actions:
            e.execute(a.name, a.arguments)
        # both ground-truth hashes are computed once per task in a run: warm the caches
        dom.evaluate(task, e, list(task.outputs), [a.name for a in task.actions])
        gc.collect()
        t0 = time.perf_counter()
        dom.evaluate(task, e, list(task.outputs), [a.name for a in task.actions])
        ours.append(time.perf_counter() - t0)
    return statistics.mean(up), statistics.mean(ours)


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before any tau_bench import
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--tasks", type=int, default=115)
    args = ap.parse_args()
    servers = contextlib.ExitStack()
    url = servers.enter_context(spawn("--skill", "1.0", "--oracle-domains", "tau-bench:retail")).url
    env = dict(
        os.environ,
        OPENAI_API_BASE=url,
        OPENAI_BASE_URL=url,
        OPENAI_API_KEY="sk-mock",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    try:
        with tempfile.TemporaryDirectory() as out:
            ids = ",".join(str(i) for i in range(args.tasks))
            e_wall, e_rss, _ = timed(
                [
                    sys.executable,
                    "-m",
                    "emotau",
                    "run",
                    "--domain",
                    "tau-bench:retail",
                    "--task-ids",
                    ids,
                    "--variants",
                    "control,frustration,anxiety,anger,confusion",
                    "--num-trials",
                    "1",
                    "--base-url",
                    url,
                    "--model",
                    "scripted-agent",
                    "--user-model",
                    "scripted-user",
                    "--max-concurrency",
                    str(args.concurrency),
                    "--out",
                    out,
                    "--quiet",
                ],
                env,
            )
            summary = json.loads(
                subprocess.run(
                    [sys.executable, "-m", "emotau", "summary", f"{out}/demo", "--format", "json"],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                ).stdout
            )
            e_reward = statistics.mean(r["mean_reward"] for r in summary["variants"])
            u_wall, u_rss, u_out = timed(
                [
                    sys.executable,
                    "-c",
                    UPSTREAM_DRIVER,
                    out + "/upstream",
                    str(args.concurrency),
                    str(args.tasks),
                ],
                env,
            )
            u = json.loads(u_out.strip().splitlines()[-1])
    finally:
        servers.close()
    n = args.tasks * 5
    print(
        f"{n} episodes each ({args.tasks} retail test tasks), concurrency {args.concurrency}, "
        "mock server at 0 ms, scripted oracle"
    )
    print(f"emotau:   wall {e_wall:.1f} s, peak RSS {e_rss:.0f} MB, mean reward {e_reward:.3f}")
    print(
        f"upstream: wall {u_wall:.1f} s, peak RSS {u_rss:.0f} MB, mean reward "
        f"{u['mean_reward']:.3f} ({u['episodes']} episodes)"
    )
    print(f"ratio upstream/emotau: wall {u_wall / e_wall:.1f}x, peak RSS {u_rss / e_rss:.1f}x")
    up, ours = reward_timing(20)
    print(
        f"reward per episode (20 tasks): upstream calculate_reward {1000 * up:.0f} ms, "
        f"emotau with cached ground truth {1000 * ours:.0f} ms ({up / ours:.1f}x)"
    )


if __name__ == "__main__":
    main()
