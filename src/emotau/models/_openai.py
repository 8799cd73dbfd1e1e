"""The OpenAI-compatible client: vLLM, SGLang, OpenAI, OpenRouter, Ollama, the mock server.

- One ``openai.AsyncOpenAI`` per role, its connection pool sized to the run's concurrency
  (no hidden cap), plus an optional per-endpoint limit (``max_concurrency`` of the role).
- Retries (``emotau.models._retry``: exponential backoff with full jitter, logged) on connection
  errors, timeouts, HTTP 408/409/429, 5xx and empty completions, within ``max_attempts`` per
  call and the episode's retry budget; then :class:`InfraError` (never scored, retried on
  resume). An empty completion whose ``finish_reason`` is ``"length"`` is not retried: the
  model spent its whole token budget on nothing and would do it again; it is returned, and the
  episode makes it the model's failure.
- Output normalisation: reasoning (``<think>`` blocks, ``reasoning_content``) is split off and
  never shown to the other party; tool calls written as text are recovered and flagged.
- The API key comes from the environment variable *named* in ``api_key_env``; it is never
  stored, logged or put into an error message.
- Blind by default: the episode's metadata (task, variant, emotions...) travels in the
  ``X-Emotau-Metadata`` header only to an endpoint that asks for it in its ``GET /models``
  (``"emotau": {"metadata": true}`` on the model's entry: emotau's mock server, which plays an
  oracle with it), or when the role's ``send_metadata`` says so. A real model never learns the
  experimental condition from a request; the body carries only the model's own inputs.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from emotau.core import ChatRequest, ChatResponse, InfraError, ModelClient, ToolCall
from emotau.models._parsing import recover_tool_calls, split_reasoning
from emotau.models._retry import OnRetry, RetriesExhausted, call_with_retries

if TYPE_CHECKING:
    from emotau.models._config import ModelConfig, RetryConfig

METADATA_HEADER = "X-Emotau-Metadata"
#: how a ``/models`` entry asks for the episode metadata: ``"emotau": {"metadata": true}``
METADATA_FIELD = "emotau"
#: transient failures of the ``/models`` probe after which an endpoint counts as not asking
_PROBE_TRIES = 3
#: what the mock server puts in ``system_fingerprint``: its replies come from scripted models
SYNTHETIC_FINGERPRINT = "emotau-scripted"
#: what the low-level post returns: the completion JSON as-is (a bare ``dict`` breaks openai 2.x)
_JSON = dict[str, Any]
#: statuses worth retrying besides 5xx
_RETRY_STATUS = {408, 409, 429}

T = TypeVar("T")


@dataclass
class ClientSettings:
    """Run-wide settings of HTTP clients (not part of a role's model config)."""

    max_connections: int = 64
    retry: RetryConfig | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    #: per-endpoint limits shared by every role of the run that uses the same base URL
    endpoint_limits: dict[str, int] = field(default_factory=dict)
    #: base URL -> the models served there that ask for the episode metadata (from /models)
    metadata_models: dict[str, frozenset[str]] = field(default_factory=dict)
    _semaphores: dict[str, asyncio.Semaphore] = field(default_factory=dict, repr=False)
    _probes: dict[str, asyncio.Future[frozenset[str] | None]] = field(
        default_factory=dict, repr=False
    )
    _probe_misses: dict[str, int] = field(default_factory=dict, repr=False)

    def rebind(self) -> None:
        """Forget the semaphores: the next event loop (one per ``asyncio.run``) makes its own."""
        self._semaphores.clear()
        self._probes.clear()

    async def models_wanting_metadata(
        self, base_url: str, probe: Callable[[], Awaitable[frozenset[str] | None]]
    ) -> frozenset[str]:
        """The models at ``base_url`` that ask for the episode metadata, learnt once per base
        URL with ``probe`` (concurrent callers share one probe). A probe that returns None (the
        endpoint did not answer) is tried again on a later call, a few times at most."""
        known = self.metadata_models.get(base_url)
        if known is not None:
            return known
        pending = self._probes.get(base_url)
        if pending is None:
            pending = self._probes[base_url] = asyncio.ensure_future(probe())
        found = await asyncio.shield(pending)
        if self._probes.get(base_url) is pending:
            del self._probes[base_url]
            if found is None:
                misses = self._probe_misses[base_url] = self._probe_misses.get(base_url, 0) + 1
                found = frozenset() if misses >= _PROBE_TRIES else None
            if found is not None:
                self.metadata_models[base_url] = found
        return found or frozenset()

    def semaphore(self, base_url: str | None) -> asyncio.Semaphore | None:
        key = base_url or "openai"
        limit = self.endpoint_limits.get(key)
        if limit is None:
            return None
        if key not in self._semaphores:
            self._semaphores[key] = asyncio.Semaphore(limit)
        return self._semaphores[key]


def models_wanting_metadata(listing: Any) -> frozenset[str]:
    """The ids of the models in a ``/models`` answer (or its ``data`` list) whose entry asks
    for the episode metadata (``"emotau": {"metadata": true}``)."""
    data = listing.get("data") if isinstance(listing, Mapping) else listing
    if not isinstance(data, list):
        return frozenset()
    return frozenset(
        m["id"]
        for m in data
        if isinstance(m, Mapping)
        and isinstance(m.get("id"), str)
        and isinstance(m.get(METADATA_FIELD), Mapping)
        and m[METADATA_FIELD].get("metadata") is True
    )


#: a bearer token in text a server sent back (an echoed Authorization header, say)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
#: terminal control: CSI and OSC escape sequences, other escapes, C0/C1 control characters
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, clear screen
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks
    r"|\x1b[@-_]?"  # other escapes
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 and C1 controls
)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret and every bearer token replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _BEARER.sub(r"\1 ***", text)


