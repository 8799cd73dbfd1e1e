"""An OpenAI-compatible mock server backed by the scripted models, with fault injection.

``emotau mock-server --port P`` serves over real HTTP:

- ``POST /v1/chat/completions`` (tools, tool_choice), ``GET /v1/models``, ``GET /health``,
  and ``GET /stats`` (requests served, in flight now, most in flight at once, faults injected).
- Models: ``scripted-agent``, ``scripted-user`` and ``scripted-judge`` (the oracle agent, the
  scripted customer and a judge that accepts every claim and labels emotions with the lexicon),
  and agent variants that misbehave the way small open models do:
  ``scripted-agent-textcalls`` (writes tool calls as ``<tool_call>`` text, no ``tool_calls``),
  ``scripted-agent-notools`` (never calls a tool under ``tool_choice=auto``),
  ``scripted-agent-nevertools`` (never calls a tool, not even under ``tool_choice=required``:
  a server that ignores ``required``),
  ``scripted-agent-think`` (a ``<think>`` block in every reply),
  ``scripted-agent-badtextcalls`` (like textcalls, but its first call is cut off mid-JSON, the
  tag never closed, ``finish_reason`` ``"length"``), ``scripted-agent-blank`` (only whitespace,
  ``finish_reason`` ``"length"``, every time: a model that spends its budget on nothing).
- Faults, each a probability per request: HTTP 500, HTTP 429, a hang (``--hang-seconds``,
  default 300 s: longer than the client's timeout), malformed tool-call JSON, an empty reply
  (``finish_reason`` ``"stop"``), a whitespace reply that used up ``max_tokens``
  (``finish_reason`` ``"length"``); plus latency (fixed, uniform or exponential).
- Replies say how they ended, as vLLM's do: ``finish_reason`` and ``usage`` token counts.
- Also HTTP 500 on requests with tools only
  (``--tools-error-rate``); empty replies above a temperature (``--empty-above-temperature``;
  a request without one counts as 1.0, the OpenAI default).
- Refusals like vLLM's: HTTP 400 to tools under ``tool_choice=auto`` (``--reject-tools``) or
  ``required`` (``--reject-required``); a context limit (``--max-model-len N``: listed as
  ``max_model_len`` in ``GET /v1/models``; a request whose messages and tools, as JSON, are
  more than ``4 * (N - max_tokens)`` characters gets vLLM's HTTP 400 "This model's maximum
  context length is N tokens. However, you requested M tokens ..."; with it, ``usage``
  reports that estimate, len(JSON) / 4, as the prompt tokens).

To play an oracle it reads the episode metadata in the ``X-Emotau-Metadata`` header, which
emotau sends only to endpoints that ask for it: every model this server lists in ``GET
/v1/models`` carries ``"emotau": {"metadata": true}``. Requests without it (e.g. ``emotau
doctor``'s probes) get a generic answer: a call of the first tool when tools are offered, else
a short text.
It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from emotau.core import ChatRequest, ChatResponse, ToolCall, UserError
from emotau.domains import Domain, load_domain
from emotau.episode import RESPOND
from emotau.models import METADATA_FIELD, METADATA_HEADER, SYNTHETIC_FINGERPRINT
from emotau.scripted._models import ScriptedAgent, ScriptedJudge, ScriptedUser

_TAG_RE = re.compile(r"\[([a-z0-9:_.-]+)#(\d+)\]")
AGENT_MODELS = {
    "scripted-agent": "oracle",
    "scripted-agent-textcalls": "textcalls",
    "scripted-agent-notools": "notools",
    "scripted-agent-nevertools": "nevertools",
    "scripted-agent-think": "think",
    "scripted-agent-badtextcalls": "badtextcalls",
    "scripted-agent-blank": "blank",
}
#: what a whitespace reply that used up its budget holds, and its length when no max_tokens
_BLANK, _BLANK_TOKENS = " \n\n  \n", 64
USER_MODELS = {"scripted-user": "user"}
#: the stand-in judge (accepts every claim, labels emotions with the lexicon; see
#: ``emotau.models.scripted.ScriptedJudge``)
JUDGE_MODELS = {"scripted-judge": "judge"}
ALL_MODELS = {**AGENT_MODELS, **USER_MODELS, **JUDGE_MODELS}


@dataclass
class Faults:
    latency: float = 0.0
    latency_dist: str = "fixed"  # fixed | uniform | exponential (mean = latency)
    error_rate: float = 0.0  # HTTP 500
    rate_limit_rate: float = 0.0  # HTTP 429
    timeout_rate: float = 0.0  # hang for hang_seconds
    hang_seconds: float = 300.0
    malformed_rate: float = 0.0  # tool-call arguments cut mid-JSON
    empty_rate: float = 0.0  # no content, no tool calls
    empty_length_rate: float = 0.0  # whitespace only, finish_reason "length"
    reject_tools: bool = False  # HTTP 400 for requests with tools, like vLLM without a parser
    reject_required: bool = False  # HTTP 400 for tool_choice="required", like vLLM 0.32
    tools_error_rate: float = 0.0  # HTTP 500 for requests with tools (a crashing tool parser)
    empty_above_temperature: float | None = None  # empty replies when sampled hotter
    max_model_len: int | None = None  # a context limit (a setting, not a fault)

    def check(self) -> None:
        rates = [
            self.error_rate,
            self.rate_limit_rate,
            self.timeout_rate,
            self.malformed_rate,
            self.empty_rate,
            self.empty_length_rate,
        ]
        if not all(math.isfinite(r) and 0 <= r <= 1 for r in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be in [0, 1] and add up to at most 1")
        if not all(math.isfinite(x) and x >= 0 for x in (self.latency, self.hang_seconds)):
            raise ValueError("latency and hang time must be finite and >= 0")
        if self.latency_dist not in ("fixed", "uniform", "exponential"):
            raise ValueError("latency distribution must be fixed, uniform or exponential")
        if not (math.isfinite(self.tools_error_rate) and 0 <= self.tools_error_rate <= 1):
            raise ValueError("the tools error rate must be in [0, 1]")
        t = self.empty_above_temperature
        if t is not None and not (math.isfinite(t) and t >= 0):
            raise ValueError("the temperature for empty replies must be finite and >= 0")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError("max model length must be at least 1")


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    handler_seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "handler_seconds": round(self.handler_seconds, 6),
            "faults": dict(self.faults),
        }


class MockBackend:
    """Turns an OpenAI request into a scripted reply, then applies behaviours and faults."""

    def __init__(
        self,
        faults: Faults,
        skill: float = 0.92,
        seed: int = 0,
        oracle_domains: tuple[str, ...] = (),
    ) -> None:
        faults.check()
        if not (math.isfinite(skill) and 0 <= skill <= 1):
            raise ValueError("skill must be a number from 0 to 1")
        self.faults = faults
        self.skill = skill
        self.rng = random.Random(seed)
        self.stats = Stats()
        self._domains: dict[str, tuple[ScriptedAgent, ScriptedUser]] = {}
        # for clients that send no metadata (e.g. upstream tau-bench's own run()): recognise a
        # task from its instruction in the user prompt, and tag the customer's first message
        self._by_instruction: dict[str, tuple[str, int]] = {}
        self._allowed = frozenset(oracle_domains)
        for ref in oracle_domains:
            for task in load_domain(ref).tasks():
                self._by_instruction[task.instruction.strip()] = (ref, task.id)

    def infer_metadata(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Episode metadata from the conversation itself ({} if the task is not recognised)."""
        texts = [str(m.get("content") or "") for m in messages]
        for text in texts:
            for instruction, (ref, task_id) in self._by_instruction.items():
                if instruction in text:
                    return {
                        "domain_ref": ref,
                        "domain": ref,
                        "task_id": task_id,
                        "variant": "control",
                        "trial": 0,
                        "seed": 0,
                    }
            found = _TAG_RE.search(text)
            if found:
                return {
                    "domain_ref": found[1],
                    "domain": found[1],
                    "task_id": int(found[2]),
                    "variant": "control",
                    "trial": 0,
                    "seed": 0,
                }
        return {}

    def _models_for(self, ref: str) -> tuple[ScriptedAgent, ScriptedUser]:
        if ref not in self._domains:
            if ref not in self._allowed and not _installed_domain(ref):
                # a request never names code for the server to import: only installed domains
                # and those on the command line are served
                raise UserError(
                    f"the mock server does not serve domain {ref!r}: it serves the installed "
                    "domains and those given with --oracle-domains"
                )
            dom: Domain = load_domain(ref)
            self._domains[ref] = (ScriptedAgent(dom, {"skill": self.skill}), ScriptedUser(dom))
        return self._domains[ref]

    def latency(self) -> float:
        f = self.faults
        if f.latency <= 0:
            return 0.0
        if f.latency_dist == "uniform":
            return self.rng.uniform(0, 2 * f.latency)
        if f.latency_dist == "exponential":
            return self.rng.expovariate(1 / f.latency)
        return f.latency

    def draw_fault(self) -> str | None:
        f = self.faults
        u = self.rng.random()
        for name, rate in (
            ("http_500", f.error_rate),
            ("http_429", f.rate_limit_rate),
            ("timeout", f.timeout_rate),
            ("malformed", f.malformed_rate),
            ("empty", f.empty_rate),
            ("empty_length", f.empty_length_rate),
        ):
            if u < rate:
                return name
            u -= rate
        return None

    async def reply(self, body: dict[str, Any], meta: dict[str, Any]) -> ChatResponse:
        model = body.get("model", "")
        tools = body.get("tools") or None
        choice = body.get("tool_choice")
        req = ChatRequest(body.get("messages") or [], tools, choice, meta)
        behaviour = ALL_MODELS[model]
        tag = ""
        if not meta and self._by_instruction:
            meta = self.infer_metadata(req.messages)
            req.metadata = meta
            if (
                meta
                and behaviour == "user"
                and not any(m.get("role") == "assistant" for m in req.messages)
            ):  # the agent learns the task from this tag in the customer's first message
                tag = f" [{meta['domain_ref']}#{meta['task_id']}]"
        if not meta:
            return _probe_reply(req, behaviour)
        if behaviour == "judge":
            return await ScriptedJudge().complete(req)
        agent, user = self._models_for(str(meta.get("domain_ref") or meta["domain"]))
        if behaviour == "user":
            r = await user.complete(req)
            r.content = (r.content or "") + tag
            return r
        if (behaviour == "notools" and choice != "required") or behaviour == "nevertools":
            return ChatResponse("I have taken care of that for you. Anything else?")
        if behaviour == "blank":
            return _blank(body, req)
        r = await agent.complete(req)
        if behaviour == "badtextcalls" and r.tool_calls and not _told_unreadable(req.messages):
            c = r.tool_calls[0]  # cut off mid-JSON, the tag never closed: out of tokens
            call = json.dumps({"name": c.name, "arguments": json.loads(c.arguments or "{}")})
            text = "<tool_call>\n" + call[: len(call) // 2]
            return ChatResponse(text, [], None, r.prompt_tokens, 16, finish_reason="length")
        if behaviour in ("textcalls", "badtextcalls") and r.tool_calls:
            text = "\n".join(
                "<tool_call>"
                + json.dumps({"name": c.name, "arguments": json.loads(c.arguments or "{}")})
                + "</tool_call>"
                for c in r.tool_calls
            )
            r = ChatResponse(text, [], None, r.prompt_tokens, r.completion_tokens)
        elif behaviour == "think":
            r.content = "<think>Check the policy before acting.</think>" + (r.content or "")
        return r


def _blank(body: dict[str, Any], req: ChatRequest) -> ChatResponse:
    """Whitespace that used up the request's whole token budget (``finish_reason`` length)."""
    budget = body.get("max_tokens")
    n = budget if isinstance(budget, int) and budget > 0 else _BLANK_TOKENS
    prompt = sum(len(str(m.get("content") or "")) for m in req.messages) // 4
    return ChatResponse(_BLANK, [], None, prompt, n, finish_reason="length")


def _told_unreadable(messages: list[dict[str, Any]]) -> bool:
    """Whether the agent was already told that a ``<tool_call>`` text of its was unreadable."""
    return any(
        m.get("role") == "tool" and "could not be read" in str(m.get("content") or "")
        for m in messages
    )


def _probe_reply(req: ChatRequest, behaviour: str) -> ChatResponse:
    """A generic answer to a request that is not part of an episode (doctor's probes)."""
    if behaviour == "blank":
        return _blank({}, req)
    tools = [t for t in (req.tools or []) if t["function"]["name"] != RESPOND]
    refuses = (behaviour == "notools" and req.tool_choice != "required") or (
        behaviour == "nevertools"
    )
    if behaviour == "user" or not tools or refuses:
        text = "ready"
        if behaviour == "think":
            text = "<think>The user wants one word.</think>ready"
        return ChatResponse(text, prompt_tokens=20, completion_tokens=1)
    fn = tools[0]["function"]
    props = fn.get("parameters", {}).get("properties", {})
    args = {k: ("A1B2C3" if v.get("type") == "string" else 1) for k, v in props.items()}
    if behaviour in ("textcalls", "badtextcalls"):
        call = json.dumps({"name": fn["name"], "arguments": args})
        return ChatResponse(f"<tool_call>{call}</tool_call>", prompt_tokens=20, completion_tokens=9)
    content = "<think>I need the tool.</think>" if behaviour == "think" else None
    call = ToolCall("call_probe", fn["name"], json.dumps(args))
    return ChatResponse(content, [call], prompt_tokens=20, completion_tokens=9)


def _installed_domain(ref: str) -> bool:
    """An installed domain (an entry point) or a family of one: never a module a request names."""
    from emotau.domains import DOMAINS

    return bool(DOMAINS.canonical_or_none(ref) or DOMAINS.canonical_or_none(ref.partition(":")[0]))


def _completion_json(model: str, r: ChatResponse, token_ids: bool = False) -> dict[str, Any]:
    """The completion as vLLM writes it; ``token_ids`` (the request's ``return_token_ids``):
    made-up ids, one per counted token, at the top (prompt) and in the choice (reply)."""
    message: dict[str, Any] = {"role": "assistant", "content": r.content}
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in r.tool_calls
        ]
    out: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": SYNTHETIC_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": r.finish_reason or ("tool_calls" if r.tool_calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens,
        },
    }
    if token_ids:
        out["prompt_token_ids"] = [7 + i % 1000 for i in range(r.prompt_tokens)]
        out["choices"][0]["token_ids"] = [11 + i % 1000 for i in range(r.completion_tokens)]
    return out


