"""Plugins from outside emotau, end to end: each kind is an entry point of a distribution
installed in tmp_path (not emotau's own), used by a subprocess ``emotau`` CLI. Runs use
``--workers 2``, so each check also proves that every worker process found the plugin: both
shard files hold records that only the plugin could have produced, from two different pids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from helpers import emotau, install_plugin

PLUGIN = '''
    """A third-party package with one plugin of every kind emotau runs (and a labeller)."""

    import json
    import os
    import subprocess
    from pathlib import Path

    from emotau.analysis.labellers import EmotionLabeller
    from emotau.core import ModelClient
    from emotau.episode import LLMUser, ToolCallingAgent
    from emotau.launch import Scheduler, Submission, record_submission
    from emotau.scripted._models import provider as scripted_provider
    from toydomain import ToyDomain


    def mark(kind):
        return f"[{kind} plugin pid={os.getpid()}]"


    class BlueBank(ToyDomain):
        name = "blue-bank"

        def policy(self):
            return "You are a Blue Bank agent. Confirm before deposits."


    def bank(param):
        """The ``bank`` family: ``bank:blue``."""
        if param != "blue":
            raise ValueError(f"no bank {param!r}")
        return BlueBank()


    class MarkedAgent(ToolCallingAgent):
        name = "marked-agent"

        def build_system_prompt(self, policy, tools):
            return super().build_system_prompt(policy, tools) + "\\n" + mark("agent")


    class MarkedUser(LLMUser):
        name = "marked-user"

        @classmethod
        def prompt_suffix(cls):
            return super().prompt_suffix() + "\\n" + mark("user")


    class Tagged(ModelClient):
        def __init__(self, inner):
            self.inner = inner
            self.synthetic = inner.synthetic

        async def complete(self, request):
            response = await self.inner.complete(request)
            if response.content:
                response.content += " " + mark("provider")
            return response


    def tagged(role, config, domain, settings):
        return Tagged(scripted_provider(role, config, domain, settings))


    class LocalJobs(Scheduler):
        """Writes the plan to $PLAN_FILE; unless a dry run, runs each job here, in turn."""

        name = "local-jobs"

        def submit(self, plan, dry_run=False):
            argv = {i: plan.task_argv(f"{i}/{plan.array}") for i in plan.shards}
            Path(os.environ["PLAN_FILE"]).write_text(json.dumps({
                "array": plan.array, "shards": plan.shards, "options": plan.options,
                "dry_run": dry_run, "argv": argv, "run_dir": str(plan.run_dir),
            }))
            sub = Submission(self.name, [], None, plan.shards, plan.array)
            if dry_run:
                sub.message = f"dry run: {len(argv)} job(s) planned"
                return sub
            for i, cmd in argv.items():
                subprocess.run(cmd, check=True)
                sub.job_ids.append(f"local-{i}")
            record_submission(plan.run_dir, sub)
            sub.message = f"ran {len(argv)} job(s)"
            return sub


    class Shouting(EmotionLabeller):
        """Anger 3 for a message of an even number of characters, nothing for the others."""

        name = "shouting"
        title = "shouting labeller"

        async def label(self, texts, judge, concurrency):
            assert judge is None
            return [("anger", 3) if len(t) % 2 == 0 else ("none", 0) for t in texts]
'''

ENTRY_POINTS = {
    "emotau.domains": {"bank": "emo_testplugins:bank", "toy-plugin": "toydomain:ToyDomain"},
    "emotau.agents": {"marked-agent": "emo_testplugins:MarkedAgent"},
    "emotau.users": {"marked-user": "emo_testplugins:MarkedUser"},
    "emotau.providers": {"tagged": "emo_testplugins:tagged"},
    "emotau.schedulers": {"local-jobs": "emo_testplugins:LocalJobs"},
    "emotau.labellers": {"shouting": "emo_testplugins:Shouting"},
}

#: a small grid: 2 tasks x 2 variants x 1 trial, over two worker processes
GRID = ("--tasks", "2", "--variants", "control,anger", "--num-trials", "1")


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    return install_plugin(tmp_path, "emo-testplugins", ENTRY_POINTS, {"emo_testplugins.py": PLUGIN})


def _run(tmp_path: Path, environ: dict[str, str], *args: str) -> Path:
    r = emotau(
        "run", *args, *GRID, "--workers", "2", "--out", str(tmp_path / "runs"),
        "--experiment-name", "e", "--quiet", cwd=tmp_path, environ=environ,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return tmp_path / "runs" / "e"


def _shards(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each shard file's records; both workers must have written some."""
    files = sorted((run_dir / "episodes").glob("shard-*.jsonl"))
    shards = {f.name: [json.loads(line) for line in f.read_text().splitlines()] for f in files}
    assert sorted(shards) == ["shard-00000-of-00002.jsonl", "shard-00001-of-00002.jsonl"]
    assert all(shards.values()), {k: len(v) for k, v in shards.items()}
    assert sum(map(len, shards.values())) == 4
    for recs in shards.values():
        assert all(r["status"] == "completed" for r in recs), [r["error"] for r in recs]
    return shards


