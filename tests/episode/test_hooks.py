"""Lifecycle hooks: what they see, where they run, what happens when one fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

import emotau
from emotau.runner._experiment import prepare
from emotau.spec._spec import build_spec
from helpers import TESTS, all_lines
from helpers import emotau as emotau_cli
from hookdemo import Recorder

TOY = "toydomain:ToyDomain"
OLD_RUN = TESTS / "data" / "runs" / "v0.1-hotel"


@pytest.fixture
def recorder():
    Recorder.events.clear()
    yield Recorder.events
    Recorder.events.clear()


def _by_episode(events: list[tuple[Any, ...]]) -> dict[tuple, list[tuple[Any, ...]]]:
    out: dict[tuple, list[tuple[Any, ...]]] = defaultdict(list)
    for ev in events:
        if ev[0] in ("episode_start", "episode_end", "model_call"):
            ctx = ev[1] if ev[0] != "model_call" else ev[1].episode
            out[(ctx.task_id, ctx.variant, ctx.trial)].append(ev)
    return out


def test_a_hook_sees_the_run_every_episode_and_every_model_call(tmp_path, recorder) -> None:
    run = emotau.run(
        {
            "domain": TOY,
            "variants": ["control", "frustration"],
            "num_trials": 1,
            "user_strategy": "verify",  # two user calls per turn, with purposes
            "out": str(tmp_path),
            "hooks": [{"name": "hookdemo:Recorder", "options": {"tag": "t"}}],
        }
    )
    frozen = json.loads((run.path / "spec.json").read_text())
    first, last = recorder[0], recorder[-1]
    assert first[0] == "run_start" and last[0] == "run_end"
    assert first[1].run_dir == run.path and first[1].shard == "0/1"
    assert first[1].spec_hash == frozen["hash"] and first[1].spec["domain"] == TOY
    assert [e[0] for e in recorder].count("run_start") == 1
    written = {(r["task_id"], r["variant"], r["trial"]): r for r in all_lines(run.path)}
    episodes = _by_episode(recorder)
    assert set(episodes) == set(written) and len(written) == 3 * 2
    for key, evs in episodes.items():
        record = written[key]
        assert evs[0][0] == "episode_start" and evs[-1][0] == "episode_end"
        assert [e[0] for e in evs[1:-1]] == ["model_call"] * (len(evs) - 2)
        ctx = evs[0][1]
        assert (ctx.domain, ctx.seed, ctx.run.run_dir) == ("toy", 0, run.path)
        assert evs[-1][2] == record  # the record exactly as written
        calls = [e[1:] for e in evs[1:-1]]
        assert [c.call_index for c, _, _ in calls] == list(range(len(calls)))
        roles = Counter(c.role for c, _, _ in calls)
        assert roles == {r: record["usage"][r]["calls"] for r in ("agent", "user")}
        turns = record["turns"]
        agent_turns = [i for i, t in enumerate(turns) if t["role"] == "agent"]
        agent_calls = [(c, q, r) for c, q, r in calls if c.role == "agent"]
        assert [c.turn_index for c, _, _ in agent_calls] == agent_turns
        for c, request, response in agent_calls:
            turn = turns[c.turn_index]
            assert request.messages[0]["content"] == record["agent"]["system_prompt"]
            assert request.tools and c.purpose is None
            assert [t.name for t in response.tool_calls] == [
                t["name"] for t in turn.get("tool_calls") or []
            ]
            if not response.tool_calls:
                assert response.content == turn["content"]
            # the request is the history as it was then, not as it grew afterwards
            assert len(request.messages) < len(record["agent"]["messages"]) + 1
        for i, turn in enumerate(turns):
            if turn["role"] != "user":
                continue
            mine = [(c, q, r) for c, q, r in calls if c.role == "user" and c.turn_index == i]
            assert [c.purpose for c, _, _ in mine] == [x["purpose"] for x in turn["raw"]]
            assert [r.content for _, _, r in mine] == [x["content"] for x in turn["raw"]]
            replies = [q for c, q, _ in mine if c.purpose == "reply"]
            assert replies and all(
                q.messages[0]["content"] == record["user"]["system_prompt"] for q in replies
            )


def test_judge_calls_made_while_scoring_come_after_the_last_turn(tmp_path, recorder) -> None:
    run = emotau.run(
        domain="toydomain:JudgedToy",
        tasks=1,
        variants=["control"],
        num_trials=1,
        out=str(tmp_path),
        hooks=["hookdemo:Recorder"],
    )
    (record,) = all_lines(run.path)
    judge = [e[1] for e in recorder if e[0] == "model_call" and e[1].role == "judge"]
    assert len(judge) == record["usage"]["judge"]["calls"] >= 1
    assert {(c.turn_index, c.purpose) for c in judge} == {(len(record["turns"]), "nl_assertions")}


def test_hooks_are_not_part_of_the_identity_and_old_runs_resume(tmp_path, recorder) -> None:
    plain = prepare(build_spec({"domain": TOY}))
    hooked = prepare(build_spec({"domain": TOY, "hooks": ["hookdemo:Recorder"]}))
    assert hooked.resolved.hash == plain.resolved.hash
    assert hooked.resolved.identity == plain.resolved.identity
    old = tmp_path / "v0.1-hotel"
    shutil.copytree(OLD_RUN, old)
    r = emotau_cli(
        "run", "--config", str(_old_config(old, tmp_path)), "--hook", "hookdemo:Recorder"
    )
    assert r.returncode == 0 and "0 episodes run now" in r.stderr, r.stderr


def _old_config(old: Path, tmp_path: Path) -> Path:
    """The old run's spec as a config file (hooks added on the command line)."""
    spec = json.loads((old / "spec.json").read_text())["spec"]
    cfg = tmp_path / "old.toml"
    lines = [
        f'experiment_name = "{old.name}"',
        f'out = "{old.parent}"',
        f"tasks = {spec['tasks']}",
        f"num_trials = {spec['num_trials']}",
        f"variants = {json.dumps(spec['variants'])}",
    ]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_a_failing_hook_never_loses_an_episode(tmp_path) -> None:
    base = ["run", "--env", TOY, "--out", str(tmp_path), "--num-trials", "1", "--quiet"]
    assert emotau_cli(*base, "--experiment-name", "plain").returncode == 0
    r = emotau_cli(*base, "--experiment-name", "broken", "--hook", "hookdemo:Broken")
    assert r.returncode == 0, r.stderr
    assert "hooks failed in 18 episodes" in r.stderr
    # logged to the run's log once per hook and method, not once per call
    log = (tmp_path / "broken" / "logs" / "emotau.log").read_text(encoding="utf-8")
    assert log.count("hook 'hookdemo:Broken' failed in on_model_call") == 1
    assert log.count("hook 'hookdemo:Broken' failed in on_episode_end") == 1
    plain, broken = all_lines(tmp_path / "plain"), all_lines(tmp_path / "broken")
    key = lambda r: (r["task_id"], r["variant"], r["trial"])  # noqa: E731
    assert {key(r): r["reward"] for r in broken} == {key(r): r["reward"] for r in plain}
    for rec in broken:
        assert rec["status"] == "completed" and rec["scored"]
        events = Counter(e["event"] for e in rec["hook_errors"])
        assert events == {"on_model_call": rec["usage"]["agent"]["calls"], "on_episode_end": 1}
        assert rec["hook_errors"][-1] == {
            "hook": "hookdemo:Broken",
            "event": "on_episode_end",
            "error": "KeyError: 'no such layer'",
        }
        assert "hook_errors" not in next(p for p in plain if key(p) == key(rec))
    again = emotau_cli(*base, "--experiment-name", "broken", "--hook", "hookdemo:Broken")
    assert again.returncode == 0 and "0 episodes run now" in again.stderr  # all were kept


