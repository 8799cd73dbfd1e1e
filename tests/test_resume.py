"""Crash safety and sharding, with real processes writing a real run directory."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

from helpers import all_lines, emotau, popen

TOY = "toydomain:ToyDomain"
VARIANTS = "control,neutral,frustration,anxiety,anger,confusion"


def _args(out: Path, name: str, trials: int, *extra: str) -> list[str]:
    return [
        "run",
        "--env",
        TOY,
        "--out",
        str(out),
        "--experiment-name",
        name,
        "--num-trials",
        str(trials),
        "--variants",
        VARIANTS,
        "--quiet",
        *extra,
    ]


def _latency_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "slow.toml"
    cfg.write_text("[agent.options]\nlatency = 0.004\n[user.options]\nlatency = 0.004\n")
    return cfg


def _finished(lines: list[dict]) -> Counter:
    return Counter(
        (r["task_id"], r["variant"], r["trial"]) for r in lines if r["status"] == "completed"
    )


def test_killed_run_resumes_to_exact_grid(tmp_path) -> None:
    trials = 60
    expected = {(t, v, k) for t in range(3) for v in VARIANTS.split(",") for k in range(trials)}
    args = _args(
        tmp_path, "k", trials, "--config", str(_latency_config(tmp_path)), "--max-concurrency", "16"
    )
    proc = popen(*args)
    shard = tmp_path / "k" / "episodes" / "shard-00000-of-00001.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if shard.exists() and shard.read_bytes().count(b"\n") >= 100:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = shard.read_bytes().count(b"\n")
    assert 100 <= killed_at < len(expected), "the process must die mid-run"
    # simulate the crash landing mid-write: a torn, unterminated last line
    with open(shard, "ab") as fh:
        fh.write(b'{"task_id": 1, "variant": "anger", "tri')

    r = emotau(*args)
    assert r.returncode == 0, r.stderr
    assert "repaired a truncated last line" in r.stderr
    lines = all_lines(tmp_path / "k")  # every line parses
    done = _finished(lines)
    assert set(done) == expected
    assert max(done.values()) == 1  # no duplicates
    assert len(lines) == len(expected)


def test_infra_errors_are_retried_on_resume(tmp_path) -> None:
    args = _args(tmp_path, "i", 1)
    assert emotau(*args).returncode == 0
    shard = tmp_path / "i" / "episodes" / "shard-00000-of-00001.jsonl"
    lines = [json.loads(x) for x in shard.read_text().splitlines()]
    # turn three finished episodes into infrastructure errors, as a flaky server would
    for rec in lines[:3]:
        rec.update(
            status="infra_error",
            scored=False,
            reward=None,
            success=False,
            termination="infra_error",
            error="HTTP 503",
        )
    shard.write_text("".join(json.dumps(r) + "\n" for r in lines))
    s = json.loads(emotau("summary", str(tmp_path / "i"), "--format", "json").stdout)
    assert sum(row["infra_errors"] for row in s["variants"]) == 3 and not s["complete"]
    r = emotau(*args)
    assert r.returncode == 0 and "3 episodes run now" in r.stderr
    s = json.loads(emotau("summary", str(tmp_path / "i"), "--format", "json").stdout)
    assert s["complete"] and sum(row["infra_errors"] for row in s["variants"]) == 0


def test_shards_in_parallel_equal_one_process(tmp_path) -> None:
    trials = 10
    single = emotau(*_args(tmp_path / "one", "r", trials))
    assert single.returncode == 0, single.stderr
    procs = [popen(*_args(tmp_path / "many", "r", trials, "--shard", f"{i}/3")) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    files = sorted((tmp_path / "many" / "r" / "episodes").glob("*.jsonl"))
    assert [f.name for f in files] == [f"shard-0000{i}-of-00003.jsonl" for i in range(3)]
    one = {
        (r["task_id"], r["variant"], r["trial"]): r["reward"]
        for r in all_lines(tmp_path / "one" / "r")
    }
    many_lines = all_lines(tmp_path / "many" / "r")
    many = {(r["task_id"], r["variant"], r["trial"]): r["reward"] for r in many_lines}
    assert len(many_lines) == len(many) == len(one) == 3 * 6 * trials
    assert many == one  # same episodes, same outcomes
    s1 = emotau("summary", str(tmp_path / "one" / "r"), "--format", "json").stdout
    s2 = emotau("summary", str(tmp_path / "many" / "r"), "--format", "json").stdout
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "run"}  # noqa: E731
    assert strip(s1) == strip(s2)
