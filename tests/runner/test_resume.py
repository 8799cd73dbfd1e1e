"""Crash safety and sharding, with real processes writing a real run directory."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import all_lines, emotau, emotau_here, popen

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


def _wait_for_lines(shard: Path, n: int, timeout: float = 60) -> None:
    """Until the shard file holds ``n`` lines (a run mid-way), or ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if shard.exists() and shard.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.01)


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
    _wait_for_lines(shard, 100)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = shard.read_bytes().count(b"\n")
    assert 100 <= killed_at < len(expected), "the process must die mid-run"
    # simulate the crash landing mid-write: a torn, unterminated last line
    with open(shard, "ab") as fh:
        fh.write(b'{"task_id": 1, "variant": "anger", "tri')

    r = emotau_here(*args)
    assert r.returncode == 0, r.stderr
    assert "repaired a truncated last line" in r.stderr
    lines = all_lines(tmp_path / "k")  # every line parses
    done = _finished(lines)
    assert set(done) == expected
    assert max(done.values()) == 1  # no duplicates
    assert len(lines) == len(expected)


def test_infra_errors_are_retried_on_resume(tmp_path) -> None:
    args = _args(tmp_path, "i", 1)
    assert emotau_here(*args).returncode == 0
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
    s = json.loads(emotau_here("summary", str(tmp_path / "i"), "--format", "json").stdout)
    assert sum(row["infra_errors"] for row in s["variants"]) == 3 and not s["complete"]
    r = emotau_here(*args)
    assert r.returncode == 0 and "3 episodes run now" in r.stderr
    s = json.loads(emotau_here("summary", str(tmp_path / "i"), "--format", "json").stdout)
    assert s["complete"] and sum(row["infra_errors"] for row in s["variants"]) == 0


def test_shards_in_parallel_equal_one_process(tmp_path) -> None:
    trials = 10
    single = emotau_here(*_args(tmp_path / "one", "r", trials))
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
    s1 = emotau_here("summary", str(tmp_path / "one" / "r"), "--format", "json").stdout
    s2 = emotau_here("summary", str(tmp_path / "many" / "r"), "--format", "json").stdout
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "run"}  # noqa: E731
    assert strip(s1) == strip(s2)


def test_many_shards_starting_at_once(tmp_path) -> None:
    """Shards that race to create the run directory all succeed and fill one run."""
    for round_ in range(3):
        out = tmp_path / f"r{round_}"
        procs = [popen(*_args(out, "race", 1, "--shard", f"{i}/6")) for i in range(6)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        lines = all_lines(out / "race")
        assert len(_finished(lines)) == len(lines) == 3 * 6


def test_creation_cut_short_is_resumable(tmp_path) -> None:
    (tmp_path / "demo" / "episodes").mkdir(parents=True)
    (tmp_path / "demo" / ".spec.123.456.tmp").write_text("{")
    r = emotau_here("run", "--env", TOY, "--out", str(tmp_path), "--num-trials", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "demo" / "spec.json").read_text())["identity"]["domain"] == "toy"
    assert len(all_lines(tmp_path / "demo")) == 3 * 6


def test_second_writer_of_the_same_shard_is_refused(tmp_path) -> None:
    slow = tmp_path / "slower.toml"
    slow.write_text("[agent.options]\nlatency = 0.05\n[user.options]\nlatency = 0.05\n")
    args = _args(tmp_path, "w", 40, "--config", str(slow))
    first = popen(*args)
    shard = tmp_path / "w" / "episodes" / "shard-00000-of-00001.jsonl"
    deadline = time.time() + 30
    while not shard.exists() and time.time() < deadline:
        time.sleep(0.01)
    second = emotau_here(*args)
    assert second.returncode == 2 and "is being written by another emotau process" in second.stderr
    first.communicate(timeout=120)
    assert first.returncode == 0
    lines = all_lines(tmp_path / "w")
    assert len(lines) == len(_finished(lines)) == 3 * 6 * 40


def test_damaged_lines_are_skipped_and_cut(tmp_path) -> None:
    args = _args(tmp_path, "d", 1)
    assert emotau_here(*args).returncode == 0
    shard = tmp_path / "d" / "episodes" / "shard-00000-of-00001.jsonl"
    good = shard.read_bytes().splitlines(keepends=True)
    # a line that is JSON but not a record, in the middle, and NUL garbage at the end
    shard.write_bytes(b"".join(good[:-1]) + b"3\n" + b'{"task_id": 0}\n' + b"\x00" * 8 + b"\n")
    s = emotau_here("summary", str(tmp_path / "d"), "--format", "json")
    assert s.returncode == 0, s.stderr
    assert json.loads(s.stdout)["finished_episodes"] == len(good) - 1
    r = emotau_here(*args)
    assert r.returncode == 0 and "1 episodes run now" in r.stderr, r.stderr
    assert json.loads(emotau_here("summary", str(tmp_path / "d"), "--format", "json").stdout)[
        "complete"
    ]


def test_new_run_reuses_its_matching_directory(tmp_path) -> None:
    base = _args(tmp_path, "n", 1)
    assert emotau_here(*base).returncode == 0
    changed = [*base, "--num-trials", "2", "--new-run"]  # the last --num-trials wins
    assert emotau_here(*changed).returncode == 0
    assert emotau_here(*changed).returncode == 0  # resumes n-2 instead of creating n-3
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["n", "n-2"]


