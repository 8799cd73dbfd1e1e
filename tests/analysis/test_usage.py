"""Calls, tokens and cost per role, totalled: in the run's output, `summary` (table and JSON)
and the report; a price per million tokens per role in the config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import all_lines, emotau_here, mock_server

pytest.importorskip("matplotlib")

PRICES = {"agent": (0.15, 0.6), "user": (1.0, 2.5)}  # USD per million tokens, in and out


def _sums(lines: list[dict]) -> dict[str, dict]:
    """The totals recomputed here from every shard line."""
    out: dict[str, dict] = {}
    for rec in lines:
        for role, u in rec["usage"].items():
            if not isinstance(u, dict):
                continue
            t = out.setdefault(role, {"episodes": 0, "calls": 0, "prompt_tokens": 0,
                                      "completion_tokens": 0, "cost_usd": None})  # fmt: skip
            t["episodes"] += 1
            for f in ("calls", "prompt_tokens", "completion_tokens"):
                t[f] += u[f]
            if u.get("cost_usd") is not None:
                t["cost_usd"] = (t["cost_usd"] or 0.0) + u["cost_usd"]
    return out


@pytest.fixture(scope="module")
def priced_run(tmp_path_factory) -> tuple[Path, str]:
    """A run over the mock server with a price for the agent and the user (not the judge)."""
    tmp = tmp_path_factory.mktemp("priced")
    with mock_server() as url:
        cfg = tmp / "exp.toml"
        cfg.write_text(
            f'experiment_name = "priced"\nout = "{tmp}"\ntasks = 3\nnum_trials = 2\n'
            'variants = ["control", "anger"]\n'
            + "".join(
                f'[{role}]\nmodel = "scripted-{role}"\nbase_url = "{url}"\n'
                f"price = {{input = {pin}, output = {pout}}}\n"
                for role, (pin, pout) in PRICES.items()
            )
        )
        r = emotau_here("run", "--config", str(cfg), "--progress", "none")
    assert r.returncode == 0, r.stderr
    return tmp / "priced", r.stdout


def test_totals_are_the_sums_over_the_records(priced_run) -> None:
    run_dir, run_stdout = priced_run
    lines = all_lines(run_dir)
    want = _sums(lines)
    assert set(want) == {"agent", "user"} and want["agent"]["prompt_tokens"] > 0
    data = json.loads(emotau_here("summary", str(run_dir), "--format", "json").stdout)
    got = data["usage"]
    assert list(got) == ["agent", "user"]
    for role, (pin, pout) in PRICES.items():
        for f in ("episodes", "calls", "prompt_tokens", "completion_tokens"):
            assert got[role][f] == want[role][f], (role, f)
        assert got[role]["cost_usd"] == pytest.approx(want[role]["cost_usd"], abs=1e-7)
        by_price = (
            pin * want[role]["prompt_tokens"] + pout * want[role]["completion_tokens"]
        ) / 1e6
        assert got[role]["cost_usd"] == pytest.approx(by_price, rel=1e-5)
    total = sum(t["cost_usd"] for t in want.values())
    assert data["cost_usd"] == pytest.approx(total, abs=1e-7)
    # the table's footer, in `summary` and at the end of `run`
    table = emotau_here("summary", str(run_dir)).stdout
    for out in (" ".join(table.split()), " ".join(run_stdout.split())):
        agent, user = got["agent"], got["user"]
        assert (
            f"usage: agent {agent['calls']:,} calls, {agent['prompt_tokens']:,} + "
            f"{agent['completion_tokens']:,} tokens (prompt + completion)"
        ) in out
        assert f"user {user['calls']:,} calls, {user['prompt_tokens']:,} +" in out
        assert f"total ${total:.4g}" in out


def test_the_report_has_the_usage_table(priced_run, tmp_path) -> None:
    pytest.importorskip("pyarrow")
    run_dir, _ = priced_run
    want = _sums(all_lines(run_dir))
    out = tmp_path / "report"
    r = emotau_here("analyze", str(run_dir), "--out", str(out), "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    csv = pd.read_csv(out / "tables" / "usage.csv").set_index("role")
    assert list(csv.index) == ["agent", "user", "total"]
    for role in ("agent", "user"):
        assert csv.loc[role, "prompt_tokens"] == want[role]["prompt_tokens"]
        assert csv.loc[role, "cost_usd"] == pytest.approx(want[role]["cost_usd"], abs=1e-7)
    assert csv.loc["total", "calls"] == want["agent"]["calls"] + want["user"]["calls"]
    md = (out / "summary.md").read_text()
    assert "## Tokens and cost" in md
    agent_row = next(x for x in md.splitlines() if x.startswith("| agent |"))
    assert f"| {want['agent']['prompt_tokens']:,} |" in agent_row
    assert "Tokens and cost" in (out / "report.html").read_text()


def test_every_attempt_counts_and_scripted_runs_have_tokens(tmp_path) -> None:
    """Offline: the scripted models count tokens, cost nothing; an attempt that a resume
    replaced (an infrastructure error) still counts, since it was paid for."""
    r = emotau_here("run", "--tasks", "2", "--num-trials", "1", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "runs" / "demo"
    shard = next((run_dir / "episodes").glob("shard-*.jsonl"))
    first = json.loads(shard.read_text().splitlines()[0])
    retried = {k: first[k] for k in ("task_id", "variant", "trial")} | {
        "status": "infra_error",
        "usage": {"agent": {"calls": 1, "prompt_tokens": 1000, "completion_tokens": 7}},
    }
    with shard.open("a") as fh:
        fh.write(json.dumps(retried, separators=(",", ":")) + "\n")
    want = _sums(all_lines(run_dir))
    data = json.loads(emotau_here("summary", str(run_dir), "--format", "json").stdout)
    assert data["finished_episodes"] == data["expected_episodes"]  # the extra line is no episode
    assert data["usage"]["agent"]["prompt_tokens"] == want["agent"]["prompt_tokens"]
    assert data["usage"]["agent"]["episodes"] == data["expected_episodes"] + 1
    assert data["usage"]["user"]["completion_tokens"] == want["user"]["completion_tokens"] > 0
    assert data["usage"]["agent"]["cost_usd"] is None and data["cost_usd"] is None
    table = " ".join(emotau_here("summary", str(run_dir)).stdout.split())
    assert f"{want['agent']['prompt_tokens']:,} +" in table and "$" not in table
