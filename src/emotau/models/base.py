"""The model-client interface: one chat completion, OpenAI-shaped, async.

Every role (agent, user, judge) talks to its model through a :class:`ModelClient`. Requests
and responses use OpenAI chat-completions message dicts so that an HTTP client, the in-process
scripted models and a mock server are interchangeable.

``ChatRequest.metadata`` carries the episode context (domain, task id, variant, trial, role,
purpose). Real servers ignore it; scripted models and the mock server use it to play an oracle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emotau.registry import Registry

if TYPE_CHECKING:
    from emotau.domains import Domain
    from emotau.models.openai_client import ClientSettings
    from emotau.spec import ModelConfig


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it
    #: set when the call was recovered from text the server did not parse ("hermes", ...)
    recovered: str | None = None


class RetryBudget:
    """Retries one episode may still spend, shared by all its model calls."""

    __slots__ = ("left", "used")

    def __init__(self, total: int) -> None:
        self.left = total
        self.used = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    budget: RetryBudget | None = None


@dataclass
class ChatResponse:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float | None = None
    retries: int = 0
    #: the reply came from a scripted model (in-process, or the mock server over HTTP)
    synthetic: bool = False

    def message(self) -> dict[str, Any]:
        """The assistant message to append to an OpenAI-style history."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        return msg


class ModelClient(ABC):
    """One role's model. Implementations must be safe to call from many episodes at once."""

    #: True for in-process scripted models; their results are labelled synthetic
    synthetic: bool = False

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One chat completion. Raise :class:`emotau.errors.InfraError` for transport faults."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


#: provider name -> factory(role, config, domain, settings) -> ModelClient
ClientFactory = Callable[[str, "ModelConfig", "Domain", "ClientSettings | None"], ModelClient]
PROVIDERS: Registry[ClientFactory] = Registry("model provider")


def _scripted(
    role: str, config: ModelConfig, domain: Domain, settings: ClientSettings | None
) -> ModelClient:
    from emotau.models.scripted import scripted_client

    return scripted_client(role, config, domain)


def _openai(
    role: str, config: ModelConfig, domain: Domain, settings: ClientSettings | None
) -> ModelClient:
    from emotau.models.openai_client import OpenAIClient

    return OpenAIClient(role, config, settings)


PROVIDERS.add("scripted", _scripted)
PROVIDERS.add("openai", _openai)


def provider_for(config: ModelConfig) -> str:
    """Which provider serves a model config.

    ``model = "scripted"`` is the in-process offline model (even when a base URL is set for
    other roles); any other name is served over the OpenAI-compatible API, including the mock
    server's ``scripted-agent`` and ``scripted-user``.
    """
    if config.provider:
        return config.provider
    return "scripted" if config.model == "scripted" else "openai"


def create_client(
    role: str, config: ModelConfig, domain: Domain, settings: ClientSettings | None = None
) -> ModelClient:
    return PROVIDERS.get(provider_for(config))(role, config, domain, settings)


class EpisodeClient(ModelClient):
    """One episode's view of a shared client: adds the episode's retry budget, meters usage."""

    def __init__(self, inner: ModelClient, budget: RetryBudget | None) -> None:
        self.inner = inner
        self.budget = budget
        self.synthetic = inner.synthetic
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd: float | None = None
        self.latency_s = 0.0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        request.budget = self.budget
        r = await self.inner.complete(request)
        self.calls += 1
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        self.latency_s += r.latency_s
        self.synthetic = self.synthetic or r.synthetic
        if r.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + r.cost_usd
        return r

    def usage(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": round(self.latency_s, 6),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
        }
