"""Real models over real HTTP: emotau's OpenAI-compatible client against the mock server."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emotau.core._chat import ChatRequest, RetryBudget
from emotau.core._errors import InfraError
from emotau.models._config import ModelConfig, RetryConfig
from emotau.models._openai import ClientSettings, OpenAIClient
from helpers import all_lines, emotau, emotau_here, mock_server, mock_stats

pytest.importorskip("aiohttp")

TASKS = "0,1,2,3,4,5,6,7,8,9,10,11"


def _config(
    tmp_path: Path,
    url: str,
    agent: str = "scripted-agent",
    timeout: float = 2.0,
    budget: int = 20,
    attempts: int = 6,
    extra: str = "",
) -> Path:
    cfg = tmp_path / f"cfg-{agent}-{budget}.toml"
    cfg.write_text(
        f'[agent]\nmodel = "{agent}"\nbase_url = "{url}"\ntimeout = {timeout}\n{extra}'
        f'[user]\nmodel = "scripted-user"\nbase_url = "{url}"\ntimeout = {timeout}\n'
        f"[retry]\nbase_delay = 0.02\nmax_delay = 0.2\nepisode_budget = {budget}\n"
        f"max_attempts = {attempts}\n"
    )
    return cfg


def _rewards(run_dir: Path) -> dict[tuple, float | None]:
    return {
        (r["task_id"], r["variant"], r["trial"]): r["reward"]
        for r in all_lines(run_dir)
        if r["status"] == "completed"
    }


def test_faults_never_change_a_score_and_resume_finishes(tmp_path) -> None:
    """5% 500s, 2% hangs, 2% malformed tool JSON, 1% empty replies (the issue's mix)."""
    base = ["run", "--task-ids", TASKS, "--num-trials", "2", "--quiet", "--out", str(tmp_path)]
    with mock_server("--skill", "1.0") as clean:
        r = emotau_here(
            *base, "--config", str(_config(tmp_path, clean)), "--experiment-name", "clean"
        )
        assert r.returncode == 0, r.stderr
    faults = [
        "--skill",
        "1.0",
        "--error-rate",
        "0.05",
        "--timeout-rate",
        "0.02",
        "--hang-seconds",
        "3",
        "--malformed-rate",
        "0.02",
        "--empty-rate",
        "0.01",
    ]
    with mock_server(*faults) as url:
        # a stingy retry budget first, so some episodes end as infrastructure errors
        stingy = _config(tmp_path, url, timeout=0.5, budget=0, attempts=2)
        r = emotau_here(*base, "--config", str(stingy), "--experiment-name", "faulty")
        assert r.returncode == 4 and "emotau resume" in r.stderr, r.stderr  # missing episodes
        lines = all_lines(tmp_path / "faulty")
        infra = [x for x in lines if x["status"] == "infra_error"]
        assert infra, "the stingy budget should leave some infrastructure errors"
        assert all(x["reward"] is None and not x["scored"] for x in infra)
        assert all(x["scored"] for x in lines if x["status"] == "completed")
        # resume with a normal budget (retry settings are not part of the spec's identity)
        generous = _config(tmp_path, url, timeout=0.5, budget=30)
        r = emotau_here(*base, "--config", str(generous), "--experiment-name", "faulty")
        assert r.returncode == 0, r.stderr
        stats = mock_stats(url)
    assert set(stats["faults"]) == {"http_500", "timeout", "malformed", "empty"}
    clean_rewards = _rewards(tmp_path / "clean")
    faulty_rewards = _rewards(tmp_path / "faulty")
    assert len(clean_rewards) == 12 * 6 * 2
    assert faulty_rewards == clean_rewards  # no score moved because of the infrastructure
    s = json.loads(emotau_here("summary", str(tmp_path / "faulty"), "--format", "json").stdout)
    assert s["complete"] and s["synthetic"]
    retried = [x for x in all_lines(tmp_path / "faulty") if x.get("usage", {}).get("retries")]
    assert retried  # retries happened and were recorded


def test_doctor_flags_a_model_that_never_calls_tools(tmp_path) -> None:
    with mock_server() as url:
        r = emotau_here(
            "doctor",
            "--base-url",
            url,
            "--model",
            "scripted-agent-notools",
            "--user-model",
            "scripted-user",
            "--format",
            "json",
        )
        assert r.returncode == 1, r.stderr  # a failing verdict
        agent = next(x for x in json.loads(r.stdout) if x["role"] == "agent")
        assert agent["verdict"] == "fail"
        assert any(
            "0 of 5 probes called a tool under auto: use --tool-choice required" in f
            for f in agent["fixes"]
        )
        checks = {c["check"]: c["status"] for c in agent["checks"]}
        assert checks["tools (required)"] == "ok"
        good = emotau_here(
            "doctor",
            "--base-url",
            url,
            "--model",
            "scripted-agent",
            "--user-model",
            "scripted-user",
            "--format",
            "json",
        )
        assert good.returncode == 0, good.stdout
        assert {x["role"]: x["verdict"] for x in json.loads(good.stdout)} == {
            "agent": "ok",
            "user": "ok",
        }
        text = emotau_here(
            "doctor",
            "--base-url",
            url,
            "--model",
            "scripted-agent-textcalls",
            "--user-model",
            "scripted-user",
            "--format",
            "json",
        )
        agent = next(x for x in json.loads(text.stdout) if x["role"] == "agent")
        assert agent["verdict"] == "warn" and "as text" in json.dumps(agent)
        think = emotau_here(
            "doctor",
            "--base-url",
            url,
            "--model",
            "scripted-agent-think",
            "--user-model",
            "scripted-user",
            "--format",
            "json",
        )
        agent = next(x for x in json.loads(think.stdout) if x["role"] == "agent")
        assert any(c["check"] == "reasoning" and c["status"] == "warn" for c in agent["checks"])


def test_tool_choice_required_rescues_the_no_tools_model(tmp_path) -> None:
    base = [
        "run",
        "--task-ids",
        TASKS,
        "--num-trials",
        "1",
        "--variants",
        "control",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    with mock_server("--skill", "1.0") as url:
        cfg = _config(tmp_path, url, agent="scripted-agent-notools")
        r = emotau_here(*base, "--config", str(cfg), "--experiment-name", "auto")
        assert r.returncode == 0, r.stderr
        r = emotau_here(
            *base, "--config", str(cfg), "--experiment-name", "req", "--tool-choice", "required"
        )
        assert r.returncode == 0, r.stderr
    auto = json.loads(emotau_here("summary", str(tmp_path / "auto"), "--format", "json").stdout)
    req = json.loads(emotau_here("summary", str(tmp_path / "req"), "--format", "json").stdout)
    assert auto["variants"][0]["success_rate"] < 0.5
    assert req["variants"][0]["success_rate"] == 1.0
    lines = all_lines(tmp_path / "req")
    said = [
        t for x in lines for t in x["turns"] if t["role"] == "agent" and not t.get("tool_calls")
    ]
    assert said  # the agent talked through the respond tool
    msgs = [m for x in lines for m in x["agent"]["messages"]]
    assert any(m.get("role") == "tool" and m.get("name") == "respond" for m in msgs)


def test_text_tool_calls_are_recovered_and_flagged(tmp_path) -> None:
    with mock_server("--skill", "1.0") as url:
        cfg = _config(tmp_path, url, agent="scripted-agent-textcalls")
        r = emotau_here(
            "run",
            "--task-ids",
            "0,1,2",
            "--num-trials",
            "1",
            "--variants",
            "control",
            "--quiet",
            "--out",
            str(tmp_path),
            "--config",
            str(cfg),
        )
        assert r.returncode == 0, r.stderr
    lines = all_lines(tmp_path / "demo")
    calls = [c for x in lines for t in x["turns"] for c in t.get("tool_calls", [])]
    assert calls and all(c.get("recovered") == "hermes" for c in calls)
    assert all(x["success"] for x in lines)


def test_reasoning_is_kept_but_never_shown(tmp_path) -> None:
    with mock_server("--skill", "1.0") as url:
        cfg = _config(tmp_path, url, agent="scripted-agent-think")
        r = emotau_here(
            "run",
            "--task-ids",
            "0,1",
            "--num-trials",
            "1",
            "--variants",
            "control",
            "--quiet",
            "--out",
            str(tmp_path),
            "--config",
            str(cfg),
        )
        assert r.returncode == 0, r.stderr
    for x in all_lines(tmp_path / "demo"):
        assert any(t.get("reasoning") for t in x["turns"] if t["role"] == "agent")
        seen_by_user = json.dumps(x["user"]["messages"])
        assert "<think>" not in seen_by_user and "Check the policy" not in seen_by_user
        assert "<think>" not in json.dumps(x["agent"]["messages"])
        assert x["success"]


def test_api_key_is_never_written(tmp_path) -> None:
    secret = "sk-emotau-test-0123456789abcdef"
    os.environ["EMOTAU_TEST_KEY"] = secret
    try:
        with mock_server() as url:
            r = emotau_here(
                "run",
                "--task-ids",
                "0",
                "--num-trials",
                "1",
                "--variants",
                "control",
                "--out",
                str(tmp_path),
                "--base-url",
                url,
                "--model",
                "scripted-agent",
                "--user-model",
                "scripted-user",
                "--api-key-env",
                "EMOTAU_TEST_KEY",
            )
            assert r.returncode == 0, r.stderr
            bad = emotau_here(
                "run",
                "--task-ids",
                "0",
                "--out",
                str(tmp_path / "b"),
                "--base-url",
                url,
                "--model",
                "nope",
                "--api-key-env",
                "EMOTAU_TEST_KEY",
            )
            assert bad.returncode == 2
    finally:
        del os.environ["EMOTAU_TEST_KEY"]
    for text in (r.stdout, r.stderr, bad.stdout, bad.stderr):
        assert secret not in text
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    spec = json.loads((tmp_path / "demo" / "spec.json").read_text())
    assert spec["spec"]["agent"]["api_key_env"] == "EMOTAU_TEST_KEY"  # the name, not the value


def test_preflight_refuses_a_server_that_rejects_tools(tmp_path) -> None:
    with mock_server("--reject-tools") as url:
        r = emotau_here(
            "run",
            "--out",
            str(tmp_path),
            "--base-url",
            url,
            "--model",
            "scripted-agent",
            "--user-model",
            "scripted-user",
        )
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
        assert "rejects tool calls with tool_choice='auto'" in r.stderr
        assert "--enable-auto-tool-choice" in r.stderr and not (tmp_path / "demo").exists()
        # the text-acting strategies send no tools: they may use such a server
        r = emotau_here(
            "run",
            "--out",
            str(tmp_path),
            "--base-url",
            url,
            "--model",
            "scripted-agent",
            "--user-model",
            "scripted-user",
            "--agent-strategy",
            "react",
            "--tasks",
            "2",
            "--num-trials",
            "1",
            "--variants",
            "control",
            "--quiet",
        )
        assert r.returncode == 0, r.stderr


def test_preflight_refuses_a_missing_model(tmp_path) -> None:
    with mock_server() as url:
        r = emotau_here(
            "run",
            "--out",
            str(tmp_path),
            "--base-url",
            url,
            "--model",
            "gpt-nope",
            "--user-model",
            "scripted-user",
        )
    assert r.returncode == 2
    assert "agent model 'gpt-nope' is not served at agent endpoint" in r.stderr
    assert "scripted-agent" in r.stderr and not (tmp_path / "demo").exists()


def test_hundreds_in_flight_and_the_per_endpoint_limit(tmp_path) -> None:
    base = ["run", "--num-trials", "2", "--quiet", "--max-concurrency", "300"]
    with mock_server("--latency", "0.3") as url:
        # 25 tasks x 6 arms x 2 trials = 300 episodes, all started at once
        r = emotau_here(
            *base, "--tasks", "25", "--out", str(tmp_path), "--config", str(_config(tmp_path, url))
        )
        assert r.returncode == 0, r.stderr
        assert mock_stats(url)["max_in_flight"] >= 250  # no hidden cap in the client
    with mock_server("--latency", "0.02") as url:
        limited = tmp_path / "limited.toml"
        limited.write_text(
            f'[agent]\nmodel = "scripted-agent"\nbase_url = "{url}"\nmax_concurrency = 3\n'
            f'[user]\nmodel = "scripted-user"\nbase_url = "{url}"\nmax_concurrency = 2\n'
        )
        r = emotau_here(
            *base, "--out", str(tmp_path / "l"), "--tasks", "2", "--config", str(limited)
        )
        assert r.returncode == 0, r.stderr
        st = mock_stats(url)
        assert st["max_in_flight"] == 2  # one endpoint: the roles share its smallest limit
    with mock_server("--latency", "0.02") as url:
        limited = tmp_path / "limited4.toml"
        limited.write_text(
            f'[agent]\nmodel = "scripted-agent"\nbase_url = "{url}"\nmax_concurrency = 4\n'
            f'[user]\nmodel = "scripted-user"\nbase_url = "{url}"\n'
        )
        r = emotau(
            *base,
            "--out",
            str(tmp_path / "w"),
            "--tasks",
            "2",
            "--config",
            str(limited),
            "--workers",
            "2",
        )
        assert r.returncode == 0, r.stderr
        assert mock_stats(url)["max_in_flight"] == 4  # split between the workers, total kept


def _client(url: str, **kw) -> OpenAIClient:
    retry = RetryConfig(base_delay=0.01, max_delay=0.02, max_attempts=kw.pop("attempts", 3))
    cfg = ModelConfig(model=kw.pop("model", "scripted-user"), base_url=url, timeout=2.0, **kw)
    return OpenAIClient("user", cfg, ClientSettings(retry=retry))


def _call(client: OpenAIClient, budget: RetryBudget | None = None):
    async def go():
        try:
            return await client.complete(
                ChatRequest([{"role": "user", "content": "hi"}], budget=budget)
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_client_retries_then_gives_up_as_infrastructure() -> None:
    with mock_server("--error-rate", "1.0") as url:
        with pytest.raises(InfraError, match="HTTP 500, 3 attempts failed"):
            _call(_client(url, attempts=3))
        assert mock_stats(url)["requests"] == 3
        with pytest.raises(InfraError, match="retry budget is spent"):
            _call(_client(url, attempts=10), RetryBudget(2))
        assert mock_stats(url)["requests"] == 3 + 3
    with mock_server("--rate-limit-rate", "1.0") as url, pytest.raises(InfraError, match="429"):
        _call(_client(url, attempts=2))
    with mock_server("--empty-rate", "1.0") as url, pytest.raises(InfraError, match="empty"):
        _call(_client(url, attempts=2))


def test_client_records_tokens_cost_and_no_retry_on_4xx() -> None:
    with mock_server() as url:
        r = _call(_client(url, price={"input": 1.0, "output": 2.0}))
        assert r.content and r.prompt_tokens > 0 and r.completion_tokens > 0
        assert r.cost_usd == pytest.approx((r.prompt_tokens + 2 * r.completion_tokens) / 1e6)
        assert r.synthetic and r.latency_s > 0
        with pytest.raises(InfraError, match="HTTP 404"):
            _call(_client(url, model="no-such-model", attempts=5))
        assert mock_stats(url)["requests"] == 2  # a 404 is not retried


class _EchoAuth(http.server.BaseHTTPRequestHandler):
    """Answers 401 with the Authorization header in the body, like a careless proxy."""

    def do_GET(self) -> None:
        self._echo()

    def do_POST(self) -> None:
        self._echo()

    def _echo(self) -> None:
        body = json.dumps({"error": {"message": f"bad key {self.headers.get('Authorization')}"}})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoAuth)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


@pytest.mark.parametrize("secret", ["abc123", "sk-emotau-echo-0123456789"])
def test_a_key_echoed_by_the_server_is_redacted(tmp_path, echo_server, secret) -> None:
    os.environ["EMOTAU_ECHO_KEY"] = secret
    try:
        base = ["--base-url", echo_server, "--model", "m", "--api-key-env", "EMOTAU_ECHO_KEY"]
        pre = emotau_here("run", "--out", str(tmp_path / "a"), *base)
        doc = emotau_here("doctor", *base, "--format", "json")
        run = emotau_here(
            "run",
            "--out",
            str(tmp_path / "b"),
            *base,
            "--no-preflight",
            "--tasks",
            "1",
            "--num-trials",
            "1",
            "--variants",
            "control",
            "--quiet",
        )
    finally:
        del os.environ["EMOTAU_ECHO_KEY"]
    assert pre.returncode == 2 and "HTTP 401" in pre.stderr and "***" in pre.stderr
    assert doc.returncode == 1 and "***" in doc.stdout
    assert run.returncode == 4  # every episode is missing
    records = all_lines(tmp_path / "b" / "demo")
    assert records and all(r["status"] == "infra_error" and "***" in r["error"] for r in records)
    for text in (pre.stdout, pre.stderr, doc.stdout, doc.stderr, run.stdout, run.stderr):
        assert secret not in text
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_not_http_and_bad_settings_get_one_line(tmp_path) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def banner() -> None:
        for _ in range(20):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            conn.close()

    threading.Thread(target=banner, daemon=True).start()
    try:
        r = emotau_here(
            "run",
            "--out",
            str(tmp_path),
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
            "--model",
            "m",
        )
    finally:
        srv.close()
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot be used" in r.stderr
    cfg = tmp_path / "c.toml"
    for body, needle in [
        (
            '[agent]\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\ntimeout = inf\n',
            "field 'agent.timeout'",
        ),
        ('[agent]\nmodel = "m"\nprice = {input = nan, output = 1.0}\n', "field 'agent.price'"),
        ('[agent]\nmodel = "m"\nextra_body = {model = "x"}\n', "'model' is set by emotau"),
        ("[agent]\nextra_body = {when = 1979-05-27T07:32:00Z}\n", "must be plain JSON values"),
        ('[agent]\nbase_url = "localhost:8000"\n', "must look like http://host:port/v1"),
    ]:
        cfg.write_text(body)
        r = emotau_here("run", "--out", str(tmp_path / "x"), "--config", str(cfg))
        assert r.returncode == 2 and needle in r.stderr, (body, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_mock_server_validates_its_options_and_requests(tmp_path) -> None:
    for args, needle in [
        (["--skill", "5"], "skill must be"),
        (["--latency", "nan"], "finite"),
        (["--error-rate", "0.7", "--empty-rate", "0.5"], "add up to at most 1"),
        (["--oracle-domains", "nowhere"], "unknown domain 'nowhere'"),
    ]:
        r = emotau("mock-server", "--port", "0", *args)
        assert r.returncode == 2 and needle in r.stderr, r.stderr
    with mock_server() as url:
        req = urllib.request.Request(
            url + "/chat/completions",
            method="POST",
            data=json.dumps({"model": "scripted-agent", "messages": []}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Emotau-Metadata": json.dumps({"domain_ref": "nowhere", "task_id": 0}),
            },
        )
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=10)
        assert exc.value.code == 400


def test_runs_over_the_mock_server_are_labelled_synthetic(tmp_path) -> None:
    with mock_server() as url:
        r = emotau_here(
            "run",
            "--out",
            str(tmp_path),
            "--base-url",
            url,
            "--model",
            "scripted-agent",
            "--user-model",
            "scripted-user",
            "--tasks",
            "2",
            "--num-trials",
            "1",
            "--variants",
            "control",
            "--progress",
            "log",
        )
    assert r.returncode == 0, r.stderr
    assert "success (SYNTHETIC)" in r.stderr and "these results are SYNTHETIC" in r.stderr
    assert "SYNTHETIC" in r.stdout


def test_workers_and_resume_use_the_current_endpoints(tmp_path) -> None:
    dead = "http://127.0.0.1:9/v1"
    base = [
        "--out",
        str(tmp_path),
        "--model",
        "scripted-agent",
        "--user-model",
        "scripted-user",
        "--tasks",
        "2",
        "--num-trials",
        "1",
        "--variants",
        "control",
        "--quiet",
    ]
    fast = tmp_path / "fast.toml"
    fast.write_text("[retry]\nmax_attempts = 1\n")
    r = emotau_here("run", *base, "--base-url", dead, "--no-preflight", "--config", str(fast))
    assert r.returncode == 4 and "2 infrastructure errors" in r.stderr, r.stderr
    with mock_server("--skill", "1.0") as url:
        r = emotau("run", *base, "--base-url", url, "--workers", "2", "--config", str(fast))
        assert r.returncode == 0 and "2 episodes run now" in r.stderr, r.stderr
        # resume moves a run to another server without touching its identity
        r = emotau_here(
            "run",
            *base[:-1],
            "--base-url",
            dead,
            "--no-preflight",
            "--num-trials",
            "2",
            "--experiment-name",
            "moved",
            "--config",
            str(fast),
        )
        assert r.returncode == 4 and "4 infrastructure errors" in r.stderr, r.stderr
        r = emotau_here("resume", str(tmp_path / "moved"), "--base-url", url, "--quiet")
        assert r.returncode == 0 and "4 episodes run now" in r.stderr, r.stderr
    s = json.loads(emotau_here("summary", str(tmp_path / "moved"), "--format", "json").stdout)
    assert s["complete"]


def test_oracle_mode_for_clients_without_metadata() -> None:
    """Upstream harnesses send no metadata: the mock recognises the task from the prompts."""
    from toydomain import ToyDomain

    task = ToyDomain().tasks()[0]

    def post(url: str, body: dict) -> dict:
        req = urllib.request.Request(
            url + "/chat/completions",
            method="POST",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["choices"][0]["message"]

    with mock_server("--skill", "1.0", "--oracle-domains", "toydomain:ToyDomain") as url:
        user = post(
            url,
            {
                "model": "scripted-user",
                "messages": [
                    {
                        "role": "system",
                        "content": f"You play a customer.\n\nInstruction: {task.instruction}",
                    },
                    {"role": "user", "content": "Hi! How can I help you today?"},
                ],
            },
        )
        assert user["content"].endswith("[toydomain:ToyDomain#0]")
        assert "deposit" in user["content"].lower()
        agent = post(
            url,
            {
                "model": "scripted-agent",
                "tools": ToyDomain().tools(),
                "messages": [
                    {"role": "system", "content": "policy"},
                    {"role": "user", "content": user["content"]},
                ],
            },
        )
        assert agent["tool_calls"][0]["function"]["name"] == task.actions[0].name
        unknown = post(
            url,
            {
                "model": "scripted-user",
                "messages": [{"role": "user", "content": "Reply with the single word: ready"}],
            },
        )
        assert unknown["content"] == "ready"  # not an episode: the generic probe answer


def test_retries_are_logged_in_the_run_directory_without_the_key(tmp_path) -> None:
    secret = "sk-emotau-log-0123456789abcdef"
    os.environ["EMOTAU_LOG_KEY"] = secret
    fast = tmp_path / "fast.toml"
    fast.write_text("[retry]\nbase_delay = 0.01\nmax_delay = 0.05\nepisode_budget = 200\n")
    base = [
        "--model",
        "scripted-agent",
        "--user-model",
        "scripted-user",
        "--api-key-env",
        "EMOTAU_LOG_KEY",
        "--tasks",
        "3",
        "--num-trials",
        "1",
        "--variants",
        "control",
        "--quiet",
        "--config",
        str(fast),
    ]
    try:
        with mock_server("--error-rate", "0.3") as url:
            r = emotau_here("run", "--out", str(tmp_path), "--base-url", url, *base)
            w = emotau(
                "run", "--out", str(tmp_path / "w"), "--base-url", url, *base, "--workers", "2"
            )
    finally:
        del os.environ["EMOTAU_LOG_KEY"]
    assert r.returncode == 0 and w.returncode == 0, r.stderr + w.stderr
    log = (tmp_path / "demo" / "logs" / "emotau.log").read_text()
    retries = [line for line in log.splitlines() if "; retry " in line]
    assert retries and all(" INFO emotau.models " in line for line in retries)
    assert all(
        f"model 'scripted-agent' at {url}" in line or "scripted-user" in line for line in retries
    )
    assert any("HTTP 500; retry 1 of 5 in " in line for line in retries)
    assert "3 episodes to run" in log and "3 episodes finished" in log
    assert secret not in log
    for text in (r.stdout, r.stderr, w.stdout, w.stderr):  # nothing new on the terminal
        assert "retry" not in text and secret not in text
    logs = tmp_path / "w" / "demo" / "logs"
    assert "worker 0/2 started" in (logs / "emotau.log").read_text()
    children = sorted(p.name for p in logs.glob("emotau-shard-*.log"))
    assert children == ["emotau-shard-0-of-2.log", "emotau-shard-1-of-2.log"]
    assert any("; retry " in (logs / c).read_text() for c in children)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_the_mock_server_never_imports_what_a_request_names(tmp_path, monkeypatch) -> None:
    """The metadata header's domain goes to the domain loader: a module named there would run
    inside the server. Only installed domains and --oracle-domains are served; any other name
    is HTTP 400, and nothing is imported."""
    import urllib.error
    import urllib.request

    sentinel = tmp_path / "ran"
    (tmp_path / "evil_domain.py").write_text(
        f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('ran')\nX = None\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the server could import it
    with mock_server() as url:
        for ref in ("evil_domain:X", "os:abort"):
            meta = {"domain_ref": ref, "domain": ref, "task_id": 0, "variant": "control",
                    "trial": 0, "seed": 0}  # fmt: skip
            body = {"model": "scripted-agent", "messages": [{"role": "user", "content": "hi"}]}
            req = urllib.request.Request(
                url + "/chat/completions", json.dumps(body).encode(),
                {"Content-Type": "application/json", "X-Emotau-Metadata": json.dumps(meta)},
            )  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            assert err.value.code == 400
            assert "does not serve domain" in err.value.read().decode()
        assert mock_stats(url)["requests"] >= 2  # still up: os:abort did not kill it
    assert not sentinel.exists()


def _status_error(status: int, message: str) -> Exception:
    """The SDK's error for an HTTP status, as its transport raises it."""
    import openai

    # openai 1.x and 2.x build on httpx, 3.x on httpx2: the request and response of the one it uses
    http = getattr(openai._exceptions, "httpx2", None) or openai._exceptions.httpx
    request = http.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = http.Response(status, request=request)
    return openai.APIStatusError(message, response=response, body=None)


@pytest.mark.parametrize("length", [8, 20, 48, 64])
def test_no_fragment_of_a_key_survives_the_cut(length: int) -> None:
    """Error bodies are cut to 300 characters: the key is redacted from the whole text first,
    wherever it sits around the cut (issue 13 item 6)."""
    from emotau.models import describe_error

    key = ("sk-" + "Zq7" * 40)[:length]
    for offset in range(260, 310):
        body = "x" * offset + key + " tail"
        text = describe_error(_status_error(400, body), [key])
        assert len(text) <= 300
        for n in range(4, len(key) + 1):  # no piece of 4 characters or more of the key
            assert not any(key[i : i + n] in text for i in range(len(key) - n + 1)), (offset, n)
    bearer = _status_error(401, "echo: Authorization: Bearer tok-1234567890abcdef")
    assert "tok-1234567890abcdef" not in describe_error(bearer) and "Bearer ***" in describe_error(
        bearer
    )


def test_terminal_escapes_from_an_endpoint_never_reach_the_terminal() -> None:
    """An error body with a window title, a hyperlink and a clear-screen (issue 13 item 7)."""
    from emotau.models import describe_error

    evil = (
        "bad\x1b]0;owned\x07 request \x1b[2J\x1b]8;;http://evil\x1b\\here\x1b]8;;\x1b\\\r\nend\x9b"
    )
    text = describe_error(_status_error(400, evil))
    assert text == "HTTP 400: bad request here end"
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in text)
