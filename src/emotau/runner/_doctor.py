"""Checking endpoints before paying for a run: ``emotau doctor`` and the run's preflight.

For every configured role that is served over HTTP, ``doctor`` checks:
- the endpoint answers, and the model is listed (with its ``max_model_len`` when listed);
- a plain chat works at the role's sampling settings (temperature, max_tokens, seed,
  extra_body: the body a run sends, see ``OpenAIClient.request_body``);
- whether reasoning leaks into the visible content (``<think>`` in ``content``);
- for the agent, whether its first request (the strategy's system prompt with the domain's
  policy, the tools, one customer message) fits the model's context;
- for a tool-calling agent, whether the model calls a tool on its own under
  ``tool_choice=auto`` (several probes), whether ``required`` works, and whether calls
  arrive as text;
- how long a single request takes.
Doctor's probes are single requests, never retried: a failed attempt is reported, not hidden
behind retries. It ends with a verdict per role and the fix in words.

``preflight`` is the quick version that ``emotau run`` does before the first episode (with
the run's retries): reachable, model listed, the agent's real first request (with
``max_tokens=1``) accepted and within the context, and under ``tool_choice=required`` a tool
call back. It refuses with a one-line :class:`UserError`.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from emotau.core import ChatRequest, ChatResponse, ModelClient, UserError
from emotau.episode import ToolCallingAgent
from emotau.models import (
    ClientSettings,
    OpenAIClient,
    RetryConfig,
    provider_for,
    recover_tool_calls,
    split_reasoning,
)

if TYPE_CHECKING:
    from emotau.models import ModelConfig
    from emotau.runner._experiment import Experiment

PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up the current status of a customer's order by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order id."}},
            "required": ["order_id"],
        },
    },
}
PROBE_MESSAGES = [
    {
        "role": "system",
        "content": "You are a customer-support agent. Look facts up with your tools; never guess.",
    },
    {"role": "user", "content": "Hi, where is my order A1B2C3? What is its status?"},
]
CHAT_MESSAGES = [{"role": "user", "content": "Reply with the single word: ready"}]
#: the customer's first message in the agent's first request (the preflight's context check)
FIRST_USER_MESSAGE = "Hi, I need some help with my booking, please."
#: max_tokens of doctor's probes when the role sets none (a run then leaves it to the server)
PROBE_MAX_TOKENS = 512
#: the preflight's tries of a probe whose reply is empty (no text, no tool call)
_EMPTY_TRIES = 3
_CONTEXT_RE = re.compile(r"context length|context window|max_model_len", re.IGNORECASE)
_LIMIT_RE = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_ASKED_RE = re.compile(r"However,\D*?(\d+)|request has (\d+) input tokens", re.IGNORECASE)
_SERVE_FLAGS = (
    "start vLLM with --enable-auto-tool-choice and the family's --tool-call-parser "
    "(emotau serve does)"
)
_CONTEXT_FIX = (
    "start the server with a larger --max-model-len (emotau serve --max-model-len N), "
    "or use a model with a longer context"
)


@dataclass
class RoleReport:
    role: str
    model: str
    base_url: str
    checks: list[tuple[str, str, str]] = field(default_factory=list)  # (check, status, detail)
    verdict: str = "ok"  # ok | warn | fail
    fixes: list[str] = field(default_factory=list)
    #: the temperature the probes were sent with (None: the server's default)
    temperature: float | None = None

    def add(self, check: str, status: str, detail: str) -> None:
        self.checks.append((check, status, detail))
        rank = {"ok": 0, "warn": 1, "fail": 2}
        if rank[status] > rank[self.verdict]:
            self.verdict = status

    def fix(self, text: str) -> None:
        if text not in self.fixes:
            self.fixes.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "verdict": self.verdict,
            "checks": [{"check": c, "status": s, "detail": d} for c, s, d in self.checks],
            "fixes": self.fixes,
        }


# ---------------------------------------------------------------------- shared helpers
def _http_roles(exp: Experiment) -> list[tuple[str, ModelConfig]]:
    """The roles served by the ``openai`` provider: the only ones these checks know how to
    probe (a plugin provider's client is its own business)."""
    return [(r, c) for r, c in exp.roles() if provider_for(c) == "openai"]


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _url_hint(base_url: str | None) -> str:
    """`` (did you mean .../v1?)`` when a base URL's path does not end in ``/v1``."""
    if not base_url or urlsplit(base_url).path.rstrip("/").endswith("/v1"):
        return ""
    return f" (did you mean {base_url.rstrip('/')}/v1?)"


def _explain(client: Any, cfg: ModelConfig, exc: BaseException) -> str:
    """The error in a few redacted words; a 404 adds the ``/v1`` hint when it may be that."""
    text = client.describe(exc)  # redacted before it is cut
    if _status(exc) == 404:
        text += _url_hint(cfg.base_url)
    return text


def _sampling(cfg: ModelConfig) -> str:
    """The role's sampling settings in words, as the probes send them."""
    parts = [
        f"temperature {cfg.temperature:g}"
        if cfg.temperature is not None
        else "the server's default temperature",
        f"max_tokens {cfg.max_tokens}"
        if cfg.max_tokens is not None
        else f"max_tokens {PROBE_MAX_TOKENS} (the role sets none)",
    ]
    if cfg.seed is not None:
        parts.append(f"seed {cfg.seed}")
    if cfg.extra_body:
        parts.append("extra_body " + ", ".join(sorted(cfg.extra_body)))
    return ", ".join(parts)


def _context_overflow(exc: BaseException) -> tuple[int | None, int | None] | None:
    """``(limit, asked)`` from a 400 about the context length (each None if not stated)."""
    if _status(exc) != 400:
        return None
    text = str(getattr(exc, "message", "") or exc)
    if not _CONTEXT_RE.search(text):
        return None
    limit = _LIMIT_RE.search(text)
    asked = _ASKED_RE.search(text)
    return (
        int(limit[1]) if limit else None,
        int(next(g for g in asked.groups() if g)) if asked else None,
    )


def _too_long(model: str, limit: int | None, asked: int | None, max_tokens: int | None) -> str:
    """Why the agent's first request does not fit, in words."""
    first = "the agent's first request (the domain's policy and tools)"
    has = f"model {model!r} has max_model_len {limit}" if limit else None
    if asked is None:
        return f"{first} is too long for " + (
            f"model {model!r} (max_model_len {limit})" if limit else f"the context of {model!r}"
        )
    plus = f" plus max_tokens {max_tokens}" if max_tokens else ""
    return f"{first} needs {asked} tokens{plus}; " + (has or f"more than {model!r} takes")


def _max_model_len(entry: dict[str, Any] | None) -> int | None:
    value = (entry or {}).get("max_model_len")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


async def _listing(client: Any) -> dict[str, dict[str, Any]]:
    """The endpoint's ``/models`` entries by id (``openai.NotFoundError`` when it has none)."""
    page = await client.call_api(lambda api: api.models.list())
    entries = [m.model_dump() for m in page.data]
    client.learn_models(entries)  # who asks for the episode metadata
    return {e["id"]: e for e in entries if isinstance(e.get("id"), str)}


def _listed(served: dict[str, dict[str, Any]]) -> str:
    names = list(served)
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


async def _send(client: Any, body: dict[str, Any]) -> Any:
    """One chat completion with exactly ``body`` (retried as ``client`` retries)."""
    rest = dict(body)
    model, messages = rest.pop("model"), rest.pop("messages")
    return await client.call_api(
        lambda api: api.chat.completions.create(model=model, messages=messages, extra_body=rest)
    )


def _body(client: Any, request: ChatRequest, max_tokens: int | None) -> dict[str, Any]:
    """The run's body for ``request``; ``max_tokens`` replaces the role's when given."""
    body = client.request_body(request)
    if max_tokens is not None:  # in the field the role uses (o-series models refuse max_tokens)
        body["max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"] = (
            max_tokens
        )
    return body


class _Captured(Exception):
    def __init__(self, request: ChatRequest) -> None:
        super().__init__("captured")
        self.request = request


class _Capture(ModelClient):
    """Stops the agent strategy at its first model call and keeps the request."""

    async def complete(self, request: ChatRequest) -> ChatResponse:
        raise _Captured(request)


async def first_request(exp: Experiment) -> ChatRequest | None:
    """The agent's first request as an episode builds it: the strategy's system prompt (the
    domain's policy; the tools as text for text-acting strategies), the tools and tool_choice
    as the run sends them, and one customer message. None when the strategy cannot be driven
    outside an episode (a plugin that needs the episode's metadata): then it is not checked."""
    try:
        agent = exp.agent_strategy(
            _Capture(), exp.domain.policy(), exp.domain.tools(), {}, exp.spec.tool_choice
        )
        agent.add_user_message(FIRST_USER_MESSAGE)
        await agent.act()
    except _Captured as got:
        return got.request
    except Exception:
        return None
    return None  # no model call on its first turn: nothing to check


def _tool_call_back(choice: Any) -> tuple[bool, bool]:
    """``(called, as_text)`` of one choice: whether the reply holds a call of the probe tool,
    and whether it came as text that emotau recovers. A ``<tool_call>`` block that cannot be
    read is no call, unless the reply was cut at its token limit (``finish_reason="length"``):
    then the model was writing one, as a server that enforces ``required`` makes it do."""
    msg = choice.message
    if msg.tool_calls:
        return True, False
    calls = recover_tool_calls(msg.content or "", ["get_order_status"])[0]
    cut = getattr(choice, "finish_reason", None) == "length"
    found = any(c.error is None or cut for c in calls)
    return found, found


def _reject_fix(tool_choice: str) -> str:
    """What to do when a server rejects requests with tools under ``tool_choice``."""
    if tool_choice == "required":
        return (
            "vLLM refuses tool_choice='required' without a tool-call parser: "
            f"{_SERVE_FLAGS}, or use --agent-strategy react"
        )
    return f"{_SERVE_FLAGS}, or try --tool-choice required, or --agent-strategy react"


# ---------------------------------------------------------------------------- preflight
async def preflight(exp: Experiment, on_wait: Callable[[str], None] | None = None) -> None:
    """Refuse to start (UserError) when an endpoint cannot be used as the run will use it.

    ``on_wait`` gets one short line per retry of a probe: what it waits for, the attempt, the
    error and the wait (``emotau run`` prints them, unless ``--quiet``)."""
    roles = _http_roles(exp)
    if not roles:
        return  # all scripted: nothing to reach (and no need to import openai)
    import openai

    for role, cfg in roles:
        client: Any = exp.make_client(role, cfg)
        where = f"{role} endpoint {cfg.base_url or 'https://api.openai.com/v1'}"
        if on_wait is not None and hasattr(client, "on_retry"):
            client.on_retry = _retry_line(where, on_wait)
        try:
            served: dict[str, dict[str, Any]] | None
            try:
                served = await _listing(client)
            except openai.NotFoundError:
                served = None  # no /models on this server: a one-token chat must do
            if served is not None and cfg.model not in served:
                raise UserError(
                    f"{role} model {cfg.model!r} is not served at {where}; it serves: "
                    f"{_listed(served) or 'nothing'}"
                )
            if served is None or cfg.extra_body:  # extra_body too: a rejected field fails now
                await _send(client, _body(client, ChatRequest(CHAT_MESSAGES), 1))
            if role == "agent":
                limit = _max_model_len(served.get(cfg.model) if served else None)
                await _preflight_agent(exp, client, cfg, where, limit)
        except UserError:
            raise
        except Exception as exc:
            failed = " (the server failed: see its log)" if (_status(exc) or 0) >= 500 else ""
            raise UserError(
                f"{where} cannot be used: {_explain(client, cfg, exc)}{failed} "
                "(--no-preflight to skip)"
            ) from None
        finally:
            await client.aclose()


async def probe_endpoints(exp: Experiment) -> str | None:
    """One one-token chat per HTTP role, no retries: None when every endpoint answers, else
    what failed (the circuit breaker's probe)."""
    for role, cfg in _http_roles(exp):
        client: Any = _probe_client(exp, role, cfg)
        try:
            await _send(client, _body(client, ChatRequest(CHAT_MESSAGES), 1))
        except Exception as exc:
            return f"{role} endpoint {cfg.base_url or 'https://api.openai.com/v1'}: " + (
                _explain(client, cfg, exc)
            )
        finally:
            await client.aclose()
    return None


#: how many characters of an error a preflight retry line shows
_RETRY_REASON_WIDTH = 60


def _retry_line(where: str, say: Callable[[str], None]) -> Callable[[int, int, str, float], None]:
    """The preflight's retry callback: one short line per retry, handed to ``say``."""

    def on_retry(attempt: int, attempts: int, reason: str, wait: float) -> None:
        why = " ".join(reason.split())
        if len(why) > _RETRY_REASON_WIDTH:
            why = why[: _RETRY_REASON_WIDTH - 3] + "..."
        say(
            f"preflight: waiting for the {where}: attempt {attempt} of {attempts} failed: "
            f"{why}; next try in {wait:.2f} s"
        )

    return on_retry


async def _preflight_agent(
    exp: Experiment, client: Any, cfg: ModelConfig, where: str, limit: int | None
) -> None:
    """The agent's real first request with ``max_tokens=1``: a server that rejects its tools
    or whose context is too small for it fails now; under ``tool_choice=required``, one probe
    must get a tool call back."""
    request = await first_request(exp)
    if request is None:
        return
    tool_choice = request.tool_choice or "auto"
    try:
        r = await _send(client, _body(client, request, 1))
    except Exception as exc:
        overflow = _context_overflow(exc)
        if overflow is not None:
            raise UserError(
                f"{where} cannot take the run: "
                f"{_too_long(cfg.model, overflow[0] or limit, overflow[1], None)}; "
                f"{_CONTEXT_FIX} (--no-preflight to skip)"
            ) from None
        if request.tools and _rejected(exc):
            raise UserError(
                f"{where} rejects tool calls with tool_choice={tool_choice!r}: "
                f"{_explain(client, cfg, exc)}; {_reject_fix(tool_choice)} (--no-preflight to skip)"
            ) from None
        raise
    prompt = getattr(getattr(r, "usage", None), "prompt_tokens", None) or 0
    if limit and prompt and prompt + (cfg.max_tokens or 1) > limit:
        raise UserError(
            f"{where} cannot take the run: "
            f"{_too_long(cfg.model, limit, prompt, cfg.max_tokens)}; {_CONTEXT_FIX}, "
            "or a smaller max_tokens (--no-preflight to skip)"
        )
    if request.tools and tool_choice == "required":
        body = _body(client, ChatRequest(PROBE_MESSAGES, [PROBE_TOOL], "required"), None)
        if "max_completion_tokens" not in body:
            body.setdefault("max_tokens", 256)
        for _ in range(_EMPTY_TRIES):  # an empty reply is retried, as the run retries it
            choice = (await _send(client, body)).choices[0]
            reply = choice.message
            if reply.tool_calls or (reply.content or "").strip():
                break
        if not _tool_call_back(choice)[0]:
            said = (reply.content or "").strip().replace("\n", " ")[:60]
            raise UserError(
                f"{where} ignores tool_choice='required': a request that requires a tool call "
                f"got {('text ' + repr(said)) if said else 'no tool call'} back; use a server "
                f"that enforces it: {_SERVE_FLAGS}, or use --agent-strategy react "
                "(--no-preflight to skip)"
            )


# ------------------------------------------------------------------------------- doctor
async def diagnose(exp: Experiment, probes: int = 5) -> list[RoleReport]:
    """The full check of every HTTP role (see the module docstring)."""
    reports = []
    for role, cfg in _http_roles(exp):
        reports.append(await _diagnose_role(exp, role, cfg, probes))
    return reports


def _probe_client(exp: Experiment, role: str, cfg: ModelConfig) -> Any:
    """The role's client without retries: doctor reports a failed attempt as it is."""
    run = exp.client_settings()
    settings = ClientSettings(
        max_connections=4,
        retry=RetryConfig(max_attempts=1),
        extra_headers=dict(run.extra_headers),
    )
    try:
        return OpenAIClient(role, cfg, settings)
    except ValueError as exc:
        raise UserError(f"{role} model: {exc}") from None


async def _diagnose_role(exp: Experiment, role: str, cfg: ModelConfig, probes: int) -> RoleReport:
    import openai

    rep = RoleReport(role, cfg.model, cfg.base_url or "https://api.openai.com/v1")
    rep.temperature = cfg.temperature
    client: Any = _probe_client(exp, role, cfg)
    latencies: list[float] = []

    def describe(exc: BaseException) -> str:
        return _explain(client, cfg, exc)

    async def call(request: ChatRequest, max_tokens: int | None = None) -> Any:
        """One attempt with the run's body; its latency is kept when it succeeds."""
        body = _body(client, request, max_tokens)
        if "max_completion_tokens" not in body:
            body.setdefault("max_tokens", PROBE_MAX_TOKENS)
        t0 = time.perf_counter()
        out = await _send(client, body)
        latencies.append(time.perf_counter() - t0)
        return out

    try:
        limit = None
        try:
            served = await _listing(client)
            if cfg.model in served:
                limit = _max_model_len(served[cfg.model])
                ctx = f", max_model_len {limit}" if limit else ""
                rep.add("model listed", "ok", f"{len(served)} model(s) served{ctx}")
            else:
                rep.add("model listed", "fail", f"not in: {_listed(served) or 'nothing'}")
                rep.fix(f"use one of the served models, or start a server for {cfg.model}")
                return rep
        except openai.NotFoundError:
            hint = _url_hint(cfg.base_url)
            rep.add("model listed", "warn", f"the server has no /models endpoint{hint}")
        except Exception as exc:
            rep.add("reachable", "fail", describe(exc))
            rep.fix(f"start the server or fix --{role}-base-url")
            return rep
        rep.add("sampling", "ok", f"probes sent as the run sends: {_sampling(cfg)}")
        at = (
            f"at temperature {cfg.temperature:g}"
            if cfg.temperature is not None
            else "at the server's default temperature"
        )
        try:
            r = await call(ChatRequest(CHAT_MESSAGES))
            msg = r.choices[0].message
            raw = msg.content or ""
            visible, reasoning = split_reasoning(raw, getattr(msg, "reasoning_content", None))
            if visible:
                rep.add("chat", "ok", f"replied {visible[:40]!r} {at}")
            else:
                rep.add("chat", "fail", f"empty reply {at}")
                rep.fix(
                    f"the model returns nothing {at}: check the chat template and max_tokens, "
                    "or try another --temperature"
                )
            if "<think>" in raw.lower() or "</think>" in raw.lower():
                rep.add("reasoning", "warn", "reasoning appears in content (emotau strips it)")
                rep.fix(
                    "start vLLM with a --reasoning-parser so reasoning is kept apart "
                    "(emotau serve picks it from the model family)"
                )
            elif reasoning:
                rep.add("reasoning", "ok", "kept apart from the content")
        except Exception as exc:
            rep.add("chat", "fail", describe(exc))
            if _rejected(exc):
                rep.fix(f"the server refuses a plain chat {at}: check the role's sampling settings")
            else:
                _fix_for_error(rep, exc, "a plain chat")
            return rep
        # native tool calls: tool-calling and its subclasses (few-shot)
        tool_probes = role == "agent" and issubclass(exp.agent_strategy, ToolCallingAgent)
        if role == "agent":
            await _first_request_check(exp, rep, cfg, call, limit, describe, tool_probes)
        if tool_probes:
            await _tool_probes(rep, call, probes, describe, exp.spec.tool_choice)
        if latencies:
            rep.add(
                "latency",
                "ok",
                f"median {1000 * statistics.median(latencies):.0f} ms of "
                f"{len(latencies)} request(s), each a single attempt (no retries)",
            )
    finally:
        await client.aclose()
    return rep


def _rejected(exc: BaseException) -> bool:
    """A 400-class answer that refuses the request itself (not a wrong URL, not busy)."""
    status = _status(exc)
    return status is not None and 400 <= status < 500 and status not in _NOT_REFUSALS


#: 4xx answers that say nothing about the request's content: the URL, the key, a busy server
_NOT_REFUSALS = (401, 403, 404, 408, 409, 429)


def _fix_for_error(rep: RoleReport, exc: BaseException, what: str) -> None:
    """The fix for an error that is no refusal of the request: the server failed, did not
    answer or is busy, or the URL is wrong."""
    status = _status(exc)
    if status is None:
        rep.fix(f"the server did not answer {what}: check that it runs, see its log")
    elif status >= 500:
        rep.fix(f"the server failed on {what} (HTTP {status}): see the server's log")
    elif status == 404:
        hint = _url_hint(rep.base_url)
        rep.fix(f"fix the base URL{hint}" if hint else f"the server has no route for {what}")
    elif status in (408, 409, 429):
        rep.fix(f"the server is busy (HTTP {status}): try again, or lower --max-concurrency")
    elif status in (401, 403):
        rep.fix(
            f"the server refuses the API key (HTTP {status}): check the role's api_key_env "
            "(--api-key-env) and that variable's value"
        )


async def _first_request_check(
    exp: Experiment,
    rep: RoleReport,
    cfg: ModelConfig,
    call: Any,
    limit: int | None,
    describe: Any,
    tool_probes: bool,
) -> None:
    """The agent's first request (``max_tokens=1``) against the model's context. A refused
    request with tools gets its fix from the tool probes when they run."""
    request = await first_request(exp)
    if request is None:
        rep.add("first request", "warn", "the agent strategy cannot be driven outside an episode")
        return
    try:
        r = await call(request, 1)
    except Exception as exc:
        overflow = _context_overflow(exc)
        if overflow is not None:
            rep.add(
                "first request",
                "fail",
                _too_long(cfg.model, overflow[0] or limit, overflow[1], None),
            )
            rep.fix(_CONTEXT_FIX)
        else:
            rep.add("first request", "fail", describe(exc))
            if not _rejected(exc):
                _fix_for_error(rep, exc, "the agent's first request")
            elif request.tools and not tool_probes:
                rep.fix(_reject_fix(request.tool_choice or "auto"))
            elif not request.tools:
                rep.fix("the server refuses the agent's first request: see the detail above")
        return
    prompt = getattr(getattr(r, "usage", None), "prompt_tokens", None) or 0
    if limit and prompt and prompt + (cfg.max_tokens or 1) > limit:
        rep.add("first request", "fail", _too_long(cfg.model, limit, prompt, cfg.max_tokens))
        rep.fix(_CONTEXT_FIX + ", or a smaller max_tokens")
        return
    size = f"{prompt} prompt tokens" if prompt else "accepted"
    rep.add("first request", "ok", size + (f" of max_model_len {limit}" if limit else ""))


async def _tool_probes(
    rep: RoleReport, call: Any, probes: int, describe: Any, run_choice: str
) -> None:
    native = text = 0
    auto_rejected = auto_failed = False
    try:
        for _ in range(probes):
            r = await call(ChatRequest(PROBE_MESSAGES, [PROBE_TOOL], "auto"))
            called, as_text = _tool_call_back(r.choices[0])
            if as_text:
                text += 1
            elif called:
                native += 1
    except Exception as exc:
        auto_failed = True
        rep.add("tools (auto)", "fail", describe(exc))
        auto_rejected = _rejected(exc)  # only a 400-class answer refuses tool_choice=auto
        if not auto_rejected:
            _fix_for_error(rep, exc, "a request with tools")
        else:
            rep.fix(
                "the server rejects tool_choice=auto: start vLLM with --enable-auto-tool-choice "
                "--tool-call-parser <parser for the family> (emotau serve does this)"
            )
    if not auto_failed:
        status = "ok" if native == probes else ("warn" if native or text else "fail")
        if run_choice == "required" and status == "fail":
            status = "warn"  # this run forces the call: auto is not what it uses
        detail = f"{native} of {probes} probes called a tool natively"
        if text:
            detail += f", {text} wrote the call as text (emotau recovers it)"
        rep.add("tools (auto)", status, detail)
    try:
        r = await call(ChatRequest(PROBE_MESSAGES, [PROBE_TOOL], "required"))
        forced, as_text = _tool_call_back(r.choices[0])
        detail = "called a tool" + (" (as text, recovered)" if as_text else "")
        rep.add(
            "tools (required)",
            "ok" if forced else "fail",
            detail if forced else "no tool call even when required",
        )
        if not forced and run_choice == "required":
            rep.fix(
                "the server ignores tool_choice=required, which this run uses: "
                f"{_SERVE_FLAGS}, or use --agent-strategy react"
            )
    except Exception as exc:
        forced = False
        rep.add("tools (required)", "fail", describe(exc))
        if not _rejected(exc):
            _fix_for_error(rep, exc, "a request with tools")
        elif run_choice == "required":
            rep.fix(f"the server rejects tool_choice=required: {_reject_fix('required')}")
    if auto_failed:
        if auto_rejected and forced and run_choice != "required":
            rep.fix("tool_choice=required works here: run with --tool-choice required")
        return
    if run_choice == "required":
        return  # the run does not use auto: its probes are information, not a fix
    if native == 0 and text == 0:
        rep.fix(
            f"0 of {probes} probes called a tool under auto: "
            + ("use --tool-choice required, or a larger model" if forced else "use a larger model")
        )
    elif native == 0 and text:
        rep.fix(
            "tool calls arrive as text: start vLLM with --enable-auto-tool-choice and the "
            "family's --tool-call-parser (emotau serve picks it)"
        )
    elif native < probes:
        rep.fix(
            f"only {native} of {probes} probes called a tool under auto: consider "
            "--tool-choice required"
        )


def render(reports: list[RoleReport]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for rep in reports:
        temp = (
            f"temperature {rep.temperature:g}"
            if rep.temperature is not None
            else "the server's default temperature"
        )
        table = Table(  # model output and server errors are text, never markup
            title=Text(f"{rep.role}: {rep.model} at {rep.base_url} ({temp})"), title_justify="left"
        )
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        for c, s, d in rep.checks:
            table.add_row(Text(c), Text(s.upper(), style=colour[s]), Text(d))
        parts.append(table)
        verdict = Text(f"verdict for {rep.role}: {rep.verdict.upper()}", style=colour[rep.verdict])
        parts.append(verdict)
        for fix in rep.fixes:
            parts.append(Text(f"  fix: {fix}"))
    if not reports:
        parts.append(Text("no role is served over HTTP (all scripted): nothing to check"))
    return Group(*parts)