def _pids(shards: dict[str, list[dict[str, Any]]], kind: str, text: Any) -> set[str]:
    """The pid in the plugin's mark, one per shard file and different between them."""
    pids = []
    for name, recs in shards.items():
        found = {m for r in recs for m in re.findall(rf"\[{kind} plugin pid=(\d+)\]", text(r))}
        assert len(found) == 1, (name, found)
        pids.append(found.pop())
    assert len(set(pids)) == 2, pids  # two processes, each with the plugin
    return set(pids)


def _identity(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "spec.json").read_text())["identity"]


def test_domain_plugin(tmp_path, plugin_env) -> None:
    run_dir = _run(tmp_path, plugin_env, "--domain", "bank:blue")  # a family with a parameter
    assert _identity(run_dir)["domain"] == "blue-bank"
    for recs in _shards(run_dir).values():
        assert all(
            r["agent"]["system_prompt"].startswith("You are a Blue Bank agent") for r in recs
        )
    r = emotau("run", "--domain", "bank:red", "--out", str(tmp_path), environ=plugin_env)
    assert r.returncode == 2
    assert "emotau: error: domain 'bank:red' could not be built: ValueError: no bank 'red'" in (
        r.stderr
    )


def test_agent_strategy_plugin(tmp_path, plugin_env) -> None:
    run_dir = _run(
        tmp_path, plugin_env, "--domain", "toy-plugin", "--agent-strategy", "marked-agent"
    )
    assert _identity(run_dir)["agent_strategy"] == "marked-agent"
    shards = _shards(run_dir)
    _pids(shards, "agent", lambda r: r["agent"]["system_prompt"])
    for recs in shards.values():
        assert all(r["agent"]["system_prompt"].startswith("You are a bank agent") for r in recs)


def test_user_strategy_plugin(tmp_path, plugin_env) -> None:
    run_dir = _run(tmp_path, plugin_env, "--domain", "toy-plugin", "--user-strategy", "marked-user")
    assert _identity(run_dir)["user_strategy"] == "marked-user"
    _pids(_shards(run_dir), "user", lambda r: r["user"]["system_prompt"])


def test_model_provider_plugin(tmp_path, plugin_env) -> None:
    config = tmp_path / "exp.toml"
    config.write_text('domain = "toy-plugin"\n\n[agent]\nprovider = "tagged"\n')
    run_dir = _run(tmp_path, plugin_env, "--config", str(config))
    assert _identity(run_dir)["agent"]["provider"] == "tagged"
    shards = _shards(run_dir)

    def said(rec: dict[str, Any]) -> str:
        return " ".join(t["content"] or "" for t in rec["turns"] if t["role"] == "agent")

    _pids(shards, "provider", said)
    for recs in shards.values():  # only the agent's model goes through the plugin
        customer = [t for r in recs for t in r["turns"] if t["role"] == "user"]
        assert customer and all("plugin pid=" not in json.dumps(t) for t in customer)
    bad = tmp_path / "bad.toml"
    bad.write_text('[user]\nprovider = "nope"\n')
    r = emotau("run", "--config", str(bad), "--out", str(tmp_path), environ=plugin_env)
    assert r.returncode == 2
    assert "user model 'scripted' needs the 'nope' provider; allowed: openai, scripted, tagged" in (
        r.stderr
    )


