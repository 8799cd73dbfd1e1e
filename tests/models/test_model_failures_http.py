"""A model's own failures over real HTTP, against the mock server: an empty reply, a broken
``<tool_call>`` written as text, and what each call's end leaves in the record."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from emotau.core._chat import ChatRequest
from emotau.core._errors import InfraError
from emotau.models._config import ModelConfig, RetryConfig
from emotau.models._openai import ClientSettings, OpenAIClient
from emotau.results import merge_records
from helpers import all_lines, emotau_here, mock_server, mock_stats

pytest.importorskip("aiohttp")


def _config(tmp_path: Path, url: str, agent: str = "scripted-agent", attempts: int = 6) -> Path:
    cfg = tmp_path / f"cfg-{agent}.toml"
    cfg.write_text(
        f'[agent]\nmodel = "{agent}"\nbase_url = "{url}"\ntimeout = 5\n'
        f'[user]\nmodel = "scripted-user"\nbase_url = "{url}"\ntimeout = 5\n'
        f"[retry]\nbase_delay = 0.01\nmax_delay = 0.02\nmax_attempts = {attempts}\n"
    )
    return cfg


def _run(tmp_path: Path, cfg: Path, name: str, tasks: str = "1") -> list[dict[str, Any]]:
    r = emotau_here(
        "run",
        "--task-ids",
        tasks,
        "--num-trials",
        "1",
        "--variants",
        "control",
        "--quiet",
        "--no-preflight",  # every chat request the server counts is then an episode's
        "--out",
        str(tmp_path),
        "--experiment-name",
        name,
        "--config",
        str(cfg),
    )
    return _lines_of(r, tmp_path / name)


def _resume(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    return _lines_of(emotau_here("resume", str(tmp_path / name), "--quiet"), tmp_path / name)


def _lines_of(r: Any, run_dir: Path) -> list[dict[str, Any]]:
    """The run's lines; the command exited 4 when it left infrastructure errors, else 0."""
    lines = all_lines(run_dir)
    missing = any(x["status"] == "infra_error" for x in merge_records(lines).values())
    assert r.returncode == (4 if missing else 0), r.stderr
    return lines


