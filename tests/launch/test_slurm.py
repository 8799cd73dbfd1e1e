"""`emotau submit slurm` against a real single-node Slurm (scripts/slurm-local.sh).

`.ci/run` starts the cluster and sets EMOTAU_SLURM_ENV to its env.sh. Without it, the module
starts its own cluster when the Slurm daemons are installed and this is root; otherwise it
is skipped, except on CI (CI=true), where a Slurm that cannot start is a failure.
Every job here starts its own "vLLM" (tests/fake_vllm_mock.py: emotau's mock server on
vLLM's command line) for the agent and the user, so the episodes take real time and the
jobs can be watched and killed while they run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import TESTS, all_lines

pytestmark = pytest.mark.slurm

ROOT = TESTS.parent
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
GRID = ["--tasks", "4", "--num-trials", "1", "--variants", "control,anger"]  # 8 episodes
SERVED = [
    "--model", "scripted-agent", "--user-model", "scripted-user",
    "--base-url", "http://127.0.0.1:9/v1",  # replaced in each job by its own servers
    "--max-concurrency", "1",
]  # fmt: skip
SERVE_FLAGS = [
    "--serve-agent", "--serve-user", "--serve-tool-call-parser", "hermes",
    "--vllm-command", f"{sys.executable} {TESTS / 'fake_vllm_mock.py'} serve",
    "--serve-timeout", "60",
]  # fmt: skip


def _sourced(env_sh: Path) -> dict[str, str]:
    out = subprocess.run(
        ["bash", "-c", f"source {env_sh} && env -0"], capture_output=True, check=True
    ).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[dict[str, str]]:
    given = os.environ.get("EMOTAU_SLURM_ENV")
    if given:
        yield _sourced(Path(given))
        return
    if os.environ.get("EMOTAU_SLURM_UNAVAILABLE"):  # .ci/run could not fetch the packages
        pytest.skip(f"NO REAL SLURM TESTED: {os.environ['EMOTAU_SLURM_UNAVAILABLE']}")
    why = None
    if shutil.which("slurmctld") is None or shutil.which("slurmd") is None:
        why = "Slurm is not installed (scripts/slurm-local.sh up DIR installs and starts it)"
    elif os.geteuid() != 0:
        why = "starting a local Slurm needs root"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test against a real Slurm: {why}")
        pytest.skip(why)
    d = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(["bash", str(SCRIPT), "up", str(d)], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"local Slurm did not start: {up.stderr[-2000:]}")
    try:
        yield _sourced(d / "env.sh")
    finally:
        subprocess.run(["bash", str(SCRIPT), "down", str(d)], capture_output=True)


def sl(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    full = dict(env, PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]))
    full.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "emotau", *args],
        capture_output=True, text=True, env=full, timeout=timeout,
    )  # fmt: skip


def slurm_cmd(env: dict[str, str], *args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60).stdout


def active(env: dict[str, str], job: str) -> dict[int, str]:
    """Array task -> state, for the tasks still queued or running."""
    out = slurm_cmd(env, "squeue", "-h", "-r", "-j", job, "-o", "%K|%T")
    return {int(k): s for k, s in (line.split("|") for line in out.split() if "|" in line)}


def wait_idle(env: dict[str, str], job: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while active(env, job):
        assert time.time() < deadline, f"job {job} still active: {active(env, job)}"
        time.sleep(0.5)


def status(env: dict[str, str], run: Path) -> dict:
    return json.loads(sl(env, "status", str(run), "--format", "json").stdout)


def episodes_exactly_once(run: Path, n: int = 8) -> None:
    finished = [
        (r["task_id"], r["variant"], r["trial"])
        for r in all_lines(run)
        if r["status"] == "completed"
    ]
    assert len(finished) == len(set(finished)) == n, sorted(finished)


def submit(env: dict[str, str], out: Path, name: str, *extra: str) -> str:
    r = sl(env, "submit", "slurm", "--out", str(out), "--experiment-name", name, *GRID, *SERVED,
           "--array", "4", *SERVE_FLAGS, *extra)  # fmt: skip
    assert r.returncode == 0, r.stderr
    jobs = json.loads((out / name / "submit" / "jobs.json").read_text())
    return jobs[-1]["job_ids"][0]


# --------------------------------------------------------------------------- tests
def test_array_completes_and_status_follows_it(slurm, tmp_path) -> None:
    env = dict(slurm, FAKE_VLLM_LATENCY="0.05")
    job = submit(env, tmp_path, "arr")
    run = tmp_path / "arr"
    seen: list[tuple[int, set[str]]] = []
    deadline = time.time() + 240
    while True:
        st = status(env, run)
        seen.append((st["done"], {s["state"] for s in st["shards"]}))
        if st["complete"]:
            break
        assert time.time() < deadline, seen[-5:]
        time.sleep(0.5)
    wait_idle(env, job)
    # status saw the run while it ran: shards not started or running, part of it done
    assert seen[0][0] < 8 and ("not started" in seen[0][1] or "running" in seen[0][1])
    assert any(0 < done < 8 for done, _ in seen) or any("running" in s for _, s in seen)
    episodes_exactly_once(run)
    st = status(env, run)
    assert [s["state"] for s in st["shards"]] == ["done"] * 4
    assert sorted(p.name for p in (run / "episodes").iterdir()) == [
        f"shard-0000{i}-of-00004.jsonl" for i in range(4)
    ]
    logs = list((run / "submit" / "logs").glob(f"{job}_*.out"))
    assert len(logs) == 4
    assert list((run / "submit" / "logs").glob("vllm-agent-*.log"))  # each job served its models
    r = sl(env, "summary", str(run))
    assert r.returncode == 0 and "8/8 episodes finished" in r.stdout
    assert sl(env, "analyze", str(run)).returncode == 0


def test_killed_tasks_are_resubmitted_and_nothing_is_duplicated(slurm, tmp_path) -> None:
    env = dict(slurm, FAKE_VLLM_LATENCY="0.2")  # ~1-2 s per episode: time to kill one
    job = submit(env, tmp_path, "kill", "--max-parallel", "1")
    run = tmp_path / "kill"
    shard0 = run / "episodes" / "shard-00000-of-00004.jsonl"
    deadline = time.time() + 120
    while not (shard0.exists() and shard0.read_bytes().count(b"\n") >= 1):
        assert time.time() < deadline, "task 0 never wrote an episode"
        time.sleep(0.2)
    # while it runs, a second plain submission or another split would run episodes twice
    again = sl(env, "submit", "slurm", "--run-dir", str(run), "--array", "4")
    assert again.returncode == 2 and "still queued or running" in again.stderr, again.stderr
    other = sl(env, "submit", "slurm", "--run-dir", str(run), "--array", "2", "--resubmit-failed")
    assert other.returncode == 2 and "would overlap" in other.stderr, other.stderr
    slurm_cmd(env, "scancel", f"{job}_0", f"{job}_3")  # one running mid-shard, one pending
    wait_idle(env, job)
    st = status(env, run)
    states = {s["name"]: s["state"] for s in st["shards"]}
    assert states["1/4"] == states["2/4"] == "done"
    assert states["0/4"] != "done" and states["3/4"] != "done", states
    r = sl(env, "submit", "slurm", "--run-dir", str(run), "--resubmit-failed", *SERVE_FLAGS)
    assert r.returncode == 0, r.stderr
    jobs = json.loads((run / "submit" / "jobs.json").read_text())
    assert jobs[-1]["shards"] == [0, 3] and jobs[-1]["array"] == 4
    script = Path(jobs[-1]["script"]).read_text()
    assert "#SBATCH --array=0,3\n" in script
    wait_idle(env, jobs[-1]["job_ids"][0])
    episodes_exactly_once(run)
    assert status(env, run)["complete"]
    again = sl(env, "submit", "slurm", "--run-dir", str(run), "--resubmit-failed")
    assert "nothing to resubmit" in again.stdout


def test_slurm_refusing_the_job_is_one_line(slurm, tmp_path) -> None:
    r = sl(slurm, "submit", "slurm", "--out", str(tmp_path), "--experiment-name", "refused",
           *GRID, "--array", "2", "--partition", "nosuch")  # fmt: skip
    assert r.returncode == 2
    assert "Slurm refused the job" in r.stderr and "invalid partition" in r.stderr.lower()
    errors = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("emotau: error: Slurm refused"), errors