@pytest.mark.slow
def test_scheduler_plugin(tmp_path, plugin_env) -> None:
    plan_file = tmp_path / "plan.json"
    environ = {**plugin_env, "PLAN_FILE": str(plan_file)}
    base = ["submit", "local-jobs", "--domain", "toy-plugin", *GRID, "--out", str(tmp_path)]
    r = emotau(
        *base, "--array", "2", "--dry-run", "-o", "queue=fast", cwd=tmp_path, environ=environ
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dry run: 2 job(s) planned"
    plan = json.loads(plan_file.read_text())
    run_dir = Path(plan["run_dir"])
    assert (plan["array"], plan["shards"], plan["dry_run"]) == (2, [0, 1], True)
    assert plan["options"] == {"queue": "fast"}
    assert plan["argv"]["1"][-5:] == ["emotau", "shard-task", str(run_dir), "--shard", "1/2"]
    assert not list(run_dir.glob("episodes/*.jsonl")) and (run_dir / "spec.json").exists()

    r = emotau(*base, "--array", "2", cwd=tmp_path, environ=environ)  # the jobs run, each a process
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ran 2 job(s)"
    files = sorted(p.name for p in run_dir.glob("episodes/*.jsonl"))
    assert files == ["shard-00000-of-00002.jsonl", "shard-00001-of-00002.jsonl"]
    jobs = json.loads((run_dir / "submit" / "jobs.json").read_text())
    assert [(j["scheduler"], j["job_ids"]) for j in jobs] == [
        ("local-jobs", ["local-0", "local-1"])
    ]

    r = emotau(*base, "--dry-run", cwd=tmp_path, environ=environ)  # --array from jobs.json
    assert r.returncode == 0, r.stderr
    assert json.loads(plan_file.read_text())["array"] == 2

    r = emotau("submit", "nope", "--array", "2", cwd=tmp_path, environ=environ)
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        == "emotau: error: unknown scheduler 'nope'; allowed: local-jobs, ray, slurm"
    )
    r = emotau("submit", "--help", environ=environ)
    assert "local-jobs" in r.stdout and "slurm" in r.stdout


def test_submit_slurm_and_ray_flags_are_unchanged(plugin_env) -> None:
    for name, own in [("slurm", "--partition"), ("ray", "--address")]:
        r = emotau("submit", name, "--help", environ=plugin_env)
        assert r.returncode == 0 and own in r.stdout and "--option" not in r.stdout
    r = emotau("submit", "local-jobs", "--help", environ=plugin_env)
    assert "--option" in r.stdout and "--array" in r.stdout and "--partition" not in r.stdout


def test_emotion_labeller_plugin(tmp_path, plugin_env) -> None:
    pytest.importorskip("pyarrow")
    run_dir = _run(tmp_path, plugin_env, "--domain", "toy-plugin")
    out = tmp_path / "report"
    r = emotau("analyze", str(run_dir), "--labeller", "shouting", "--out", str(out),
               "--bootstrap", "100", environ=plugin_env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    md = (out / "summary.md").read_text()
    assert "## Manipulation check (shouting labeller)" in md
    import pandas as pd

    emotion = pd.read_parquet(out / "emotion.parquet")
    texts = [t["content"] or "" for recs in _shards(run_dir).values() for r in recs
             for t in r["turns"] if t["role"] == "user"]  # fmt: skip
    assert len(emotion) == len(texts) and len(texts) > 0
    shouted = sum(len(t) % 2 == 0 for t in texts)
    assert 0 < shouted < len(texts)  # the check can tell the plugin from the lexicon
    assert (emotion["judge_emotion"] == "anger").sum() == shouted
    assert (emotion["judge_emotion"] == "none").sum() == len(texts) - shouted
    r = emotau("analyze", str(run_dir), "--labeller", "nope", environ=plugin_env)
    assert r.returncode == 2
    assert "unknown emotion labeller 'nope'; allowed: judge, lexicon, shouting" in r.stderr


def test_a_broken_plugin_is_one_line(tmp_path) -> None:
    environ = install_plugin(
        tmp_path, "emo-broken", {"emotau.agents": {"broken": "emo_broken:Agent"}},
        {"emo_broken.py": "import not_a_module_anywhere\n"},
    )  # fmt: skip
    r = emotau("run", "--agent-strategy", "broken", "--out", str(tmp_path), environ=environ)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "emotau: error: cannot load agent strategy 'broken' (emo_broken:Agent (emo-broken)): "
        "ModuleNotFoundError: No module named 'not_a_module_anywhere'"
    )