def _complete(url: str, model: str, attempts: int = 3, tools: bool = False) -> Any:
    retry = RetryConfig(base_delay=0.01, max_delay=0.02, max_attempts=attempts)
    client = OpenAIClient(
        "agent", ModelConfig(model=model, base_url=url, timeout=5), ClientSettings(retry=retry)
    )
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

    async def go() -> Any:
        try:
            return await client.complete(
                ChatRequest([{"role": "user", "content": "hi"}], tools=[tool] if tools else None)
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


# ------------------------------------------------------------------------ empty replies
def test_an_empty_reply_is_retried_unless_it_used_up_the_token_budget() -> None:
    with mock_server("--empty-rate", "1.0") as url:  # finish_reason "stop": a server glitch
        with pytest.raises(InfraError) as err:
            _complete(url, "scripted-agent", attempts=3)
        assert mock_stats(url)["requests"] == 3
    assert "empty completion (finish_reason='stop', 0 prompt and 0 completion tokens)" in str(
        err.value
    )
    assert "3 attempts failed" in str(err.value)
    with mock_server() as url:  # whitespace, finish_reason "length": the same every time
        r = _complete(url, "scripted-agent-blank", attempts=3, tools=True)
        assert mock_stats(url)["requests"] == 1
    assert r.blank and r.finish_reason == "length" and r.completion_tokens == 64
    assert r.retries == 0


def test_an_agent_that_only_writes_whitespace_fails_its_episode_once(tmp_path) -> None:
    with mock_server() as url:
        lines = _run(tmp_path, _config(tmp_path, url, "scripted-agent-blank"), "blank")
        assert mock_stats(url)["requests"] == 2  # the customer's opening, the agent's blank
        (rec,) = lines
        assert rec["status"] == "completed" and rec["termination"] == "agent_empty_reply"
        assert rec["scored"] and rec["reward"] == 0.0 and not rec["success"]
        assert rec["usage"]["retries"] == 0 and rec["usage"]["agent"]["calls"] == 1
        assert "finish_reason='length'" in rec["error"]
        assert "64 completion tokens" in rec["error"]
        assert _resume(tmp_path, "blank") == lines  # scored: resume does not run it again
        assert mock_stats(url)["requests"] == 2


def test_a_customer_that_only_writes_whitespace_is_a_simulator_error(tmp_path) -> None:
    with mock_server("--empty-length-rate", "1.0") as url:
        lines = _run(tmp_path, _config(tmp_path, url), "blank-user")
        assert mock_stats(url)["requests"] == 1  # not retried
        (rec,) = lines
        assert rec["status"] == "completed" and rec["termination"] == "user_simulator_error"
        assert not rec["scored"] and rec["usage"]["retries"] == 0
        assert (
            "the user model's reply call got an empty reply (finish_reason='length'" in rec["error"]
        )
        assert _resume(tmp_path, "blank-user") == lines
        assert mock_stats(url)["requests"] == 1


def test_an_empty_reply_that_is_a_glitch_stays_an_infrastructure_error(tmp_path) -> None:
    with mock_server("--empty-rate", "1.0") as url:
        (rec,) = _run(tmp_path, _config(tmp_path, url, attempts=3), "glitch")
        assert mock_stats(url)["requests"] == 3  # the customer's opening, asked three times
        assert rec["status"] == "infra_error" and not rec["scored"]
        assert rec["usage"]["retries"] == 2
        assert "finish_reason='stop', 0 prompt and 0 completion tokens" in rec["error"]
        _resume(tmp_path, "glitch")  # not finished: resume runs it again
        assert mock_stats(url)["requests"] == 6


# ------------------------------------------------------------- a broken <tool_call> text
def test_a_broken_text_tool_call_gets_an_error_observation_not_the_customer(tmp_path) -> None:
    with mock_server("--skill", "1.0") as url:
        cfg = _config(tmp_path, url, "scripted-agent-badtextcalls")
        lines = _run(tmp_path, cfg, "badtext", tasks="0,1,2")
    assert len(lines) == 3
    for rec in lines:
        calls = [(t, c) for t in rec["turns"] for c in t.get("tool_calls") or ()]
        turn, broken = calls[0]  # its first call was cut off mid-JSON, the tag never closed
        assert broken["error"] and broken["recovered"] == "hermes" and broken["arguments"] is None
        assert broken["raw_arguments"].startswith('{"name": ')
        assert "arguments are not valid JSON" in broken["result"]
        assert "the <tool_call> tag was never closed" in broken["result"]
        assert turn["finish_reason"] == "length"
        assert all(c["recovered"] == "hermes" and not c["error"] for _, c in calls[1:])
        assert calls[1][1]["name"] == broken["name"]  # tried again, as it was told
        # the agent was told; the customer never saw the call text
        told = [m for m in rec["agent"]["messages"] if m["role"] == "tool"]
        assert told[0]["content"] == broken["result"]
        assert "<tool_call>" not in json.dumps(rec["user"]["messages"])
        assert all(
            "<tool_call>" not in (t["content"] or "") for t in rec["turns"] if t["role"] == "user"
        )
        assert rec["success"], rec["reward_breakdown"]


# --------------------------------------------------------------- each call's end, recorded
def test_turns_record_finish_reason_and_tokens_from_the_server(tmp_path) -> None:
    with mock_server("--skill", "1.0") as url:
        lines = _run(tmp_path, _config(tmp_path, url), "ends", tasks="0,1")
    turns = [t for rec in lines for t in rec["turns"]]
    agent = [t for t in turns if t["role"] == "agent"]
    user = [t for t in turns if t["role"] == "user"]
    assert {t["finish_reason"] for t in agent} == {"stop", "tool_calls"}
    assert {t["finish_reason"] for t in user} == {"stop"}
    for t in turns:
        assert t["prompt_tokens"] > 0 and t["completion_tokens"] > 0
    for t in agent:
        assert t["tokens"] == [t["prompt_tokens"], t["completion_tokens"]]
    for rec in lines:  # the per-turn counts add up to the episode's usage
        for role in ("agent", "user"):
            mine = [t for t in rec["turns"] if t["role"] == role]
            used = rec["usage"][role]
            assert sum(t["prompt_tokens"] for t in mine) == used["prompt_tokens"]


def test_token_ids_are_kept_only_for_a_role_that_asks(tmp_path) -> None:
    """``return_token_ids`` in the agent's extra_body: vLLM's prompt and reply ids land in the
    agent's turns (for activation capture); the customer, who did not ask, keeps none."""
    with mock_server("--skill", "1.0") as url:
        cfg = _config(tmp_path, url)
        cfg.write_text(cfg.read_text().replace(
            "[user]", "extra_body = {return_token_ids = true}\n[user]", 1
        ))  # fmt: skip
        lines = _run(tmp_path, cfg, "ids", tasks="0")
    (rec,) = lines
    agent = [t for t in rec["turns"] if t["role"] == "agent"]
    assert agent and all(len(t["token_ids"]) == t["completion_tokens"] > 0 for t in agent)
    assert all(len(t["prompt_token_ids"]) == t["prompt_tokens"] > 0 for t in agent)
    assert all(isinstance(i, int) for t in agent for i in t["token_ids"])
    user = [t for t in rec["turns"] if t["role"] == "user"]
    assert user and not any("token_ids" in t or "prompt_token_ids" in t for t in user)


class _Bare(http.server.BaseHTTPRequestHandler):
    """A chat completion with no finish_reason and no usage, as some servers answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_what_the_server_did_not_say_is_recorded_as_none() -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bare)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = _complete(f"http://127.0.0.1:{srv.server_address[1]}/v1", "m")
    finally:
        srv.shutdown()
    assert r.content == "hello" and not r.usage_reported
    assert r.ending() == {"finish_reason": None, "prompt_tokens": None, "completion_tokens": None}


def test_a_malformed_native_call_stays_the_agents_mistake(tmp_path) -> None:
    """Every native call cut mid-JSON: the agent gets error observations and the episode ends
    as its failure. The history carries such calls with {} as arguments, since vLLM (and the
    mock, which plays it) refuses a request whose history holds arguments that are not JSON:
    that would make the agent's mistake an infrastructure error on every resume."""
    with mock_server("--skill", "1.0", "--malformed-rate", "1.0") as url:
        lines = _run(tmp_path, _config(tmp_path, url), "cut", tasks="0")
        stats = mock_stats(url)
    (rec,) = lines
    assert rec["status"] == "completed" and rec["scored"], rec["error"]
    assert rec["termination"] == "agent_error" and rec["reward"] == 0.0
    calls = [c for t in rec["turns"] if t["role"] == "agent" for c in t.get("tool_calls") or ()]
    assert calls and all("not valid JSON" in str(c["result"]) for c in calls)
    assert stats["faults"]["malformed"] >= len(calls)  # (and the preflight's probe)


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Every other answer to a completion is a 200 whose body is cut mid-JSON (or all, when
    the server's ``always_broken`` is set); /models answers normally."""

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, json.dumps({"object": "list", "data": [{"id": "m"}]}).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        srv = self.server
        with srv.lock:  # type: ignore[attr-defined]
            srv.calls += 1  # type: ignore[attr-defined]
            broken = srv.always_broken or srv.calls % 2 == 1  # type: ignore[attr-defined]
        good = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}  # fmt: skip
        data = json.dumps(good).encode()
        self._send(200, data[: len(data) // 2] if broken else data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Any:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    srv.calls, srv.always_broken, srv.lock = 0, False, threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_a_broken_body_is_retried_and_named(flaky) -> None:
    """A 200 whose body is cut mid-JSON is a server fault like a 5xx: retried, and when the
    retries run out the error says so (issue 13 item 1)."""
    url = f"http://127.0.0.1:{flaky.server_address[1]}/v1"
    cfg = ModelConfig(model="m", base_url=url, timeout=5)
    retry = RetryConfig(base_delay=0.01, max_delay=0.02, max_attempts=4)

    async def once() -> Any:
        client = OpenAIClient("agent", cfg, ClientSettings(retry=retry))
        try:
            return await client.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        finally:
            await client.aclose()

    r = asyncio.run(once())
    assert r.content == "hello" and r.retries == 1 and flaky.calls == 2
    flaky.always_broken = True
    with pytest.raises(InfraError) as err:
        asyncio.run(once())
    text = str(err.value)
    assert "the server answered 200 with a truncated or broken JSON body" in text
    assert "4 attempts failed" in text and "JSONDecodeError" not in text


def test_the_preflight_retries_a_broken_body(flaky, tmp_path) -> None:
    from emotau.runner import preflight, prepare
    from emotau.spec import build_spec

    url = f"http://127.0.0.1:{flaky.server_address[1]}/v1"
    spec = build_spec({
        "agent": {"model": "m", "base_url": url}, "user": {"model": "m", "base_url": url},
        "agent_strategy": "react", "out": str(tmp_path),
        "retry": {"base_delay": 0.01, "max_delay": 0.02},
    })  # fmt: skip
    asyncio.run(preflight(prepare(spec)))  # one broken answer in two: no refusal
    assert flaky.calls >= 2


class _Busy(http.server.BaseHTTPRequestHandler):
    """429 with ``Retry-After: 1`` to the first completion, then an answer; keeps the times."""

    def do_POST(self) -> None:
        import time

        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.times.append(time.monotonic())  # type: ignore[attr-defined]
        if len(self.server.times) == 1:  # type: ignore[attr-defined]
            body = json.dumps({"error": {"message": "slow down"}}).encode()
            self.send_response(429)
            self.send_header("Retry-After", "1")
        else:
            body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant",
                               "content": "ok"}, "finish_reason": "stop"}]}).encode()  # fmt: skip
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_retry_after_is_honoured() -> None:
    """The backoff here is milliseconds; the server asks for 1 s: the retry waits 1 s
    (issue 13 item 2)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    srv.times = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cfg = ModelConfig(model="m", base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1")
    retry = RetryConfig(base_delay=0.01, max_delay=0.02, max_attempts=3)

    async def once() -> Any:
        client = OpenAIClient("agent", cfg, ClientSettings(retry=retry))
        try:
            return await client.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        finally:
            await client.aclose()

    try:
        r = asyncio.run(once())
    finally:
        srv.shutdown()
        srv.server_close()
    times = srv.times  # type: ignore[attr-defined]
    assert r.content == "ok" and r.retries == 1 and len(times) == 2
    assert times[1] - times[0] >= 0.95


def test_retry_after_values() -> None:
    from datetime import datetime
    from email.utils import format_datetime

    from emotau.models._retry import retry_after

    def exc(value: str | None) -> Any:
        class Response:
            headers = {} if value is None else {"retry-after": value}

        class Err(Exception):
            response = Response()

        return Err()

    assert retry_after(exc("3")) == 3.0 and retry_after(exc(" 0.5 ")) == 0.5
    at = format_datetime(datetime.fromtimestamp(1_000_030, tz=UTC), usegmt=True)
    assert retry_after(exc(at), now=1_000_000) == pytest.approx(30.0)
    assert retry_after(exc(at), now=2_000_000) == 0.0  # a date in the past: no wait
    for bad in (None, "", "soon", "nan", "Mon, 99 Foo"):
        assert retry_after(exc(bad)) is None, bad
    assert retry_after(ValueError("no response")) is None