@pytest.mark.parametrize(
    ("args", "config", "needle"),
    [
        (["--hook", "no-such-hook"], "", "unknown hook 'no-such-hook'; allowed:"),
        (["--hook", "hookdemo:FailsToStart"], "", "hook 'hookdemo:FailsToStart' failed to start: "),
        (
            [],
            '[[hooks]]\nname = "hookdemo:Recorder"\noptions = { colour = "red" }\n',
            "hook 'hookdemo:Recorder': ",
        ),
        ([], 'hooks = ["x", "x"]\n', "field 'hooks': hook 'x' is listed twice"),
        ([], "hooks = [3]\n", "field 'hooks.0'"),
    ],
)
def test_bad_hooks_are_one_line_exit_2(tmp_path, args, config, needle) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(config)
    r = emotau_cli("run", "--env", TOY, "--out", str(tmp_path / "runs"), "-c", str(cfg), *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("emotau: error: ") and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not any(f.read_bytes() for f in (tmp_path / "runs").rglob("*.jsonl"))  # none ran


def test_an_installed_hook_runs_in_every_worker(tmp_path) -> None:
    """A package publishes a hook in `emotau.hooks`; `--workers 2` runs it in both workers."""
    site = tmp_path / "site"
    dist = site / "hookplugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hookplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[emotau.hooks]\nper-episode = hookdemo:PerEpisodeFiles\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS)])}
    args = ["run", "--env", TOY, "--out", str(tmp_path), "--num-trials", "2", "--quiet"]
    args += ["--variants", "control,anger,anxiety", "--workers", "2", "--hook", "per-episode"]
    r = subprocess.run(
        [sys.executable, "-m", "emotau", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "demo"
    records = all_lines(run_dir)
    assert len(records) == 3 * 3 * 2 and not any("hook_errors" in x for x in records)
    out = run_dir / "hook-out"
    started = sorted(p.name for p in out.glob("run-*.txt"))
    assert started == ["run-0-of-2.txt", "run-1-of-2.txt"]
    files = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(files) == {f"{x['task_id']}-{x['variant']}-{x['trial']}" for x in records}
    pids = {(out / name).read_text() for name in started}
    assert {f["pid"] for f in files.values()} == {int(p) for p in pids} and len(pids) == 2
    for x in records:
        info = files[f"{x['task_id']}-{x['variant']}-{x['trial']}"]
        assert info["shard"] == info["record_shard"] == x["shard"]
        assert info["calls"] == x["usage"]["agent"]["calls"] + x["usage"]["user"]["calls"]
    frozen = json.loads((run_dir / "spec.json").read_text())
    assert frozen["spec"]["hooks"] == [{"name": "per-episode", "options": {}}]
