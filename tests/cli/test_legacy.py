"""Predecessor command lines: upstream tau-bench's run.py flags, the predecessor launcher's and
the Slurm workflow's USER_MODEL_API_BASE either work with their meaning or get a one-line
message naming emotau's equivalent (docs/taubench.md, "Coming from tau-bench's run.py")."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from helpers import FAST_RETRIES, all_lines, emotau_here, mock_server, mock_stats

TOY = "toydomain:ToyDomain"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _bad(args: list[str], needle: str, tmp_path: Path) -> str:
    r = emotau_here(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emotau: error: "), r.stderr
    assert needle in lines[0], lines[0]
    return lines[0]


def _identity(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "spec.json").read_text())["identity"]


def _spec(*args: str) -> Any:
    """The spec `emotau run ARGS` would run, through click's own parsing (nothing runs)."""
    from emotau.cli import cli
    from emotau.cli._common import spec_from_options

    ctx = cli.commands["run"].make_context("run", list(args))
    return spec_from_options(ctx.params)


QUICK = ["--env", TOY, "--num-trials", "1", "--variants", "control", "--quiet"]


# ------------------------------------------------------------------- the table of equivalents
def test_table_answers_every_flag_it_lists(tmp_path) -> None:
    from emotau.cli._legacy import EQUIVALENTS

    help_text = emotau_here("run", "--help").stdout
    for flag, eq in EQUIVALENTS.items():
        if eq.accepted:
            assert flag in help_text, flag
            continue
        line = _bad(["run", flag, "x"], eq.emotau.split()[0], tmp_path)
        assert "Did you mean" not in line and "No such option" not in line, line
    # the docs show the same table
    docs = (DOCS / "taubench.md").read_text()
    assert "## Coming from tau-bench's run.py" in docs
    for flag in EQUIVALENTS:
        assert f"`{flag}" in docs, flag


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-price", "1.5"], "not available yet: run on your own GPUs with `emotau submit"),
        (["--workers", "4", "--max-price", "2"], "emotau's --workers N means N local processes"),
        (["--agent-llm", "gpt-4o"], "a flag of tau2-bench's tau2 run: in emotau use --model"),
        (["--num-tasks", "3"], "in emotau use --tasks N"),
        (["--save-to", "x"], "in emotau use --experiment-name NAME"),
    ],
)
def test_unknown_predecessor_flags_name_the_equivalent(tmp_path, args, needle) -> None:
    line = _bad(["run", *args], needle, tmp_path)
    assert "--max-steps" not in line  # click's string-distance guess for --max-price
    assert not (tmp_path / "runs").exists()


def test_other_unknown_flags_keep_clicks_message(tmp_path) -> None:
    _bad(["run", "--num-trails", "2"], "No such option", tmp_path)


# ------------------------------------------------------------------------ which tasks, where
def test_log_dir_is_out(tmp_path) -> None:
    r = emotau_here("run", *QUICK, "--log-dir", str(tmp_path / "results"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "results" / "demo" / "spec.json").exists()
    _bad(["run", "--out", "a", "--log-dir", "b"], "give --out or --log-dir, not both", tmp_path)


def test_index_range_and_space_separated_task_ids(tmp_path) -> None:
    def ids(*args: str) -> list[int]:
        name = f"e{len(list(tmp_path.iterdir()))}"
        r = emotau_here(
            "run", *QUICK, "--out", str(tmp_path), "--experiment-name", name, *args, cwd=tmp_path
        )
        assert r.returncode == 0, r.stderr
        return _identity(tmp_path / name)["task_ids"]

    assert ids("--start-index", "1", "--end-index", "3") == [1, 2]
    assert ids("--start-index", "1") == [1, 2]  # the toy domain has tasks 0..2
    assert ids("--start-index", "1", "--end-index", "-1") == [1, 2]  # upstream's default
    assert ids("--end-index", "99") == [0, 1, 2]  # past the last task: to the last, as upstream
    assert ids("--task-ids", "0", "2") == [0, 2]  # run.py's nargs="+"
    assert ids("--task-ids=2", "1") == [1, 2]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--start-index", "3"], "--start-index 3 selects no task: domain"),
        (["--start-index", "2", "--end-index", "1"], "selects no task"),
        (["--start-index", "1", "--task-ids", "1"], "--start-index/--end-index or --tasks"),
        (["--end-index", "2", "--tasks", "1"], "not both"),
        (["--start-index", "-1"], "Invalid value for '--start-index'"),
        (["--end-index", "x"], "Invalid value for '--end-index'"),
        (["--task-ids", "1", "x"], "Got unexpected extra argument (x)"),
    ],
)
def test_bad_index_flags(tmp_path, args, needle) -> None:
    _bad(["run", "--env", TOY, "--out", str(tmp_path / "runs"), *args], needle, tmp_path)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        # upstream tau-bench is not installed here: the domain that --env names is loaded
        (["--env", "retail"], "tau-bench is not installed"),
        (["--environment", "airline"], "tau-bench is not installed"),
        (["--env", "airline", "--task-split", "dev"], "tau-bench airline has no split 'dev'"),
        (["--env", "retail", "--task-split", "dev"], "tau-bench is not installed"),
        (["--env", "retail", "--task-split", "nope"], "tau-bench retail has no split 'nope'"),
        (["--env", "retail", "--domain", "hotel"], "give --domain or --env, not both"),
        (["--task-split", "train"], "--task-split selects the split of a tau-bench or tau2"),
        (["--domain", "tau-bench:retail:dev", "--task-split", "train"], "contradicts"),
    ],
)
def test_env_and_task_split_without_upstream(tmp_path, args, needle) -> None:
    _bad(["run", "--plan", "--out", str(tmp_path / "runs"), *args], needle, tmp_path)


_FAKE_UPSTREAM = {
    "tau_bench/__init__.py": "",
    "tau_bench/envs/base.py": "",
    "tau_bench/envs/user.py": "",
    "tau_bench/envs/__init__.py": """
        from types import SimpleNamespace

        SIZES = {("retail", "test"): 5, ("retail", "train"): 8, ("retail", "dev"): 3,
                 ("airline", "test"): 4}

        def get_env(env_name, user_strategy, user_model, task_split, task_index=None):
            tasks = [
                SimpleNamespace(user_id=f"u{i}", instruction=f"{env_name} {task_split} {i}",
                                actions=[], outputs=[])
                for i in range(SIZES[(env_name, task_split)])
            ]
            return SimpleNamespace(tools_map={}, data={"users": {}}, tools_info=[],
                                   wiki=f"{env_name} policy", terminate_tools=[], tasks=tasks)
    """,
}


@pytest.fixture
def fake_upstream(tmp_path, monkeypatch):
    """A stand-in for upstream tau-bench (not installed here): just enough for `--plan`."""
    from emotau.domains import taubench

    site = tmp_path / "fake-site"
    for rel, text in _FAKE_UPSTREAM.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    yield
    for name in [m for m in sys.modules if m == "tau_bench" or m.startswith("tau_bench.")]:
        del sys.modules[name]
    taubench.upstream_version.cache_clear()


@pytest.mark.parametrize(
    ("args", "plan"),
    [
        (["--env", "retail"], "domain tau-bench:retail, 5 tasks"),
        (["--env", "airline"], "domain tau-bench:airline, 4 tasks"),
        (["--env", "retail", "--task-split", "train"], "domain tau-bench:retail:train, 8 tasks"),
        (["--task-split", "dev", "--env", "retail"], "domain tau-bench:retail:dev, 3 tasks"),
        (["--env", "retail", "--task-split", "test"], "domain tau-bench:retail, 5 tasks"),
        (
            ["--domain", "tau-bench:retail", "--task-split", "dev"],
            "domain tau-bench:retail:dev, 3 tasks",
        ),
        (
            ["--env", "retail", "--task-split", "train", "--start-index", "2", "--end-index", "7"],
            "domain tau-bench:retail:train, 5 tasks",
        ),
        (["--env", "retail", "--start-index", "3"], "domain tau-bench:retail, 2 tasks"),
    ],
)
def test_tau_bench_selection_flags(tmp_path, fake_upstream, args, plan) -> None:
    r = emotau_here("run", "--plan", "--variants", "control", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"plan: {plan} x 1 arms" in r.stdout, r.stdout


def test_submit_run_dir_refuses_them_as_it_refuses_their_equivalents(tmp_path) -> None:
    assert emotau_here("run", *QUICK, "--out", str(tmp_path), cwd=tmp_path).returncode == 0
    for flag, value in (("--env", "retail"), ("--log-dir", "x"), ("--start-index", "1")):
        _bad(
            ["submit", "slurm", "--run-dir", str(tmp_path / "demo"), "--array", "2", flag, value],
            f"--run-dir uses the run's frozen spec: drop {flag}",
            tmp_path,
        )


# --------------------------------------------------------------------------------- shuffle
def _order(run_dir: Path) -> list[tuple[int, str, int]]:
    return [(x["task_id"], x["variant"], x["trial"]) for x in all_lines(run_dir)]


def test_shuffle_orders_each_trial_randomly_from_the_seed(tmp_path) -> None:
    base = ["--env", TOY, "--out", str(tmp_path), "--variants", "control,anger,anxiety"]
    base += ["--num-trials", "2", "--max-concurrency", "1", "--quiet"]

    def run(name: str, *extra: str) -> list[tuple[int, str, int]]:
        r = emotau_here("run", *base, "--experiment-name", name, *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return _order(tmp_path / name)

    plain = run("plain")
    shuffled = run("shuffled", "--shuffle", "1")
    assert run("again", "--shuffle") == shuffled  # the same seed: the same order
    assert run("other-seed", "--shuffle", "--seed", "1") != shuffled
    assert run("off", "--shuffle", "0") == plain
    assert shuffled != plain and sorted(shuffled) == sorted(plain)
    assert [k[2] for k in shuffled] == sorted(k[2] for k in shuffled)  # trial by trial
    # the order is not part of what a run measures: same identity, same results
    assert _identity(tmp_path / "shuffled") == _identity(tmp_path / "plain")
    rewards = {
        name: {(x["task_id"], x["variant"], x["trial"]): x["reward"] for x in all_lines(p)}
        for name, p in (("a", tmp_path / "plain"), ("b", tmp_path / "shuffled"))
    }
    assert rewards["a"] == rewards["b"]
    spec = json.loads((tmp_path / "shuffled" / "spec.json").read_text())["spec"]
    assert spec["shuffle"] is True  # kept for resume


@pytest.mark.parametrize("value", [["2"], ["yes"], ["--shuffle=3"]])
def test_bad_shuffle(tmp_path, value) -> None:
    args = value if value[0].startswith("--") else ["--shuffle", *value]
    _bad(["run", "--env", TOY, *args], "Invalid value for '--shuffle'", tmp_path)


# ------------------------------------------------------------------------------- providers
def test_provider_flags_set_each_roles_endpoint(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("USER_MODEL_API_BASE", raising=False)
    s = _spec("--model", "m", "--model-provider", "together_ai")
    assert s.agent.base_url == "https://api.together.xyz/v1"
    assert s.agent.api_key_env == "TOGETHERAI_API_KEY"
    assert s.user.base_url is None and s.user.api_key_env is None

    s = _spec("--model", "m", "--user-model", "u", "--user-model-provider", "anthropic")
    assert s.agent.base_url is None
    assert (s.user.base_url, s.user.api_key_env) == (
        "https://api.anthropic.com/v1/",
        "ANTHROPIC_API_KEY",
    )
    s = _spec("--model", "m", "--model-provider", "openai")  # the OpenAI API, as before
    assert (s.agent.base_url, s.agent.api_key_env) == (None, None)

    # --platform: every role without a provider flag of its own
    s = _spec(
        "--model", "m", "--user-model", "u", "--platform", "openrouter",
        "--model-provider", "groq",
    )  # fmt: skip
    assert s.agent.base_url == "https://api.groq.com/openai/v1"
    assert s.user.base_url == "https://openrouter.ai/api/v1"
    assert s.judge.base_url is None  # the judge stays the scripted model

    # flags and the config win over the provider's URL; --api-key-env over its variable
    s = _spec(
        "--model", "m", "--model-provider", "mistral", "--agent-base-url", "http://h:1/v1",
        "--api-key-env", "MY_KEY",
    )  # fmt: skip
    assert (s.agent.base_url, s.agent.api_key_env) == ("http://h:1/v1", "MY_KEY")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[agent]\nmodel = "m"\nbase_url = "http://gpu:8000/v1"\n')
    s = _spec("--config", str(cfg), "--model-provider", "vllm")
    assert s.agent.base_url == "http://gpu:8000/v1"
    s = _spec("--model", "m", "--model-provider", "hosted_vllm", "--base-url", "http://g:2/v1")
    assert (s.agent.base_url, s.agent.api_key_env) == ("http://g:2/v1", None)


def test_provider_key_variable_is_checked_through_the_cli(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TOGETHERAI_API_KEY", raising=False)
    _bad(
        ["run", "--plan", "--model", "m", "--model-provider", "together_ai"],
        "environment variable 'TOGETHERAI_API_KEY' (api_key_env) is not set",
        tmp_path,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "m", "--model-provider", "bedrock"], "--model-provider 'bedrock' is not one"),
        (["--user-model-provider", "vertex_ai"], "give --user-base-url URL and --api-key-env"),
        (["--platform", "vllm-completion"], "emotau uses the chat completions API"),
        (
            ["--model", "m", "--model-provider", "vllm"],
            "--model-provider vllm: the agent model 'm' runs on a server of your own; give its "
            "address with --agent-base-url",
        ),
        (["--user-model", "u", "--platform", "vllm-chat"], "or USER_MODEL_API_BASE"),
    ],
)
def test_bad_providers(tmp_path, monkeypatch, args, needle) -> None:
    monkeypatch.delenv("USER_MODEL_API_BASE", raising=False)
    _bad(["run", "--plan", *args], needle, tmp_path)


# ---------------------------------------------------------------------- USER_MODEL_API_BASE
def test_user_model_api_base_is_the_users_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("USER_MODEL_API_BASE", "http://user-node:8001/v1")
    assert _spec("--user-model", "u").user.base_url == "http://user-node:8001/v1"
    assert _spec("--user-model", "u").agent.base_url is None
    flagged = _spec("--user-model", "u", "--user-base-url", "http://flag:1/v1")
    assert flagged.user.base_url == "http://flag:1/v1"
    assert _spec("--base-url", "http://all:1/v1").user.base_url == "http://all:1/v1"
    cfg = tmp_path / "c.toml"
    cfg.write_text('[user]\nmodel = "u"\nbase_url = "http://cfg:1/v1"\n')
    assert _spec("--config", str(cfg)).user.base_url == "http://cfg:1/v1"
    # the user's own-server provider is satisfied by it
    assert _spec("--user-model", "u", "--platform", "vllm").user.base_url == (
        "http://user-node:8001/v1"
    )
    assert "USER_MODEL_API_BASE" in emotau_here("run", "--help").stdout
    monkeypatch.setenv("USER_MODEL_API_BASE", "user-node:8001")
    _bad(["run", "--plan"], "USER_MODEL_API_BASE='user-node:8001' must look like", tmp_path)


def test_user_model_api_base_runs_against_a_server(tmp_path, monkeypatch) -> None:
    with mock_server("--oracle-domains", TOY) as url:
        monkeypatch.setenv("USER_MODEL_API_BASE", url)
        r = emotau_here(
            "run", *QUICK, "--out", str(tmp_path), "--config", str(FAST_RETRIES),
            "--user-model", "scripted-user", "--user-model-provider", "vllm",
            cwd=tmp_path,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        served = mock_stats(url)["requests"]
    lines = all_lines(tmp_path / "demo")
    assert len(lines) == 3 and all(x["status"] != "infra_error" for x in lines)
    assert served >= sum(x["usage"]["user"]["calls"] for x in lines) > 0
    spec = json.loads((tmp_path / "demo" / "spec.json").read_text())["spec"]
    assert spec["user"]["base_url"] == url


# -------------------------------------------------------------------------------- few-shot
def _displays(path: Path, n: int) -> list[str]:
    texts = [f"user: example question {i}\nassistant: example answer {i}" for i in range(n)]
    path.write_text("".join(json.dumps({"messages_display": t}) + "\n" for t in texts))
    return texts


def test_few_shot_agent(tmp_path) -> None:
    texts = _displays(tmp_path / "shots.jsonl", 6)
    args = [
        "run", "--env", TOY, "--out", str(tmp_path), "--variants", "control,anger",
        "--num-trials", "2", "--agent-strategy", "few-shot", "--quiet",
        "--few-shot-displays-path", "shots.jsonl", "--few-shot-examples", "2",
    ]  # fmt: skip
    r = emotau_here(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = all_lines(tmp_path / "demo")
    assert len(lines) == 12 and all(x["status"] != "infra_error" for x in lines)
    chosen: dict[tuple[int, int], list[str]] = {}
    for x in lines:
        prompt = x["agent"]["system_prompt"]
        assert "# Example conversations" in prompt and "## Example 2" in prompt
        shown = [t for t in texts if t in prompt]
        assert len(shown) == 2
        # every variant of a task and trial sees the same examples
        assert chosen.setdefault((x["task_id"], x["trial"]), shown) == shown
    assert len({tuple(v) for v in chosen.values()}) > 1  # not the same two everywhere
    ident = _identity(tmp_path / "demo")
    assert ident["agent_strategy"] == "few-shot"
    assert ident["agent_options"]["displays"] == 6 and ident["agent_options"]["examples"] == 2
    # other displays are another experiment; the file's place is not
    _displays(tmp_path / "shots.jsonl", 7)
    _bad(args, "agent_options.digest", tmp_path)


def test_runs_without_agent_options_keep_their_identity(tmp_path) -> None:
    r = emotau_here("run", *QUICK, "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "agent_options" not in _identity(tmp_path / "demo")


def test_few_shot_from_a_config_file(tmp_path) -> None:
    (tmp_path / "cfg").mkdir()
    _displays(tmp_path / "cfg" / "shots.jsonl", 5)
    cfg = tmp_path / "cfg" / "exp.toml"
    cfg.write_text(
        f'domain = "{TOY}"\nagent_strategy = "few-shot"\nnum_trials = 1\n'
        'variants = ["control"]\n[agent_options]\ndisplays_path = "shots.jsonl"\n'
    )
    r = emotau_here("run", "--config", str(cfg), "--out", str(tmp_path), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _identity(tmp_path / "demo")["agent_options"]["examples"] == 5  # upstream's default


@pytest.mark.parametrize(
    ("lines", "args", "needle"),
    [
        (None, [], "cannot read few-shot displays file"),
        ("", [], "has no displays"),
        ('{"messages_display": "a"}\nnot json\n', [], "line 2: not JSON"),
        ('{"other": "a"}\n', [], 'line 1: expected an object with a non-empty "messages_display"'),
        ('"a"\n"b"\n', [], "has 2 displays, fewer than the 5 examples asked for"),
        ('"a"\n', ["--few-shot-examples", "0"], "Invalid value for '--few-shot-examples'"),
    ],
)
def test_bad_displays(tmp_path, lines, args, needle) -> None:
    f = tmp_path / "d.jsonl"
    if lines is not None:
        f.write_text(lines)
    _bad(
        ["run", "--env", TOY, "--agent-strategy", "few-shot", "--few-shot-displays-path",
         str(f), "--out", str(tmp_path / "runs"), *args],
        needle,
        tmp_path,
    )  # fmt: skip
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--agent-strategy", "few-shot"], "agent strategy 'few-shot' needs a displays file"),
        (["--few-shot-displays-path", "d.jsonl"], "is for --agent-strategy few-shot"),
        (["--agent-strategy", "react", "--few-shot-examples", "2"], "is for --agent-strategy"),
    ],
)
def test_few_shot_flags_belong_together(tmp_path, args, needle) -> None:
    _bad(["run", "--env", TOY, *args], needle, tmp_path)


def test_agent_options_of_other_strategies_are_refused(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'domain = "{TOY}"\n[agent_options]\nexamples = 3\n')
    _bad(
        ["run", "--config", str(cfg)],
        "agent strategy 'tool-calling' takes no agent_options",
        tmp_path,
    )


def test_doctor_probes_a_few_shot_agents_tool_calls(tmp_path) -> None:
    _displays(tmp_path / "shots.jsonl", 5)
    with mock_server("--oracle-domains", TOY) as url:
        r = emotau_here(
            "doctor", "--base-url", url, "--model", "scripted-agent", "--user-model",
            "scripted-user", "--env", TOY, "--agent-strategy", "few-shot",
            "--few-shot-displays-path", str(tmp_path / "shots.jsonl"), "--format", "json",
            cwd=tmp_path,
        )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    agent = next(x for x in json.loads(r.stdout) if x["role"] == "agent")
    checks = {c["check"]: c["status"] for c in agent["checks"]}
    assert checks.get("tools (auto)") == "ok", checks
