from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")])
    e.pop("COLUMNS", None)
    return e


def emotau(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emotau", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(),
        timeout=timeout,
    )


def popen(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "emotau", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env(),
    )


def all_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every line of every shard file, parsed (fails the test if one does not parse)."""
    out = []
    for f in sorted((run_dir / "episodes").glob("shard-*.jsonl")):
        data = f.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{f} ends with a partial line"
        out.extend(json.loads(line) for line in data.splitlines())
    return out


@contextlib.contextmanager
def mock_server(*args: str) -> Iterator[str]:
    """A real `emotau mock-server` process on a free port; yields its base URL (.../v1)."""
    from emotau.scripted._mockserver import spawn

    with spawn(*args, env=env()) as server:
        yield server.url


def mock_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as r:
        return json.loads(r.read())


def run_one_episode(
    domain: Any,
    task: Any,
    *,
    variant: str = "control",
    agent: Any = None,
    user: Any = None,
    judge: Any = None,
    user_strategy: str = "llm",
    max_steps: int = 30,
) -> dict[str, Any]:
    """One episode in process (scripted oracle agent and scripted user unless given); its
    record as the runner writes it (``EpisodeRecord.to_dict()``)."""
    import asyncio

    from emotau.episode._agents import AGENT_STRATEGIES
    from emotau.episode._engine import EpisodeSetup, run_episode
    from emotau.episode._users import USER_STRATEGIES
    from emotau.episode._variants import VariantLibrary
    from emotau.scripted._models import ScriptedAgent, ScriptedUser

    setup = EpisodeSetup(
        domain=domain,
        task=task,
        variant=VariantLibrary.default().select(variant),
        trial=0,
        seed=0,
        agent_client=agent or ScriptedAgent(domain, {"skill": 1.0}),
        user_client=user or ScriptedUser(domain),
        agent_strategy=AGENT_STRATEGIES.get("tool-calling"),
        user_strategy=USER_STRATEGIES.get(user_strategy),
        max_steps=max_steps,
        judge_client=judge,
    )
    return asyncio.run(run_episode(setup)).to_dict()