def test_what_the_hash_covers(tmp_path) -> None:
    vf = tmp_path / "v.toml"
    vf.write_text("[variants.grr]\nemotion = 'anger'\ntext = 'Be cross.'\n")
    base = [
        "run",
        "--env",
        TOY,
        "--out",
        str(tmp_path),
        "--experiment-name",
        "h",
        "--num-trials",
        "1",
        "--quiet",
        "--variants",
        "control,grr",
        "--variants-file",
        str(vf),
    ]
    assert emotau_here(*base, "--task-ids", "0,2").returncode == 0
    # same grid in another order, and a timing-only option: the same run
    cfg = tmp_path / "t.toml"
    cfg.write_text("[agent.options]\nlatency = 0.001\n")
    r = emotau_here(*base, "--task-ids", "2,0", "--config", str(cfg))
    assert r.returncode == 0 and "0 episodes run now" in r.stderr, r.stderr
    # the variant's emotion changes what is measured: refused
    vf.write_text("[variants.grr]\nemotion = 'confusion'\ntext = 'Be cross.'\n")
    r = emotau_here(*base, "--task-ids", "0,2")
    assert r.returncode == 2 and "variants.grr" in r.stderr


def test_workers_fill_one_run(tmp_path) -> None:
    args = [a for a in _args(tmp_path, "wk", 10, "--workers", "3") if a != "--quiet"]
    r = emotau(*args, "--progress", "log")
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "wk" / "episodes").glob("*.jsonl"))
    assert files == [f"shard-0000{i}-of-00003.jsonl" for i in range(3)]
    lines = all_lines(tmp_path / "wk")
    assert len(lines) == len(_finished(lines)) == 3 * 6 * 10
    progress = [x for x in r.stderr.splitlines() if x.startswith("[emotau]")]
    assert progress[-1].startswith("[emotau] 180/180")  # the parent shows the workers' progress
    assert (tmp_path / "wk" / "logs" / "worker-0-of-3.log").exists()


def test_resume_finishes_a_run_from_its_directory_alone(tmp_path) -> None:
    assert emotau_here(*_args(tmp_path, "part", 4, "--shard", "1/3")).returncode == 0
    assert len(all_lines(tmp_path / "part")) == 3 * 6 * 4 // 3
    moved = tmp_path / "elsewhere" / "copy"
    moved.parent.mkdir()
    (tmp_path / "part").rename(moved)  # a run directory can be moved and still resumed
    r = emotau_here("resume", str(moved), "--quiet")
    assert r.returncode == 0, r.stderr
    lines = all_lines(moved)
    assert len(lines) == len(_finished(lines)) == 3 * 6 * 4
    r = emotau_here("resume", str(tmp_path))
    assert r.returncode == 2 and "is not an emotau run" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_run_like_ctrl_c(tmp_path, sig) -> None:
    """What Slurm and Kubernetes send before killing: an orderly stop, a message that says
    how to go on, exit 128 + the signal; every saved line is whole and the resume completes
    the grid (issue 13 item 5)."""
    trials = 40
    args = _args(
        tmp_path, "t", trials, "--config", str(_latency_config(tmp_path)), "--max-concurrency", "8"
    )
    proc = popen(*args)
    shard = tmp_path / "t" / "episodes" / "shard-00000-of-00001.jsonl"
    _wait_for_lines(shard, 20)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "finished episodes are saved" in err
    assert f"emotau: stopped by {signal.Signals(sig).name}" in err
    assert "Traceback" not in err
    saved = shard.read_bytes()
    assert saved.endswith(b"\n") and 20 <= saved.count(b"\n") < 3 * 6 * trials
    r = emotau_here(*args)
    assert r.returncode == 0, r.stderr
    assert len(_finished(all_lines(tmp_path / "t"))) == 3 * 6 * trials


def test_workers_die_with_their_parent(tmp_path) -> None:
    """The parent of --workers 2 killed by PID: its workers stop too (no orphans that keep
    their shards "being written"), and the next start runs at once (issue 13 item 5)."""
    trials = 4
    slow = tmp_path / "slower.toml"
    slow.write_text("[agent.options]\nlatency = 0.05\n[user.options]\nlatency = 0.05\n")
    args = _args(tmp_path, "o", trials, "--config", str(slow), "--workers", "2",
                 "--max-concurrency", "4")  # fmt: skip
    proc = popen(*args)
    files = tmp_path / "o" / "episodes"

    def saved() -> int:
        return sum(f.read_bytes().count(b"\n") for f in files.glob("*.jsonl"))

    deadline = time.time() + 60
    while time.time() < deadline and saved() < 4:
        time.sleep(0.02)
    kids = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(kids) == 2, kids
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_running(k) for k in kids):
        time.sleep(0.1)
    assert not [k for k in kids if _running(k)], "orphaned workers are running"
    assert saved() < 3 * 6 * trials  # they stopped with work left, not because it was done
    r = emotau(*args)  # a subprocess: its workers find the test domain on PYTHONPATH
    assert r.returncode == 0, r.stderr
    assert len(_finished(all_lines(tmp_path / "o"))) == 3 * 6 * trials


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
