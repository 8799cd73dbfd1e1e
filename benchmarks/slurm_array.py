"""A 4-task Slurm array beside the same grid in one process (needs a local Slurm).

Start a cluster first (as root): ``scripts/slurm-local.sh up /tmp/slurm`` then
``EMOTAU_SLURM_ENV=/tmp/slurm/env.sh .venv/bin/python benchmarks/slurm_array.py``.

Both sides run the same grid against "model servers" that take ``--latency`` seconds per
request (emotau's mock server), with the same episodes in flight per process
(``--max-concurrency``):
- one process: ``emotau run`` against one mock server;
- the array: ``emotau submit slurm --array 4 --serve-agent --serve-user``; each job starts its own
  two servers (tests/fake_vllm_mock.py), runs its shard, stops them.
It prints both wall times, their ratio, and checks that the array produced exactly the same
set of (task, variant, trial) episodes, each once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def sourced(env_sh: str) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"source {env_sh} && env -0"], capture_output=True)
    return dict(i.split("=", 1) for i in out.stdout.decode().split("\0") if "=" in i)


def emotau(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "emotau", *args], capture_output=True, text=True,
                       env=env)  # fmt: skip
    if r.returncode != 0:
        sys.exit(f"emotau {' '.join(args[:2])} failed: {r.stderr.strip()[-500:]}")
    return r


def keys(run: Path) -> list[tuple]:
    out = []
    for f in sorted((run / "episodes").glob("shard-*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            if r["status"] == "completed":
                out.append((r["task_id"], r["variant"], r["trial"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per model request")
    ap.add_argument("--max-concurrency", type=int, default=2)
    args = ap.parse_args()
    env_sh = os.environ.get("EMOTAU_SLURM_ENV")
    if not env_sh:
        sys.exit("set EMOTAU_SLURM_ENV=DIR/env.sh (scripts/slurm-local.sh up DIR starts a cluster)")
    env = sourced(env_sh) | {"FAKE_VLLM_LATENCY": str(args.latency)}
    grid = ["--tasks", str(args.tasks), "--num-trials", str(args.trials),
            "--max-concurrency", str(args.max_concurrency), "--model", "scripted-agent",
            "--user-model", "scripted-user"]  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="emotau-bench-slurm-"))

    from emotau.scripted import spawn

    with spawn("--latency", str(args.latency)) as server:
        t0 = time.perf_counter()
        emotau(env, "run", "--out", str(out), "--experiment-name", "one", *grid,
               "--base-url", server.url, "--quiet")  # fmt: skip
        one = time.perf_counter() - t0

    t0 = time.perf_counter()
    emotau(env, "submit", "slurm", "--out", str(out), "--experiment-name", "array", *grid,
           "--base-url", "http://127.0.0.1:9/v1", "--array", "4", "--serve-agent", "--serve-user",
           "--serve-tool-call-parser", "hermes", "--vllm-command",
           f"{sys.executable} {TESTS / 'fake_vllm_mock.py'} serve")  # fmt: skip
    while subprocess.run([sys.executable, "-m", "emotau", "status", str(out / "array")],
                         capture_output=True, env=env).returncode != 0:  # fmt: skip
        time.sleep(0.25)
    array = time.perf_counter() - t0

    a, b = keys(out / "one"), keys(out / "array")
    same = sorted(a) == sorted(b) and len(b) == len(set(b))
    print(f"grid: {len(a)} episodes ({args.tasks} tasks x 6 variants x {args.trials} trials), "
          f"{args.latency * 1000:.0f} ms per model request, {args.max_concurrency} in flight "
          f"per process, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"one process      : {one:6.1f} s")
    print(f"Slurm array of 4 : {array:6.1f} s  (submit to last episode; each job starts 2 servers)")
    print(f"ratio            : {one / array:.2f}x")
    print(f"same episodes, each once: {same} ({len(b)} in the array run)")
    print(f"runs left in {out}")


if __name__ == "__main__":
    main()