def printable(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (newlines and tabs
    become spaces): what an endpoint or a model wrote, safe to print."""
    return _CONTROL.sub("", text.replace("\n", " ").replace("\t", " "))


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def describe_error(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """A short, printable description of a transport or API error: ``secrets`` (and any bearer
    token) are redacted from the whole text before it is cut, so that no fragment of a key
    that straddles the cut survives."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        body = getattr(exc, "message", "") or str(exc)
        return _cut(printable(redact(f"HTTP {exc.status_code}: {body}", secrets)), 300)
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is a subclass
        cause = exc.__cause__
        text = printable(redact(str(cause or ""), secrets))
        # the SDK's aiohttp transport reports a refused connection as a connect timeout
        if "connect" in text.lower() or not isinstance(exc, openai.APITimeoutError):
            return f"cannot connect ({_cut(text, 200) or type(cause).__name__})"
        return "timed out"
    return _cut(printable(redact(f"{type(exc).__name__}: {exc}", secrets)), 300)


def resolve_api_key(role: str, config: ModelConfig) -> str:
    """The key from the configured variable; ``ValueError`` (a one-line message) if missing."""
    if config.api_key_env:
        key = os.environ.get(config.api_key_env)
        if not key:
            raise ValueError(
                f"environment variable {config.api_key_env!r} (api_key_env) is not set"
            )
        if any(ch.isspace() or not ch.isprintable() for ch in key):
            raise ValueError(
                f"the key in {config.api_key_env!r} contains spaces, newlines or control "
                "characters (a stray newline from a file?)"
            )
        return key
    if config.base_url is None:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError(
                "no base_url, so the OpenAI API is used, but OPENAI_API_KEY is not set "
                f"(set it, or give --{role}-base-url / api_key_env)"
            )
        return key
    return "EMPTY"  # self-hosted servers (vLLM, SGLang, Ollama) accept any key


class _Empty(Exception):
    """A completion with nothing in it (retried); its text says how it ended."""


#: the usage fields a completion's token counts are read from
_TOKEN_KEYS = ("prompt_tokens", "completion_tokens")


def _ending(what: str, finish: str | None, p: int, c: int, reported: bool) -> str:
    response = ChatResponse(None, [], None, p, c, finish_reason=finish, usage_reported=reported)
    return f"empty completion ({what}; {response.describe_ending()})"


def _http_client_classes(openai: Any) -> list[Any]:
    """The SDK's aiohttp-backed client first (when aiohttp is installed), then its httpx one."""
    out = []
    aio = getattr(openai, "DefaultAioHttpClient", None)
    if aio is not None and importlib.util.find_spec("aiohttp") is not None:
        out.append(aio)
    out.append(openai.DefaultAsyncHttpxClient)
    return out


class OpenAIClient(ModelClient):
    def __init__(
        self, role: str, config: ModelConfig, settings: ClientSettings | None = None
    ) -> None:
        from emotau.models._config import RetryConfig

        self.role = role
        self.config = config
        self.settings = settings or ClientSettings()
        self.retry = self.settings.retry or RetryConfig()
        self._key = resolve_api_key(role, config)
        self._secrets = [self._key] if self._key != "EMPTY" else []
        self._client: Any = None
        #: hears of each retry of :meth:`call_api` (the preflight's feedback); episodes' calls
        #: only log theirs
        self.on_retry: OnRetry | None = None

    # -- transport ------------------------------------------------------------------------
    def _ensure(self) -> Any:
        if self._client is None:
            import openai
            from openai import AsyncOpenAI

            # openai 1.x/2.x build on httpx, 3.x on httpx2: take Limits from whichever it is.
            # With aiohttp installed, the SDK's aiohttp transport is used: same API, about
            # half the CPU per request under high concurrency.
            http = None
            n = max(1, self.settings.max_connections)
            for http_cls in _http_client_classes(openai):
                base = next(c for c in http_cls.__mro__ if c.__name__ == "AsyncClient")
                lib = importlib.import_module(base.__module__.split(".")[0])
                try:
                    http = http_cls(
                        limits=lib.Limits(max_connections=n, max_keepalive_connections=n),
                        timeout=self.config.timeout,
                    )
                    break
                except RuntimeError:  # e.g. openai 1.x/2.x without its httpx-aiohttp extra
                    continue
            self._client = AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=self._key,
                max_retries=0,  # emotau retries itself, within the episode's budget
                timeout=self.config.timeout,
                http_client=http,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def call_api(self, make: Callable[[Any], Awaitable[T]]) -> T:
        """``await make(sdk)`` with this client's ``openai.AsyncOpenAI``, retried as model calls
        are (no episode budget); when retries run out, the last exception is raised as it is.
        ``emotau doctor`` and the preflight probe endpoints with it."""
        sdk = self._ensure()
        try:
            result, _ = await call_with_retries(
                lambda: make(sdk), self.retry, self.retryable, self.where, on_retry=self.on_retry
            )
            return result
        except RetriesExhausted as exc:
            last = exc.__cause__
        assert isinstance(last, Exception)
        raise last  # as it is: describe_error reads its own __cause__

    async def list_models(self) -> list[str]:
        """The ids the endpoint's ``/models`` lists (retried; ``openai.NotFoundError`` when the
        server has no such endpoint)."""
        page = await self.call_api(lambda api: api.models.list())
        self.learn_models([m.model_dump() for m in page.data])  # who asks for the metadata
        return [m.id for m in page.data]

    def redact(self, text: str) -> str:
        """``text`` with this client's API key replaced by ``***``."""
        return redact(text, self._secrets)

    def describe(self, exc: BaseException) -> str:
        """:func:`describe_error` with this client's key redacted before any cut."""
        return describe_error(exc, self._secrets)

    @property
    def where(self) -> str:
        """Which endpoint this is, for messages: role, model and base URL (never the key)."""
        return self.redact(
            f"{self.role} model {self.config.model!r} at {self.config.base_url or 'OpenAI'}"
        )

    # -- the episode metadata, for endpoints that ask for it -------------------------------
    def learn_models(self, models: list[Mapping[str, Any]]) -> None:
        """Note which of this endpoint's models (``/models`` entries, e.g. from a preflight)
        ask for the episode metadata."""
        if self.config.base_url is not None:
            self.settings.metadata_models[self.config.base_url] = models_wanting_metadata(models)

    async def _probe_metadata(self) -> frozenset[str] | None:
        """``GET /models`` once: the models that ask for metadata; None if it did not answer."""
        import openai

        options: Any = {
            "headers": dict(self.settings.extra_headers),
            "timeout": min(self.config.timeout, 30.0),
        }
        try:
            raw = await self._ensure().get("/models", cast_to=_JSON, options=options)
        except openai.APIStatusError as exc:  # a 404 (no /models) is an answer: no metadata
            return (
                None if exc.status_code >= 500 or exc.status_code in _RETRY_STATUS else frozenset()
            )
        except Exception:  # not reachable now: the next call asks again
            return None
        return models_wanting_metadata(raw)

    async def sends_metadata(self) -> bool:
        """Whether requests carry the episode metadata (see the module docstring)."""
        if self.config.send_metadata is not None:
            return self.config.send_metadata
        if self.config.base_url is None:
            return False  # the OpenAI API never asks
        wanting = await self.settings.models_wanting_metadata(
            self.config.base_url, self._probe_metadata
        )
        return self.config.model in wanting

    def _payload(
        self, request: ChatRequest, metadata: bool = False
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body and headers of one chat completion (the metadata header only when
        ``metadata``)."""
        cfg = self.config
        body: dict[str, Any] = {"model": cfg.model, "messages": request.messages}
        if cfg.temperature is not None:
            body["temperature"] = cfg.temperature
        if cfg.max_tokens is not None:
            body["max_tokens"] = cfg.max_tokens
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        if request.tools:
            body["tools"] = request.tools
            if request.tool_choice:
                body["tool_choice"] = request.tool_choice
        if cfg.extra_body:
            body.update(cfg.extra_body)
        headers = dict(self.settings.extra_headers)
        if metadata and request.metadata:
            headers[METADATA_HEADER] = json.dumps(dict(request.metadata), ensure_ascii=True)
        return body, headers

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body :meth:`complete` sends for ``request``: the role's sampling settings
        (temperature, max_tokens, seed) and ``extra_body`` included. ``emotau doctor`` and the
        preflight probe endpoints with it, so they ask what a run asks."""
        return self._payload(request)[0]

    def retryable(self, exc: BaseException) -> str | None:
        """A short, redacted description if ``exc`` is worth retrying, else None."""
        import openai

        if isinstance(exc, _Empty):
            return str(exc)
        if isinstance(exc, json.JSONDecodeError):  # a 200 whose body is cut or is not JSON
            return _broken_body(exc)
        if isinstance(exc, openai.APIConnectionError):
            return describe_error(exc, self._secrets)
        if isinstance(exc, openai.APIStatusError) and (
            exc.status_code >= 500 or exc.status_code in _RETRY_STATUS
        ):
            return f"HTTP {exc.status_code}"
        return None

    # -- one completion ---------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResponse:
        import openai

        client = self._ensure()
        body, headers = self._payload(
            request, bool(request.metadata) and await self.sends_metadata()
        )
        # the low-level post skips the SDK's per-call typed transform of the (already plain
        # JSON) body and its pydantic response models: ~1 ms of CPU per call saved
        post_options = {"headers": headers}
        sem = self.settings.semaphore(self.config.base_url)

        async def post() -> Any:  # a 200 whose body is cut or not JSON: see retryable()
            return await client.post(
                "/chat/completions", body=body, cast_to=_JSON, options=post_options
            )

        async def attempt() -> ChatResponse:
            started = time.perf_counter()
            if sem is None:
                raw = await post()
            else:
                async with sem:
                    raw = await post()
            latency = time.perf_counter() - started
            response = self._parse(raw, request)
            response.latency_s = latency
            return response

        try:
            response, retries = await call_with_retries(
                attempt, self.retry, self.retryable, self.where, request.budget
            )
        except RetriesExhausted as exc:
            raise InfraError(f"{self.where}: {exc}") from None
        except openai.APIError as exc:
            raise InfraError(f"{self.where}: {describe_error(exc, self._secrets)}") from None
        except Exception as exc:  # the transport itself broke (bad URL, not HTTP, ...)
            raise InfraError(f"{self.where}: {describe_error(exc, self._secrets)}") from None
        response.retries = retries
        return response

    def _parse(self, raw: Any, request: ChatRequest) -> ChatResponse:
        """A ChatResponse from the completion JSON (a dict); :class:`_Empty` (retried) for no
        choice, or no text and no tool call unless the model ran out of tokens."""
        usage = raw.get("usage") if isinstance(raw, dict) else None
        counts = [usage.get(k) if isinstance(usage, dict) else None for k in _TOKEN_KEYS]
        reported = all(isinstance(n, int) and not isinstance(n, bool) for n in counts)
        p, c = (int(counts[0]), int(counts[1])) if reported else (0, 0)
        try:
            choice = raw["choices"][0]
            msg = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise _Empty(_ending("no choices", None, p, c, reported)) from None
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        finish = finish if isinstance(finish, str) else None
        if not isinstance(msg, dict):
            raise _Empty(_ending("no message", finish, p, c, reported))
        field = msg.get("reasoning_content") or msg.get("reasoning")
        content, reasoning = split_reasoning(msg.get("content"), field)
        calls = []
        for i, tc in enumerate(msg.get("tool_calls") or []):
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                args = fn.get("arguments")
                if not isinstance(args, str):
                    args = json.dumps(args) if args is not None else ""
                calls.append(ToolCall(tc.get("id") or f"call_{i}", fn["name"], args))
        if not calls and request.tools and content:
            names = [t["function"]["name"] for t in request.tools]
            found, rest = recover_tool_calls(content, names)
            if found:
                calls = [
                    ToolCall(
                        f"recovered_{i}", c.name, c.arguments, recovered=c.style, error=c.error
                    )
                    for i, c in enumerate(found)
                ]
                content = rest or None
        cost = None
        if self.config.price:
            cost = (p * self.config.price["input"] + c * self.config.price["output"]) / 1e6
        synthetic = raw.get("system_fingerprint") == SYNTHETIC_FINGERPRINT
        response = ChatResponse(
            content,
            calls,
            reasoning,
            p,
            c,
            cost_usd=cost,
            synthetic=synthetic,
            finish_reason=finish,
            usage_reported=reported,
            prompt_token_ids=_token_ids(raw.get("prompt_token_ids")),
            token_ids=_token_ids(choice.get("token_ids") if isinstance(choice, dict) else None),
        )
        # Nothing written: a glitch of the server, worth retrying, unless the model spent its
        # whole token budget on nothing, which the same request would do again (the caller's
        # to judge: the agent's failure, or the user simulator's)
        if response.blank and finish != "length":
            raise _Empty(f"empty completion ({response.describe_ending()})")
        return response


def provider(
    role: str, config: ModelConfig, domain: Any, settings: ClientSettings | None
) -> ModelClient:
    """The ``openai`` model provider: any OpenAI-compatible endpoint."""
    return OpenAIClient(role, config, settings)


def _broken_body(exc: json.JSONDecodeError) -> str:
    """What was wrong with a 200's body that did not parse: empty, cut short, or not JSON."""
    doc = exc.doc or ""
    where = f"{exc.msg} at character {exc.pos} of {len(doc)}"
    if not doc.strip():
        kind = "an empty body"
    elif doc.lstrip()[:1] in "{[":
        kind = f"a truncated or broken JSON body ({where})"
    else:
        kind = f"a body that is not JSON ({where})"
    return f"the server answered 200 with {kind}"


def _token_ids(value: Any) -> list[int] | None:
    """A list of token ids as vLLM returns them (``return_token_ids``), else None."""
    if isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    ):
        return value
    return None