def _estimate_tokens(body: dict[str, Any]) -> int:
    """The mock's token count of a request: its messages and tools as JSON, 4 characters a
    token (a real tokenizer is not needed to play a context limit)."""
    text = json.dumps(body.get("messages") or []) + json.dumps(body.get("tools") or [])
    return max(1, len(text) // 4)


def _unreadable_history_call(body: dict[str, Any]) -> str | None:
    """The first tool-call ``arguments`` in the request's history that is not a JSON object
    (vLLM refuses such a request with HTTP 400), or None."""
    for m in body.get("messages") or []:
        for c in (m.get("tool_calls") or []) if isinstance(m, dict) else []:
            args = (c.get("function") or {}).get("arguments") if isinstance(c, dict) else None
            if isinstance(args, dict):
                continue
            try:
                ok = isinstance(json.loads(args), dict) if isinstance(args, str) else False
            except ValueError:
                ok = False
            if not ok:
                return repr(args)[:80]
    return None


def _too_hot(body: dict[str, Any], above: float | None) -> bool:
    """Whether ``--empty-above-temperature`` empties this reply (no temperature: 1.0)."""
    if above is None:
        return False
    t = body.get("temperature", 1.0)
    return isinstance(t, int | float) and t > above


def _error(status: int, message: str) -> Any:
    from aiohttp import web

    body = {"error": {"message": message, "type": "mock_error", "code": status}}
    return web.json_response(body, status=status)


@dataclass(frozen=True)
class Spawned:
    url: str  # base URL, .../v1
    pid: int


@contextlib.contextmanager
def spawn(*args: str, env: Mapping[str, str] | None = None, port: int = 0) -> Iterator[Spawned]:
    """Run ``emotau mock-server --port PORT ARGS`` in its own process (PORT 0: a free one);
    yield its URL and pid.

    For tests, benchmarks and notebooks: the server is stopped when the block ends.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "emotau", "mock-server", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()  # "emotau mock server listening on http://127.0.0.1:P/v1"
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"mock server did not start: {line}{proc.stderr.read()}")
    try:
        yield Spawned(line.strip().rsplit(" ", 1)[-1], proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def make_app(backend: MockBackend) -> Any:
    """The aiohttp application (aiohttp is the ``mock`` extra)."""
    from aiohttp import web

    stats = backend.stats

    async def chat(request: web.Request) -> web.StreamResponse:
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        started = time.perf_counter()
        try:
            try:
                body = await request.json()
                meta = json.loads(request.headers.get(METADATA_HEADER) or "{}")
            except ValueError:
                return _error(400, "request body or metadata header is not valid JSON")
            model = body.get("model") if isinstance(body, dict) else None
            if model not in ALL_MODELS:
                return _error(404, f"model {model!r} does not exist")
            rejects = body.get("tool_choice", "auto") == "auto"  # like vLLM with no tool parser
            if backend.faults.reject_tools and body.get("tools") and rejects:
                return _error(
                    400,
                    '"auto" tool choice requires --enable-auto-tool-choice and '
                    "--tool-call-parser to be set",
                )
            if (
                backend.faults.reject_required
                and body.get("tools")
                and body.get("tool_choice") == "required"
            ):
                return _error(400, '"required" tool choice requires --tool-call-parser to be set')
            broken = _unreadable_history_call(body)
            if broken is not None:  # vLLM parses every call's arguments in the history
                return _error(400, f"tool call arguments in the messages are not JSON: {broken}")
            limit = backend.faults.max_model_len
            prompt_tokens = _estimate_tokens(body) if limit is not None else None
            if limit is not None and prompt_tokens is not None:
                wanted = body.get("max_tokens")
                wanted = wanted if isinstance(wanted, int) and wanted > 0 else 0
                if prompt_tokens + wanted > limit:
                    return _error(
                        400,
                        f"This model's maximum context length is {limit} tokens. However, you "
                        f"requested {prompt_tokens + wanted} tokens ({prompt_tokens} in the "
                        f"messages, {wanted} in the completion). Please reduce the length of "
                        "the messages or completion.",
                    )
            rate = backend.faults.tools_error_rate
            if rate and body.get("tools") and backend.rng.random() < rate:
                stats.faults["tools_500"] = stats.faults.get("tools_500", 0) + 1
                return _error(500, "injected server error on a request with tools")
            delay = backend.latency()
            if delay:
                await asyncio.sleep(delay)
            fault = backend.draw_fault()
            if fault:
                stats.faults[fault] = stats.faults.get(fault, 0) + 1
            if fault == "http_500":
                return _error(500, "injected server error")
            if fault == "http_429":
                return _error(429, "injected rate limit")
            if fault == "timeout":
                await asyncio.sleep(backend.faults.hang_seconds)
            try:
                r = await backend.reply(body, meta)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError, UserError) as exc:
                return _error(400, f"bad request for the mock server: {type(exc).__name__}: {exc}")
            if fault == "malformed" and r.tool_calls:
                c = r.tool_calls[0]
                cut = c.arguments[: max(1, len(c.arguments) // 2)]
                r.tool_calls[0] = ToolCall(c.id, c.name, cut)
            elif fault == "empty" or _too_hot(body, backend.faults.empty_above_temperature):
                r = ChatResponse(None if body.get("tools") else "", [])
            elif fault == "empty_length":
                r = _blank(body, ChatRequest(body.get("messages") or []))
            if prompt_tokens is not None:
                r.prompt_tokens = prompt_tokens
            ids = body.get("return_token_ids") is True
            return web.json_response(_completion_json(model, r, token_ids=ids))
        finally:
            stats.in_flight -= 1
            stats.handler_seconds += time.perf_counter() - started

    async def models(request: web.Request) -> web.StreamResponse:
        # every model asks for emotau's episode metadata: the scripted ones play an oracle
        data = [
            {
                "id": m,
                "object": "model",
                "owned_by": "emotau-mock",
                METADATA_FIELD: {"metadata": True},
            }
            for m in ALL_MODELS
        ]
        if backend.faults.max_model_len is not None:  # as vLLM lists it
            for entry in data:
                entry["max_model_len"] = backend.faults.max_model_len
        return web.json_response({"object": "list", "data": data})

    async def health(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def stats_view(request: web.Request) -> web.StreamResponse:
        return web.json_response(stats.as_dict())

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats_view)
    return app


async def serve(backend: MockBackend, host: str, port: int, ready: Any = None) -> None:
    """Serve until cancelled; ``ready(port)`` is called once listening (port 0 = any free)."""
    from aiohttp import web

    runner = web.AppRunner(make_app(backend), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if ready is not None:
        ready(bound)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
