"""A blind agent: no endpoint learns the experimental condition unless it asks for it.

A stand-in OpenAI-compatible server (standard library, in a thread) records every request;
a small grid with emotional variants runs through it as the agent's and the user's endpoint.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import emotau
from emotau.episode._variants import VariantLibrary
from emotau.models._openai import models_wanting_metadata
from emotau.runner._doctor import FIRST_USER_MESSAGE
from helpers import all_lines

AGENT, USER = "blind-agent", "blind-user"
VARIANTS = ["control", "anger:severe", "anxiety+confusion"]
#: what an OpenAI chat completion body may hold (emotau adds nothing of its own)
BODY_FIELDS = {"model", "messages", "temperature", "max_tokens", "seed", "tools", "tool_choice"}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    declares = False  # whether /models asks for the metadata, as emotau's mock server does
    requests: list[Recorded]
    lock: threading.Lock


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def _record(self, body: dict[str, Any]) -> None:
        with self.server.lock:
            self.server.requests.append(
                Recorded(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )

    def do_GET(self) -> None:
        self._record({})
        if self.path != "/v1/models":
            return self._send(404, {"error": {"message": "not found"}})
        extra = {"emotau": {"metadata": True}} if self.server.declares else {}
        models = [{"id": m, "object": "model", **extra} for m in (AGENT, USER)]
        self._send(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._record(body)
        text = "I need help with my booking." if body["model"] == USER else "How can I help?"
        self._send(
            200,
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5},
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.requests, srv.lock = [], threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _run(tmp_path, srv: _Server, name: str, agent: dict[str, Any] | None = None, **kw: Any):
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    return emotau.run(
        {
            "experiment_name": name,
            "tasks": 2,
            "variants": VARIANTS,
            "num_trials": 1,
            "max_steps": 3,
            "max_concurrency": 4,
            "out": str(tmp_path),
            "agent": {"model": AGENT, "base_url": url, **(agent or {})},
            "user": {"model": USER, "base_url": url},
            "retry": {"max_attempts": 2, "base_delay": 0.01},
            **kw,
        }
    )


def _chats(srv: _Server, model: str) -> list[Recorded]:
    return [r for r in srv.requests if r.method == "POST" and r.body.get("model") == model]


def _episode_chats(srv: _Server, model: str) -> list[Recorded]:
    """The run's chat requests (the preflight's probes say "ready", ask for an order, or are
    the agent's first request with the preflight's own customer message)."""
    probes = ("Reply with the single word: ready", "where is my order A1B2C3", FIRST_USER_MESSAGE)
    return [r for r in _chats(srv, model) if not any(p in json.dumps(r.body) for p in probes)]


def _condition_strings() -> list[str]:
    """Everything that tells an emotional arm apart: labels, emotions, injected texts, phrases."""
    out: list[str] = []
    for label in VARIANTS[1:]:
        sel = VariantLibrary.default().select(label)
        out += [sel.label, *sel.emotions, sel.text, *sel.text.splitlines(), *sel.phrases()]
    return [s for s in out if s.strip()]


def _metadata_headers(r: Recorded) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if "emotau" in k.lower()}


def test_the_agent_never_learns_the_condition(tmp_path, server) -> None:
    run = _run(tmp_path, server, "blind")
    records = all_lines(run.path)
    assert len(records) == 2 * 3 and all(r["status"] == "completed" for r in records)
    agent, user = _episode_chats(server, AGENT), _episode_chats(server, USER)
    assert len(agent) == sum(r["usage"]["agent"]["calls"] for r in records) > 0
    assert len(user) == sum(r["usage"]["user"]["calls"] for r in records) > 0
    secrets = _condition_strings()
    for r in _chats(server, AGENT) + [r for r in server.requests if r.method == "GET"]:
        assert not _metadata_headers(r), r.headers
        assert set(r.body) <= BODY_FIELDS, set(r.body) - BODY_FIELDS
        seen = json.dumps(r.body) + json.dumps(r.headers) + r.path
        leaked = [s for s in secrets if s in seen or json.dumps(s)[1:-1] in seen]
        assert not leaked, leaked[:3]
    # the user is told its emotion in its system prompt, and nowhere else
    by_text = {
        label: VariantLibrary.default().select(label).text
        for label in VARIANTS
        if label != "control"
    }
    counted = dict.fromkeys(VARIANTS, 0)
    for r in user:
        assert not _metadata_headers(r), r.headers
        assert set(r.body) <= BODY_FIELDS
        system, *rest = r.body["messages"]
        assert system["role"] == "system"
        arms = [label for label, text in by_text.items() if text in system["content"]]
        assert len(arms) <= 1
        counted[arms[0] if arms else "control"] += 1
        others = json.dumps({**r.body, "messages": rest})
        assert not [s for s in secrets if s in others or json.dumps(s)[1:-1] in others]
    expected = dict.fromkeys(VARIANTS, 0)
    for rec in records:
        expected[rec["variant"]] += rec["usage"]["user"]["calls"]
    assert counted == expected
    # the preflight listed the models once per role and the run needed no other look-up
    assert [r.path for r in server.requests if r.method == "GET"] == ["/v1/models"] * 2


def test_without_preflight_one_lookup_serves_every_role(tmp_path, server) -> None:
    _run(tmp_path, server, "lazy", preflight=False)
    assert [r.path for r in server.requests if r.method == "GET"] == ["/v1/models"]
    assert not any(_metadata_headers(r) for r in server.requests)


def test_send_metadata_true_sends_the_header_to_that_role_only(tmp_path, server) -> None:
    run = _run(tmp_path, server, "told", agent={"send_metadata": True})
    variants = set()
    for r in _episode_chats(server, AGENT):
        meta = json.loads(r.headers["x-emotau-metadata"])
        assert meta["role"] == "agent" and meta["domain"] == "hotel"
        variants.add(meta["variant"])
    assert variants == set(VARIANTS)
    assert not any(_metadata_headers(r) for r in _chats(server, USER))
    blind = _run(tmp_path, server, "blind")
    frozen = [json.loads((r.path / "spec.json").read_text()) for r in (run, blind)]
    assert frozen[0]["hash"] == frozen[1]["hash"]  # how requests travel is not the identity


def test_an_endpoint_that_asks_gets_the_metadata(tmp_path, server) -> None:
    server.declares = True
    _run(tmp_path, server, "asks", preflight=False)
    for r in _episode_chats(server, AGENT) + _episode_chats(server, USER):
        assert json.loads(r.headers["x-emotau-metadata"])["variant"] in VARIANTS
    server.requests.clear()
    _run(tmp_path, server, "asks-preflight")  # the preflight's listing is enough
    assert [r.path for r in server.requests if r.method == "GET"] == ["/v1/models"] * 2
    assert all(_metadata_headers(r) for r in _episode_chats(server, AGENT))
    server.requests.clear()
    _run(tmp_path, server, "asks-but-refused", agent={"send_metadata": False}, preflight=False)
    assert not any(_metadata_headers(r) for r in _chats(server, AGENT))
    assert all(_metadata_headers(r) for r in _episode_chats(server, USER))


def test_what_counts_as_asking() -> None:
    yes = {"emotau": {"metadata": True}}
    listing = {
        "data": [
            {"id": "a", **yes},
            {"id": "b", "emotau": {"metadata": "yes"}},
            {"id": "c"},
            {"id": 4, **yes},
            "d",
        ]
    }
    assert models_wanting_metadata(listing) == {"a"}
    assert models_wanting_metadata(listing["data"]) == {"a"}
    for junk in (None, "x", {"data": "x"}, {"object": "list"}):
        assert models_wanting_metadata(junk) == frozenset()
